"""Credit notes (gapless numbers, never more than invoiced minus already credited) and re-rating of finalised periods."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Sequence

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from opsline.billing import ledger
from opsline.billing import service as billing
from opsline.billing.invoicing.invoices import InvoiceState, _models, get_invoice_row
from opsline.billing.invoicing.models import CreditNote, CreditNoteLine, CreditNoteSequence, RerateAdjustment
from opsline.billing.tax import TaxedLine, rates_on, spread_vat, vat_on
from opsline.core import events
from opsline.core.errors import Conflict, InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.billing.invoicing.tz import local_zone
from opsline.core.localtime import local_date
from opsline.core.money import Money, allocate_minor


class UnableToCredit(InvalidInput):
    title = "Unable to credit"
    type_slug = "unable-to-credit"


class CreditExceedsInvoiced(Conflict):
    title = "Credit exceeds what was invoiced"
    type_slug = "credit-exceeds-invoiced"


class UnableToRerate(InvalidInput):
    title = "Unable to re-rate"
    type_slug = "unable-to-rerate"


def next_credit_note_number(session: Session, *, year: int) -> str:
    """Take the next gapless number CN-YYYY-nnnnnnnn in the caller's transaction (the sequence row stays locked until commit)."""
    ins = (pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert)(CreditNoteSequence).values(year=year, last_number=0)
    session.execute(ins.on_conflict_do_nothing(index_elements=["year"]))
    n = session.execute(
        update(CreditNoteSequence).where(CreditNoteSequence.year == year).values(last_number=CreditNoteSequence.last_number + 1).returning(CreditNoteSequence.last_number)
    ).scalar_one()
    return f"CN-{year}-{n:08d}"


def credited_by_line(session: Session, *, invoice_id: int) -> dict[int, int]:
    """Invoice line id -> total (incl. tax) already credited, in minor units."""
    m = _models()
    rows = session.execute(
        select(CreditNoteLine.invoice_line_id, func.sum(CreditNoteLine.total_minor))
        .join(m.InvoiceLine, m.InvoiceLine.id == CreditNoteLine.invoice_line_id)
        .where(m.InvoiceLine.invoice_id == invoice_id)
        .group_by(CreditNoteLine.invoice_line_id)
    ).all()
    return {int(r[0]): int(r[1] or 0) for r in rows}


def credited_by_invoice(session: Session, *, invoice_ids: list[int]) -> dict[int, int]:
    """Invoice id -> total credited (incl. tax), one query."""
    if not invoice_ids:
        return {}
    m = _models()
    rows = session.execute(select(m.InvoiceLine.invoice_id, func.sum(CreditNoteLine.total_minor)).join(m.InvoiceLine, m.InvoiceLine.id == CreditNoteLine.invoice_line_id)
                           .where(m.InvoiceLine.invoice_id.in_(invoice_ids)).group_by(m.InvoiceLine.invoice_id)).all()
    return {int(i): int(t or 0) for i, t in rows}


def creditable_by_line(session: Session, *, invoice_id: int) -> dict[int, int]:
    """Invoice line id -> what may still be credited (line total minus already credited), minor units."""
    m = _models()
    credited = credited_by_line(session, invoice_id=invoice_id)
    lines = session.execute(select(m.InvoiceLine.id, m.InvoiceLine.total_minor).where(m.InvoiceLine.invoice_id == invoice_id)).all()
    return {int(i): max(0, int(t) - credited.get(int(i), 0)) for i, t in lines}


def creditable_on_invoice(session: Session, *, invoice_id: int) -> int:
    """What may still be credited on the whole invoice: its total (net of discount lines) minus every credit note on it."""
    inv = get_invoice_row(session, invoice_id=invoice_id)
    credited = session.execute(select(func.coalesce(func.sum(CreditNote.total_minor), 0)).where(CreditNote.invoice_id == invoice_id)).scalar_one()
    return max(0, int(inv.total_minor) - int(credited))


