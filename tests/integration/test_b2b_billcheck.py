"""B2B billing peer review: a B2B draft invoice that differs from its contract, or misses an approved service credit,
holds the bill run's approval until a reviewer other than its starter signs each difference off."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from opsline.b2b import billcheck, service
from opsline.b2b.models import B2BBillCheck
from opsline.billing import billrun
from opsline.billing.models import BillRun
from opsline.catalog.models import Price, ProductOffering
from opsline.core.events import Actor
from opsline.core.money import Money
from opsline.customers.models import Account, Party
from opsline.inventory.models import Product

STARTER = Actor(name="bilal", roles=frozenset({"billing_analyst"}))
APPROVER = Actor(name="dineo", roles=frozenset({"debtors_manager"}))
REVIEWER = Actor(name="sarah", roles=frozenset({"service_manager"}))


def _row(model, now, **kw):  # type: ignore[no-untyped-def]
    from sqlalchemy import Boolean, Date, Integer, Numeric, String, Text

    for col in model.__table__.columns:
        if col.name in kw or col.nullable or col.primary_key or col.default is not None or col.server_default is not None:
            continue
        t = col.type
        kw[col.name] = ("x" if isinstance(t, (String, Text)) else False if isinstance(t, Boolean) else date(2020, 1, 1) if isinstance(t, Date)
                        else 0 if isinstance(t, (Integer, Numeric)) else now)
    return model(**kw)


def _b2b_run(factory, now, *, contract_value: str) -> int:  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        p = Party(kind="organisation", name="Fynbos Insurance", created_at=now)
        s.add(p)
        s.flush()
        a = Account(account_number=f"B{p.id:09d}", party_id=p.id, name="Fynbos Insurance", kind="b2b", status="active", segment_code="enterprise",
                    value_tier_code="standard", currency="ZAR", bill_cycle_day=1, payment_terms_days=30, created_at=now, updated_at=now)
        s.add(a)
        s.flush()
        o = _row(ProductOffering, now, code="T-B2B-SDWAN", name="SD-WAN branch", kind="b2b_link", contract_months=0)
        s.add(o)
        s.flush()
        s.add(_row(Price, now, offering_id=o.id, kind="recurring", name="Monthly", amount_minor=5000000, currency="ZAR", tax_rate_code="VAT15",
                   charge_event="monthly", valid_from=date(2020, 1, 1)))
        s.add(_row(Product, now, account_id=a.id, offering_id=o.id, state="active", start_date=date(2026, 1, 1), contract_months=0, created_at=now, updated_at=now))
        service.create_contract(s, account_id=a.id, name="Branches", valid_from=date(2026, 1, 1), valid_to=None, monthly_value=Money.of(contract_value, "ZAR"),
                                credit_cap=Money.of("5000", "ZAR"), terms=None, now=now, actor=REVIEWER)
    with factory.begin() as s:
        rid = billrun.start_bill_run(s, cycle_date=date(2026, 12, 1), now=now, actor=STARTER).id
    billrun.drain_shards(factory, now=now)
    with factory.begin() as s:
        billrun.open_review(s, bill_run_id=rid, now=now, actor=STARTER)
    return int(rid)


def test_a_difference_from_the_contract_holds_approval_until_a_second_reviewer_signs_it_off(factory, now) -> None:
    rid = _b2b_run(factory, now, contract_value="45000")
    with factory() as s:
        check = s.execute(select(B2BBillCheck)).scalar_one()
        assert (check.kind, check.expected_minor, check.actual_minor, check.state) == ("vs_contract", 4500000, 5000000, "open")
    with pytest.raises(billcheck.PeerReviewOpen) as held:
        with factory.begin() as s:
            billrun.approve_bill_run(s, bill_run_id=rid, now=now, actor=APPROVER)
    assert held.value.field == "bill_run_id" and "1 B2B billing difference" in str(held.value)
    with factory() as s:
        assert s.get(BillRun, rid).state == "review"  # the refused approval changed nothing
    with pytest.raises(billcheck.SignOffNotAllowed):
        with factory.begin() as s:
            billcheck.sign_off(s, check_id=check.id, note="price rise agreed", now=now, actor=STARTER)
    with pytest.raises(billcheck.UnableToSignOff) as no_note:
        with factory.begin() as s:
            billcheck.sign_off(s, check_id=check.id, note=" ", now=now, actor=REVIEWER)
    assert no_note.value.field == "note"
    with factory.begin() as s:
        billcheck.sign_off(s, check_id=check.id, note="Second branch added by change request CR-000012", now=now, actor=REVIEWER)
    with factory.begin() as s:
        billrun.approve_bill_run(s, bill_run_id=rid, now=now, actor=APPROVER)
    with factory() as s:
        assert s.get(BillRun, rid).state == "approved"


def test_an_invoice_that_matches_its_contract_needs_no_sign_off(factory, now) -> None:
    rid = _b2b_run(factory, now, contract_value="50000")
    with factory() as s:
        assert s.execute(select(B2BBillCheck)).first() is None
    with factory.begin() as s:
        billrun.approve_bill_run(s, bill_run_id=rid, now=now, actor=APPROVER)
