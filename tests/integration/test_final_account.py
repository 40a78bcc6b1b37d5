"""The final account of terminated products, against a real database (SQLite and PostgreSQL): hand-worked examples,
idempotency (also two at once on PostgreSQL), bad input, and the bill runs never billing a final-billed product again."""

from __future__ import annotations

import threading
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from opsline.billing import billrun
from opsline.billing import final_account as fa
from opsline.billing.invoicing.models import CreditNote, CreditNoteLine
from opsline.billing.models import BillRun, Discount, Invoice, InvoiceLine, LedgerEntry, PendingCharge, RelocationOverlap
from opsline.billing.service import queue_charge
from opsline.catalog.models import Price, ProductOffering
from opsline.core.events import AuditEvent, Actor
from opsline.core.jobs import Job
from opsline.core.money import Money
from opsline.inventory.models import Equipment, Product
from opsline.payments.allocations import capture_payment
from opsline.payments.models import Payment, Refund

from tests.integration.test_billing_runs import finalise, make_account, make_offering, make_product, new, run_draft

NOV, DEC, JAN = date(2026, 11, 1), date(2026, 12, 1), date(2027, 1, 1)
AT_NOV = datetime(2026, 10, 31, 22, 0, tzinfo=timezone.utc)
AT_DEC = datetime(2026, 11, 30, 22, 0, tzinfo=timezone.utc)
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)
ANALYST = Actor(name="bilal", roles=frozenset({"billing_analyst"}))
CLERK = Actor(name="thandi", roles=frozenset({"debtors_clerk"}))


def contract_offering(s, *, monthly_minor: int, months: int = 24, fraction: str = "1") -> int:  # type: ignore[no-untyped-def]
    """A consumer fibre offering on a fixed term whose early-termination rule is `fraction` x the remaining months
    (the seeded CPA "reasonable penalty" cap for consumers is a fifth of them)."""
    oid = make_offering(s, monthly_minor=monthly_minor)
    o = s.get(ProductOffering, oid)
    o.contract_months = months
    s.add(new(Price, NOW, offering_id=oid, kind="early_termination", name="Consumer early cancellation", amount_minor=0, currency="ZAR",
              tax_rate_code="VAT15", charge_event="cancellation", valid_from=date(2020, 1, 1), etc_fraction=Decimal(fraction), applies_to="consumer"))
    s.flush()
    return oid


def billed_in_november(factory, *, monthly_minor=30000, contract=False, start=date(2025, 1, 1), count=1):  # type: ignore[no-untyped-def]
    """`count` accounts with one product each billed for November in advance (the November run finalised)."""
    out = []
    with factory.begin() as s:
        for _ in range(count):
            acc = make_account(s, AT_NOV)
            off = contract_offering(s, monthly_minor=monthly_minor) if contract else make_offering(s, monthly_minor=monthly_minor)
            pid = make_product(s, AT_NOV, account_id=acc, offering_id=off, start=start)
            if contract:
                p = s.get(Product, pid)
                p.contract_months, p.contract_end_date = 24, date(2027, 12, 1)
            out.append((acc, pid))
    finalise(factory, AT_NOV, run_draft(factory, AT_NOV, cycle=NOV))
    return out[0] if count == 1 else out


def terminate(factory, pid, end, state="terminated"):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        p = s.get(Product, pid)
        p.end_date, p.state = end, state


def issue(factory, acc, pids, end, key="k1", **kw):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        return fa.issue(s, account_id=acc, product_ids=pids, end_date=end, reason="customer cancelled: moving abroad", idempotency_key=key,
                        now=NOW, actor=ANALYST, **kw)


def counts(factory):  # type: ignore[no-untyped-def]
    with factory() as s:
        return tuple(int(s.execute(select(func.count()).select_from(m)).scalar_one())
                     for m in (fa.FinalAccount, fa.FinalAccountProduct, Invoice, CreditNote, LedgerEntry, PendingCharge))


