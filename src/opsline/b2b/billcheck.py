"""B2B billing peer review: when a bill run opens for review, each B2B draft invoice is compared with its contract's
monthly value, with the customer's previous invoice, and with the approved service credits due; every difference is a
check a reviewer (never the run's starter) signs off with a note, and the run cannot be approved while one is open
(a same-transaction reaction to `bill_run.approved` refuses it, so nothing changes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from opsline.b2b.models import B2BBillCheck
from opsline.core import events
from opsline.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from opsline.core.events import Actor


class PeerReviewOpen(Conflict):
    title = "B2B billing peer review not finished"
    type_slug = "b2b-peer-review-open"


class UnableToSignOff(InvalidInput):
    title = "Unable to sign off the difference"
    type_slug = "b2b-signoff-invalid"


class SignOffNotAllowed(PermissionDenied):
    title = "A second person signs off"
    type_slug = "b2b-signoff-four-eyes"


# B2B draft invoices of the run with their account's active contract (the lowest id when there are several)
_BASE = """WITH inv AS (
    SELECT i.id AS invoice_id, i.account_id, i.currency, i.period_start, MIN(c.id) AS contract_id
    FROM invoice i JOIN account a ON a.id = i.account_id AND a.kind = 'b2b'
    JOIN b2b_contract c ON c.account_id = i.account_id AND c.state = 'active'
    WHERE i.bill_run_id = :run
    GROUP BY i.id, i.account_id, i.currency, i.period_start),
credit_lines AS (
    SELECT l.invoice_id, l.amount_minor FROM invoice_line l JOIN pending_charge pc ON pc.id = l.pending_charge_id
    WHERE pc.idempotency_key LIKE 'b2b-credit:%')"""

_VS_CONTRACT = _BASE + """
INSERT INTO b2b_bill_check (bill_run_id, invoice_id, account_id, contract_id, kind, expected_minor, actual_minor, currency, state, created_at)
SELECT :run, inv.invoice_id, inv.account_id, inv.contract_id, 'vs_contract', c.monthly_value_minor, COALESCE(r.total, 0), inv.currency, 'open', :now
FROM inv JOIN b2b_contract c ON c.id = inv.contract_id
LEFT JOIN (SELECT invoice_id, SUM(amount_minor) AS total FROM invoice_line WHERE kind = 'recurring' GROUP BY invoice_id) r ON r.invoice_id = inv.invoice_id
WHERE c.monthly_value_minor > 0 AND COALESCE(r.total, 0) <> c.monthly_value_minor"""

_VS_LAST = _BASE + """,
cur AS (SELECT inv.*, (SELECT COALESCE(SUM(l.amount_minor), 0) FROM invoice_line l WHERE l.invoice_id = inv.invoice_id)
                      - (SELECT COALESCE(SUM(cl.amount_minor), 0) FROM credit_lines cl WHERE cl.invoice_id = inv.invoice_id) AS amount FROM inv),
prev AS (SELECT cur.invoice_id, (SELECT p.subtotal_minor FROM invoice p WHERE p.account_id = cur.account_id AND p.period_start < cur.period_start
                                  AND p.state <> 'draft' AND p.currency = cur.currency ORDER BY p.period_start DESC, p.id DESC LIMIT 1) AS before_minor FROM cur)
INSERT INTO b2b_bill_check (bill_run_id, invoice_id, account_id, contract_id, kind, expected_minor, actual_minor, currency, state, created_at)
SELECT :run, cur.invoice_id, cur.account_id, cur.contract_id, 'vs_last_month', prev.before_minor, cur.amount, cur.currency, 'open', :now
FROM cur JOIN prev ON prev.invoice_id = cur.invoice_id
WHERE prev.before_minor IS NOT NULL AND prev.before_minor <> cur.amount"""

_CREDIT_MISSING = _BASE + """
INSERT INTO b2b_bill_check (bill_run_id, invoice_id, account_id, contract_id, kind, expected_minor, actual_minor, currency, state, created_at)
SELECT :run, inv.invoice_id, inv.account_id, inv.contract_id, 'credit_missing', -due.total, COALESCE(-on_bill.total, 0), inv.currency, 'open', :now
FROM inv
JOIN (SELECT sc.account_id, SUM(sc.amount_minor) AS total FROM b2b_service_credit sc JOIN pending_charge pc ON pc.id = sc.pending_charge_id
      WHERE sc.state = 'approved' AND pc.state = 'pending' GROUP BY sc.account_id) due ON due.account_id = inv.account_id
