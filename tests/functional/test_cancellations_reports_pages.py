"""The cancellations report pages over HTTP: breaches by cause with the drill-down and the cause form, prevention
actions added, edited and moved (overdue highlighted, on the coordinator's home), leakage and equipment recovery with
charts, drill-downs and safe exports; bad input answered with problem+json naming the field and nothing changed;
viewers read but cannot act."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from opsline.cancellations.models import CancellationJourney, CancellationStep
from opsline.cancellations.prevention import CancellationBreachCause, CancellationPreventionAction
from tests.conftest import NOW
from tests.functional.test_cancellations_pages import _line

PROBLEM = {"Accept": "application/problem+json"}


def _breached_journey(c, factory) -> int:  # type: ignore[no-untyped-def]
    acc, product = _line(factory)
    r = c.post("/cancellations", data={"account_id": acc, "product_id": product, "reason_code": "price", "verified": "1"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    with factory.begin() as s:
        jid = s.execute(select(func.max(CancellationJourney.id))).scalar_one()
        s.execute(update(CancellationStep).where(CancellationStep.journey_id == jid, CancellationStep.code == "notice")
                  .values(due_at=NOW - timedelta(hours=20)))
        return s.execute(select(CancellationStep.id).where(CancellationStep.journey_id == jid, CancellationStep.code == "notice")).scalar_one()


def _count(factory, model) -> int:  # type: ignore[no-untyped-def]
    with factory() as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def test_coordinator_sees_breaches_by_cause_drills_down_and_records_the_cause(client_as, factory):
    c = client_as("cancellations_coordinator")
    step_id = _breached_journey(c, factory)
    sla = c.get("/cancellations/reports/sla")
    assert sla.status_code == 200 and "Breaches by cause" in sla.text and "Not yet analysed" in sla.text and "data-chart" in sla.text
    drill = c.get("/cancellations/reports/breaches?cause=none")
    assert drill.status_code == 200 and f"/cancellations/breaches/{step_id}/cause" in drill.text
    r = c.post(f"/cancellations/breaches/{step_id}/cause", data={"cause_code": "capacity", "note": "month-end backlog", "back": "none"}, follow_redirects=False)
    assert r.status_code == 303 and "cause=none" in r.headers["location"]
    page = c.get("/cancellations/reports/breaches?cause=capacity")
    assert "month-end backlog" in page.text and "Record the cause" in page.text
    assert _count(factory, CancellationBreachCause) == 1
    bad = c.post(f"/cancellations/breaches/{step_id}/cause", data={"cause_code": "gremlins"}, headers=PROBLEM, follow_redirects=False)
    assert bad.status_code == 422 and bad.json()["field"] == "cause_code"
    xlsx = c.get("/cancellations/reports/breaches/export?format=xlsx")
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    csv = c.get("/cancellations/reports/breaches/export?format=csv&cause=capacity")
    assert csv.status_code == 200 and b"month-end backlog" in csv.content


def test_prevention_actions_are_added_edited_moved_and_an_overdue_one_is_highlighted_and_on_the_home_card(client_as, factory):
    c = client_as("cancellations_coordinator")
    r = c.post("/cancellations/prevention", data={"cause_code": "waiting_on_fno", "step_code": "fno_deactivation", "title": "Escalation path with Openserve",
                                                  "owner": "Lerato", "due_date": "2026-11-20"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    with factory() as s:
        aid = s.execute(select(CancellationPreventionAction.id)).scalar_one()
    page = c.get("/cancellations/prevention")
    assert "Escalation path with Openserve" in page.text and "overdue" in page.text
    home = c.get("/desk/cancellations_coordinator")
    assert home.status_code == 200 and "Breach prevention actions open" in home.text and "1 overdue" in home.text
    assert c.post(f"/cancellations/prevention/{aid}", data={"title": "Escalation path with Openserve", "owner": "Lerato", "due_date": "2026-12-04"},
                  follow_redirects=False).status_code == 303
    assert c.post(f"/cancellations/prevention/{aid}/act", data={"action": "start"}, follow_redirects=False).status_code == 303
    no_reason = c.post(f"/cancellations/prevention/{aid}/act", data={"action": "drop", "reason": ""}, headers=PROBLEM, follow_redirects=False)
    assert no_reason.status_code == 422
    assert c.post(f"/cancellations/prevention/{aid}/act", data={"action": "complete", "reason": "agreed weekly call"}, follow_redirects=False).status_code == 303
    done = c.get("/cancellations/prevention?state=done")
    assert "agreed weekly call" in done.text
    with factory() as s:
        a = s.get(CancellationPreventionAction, aid)
        assert (a.state, str(a.due_date), a.owner) == ("done", "2026-12-04", "Lerato")


def test_a_prevention_action_with_a_bad_field_is_refused_naming_it_and_nothing_is_saved(client_as, factory):
    c = client_as("cancellations_coordinator")
    for data, field in (({"cause_code": "capacity", "title": "", "owner": "x", "due_date": "2026-12-01"}, "title"),
                        ({"cause_code": "capacity", "title": "t", "owner": "x", "due_date": "1 Dec"}, "due_date"),
                        ({"cause_code": "nope", "title": "t", "owner": "x", "due_date": "2026-12-01"}, "cause_code")):
        r = c.post("/cancellations/prevention", data=data, headers=PROBLEM, follow_redirects=False)
        assert r.status_code == 422 and r.json()["field"] == field, r.text
    assert c.get("/cancellations/prevention?state=weird", headers=PROBLEM).json()["field"] == "state"
    assert _count(factory, CancellationPreventionAction) == 0


def test_a_viewer_reads_the_reports_but_cannot_record_causes_or_actions(client_as, factory):
    coord = client_as("cancellations_coordinator")
    step_id = _breached_journey(coord, factory)
    viewer = client_as("billing_analyst")
    for url in ("/cancellations/reports/breaches", "/cancellations/prevention", "/cancellations/reports/leakage", "/cancellations/reports/equipment"):
        page = viewer.get(url)
        assert page.status_code == 200, url
    assert "Add a prevention action" not in viewer.get("/cancellations/prevention").text
    assert viewer.post(f"/cancellations/breaches/{step_id}/cause", data={"cause_code": "capacity"}, follow_redirects=False).status_code == 403
    assert viewer.post("/cancellations/prevention", data={"cause_code": "capacity", "title": "t", "owner": "o", "due_date": "2026-12-01"},
                       follow_redirects=False).status_code == 403
    assert _count(factory, CancellationBreachCause) == 0 and _count(factory, CancellationPreventionAction) == 0


def test_leakage_and_equipment_reports_render_with_drill_downs_and_export_and_refuse_a_bad_month(client_as, factory):
    c = client_as("cancellations_coordinator")
    for url in ("/cancellations/reports/leakage", "/cancellations/reports/leakage/orders?month=2026-11&partner=openserve",
                "/cancellations/reports/equipment", "/cancellations/reports/equipment/devices?month=2026-11&fno=openserve&courier="):
        page = c.get(url)
        assert page.status_code == 200, url
    for url in ("/cancellations/reports/leakage/export?format=xlsx&month=2026-11&partner=openserve",
                "/cancellations/reports/equipment/export?format=xlsx&month=2026-11"):
        x = c.get(url)
        assert x.status_code == 200 and x.content[:2] == b"PK" and x.headers["content-disposition"].startswith("attachment"), url
    bad = c.get("/cancellations/reports/leakage/orders?month=Nov&partner=openserve", headers=PROBLEM)
    assert bad.status_code == 422 and bad.json()["field"] == "month"
    bad = c.get("/cancellations/reports/equipment/export?format=exe", headers=PROBLEM)
    assert bad.status_code == 422 and bad.json()["field"] == "format"