def lines_of_invoice(factory, invoice_id):  # type: ignore[no-untyped-def]
    with factory() as s:
        return s.execute(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id).order_by(InvoiceLine.id)).scalars().all()


# ---------------------------------------------------------------------------------------------- hand-worked examples

def test_a_line_ended_mid_period_after_billing_in_advance_gets_a_credit_note_for_the_unused_days(factory, monkeypatch):
    published: list[tuple[str, dict]] = []
    real = fa.domain_events.publish
    monkeypatch.setattr(fa.domain_events, "publish", lambda s, name, payload, **kw: (published.append((name, payload)), real(s, name, payload, **kw)))
    acc, pid = billed_in_november(factory)
    terminate(factory, pid, date(2026, 11, 16))
    with factory() as s:
        q = fa.quote(s, account_id=acc, product_ids=[pid], end_date=date(2026, 11, 16), now=NOW)
    # R300.00 billed for 1-30 November; used 1-15: 15 of 30 days credited = R150.00 + VAT R22.50
    assert [(ln["kind"], ln["amount_minor"], ln["tax_minor"]) for ln in q["lines"]] == [("adjustment", -15000, -2250)]
    assert q["total"] == Money.of("-172.50", "ZAR") and q["document"] == "credit_note"
    out = issue(factory, acc, [pid], date(2026, 11, 16))
    assert out["document"] == "credit_note" and out["number"].startswith("CN-2026-") and out["total_minor"] == -17250
    [(name, payload)] = [p for p in published if p[0] == fa.EVENT]
    assert (payload["account_id"], payload["credit_note_id"], payload["amount_minor"], payload["reference"]) == (acc, out["credit_note_id"], -17250, out["reference"])
    with factory() as s:
        cn = s.get(CreditNote, out["credit_note_id"])
        [line] = s.execute(select(CreditNoteLine).where(CreditNoteLine.credit_note_id == cn.id)).scalars().all()
        billed = s.execute(select(InvoiceLine).where(InvoiceLine.product_id == pid, InvoiceLine.kind == "recurring")).scalar_one()
        assert (cn.subtotal_minor, cn.tax_minor, cn.total_minor) == (15000, 2250, 17250)
        assert line.invoice_line_id == billed.id and cn.invoice_id == billed.invoice_id  # credited against the line it reverses
        entries = s.execute(select(LedgerEntry.kind, LedgerEntry.amount_minor).where(LedgerEntry.account_id == acc).order_by(LedgerEntry.id)).all()
        assert [tuple(e) for e in entries] == [("invoice", 34500), ("credit_note", -17250)]
        assert s.execute(select(AuditEvent.id).where(AuditEvent.entity_type == "final_account", AuditEvent.action == "issued")).first()
    # the December run neither bills the ended line nor credits November again
    run_draft(factory, AT_DEC, cycle=DEC)
    with factory() as s:
        assert s.execute(select(Invoice.id).where(Invoice.account_id == acc, Invoice.period_start == DEC)).first() is None


def test_the_early_termination_fee_is_charged_at_the_consumer_cap_beside_the_credit_on_one_final_invoice(factory):
    acc, pid = billed_in_november(factory, contract=True, start=date(2025, 12, 1))
    terminate(factory, pid, date(2026, 11, 16))
    with factory() as s:
        q = fa.quote(s, account_id=acc, product_ids=[pid], end_date=date(2026, 11, 16), now=NOW)
    [etf] = q["etf"]
    # 13 months left to 1 December 2027; the rule asks all of them (R3,900.00), the CPA cap a fifth: R780.00
    assert etf["fee"] == Money.of("780.00", "ZAR") and etf["capped"]
    out = issue(factory, acc, [pid], date(2026, 11, 16))
    assert out["document"] == "invoice" and out["number"].startswith("INV-2026-")
    lines = lines_of_invoice(factory, out["invoice_id"])
    assert sorted((ln.kind, ln.amount_minor, ln.tax_minor) for ln in lines) == [("adjustment", -15000, -2250), ("one_off", 78000, 11700)]
    with factory() as s:
        inv = s.get(Invoice, out["invoice_id"])
        assert (inv.kind, inv.state, inv.subtotal_minor, inv.tax_minor, inv.total_minor) == ("final", "new", 63000, 9450, 72450)
        assert inv.total_minor == sum(ln.total_minor for ln in lines)
        etf_charge = s.execute(select(PendingCharge).where(PendingCharge.product_id == pid)).scalar_one()
        assert (etf_charge.state, etf_charge.invoice_id, etf_charge.amount_minor) == ("billed", inv.id, 78000)
        jobs = set(s.execute(select(Job.kind).where(Job.idempotency_key.like(f"%:{inv.id}"))).scalars())
        assert {"invoicing.render_pdf", "invoicing.email_invoice"} <= jobs