LEFT JOIN (SELECT invoice_id, SUM(amount_minor) AS total FROM credit_lines GROUP BY invoice_id) on_bill ON on_bill.invoice_id = inv.invoice_id
WHERE COALESCE(-on_bill.total, 0) < due.total"""


def _bind_now(session: Session, now: datetime) -> Any:
    return now if session.get_bind().dialect.name == "postgresql" else now.strftime("%Y-%m-%d %H:%M:%S.%f")


def compute(session: Session, *, bill_run_id: int, now: datetime) -> int:
    """Record the differences of the run's B2B draft invoices (three INSERT ... SELECT; a repeat adds nothing new).
    Returns the number of open checks."""
    p = {"run": bill_run_id, "now": _bind_now(session, now)}
    tail = " ON CONFLICT (bill_run_id, invoice_id, kind) DO NOTHING"
    for sql in (_VS_CONTRACT, _VS_LAST, _CREDIT_MISSING):
        session.execute(text(sql + tail), p)
    return open_count(session, bill_run_id=bill_run_id)


def open_count(session: Session, *, bill_run_id: int) -> int:
    from sqlalchemy import func

    return int(session.execute(select(func.count()).select_from(B2BBillCheck).where(B2BBillCheck.bill_run_id == bill_run_id,
                                                                                   B2BBillCheck.state == "open")).scalar_one())


def refuse_approval_while_open(session: Session, *, bill_run_id: int) -> None:
    """Raises PeerReviewOpen (field `bill_run_id`) while a B2B difference of the run waits for a sign-off."""
    n = open_count(session, bill_run_id=bill_run_id)
    if n:
        raise PeerReviewOpen(f"bill run {bill_run_id} has {n} B2B billing difference(s) waiting for a reviewer's sign-off (see /b2b/billcheck)",
                             field="bill_run_id", extra={"open_checks": n})


def sign_off(session: Session, *, check_id: int, note: str, now: datetime, actor: Actor) -> None:
    """Sign off one difference with a note. Raises NotFound, UnableToSignOff (field `note` empty, or `state` already
    signed), SignOffNotAllowed (the reviewer started the bill run)."""
    c = session.get(B2BBillCheck, check_id)
    if c is None:
        raise NotFound(f"billing difference {check_id} not found", field="check_id")
    if c.state != "open":
        raise UnableToSignOff(f"difference {check_id} was already signed off by {c.signed_by}", field="state")
    if not (note or "").strip():
        raise UnableToSignOff("say why the difference is right (or what was corrected)", field="note")
    starter = session.execute(text("SELECT created_by FROM bill_run WHERE id = :r"), {"r": c.bill_run_id}).scalar()
    if starter == actor.name:
        raise SignOffNotAllowed(f"{actor.name} started bill run {c.bill_run_id}; another reviewer signs off its differences", field="actor")
    c.state, c.signed_by, c.signed_at, c.note = "signed_off", actor.name, now, note.strip()
    events.record(session, now=now, actor=actor, entity_type="b2b_bill_check", entity_id=c.id, action="signed_off", account_id=c.account_id,
                  reason=c.note, after={"kind": c.kind, "expected_minor": c.expected_minor, "actual_minor": c.actual_minor})


def listing(session: Session, *, state: str | None = "open", limit: int = 500) -> list[dict[str, Any]]:
    from opsline.customers.models import Account

    q = (select(B2BBillCheck.id, B2BBillCheck.bill_run_id, B2BBillCheck.invoice_id, B2BBillCheck.kind, B2BBillCheck.expected_minor,
                B2BBillCheck.actual_minor, B2BBillCheck.currency, B2BBillCheck.state, B2BBillCheck.signed_by, B2BBillCheck.note, Account.name.label("account_name"))
         .join(Account, Account.id == B2BBillCheck.account_id))
    if state:
        q = q.where(B2BBillCheck.state == state)
    return [dict(r._mapping) for r in session.execute(q.order_by(B2BBillCheck.bill_run_id.desc(), B2BBillCheck.id).limit(limit)).all()]
