"""Credit notes, gapless numbering, claims and re-rating against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from opsline.billing.invoicing import service
from opsline.billing.invoicing.claims import ClaimExceedsLine, ClaimTransitionNotAllowed, UnableToDecideClaim, UnableToRaiseClaim
from opsline.billing.invoicing.credits import CreditExceedsInvoiced, UnableToCredit
from opsline.billing.invoicing.invoices import InvoiceTransitionNotAllowed
from opsline.billing.invoicing.models import BillingClaim, CreditNote
from opsline.billing.invoicing.samples import make_account, make_finalised_invoice, make_mobile_product
from opsline.billing.models import Invoice, InvoiceLine, LedgerEntry
from opsline.core.jobs import Job
from opsline.core.money import Money


def zar(v: str) -> Money:
    return Money.of(v, "ZAR")


@pytest.fixture
def invoice(session, now):  # type: ignore[no-untyped-def]
    acc = make_account(session, now=now)
    inv_id = make_finalised_invoice(session, account_id=acc, now=now, period_start=date(2026, 11, 1), period_end=date(2026, 12, 1), lines=[
        {"description": "Fibre 100/100 Mbps", "amount_minor": 80000},
        {"description": "Router rental", "amount_minor": 10000},
    ])
    session.commit()
    lines = session.execute(select(InvoiceLine.id).where(InvoiceLine.invoice_id == inv_id).order_by(InvoiceLine.id)).scalars().all()
    return {"account_id": acc, "invoice_id": inv_id, "lines": lines}


def balance(session, account_id: int) -> int:  # type: ignore[no-untyped-def]
    return session.execute(select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0)).where(LedgerEntry.account_id == account_id)).scalar_one()


def test_partial_credit_posts_a_negative_ledger_entry_and_splits_vat(session, now, actor, invoice):  # type: ignore[no-untyped-def]
    before = balance(session, invoice["account_id"])
    cn = service.credit_line(session, invoice_line_id=invoice["lines"][0], amount=zar("115.00"), reason="Outage 3 days", now=now, actor=actor)
    session.commit()
    assert cn.number == f"CN-{now.year}-00000001"
    assert (cn.subtotal_minor, cn.tax_minor, cn.total_minor) == (10000, 1500, 11500)
    assert balance(session, invoice["account_id"]) == before - 11500


def test_credit_beyond_invoiced_minus_credited_is_refused_and_nothing_changes(session, now, actor, invoice):  # type: ignore[no-untyped-def]
    line = invoice["lines"][1]  # 100.00 + 15.00 VAT
    service.credit_line(session, invoice_line_id=line, amount=zar("100.00"), reason="Goodwill", now=now, actor=actor)
    session.commit()
    before = balance(session, invoice["account_id"])
    with pytest.raises(CreditExceedsInvoiced, match="at most ZAR 15.00"):
        service.credit_line(session, invoice_line_id=line, amount=zar("15.01"), reason="Again", now=now, actor=actor)
    session.rollback()
    assert session.execute(select(func.count()).select_from(CreditNote)).scalar_one() == 1
    assert balance(session, invoice["account_id"]) == before


def test_credit_without_a_reason_or_with_zero_is_refused(session, now, actor, invoice):  # type: ignore[no-untyped-def]
    with pytest.raises(UnableToCredit, match="reason"):
        service.credit_line(session, invoice_line_id=invoice["lines"][0], amount=zar("10"), reason="  ", now=now, actor=actor)
    with pytest.raises(UnableToCredit, match="more than zero"):
        service.credit_line(session, invoice_line_id=invoice["lines"][0], amount=zar("0"), reason="x", now=now, actor=actor)
    session.rollback()
    assert session.execute(select(func.count()).select_from(CreditNote)).scalar_one() == 0


def test_whole_invoice_credit_takes_what_is_left_and_then_nothing_more(session, now, actor, invoice):  # type: ignore[no-untyped-def]
    service.credit_line(session, invoice_line_id=invoice["lines"][0], amount=zar("20.00"), reason="part", now=now, actor=actor)
    cn = service.credit_invoice(session, invoice_id=invoice["invoice_id"], reason="Cancelled in cooling-off", now=now, actor=actor)
    session.commit()
    assert cn.total_minor == 103500 - 2000
    with pytest.raises(CreditExceedsInvoiced, match="nothing left"):
        service.credit_invoice(session, invoice_id=invoice["invoice_id"], reason="again", now=now, actor=actor)


def test_credit_note_numbers_are_gapless_even_after_a_refused_credit(session, now, actor, invoice):  # type: ignore[no-untyped-def]
    service.credit_line(session, invoice_line_id=invoice["lines"][0], amount=zar("1"), reason="a", now=now, actor=actor)
    session.commit()
    with pytest.raises(CreditExceedsInvoiced):
        service.credit_line(session, invoice_line_id=invoice["lines"][1], amount=zar("999"), reason="b", now=now, actor=actor)
    session.rollback()
    service.credit_line(session, invoice_line_id=invoice["lines"][1], amount=zar("2"), reason="c", now=now, actor=actor)
    service.credit_line(session, invoice_line_id=invoice["lines"][1], amount=zar("3"), reason="d", now=now + timedelta(days=40), actor=actor)
    session.commit()
    numbers = session.execute(select(CreditNote.number).order_by(CreditNote.id)).scalars().all()
    assert numbers == ["CN-2026-00000001", "CN-2026-00000002", "CN-2027-00000001"]


def test_a_repeated_idempotency_key_returns_the_first_credit_note(session, now, actor, invoice):  # type: ignore[no-untyped-def]
    a = service.credit_line(session, invoice_line_id=invoice["lines"][0], amount=zar("5"), reason="x", now=now, actor=actor, idempotency_key="k1")
    b = service.credit_line(session, invoice_line_id=invoice["lines"][0], amount=zar("5"), reason="x", now=now, actor=actor, idempotency_key="k1")
    session.commit()
    assert a.id == b.id
    assert session.execute(select(func.count()).select_from(CreditNote)).scalar_one() == 1


def test_invoice_lifecycle_allows_hold_and_release_but_a_person_cannot_settle(session, now, actor, invoice):  # type: ignore[no-untyped-def]
    assert service.transition(session, invoice_id=invoice["invoice_id"], action="hold", now=now, actor=actor, manual=True) == ["release"]
    assert "validate" in service.transition(session, invoice_id=invoice["invoice_id"], action="release", now=now, actor=actor, manual=True)
    with pytest.raises(InvoiceTransitionNotAllowed, match="done by the system, not by a person"):
        service.transition(session, invoice_id=invoice["invoice_id"], action="settle", now=now, actor=actor)
    with pytest.raises(InvoiceTransitionNotAllowed, match="not allowed"):
        service.transition(session, invoice_id=invoice["invoice_id"], action="settle", now=now, actor=actor, manual=True)
    assert session.get(Invoice, invoice["invoice_id"]).state == "new"


def test_payments_settling_and_reopening_an_invoice_moves_it_to_paid_and_back_in_the_same_transaction(session, now, invoice):  # type: ignore[no-untyped-def]
    from opsline.core import domain_events
    from opsline.core.events import Actor, AuditEvent

    payments = Actor.system("payments")
    payload = {"id": invoice["invoice_id"], "account_id": invoice["account_id"]}
    domain_events.publish(session, "payments.invoice_settled", payload, now=now, actor=payments)
    assert session.get(Invoice, invoice["invoice_id"]).state == "paid"
    domain_events.publish(session, "payments.invoice_settled", payload, now=now, actor=payments)  # a repeat changes nothing
    domain_events.publish(session, "payments.invoice_reopened", payload, now=now, actor=payments)
    assert session.get(Invoice, invoice["invoice_id"]).state == "sent"
    acts = session.execute(select(AuditEvent.action).where(AuditEvent.entity_type == "invoice", AuditEvent.entity_id == str(invoice["invoice_id"]))
                           .order_by(AuditEvent.id)).scalars().all()
    assert acts[-2:] == ["settle", "reopen"] and acts.count("settle") == 1


def test_settling_a_draft_invoice_is_refused_and_the_payment_must_roll_back(session, now, invoice):  # type: ignore[no-untyped-def]
    from opsline.core import domain_events
    from opsline.core.events import Actor

    session.get(Invoice, invoice["invoice_id"]).state = "draft"
    session.flush()
    with pytest.raises(InvoiceTransitionNotAllowed):
        domain_events.publish(session, "payments.invoice_settled", {"id": invoice["invoice_id"], "account_id": invoice["account_id"]},
                              now=now, actor=Actor.system("payments"))
    assert session.get(Invoice, invoice["invoice_id"]).state == "draft"


def test_upheld_claim_issues_a_linked_credit_note_and_lowers_the_balance(session, now, actor, invoice):  # type: ignore[no-untyped-def]
    before = balance(session, invoice["account_id"])
    claim = service.raise_claim(session, invoice_id=invoice["invoice_id"], lines=[(invoice["lines"][1], zar("115.00"))], reason="Router was returned in October",
                                channel="phone", now=now, actor=actor, attachments=[("waybill.txt", "text/plain", b"courier waybill 123")])
    session.commit()
    assert claim.due_date == date(2026, 12, 7)  # 10 business days from Monday 23 November
    assert service.disputed_amount(session, account_id=invoice["account_id"]) == zar("115.00")
    service.transition_claim(session, claim_id=claim.id, action="review", now=now, actor=actor)
    service.transition_claim(session, claim_id=claim.id, action="uphold", reason="Waybill confirms return", now=now, actor=actor)
    session.commit()
    c = session.get(BillingClaim, claim.id)
    assert c.state == "upheld" and c.credit_note_id is not None
    assert balance(session, invoice["account_id"]) == before - 11500
    assert service.disputed_amount(session, account_id=invoice["account_id"]).is_zero()
    assert session.execute(select(Job.kind).where(Job.kind == "invoicing.email_claim_outcome")).scalar_one()


def test_partially_upheld_claim_credits_only_the_upheld_amount(session, now, actor, invoice):  # type: ignore[no-untyped-def]
    claim = service.raise_claim(session, invoice_id=invoice["invoice_id"], lines=[(invoice["lines"][0], zar("200")), (invoice["lines"][1], zar("50"))], reason="Slow line",
                                channel="email", now=now, actor=actor)
    service.transition_claim(session, claim_id=claim.id, action="partially_uphold", upheld=zar("100"), reason="Two days of outage confirmed", now=now, actor=actor)
    session.commit()
    cn = session.get(CreditNote, session.get(BillingClaim, claim.id).credit_note_id)
    assert cn.total_minor == 10000 and cn.source == "claim"


def test_claim_beyond_the_line_or_its_uncredited_amount_is_refused_and_nothing_changes(session, now, actor, invoice):  # type: ignore[no-untyped-def]
    with pytest.raises(ClaimExceedsLine, match="cannot be disputed"):
        service.raise_claim(session, invoice_id=invoice["invoice_id"], lines=[(invoice["lines"][1], zar("116"))], reason="x", channel="phone", now=now, actor=actor)
    session.rollback()
    service.credit_line(session, invoice_line_id=invoice["lines"][1], amount=zar("100"), reason="goodwill", now=now, actor=actor)
    session.commit()
    with pytest.raises(ClaimExceedsLine, match="ZAR 15.00 left to dispute"):
        service.raise_claim(session, invoice_id=invoice["invoice_id"], lines=[(invoice["lines"][1], zar("20"))], reason="x", channel="phone", now=now, actor=actor)
    session.rollback()
    assert session.execute(select(func.count()).select_from(BillingClaim)).scalar_one() == 0


def test_a_second_open_claim_cannot_dispute_what_the_first_already_disputes(session, now, actor, invoice):  # type: ignore[no-untyped-def]
    service.raise_claim(session, invoice_id=invoice["invoice_id"], lines=[(invoice["lines"][1], zar("100"))], reason="x", channel="phone", now=now, actor=actor)
    with pytest.raises(ClaimExceedsLine):
        service.raise_claim(session, invoice_id=invoice["invoice_id"], lines=[(invoice["lines"][1], zar("20"))], reason="y", channel="phone", now=now, actor=actor)


def test_claim_inputs_are_checked(session, now, actor, invoice):  # type: ignore[no-untyped-def]
    with pytest.raises(UnableToRaiseClaim, match="reason"):
        service.raise_claim(session, invoice_id=invoice["invoice_id"], lines=[(invoice["lines"][0], zar("1"))], reason="", channel="phone", now=now, actor=actor)
    with pytest.raises(UnableToRaiseClaim, match="channel"):
        service.raise_claim(session, invoice_id=invoice["invoice_id"], lines=[(invoice["lines"][0], zar("1"))], reason="r", channel="pigeon", now=now, actor=actor)
    with pytest.raises(UnableToRaiseClaim, match="limit"):
        service.raise_claim(session, invoice_id=invoice["invoice_id"], lines=[(invoice["lines"][0], zar("1"))], reason="r", channel="web", now=now, actor=actor,
                            attachments=[("big.pdf", "application/pdf", b"x" * 2_000_001)])
    session.rollback()
    assert session.execute(select(func.count()).select_from(BillingClaim)).scalar_one() == 0


def test_rejected_claim_needs_a_reason_and_releases_the_dispute(session, now, actor, invoice):  # type: ignore[no-untyped-def]
    claim = service.raise_claim(session, invoice_id=invoice["invoice_id"], lines=[(invoice["lines"][0], zar("50"))], reason="x", channel="phone", now=now, actor=actor)
    with pytest.raises(UnableToDecideClaim):
        service.transition_claim(session, claim_id=claim.id, action="reject", now=now, actor=actor)
    service.transition_claim(session, claim_id=claim.id, action="reject", reason="Usage records show the sessions", now=now, actor=actor)
    with pytest.raises(ClaimTransitionNotAllowed):
        service.transition_claim(session, claim_id=claim.id, action="uphold", reason="r", now=now, actor=actor)
    session.commit()
    assert service.disputed_by_invoice(session, account_id=invoice["account_id"]) == {}
    assert session.execute(select(func.count()).select_from(CreditNote)).scalar_one() == 0


def test_rerating_a_lower_price_issues_a_credit_note_and_never_edits_the_invoice(session, now, actor):  # type: ignore[no-untyped-def]
    from opsline.catalog.models import Price

    acc = make_account(session, now=now)
    p = make_mobile_product(session, account_id=acc, now=now, recurring_minor=20000)
    inv_id = make_finalised_invoice(session, account_id=acc, now=now, period_start=date(2026, 11, 1), period_end=date(2026, 12, 1), lines=[
        {"description": "Mobile 1GB", "amount_minor": 20000, "unit_amount_minor": 20000, "product_id": p["product_id"], "offering_id": p["offering_id"], "price_id": p["recurring_price_id"]},
    ])
    session.commit()
    before = session.get(Invoice, inv_id).total_minor
    session.get(Price, p["recurring_price_id"]).amount_minor = 15000  # price correction
    res = service.rerate_period(session, account_id=acc, period_start=date(2026, 11, 1), now=now, actor=actor, reason="Promo price not applied")
    session.commit()
    assert res["credit_note"]["total_minor"] == 5750  # 50.00 + VAT
    assert session.get(Invoice, inv_id).total_minor == before
    assert balance(session, acc) == before - 5750
    # nothing more to do the second time
    res2 = service.rerate_period(session, account_id=acc, period_start=date(2026, 11, 1), now=now, actor=actor, reason="again")
    assert res2["differences"] == [] and res2["credit_note"] is None


def test_rerating_needs_a_finalised_invoice_for_the_period(session, now, actor):  # type: ignore[no-untyped-def]
    acc = make_account(session, now=now)
    from opsline.billing.invoicing.credits import UnableToRerate

    with pytest.raises(UnableToRerate, match="no finalised invoice"):
        service.rerate_period(session, account_id=acc, period_start=date(2026, 11, 1), now=now, actor=actor, reason="r")