def test_a_fee_the_termination_order_already_queued_is_billed_once_and_a_waiver_needs_nothing_charged(factory):
    (acc, pid), (acc2, pid2) = billed_in_november(factory, contract=True, start=date(2025, 12, 1), count=2)
    terminate(factory, pid, date(2026, 11, 16))
    with factory.begin() as s:
        queue_charge(s, account_id=acc, product_id=pid, description="Early termination fee (order)", amount=Money.of("780.00", "ZAR"), tax_rate_code="VAT15",
                     reason="order 7", now=NOW, actor=ANALYST, idempotency_key="etf:order_item:7")
    out = issue(factory, acc, [pid], date(2026, 11, 16))
    assert sorted(ln.amount_minor for ln in lines_of_invoice(factory, out["invoice_id"])) == [-15000, 78000]
    terminate(factory, pid2, date(2026, 11, 16))
    out2 = issue(factory, acc2, [pid2], date(2026, 11, 16), key="k2", include_etf=False, waive_etf_reason="retention manager goodwill")
    assert out2["document"] == "credit_note" and out2["total_minor"] == -17250
    with factory() as s:
        assert s.execute(select(AuditEvent.reason).where(AuditEvent.action == "early_termination_fee_waived")).scalar_one() == "retention manager goodwill"


def test_an_unreturned_equipment_fee_queued_for_the_account_is_on_the_final_invoice_and_loaned_equipment_is_shown_at_risk(factory):
    acc, pid = billed_in_november(factory)
    terminate(factory, pid, DEC)
    with factory.begin() as s:
        router = make_offering(s, monthly_minor=0, one_offs=(("unreturned_equipment", 149900),))
        s.add(Equipment(account_id=acc, product_id=pid, kind="router", model="TP-Link EX220", serial_number="SN-FA-1", owner="isp_loaned",
                        state="awaiting_return", offering_id=router, created_at=NOW, updated_at=NOW))
        queue_charge(s, account_id=acc, product_id=pid, description="Unreturned router SN-FA-0", amount=Money.of("1499.00", "ZAR"), tax_rate_code="VAT15",
                     reason="not returned 20 days after deactivation", now=NOW, actor=ANALYST, idempotency_key="unreturned:SN-FA-0")
    with factory() as s:
        q = fa.quote(s, account_id=acc, product_ids=[pid], end_date=DEC, now=NOW)
    [eq] = q["equipment_at_risk"]
    assert (eq["serial_number"], eq["fee"]) == ("SN-FA-1", Money.of("1499.00", "ZAR"))
    # ends exactly at the period end: nothing to credit; only the queued fee
    assert [(ln["group"], ln["amount_minor"], ln["tax_minor"]) for ln in q["lines"]] == [("queued", 149900, 22485)]
    out = issue(factory, acc, [pid], DEC)
    assert out["total"] == Money.of("1723.85", "ZAR")
    with factory() as s:
        c = s.execute(select(PendingCharge).where(PendingCharge.idempotency_key == "unreturned:SN-FA-0")).scalar_one()
        assert (c.state, c.invoice_id) == ("billed", out["invoice_id"])


