"""The account ledger's one writer: every money movement on an account (invoice, credit note, payment, reversal,
refund, adjustment, write-off) is posted through `post()` (one entry) or `post_rows()` (set-based, for batch runs).
Signed amounts: + means the customer owes more, - means less. Entries are never edited; a mistake is reversed."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Iterable

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from opsline.billing.models import LedgerEntry, LedgerKind
from opsline.core.errors import InvalidInput
from opsline.core.money import Money


class UnableToPost(InvalidInput):
    title = "Unable to post to the ledger"
    type_slug = "unable-to-post"


def post(session: Session, *, account_id: int, kind: str, ref_type: str, ref_id: int, amount: Money, now: datetime,
         due_date: date | None = None, description: str = "") -> LedgerEntry:
    """Post one signed entry in the caller's transaction. Raises UnableToPost (unknown kind, zero amount)."""
    if kind not in {k.value for k in LedgerKind}:
        raise UnableToPost(f"unknown ledger kind {kind!r}", field="kind")
    if amount.is_zero():
        raise UnableToPost("a ledger entry of zero moves nothing", field="amount")
    entry = LedgerEntry(account_id=account_id, kind=kind, ref_type=ref_type, ref_id=ref_id, amount_minor=amount.minor,
                        currency=amount.currency, posted_at=now, due_date=due_date, description=description[:300])
    session.add(entry)
    session.flush([entry])
    return entry


def post_rows(session: Session, rows: Iterable[dict[str, Any]]) -> int:
    """Set-based posting for batch work: rows are dicts with the LedgerEntry columns (amount_minor, currency, ...).
    Returns the number of rows posted."""
    batch = [r for r in rows if r.get("amount_minor")]
    if batch:
        session.execute(insert(LedgerEntry), batch)
    return len(batch)


def balance_minor(session: Session, *, account_id: int) -> int:
    return int(session.execute(select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0))
                               .where(LedgerEntry.account_id == account_id)).scalar_one())


LEDGER_COLUMNS = ("account_id", "kind", "ref_type", "ref_id", "amount_minor", "currency", "posted_at", "due_date", "description")


def post_select(session: Session, *, select_sql: str, params: dict[str, Any]) -> int:
    """Set-based posting straight from a SELECT (a bill run posts a million invoices without a Python row loop).
    `select_sql` must return the LEDGER_COLUMNS in that order; rows of zero are left out. Returns the rows posted."""
    cols = ", ".join(LEDGER_COLUMNS)
    res = session.execute(text(f"INSERT INTO ledger_entry ({cols}) SELECT {cols} FROM ({select_sql}) x WHERE x.amount_minor <> 0"), params)
    return int(res.rowcount or 0)
