"""Billing at the edges of service: terminations and relocations recorded after billing are credited on the next bill,
queued early-termination charges reach the final bill, suspension follows the policy, reconnection charges the fee."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from sqlalchemy import func, select

from opsline.billing import suspension
from opsline.billing.models import AccountSuspension, BillingSetting, Invoice, InvoiceLine, PendingCharge
from opsline.billing.service import queue_charge
from opsline.catalog.models import Price
from opsline.core import domain_events
from opsline.core.domain_events import DomainEvent
from opsline.core.events import Actor
from opsline.core.money import Money
from opsline.inventory.models import Product

from tests.integration.test_billing_runs import STARTER, finalise, make_account, make_offering, make_product, new, run_draft

NOV, DEC, JAN = date(2026, 11, 1), date(2026, 12, 1), date(2027, 1, 1)
AT_NOV = datetime(2026, 10, 31, 22, 0, tzinfo=timezone.utc)
AT_DEC = datetime(2026, 11, 30, 22, 0, tzinfo=timezone.utc)
SYSTEM = Actor.system("test")


def bill_november(factory, build):  # type: ignore[no-untyped-def]
    """Products as they were at the November run, billed and finalised; returns what `build` returned."""
    with factory.begin() as s:
        out = build(s)
    finalise(factory, AT_NOV, run_draft(factory, AT_NOV, cycle=NOV))
    return out


def december_lines(factory, account_id):  # type: ignore[no-untyped-def]
    with factory() as s:
        inv = s.execute(select(Invoice).where(Invoice.account_id == account_id, Invoice.period_start == DEC)).scalar_one_or_none()
        lines = [] if inv is None else s.execute(select(InvoiceLine).where(InvoiceLine.invoice_id == inv.id).order_by(InvoiceLine.id)).scalars().all()
        return inv, lines


def end_product(factory, product_id, end):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        p = s.get(Product, product_id)
        p.end_date, p.state = end, "terminated"


@pytest.mark.parametrize("end, credited_days, credit", [
    (date(2026, 11, 16), 15, -15000),   # mid-month: 15 of 30 days back
    (NOV, 30, -30000),                  # terminated on the first day of the period billed: all of it back
    (date(2026, 11, 30), 1, -1000),     # the last day of the period is not used
    (DEC, 0, 0),                        # ends exactly at the period end: nothing to credit
])
def test_a_termination_recorded_after_billing_in_advance_is_credited_pro_rata_on_the_next_bill(factory, end, credited_days, credit):
    acc, prod = bill_november(factory, lambda s: (lambda a: (a, make_product(s, AT_NOV, account_id=a, offering_id=make_offering(s, monthly_minor=30000),
                                                                             start=date(2025, 1, 1))))(make_account(s, AT_NOV)))
    end_product(factory, prod, end)
    run_draft(factory, AT_DEC, cycle=DEC)
    inv, lines = december_lines(factory, acc)
    if credit == 0:
        assert inv is None and lines == []
        return
    [line] = lines
    assert (line.kind, line.product_id, line.amount_minor) == ("adjustment", prod, credit)
    assert line.description.startswith("Credit: ") and f"Service ended {end.isoformat()}" in line.explanation
    assert f"{30 - credited_days} active of 30 days" in line.explanation
    assert str(line.period_start) == max(end, NOV).isoformat() and str(line.period_end) == DEC.isoformat()
    assert inv.total_minor == line.total_minor == credit + line.tax_minor and line.tax_minor == round(credit * 0.15)


def test_a_relocation_recorded_after_billing_credits_the_old_line_from_the_move_and_bills_the_new_one_from_it(factory):
    def build(s):  # type: ignore[no-untyped-def]
        acc = make_account(s, AT_NOV)
        return acc, make_product(s, AT_NOV, account_id=acc, offering_id=make_offering(s, monthly_minor=59999), start=date(2025, 3, 1))

    acc, old = bill_november(factory, build)
    with factory.begin() as s:  # the move on 17 November is recorded after the November bill went out
        p = s.get(Product, old)
        p.end_date, p.state = date(2026, 11, 17), "terminated"
        new_id = make_product(s, AT_DEC, account_id=acc, offering_id=p.offering_id, start=date(2026, 11, 17), replaces=old)
    run_draft(factory, AT_DEC, cycle=DEC)
    _, lines = december_lines(factory, acc)
    credit = [ln for ln in lines if ln.product_id == old]
    catch_up = [ln for ln in lines if ln.product_id == new_id and str(ln.period_start) < DEC.isoformat()]
    ahead = [ln for ln in lines if ln.product_id == new_id and str(ln.period_start) == DEC.isoformat()]
    assert len(credit) == len(catch_up) == len(ahead) == 1
    assert str(credit[0].period_start) == str(catch_up[0].period_start) == "2026-11-17"  # no gap, no overlap
    # November in total: billed 59999 for the old line, credited from the move, caught up on the new: exactly one month
    assert 59999 + credit[0].amount_minor + catch_up[0].amount_minor == 59999
    assert ahead[0].amount_minor == 59999
    # and nothing is corrected twice: the January run finds November already settled
    finalise(factory, AT_DEC, run_draft_ids(factory, DEC))
    run_draft(factory, datetime(2026, 12, 31, 22, 0, tzinfo=timezone.utc), cycle=JAN)
    with factory() as s:
        jan = s.execute(select(InvoiceLine).join(Invoice, Invoice.id == InvoiceLine.invoice_id).where(Invoice.period_start == JAN, Invoice.account_id == acc)).scalars().all()
    assert [(ln.product_id, ln.kind, ln.amount_minor) for ln in jan] == [(new_id, "recurring", 59999)]


def run_draft_ids(factory, cycle):  # type: ignore[no-untyped-def]
    from opsline.billing.models import BillRun

    with factory() as s:
        return s.execute(select(BillRun.id).where(BillRun.cycle_date == cycle, BillRun.state == "draft")).scalar_one()


def test_an_early_termination_charge_queued_by_orders_appears_on_the_final_bill(factory):
    def build(s):  # type: ignore[no-untyped-def]
        acc = make_account(s, AT_NOV)
        return acc, make_product(s, AT_NOV, account_id=acc, offering_id=make_offering(s, monthly_minor=40000), start=date(2025, 6, 1))

    acc, prod = bill_november(factory, build)
    end_product(factory, prod, date(2026, 11, 21))
    with factory.begin() as s:
        queue_charge(s, account_id=acc, product_id=prod, description="Early termination: 8 of 24 months remaining (capped)", amount=Money.of("1200.00", "ZAR"),
                     tax_rate_code="VAT15", reason="cancelled 16 months into a 24-month contract", now=AT_NOV, actor=STARTER, idempotency_key=f"etf:{prod}")
    run_draft(factory, AT_DEC, cycle=DEC)
    inv, lines = december_lines(factory, acc)
    kinds = sorted((ln.kind, ln.amount_minor) for ln in lines)
    assert kinds == [("adjustment", -13333), ("one_off", 120000)]  # 10 of 30 days credited, the fee charged
    assert inv.subtotal_minor == 120000 - 13333 and inv.total_minor == sum(ln.total_minor for ln in lines)
    with factory() as s:
        assert s.execute(select(PendingCharge.invoice_id).where(PendingCharge.account_id == acc)).scalar_one() == inv.id


def _event(name, account_id, at, **extra):  # type: ignore[no-untyped-def]
    return DomainEvent(name=name, payload={"id": account_id, "account_id": account_id, **extra}, occurred_at=at, actor=SYSTEM)


def _policy(factory, value):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        s.get(BillingSetting, "suspension_policy").value = value


def test_under_no_charge_suspended_days_are_credited_and_reconnection_charges_the_fee_once(factory):
    _policy(factory, "no_charge")
    with factory.begin() as s:
        acc = make_account(s, AT_DEC)
        off = make_offering(s, monthly_minor=31000)
        s.add(new(Price, AT_DEC, offering_id=off, kind="one_off", name="Reconnection fee", amount_minor=25000, currency="ZAR", tax_rate_code="VAT15",
                  charge_event="reconnection", valid_from=date(2020, 1, 1)))
        prod = make_product(s, AT_DEC, account_id=acc, offering_id=off, start=date(2025, 1, 1))
        # suspended on 10 December (local), still suspended when the December run is computed
        suspension.on_account_suspended(s, _event("account.suspended", acc, datetime(2026, 12, 10, 8, 0, tzinfo=timezone.utc)), AT_DEC)
    run_draft(factory, datetime(2026, 12, 10, 9, 0, tzinfo=timezone.utc), cycle=DEC)
    _, lines = december_lines(factory, acc)
    by_kind = {ln.kind: ln for ln in lines}
    assert by_kind["recurring"].amount_minor == 31000
    assert by_kind["adjustment"].amount_minor == -22000  # 10 Dec to 31 Dec: 22 of 31 days
    assert "Suspended 2026-12-10 to 2026-12-31" in by_kind["adjustment"].explanation
    at = datetime(2026, 12, 20, 8, 0, tzinfo=timezone.utc)
    with factory.begin() as s:
        ev = _event("account.active", acc, at, action="reconnect", **{"from": "suspended"})
        suspension.on_account_active(s, ev, at)
        suspension.on_account_active(s, ev, at)  # a repeat queues nothing more
        row = s.execute(select(AccountSuspension).where(AccountSuspension.account_id == acc)).scalar_one()
        assert (row.suspended_on, row.resumed_on) == (date(2026, 12, 10), date(2026, 12, 20))
        fees = s.execute(select(PendingCharge).where(PendingCharge.account_id == acc)).scalars().all()
        assert [(f.product_id, f.amount_minor, f.state) for f in fees] == [(prod, 25000, "pending")]
        assert s.get(Product, prod).state == "active"


def test_under_charge_policy_suspension_changes_nothing_on_the_bill(factory):
    _policy(factory, "charge")
    with factory.begin() as s:
        acc = make_account(s, AT_DEC)
        make_product(s, AT_DEC, account_id=acc, offering_id=make_offering(s, monthly_minor=31000), start=date(2025, 1, 1))
        suspension.record_suspension(s, account_id=acc, on=date(2026, 12, 1), now=AT_DEC, actor=SYSTEM)
    run_draft(factory, AT_DEC, cycle=DEC)
    _, lines = december_lines(factory, acc)
    assert [(ln.kind, ln.amount_minor) for ln in lines] == [("recurring", 31000)]


def test_reconnection_fee_waived_by_policy_is_not_queued(factory):
    with factory.begin() as s:
        s.merge(BillingSetting(key="reconnection_fee_policy", value="waive", value_type="str", description="test"))
        acc = make_account(s, AT_DEC)
        off = make_offering(s, monthly_minor=31000, one_offs=[("reconnection", 25000)])
        make_product(s, AT_DEC, account_id=acc, offering_id=off, start=date(2025, 1, 1))
        suspension.record_suspension(s, account_id=acc, on=date(2026, 12, 1), now=AT_DEC, actor=SYSTEM)
        out = suspension.record_reconnection(s, account_id=acc, on=date(2026, 12, 5), now=AT_DEC, actor=SYSTEM)
        assert out["charges"] == [] and s.execute(select(func.count()).select_from(PendingCharge)).scalar_one() == 0


def test_a_suspension_published_by_the_account_lifecycle_reaches_billing(factory):
    if "account.suspended" not in domain_events.declared_events():
        pytest.skip("the account lifecycle is not declared yet")
    with factory.begin() as s:
        acc = make_account(s, AT_DEC)
        domain_events.publish(s, "account.suspended", {"id": acc, "account_id": acc, "action": "suspend", "from": "active", "to": "suspended"},
                              now=AT_DEC, actor=SYSTEM)
        assert s.execute(select(AccountSuspension.suspended_on).where(AccountSuspension.account_id == acc)).scalar_one() == date(2026, 12, 1)


def test_a_partner_with_a_relocation_overlap_bills_both_lines_for_those_days_and_no_more(factory):
    from opsline.billing.models import RelocationOverlap

    def build(s):  # type: ignore[no-untyped-def]
        s.add(RelocationOverlap(partner_code="OVERLAPNET", overlap_days=3, description="bills the old line 3 days past a move"))
        acc = make_account(s, AT_NOV)
        old = make_product(s, AT_NOV, account_id=acc, offering_id=make_offering(s, monthly_minor=30000), start=date(2025, 3, 1))
        s.get(Product, old).partner_code = "OVERLAPNET"
        return acc, old

    acc, old = bill_november(factory, build)
    with factory.begin() as s:
        p = s.get(Product, old)
        p.end_date, p.state = date(2026, 11, 11), "terminated"
        new_id = make_product(s, AT_DEC, account_id=acc, offering_id=p.offering_id, start=date(2026, 11, 11), replaces=old)
    run_draft(factory, AT_DEC, cycle=DEC)
    _, lines = december_lines(factory, acc)
    [credit] = [ln for ln in lines if ln.product_id == old]
    [catch_up] = [ln for ln in lines if ln.product_id == new_id and str(ln.period_start) < DEC.isoformat()]
    assert credit.amount_minor == -17000  # credited from 14 November (move + 3 days): 17 of 30 days
    assert catch_up.amount_minor == 20000 and str(catch_up.period_start) == "2026-11-11"  # new line from the move: 20 of 30 days


def test_tax_rates_come_from_billing_by_code_and_date_and_bad_codes_are_refused(session):
    from opsline.billing.tax import UnknownTaxRate, rate_for, rates_on

    assert str(rate_for(session, code="VAT15", on=date(2026, 2, 28))) == "0.1500"
    assert rates_on(session, on=date(2028, 2, 29))["ZERO"] == 0
    with pytest.raises(UnknownTaxRate, match="unknown tax rate 'VAT99'"):
        rate_for(session, code="VAT99", on=date(2026, 12, 1))
    with pytest.raises(UnknownTaxRate, match="not valid on 2017-01-01"):
        rate_for(session, code="VAT15", on=date(2017, 1, 1))


def test_queue_charge_refuses_bad_input_and_changes_nothing(factory):
    from opsline.billing.service import UnableToQueueCharge

    with factory.begin() as s:
        acc = make_account(s, AT_DEC)
    for kwargs, match in ((dict(amount=Money.of("10", "USD")), "billed in ZAR"), (dict(tax_rate_code="NOPE"), "unknown tax rate"),
                          (dict(description="  "), "description is required")):
        args = dict(account_id=acc, product_id=None, description="Reconnection fee", amount=Money.of("250", "ZAR"), tax_rate_code="VAT15",
                    reason="test", now=AT_DEC, actor=STARTER, idempotency_key=f"bad:{match}") | kwargs
        with factory.begin() as s, pytest.raises(UnableToQueueCharge, match=match):
            queue_charge(s, **args)
    with factory() as s:
        assert s.execute(select(func.count()).select_from(PendingCharge)).scalar_one() == 0


def test_suspending_and_reconnecting_an_account_through_its_lifecycle_records_the_days_and_queues_the_fee(factory):
    from opsline.customers import service as customers

    if "account.active" not in domain_events.declared_events():
        pytest.skip("the account lifecycle is not declared yet")
    with factory.begin() as s:
        acc = make_account(s, AT_DEC)
        off = make_offering(s, monthly_minor=31000, one_offs=[("reconnection", 25000)])
        prod = make_product(s, AT_DEC, account_id=acc, offering_id=off, start=date(2025, 1, 1))
    boss = Actor(name="dineo", roles=frozenset({"admin"}))
    with factory.begin() as s:
        customers.transition_account(s, account_id=acc, action="suspend", now=datetime(2026, 12, 3, 8, 0, tzinfo=timezone.utc), actor=boss,
                                     reason="arrears 60 days")
    with factory.begin() as s:
        customers.transition_account(s, account_id=acc, action="reconnect", now=datetime(2026, 12, 9, 8, 0, tzinfo=timezone.utc), actor=boss,
                                     reason="paid in full")
    with factory() as s:
        row = s.execute(select(AccountSuspension).where(AccountSuspension.account_id == acc)).scalar_one()
        assert (row.suspended_on, row.resumed_on) == (date(2026, 12, 3), date(2026, 12, 9))
        fees = s.execute(select(PendingCharge).where(PendingCharge.account_id == acc)).scalars().all()
        assert [(f.product_id, f.amount_minor) for f in fees] == [(prod, 25000)]