def test_a_line_billed_with_a_percent_discount_is_credited_at_the_discounted_price_not_the_list_price(factory):
    with factory.begin() as s:
        acc = make_account(s, AT_NOV)
        off = make_offering(s, monthly_minor=30000)
        pid = make_product(s, AT_NOV, account_id=acc, offering_id=off, start=date(2025, 1, 1))
        s.add(Discount(account_id=acc, offering_id=off, kind="percent", value=Decimal("10"), valid_from=date(2020, 1, 1), description="Loyal customer 10%"))
    finalise(factory, AT_NOV, run_draft(factory, AT_NOV, cycle=NOV))  # R300.00 less R30.00 for November
    terminate(factory, pid, date(2026, 11, 16))
    out = issue(factory, acc, [pid], date(2026, 11, 16))
    with factory() as s:
        [line] = s.execute(select(CreditNoteLine).where(CreditNoteLine.credit_note_id == out["credit_note_id"])).scalars().all()
    # paid R270.00 for 30 days; kept 15 days at the discounted price (R135.00): R135.00 credited, not the list R150.00
    assert (line.amount_minor, line.tax_minor) == (13500, 2025)


def test_days_not_yet_billed_up_to_the_end_date_are_charged_and_no_later_run_bills_them_again(factory):
    acc, pid = billed_in_november(factory)
    terminate(factory, pid, date(2026, 12, 10), state="pendingTerminate")
    out = issue(factory, acc, [pid], date(2026, 12, 10))
    [line] = lines_of_invoice(factory, out["invoice_id"])
    # 1-9 December of 31 days at R300.00: round(30000 x 9 / 31) = 8710
    assert (line.kind, str(line.period_start), str(line.period_end), line.amount_minor) == ("recurring", "2026-12-01", "2026-12-10", 8710)
    run_draft(factory, AT_DEC, cycle=DEC)
    with factory() as s:
        assert s.execute(select(Invoice.id).where(Invoice.account_id == acc, Invoice.period_start == DEC, Invoice.kind == "cycle")).first() is None


def test_a_line_that_ended_before_its_first_bill_is_charged_its_days_and_its_one_off_fee(factory):
    with factory.begin() as s:
        acc = make_account(s, AT_NOV)
        off = make_offering(s, monthly_minor=30000, one_offs=(("installation", 99900),))
        pid = make_product(s, AT_NOV, account_id=acc, offering_id=off, start=date(2026, 11, 5), end=date(2026, 11, 20), state="terminated")
    out = issue(factory, acc, [pid], date(2026, 11, 20))
    got = sorted((ln.kind, ln.amount_minor) for ln in lines_of_invoice(factory, out["invoice_id"]))
    assert got == [("one_off", 99900), ("recurring", 15000)]  # 5-19 November: 15 of 30 days


def test_a_net_credit_on_an_account_with_nothing_left_proposes_a_refund_through_payments(factory):
    acc, pid = billed_in_november(factory)
    with factory.begin() as s:  # the customer paid R395.00 by EFT from a known bank account for a R345.00 invoice
        inv = s.execute(select(Invoice).where(Invoice.account_id == acc)).scalar_one()
        paid = capture_payment(s, account_id=acc, amount=Money.of("395.00", "ZAR"), method="eft", received_on=date(2026, 11, 3), now=NOW, actor=CLERK,
                               reference=inv.number, invoice_id=inv.id, payer_name="T Person")
        s.get(Payment, paid["payment_id"]).payer_account = "62001234567"
    terminate(factory, pid, date(2026, 11, 16))
    out = issue(factory, acc, [pid], date(2026, 11, 16))
    assert out["document"] == "credit_note" and out["total_minor"] == -17250
    with factory() as s:
        [r] = s.execute(select(Refund).where(Refund.account_id == acc)).scalars().all()
        # the whole credit balance goes back: the R50.00 overpayment and the final credit note's R172.50 (within the
        # four-eyes limit: approved at once); the account ends at zero
        assert (r.id, r.amount_minor, r.payee_account, r.state) == (out["refund_id"], 22250, "62001234567", "approved")
        assert out["refund_note"] == "refund of ZAR 222.50 approved"
        balance = s.execute(select(func.sum(LedgerEntry.amount_minor)).where(LedgerEntry.account_id == acc)).scalar_one()
        assert balance == 34500 - 39500 - 17250 + 22250 == 0


