"""Billing services other areas call: settings, queued one-off charges, account balance and ageing from the ledger."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from opsline.billing.charges import dialect_of
from opsline.billing import ledger
from opsline.billing.models import INVOICE, BillingSetting, Invoice, InvoiceSequence, InvoiceState, PendingCharge, TaxRate
from opsline.config import get_settings
from opsline.core import events, jobs, lifecycle
from opsline.core.errors import InvalidInput, NotFound, TransitionNotAllowed
from opsline.core.events import Actor
from opsline.core.money import Money

AGEING_BUCKETS = ("current", "d30", "d60", "d90", "d120", "d120_plus")
BUCKET_LABELS = {"current": "Current", "d30": "1–30 days", "d60": "31–60 days", "d90": "61–90 days", "d120": "91–120 days", "d120_plus": "120+ days"}


class UnableToQueueCharge(InvalidInput):
    pass


def setting(session: Session, key: str, default: Any = None) -> Any:
    """A typed billing setting (data row), or `default` when it is missing."""
    row = session.get(BillingSetting, key)
    if row is None:
        return default
    if row.value_type == "int":
        return int(row.value)
    if row.value_type == "decimal":
        return Decimal(row.value)
    if row.value_type == "bool":
        return row.value.strip().lower() in ("1", "true", "yes", "on")
    return row.value


def queue_charge(session: Session, *, account_id: int, product_id: int | None, description: str, amount: Money, tax_rate_code: str,
                 reason: str, now: datetime, actor: Actor, idempotency_key: str) -> int:
    """Queue a one-off charge (penalty, reconnection fee, unreturned equipment) for the account's next bill run.

    Idempotent by `idempotency_key`: a repeat returns the first charge's id and changes nothing.
    Raises UnableToQueueCharge (bad amount, tax code, currency) and NotFound (account).
    """
    existing = session.execute(select(PendingCharge.id).where(PendingCharge.idempotency_key == idempotency_key)).scalar_one_or_none()
    if existing is not None:
        return int(existing)
    acc = session.execute(text("SELECT currency FROM account WHERE id = :id"), {"id": account_id}).first()
    if acc is None:
        raise NotFound(f"account {account_id} not found")
    if amount.currency != acc.currency:
        raise UnableToQueueCharge(f"the charge is in {amount.currency} but account {account_id} is billed in {acc.currency}", field="amount")
    if session.get(TaxRate, tax_rate_code) is None:
        raise UnableToQueueCharge(f"unknown tax rate '{tax_rate_code}'", field="tax_rate_code")
    if not description.strip():
        raise UnableToQueueCharge("a description is required", field="description")
    minor = amount.rounded().minor
    values = dict(account_id=account_id, product_id=product_id, description=description.strip()[:300], amount_minor=minor, currency=amount.currency,
                  tax_rate_code=tax_rate_code, reason=reason[:300], state="pending", idempotency_key=idempotency_key, created_at=now, created_by=actor.name)
    ins = (pg_insert if dialect_of(session).pg else sqlite_insert)(PendingCharge).values(**values).on_conflict_do_nothing(index_elements=["idempotency_key"])
    session.execute(ins)
    charge_id = int(session.execute(select(PendingCharge.id).where(PendingCharge.idempotency_key == idempotency_key)).scalar_one())
    events.record(session, now=now, actor=actor, entity_type="pending_charge", entity_id=charge_id, action="queued", account_id=account_id,
                  reason=reason, after={"description": description, "amount_minor": minor, "currency": amount.currency, "tax_rate_code": tax_rate_code})
    return charge_id


def account_balance(session: Session, *, account_id: int, as_of: datetime) -> dict[str, Any]:
    """The account's ledger balance per currency at `as_of`: {"currency", "balance_minor", "balance": Money, "by_currency": {...}}."""
    dia = dialect_of(session)
    rows = session.execute(
        text("SELECT currency, COALESCE(SUM(amount_minor), 0) AS bal FROM ledger_entry WHERE account_id = :a AND posted_at <= :t GROUP BY currency"),
        {"a": account_id, "t": dia.bind_ts(as_of)},
    ).all()
    by = {r.currency: int(r.bal) for r in rows}
    if not by:
        cur = session.execute(text("SELECT currency FROM account WHERE id = :a"), {"a": account_id}).scalar()
        by = {cur or get_settings().currency: 0}
    currency = max(by, key=lambda c: abs(by[c]))
    return {"currency": currency, "balance_minor": by[currency], "balance": Money.from_minor(by[currency], currency), "by_currency": by}


