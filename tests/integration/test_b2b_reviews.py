"""Monthly service reviews: generated once per B2B customer after month close, the scorecard against the rules with a
12-month trend, the improvement plan carried month to month, release by a manager emailing the PDF to the contacts."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from sqlalchemy import func, select

from opsline.b2b import reviews, service
from opsline.b2b.models import B2BReview
from opsline.cases.models import CaseLink, Queue, SupportCase
from opsline.catalog.models import ProductOffering
from opsline.core.errors import InvalidInput, OpslineError
from opsline.core.events import Actor
from opsline.core.lifecycle import ActionNotPermitted
from opsline.core.localtime import zone
from opsline.core.money import Money
from opsline.customers.models import Account, Contact, Party
from opsline.inventory.models import Product
from opsline.notifications.models import Message, MessageAttachment

TZ = zone("Africa/Johannesburg")
MGR = Actor(name="mgr1", roles=frozenset({"service_manager"}))
OCT, SEP = date(2026, 10, 1), date(2026, 9, 1)


def _customer(s, now, *, contacts=("ops@acme.example", "cfo@acme.example")) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    p = Party(kind="organisation", name="Acme Logistics", created_at=now)
    s.add(p)
    s.flush()
    a = Account(account_number=f"B{p.id:09d}", party_id=p.id, name="Acme Logistics", kind="b2b", status="active", segment_code="enterprise",
                value_tier_code="standard", currency="ZAR", created_at=now, updated_at=now)
    s.add(a)
    s.flush()
    for i, email in enumerate(contacts):
        s.add(Contact(account_id=a.id, name=f"Contact {i}", role="primary" if i == 0 else "billing", email=email, is_primary=i == 0))
    q = s.execute(select(Queue).where(Queue.code == "technical")).scalar_one_or_none()
    if q is None:
        q = Queue(code="technical", name="Technical", is_escalation=False, assignment="manual", skills=[], active=True)
        s.add(q)
        s.flush()
    for n, (o, r) in enumerate(((datetime(2026, 10, 5, 8, tzinfo=timezone.utc), datetime(2026, 10, 5, 20, tzinfo=timezone.utc)),
                                (datetime(2026, 9, 3, 8, tzinfo=timezone.utc), datetime(2026, 9, 3, 9, tzinfo=timezone.utc)))):
        s.add(SupportCase(reference=f"CS-R{a.id}-{n}", account_id=a.id, category_code="network_coverage", channel="call", subject="Link down",
                          state="resolved", priority=2, queue_id=q.id, opened_at=o, updated_at=o, resolved_at=r, reopen_count=0))
    s.flush()
    cid = service.create_contract(s, account_id=a.id, name="Managed WAN", valid_from=date(2026, 1, 1), valid_to=None, monthly_value=Money.of("30000", "ZAR"),
                                  credit_cap=Money.of("3000", "ZAR"), terms=None, now=now, actor=MGR)
    service.add_rule(s, contract_id=cid, metric="availability", operator=">=", reference_value="99.5", consequence="credit_percent", credit_percent="5",
                     now=now, actor=MGR)
    service.add_rule(s, contract_id=cid, metric="mttr", operator="<=", reference_value="4", now=now, actor=MGR)
    return int(a.id), cid


def test_reviews_are_generated_once_per_b2b_customer_and_show_target_actual_and_the_12_month_trend(session, now) -> None:
    acc, cid = _customer(session, now)
    service.evaluate_month(session, period=OCT, now=now, tz=TZ, actor=MGR)
    assert reviews.generate(session, period=OCT, now=now, tz=TZ, actor=MGR) == 1
    assert reviews.generate(session, period=OCT, now=now, tz=TZ, actor=MGR) == 0
    rv = session.execute(select(B2BReview)).scalar_one()
    p = reviews.pack(session, review_id=rv.id, tz=TZ)
    avail, mttr = p["scorecard"]
    # 12 h down in a 744 h month: 98.3871 %; September: 1 h in 720 h: 99.8611 %
    assert avail["actual"] == "98.3871" and avail["met"] is False and mttr["actual"] == "12" and mttr["met"] is False
    assert dict(avail["trend"])["2026-09"] == "99.8611" and dict(avail["trend"])["2026-10"] == "98.3871" and len(avail["trend"]) == 12
    assert dict(avail["trend"])["2026-01"] == "100"  # no outages that month
    assert avail["chart"]["type"] == "line" and len(avail["chart"]["data"]["datasets"][0]["data"]) == 12
    assert p["services"] == []  # no products in this test; see the per-service test
    assert [c["reference"] for c in p["cases"]] == [f"CS-R{acc}-0"] and p["cases"][0]["outage"] and p["cases"][0]["hours"] == "12"
    assert len(p["violations"]) == 2 and p["violations"][0]["amount_minor"] in (150000, None)
    name, sheets = reviews.sheets(session, review_id=rv.id, tz=TZ)
    assert [s.title for s in sheets][:2] == ["Scorecard", "Trend"] and name.endswith("2026-10")


def test_an_open_improvement_action_is_carried_to_later_reviews_until_the_month_it_is_done(session, now) -> None:
    acc, _ = _customer(session, now)
    reviews.generate(session, period=SEP, now=now, tz=TZ, actor=MGR)
    reviews.generate(session, period=OCT, now=now, tz=TZ, actor=MGR)
    sep, oct_ = session.execute(select(B2BReview.id).order_by(B2BReview.period)).scalars().all()
    aid = reviews.add_action(session, account_id=acc, period=SEP, title="Diverse fibre path to the depot", owner="N. Dlamini", due_date=date(2026, 10, 15),
                             now=now, actor=MGR)
    assert [a["carried"] for a in reviews.pack(session, review_id=oct_, tz=TZ)["actions"]] == [True]
    reviews.set_action_status(session, action_id=aid, status="done", period=OCT, now=now, actor=MGR)
    assert [a["status"] for a in reviews.pack(session, review_id=oct_, tz=TZ)["actions"]] == ["done"]
    assert reviews.pack(session, review_id=sep, tz=TZ)["actions"][0]["title"] == "Diverse fibre path to the depot"
    with pytest.raises(InvalidInput) as err:
        reviews.add_action(session, account_id=acc, period=OCT, title="Review", owner="", due_date=date(2026, 12, 1), now=now, actor=MGR)
    assert err.value.field == "owner"
    with pytest.raises(InvalidInput) as err2:
        reviews.set_action_status(session, action_id=aid, status="forgotten", period=OCT, now=now, actor=MGR)
    assert err2.value.field == "status"


def test_a_released_review_is_emailed_with_its_pdf_to_every_contact_once(session, now) -> None:
    _customer(session, now)
    reviews.seed_templates(session, now=now)
    reviews.generate(session, period=OCT, now=now, tz=TZ, actor=MGR)
    rv = session.execute(select(B2BReview)).scalar_one()
    with pytest.raises(ActionNotPermitted):
        reviews.release(session, review_id=rv.id, now=now, tz=TZ, actor=Actor(name="ann", roles=frozenset({"billing_analyst"})))
    assert session.execute(select(func.count()).select_from(Message)).scalar_one() == 0
    assert reviews.release(session, review_id=rv.id, now=now, tz=TZ, actor=MGR) == 2
    msgs = session.execute(select(Message.to_addr, Message.subject).order_by(Message.to_addr)).all()
    assert [m.to_addr for m in msgs] == ["cfo@acme.example", "ops@acme.example"] and "October 2026" in msgs[0].subject
    att = session.execute(select(MessageAttachment.filename, MessageAttachment.data)).all()
    assert len(att) == 2 and att[0].filename.endswith("2026-10.pdf") and bytes(att[0].data)[:4] == b"%PDF"
    assert rv.state == "released" and rv.messages_sent == 2
    with pytest.raises(OpslineError):
        reviews.release(session, review_id=rv.id, now=now, tz=TZ, actor=MGR)
    assert session.execute(select(func.count()).select_from(Message)).scalar_one() == 2


def test_a_review_for_an_open_month_or_a_customer_without_contacts_is_refused_and_nothing_changes(session, now) -> None:
    _customer(session, now, contacts=())
    with pytest.raises(InvalidInput) as err:
        reviews.generate(session, period=date(2026, 11, 1), now=now, tz=TZ, actor=MGR)
    assert err.value.field == "period"
    reviews.seed_templates(session, now=now)
    reviews.generate(session, period=OCT, now=now, tz=TZ, actor=MGR)
    rv = session.execute(select(B2BReview)).scalar_one()
    with pytest.raises(InvalidInput) as err2:
        reviews.release(session, review_id=rv.id, now=now, tz=TZ, actor=MGR)
    assert err2.value.field == "contacts" and rv.state == "draft"


def test_availability_per_service_counts_only_the_outages_linked_to_that_product(session, now) -> None:
    acc, _ = _customer(session, now)
    off = session.execute(select(ProductOffering.id).order_by(ProductOffering.id).limit(1)).scalar_one()
    linked, other = (Product(account_id=acc, offering_id=off, state="active", start_date=date(2026, 1, 1), contract_months=0, created_at=now, updated_at=now)
                     for _ in range(2))
    session.add_all([linked, other])
    session.flush()
    case_id = session.execute(select(SupportCase.id).where(SupportCase.reference == f"CS-R{acc}-0")).scalar_one()
    session.add(CaseLink(case_id=case_id, account_id=acc, target_type="product", target_id=str(linked.id), created_at=now, created_by="t"))
    session.flush()
    reviews.generate(session, period=OCT, now=now, tz=TZ, actor=MGR)
    rv = session.execute(select(B2BReview)).scalar_one()
    by = {x["product_id"]: x for x in reviews.pack(session, review_id=rv.id, tz=TZ)["services"]}
    assert by[linked.id]["availability"] == "98.3871" and by[linked.id]["down_hours"] == "12" and by[linked.id]["outages"] == 1
    assert by[other.id]["availability"] == "100" and by[other.id]["outages"] == 0