def test_a_credit_balance_is_kept_while_another_product_of_the_account_is_still_active(factory):
    acc, pid = billed_in_november(factory)
    with factory.begin() as s:
        make_product(s, NOW, account_id=acc, offering_id=s.get(Product, pid).offering_id, start=date(2026, 11, 20))
        inv = s.execute(select(Invoice).where(Invoice.account_id == acc)).scalar_one()
        capture_payment(s, account_id=acc, amount=Money.of("345.00", "ZAR"), method="eft", received_on=date(2026, 11, 3), now=NOW, actor=CLERK,
                        reference=inv.number, invoice_id=inv.id, payer_name="T Person")
    terminate(factory, pid, date(2026, 11, 16))
    out = issue(factory, acc, [pid], date(2026, 11, 16))
    assert out["refund_id"] is None and "still active" in out["refund_note"]


# ---------------------------------------------------------------------------------------------- idempotency

def test_issuing_twice_with_the_same_key_replays_the_first_final_account(factory):
    acc, pid = billed_in_november(factory)
    terminate(factory, pid, date(2026, 11, 16))
    first = issue(factory, acc, [pid], date(2026, 11, 16))
    before = counts(factory)
    again = issue(factory, acc, [pid], date(2026, 11, 16))
    assert again["replayed"] and (again["id"], again["credit_note_id"], again["number"]) == (first["id"], first["credit_note_id"], first["number"])
    assert counts(factory) == before


