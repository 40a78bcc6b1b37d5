"""Invoice lifecycle (declared in billing.models.INVOICE) and the read side of invoices: lists, detail, lines with explanations."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsline.billing import models as _billing_models
from opsline.billing.models import INVOICE, InvoiceState
from opsline.core import jobs, lifecycle
from opsline.core.errors import NotFound, TransitionNotAllowed
from opsline.core.events import Actor
from opsline.billing.invoicing.tz import local_zone

# What a person may do from the UI or the API PATCH; the rest happen through delivery and payments (system actions).
MANUAL_ACTIONS = INVOICE.actions() - set(INVOICE.system_actions) - {"finalise"}


class InvoiceTransitionNotAllowed(TransitionNotAllowed):
    pass


def _models():  # the bill-run models live in the parent package
    return _billing_models


def allowed_actions(state: str, *, manual_only: bool = False) -> list[str]:
    acts = INVOICE.allowed_actions(state, include_system=not manual_only)
    return [a for a in acts if a in MANUAL_ACTIONS] if manual_only else acts


def get_invoice_row(session: Session, *, invoice_id: int, lock: bool = False) -> Any:
    """The invoice ORM row. Raises NotFound."""
    m = _models()
    q = select(m.Invoice).where(m.Invoice.id == invoice_id)
    if lock:
        q = q.with_for_update()
    inv = session.execute(q).scalar_one_or_none()
    if inv is None:
        raise NotFound(f"invoice {invoice_id} does not exist")
    return inv


def transition(session: Session, *, invoice_id: int, action: str, now: datetime, actor: Actor, reason: str | None = None, manual: bool = False) -> list[str]:
    """Move an invoice along its lifecycle (core.lifecycle); returns the actions allowed next.
    Raises NotFound, InvoiceTransitionNotAllowed (not allowed from this state, a system action asked for by a person,
    or `manual` and not a manual action), ActionNotPermitted."""
    inv = get_invoice_row(session, invoice_id=invoice_id, lock=True)
    if manual and action not in MANUAL_ACTIONS:
        raise InvoiceTransitionNotAllowed(
            f"invoice {inv.number or inv.id} is {inv.state}; '{action}' is not allowed (allowed: {', '.join(allowed_actions(inv.state, manual_only=True)) or 'none'})",
            field="state")
    try:
        lifecycle.transition(session, INVOICE, inv, action, now=now, actor=actor, reason=reason, label=f"invoice {inv.number or inv.id}")
    except TransitionNotAllowed as exc:
        raise InvoiceTransitionNotAllowed(exc.detail, field="state", extra=exc.extra) from exc
    session.flush()
    if action == "release":
        # delivery skipped held invoices; a released one is sent now (the delivery record still stops a second send)
        jobs.enqueue(session, kind="invoicing.email_invoice", payload={"invoice_id": inv.id}, now=now,
                     idempotency_key=f"invoicing.email_invoice:{inv.id}:release:{now.isoformat()}", serial_key=f"invoice:{inv.id}")
    return allowed_actions(inv.state, manual_only=manual)


def follow_payment(session: Session, *, invoice_id: int, action: str, now: datetime, actor: Actor) -> None:
    """Move an invoice to paid (`settle`) or back to sent (`reopen`) when payments says so; a repeat is a no-op.
    Raises NotFound, InvoiceTransitionNotAllowed (e.g. settling a draft: the payment must roll back)."""
    inv = get_invoice_row(session, invoice_id=invoice_id, lock=True)
    target = InvoiceState.PAID if action == "settle" else InvoiceState.SENT
    if inv.state == target or (action == "reopen" and inv.state not in (InvoiceState.PAID, InvoiceState.PARTIALLY_PAID)):
        return
    transition(session, invoice_id=invoice_id, action=action, now=now, actor=actor if actor.is_system else Actor.system("payments"))


def settle_many(session: Session, *, invoice_ids: list[int], now: datetime, actor: Actor) -> list[int]:
    """Move many invoices to paid in a few statements (payments announced them settled in one batch); the ones already
    paid are left alone. Returns the ids moved. Raises NotFound (an id is not an invoice) and InvoiceTransitionNotAllowed
    (an invoice is in a state that is neither settleable nor paid, e.g. a draft): the caller's transaction must then roll
    back, as it does when a same-transaction subscriber raises."""
    ids = sorted({int(i) for i in invoice_ids})
    moved = lifecycle.transition_many(session, INVOICE, _models().Invoice, ids, "settle", now=now,
                                      actor=actor if actor.is_system else Actor.system("payments"))
    rest = sorted(set(ids) - set(moved))  # normally few: invoices an earlier payment already settled
    Invoice = _models().Invoice
    for k in range(0, len(rest), 500):
        chunk = rest[k:k + 500]
        found = {r.id: r for r in session.execute(select(Invoice.id, Invoice.number, Invoice.state).where(Invoice.id.in_(chunk)))}
        missing = [i for i in chunk if i not in found]
        if missing:
            raise NotFound(f"invoice {missing[0]} does not exist")
        bad = next((r for r in found.values() if r.state != InvoiceState.PAID), None)
        if bad is not None:
            raise InvoiceTransitionNotAllowed(f"cannot settle invoice {bad.number or bad.id} while it is {bad.state}", field="state",
                                              extra={"state": bad.state, "allowed": allowed_actions(bad.state)})
    return moved


def transition_to(session: Session, *, invoice_id: int, state: str, now: datetime, actor: Actor, reason: str | None = None, manual: bool = True) -> list[str]:
    """Transition by target state (the TMF PATCH shape). Raises as `transition`."""
    inv = get_invoice_row(session, invoice_id=invoice_id)
    if inv.state == state:
        return allowed_actions(inv.state, manual_only=manual)
    action = next((a for a, s in INVOICE.transitions.get(inv.state, {}).items() if str(s) == state), f"to:{state}")
    return transition(session, invoice_id=invoice_id, action=action, now=now, actor=actor, reason=reason, manual=manual)


def invoice_dict(inv: Any) -> dict[str, Any]:
    return {
        "id": inv.id, "account_id": inv.account_id, "bill_run_id": inv.bill_run_id, "kind": inv.kind, "period_start": inv.period_start,
        "period_end": inv.period_end, "number": inv.number, "state": inv.state, "currency": inv.currency, "subtotal_minor": inv.subtotal_minor,
        "tax_minor": inv.tax_minor, "total_minor": inv.total_minor, "issued_at": inv.issued_at, "due_date": inv.due_date, "created_at": inv.created_at,
        "version": inv.version,
    }


def line_dict(ln: Any) -> dict[str, Any]:
    return {
        "id": ln.id, "invoice_id": ln.invoice_id, "account_id": ln.account_id, "product_id": ln.product_id, "offering_id": ln.offering_id,
        "price_id": ln.price_id, "kind": ln.kind, "description": ln.description, "period_start": ln.period_start, "period_end": ln.period_end,
        "quantity": ln.quantity, "unit_amount_minor": ln.unit_amount_minor, "amount_minor": ln.amount_minor, "tax_rate_code": ln.tax_rate_code,
        "tax_minor": ln.tax_minor, "total_minor": ln.total_minor, "currency": ln.currency, "explanation": ln.explanation,
    }


def list_invoices(
    session: Session, *, account_id: int | None = None, state: str | None = None, issued_from: date | None = None, issued_to: date | None = None,
    period_start: date | None = None, finalised_only: bool = False, offset: int = 0, limit: int = 50, tz: str | None = None,
    order_by: list[Any] | None = None,
) -> dict[str, Any]:
    """A page of invoices (newest first, or `order_by`: ORDER BY clauses) with the account name, and the total count for the filters."""
    from opsline.customers.models import Account

    m = _models()
    inv = m.Invoice
    conds = []
    if account_id is not None:
        conds.append(inv.account_id == account_id)
    if state:
        conds.append(inv.state == state)
    if finalised_only:
        conds.append(inv.number.is_not(None))
    if period_start:
        conds.append(inv.period_start == period_start)
    if issued_from:
        conds.append(inv.issued_at >= datetime.combine(issued_from, datetime.min.time()).replace(tzinfo=local_zone(tz)))
    if issued_to:
        conds.append(inv.issued_at < datetime.combine(issued_to, datetime.min.time()).replace(tzinfo=local_zone(tz)))
    total = session.execute(select(func.count()).select_from(inv).where(*conds)).scalar_one()
    rows = session.execute(
        select(inv, Account.name, Account.account_number).join(Account, Account.id == inv.account_id).where(*conds).order_by(*(order_by or [inv.id.desc()])).offset(offset).limit(limit)
    ).all()
    items = [invoice_dict(r[0]) | {"account_name": r[1], "account_number": r[2]} for r in rows]
    return {"items": items, "total": total, "offset": offset, "limit": limit}


def get_invoice(session: Session, *, invoice_id: int) -> dict[str, Any]:
    """An invoice with its lines. Raises NotFound."""
    m = _models()
    inv = get_invoice_row(session, invoice_id=invoice_id)
    lines = session.execute(select(m.InvoiceLine).where(m.InvoiceLine.invoice_id == invoice_id).order_by(m.InvoiceLine.id)).scalars()
    return invoice_dict(inv) | {"lines": [line_dict(ln) for ln in lines], "actions": allowed_actions(inv.state, manual_only=True)}


def lines_by_invoice(session: Session, *, invoice_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Invoice id -> its lines, in one query (list pages and the TMF list avoid one query per invoice)."""
    m = _models()
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in invoice_ids}
    if invoice_ids:
        for ln in session.execute(select(m.InvoiceLine).where(m.InvoiceLine.invoice_id.in_(invoice_ids)).order_by(m.InvoiceLine.id)).scalars():
            out[ln.invoice_id].append(line_dict(ln))
    return out