def open_debits_cte(dia: Any, *, one_account: bool = False) -> str:
    """The body of a WITH clause whose last name, `x(account_id, currency, due, open_minor)`, is every ledger debit posted by
    `:t` with what remains open of it (for one account `:a`, or all). Reports that age debt differently (per account, per
    segment) build on this so every ageing in Opsline settles debits the same way."""
    # Credits (payments, credit notes: negative entries) settle the oldest debits first (FIFO by due date).
    # Each debit keeps what remains after the credits: min(amount, running_total - credits), never below zero.
    acc = "AND account_id = :a" if one_account else ""
    return f"""deb AS (
        SELECT account_id, currency, amount_minor, COALESCE(due_date, {"CAST(posted_at AS DATE)" if dia.pg else "date(posted_at)"}) AS due, id
        FROM ledger_entry WHERE amount_minor > 0 AND posted_at <= :t {acc}),
    cred AS (
        SELECT account_id, currency, -SUM(amount_minor) AS paid FROM ledger_entry WHERE amount_minor < 0 AND posted_at <= :t {acc} GROUP BY account_id, currency),
    run AS (
        SELECT d.account_id, d.currency, d.due, d.amount_minor,
               SUM(d.amount_minor) OVER (PARTITION BY d.account_id, d.currency ORDER BY d.due, d.id) AS cum, COALESCE(c.paid, 0) AS paid
        FROM deb d LEFT JOIN cred c ON c.account_id = d.account_id AND c.currency = d.currency),
    x AS (
        SELECT account_id, currency, due, CASE WHEN cum - paid <= 0 THEN 0 WHEN cum - paid < amount_minor THEN cum - paid ELSE amount_minor END AS open_minor
        FROM run)"""


def _ageing_sql(dia: Any, one_account: bool) -> str:
    days = dia.days("x.due", dia.d("asof_d"))
    return f"""
    WITH {open_debits_cte(dia, one_account=one_account)}
    SELECT currency,
           SUM(CASE WHEN {days} <= 0 THEN open_minor ELSE 0 END) AS current,
           SUM(CASE WHEN {days} BETWEEN 1 AND 30 THEN open_minor ELSE 0 END) AS d30,
           SUM(CASE WHEN {days} BETWEEN 31 AND 60 THEN open_minor ELSE 0 END) AS d60,
           SUM(CASE WHEN {days} BETWEEN 61 AND 90 THEN open_minor ELSE 0 END) AS d90,
           SUM(CASE WHEN {days} BETWEEN 91 AND 120 THEN open_minor ELSE 0 END) AS d120,
           SUM(CASE WHEN {days} > 120 THEN open_minor ELSE 0 END) AS d120_plus,
           COUNT(DISTINCT CASE WHEN open_minor > 0 THEN account_id END) AS accounts
    FROM x GROUP BY currency ORDER BY currency"""


def ageing(session: Session, *, account_id: int | None, as_of: datetime) -> list[dict[str, Any]]:
    """Open debit ageing by days past due (current, 1–30, 31–60, 61–90, 91–120, 120+) per currency, for one account or all (set-based).

    Returns one dict per currency: {"currency", "current", "d30", "d60", "d90", "d120", "d120_plus", "total", "accounts"} (minor units).
    Unallocated credit beyond the open debits appears as a negative "current" amount.
    """
    dia = dialect_of(session)
    params: dict[str, Any] = {"t": dia.bind_ts(as_of), "asof_d": dia.bind_date(as_of.date())}
    if account_id is not None:
        params["a"] = account_id
    rows = session.execute(text(_ageing_sql(dia, account_id is not None)), params).all()
    out = []
    for r in rows:
        d = {"currency": r.currency, **{b: int(getattr(r, b) or 0) for b in AGEING_BUCKETS}, "accounts": int(r.accounts or 0)}
        d["total"] = sum(d[b] for b in AGEING_BUCKETS)
        out.append(d)
    if account_id is not None:
        bal = account_balance(session, account_id=account_id, as_of=as_of)
        for cur, b in bal["by_currency"].items():
            row = next((o for o in out if o["currency"] == cur), None)
            if row is None:
                row = {"currency": cur, **{k: 0 for k in AGEING_BUCKETS}, "accounts": 0, "total": 0}
                out.append(row)
            if b < row["total"]:  # credit beyond what the debits need
                row["current"] += b - row["total"]
                row["total"] = b
    return out