def test_two_concurrent_repeats_issue_one_final_account(factory, engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    acc, pid = billed_in_november(factory, contract=True, start=date(2025, 12, 1))
    terminate(factory, pid, date(2026, 11, 16))
    barrier = threading.Barrier(2)
    results: list[dict] = []
    errors: list[BaseException] = []

    def go() -> None:
        try:
            with factory.begin() as s:
                barrier.wait()
                results.append(fa.issue(s, account_id=acc, product_ids=[pid], end_date=date(2026, 11, 16), reason="cancelled", idempotency_key="same",
                                        now=NOW, actor=ANALYST))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    ts = [threading.Thread(target=go) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    assert len({r["id"] for r in results}) == 1 and len({r["invoice_id"] for r in results}) == 1
    with factory() as s:
        assert s.execute(select(func.count()).select_from(fa.FinalAccount)).scalar_one() == 1
        assert s.execute(select(func.count()).select_from(Invoice).where(Invoice.kind == "final")).scalar_one() == 1
        assert s.execute(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.ref_type == "invoice", LedgerEntry.account_id == acc)).scalar_one() == 2


def test_two_final_accounts_of_one_product_at_once_issue_one_and_refuse_the_other(factory, engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    acc, pid = billed_in_november(factory)
    terminate(factory, pid, date(2026, 11, 16))
    barrier = threading.Barrier(2)
    results: list[dict] = []
    errors: list[BaseException] = []

    def go(key: str) -> None:
        try:
            with factory.begin() as s:
                barrier.wait()
                results.append(fa.issue(s, account_id=acc, product_ids=[pid], end_date=date(2026, 11, 16), reason="cancelled", idempotency_key=key,
                                        now=NOW, actor=ANALYST))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    ts = [threading.Thread(target=go, args=(k,)) for k in ("journey-1", "by-hand-2")]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(results) == 1 and len(errors) == 1 and isinstance(errors[0], fa.AlreadyFinalBilled) and errors[0].field == "product_ids"
    with factory() as s:
        assert s.execute(select(func.count()).select_from(fa.FinalAccount)).scalar_one() == 1
        assert s.execute(select(func.count()).select_from(CreditNote)).scalar_one() == 1


def test_the_quote_for_a_line_still_active_shows_the_days_to_bill_and_the_fee_before_anything_is_confirmed(factory):
    acc, pid = billed_in_november(factory, contract=True, start=date(2025, 12, 1))
    before = counts(factory)
    with factory() as s:
        q = fa.quote(s, account_id=acc, product_ids=[pid], end_date=date(2026, 12, 31), today=date(2026, 11, 23))
    # December not billed yet: 1-30 December of 31 days = round(30000 x 30 / 31) = 29032; 12 months left, capped at a fifth: R720.00
    assert [(ln["group"], ln["amount_minor"]) for ln in q["lines"]] == [("recurring", 29032), ("fee", 72000)]
    assert q["tax_minor"] == round((29032 + 72000) * 0.15) and q["total_minor"] == 29032 + 72000 + q["tax_minor"]
    assert q["charges_minor"] + q["credits_minor"] == q["total_minor"] and q["document"] == "invoice"
    assert counts(factory) == before


# ---------------------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("case, field", [
    ("end_before_activation", "end_date"),
    ("product_of_another_account", "product_ids"),
    ("still_active", "product_ids"),
    ("end_date_other_than_inventory", "end_date"),
    ("no_reason", "reason"),
    ("no_products", "product_ids"),
])
def test_bad_input_is_refused_naming_the_field_and_nothing_changes(factory, case, field):
    (acc, pid), (other_acc, other_pid) = billed_in_november(factory, count=2)
    end = date(2026, 11, 16)
    if case != "still_active":
        terminate(factory, pid, end)
    kw: dict = {"account_id": acc, "product_ids": [pid], "end_date": end, "reason": "cancelled"}
    if case == "end_before_activation":
        kw["end_date"] = date(2024, 12, 31)
    elif case == "product_of_another_account":
        kw["product_ids"] = [other_pid]
    elif case == "end_date_other_than_inventory":
        kw["end_date"] = date(2026, 11, 20)
    elif case == "no_reason":
        kw["reason"] = "  "
    elif case == "no_products":
        kw["product_ids"] = []
    before = counts(factory)
    with factory() as s, pytest.raises(fa.UnableToFinalBill) as err:
        fa.issue(s, idempotency_key="bad", now=NOW, actor=ANALYST, **kw)
    assert err.value.field == field and err.value.status == 422
    assert counts(factory) == before


def test_a_product_already_final_billed_is_refused_and_nothing_changes(factory):
    acc, pid = billed_in_november(factory)
    terminate(factory, pid, date(2026, 11, 16))
    first = issue(factory, acc, [pid], date(2026, 11, 16))
    before = counts(factory)
    with factory() as s, pytest.raises(fa.AlreadyFinalBilled) as err:
        fa.issue(s, account_id=acc, product_ids=[pid], end_date=date(2026, 11, 16), reason="again", idempotency_key="other", now=NOW, actor=ANALYST)
    assert err.value.field == "product_ids" and first["reference"] in err.value.detail
    with factory() as s, pytest.raises(fa.AlreadyFinalBilled):
        fa.quote(s, account_id=acc, product_ids=[pid], end_date=date(2026, 11, 16), now=NOW)
    assert counts(factory) == before


