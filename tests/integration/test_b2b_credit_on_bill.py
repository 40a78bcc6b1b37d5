"""An approved service credit appears on the customer's next draft bill as a credit line linked to its violation."""

from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import select

from opsline.b2b import pnl, service
from opsline.b2b.models import B2BServiceCredit, B2BViolation
from opsline.billing import billrun
from opsline.billing.models import BillRun, InvoiceLine
from opsline.catalog.models import Price, ProductOffering
from opsline.cases.models import Queue, SupportCase
from opsline.core.events import Actor
from opsline.core.localtime import zone
from opsline.core.money import Money
from opsline.customers.models import Account, Party
from opsline.inventory.models import Product

TZ = zone("Africa/Johannesburg")
MGR1 = Actor(name="mgr1", roles=frozenset({"service_manager"}))
MGR2 = Actor(name="mgr2", roles=frozenset({"service_manager"}))
BILLING = Actor(name="bilal", roles=frozenset({"billing_analyst"}))


def _row(model, now, **kw):  # type: ignore[no-untyped-def]
    """A row of another area's table with our values; other required columns get a plain filler (their models evolve)."""
    from sqlalchemy import Boolean, Date, Integer, Numeric, String, Text

    for col in model.__table__.columns:
        if col.name in kw or col.nullable or col.primary_key or col.default is not None or col.server_default is not None:
            continue
        t = col.type
        kw[col.name] = ("x" if isinstance(t, (String, Text)) else False if isinstance(t, Boolean) else date(2020, 1, 1) if isinstance(t, Date)
                        else 0 if isinstance(t, (Integer, Numeric)) else now)
    return model(**kw)


def test_the_approved_credit_is_a_negative_line_on_the_december_draft_bill_pointing_at_its_violation(factory, now) -> None:
    with factory.begin() as s:
        p = Party(kind="organisation", name="Blue Crane Freight", created_at=now)
        s.add(p)
        s.flush()
        a = Account(account_number=f"B{p.id:09d}", party_id=p.id, name="Blue Crane Freight", kind="b2b", status="active", segment_code="enterprise",
                    value_tier_code="standard", currency="ZAR", bill_cycle_day=1, payment_terms_days=30, created_at=now, updated_at=now)
        s.add(a)
        s.flush()
        o = _row(ProductOffering, now, code="T-B2B-WAN", name="Managed WAN 100 Mbps", kind="b2b_link", contract_months=0)
        s.add(o)
        s.flush()
        s.add(_row(Price, now, offering_id=o.id, kind="recurring", name="Monthly", amount_minor=5000000, currency="ZAR", tax_rate_code="VAT15",
                   charge_event="monthly", valid_from=date(2020, 1, 1)))
        s.add(_row(Price, now, offering_id=o.id, kind="wholesale_cost", name="FNO wholesale", amount_minor=3000000, currency="ZAR", tax_rate_code="VAT15",
                   charge_event="monthly", valid_from=date(2020, 1, 1)))
        s.add(_row(Product, now, account_id=a.id, offering_id=o.id, state="active", start_date=date(2026, 1, 1), contract_months=0, created_at=now, updated_at=now))
        q = s.execute(select(Queue).where(Queue.code == "technical")).scalar_one_or_none()
        if q is None:
            q = Queue(code="technical", name="Technical", is_escalation=False, assignment="manual", skills=[], active=True)
            s.add(q)
            s.flush()
        opened = datetime(2026, 10, 14, 6, tzinfo=timezone.utc)
        s.add(SupportCase(reference="CS-BC1", account_id=a.id, category_code="network_coverage", channel="call", subject="Depot offline", state="resolved",
                          priority=1, queue_id=q.id, opened_at=opened, updated_at=opened, resolved_at=datetime(2026, 10, 15, 6, tzinfo=timezone.utc), reopen_count=0))
        acc = int(a.id)
        cid = service.create_contract(s, account_id=acc, name="Depots WAN", valid_from=date(2026, 1, 1), valid_to=None, monthly_value=Money.of("50000", "ZAR"),
                                      credit_cap=Money.of("10000", "ZAR"), terms=None, now=now, actor=MGR1)
        service.add_rule(s, contract_id=cid, metric="availability", operator=">=", reference_value="99.5", consequence="credit_percent", credit_percent="10",
                         now=now, actor=MGR1)
        service.evaluate_month(s, period=date(2026, 10, 1), now=now, tz=TZ, actor=MGR1)
        credit_id = s.execute(select(B2BServiceCredit.id)).scalar_one()
        charge_id = service.approve_credit(s, credit_id=credit_id, now=now, actor=MGR2)
        violation_id = s.execute(select(B2BViolation.id)).scalar_one()
    with factory.begin() as s:
        rid = billrun.start_bill_run(s, cycle_date=date(2026, 12, 1), now=now, actor=BILLING).id
    billrun.drain_shards(factory, now=now)
    with factory() as s:
        lines = s.execute(select(InvoiceLine).where(InvoiceLine.account_id == acc).order_by(InvoiceLine.id)).scalars().all()
        credit = [ln for ln in lines if ln.pending_charge_id == charge_id]
        assert len(credit) == 1 and credit[0].amount_minor == -500000 and credit[0].kind == "one_off"
        assert f"violation {violation_id}" in credit[0].description
        assert any(ln.kind == "recurring" and ln.amount_minor == 5000000 for ln in lines) and rid


def test_the_services_pnl_shows_the_finalised_bill_with_its_service_credit_apart_and_the_wholesale_cost(factory, now) -> None:
    test_the_approved_credit_is_a_negative_line_on_the_december_draft_bill_pointing_at_its_violation(factory, now)
    with factory.begin() as s:
        rid = s.execute(select(BillRun.id)).scalar_one()
        billrun.open_review(s, bill_run_id=rid, now=now, actor=BILLING)
        billrun.approve_bill_run(s, bill_run_id=rid, now=now, actor=Actor(name="dineo", roles=frozenset({"debtors_manager"})))
        billrun.finalise_bill_run(s, bill_run_id=rid, now=now, actor=Actor(name="dineo", roles=frozenset({"debtors_manager"})))
    with factory() as s:
        acc = s.execute(select(Account.id).where(Account.name == "Blue Crane Freight")).scalar_one()
        r = pnl.services_pnl(s, account_id=acc, last=date(2026, 11, 1), tz=TZ)
    nov = r["months"][-1]
    assert len(r["months"]) == 12 and nov["period"] == date(2026, 11, 1)
    assert (nov["revenue"], nov["service_credits"], nov["wholesale"], nov["margin"]) == (5000000, 500000, 3000000, 1500000)
    assert r["months"][-2]["revenue"] == 0 and r["months"][-2]["wholesale"] == 3000000  # October: cost without a bill in this test
