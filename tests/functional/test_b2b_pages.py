"""B2B service pages through the app: the desk and a contract per role, creating a contract and rules, evaluating a
month, four-eyes credit approval onto the next bill, the export, the home cards, and bad input as problem+json."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import func, select

from opsline.b2b.models import B2BContract, B2BServiceCredit, B2BSlaRule
from opsline.billing.models import PendingCharge
from opsline.cases.models import Queue, SupportCase
from opsline.customers.models import Account, Party

PROBLEM = {"Accept": "application/problem+json"}


def _b2b_with_outage(factory, now) -> int:  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        p = Party(kind="organisation", name="Karoo Mining Ltd", created_at=now)
        s.add(p)
        s.flush()
        a = Account(account_number=f"B{p.id:09d}", party_id=p.id, name="Karoo Mining Ltd", kind="b2b", status="active", segment_code="enterprise",
                    value_tier_code="standard", currency="ZAR", created_at=now, updated_at=now)
        s.add(a)
        q = s.execute(select(Queue).where(Queue.code == "technical")).scalar_one_or_none()
        if q is None:
            q = Queue(code="technical", name="Technical", is_escalation=False, assignment="manual", skills=[], active=True)
            s.add(q)
        s.flush()
        opened = datetime(2026, 10, 7, 6, tzinfo=timezone.utc)
        s.add(SupportCase(reference="CS-KM1", account_id=a.id, category_code="network_coverage", channel="call", subject="Mine site offline",
                          state="resolved", priority=1, queue_id=q.id, opened_at=opened, updated_at=opened,
                          resolved_at=datetime(2026, 10, 8, 6, tzinfo=timezone.utc), reopen_count=0))
        return int(a.id)


def test_a_service_manager_sets_up_a_contract_evaluates_october_and_a_second_manager_approves_the_credit(client_as, factory, now) -> None:
    acc = _b2b_with_outage(factory, now)
    m1, m2 = client_as("service_manager"), client_as("service_manager")
    r = m1.post("/b2b/contracts", data={"account_id": str(acc), "name": "Site connectivity", "valid_from": "2026-01-01", "monthly_value": "40000",
                                        "credit_cap": "5000", "currency": "ZAR"}, follow_redirects=False)
    assert r.status_code == 303
    cid = int(r.headers["location"].split("/")[3].split("?")[0])
    r = m1.post(f"/b2b/contracts/{cid}/rules", data={"metric": "availability", "operator": ">=", "reference_value": "99.9", "consequence": "credit_percent",
                                                     "credit_percent": "10", "currency": "ZAR"}, follow_redirects=False)
    assert r.status_code == 303
    assert m1.post("/b2b/evaluate", data={"period": "2026-10"}, follow_redirects=False).status_code == 303
    desk = m1.get("/b2b")
    assert desk.status_code == 200 and "Karoo Mining Ltd" in desk.text and "Availability (outage cases)" in desk.text
    assert "R 4,000.00" in desk.text and "a second person approves" in desk.text  # the proposer sees no approve button
    with factory() as s:
        credit_id = s.execute(select(B2BServiceCredit.id)).scalar_one()
    # the evaluation was run by m1, so m1 may not approve it; m2 may
    own = m1.post(f"/b2b/credits/{credit_id}/approve", headers=PROBLEM)
    assert own.status_code == 403 and own.json()["field"] == "actor"
    assert m2.post(f"/b2b/credits/{credit_id}/approve", follow_redirects=False).status_code == 303
    with factory() as s:
        charge = s.execute(select(PendingCharge)).scalar_one()
        assert charge.amount_minor == -400000 and charge.account_id == acc
    page = m2.get(f"/b2b/contracts/{cid}")
    assert page.status_code == 200 and "queued as charge" in page.text and "SC-" in page.text
    x = m2.get("/b2b/export?format=xlsx")
    assert x.status_code == 200 and x.content[:2] == b"PK"
    panel = m2.get(f"/accounts/{acc}/panel/b2b")
    assert panel.status_code == 200 and "Site connectivity" in panel.text and "Availability (outage cases)" in panel.text
    home = m2.get("/desk/service_manager")
    assert home.status_code == 200 and "Service credits to decide" in home.text and "Active B2B contracts" in home.text


def test_bad_rules_and_months_are_problems_naming_the_field_and_change_nothing(client_as, factory, now) -> None:
    acc = _b2b_with_outage(factory, now)
    m = client_as("service_manager")
    r = m.post("/b2b/contracts", data={"account_id": str(acc), "name": "", "valid_from": "2026-01-01", "credit_cap": "5000"}, headers=PROBLEM)
    assert r.status_code == 422 and r.json()["field"] == "name"
    r = m.post("/b2b/contracts", data={"account_id": str(acc), "name": "X", "valid_from": "2026-01-01", "credit_cap": "lots"}, headers=PROBLEM)
    assert r.status_code == 422 and r.json()["field"] == "credit_cap"
    with factory() as s:
        assert s.execute(select(func.count()).select_from(B2BContract)).scalar_one() == 0
    m.post("/b2b/contracts", data={"account_id": str(acc), "name": "X", "valid_from": "2026-01-01", "credit_cap": "5000"})
    with factory() as s:
        cid = s.execute(select(B2BContract.id)).scalar_one()
    r = m.post(f"/b2b/contracts/{cid}/rules", data={"metric": "happiness", "operator": ">=", "reference_value": "99"}, headers=PROBLEM)
    assert r.status_code == 422 and r.json()["field"] == "metric" and "happiness" in r.json()["detail"]
    r = m.post(f"/b2b/contracts/{cid}/rules", data={"metric": "availability", "operator": "==", "reference_value": "99"}, headers=PROBLEM)
    assert r.status_code == 422 and r.json()["field"] == "operator"
    r = m.post("/b2b/evaluate", data={"period": "2026-11"}, headers=PROBLEM)
    assert r.status_code == 422 and r.json()["field"] == "period"
    r = m.post("/b2b/evaluate", data={"period": "last month"}, headers=PROBLEM)
    assert r.status_code == 422 and r.json()["field"] == "period"
    with factory() as s:
        assert s.execute(select(func.count()).select_from(B2BSlaRule)).scalar_one() == 0


def test_each_role_sees_or_is_refused_the_b2b_pages(client_as, factory, now) -> None:
    _b2b_with_outage(factory, now)
    analyst = client_as("billing_analyst")
    assert analyst.get("/b2b").status_code == 200
    assert "New contract" not in analyst.get("/b2b").text  # viewing only
    assert analyst.post("/b2b/evaluate", data={"period": "2026-10"}, headers=PROBLEM).status_code == 403
    agent = client_as("second_line_agent")
    assert agent.get("/b2b", headers=PROBLEM).status_code == 403
    assert client_as("admin").get("/b2b").status_code == 200


def test_the_services_pnl_page_and_export_open_for_b2b_viewers_and_name_a_bad_month(client_as, factory, now) -> None:
    acc = _b2b_with_outage(factory, now)
    m = client_as("billing_analyst")
    page = m.get(f"/b2b/pnl/{acc}?month=2026-10")
    assert page.status_code == 200 and "Services P&amp;L: Karoo Mining Ltd" in page.text and "data-chart=" in page.text and "2025-11" in page.text
    x = m.get(f"/b2b/pnl/{acc}/export?month=2026-10&format=xlsx")
    assert x.status_code == 200 and x.content[:2] == b"PK"
    bad = m.get(f"/b2b/pnl/{acc}?month=Octember", headers=PROBLEM)
    assert bad.status_code == 422 and bad.json()["field"] == "month"
    assert client_as("second_line_agent").get(f"/b2b/pnl/{acc}", headers=PROBLEM).status_code == 403