def test_a_computed_draft_run_holding_the_account_is_recomputed_without_the_final_billed_line_and_its_totals_follow(factory):
    (acc, pid), (other, _) = billed_in_november(factory, count=2)
    with factory.begin() as s:
        queue_charge(s, account_id=acc, product_id=pid, description="Unreturned router", amount=Money.of("1499.00", "ZAR"), tax_rate_code="VAT15",
                     reason="grace period over", now=AT_NOV, actor=ANALYST, idempotency_key="unreturned:draft")
    rid = run_draft(factory, AT_DEC, cycle=DEC)  # December's draft holds the line and the queued charge
    with factory() as s:
        run_before = s.get(BillRun, rid)
        before = (run_before.accounts_count, run_before.subtotal_minor)
        other_total = s.execute(select(Invoice.total_minor).where(Invoice.account_id == other, Invoice.bill_run_id == rid)).scalar_one()
    terminate(factory, pid, date(2026, 11, 16))
    out = issue(factory, acc, [pid], date(2026, 11, 16))
    # the final invoice takes the queued router fee and the November credit: R1,499.00 - R150.00 = R1,349.00 + VAT
    assert sorted(ln.amount_minor for ln in lines_of_invoice(factory, out["invoice_id"])) == [-15000, 149900]
    with factory() as s:
        assert s.execute(select(Invoice.id).where(Invoice.account_id == acc, Invoice.bill_run_id == rid)).first() is None
        run = s.get(BillRun, rid)
        assert (run.accounts_count, run.subtotal_minor) == (before[0] - 1, before[1] - 30000 - 149900)
        assert run.subtotal_minor == s.execute(select(func.sum(Invoice.subtotal_minor)).where(Invoice.bill_run_id == rid)).scalar_one()
        assert s.execute(select(Invoice.total_minor).where(Invoice.account_id == other, Invoice.bill_run_id == rid)).scalar_one() == other_total
    finalise(factory, AT_DEC, rid)  # and finalising it bills nothing twice
    with factory() as s:
        assert s.execute(select(func.count()).select_from(InvoiceLine).where(InvoiceLine.product_id == pid)).scalar_one() == 1 + 2


def test_a_bill_run_in_review_holding_the_account_makes_the_final_account_wait(factory):
    acc, pid = billed_in_november(factory)
    rid = run_draft(factory, AT_DEC, cycle=DEC)
    with factory.begin() as s:
        billrun.open_review(s, bill_run_id=rid, now=AT_DEC, actor=ANALYST)  # the reviewed figures must not move under the reviewer
    terminate(factory, pid, date(2026, 11, 16))
    before = counts(factory)
    with factory() as s, pytest.raises(fa.FinalAccountBlocked) as err:
        fa.issue(s, account_id=acc, product_ids=[pid], end_date=date(2026, 11, 16), reason="cancelled", idempotency_key="k", now=NOW, actor=ANALYST)
    assert err.value.field == "account_id" and "2026-12-01" in err.value.detail and "review" in err.value.detail
    assert counts(factory) == before


def test_an_unknown_account_is_not_found(factory):
    with factory() as s, pytest.raises(fa.NotFound) as err:
        fa.quote(s, account_id=987654, product_ids=[1], end_date=DEC, now=NOW)
    assert err.value.field == "account_id"


# ---------------------------------------------------------------------------------------------- relocations

def _relocate(factory, acc, old, new_start, partner=None, overlap=0):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        p = s.get(Product, old)
        if partner:
            p.partner_code = partner
            if s.get(RelocationOverlap, partner) is None:
                s.add(RelocationOverlap(partner_code=partner, overlap_days=overlap, description="test"))
            s.flush()
        plan = fa.relocation_plan(s, old_product_id=old, new_start_date=new_start)
        p.end_date, p.state = plan["old_end_date"], "terminated"
        new_id = make_product(s, AT_DEC, account_id=acc, offering_id=p.offering_id, start=plan["new_billed_from"], replaces=old)
        s.get(Product, new_id).partner_code = partner
    return plan, new_id


def _billed_by_product(factory, acc, period_start, period_end):  # type: ignore[no-untyped-def]
    """What each product's recurring and adjustment lines for days in [period_start, period_end) add up to."""
    with factory() as s:
        rows = s.execute(select(InvoiceLine.product_id, func.sum(InvoiceLine.amount_minor)).join(Invoice, Invoice.id == InvoiceLine.invoice_id)
                         .where(InvoiceLine.account_id == acc, InvoiceLine.kind.in_(("recurring", "adjustment")),
                                InvoiceLine.period_start >= period_start, InvoiceLine.period_start < period_end)
                         .group_by(InvoiceLine.product_id)).all()
    return {int(p): int(a) for p, a in rows}