def _split_tax(total_minor: int, line: Any) -> tuple[int, int]:
    """(ex-tax, tax) parts of a tax-inclusive credit, in the line's own tax proportion."""
    if not line.total_minor or not line.tax_minor:
        return total_minor, 0
    tax = int((Decimal(total_minor) * Decimal(line.tax_minor) / Decimal(line.total_minor)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    return total_minor - tax, tax


@dataclass(frozen=True)
class CreditItem:
    invoice_line_id: int
    total_minor: int  # tax-inclusive amount to credit


def issue_credit_note(
    session: Session, *, invoice_id: int, items: Sequence[CreditItem], reason: str, now: datetime, actor: Actor,
    source: str = "manual", idempotency_key: str | None = None,
) -> CreditNote:
    """Issue one credit note against lines of a finalised invoice and post it to the ledger.
    A repeated idempotency key returns the first credit note. Raises NotFound, UnableToCredit (no reason, draft invoice,
    non-positive amount, line of another invoice), CreditExceedsInvoiced (more than invoiced minus already credited)."""
    if idempotency_key:
        prior = session.execute(select(CreditNote).where(CreditNote.idempotency_key == idempotency_key)).scalar_one_or_none()
        if prior is not None:
            return prior
    reason = (reason or "").strip()
    if not reason:
        raise UnableToCredit("a credit note needs a reason", field="reason")
    m = _models()
    inv = get_invoice_row(session, invoice_id=invoice_id, lock=True)  # serialises credits on one invoice
    if inv.number is None or inv.state == InvoiceState.DRAFT:
        raise UnableToCredit(f"invoice {inv.id} is not finalised; change the draft instead of crediting it", field="invoice_id")
    if not items:
        raise UnableToCredit("nothing to credit", field="lines")
    lines = {ln.id: ln for ln in session.execute(select(m.InvoiceLine).where(m.InvoiceLine.invoice_id == invoice_id)).scalars()}
    remaining = creditable_by_line(session, invoice_id=invoice_id)
    asked: dict[int, int] = {}
    for it in items:
        if it.invoice_line_id not in lines:
            raise UnableToCredit(f"line {it.invoice_line_id} is not on invoice {inv.number}", field="invoice_line_id")
        if it.total_minor <= 0:
            raise UnableToCredit("the amount to credit must be more than zero", field="amount")
        asked[it.invoice_line_id] = asked.get(it.invoice_line_id, 0) + it.total_minor
    room = creditable_on_invoice(session, invoice_id=invoice_id)
    want = sum(asked.values())
    if want > room:
        raise CreditExceedsInvoiced(
            f"invoice {inv.number} totals {Money.from_minor(inv.total_minor, inv.currency)} (net of discounts) and "
            f"{Money.from_minor(max(0, inv.total_minor - room), inv.currency)} is already credited; at most {Money.from_minor(room, inv.currency)} "
            f"can be credited, not {Money.from_minor(want, inv.currency)}",
            field="amount", extra={"creditable_minor": room, "invoice_id": inv.id})
    for lid, amt in asked.items():
        if amt > remaining.get(lid, 0):
            ln = lines[lid]
            raise CreditExceedsInvoiced(
                f"line '{ln.description}' was invoiced {Money.from_minor(ln.total_minor, ln.currency)} and {Money.from_minor(ln.total_minor - remaining.get(lid, 0), ln.currency)} "
                f"is already credited; at most {Money.from_minor(remaining.get(lid, 0), ln.currency)} can be credited, not {Money.from_minor(amt, ln.currency)}",
                field="amount", extra={"invoice_line_id": lid, "creditable_minor": remaining.get(lid, 0)},
            )
    issued = now.date()
    cn = CreditNote(
        account_id=inv.account_id, invoice_id=inv.id, number=next_credit_note_number(session, year=issued.year), state="issued", source=source, reason=reason,
        currency=inv.currency, subtotal_minor=0, tax_minor=0, total_minor=0, issued_at=now, issued_by=actor.name, idempotency_key=idempotency_key,
    )
    cn_lines = []
    for it in items:
        ln = lines[it.invoice_line_id]
        ex, tax = _split_tax(it.total_minor, ln)
        cn_lines.append(CreditNoteLine(account_id=inv.account_id, invoice_line_id=ln.id, description=f"Credit: {ln.description}"[:300], amount_minor=ex,
                                       tax_rate_code=ln.tax_rate_code, tax_minor=tax, total_minor=it.total_minor, currency=ln.currency))
    cn.subtotal_minor = sum(c.amount_minor for c in cn_lines)
    cn.tax_minor = sum(c.tax_minor for c in cn_lines)
    cn.total_minor = sum(c.total_minor for c in cn_lines)
    session.add(cn)
    session.flush()
    for c in cn_lines:
        c.credit_note_id = cn.id
    session.add_all(cn_lines)
    ledger.post(session, account_id=inv.account_id, kind="credit_note", ref_type="credit_note", ref_id=cn.id, amount=Money.from_minor(-cn.total_minor, cn.currency),
                now=now, description=f"Credit note {cn.number} on {inv.number}: {reason}")
    events.record(session, now=now, actor=actor, entity_type="credit_note", entity_id=cn.id, action="issued", account_id=inv.account_id, reason=reason,
                  after={"number": cn.number, "invoice": inv.number, "total_minor": cn.total_minor, "currency": cn.currency, "source": source})
    return cn


def credit_line(session: Session, *, invoice_line_id: int, amount: Money | None, reason: str, now: datetime, actor: Actor, idempotency_key: str | None = None) -> CreditNote:
    """Credit one invoice line: `amount` (tax-inclusive) or, when None, all that is still creditable. Raises as issue_credit_note."""
    m = _models()
    ln = session.get(m.InvoiceLine, invoice_line_id)
    if ln is None:
        raise NotFound(f"invoice line {invoice_line_id} does not exist")
    if amount is None:
        minor = creditable_by_line(session, invoice_id=ln.invoice_id).get(ln.id, 0)
        if minor <= 0:
            raise CreditExceedsInvoiced(f"line '{ln.description}' is already fully credited", field="amount")
    else:
        if amount.currency != ln.currency:
            raise UnableToCredit(f"the line is in {ln.currency}, not {amount.currency}", field="amount")
        minor = amount.rounded().minor
    return issue_credit_note(session, invoice_id=ln.invoice_id, items=[CreditItem(ln.id, minor)], reason=reason, now=now, actor=actor, idempotency_key=idempotency_key)


def credit_invoice(session: Session, *, invoice_id: int, reason: str, now: datetime, actor: Actor, idempotency_key: str | None = None) -> CreditNote:
    """Credit everything still creditable on an invoice. Raises as issue_credit_note (CreditExceedsInvoiced if nothing is left)."""
    inv = get_invoice_row(session, invoice_id=invoice_id)
    remaining = {lid: amt for lid, amt in sorted(creditable_by_line(session, invoice_id=invoice_id).items()) if amt > 0}
    room = creditable_on_invoice(session, invoice_id=invoice_id)
    if not remaining or room <= 0:
        raise CreditExceedsInvoiced(f"invoice {inv.number or invoice_id} has nothing left to credit (discounts and earlier credit notes included)",
                                    field="invoice_id", extra={"creditable_minor": 0})
    if sum(remaining.values()) > room:  # discounts: spread what the invoice still allows over its lines, never above a line
        parts = allocate_minor(room, list(remaining.values()))
        remaining = dict(zip(remaining, parts))
    items = [CreditItem(lid, amt) for lid, amt in remaining.items() if amt > 0]
    return issue_credit_note(session, invoice_id=invoice_id, items=items, reason=reason, now=now, actor=actor, idempotency_key=idempotency_key)


def parse_amount(raw: str, currency: str, field: str) -> Money:
    """A typed amount ("1 150,00" style separators removed) as Money. Raises UnableToCredit for text that is not an amount."""
    try:
        return Money.of(Decimal(raw.replace(" ", "").replace(",", "")), currency)
    except (ArithmeticError, ValueError) as exc:
        raise UnableToCredit(f"'{raw}' is not an amount", field=field) from exc


def credit_from_form(session: Session, *, invoice_id: int, line: str, amount: str, reason: str, now: datetime, actor: Actor,
                     idempotency_key: str | None = None) -> CreditNote:
    """The credit form: `line` is a line id or "all"; `amount` is typed text (empty: all that is creditable on the line).
    Raises UnableToCredit (no line chosen, not an amount) and as credit_line / credit_invoice."""
    inv = get_invoice_row(session, invoice_id=invoice_id)
    if line == "all":
        return credit_invoice(session, invoice_id=invoice_id, reason=reason, now=now, actor=actor, idempotency_key=idempotency_key)
    if not line.isdigit():
        raise UnableToCredit("choose a line to credit", field="line")
    amt = parse_amount(amount, inv.currency, "amount") if amount.strip() else None
    return credit_line(session, invoice_line_id=int(line), amount=amt, reason=reason, now=now, actor=actor, idempotency_key=idempotency_key)


def credit_note_dict(cn: CreditNote) -> dict[str, Any]:
    return {"id": cn.id, "account_id": cn.account_id, "invoice_id": cn.invoice_id, "number": cn.number, "state": cn.state, "source": cn.source, "reason": cn.reason,
            "currency": cn.currency, "subtotal_minor": cn.subtotal_minor, "tax_minor": cn.tax_minor, "total_minor": cn.total_minor, "issued_at": cn.issued_at, "issued_by": cn.issued_by}


def list_credit_notes(session: Session, *, account_id: int | None = None, invoice_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    q = select(CreditNote)
    if account_id is not None:
        q = q.where(CreditNote.account_id == account_id)
    if invoice_id is not None:
        q = q.where(CreditNote.invoice_id == invoice_id)
    return [credit_note_dict(c) for c in session.execute(q.order_by(CreditNote.id.desc()).limit(limit)).scalars()]


# ---------------------------------------------------------------------------------------------- re-rating

def _expected_line_amount(session: Session, ln: Any, usage_expected: dict[tuple[int, str], int], prices: dict[int, Any]) -> int | None:
    """What a finalised line (ex tax) should be now, or None when it is not re-ratable (one-off, discount, adjustment)."""
    if ln.kind == "recurring" and ln.price_id is not None and ln.unit_amount_minor:
        p = prices.get(ln.offering_id)
        if p is None:
            return None
        return int((Decimal(ln.amount_minor) * Decimal(p.amount_minor) / Decimal(ln.unit_amount_minor)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    return None


def rerate_period(session: Session, *, account_id: int, period_start: date, now: datetime, actor: Actor, reason: str, tz: str | None = None) -> dict[str, Any]:
    """Recompute what an account's finalised invoice for the period should have been, from current prices and usage,
    and issue the difference: a credit note when it is lower, an ad-hoc adjustment invoice when higher. The finalised
    invoice is never edited. Returns {"credit_note": ..., "debit_invoice_id": ..., "differences": [...]}.
    Raises UnableToRerate (no reason, no finalised invoice for the period)."""
    from opsline.billing.invoicing.usage import rate_usage_for_account, usage_totals

    reason = (reason or "").strip()
    if not reason:
        raise UnableToRerate("re-rating needs a reason", field="reason")
    m = _models()
    from opsline.catalog.models import Price

    inv = session.execute(
        select(m.Invoice).where(m.Invoice.account_id == account_id, m.Invoice.period_start == period_start, m.Invoice.kind == "cycle", m.Invoice.number.is_not(None))
        .order_by(m.Invoice.id.desc()).limit(1)
    ).scalar_one_or_none()
    if inv is None:
        raise UnableToRerate(f"account {account_id} has no finalised invoice for the period starting {period_start}", field="period_start")
    lines = list(session.execute(select(m.InvoiceLine).where(m.InvoiceLine.invoice_id == inv.id).order_by(m.InvoiceLine.id)).scalars())
    # current recurring price per offering for the period
    offering_ids = {ln.offering_id for ln in lines if ln.offering_id is not None}
    prices: dict[int, Any] = {}
    if offering_ids:
        for p in session.execute(
            select(Price).where(Price.offering_id.in_(offering_ids), Price.kind == "recurring", Price.valid_from <= period_start,
                                (Price.valid_to.is_(None)) | (Price.valid_to > period_start)).order_by(Price.valid_from)
        ).scalars():
            prices[p.offering_id] = p
    # usage: re-rate the account's usage with current prices, then compare per product with the billed usage lines
    rate_usage_for_account(session, account_id=account_id, now=now, include_billed=True)
    expected_usage = usage_totals(session, account_id=account_id, start=inv.period_start, end=inv.period_end)
    billed_usage: dict[int, list[Any]] = {}
    for ln in lines:
        if ln.kind == "usage" and ln.product_id is not None:
            billed_usage.setdefault(ln.product_id, []).append(ln)
    adj_line: dict[int, int] = {}
    adj_product: dict[int, int] = {}
    for a in session.execute(select(RerateAdjustment).where(RerateAdjustment.invoice_id == inv.id)).scalars():
        if a.invoice_line_id is None:  # usage is corrected per product
            adj_product[a.product_id or 0] = adj_product.get(a.product_id or 0, 0) + a.amount_minor
        else:
            adj_line[a.invoice_line_id] = adj_line.get(a.invoice_line_id, 0) + a.amount_minor
    credits: list[CreditItem] = []
    debits: list[dict[str, Any]] = []
    diffs: list[dict[str, Any]] = []
    adjustments: list[dict[str, Any]] = []
    rates = {t.code: t.rate for t in session.execute(select(m.TaxRate)).scalars()}

    def with_tax(ex: int, code: str | None) -> int:
        return ex + vat_on(ex, Decimal(rates.get(code, 0) or 0) if code else Decimal(0))

    for ln in lines:
        exp = _expected_line_amount(session, ln, {}, prices)
        billed = ln.amount_minor + adj_line.get(ln.id, 0)
        if exp is None or exp == billed:
            continue
        diffs.append({"line_id": ln.id, "description": ln.description, "billed_minor": billed, "expected_minor": exp})
        adjustments.append({"invoice_line_id": ln.id, "product_id": None, "amount_minor": exp - billed})
        if exp < billed:
            credits.append(CreditItem(ln.id, with_tax(billed - exp, ln.tax_rate_code)))
        else:
            debits.append({"line": ln, "amount_minor": exp - billed, "description": f"Re-rating: {ln.description}"})
    for product_id, exp in expected_usage.items():
        billed_lines = billed_usage.get(product_id, [])
        billed = sum(ln.amount_minor for ln in billed_lines) + adj_product.get(product_id, 0)
        if exp["amount_minor"] == billed:
            continue
        adjustments.append({"invoice_line_id": None, "product_id": product_id, "amount_minor": exp["amount_minor"] - billed})
        diffs.append({"product_id": product_id, "description": "usage", "billed_minor": billed, "expected_minor": exp["amount_minor"]})
        if exp["amount_minor"] < billed:
            over = billed - exp["amount_minor"]
            for ln in billed_lines:  # spread the credit over the product's usage lines
                take = min(over, ln.amount_minor)
                if take > 0:
                    credits.append(CreditItem(ln.id, with_tax(take, ln.tax_rate_code)))
                    over -= take
        else:
            debits.append({"line": billed_lines[0] if billed_lines else None, "product_id": product_id, "amount_minor": exp["amount_minor"] - billed,
                           "tax_rate_code": exp["tax_rate_code"], "description": f"Re-rating: usage {inv.period_start} to {inv.period_end} not billed before"})
    result: dict[str, Any] = {"invoice_id": inv.id, "credit_note": None, "debit_invoice_id": None, "differences": diffs}
    if credits:
        remaining = creditable_by_line(session, invoice_id=inv.id)
        credits = [CreditItem(c.invoice_line_id, min(c.total_minor, remaining.get(c.invoice_line_id, 0))) for c in credits]
        credits = [c for c in credits if c.total_minor > 0]
        room = creditable_on_invoice(session, invoice_id=inv.id)
        if credits and sum(c.total_minor for c in credits) > room:  # never more than the whole invoice allows
            parts = allocate_minor(room, [c.total_minor for c in credits]) if room > 0 else [0] * len(credits)
            credits = [CreditItem(c.invoice_line_id, p) for c, p in zip(credits, parts) if p > 0]
        if credits:
            cn = issue_credit_note(session, invoice_id=inv.id, items=credits, reason=f"Re-rating: {reason}", now=now, actor=actor, source="rerate")
            result["credit_note"] = credit_note_dict(cn)
    if debits:
        result["debit_invoice_id"] = _issue_debit(session, inv=inv, debits=debits, reason=reason, now=now, actor=actor, tz=tz)
    cn_id = result["credit_note"]["id"] if result["credit_note"] else None
    session.add_all([RerateAdjustment(account_id=account_id, invoice_id=inv.id, invoice_line_id=a["invoice_line_id"], product_id=a["product_id"], amount_minor=a["amount_minor"],
                                      credit_note_id=cn_id if a["amount_minor"] < 0 else None, debit_invoice_id=result["debit_invoice_id"] if a["amount_minor"] > 0 else None,
                                      reason=reason, created_at=now) for a in adjustments])
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="invoice", entity_id=inv.id, action="rerated", account_id=account_id, reason=reason,
                  after={"differences": len(diffs), "credit_note": result["credit_note"]["number"] if result["credit_note"] else None, "debit_invoice_id": result["debit_invoice_id"]})
    return result


def _issue_debit(session: Session, *, inv: Any, debits: list[dict[str, Any]], reason: str, now: datetime, actor: Actor, tz: str | None) -> int:
    """An ad-hoc invoice of adjustment lines for what was under-billed (VAT once per rate, spread over the lines),
    finalised through billing.service.finalise_invoice."""
    m = _models()
    day = local_date(now, local_zone(tz))  # one ad-hoc invoice per account and day (unique per account, period start, kind)
    if session.execute(select(m.Invoice.id).where(m.Invoice.account_id == inv.account_id, m.Invoice.kind == "adhoc", m.Invoice.period_start == day)).first():
        raise UnableToRerate(f"account {inv.account_id} already has an ad-hoc invoice dated {day}; re-rate again tomorrow", field="period_start")
    adhoc = m.Invoice(account_id=inv.account_id, bill_run_id=None, kind="adhoc", period_start=day, period_end=day + timedelta(days=1), number=None, state="draft",
                      currency=inv.currency, subtotal_minor=0, tax_minor=0, total_minor=0, issued_at=None, due_date=None, created_at=now)
    session.add(adhoc)
    session.flush()
    codes = [d.get("tax_rate_code") or (d["line"].tax_rate_code if d.get("line") is not None else "ZERO") for d in debits]
    vat = spread_vat([TaxedLine(d["amount_minor"], c) for d, c in zip(debits, codes)], rates_on(session, on=inv.period_start))
    for d, code, tax in zip(debits, codes, vat):
        ln = d.get("line")
        session.add(m.InvoiceLine(invoice_id=adhoc.id, account_id=inv.account_id, product_id=(ln.product_id if ln is not None else d.get("product_id")),
                                  offering_id=(ln.offering_id if ln is not None else None), price_id=(ln.price_id if ln is not None else None), kind="adjustment",
                                  description=d["description"][:300], period_start=inv.period_start, period_end=inv.period_end, quantity=Decimal(1),
                                  unit_amount_minor=d["amount_minor"], amount_minor=d["amount_minor"], tax_rate_code=code, tax_minor=tax,
                                  total_minor=d["amount_minor"] + tax, currency=inv.currency, explanation=f"Re-rating of invoice {inv.number}: {reason}"[:500]))
    sub = sum(d["amount_minor"] for d in debits)
    adhoc.subtotal_minor, adhoc.tax_minor, adhoc.total_minor = sub, sum(vat), sub + sum(vat)
    session.flush()
    billing.finalise_invoice(session, invoice_id=adhoc.id, now=now, actor=actor)
    events.record(session, now=now, actor=actor, entity_type="invoice", entity_id=adhoc.id, action="rerate_debit", account_id=inv.account_id, reason=reason,
                  after={"total_minor": adhoc.total_minor, "of_invoice": inv.number})
    return adhoc.id
