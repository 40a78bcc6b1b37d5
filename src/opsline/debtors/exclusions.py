"""Who a dunning run must leave alone, as named set-based queries (each selects account ids). The run marks candidates
with the first exclusion that holds; adding one (the next slice's active arrangements) is one more function in EXCLUSIONS.

- `in_dispute`: an open billing claim (submitted / in review): never act on money in dispute.
- `unallocated_money`: money that may be theirs and is not on the account yet: a payment proposal waiting for a person,
  or an open suspense item whose payer bank account has paid this account before or whose reference names its number.
- `on_hold`: a person held the account out of dunning until a date.
- `under_arrangement`: an active promise to pay or pay-off plan (the run reviews arrangements first, so a broken one
  no longer holds and dunning resumes from where the account stood).
- `prescribed`: part of the debt fell due three years ago or more (Prescription Act): never dunned; the desk writes
  the prescribed part off (debtors.prescription).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Callable

from sqlalchemy import text
from sqlalchemy.orm import Session

from opsline.billing.invoicing.models import OPEN_CLAIM_STATES
from opsline.billing.sql import Dialect
from opsline.db.bulk import copy_rows
from opsline.debtors.arrangements import broken_sql
from opsline.payments.tokens import account_tokens

SUSPENSE_NAMED = "dn_suspense_named"


@dataclass(frozen=True)
class Exclusion:
    code: str
    label: str
    sql: Callable[[Session, Dialect, date], tuple[str, dict[str, Any]]]  # -> (SELECT account_id ..., params)


def in_dispute(session: Session, d: Dialect, run_date: date) -> tuple[str, dict[str, Any]]:
    marks = ", ".join(f":cs{k}" for k in range(len(OPEN_CLAIM_STATES)))
    return (f"SELECT account_id FROM billing_claim WHERE state IN ({marks})",
            {f"cs{k}": s for k, s in enumerate(OPEN_CLAIM_STATES)})


def _suspense_named(session: Session) -> None:
    """Account numbers named in the references of open suspense items (few rows: read and tokenised here)."""
    session.execute(text(f"DROP TABLE IF EXISTS {SUSPENSE_NAMED}"))
    session.execute(text(f"CREATE TEMP TABLE {SUSPENSE_NAMED} (account_number VARCHAR(20) PRIMARY KEY)"))
    refs = session.execute(text("""SELECT p.reference FROM suspense_item si JOIN payment p ON p.id = si.payment_id
                                   WHERE si.closed_at IS NULL AND p.reference <> ''""")).scalars()
    numbers: set[str] = set()
    for ref in refs:
        valid, _ = account_tokens(ref)
        numbers |= valid
    if numbers:
        copy_rows(session.connection(), SUSPENSE_NAMED, ("account_number",), ((n,) for n in sorted(numbers)))


def unallocated_money(session: Session, d: Dialect, run_date: date) -> tuple[str, dict[str, Any]]:
    _suspense_named(session)
    return (f"""SELECT account_id FROM payment_allocation WHERE state = 'proposed'
                UNION SELECT kp.account_id FROM suspense_item si JOIN payment p ON p.id = si.payment_id
                      JOIN payment_known_payer kp ON kp.payer_account = p.payer_account
                      WHERE si.closed_at IS NULL AND p.payer_account <> ''
                UNION SELECT a.id FROM {SUSPENSE_NAMED} n JOIN account a ON a.account_number = n.account_number""", {})


def on_hold(session: Session, d: Dialect, run_date: date) -> tuple[str, dict[str, Any]]:
    return (f"SELECT account_id FROM dunning_hold WHERE state = 'active' AND valid_from <= {d.d('hold_on')} AND valid_to > {d.d('hold_on')}",
            {"hold_on": d.bind_date(run_date)})


def prescribed(session: Session, d: Dialect, run_date: date) -> tuple[str, dict[str, Any]]:
    from opsline.debtors import prescription

    return prescription.exclusion_sql(d, run_date)


def under_arrangement(session: Session, d: Dialect, run_date: date) -> tuple[str, dict[str, Any]]:
    # the run breaks missed arrangements before it looks; leaving them out here lets a dry run show the same
    return (f"SELECT account_id FROM arrangement WHERE state = 'active' AND id NOT IN ({broken_sql(d)})", {"run_date": d.bind_date(run_date)})


EXCLUSIONS: tuple[Exclusion, ...] = (
    Exclusion("in_dispute", "Money in dispute (open billing claim)", in_dispute),
    Exclusion("unallocated_money", "Unallocated money that may be theirs (proposal or suspense)", unallocated_money),
    Exclusion("on_hold", "Held out of dunning by a person", on_hold),
    Exclusion("under_arrangement", "Under an arrangement (promise to pay or pay-off plan)", under_arrangement),
    Exclusion("prescribed", "Prescribed debt (over 3 years past due): never dunned, write it off", prescribed),
)
LABELS = {e.code: e.label for e in EXCLUSIONS}


def excluded_accounts(session: Session, *, run_date: date) -> dict[int, str]:
    """Account id -> the first exclusion that holds on `run_date` (for one account's page or a test; runs use the SQL)."""
    d = Dialect(session.get_bind().dialect.name)
    out: dict[int, str] = {}
    for e in EXCLUSIONS:
        sql, params = e.sql(session, d, run_date)
        for (acc,) in session.execute(text(sql), params).all():
            out.setdefault(int(acc), e.code)
    return out