def test_a_relocation_inside_a_billed_month_is_billed_neither_twice_nor_never_across_the_bill_run_boundary(factory):
    acc, old = billed_in_november(factory, monthly_minor=59999)
    plan, new_id = _relocate(factory, acc, old, date(2026, 11, 17))
    assert (plan["old_end_date"], plan["old_last_billed_day"], plan["overlap_days"]) == (date(2026, 11, 17), date(2026, 11, 16), 0)
    finalise(factory, AT_DEC, run_draft(factory, AT_DEC, cycle=DEC))
    nov = _billed_by_product(factory, acc, NOV, DEC)
    assert nov[old] + nov[new_id] == 59999  # one month of service in November, split at the move: no gap, no overlap
    assert nov[old] == round(59999 * 16 / 30)
    finalise(factory, datetime(2026, 12, 31, 22, 0, tzinfo=timezone.utc), run_draft(factory, datetime(2026, 12, 31, 22, 0, tzinfo=timezone.utc), cycle=JAN))
    assert _billed_by_product(factory, acc, NOV, DEC) == nov  # the January run settles nothing twice
    assert _billed_by_product(factory, acc, DEC, JAN) == {new_id: 59999}


def test_a_relocation_on_the_bill_day_bills_the_old_line_to_the_day_before_and_the_new_one_from_the_run(factory):
    acc, old = billed_in_november(factory, monthly_minor=30000)
    plan, new_id = _relocate(factory, acc, old, DEC)
    finalise(factory, AT_DEC, run_draft(factory, AT_DEC, cycle=DEC))
    assert _billed_by_product(factory, acc, NOV, DEC) == {old: 30000}
    assert _billed_by_product(factory, acc, DEC, JAN) == {new_id: 30000}


def test_a_configured_partner_overlap_bills_both_lines_for_exactly_those_days(factory):
    acc, old = billed_in_november(factory, monthly_minor=30000)
    plan, new_id = _relocate(factory, acc, old, date(2026, 11, 17), partner="octotel", overlap=3)
    assert (plan["overlap_days"], plan["old_billed_to"]) == (3, date(2026, 11, 20))
    finalise(factory, AT_DEC, run_draft(factory, AT_DEC, cycle=DEC))
    nov = _billed_by_product(factory, acc, NOV, DEC)
    assert nov[old] == 19000 and nov[new_id] == 14000  # old 1-19 Nov, new 17-30 Nov: 17, 18, 19 billed twice by design
    assert nov[old] + nov[new_id] - 30000 == 3 * 1000


def test_a_relocation_plan_refuses_a_new_line_starting_before_the_old_one(factory):
    acc, old = billed_in_november(factory)
    with factory() as s, pytest.raises(fa.UnableToFinalBill) as err:
        fa.relocation_plan(s, old_product_id=old, new_start_date=date(2024, 1, 1))
    assert err.value.field == "new_start_date"


def test_the_clean_up_check_lists_a_terminated_line_still_billed_until_a_credit_or_final_account_settles_it(factory):
    (acc, pid), (acc2, pid2) = billed_in_november(factory, count=2)
    terminate(factory, pid, date(2026, 11, 16))
    terminate(factory, pid2, date(2026, 11, 20))
    with factory() as s:
        found = {r["product_id"]: r for r in fa.terminated_still_billed(s)}
    assert set(found) == {pid, pid2} and found[pid]["billed_to"] == DEC and found[pid]["end_date"] == date(2026, 11, 16)
    issue(factory, acc, [pid], date(2026, 11, 16))  # the final account settles one; the December run's credit the other
    with factory() as s:
        assert [r["product_id"] for r in fa.terminated_still_billed(s)] == [pid2]
    finalise(factory, AT_DEC, run_draft(factory, AT_DEC, cycle=DEC))
    with factory() as s:
        assert fa.terminated_still_billed(s) == []
