"""Account statements from the ledger: opening balance, entries with a running balance, closing balance."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsline.billing.invoicing.claims import disputed_amount
from opsline.billing.models import LedgerEntry
from opsline.billing.invoicing.tz import local_zone
from opsline.core.errors import InvalidInput, NotFound
from opsline.customers.models import Account


def account_row(session: Session, *, account_id: int) -> dict[str, Any]:
    """The account fields an invoice or statement prints. Raises NotFound."""
    a = session.get(Account, account_id)
    if a is None:
        raise NotFound(f"account {account_id} does not exist")
    addr = [x for x in (a.billing_line1, a.billing_line2, a.billing_suburb, a.billing_city, a.billing_postal_code) if x]
    return {"id": a.id, "account_number": a.account_number, "name": a.name, "kind": a.kind, "email": a.email, "phone": a.phone, "address": addr,
            "vat_number": a.vat_number if a.vat_registered else None, "currency": a.currency, "payment_terms_days": a.payment_terms_days}


def _start_of(d: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(d, time.min).replace(tzinfo=tz)


def balance_at(session: Session, *, account_id: int, before: datetime, exclude_ref: tuple[str, int] | None = None) -> int:
    """Ledger balance (minor units) of entries posted before an instant."""
    q = select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0)).where(LedgerEntry.account_id == account_id, LedgerEntry.posted_at < before)
    if exclude_ref:
        q = q.where(~((LedgerEntry.ref_type == exclude_ref[0]) & (LedgerEntry.ref_id == exclude_ref[1])))
    return int(session.execute(q).scalar_one())


def statement(session: Session, *, account_id: int, date_from: date | None, date_to: date | None, now: datetime,
              tz: str | ZoneInfo | None = None) -> dict[str, Any]:
    """Ledger statement for [date_from, date_to] (inclusive local dates; default: the last 90 days to today).
    Raises NotFound, InvalidInput (from after to)."""
    acc = account_row(session, account_id=account_id)
    zi = local_zone(tz)
    today = now.astimezone(zi).date()
    date_to = date_to or today
    date_from = date_from or (date_to - timedelta(days=90))
    if date_from > date_to:
        raise InvalidInput(f"'from' ({date_from}) is after 'to' ({date_to})", field="date_from")
    start, end = _start_of(date_from, zi), _start_of(date_to + timedelta(days=1), zi)
    opening = balance_at(session, account_id=account_id, before=start)
    rows = session.execute(select(LedgerEntry).where(LedgerEntry.account_id == account_id, LedgerEntry.posted_at >= start, LedgerEntry.posted_at < end)
                           .order_by(LedgerEntry.posted_at, LedgerEntry.id)).scalars()
    running = opening
    entries = []
    for e in rows:
        running += e.amount_minor
        entries.append({"id": e.id, "posted_at": e.posted_at, "kind": e.kind, "ref_type": e.ref_type, "ref_id": e.ref_id, "description": e.description,
                        "debit_minor": e.amount_minor if e.amount_minor > 0 else 0, "credit_minor": -e.amount_minor if e.amount_minor < 0 else 0,
                        "amount_minor": e.amount_minor, "balance_minor": running, "due_date": e.due_date})
    currency = acc["currency"]
    return {"account": acc, "date_from": date_from, "date_to": date_to, "opening_minor": opening, "closing_minor": running, "entries": entries, "currency": currency,
            "current_balance_minor": balance_at(session, account_id=account_id, before=now + timedelta(microseconds=1)),
            "disputed_minor": disputed_amount(session, account_id=account_id, currency=currency).minor}