def list_lines(session: Session, *, invoice_id: int | None = None, account_id: int | None = None, offset: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """Invoice lines of finalised invoices (the TMF AppliedCustomerBillingRate), optionally for one invoice or account."""
    m = _models()
    q = select(m.InvoiceLine, m.Invoice.issued_at, m.Invoice.number).join(m.Invoice, m.Invoice.id == m.InvoiceLine.invoice_id)
    if invoice_id is not None:
        q = q.where(m.InvoiceLine.invoice_id == invoice_id)
    if account_id is not None:
        q = q.where(m.InvoiceLine.account_id == account_id)
    rows = session.execute(q.order_by(m.InvoiceLine.id).offset(offset).limit(limit)).all()
    return [line_dict(r[0]) | {"issued_at": r[1], "invoice_number": r[2]} for r in rows]


def count_lines(session: Session, *, invoice_id: int | None = None, account_id: int | None = None) -> int:
    """How many lines list_lines would return over all pages (same filters)."""
    m = _models()
    q = select(func.count()).select_from(m.InvoiceLine).join(m.Invoice, m.Invoice.id == m.InvoiceLine.invoice_id)
    if invoice_id is not None:
        q = q.where(m.InvoiceLine.invoice_id == invoice_id)
    if account_id is not None:
        q = q.where(m.InvoiceLine.account_id == account_id)
    return int(session.execute(q).scalar_one())


def get_line(session: Session, *, line_id: int) -> dict[str, Any]:
    """One invoice line. Raises NotFound."""
    m = _models()
    row = session.execute(select(m.InvoiceLine, m.Invoice.issued_at, m.Invoice.number).join(m.Invoice, m.Invoice.id == m.InvoiceLine.invoice_id).where(m.InvoiceLine.id == line_id)).first()
    if row is None:
        raise NotFound(f"invoice line {line_id} does not exist")
    return line_dict(row[0]) | {"issued_at": row[1], "invoice_number": row[2]}


def tax_rates(session: Session) -> dict[str, Any]:
    """Tax rate code -> rate (Decimal) and name."""
    m = _models()
    return {t.code: {"rate": t.rate, "name": t.name} for t in session.execute(select(m.TaxRate)).scalars()}
