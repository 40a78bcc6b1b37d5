"""Service review pages through the app: generate a closed month, open a customer's review with its scorecard and
trend charts, download PDF and Excel, keep the improvement plan, and release it (service manager only)."""

from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import select

from opsline.b2b import service
from opsline.b2b.models import B2BReview
from opsline.cases.models import Queue, SupportCase
from opsline.core.events import Actor
from opsline.core.money import Money
from opsline.customers.models import Account, Contact, Party
from opsline.notifications.models import Message

PROBLEM = {"Accept": "application/problem+json"}


def _customer(factory, now) -> int:  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        p = Party(kind="organisation", name="Umoya Wind Farms", created_at=now)
        s.add(p)
        s.flush()
        a = Account(account_number=f"B{p.id:09d}", party_id=p.id, name="Umoya Wind Farms", kind="b2b", status="active", segment_code="enterprise",
                    value_tier_code="standard", currency="ZAR", created_at=now, updated_at=now)
        s.add(a)
        s.flush()
        s.add(Contact(account_id=a.id, name="Pieter", role="primary", email="noc@umoya.example", is_primary=True))
        q = s.execute(select(Queue).where(Queue.code == "technical")).scalar_one_or_none()
        if q is None:
            q = Queue(code="technical", name="Technical", is_escalation=False, assignment="manual", skills=[], active=True)
            s.add(q)
            s.flush()
        o = datetime(2026, 10, 12, 4, tzinfo=timezone.utc)
        s.add(SupportCase(reference="CS-UW1", account_id=a.id, category_code="network_coverage", channel="call", subject="Turbine site link down",
                          state="resolved", priority=1, queue_id=q.id, opened_at=o, updated_at=o, resolved_at=datetime(2026, 10, 12, 16, tzinfo=timezone.utc),
                          reopen_count=0))
        s.flush()
        mgr = Actor(name="setup", roles=frozenset({"service_manager"}))
        cid = service.create_contract(s, account_id=a.id, name="Remote sites", valid_from=date(2026, 1, 1), valid_to=None,
                                      monthly_value=Money.of("20000", "ZAR"), credit_cap=Money.of("2000", "ZAR"), terms=None, now=now, actor=mgr)
        service.add_rule(s, contract_id=cid, metric="availability", operator=">=", reference_value="99.5", now=now, actor=mgr)
        return int(a.id)


def test_a_manager_generates_opens_plans_downloads_and_releases_a_review(client_as, factory, now) -> None:
    _customer(factory, now)
    m = client_as("service_manager")
    r = m.post("/b2b/reviews/generate", data={"period": "2026-10"}, follow_redirects=False)
    assert r.status_code == 303
    with factory() as s:
        rid = s.execute(select(B2BReview.id)).scalar_one()
    page = m.get(f"/b2b/reviews/{rid}")
    assert page.status_code == 200 and "Umoya Wind Farms" in page.text and "98.3871" in page.text and "data-chart=" in page.text
    assert "CS-UW1" in page.text and "<script>" not in page.text  # charts drawn by desk.js under the CSP
    assert m.post(f"/b2b/reviews/{rid}/actions", data={"title": "Backup LTE at the turbine sites", "owner": "Pieter", "due_date": "2026-12-15"},
                  follow_redirects=False).status_code == 303
    bad = m.post(f"/b2b/reviews/{rid}/actions", data={"title": "x", "owner": "y", "due_date": "soon"}, headers=PROBLEM)
    assert bad.status_code == 422 and bad.json()["field"] == "due_date"
    pdf = m.get(f"/b2b/reviews/{rid}/pdf")
    assert pdf.status_code == 200 and pdf.content[:4] == b"%PDF"
    x = m.get(f"/b2b/reviews/{rid}/export?format=xlsx")
    assert x.status_code == 200 and x.content[:2] == b"PK"
    analyst = client_as("billing_analyst")
    assert analyst.get(f"/b2b/reviews/{rid}").status_code == 200
    assert analyst.post(f"/b2b/reviews/{rid}/release", headers=PROBLEM).status_code == 403
    assert m.post(f"/b2b/reviews/{rid}/release", follow_redirects=False).status_code == 303
    with factory() as s:
        assert s.execute(select(Message.to_addr).where(Message.event == "b2b.review_released")).scalars().all() == ["noc@umoya.example"]
    assert "emailed to 1 contacts" in m.get(f"/b2b/reviews/{rid}").text
    listing = m.get("/b2b/reviews?period=2026-10")
    assert listing.status_code == 200 and "released" in listing.text
    assert m.post("/b2b/reviews/generate", data={"period": "2026-11"}, headers=PROBLEM).json()["field"] == "period"
