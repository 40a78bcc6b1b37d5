"""Credit notes are capped on the whole invoice (net of discount lines and earlier credits) as well as per line."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from opsline.billing.invoicing import service
from opsline.billing.invoicing.credits import CreditExceedsInvoiced, UnableToCredit, creditable_on_invoice
from opsline.billing.invoicing.models import CreditNote
from opsline.billing.invoicing.samples import make_account, make_finalised_invoice
from opsline.billing.models import Invoice, InvoiceLine, LedgerEntry
from opsline.core.errors import OpslineError
from opsline.core.money import Money


def _invoice(session, now, lines):  # type: ignore[no-untyped-def]
    acc = make_account(session, now=now)
    inv_id = make_finalised_invoice(session, account_id=acc, now=now, period_start=date(2026, 11, 1), period_end=date(2026, 12, 1), lines=lines)
    ids = session.execute(select(InvoiceLine.id).where(InvoiceLine.invoice_id == inv_id).order_by(InvoiceLine.id)).scalars().all()
    return acc, inv_id, ids


def _credited(session, inv_id: int) -> int:  # type: ignore[no-untyped-def]
    return int(session.execute(select(func.coalesce(func.sum(CreditNote.total_minor), 0)).where(CreditNote.invoice_id == inv_id)).scalar_one())


def test_a_discounted_invoice_cannot_be_credited_for_more_than_its_total(session, now, actor):
    acc, inv_id, (fibre, discount) = _invoice(session, now, [
        {"description": "Fibre 100/100", "amount_minor": 80000},
        {"description": "Loyalty 50% off", "amount_minor": -40000, "kind": "discount"},
    ])
    inv = session.get(Invoice, inv_id)
    assert inv.total_minor == 46000
    # the fibre line alone was R920.00 incl. VAT, but the invoice is R460.00: the whole-invoice cap wins
    with pytest.raises(CreditExceedsInvoiced, match="at most R ?460.00|at most ZAR ?460.00|460.00"):
        service.credit_line(session, invoice_line_id=fibre, amount=Money.of("920.00", "ZAR"), reason="Outage", now=now, actor=actor)
    assert _credited(session, inv_id) == 0
    cn = service.credit_invoice(session, invoice_id=inv_id, reason="Cancelled within cooling-off", now=now, actor=actor)
    assert cn.total_minor == 46000 and creditable_on_invoice(session, invoice_id=inv_id) == 0


def test_crediting_an_already_fully_credited_discounted_invoice_is_refused_and_changes_nothing(session, now, actor):
    acc, inv_id, (fibre, _discount) = _invoice(session, now, [
        {"description": "Fibre 100/100", "amount_minor": 80000},
        {"description": "Loyalty 50% off", "amount_minor": -40000, "kind": "discount"},
    ])
    service.credit_invoice(session, invoice_id=inv_id, reason="Full credit", now=now, actor=actor)
    notes = session.execute(select(func.count()).select_from(CreditNote)).scalar_one()
    ledger = session.execute(select(func.count()).select_from(LedgerEntry)).scalar_one()
    with pytest.raises(CreditExceedsInvoiced, match="nothing left to credit"):
        service.credit_invoice(session, invoice_id=inv_id, reason="Again", now=now, actor=actor)
    with pytest.raises(CreditExceedsInvoiced):
        service.credit_line(session, invoice_line_id=fibre, amount=Money.of("0.01", "ZAR"), reason="Again", now=now, actor=actor)
    assert session.execute(select(func.count()).select_from(CreditNote)).scalar_one() == notes
    assert session.execute(select(func.count()).select_from(LedgerEntry)).scalar_one() == ledger
    assert _credited(session, inv_id) == 46000


def test_a_discount_line_itself_cannot_be_credited(session, now, actor):
    _acc, inv_id, (_fibre, discount) = _invoice(session, now, [
        {"description": "Fibre", "amount_minor": 50000}, {"description": "Promo", "amount_minor": -10000, "kind": "discount"}])
    with pytest.raises(CreditExceedsInvoiced):
        service.credit_line(session, invoice_line_id=discount, amount=Money.of("1.00", "ZAR"), reason="x", now=now, actor=actor)


invoices = st.tuples(
    st.lists(st.integers(100, 200_000), min_size=1, max_size=4),              # charged lines (ex VAT)
    st.lists(st.integers(1, 100), max_size=2),                                # discounts, as percent of the charges
    st.lists(st.tuples(st.integers(0, 5), st.integers(1, 250_000), st.booleans()), min_size=1, max_size=6),  # credits: line, amount, whole invoice
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(invoices)
def test_total_credited_never_exceeds_total_invoiced(session, now, actor, case):  # type: ignore[no-untyped-def]
    charges, discounts, credits = case
    base = sum(charges)
    lines = [{"description": f"Charge {i}", "amount_minor": a} for i, a in enumerate(charges)]
    lines += [{"description": f"Discount {p}%", "amount_minor": -(base * p // 100 // max(1, len(discounts))), "kind": "discount"} for p in discounts]
    _acc, inv_id, ids = _invoice(session, now, lines)
    total = session.get(Invoice, inv_id).total_minor
    for idx, amount, whole in credits:
        try:
            if whole:
                service.credit_invoice(session, invoice_id=inv_id, reason="random", now=now, actor=actor)
            else:
                service.credit_line(session, invoice_line_id=ids[idx % len(ids)], amount=Money.from_minor(amount, "ZAR"), reason="random", now=now, actor=actor)
        except (CreditExceedsInvoiced, UnableToCredit):
            pass
        credited = _credited(session, inv_id)
        assert 0 <= credited <= max(total, 0)
    assert creditable_on_invoice(session, invoice_id=inv_id) == max(0, total - _credited(session, inv_id))
    session.rollback()


def test_bad_credit_input_is_an_opsline_error(session, now, actor):
    _acc, inv_id, (fibre,) = _invoice(session, now, [{"description": "Fibre", "amount_minor": 50000}])
    with pytest.raises(OpslineError):
        service.credit_line(session, invoice_line_id=fibre, amount=Money.of("-1", "ZAR"), reason="x", now=now, actor=actor)
