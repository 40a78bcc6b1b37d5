"""SLA desk pages and read API through the app."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from opsline.cases.models import CaseEvent, Queue, SupportCase
from opsline.sla import service
from opsline.sla.models import BusinessCalendarRow, SlaBreach


def _case_with_breach(factory, now, actor_name="tester") -> int:  # type: ignore[no-untyped-def]
    from opsline.core.events import Actor

    with factory.begin() as s:
        q = s.execute(select(Queue).where(Queue.code == "billing")).scalar_one_or_none()
        if q is None:
            q = Queue(code="billing", name="Billing", is_escalation=False, assignment="manual", skills=[], active=True)
            s.add(q)
            s.flush()
        opened = now - timedelta(days=8)
        c = SupportCase(reference="CS-F0001", category_code="billing_account", channel="call", subject="Double debit", state="acknowledged", priority=1,
                        queue_id=q.id, opened_at=opened, updated_at=opened, reopen_count=0)
        s.add(c)
        s.flush()
        s.add(CaseEvent(case_id=c.id, at=opened, kind="opened", to_value="acknowledged", actor="t", data={"queue": "billing"}))
        s.flush()
        service.recalculate(s, case_ids=[c.id], now=now, reason="test", actor=Actor(name=actor_name))
        return c.id


def test_sla_dashboard_shows_breach_report_and_exports(client_as, factory, now) -> None:  # type: ignore[no-untyped-def]
    _case_with_breach(factory, now)
    c = client_as("service_manager")
    page = c.get("/sla")
    assert page.status_code == 200 and "Breaches this month by cause" in page.text and "Not yet analysed" in page.text
    csv = c.get("/sla/report.csv")
    assert csv.status_code == 200 and "Overrun business hours" in csv.text and "Billing" in csv.text
    xlsx = c.get("/sla/report.xlsx")
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"


def test_service_manager_sets_a_breach_cause_from_the_list(client_as, factory, now) -> None:  # type: ignore[no-untyped-def]
    _case_with_breach(factory, now)
    with factory() as s:
        bid = s.execute(select(SlaBreach.id)).scalars().first()
    c = client_as("service_manager")
    assert "Set cause" in c.get("/sla/breaches").text
    r = c.post(f"/sla/breaches/{bid}/cause", data={"cause_code": "capacity", "note": "Month-end peak"}, follow_redirects=False)
    assert r.status_code == 303
    with factory() as s:
        assert s.get(SlaBreach, bid).cause_code == "capacity"


def test_an_unknown_cause_shows_the_error_and_changes_nothing(client_as, factory, now) -> None:  # type: ignore[no-untyped-def]
    _case_with_breach(factory, now)
    with factory() as s:
        bid = s.execute(select(SlaBreach.id)).scalars().first()
    r = client_as("service_manager").post(f"/sla/breaches/{bid}/cause", data={"cause_code": "gremlins"})
    assert r.status_code == 422 and "unknown breach cause" in r.text
    with factory() as s:
        assert s.get(SlaBreach, bid).cause_code is None


def test_agents_may_view_but_not_set_causes(client_as, factory, now) -> None:  # type: ignore[no-untyped-def]
    _case_with_breach(factory, now)
    c = client_as("second_line_agent")
    assert c.get("/sla/breaches").status_code == 200
    assert c.post("/sla/breaches/1/cause", data={"cause_code": "capacity"}).status_code == 403


def test_policies_and_calendar_pages_render_and_a_closure_is_saved(client_as, factory, now) -> None:  # type: ignore[no-untyped-def]
    c = client_as("service_manager")
    assert "ICASA complaint" in c.get("/sla/policies").text
    page = c.get("/sla/calendars/za-support")
    assert page.status_code == 200 and "Next 60 days" in page.text and "Day of Reconciliation" in page.text  # 16 December
    r = c.post("/sla/calendars/za-support/closures", data={"day": "2026-12-24", "op": "add", "reason": "Year-end shutdown"}, follow_redirects=False)
    assert r.status_code == 303
    with factory() as s:
        assert "2026-12-24" in s.get(BusinessCalendarRow, "za-support").data["closures"]
    bad = c.post("/sla/calendars/za-support/closures", data={"day": "24/12/2026", "op": "add", "reason": "x"})
    assert bad.status_code == 422 and "invalid calendar" in bad.text


def test_case_clock_partial_and_api(client_as, api_token, factory, now, app) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    case_id = _case_with_breach(factory, now)
    partial = client_as("second_line_agent").get(f"/sla/cases/{case_id}/clocks")
    assert partial.status_code == 200 and "First response" in partial.text and "breached" in partial.text
    with TestClient(app) as api:
        r = api.get(f"/api/sla/v1/caseClock?caseId={case_id}", headers=api_token("admin"))
        assert r.status_code == 200 and {c["metric"] for c in r.json()} >= {"first_response", "resolution"}
        b = api.get("/api/sla/v1/breach", headers=api_token("admin"))
        assert b.status_code == 200 and b.json() and b.headers["X-Result-Count"] == str(len(b.json()))
        assert api.get("/api/sla/v1/caseClock?caseId=999999", headers=api_token("admin")).status_code == 404
        assert "/api/sla/v1/breach" in api.get("/openapi.json", headers=api_token("admin")).json()["paths"]


def test_the_dashboard_explains_open_breaches_against_this_months_breaches_and_links_both(client_as, factory, now) -> None:  # type: ignore[no-untyped-def]
    # breached 8 days ago: still open now, and its deadline passed in an earlier month than the report's
    cid = _case_with_breach(factory, now)
    with factory() as s:
        assert s.get(SupportCase, cid).sla_state == "breached"
    page = client_as("service_manager").get("/sla")
    assert "Open cases past a deadline" in page.text and "any month, still unresolved" in page.text
    assert "Deadlines missed in 2026-11" in page.text and 'href="/sla/breaches?month=2026-11"' in page.text
    assert 'href="/cases?tab=breaching"' in page.text and "answer different questions" in page.text
    c = client_as("service_manager")
    assert "CS-F0001" in c.get("/sla/breaches?open=1").text
    assert "CS-F0001" not in c.get("/sla/breaches?month=2026-10").text
    r = c.get("/sla/breaches?month=November")
    assert r.status_code == 422 and "month must look like 2026-11" in r.text


def test_the_case_page_loads_its_clocks_from_the_sla_desk_and_says_how_long_it_is_breached(client_as, factory, now) -> None:  # type: ignore[no-untyped-def]
    cid = _case_with_breach(factory, now)
    c = client_as("second_line_agent")
    page = c.get(f"/cases/{cid}")
    assert page.status_code == 200 and f'hx-get="/sla/cases/{cid}/clocks"' in page.text and "past its deadline by" in page.text
    clocks = c.get(f"/sla/cases/{cid}/clocks")
    assert clocks.status_code == 200 and "Resolution" in clocks.text and "breached" in clocks.text
    queue = c.get("/cases?tab=breaching").text
    assert "CS-F0001" in queue and "by " in queue


def test_sla_home_cards_count_uncaused_breaches_and_chart_open_cases_by_standing(factory, now) -> None:  # type: ignore[no-untyped-def]
    from opsline.core.events import Actor
    from opsline.sla.home import home

    _case_with_breach(factory, now)
    with factory() as s:
        cards = {c.title: c for c in home(s, now=now, actor=Actor(name="sm", roles=frozenset({"service_manager"})), tz="UTC")}
    uncaused = cards["Breaches without a cause"]
    assert uncaused.count >= 1 and uncaused.href == "/sla/breaches?uncaused=1" and uncaused.desks == ("service_manager",)
    chart = cards["Open cases by SLA standing"].chart
    assert chart["type"] == "doughnut" and chart["data"]["labels"][0] == "Breached" and chart["data"]["datasets"][0]["data"][0] == 1