def recent_invoices(session: Session, *, account_id: int, limit: int = 6) -> list[dict[str, Any]]:
    rows = session.execute(
        text("SELECT id, number, state, kind, period_start, period_end, total_minor, currency, due_date FROM invoice WHERE account_id = :a "
             "ORDER BY period_start DESC, id DESC LIMIT :n"), {"a": account_id, "n": limit}).mappings().all()
    out = []
    for r in rows:
        d = dict(r)
        end = as_date(d["period_end"])
        d["period_last_day"] = end - timedelta(days=1) if end else None
        out.append(d)
    return out


def as_date(v: Any) -> date | None:
    if v is None or isinstance(v, date):
        return v
    return date.fromisoformat(str(v)[:10])


class InvoiceAlreadyIssued(TransitionNotAllowed):
    pass


def invoice_number_prefix(session: Session, *, now: datetime) -> str:
    return f"{setting(session, 'invoice_number_prefix', 'INV')}-{now.year}"


def reserve_invoice_numbers(session: Session, *, prefix: str, count: int) -> int:
    """Take `count` consecutive numbers from the gapless sequence for `prefix`; returns the first. The sequence row stays
    locked (FOR UPDATE on PostgreSQL; SQLite's write lock) until the caller's transaction ends, so numbers never gap or repeat."""
    dia = dialect_of(session)
    ins = (pg_insert if dia.pg else sqlite_insert)(InvoiceSequence).values(prefix=prefix, next_number=1).on_conflict_do_nothing(index_elements=["prefix"])
    session.execute(ins)
    q = select(InvoiceSequence).where(InvoiceSequence.prefix == prefix).execution_options(populate_existing=True)
    if dia.pg:
        q = q.with_for_update()
    seq = session.execute(q).scalar_one()
    base = int(seq.next_number)
    seq.next_number = base + count
    session.flush()
    return base


def finalise_invoice(session: Session, *, invoice_id: int, now: datetime, actor: Actor) -> dict[str, Any]:
    """Issue one draft invoice outside a bill run (final or ad-hoc): next gapless number, state new (invoice lifecycle
    `finalise`), due date from the account's terms, ledger entry, PDF and e-mail jobs. Raises NotFound, InvoiceAlreadyIssued."""
    inv = session.get(Invoice, invoice_id)
    if inv is None:
        raise NotFound(f"invoice {invoice_id} not found")
    if inv.state != InvoiceState.DRAFT:
        raise InvoiceAlreadyIssued(f"invoice {inv.number or inv.id} is already issued ({inv.state})", field="state")
    terms = session.execute(text("SELECT payment_terms_days FROM account WHERE id = :a"), {"a": inv.account_id}).scalar_one()
    prefix = invoice_number_prefix(session, now=now)
    n = reserve_invoice_numbers(session, prefix=prefix, count=1)
    inv.number = f"{prefix}-{n:08d}"
    inv.issued_at = now
    inv.due_date = now.date() + timedelta(days=int(terms))
    lifecycle.transition(session, INVOICE, inv, "finalise", now=now, actor=actor, label=f"invoice {inv.number}",
                         details={"number": inv.number, "total_minor": inv.total_minor, "due_date": inv.due_date.isoformat()})
    if inv.total_minor:
        ledger.post(session, account_id=inv.account_id, kind="invoice", ref_type="invoice", ref_id=inv.id,
                    amount=Money.from_minor(inv.total_minor, inv.currency), now=now, due_date=inv.due_date, description=f"Invoice {inv.number}")
    for kind in ("invoicing.render_pdf", "invoicing.email_invoice"):
        jobs.enqueue(session, kind=kind, payload={"invoice_id": inv.id}, now=now, idempotency_key=f"{kind}:{inv.id}", serial_key=f"invoice:{inv.id}")
    session.flush()
    return {"id": inv.id, "number": inv.number, "due_date": inv.due_date}
