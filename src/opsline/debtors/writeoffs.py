"""Write-offs: a person proposes writing off an account's debt (one account, or a filtered set in one batch), a debtors
manager who is not the proposer approves (four eyes), and the approval posts a ledger entry of kind `write_off` that
settles the oldest debt first. Each proposal shows its VAT relief: per VAT rate of the invoices it writes off, the VAT
fraction of the gross written off (gross x rate / (1 + rate), half-up), which finance claims back (VAT Act s22).

Every step writes an audit event (the account timeline) and a memo on the account."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable

from sqlalchemy import delete, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opsline.billing import ledger
from opsline.billing.sql import Dialect, dialect_of
from opsline.billing.tax import UnknownTaxRate, rate_for
from opsline.core import events, lifecycle
from opsline.core.batching import pages
from opsline.core.errors import Conflict, InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.core.money import Money, UnparseableAmount, parse_minor
from opsline.customers import service as customers
from opsline.customers.models import Account
from opsline.customers.schemas import MemoIn
from opsline.db.base import sqlite_utc
from opsline.db.bulk import copy_rows
from opsline.db.session import lock_for_write
from opsline.debtors import prescription
from opsline.debtors.models import (WRITE_OFF, WRITE_OFF_BATCH, ActionState, DunningAction, StepAction, WriteOff, WriteOffBatch,
                                    WriteOffState, WriteOffVat)

OPEN_STATES = (WriteOffState.PROPOSED, WriteOffState.APPROVED)
NO_VAT = ""  # debt not from an invoice (adjustments, fees posted directly): no VAT to claim back
SYSTEM = Actor.system("write-off")
ALLOC = "wo_alloc"


class UnableToWriteOff(InvalidInput):
    title = "Unable to write off"
    type_slug = "unable-to-write-off"


class WriteOffAlreadyProposed(UnableToWriteOff, Conflict):
    """The account already has an open write-off (proposed or approved), possibly proposed a moment ago by someone else."""

    status = 409
    title = "Write-off already proposed"
    type_slug = "write-off-already-proposed"


def ref(write_off_id: int) -> str:
    return f"WO-{write_off_id}"


def batch_ref(batch_id: int) -> str:
    return f"WOB-{batch_id}"


def parse_amount(raw: str | None, *, currency: str, field: str = "amount") -> Money | None:
    """'1 234.50' -> Money; blank -> None (the whole balance). Raises UnableToWriteOff naming the field."""
    if not (raw or "").strip():
        return None
    try:
        return Money.from_minor(parse_minor(raw or "", currency), currency)
    except UnparseableAmount as exc:
        raise UnableToWriteOff(str(exc), field=field) from None


# --- allocation and VAT relief ------------------------------------------------------------------------------------------

def _x(session: Session, sql: str, params: dict[str, Any] | None = None) -> Any:
    return session.execute(text(sql), params or {})


def _alloc_table(session: Session, rows: Iterable[tuple[int, int, int]]) -> None:
    """Temp table of (write_off_id, account_id, amount_minor) to allocate."""
    _x(session, f"DROP TABLE IF EXISTS {ALLOC}")
    _x(session, f"CREATE TEMP TABLE {ALLOC} (write_off_id BIGINT PRIMARY KEY, account_id BIGINT, amount_minor BIGINT)")
    copy_rows(session.connection(), ALLOC, ("write_off_id", "account_id", "amount_minor"), rows)


def _allocation_sql(d: Dialect) -> str:
    """Each write-off in wo_alloc spread over its account's open debits, oldest due first (credits already settled the
    oldest, as in billing.service.open_debits_cte): (write_off_id, ref_type, ref_id, due, allocated_minor)."""
    due = f"COALESCE(le.due_date, {'CAST(le.posted_at AS DATE)' if d.pg else 'date(le.posted_at)'})"
    least = d.least
    return f"""
    WITH deb AS (SELECT le.id, le.account_id, le.ref_type, le.ref_id, le.amount_minor, {due} AS due
                 FROM ledger_entry le JOIN {ALLOC} w ON w.account_id = le.account_id WHERE le.amount_minor > 0),
    cred AS (SELECT le.account_id, -SUM(le.amount_minor) AS paid FROM ledger_entry le JOIN {ALLOC} w ON w.account_id = le.account_id
             WHERE le.amount_minor < 0 GROUP BY le.account_id),
    run AS (SELECT d.id, d.account_id, d.ref_type, d.ref_id, d.due, d.amount_minor, COALESCE(c.paid, 0) AS paid,
                   SUM(d.amount_minor) OVER (PARTITION BY d.account_id ORDER BY d.due, d.id) AS cum
            FROM deb d LEFT JOIN cred c ON c.account_id = d.account_id),
    op AS (SELECT account_id, id, ref_type, ref_id, due, cum - paid AS open_cum,
                  CASE WHEN cum - paid <= 0 THEN 0 WHEN cum - paid < amount_minor THEN cum - paid ELSE amount_minor END AS open_minor
           FROM run)
    SELECT w.write_off_id, op.ref_type, op.ref_id, op.due,
           {least('op.open_minor', 'w.amount_minor - (op.open_cum - op.open_minor)')} AS allocated_minor
    FROM op JOIN {ALLOC} w ON w.account_id = op.account_id
    WHERE op.open_minor > 0 AND op.open_cum - op.open_minor < w.amount_minor
    ORDER BY w.write_off_id, op.due, op.id"""


def relief(gross_minor: int, rate: Decimal) -> int:
    """The VAT fraction of a VAT-inclusive amount: gross x rate / (1 + rate), rounded half-up to the cent."""
    return int((Decimal(gross_minor) * rate / (1 + rate)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _split(amount: int, weights: dict[str, int]) -> dict[str, int]:
    """`amount` split over codes in proportion to `weights` by largest remainder (ties to the code first by name)."""
    total = sum(weights.values())
    if total <= 0 or len(weights) == 1:
        return {next(iter(weights)): amount} if weights else {}
    exact = {c: Decimal(amount) * w / total for c, w in weights.items()}
    out = {c: int(e.to_integral_value(rounding="ROUND_FLOOR")) for c, e in exact.items()}
    for c in sorted(exact, key=lambda c: (-(exact[c] - out[c]), c))[: amount - sum(out.values())]:
        out[c] += 1
    return out


@dataclass
class _Vat:
    rate: Decimal
    gross_minor: int = 0


def _allocate(session: Session) -> dict[int, dict[str, _Vat]]:
    """Allocate every write-off in wo_alloc: write_off_id -> {tax code: rate and gross written off under it}. Invoices
    with lines at several rates are split in proportion to each rate's line totals."""
    d = dialect_of(session)
    rows = _x(session, _allocation_sql(d)).all()
    inv_ids = sorted({int(r.ref_id) for r in rows if r.ref_type == "invoice"})
    lines: dict[int, dict[str, int]] = {}
    issued: dict[int, date] = {}
    for part in pages(inv_ids, 5000):
        for r in _x(session, f"""SELECT l.invoice_id, l.tax_rate_code, SUM(l.total_minor) AS gross FROM invoice_line l
                                 WHERE l.invoice_id IN ({','.join(str(i) for i in part)}) GROUP BY l.invoice_id, l.tax_rate_code"""):
            lines.setdefault(int(r.invoice_id), {})[r.tax_rate_code] = int(r.gross)
        for r in _x(session, f"SELECT id, issued_at, period_start FROM invoice WHERE id IN ({','.join(str(i) for i in part)})"):
            at = r.issued_at or r.period_start
            issued[int(r.id)] = at if isinstance(at, date) and not isinstance(at, datetime) else (
                at.date() if isinstance(at, datetime) else date.fromisoformat(str(at)[:10]))
    rates: dict[tuple[str, date], Decimal] = {}

    def rate(code: str, on: date) -> Decimal:
        if (code, on) not in rates:
            try:
                rates[(code, on)] = rate_for(session, code=code, on=on)
            except UnknownTaxRate:  # a rate ended or not yet valid on that day: the code's rate as stored
                rates[(code, on)] = Decimal(_x(session, "SELECT rate FROM tax_rate WHERE code = :c", {"c": code}).scalar() or 0)
        return rates[(code, on)]

    out: dict[int, dict[str, _Vat]] = {}
    for r in rows:
        per = out.setdefault(int(r.write_off_id), {})
        amount = int(r.allocated_minor)
        weights = lines.get(int(r.ref_id), {}) if r.ref_type == "invoice" else {}
        if not weights or sum(weights.values()) <= 0:
            per.setdefault(NO_VAT, _Vat(Decimal(0))).gross_minor += amount
            continue
        for code, part in _split(amount, weights).items():
            per.setdefault(code, _Vat(rate(code, issued[int(r.ref_id)]))).gross_minor += part
    return out


def _store_vat(session: Session, alloc: dict[int, dict[str, _Vat]]) -> dict[int, int]:
    """(Re)write the write_off_vat rows of the allocated write-offs; returns write_off_id -> total VAT relief."""
    ids = list(alloc)
    for part in pages(ids, 5000):
        session.execute(delete(WriteOffVat).where(WriteOffVat.write_off_id.in_(part)))
    rows = [{"write_off_id": wid, "tax_rate_code": code, "rate": v.rate, "gross_minor": v.gross_minor, "vat_relief_minor": relief(v.gross_minor, v.rate)}
            for wid, per in alloc.items() for code, v in sorted(per.items())]
    if rows:
        session.execute(insert(WriteOffVat), rows)
    totals: dict[int, int] = {}
    for r in rows:
        totals[r["write_off_id"]] = totals.get(r["write_off_id"], 0) + r["vat_relief_minor"]
    return totals


def preview(session: Session, *, account_id: int, amount_minor: int) -> list[dict[str, Any]]:
    """What writing off `amount_minor` of the account would relieve, per VAT rate (nothing is written)."""
    _alloc_table(session, [(0, account_id, amount_minor)])
    alloc = _allocate(session).get(0, {})
    _x(session, f"DROP TABLE {ALLOC}")
    return [{"tax_rate_code": c or "no VAT invoice", "rate": v.rate, "gross_minor": v.gross_minor, "vat_relief_minor": relief(v.gross_minor, v.rate)}
            for c, v in sorted(alloc.items())]


# --- one account ---------------------------------------------------------------------------------------------------------

def _balance(session: Session, account_id: int) -> int:
    return ledger.balance_minor(session, account_id=account_id)


def _prescribed_minor(session: Session, *, account_id: int, today: date) -> int:
    d = dialect_of(session)
    v = _x(session, f"SELECT SUM(p.prescribed_minor) FROM ({prescription.prescribed_accounts_sql(d)}) p WHERE p.account_id = :a",
           {"presc_cutoff": d.bind_date(prescription.cutoff(today)), "a": account_id}).scalar()
    return int(v or 0)


def _memo(session: Session, account_id: int, body: str, *, now: datetime, actor: Actor) -> None:
    customers.add_memo(session, account_id=account_id, data=MemoIn(category="debtors", body=body), now=now, actor=actor)


def propose(session: Session, *, account_id: int, amount: Money | None, reason: str, today: date, now: datetime, actor: Actor,
            dunning_action_id: int | None = None) -> WriteOff:
    """Propose writing off `amount` (None: the whole balance) of the account's debt, oldest first, with its VAT relief.
    A dunning action proposing a write-off (`dunning_action_id`) is marked done by it.

    Raises UnableToWriteOff (no reason; amount zero, negative, in another currency or above the balance; the account
    owes nothing; it already has an open write-off; the dunning action is not this account's write-off proposal),
    AccountNotFound, ActionNotPermitted. Nothing is changed when it raises."""
    acc = customers.get_account(session, account_id=account_id)
    reason = (reason or "").strip()
    if not reason:
        raise UnableToWriteOff("a write-off needs a reason (why the debt cannot be collected)", field="reason")
    lock_for_write(session)
    balance = _balance(session, acc.id)
    if balance <= 0:
        raise UnableToWriteOff(f"account {acc.account_number} owes nothing (balance {Money.from_minor(balance, acc.currency)})", field="amount")
    if amount is None:
        amount = Money.from_minor(balance, acc.currency)
    if amount.currency != acc.currency:
        raise UnableToWriteOff(f"the amount is in {amount.currency} but account {acc.account_number} is billed in {acc.currency}", field="amount")
    minor = amount.rounded().minor
    if minor <= 0:
        raise UnableToWriteOff(f"the amount to write off must be more than zero (got {amount})", field="amount")
    if minor > balance:
        raise UnableToWriteOff(f"{amount} is more than the balance of {Money.from_minor(balance, acc.currency)}; at most the balance can be written off",
                               field="amount")
    open_wo = session.execute(select(WriteOff.id).where(WriteOff.account_id == acc.id, WriteOff.state.in_(OPEN_STATES))).scalar()
    if open_wo is not None:
        raise WriteOffAlreadyProposed(f"account {acc.account_number} already has write-off {ref(open_wo)} waiting; decide that one first",
                                      field="account", extra={"write_off_id": int(open_wo)})
    action = None
    if dunning_action_id is not None:
        action = session.get(DunningAction, dunning_action_id)
        if action is None or action.account_id != acc.id or action.action != StepAction.WRITE_OFF_PROPOSAL or action.state != ActionState.PROPOSED:
            raise UnableToWriteOff(f"dunning action DUN-{dunning_action_id} is not an open write-off proposal for this account", field="dunning_action_id")
    wo = WriteOff(account_id=acc.id, state=WriteOffState.PROPOSED, amount_minor=minor, balance_minor=balance, currency=acc.currency, reason=reason,
                  prescribed_minor=min(minor, _prescribed_minor(session, account_id=acc.id, today=today)), proposed_at=now, proposed_by=actor.name,
                  dunning_action_id=dunning_action_id)
    try:
        with session.begin_nested():  # two people proposing for one account at once: the partial unique index decides
            session.add(wo)
            session.flush()
    except IntegrityError:
        raise WriteOffAlreadyProposed(f"account {acc.account_number} already has a write-off waiting (proposed a moment ago by someone else); "
                                      "decide that one first", field="account") from None
    _alloc_table(session, [(wo.id, acc.id, minor)])
    wo.vat_relief_minor = _store_vat(session, _allocate(session)).get(wo.id, 0)
    _x(session, f"DROP TABLE {ALLOC}")
    money = Money.from_minor(minor, acc.currency)
    events.record(session, now=now, actor=actor, entity_type=WRITE_OFF.name, entity_id=wo.id, account_id=acc.id, action="proposed", reason=reason,
                  after={"state": wo.state, "amount_minor": minor, "currency": acc.currency, "vat_relief_minor": wo.vat_relief_minor,
                         "prescribed_minor": wo.prescribed_minor, "balance_minor": balance})
    _memo(session, acc.id, f"Write-off {ref(wo.id)} proposed by {actor.name}: {money} of {Money.from_minor(balance, acc.currency)} "
                           f"(VAT relief {Money.from_minor(wo.vat_relief_minor, acc.currency)}): {reason}", now=now, actor=actor)
    if action is not None:
        from opsline.debtors import actions

        actions.decide(session, action_id=action.id, decision="accept", reason=f"write-off {ref(wo.id)} proposed", now=now, actor=actor)
    session.flush()
    return wo


def _get(session: Session, write_off_id: int) -> WriteOff:
    wo = session.get(WriteOff, write_off_id)
    if wo is None:
        raise NotFound(f"write-off {write_off_id} not found", field="write_off_id")
    return wo


def approve(session: Session, *, write_off_id: int, now: datetime, actor: Actor) -> WriteOff:
    """A debtors manager who did not propose it approves the write-off, and it is posted at once: a ledger entry of
    kind write_off for minus the amount, oldest debt first, its VAT relief taken again as it stands now.

    Raises NotFound, FourEyesRequired (the proposer), ActionNotPermitted (not a manager), TransitionNotAllowed (already
    decided or in a batch: the batch is approved as one), UnableToWriteOff (the balance fell below the amount since: a
    payment came in; reject it and propose again). Nothing is changed when it raises."""
    wo = _get(session, write_off_id)
    if wo.batch_id is not None and wo.state == WriteOffState.PROPOSED:
        from opsline.core.errors import TransitionNotAllowed

        raise TransitionNotAllowed(f"write-off {ref(wo.id)} is part of batch {batch_ref(wo.batch_id)}; approve or reject the batch", field="state")
    lock_for_write(session)
    # every check before the first change, so a refusal changes nothing
    lc_state = lifecycle._current_state(session, WRITE_OFF, wo)
    if WRITE_OFF.target(lc_state, "approve") is not None and not actor.is_system:
        from opsline.core.lifecycle import ActionNotPermitted, FourEyesRequired
        from opsline.users.roles import allowed

        if not allowed(actor.roles, "debtors.writeoff.approve"):
            raise ActionNotPermitted("your role does not allow 'debtors.writeoff.approve' (needed to approve a write-off)",
                                     extra={"permission": "debtors.writeoff.approve"})
        if wo.proposed_by == actor.name:
            raise FourEyesRequired(f"write-off {ref(wo.id)} was proposed by {wo.proposed_by}; a second person must approve it", field="actor")
        balance = _balance(session, wo.account_id)
        if balance < wo.amount_minor:
            raise UnableToWriteOff(f"the balance is now {Money.from_minor(balance, wo.currency)}, less than the "
                                   f"{Money.from_minor(wo.amount_minor, wo.currency)} proposed (a payment came in); reject it and propose again",
                                   field="amount")
    lifecycle.transition(session, WRITE_OFF, wo, "approve", now=now, actor=actor, label=f"write-off {ref(wo.id)}",
                         details={"amount_minor": wo.amount_minor, "currency": wo.currency})
    wo.decided_at, wo.decided_by = now, actor.name
    _alloc_table(session, [(wo.id, wo.account_id, wo.amount_minor)])
    wo.vat_relief_minor = _store_vat(session, _allocate(session)).get(wo.id, 0)
    _x(session, f"DROP TABLE {ALLOC}")
    money = Money.from_minor(wo.amount_minor, wo.currency)
    entry = ledger.post(session, account_id=wo.account_id, kind="write_off", ref_type="write_off", ref_id=wo.id, amount=-money, now=now,
                        description=f"Write-off {ref(wo.id)}: {wo.reason}")
    wo.ledger_entry_id, wo.posted_at = entry.id, now
    lifecycle.transition(session, WRITE_OFF, wo, "post", now=now, actor=SYSTEM, label=f"write-off {ref(wo.id)}",
                         details={"ledger_entry_id": entry.id, "amount_minor": -wo.amount_minor, "vat_relief_minor": wo.vat_relief_minor})
    _memo(session, wo.account_id, f"Write-off {ref(wo.id)} approved by {actor.name} and posted: {money} written off "
                                  f"(VAT relief {Money.from_minor(wo.vat_relief_minor, wo.currency)}).", now=now, actor=actor)
    session.flush()
    return wo


def decide(session: Session, *, write_off_id: int, action: str, reason: str, now: datetime, actor: Actor) -> WriteOff:
    """Reject (a manager) or withdraw (`cancel`) a proposed write-off, with a reason. Raises NotFound, UnableToWriteOff
    (not reject or cancel), ReasonRequired, ActionNotPermitted, TransitionNotAllowed (decided, or in a batch)."""
    if action not in ("reject", "cancel"):
        raise UnableToWriteOff(f"'{action}' is not reject or cancel", field="action")
    wo = _get(session, write_off_id)
    if wo.batch_id is not None:
        from opsline.core.errors import TransitionNotAllowed

        raise TransitionNotAllowed(f"write-off {ref(wo.id)} is part of batch {batch_ref(wo.batch_id)}; decide the batch", field="state")
    lifecycle.transition(session, WRITE_OFF, wo, action, now=now, actor=actor, reason=reason, label=f"write-off {ref(wo.id)}")
    wo.decided_at, wo.decided_by, wo.decision_note = now, actor.name, reason.strip()
    word = "rejected" if action == "reject" else "withdrawn"
    _memo(session, wo.account_id, f"Write-off {ref(wo.id)} {word} by {actor.name}: {reason.strip()}", now=now, actor=actor)
    session.flush()
    return wo


# --- bulk ------------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BulkCriteria:
    """Which accounts a bulk write-off takes: status (blank = any), balance up to `max_balance_minor` (None = any), the
    oldest unpaid debt at least `min_days` past due; `prescribed_only` writes off only the prescribed part."""

    status: str = "closed"
    max_balance_minor: int | None = None
    min_days: int = 0
    prescribed_only: bool = False
    currency: str = "ZAR"

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "max_balance_minor": self.max_balance_minor, "min_days": self.min_days,
                "prescribed_only": self.prescribed_only, "currency": self.currency}


def parse_criteria(*, status: str, max_balance: str, min_days: str, prescribed_only: bool, currency: str) -> BulkCriteria:
    """The bulk form's fields -> BulkCriteria. Raises UnableToWriteOff naming the field."""
    from opsline.customers.models import AccountStatus

    status = (status or "").strip()
    if status and status not in {s.value for s in AccountStatus}:
        raise UnableToWriteOff(f"'{status}' is not an account status", field="status")
    cap = parse_amount(max_balance, currency=currency, field="max_balance")
    if cap is not None and cap.minor <= 0:
        raise UnableToWriteOff("the balance limit must be more than zero (or blank for any)", field="max_balance")
    raw = (min_days or "0").strip()
    if not raw.isdigit():
        raise UnableToWriteOff(f"'{raw}' is not a whole number of days (0 or more)", field="min_days")
    return BulkCriteria(status=status, max_balance_minor=None if cap is None else cap.rounded().minor, min_days=int(raw),
                        prescribed_only=bool(prescribed_only), currency=currency)


def _candidates_sql(d: Dialect, c: BulkCriteria) -> tuple[str, dict[str, Any]]:
    """SELECT account_id, amount_minor, balance_minor, prescribed_minor, oldest_due for the accounts the criteria take
    (owing, no open write-off), one set-based statement."""
    from opsline.billing.service import open_debits_cte

    conds = ["b.balance_minor > 0", "a.currency = :cur", "w.id IS NULL", f"{d.days('o.oldest_due', d.d('today'))} >= :min_days"]
    params: dict[str, Any] = {"cur": c.currency, "min_days": c.min_days}
    if c.status:
        conds.append("a.status = :status")
        params["status"] = c.status
    if c.max_balance_minor is not None:
        conds.append("b.balance_minor <= :cap")
        params["cap"] = c.max_balance_minor
    if c.prescribed_only:
        conds.append("COALESCE(p.prescribed_minor, 0) > 0")
    amount = f"{d.least('b.balance_minor', 'p.prescribed_minor')}" if c.prescribed_only else "b.balance_minor"
    sql = f"""
        WITH {open_debits_cte(d)},
        o AS (SELECT account_id, MIN(due) AS oldest_due FROM x WHERE open_minor > 0 GROUP BY account_id),
        b AS (SELECT account_id, SUM(amount_minor) AS balance_minor FROM ledger_entry WHERE currency = :cur GROUP BY account_id),
        p AS ({prescription.prescribed_accounts_sql(d)})
        SELECT a.id AS account_id, {amount} AS amount_minor, b.balance_minor, {d.least('b.balance_minor', 'COALESCE(p.prescribed_minor, 0)')} AS prescribed_minor,
               o.oldest_due
        FROM account a JOIN b ON b.account_id = a.id JOIN o ON o.account_id = a.id
        LEFT JOIN p ON p.account_id = a.id AND p.currency = a.currency
        LEFT JOIN write_off w ON w.account_id = a.id AND w.state IN ('proposed', 'approved')
        WHERE {' AND '.join(conds)}"""
    return sql, params


def _cparams(d: Dialect, c: BulkCriteria, *, today: date, now: datetime) -> dict[str, Any]:
    return {"t": d.bind_ts(now), "today": d.bind_date(today), "presc_cutoff": d.bind_date(prescription.cutoff(today))}


def dry_run(session: Session, *, criteria: BulkCriteria, today: date, now: datetime, sample: int = 50) -> dict[str, Any]:
    """How many accounts a bulk write-off would take and for how much (nothing is written), with the biggest few."""
    d = dialect_of(session)
    sql, params = _candidates_sql(d, criteria)
    params |= _cparams(d, criteria, today=today, now=now)
    agg = _x(session, f"SELECT COUNT(*) AS n, COALESCE(SUM(amount_minor), 0) AS amt, COALESCE(SUM(prescribed_minor), 0) AS presc FROM ({sql}) c",
             params).one()
    top = _x(session, f"""SELECT c.account_id, a.account_number, a.name, a.status, c.amount_minor, c.balance_minor, c.oldest_due
                         FROM ({sql}) c JOIN account a ON a.id = c.account_id ORDER BY c.amount_minor DESC, c.account_id LIMIT {int(sample)}""",
             params).all()
    return {"count": int(agg.n), "amount_minor": int(agg.amt), "prescribed_minor": int(agg.presc), "currency": criteria.currency,
            "criteria": criteria.as_dict(), "sample": [dict(r._mapping) for r in top]}


def propose_batch(session: Session, *, criteria: BulkCriteria, reason: str, today: date, now: datetime, actor: Actor) -> WriteOffBatch:
    """Propose a write-off for every account the criteria take, set-based: one batch, one proposal per account (its
    VAT relief), one audit event and memo each. Raises UnableToWriteOff (no reason, no account matches),
    ActionNotPermitted. Nothing is changed when it raises."""
    from opsline.users.roles import allowed

    if not actor.is_system and not allowed(actor.roles, "debtors.writeoff.propose"):
        from opsline.core.lifecycle import ActionNotPermitted

        raise ActionNotPermitted("your role does not allow 'debtors.writeoff.propose'", extra={"permission": "debtors.writeoff.propose"})
    reason = (reason or "").strip()
    if not reason:
        raise UnableToWriteOff("a write-off needs a reason (why the debt cannot be collected)", field="reason")
    lock_for_write(session)
    d = dialect_of(session)
    sql, params = _candidates_sql(d, criteria)
    params |= _cparams(d, criteria, today=today, now=now)
    agg = _x(session, f"SELECT COUNT(*), COALESCE(SUM(amount_minor), 0) FROM ({sql}) c", params).one()
    if not agg[0]:
        raise UnableToWriteOff("no account matches these criteria; nothing to propose", field="criteria")
    batch = WriteOffBatch(state=WriteOffState.PROPOSED, reason=reason, criteria=criteria.as_dict(), accounts=int(agg[0]), amount_minor=int(agg[1]),
                          currency=criteria.currency, proposed_at=now, proposed_by=actor.name)
    session.add(batch)
    session.flush()
    ts = now if d.pg else sqlite_utc(now)
    # A single proposal for one of these accounts committed (or in flight) since the candidates were read: the partial
    # unique index decides, the batch leaves that account out (waiting for the other transaction on PostgreSQL) and
    # its totals are taken from what it holds.
    _x(session, f"""INSERT INTO write_off (account_id, batch_id, state, amount_minor, vat_relief_minor, prescribed_minor, balance_minor, currency,
                                          reason, proposed_at, proposed_by)
                    SELECT c.account_id, :batch, 'proposed', c.amount_minor, 0, c.prescribed_minor, c.balance_minor, :cur, :reason, :now, :by
                    FROM ({sql}) c WHERE 1 = 1 ORDER BY c.account_id
                    ON CONFLICT (account_id) WHERE state IN ('proposed', 'approved') DO NOTHING""",
       params | {"batch": batch.id, "reason": reason, "now": ts, "by": actor.name})
    got = _x(session, "SELECT COUNT(*), COALESCE(SUM(amount_minor), 0) FROM write_off WHERE batch_id = :b", {"b": batch.id}).one()
    if not got[0]:
        raise WriteOffAlreadyProposed("every account these criteria took got a write-off proposed by someone else meanwhile; nothing to propose",
                                      field="criteria")
    batch.accounts, batch.amount_minor = int(got[0]), int(got[1])
    batch.vat_relief_minor = _reallocate_batch(session, batch.id)
    obj = "jsonb_build_object" if d.pg else "json_object"
    _x(session, f"""INSERT INTO audit_event (occurred_at, actor, entity_type, entity_id, account_id, action, reason, "before", "after")
                    SELECT :now, :by, 'write_off', CAST(w.id AS VARCHAR(60)), w.account_id, 'proposed', :reason, NULL,
                           {obj}('state', w.state, 'amount_minor', w.amount_minor, 'currency', w.currency, 'vat_relief_minor', w.vat_relief_minor,
                                 'batch_id', w.batch_id)
                    FROM write_off w WHERE w.batch_id = :batch ORDER BY w.id""", {"now": ts, "by": actor.name, "reason": reason, "batch": batch.id})
    _batch_memos(session, batch.id, f"Write-off proposed by {actor.name} in batch {batch_ref(batch.id)}: ", reason, now=now, actor=actor)
    events.record(session, now=now, actor=actor, entity_type=WRITE_OFF_BATCH.name, entity_id=batch.id, action="proposed", reason=reason,
                  after={"state": batch.state, "accounts": batch.accounts, "amount_minor": batch.amount_minor, "vat_relief_minor": batch.vat_relief_minor,
                         "criteria": batch.criteria})
    session.flush()
    return batch


def _reallocate_batch(session: Session, batch_id: int) -> int:
    """Allocate the batch's open write-offs again (VAT rows and per-write-off relief); returns the batch's relief."""
    session.flush()
    ids = _x(session, "SELECT id, account_id, amount_minor FROM write_off WHERE batch_id = :b AND state IN ('proposed', 'approved')",
             {"b": batch_id}).all()
    _alloc_table(session, [(int(r.id), int(r.account_id), int(r.amount_minor)) for r in ids])
    totals = _store_vat(session, _allocate(session))
    _x(session, f"DROP TABLE {ALLOC}")
    _x(session, """UPDATE write_off SET vat_relief_minor = COALESCE((SELECT SUM(v.vat_relief_minor) FROM write_off_vat v WHERE v.write_off_id = write_off.id), 0)
                   WHERE batch_id = :b AND state IN ('proposed', 'approved')""", {"b": batch_id})
    session.expire_all()
    return sum(totals.values())


def _batch_memos(session: Session, batch_id: int, prefix: str, suffix: str, *, now: datetime, actor: Actor, state: str | None = None) -> None:
    """One memo per account of the batch (set-based; the amount in major units)."""
    d = dialect_of(session)
    ts = now if d.pg else sqlite_utc(now)
    amount = ("CAST(CAST(w.amount_minor / 100.0 AS NUMERIC(18,2)) AS TEXT)" if d.pg else "printf('%.2f', w.amount_minor / 100.0)")
    cond = "AND w.state = :state" if state else ""
    _x(session, f"""INSERT INTO memo (account_id, created_at, author, category, body)
                    SELECT w.account_id, :now, :by, 'debtors', CAST(:prefix AS TEXT) || w.currency || ' ' || {amount} || ' (WO-' || CAST(w.id AS VARCHAR(20)) || '). ' || CAST(:suffix AS TEXT)
                    FROM write_off w WHERE w.batch_id = :b {cond} ORDER BY w.id""",
       {"now": ts, "by": actor.name, "prefix": prefix, "suffix": suffix, "b": batch_id, **({"state": state} if state else {})})


def _get_batch(session: Session, batch_id: int) -> WriteOffBatch:
    b = session.get(WriteOffBatch, batch_id)
    if b is None:
        raise NotFound(f"write-off batch {batch_id} not found", field="batch_id")
    return b


def approve_batch(session: Session, *, batch_id: int, now: datetime, actor: Actor) -> dict[str, int]:
    """A debtors manager who did not propose the batch approves it in one action: every proposal whose account still
    owes at least its amount is approved and posted (one ledger entry each, set-based); the others (a payment came in)
    are withdrawn with that reason. Returns {"posted", "withdrawn"}. Raises NotFound, FourEyesRequired,
    ActionNotPermitted, TransitionNotAllowed. Nothing is changed when it raises."""
    batch = _get_batch(session, batch_id)
    lock_for_write(session)
    lifecycle.transition(session, WRITE_OFF_BATCH, batch, "approve", now=now, actor=actor, label=f"write-off batch {batch_ref(batch.id)}",
                         details={"accounts": batch.accounts, "amount_minor": batch.amount_minor})
    batch.decided_at, batch.decided_by = now, actor.name
    d = dialect_of(session)
    stale = [int(i) for i in _x(session, """SELECT w.id FROM write_off w
                                             WHERE w.batch_id = :b AND w.state = 'proposed'
                                               AND w.amount_minor > (SELECT COALESCE(SUM(le.amount_minor), 0) FROM ledger_entry le WHERE le.account_id = w.account_id)""",
                                        {"b": batch.id}).scalars()]
    by = Actor.system(f"write-off batch {batch_ref(batch.id)} approved by {actor.name}")
    if stale:
        lifecycle.transition_many(session, WRITE_OFF, WriteOff, stale, "cancel", now=now, actor=by,
                                  reason="the balance fell below the amount before approval (a payment came in)")
    ids = [int(i) for i in _x(session, "SELECT id FROM write_off WHERE batch_id = :b AND state = 'proposed'", {"b": batch.id}).scalars()]
    lifecycle.transition_many(session, WRITE_OFF, WriteOff, ids, "approve_in_batch", now=now, actor=by, reason=f"batch approved by {actor.name}")
    batch.vat_relief_minor = _reallocate_batch(session, batch.id)
    ts = d.bind_ts(now)
    ledger.post_select(session, select_sql=f"""
        SELECT w.account_id, 'write_off' AS kind, 'write_off' AS ref_type, w.id AS ref_id, -w.amount_minor AS amount_minor, w.currency,
               {'CAST(:now AS TIMESTAMPTZ)' if d.pg else ':now'} AS posted_at, CAST(NULL AS DATE) AS due_date,
               'Write-off WO-' || CAST(w.id AS VARCHAR(20)) || ' (batch {batch_ref(batch.id)})' AS description
        FROM write_off w WHERE w.batch_id = :b AND w.state = 'approved' ORDER BY w.id""", params={"now": ts, "b": batch.id})
    tsw = now if d.pg else sqlite_utc(now)
    _x(session, """UPDATE write_off SET decided_at = :now, decided_by = :by, posted_at = :now,
                          ledger_entry_id = (SELECT MAX(le.id) FROM ledger_entry le WHERE le.ref_type = 'write_off' AND le.ref_id = write_off.id)
                   WHERE batch_id = :b AND state = 'approved'""", {"now": tsw, "by": actor.name, "b": batch.id})
    lifecycle.transition_many(session, WRITE_OFF, WriteOff, ids, "post", now=now, actor=by)
    _batch_memos(session, batch.id, f"Write-off approved by {actor.name} in batch {batch_ref(batch.id)} and posted: ", "", now=now, actor=actor,
                 state=WriteOffState.POSTED)
    agg = _x(session, "SELECT COUNT(*), COALESCE(SUM(amount_minor), 0) FROM write_off WHERE batch_id = :b AND state = 'posted'", {"b": batch.id}).one()
    batch = _get_batch(session, batch_id)
    batch.posted_at = now
    lifecycle.transition(session, WRITE_OFF_BATCH, batch, "post", now=now, actor=SYSTEM, label=f"write-off batch {batch_ref(batch.id)}",
                         details={"posted": int(agg[0]), "amount_minor": int(agg[1]), "withdrawn": len(stale), "vat_relief_minor": batch.vat_relief_minor})
    session.flush()
    return {"posted": int(agg[0]), "posted_minor": int(agg[1]), "withdrawn": len(stale)}


def decide_batch(session: Session, *, batch_id: int, action: str, reason: str, now: datetime, actor: Actor) -> WriteOffBatch:
    """Reject (a manager) or withdraw (`cancel`) a whole proposed batch, with a reason; its proposals follow.
    Raises NotFound, UnableToWriteOff, ReasonRequired, ActionNotPermitted, TransitionNotAllowed."""
    if action not in ("reject", "cancel"):
        raise UnableToWriteOff(f"'{action}' is not reject or cancel", field="action")
    batch = _get_batch(session, batch_id)
    lifecycle.transition(session, WRITE_OFF_BATCH, batch, action, now=now, actor=actor, reason=reason, label=f"write-off batch {batch_ref(batch.id)}")
    batch.decided_at, batch.decided_by = now, actor.name
    ids = [int(i) for i in _x(session, "SELECT id FROM write_off WHERE batch_id = :b AND state = 'proposed'", {"b": batch.id}).scalars()]
    lifecycle.transition_many(session, WRITE_OFF, WriteOff, ids, action, now=now, actor=actor, reason=reason)
    word = "rejected" if action == "reject" else "withdrawn"
    _batch_memos(session, batch.id, f"Write-off {word} by {actor.name} with batch {batch_ref(batch.id)}: ", reason.strip(), now=now, actor=actor)
    session.flush()
    return batch


# --- reading ------------------------------------------------------------------------------------------------------------

def _wo_dict(w: WriteOff, number: str, name: str) -> dict[str, Any]:
    return {"id": w.id, "ref": ref(w.id), "account_id": w.account_id, "account_number": number, "account_name": name, "state": w.state,
            "amount_minor": w.amount_minor, "vat_relief_minor": w.vat_relief_minor, "prescribed_minor": w.prescribed_minor,
            "balance_minor": w.balance_minor, "currency": w.currency, "reason": w.reason, "proposed_at": w.proposed_at,
            "proposed_by": w.proposed_by, "decided_at": w.decided_at, "decided_by": w.decided_by, "decision_note": w.decision_note,
            "posted_at": w.posted_at, "batch_id": w.batch_id, "batch_ref": batch_ref(w.batch_id) if w.batch_id else None,
            "dunning_action_id": w.dunning_action_id, "ledger_entry_id": w.ledger_entry_id}


def list_write_offs(session: Session, *, state: str = "", limit: int = 200) -> dict[str, Any]:
    """Write-offs, those waiting for approval first (biggest first), then the latest decided; totals per state."""
    order = (WriteOff.state != WriteOffState.PROPOSED, WriteOff.amount_minor.desc() if not state else WriteOff.id.desc(), WriteOff.id.desc())
    q = select(WriteOff, Account.account_number, Account.name).join(Account, Account.id == WriteOff.account_id)
    if state:
        if state not in {s.value for s in WriteOffState}:
            raise UnableToWriteOff(f"'{state}' is not a write-off state", field="state")
        q = q.where(WriteOff.state == state)
    rows = session.execute(q.order_by(*order).limit(limit)).all()
    from sqlalchemy import func

    tot = session.execute(select(WriteOff.state, WriteOff.currency, func.count(), func.sum(WriteOff.amount_minor), func.sum(WriteOff.vat_relief_minor))
                          .group_by(WriteOff.state, WriteOff.currency).order_by(WriteOff.state)).all()
    batches = session.execute(select(WriteOffBatch).order_by(WriteOffBatch.state != WriteOffState.PROPOSED, WriteOffBatch.id.desc()).limit(20)).scalars()
    return {"rows": [_wo_dict(w, n, nm) for w, n, nm in rows],
            "totals": [{"state": s, "currency": c, "count": int(n), "amount_minor": int(a or 0), "vat_relief_minor": int(v or 0)} for s, c, n, a, v in tot],
            "batches": [batch_dict(b) for b in batches]}


def batch_dict(b: WriteOffBatch) -> dict[str, Any]:
    return {"id": b.id, "ref": batch_ref(b.id), "state": b.state, "reason": b.reason, "criteria": b.criteria, "accounts": b.accounts,
            "amount_minor": b.amount_minor, "vat_relief_minor": b.vat_relief_minor, "currency": b.currency, "proposed_at": b.proposed_at,
            "proposed_by": b.proposed_by, "decided_at": b.decided_at, "decided_by": b.decided_by, "posted_at": b.posted_at}


def get_write_off(session: Session, *, write_off_id: int) -> dict[str, Any]:
    """One write-off with its VAT relief per rate. Raises NotFound."""
    w = _get(session, write_off_id)
    acc = session.get(Account, w.account_id)
    vat = session.execute(select(WriteOffVat).where(WriteOffVat.write_off_id == w.id).order_by(WriteOffVat.tax_rate_code)).scalars()
    return _wo_dict(w, acc.account_number, acc.name) | {
        "vat": [{"tax_rate_code": v.tax_rate_code or "no VAT invoice", "rate": v.rate, "gross_minor": v.gross_minor,
                 "vat_relief_minor": v.vat_relief_minor} for v in vat]}


def get_batch(session: Session, *, batch_id: int, limit: int = 500) -> dict[str, Any]:
    b = _get_batch(session, batch_id)
    rows = session.execute(select(WriteOff, Account.account_number, Account.name).join(Account, Account.id == WriteOff.account_id)
                           .where(WriteOff.batch_id == b.id).order_by(WriteOff.amount_minor.desc(), WriteOff.id).limit(limit)).all()
    return batch_dict(b) | {"rows": [_wo_dict(w, n, nm) for w, n, nm in rows]}


def waiting_for(session: Session, *, actor_name: str) -> dict[str, Any]:
    """Proposals (single, and batches) waiting for approval that `actor_name` may approve (not proposed by them)."""
    from sqlalchemy import func

    single = session.execute(select(func.count(), func.coalesce(func.sum(WriteOff.amount_minor), 0)).where(
        WriteOff.state == WriteOffState.PROPOSED, WriteOff.batch_id.is_(None), WriteOff.proposed_by != actor_name)).one()
    batch = session.execute(select(func.count(), func.coalesce(func.sum(WriteOffBatch.amount_minor), 0)).where(
        WriteOffBatch.state == WriteOffState.PROPOSED, WriteOffBatch.proposed_by != actor_name)).one()
    return {"count": int(single[0]) + int(batch[0]), "amount_minor": int(single[1]) + int(batch[1]), "singles": int(single[0]), "batches": int(batch[0])}


def vat_relief_rows(session: Session, *, state: str = "posted", since: date | None = None) -> list[dict[str, Any]]:
    """Finance's export: one row per write-off and VAT rate (posted ones by default), oldest first."""
    q = (select(WriteOff, WriteOffVat, Account.account_number, Account.name).join(WriteOffVat, WriteOffVat.write_off_id == WriteOff.id)
         .join(Account, Account.id == WriteOff.account_id))
    if state:
        q = q.where(WriteOff.state == state)
    if since is not None:
        q = q.where(WriteOff.proposed_at >= datetime.combine(since, datetime.min.time(), tzinfo=timezone.utc))
    rows = session.execute(q.order_by(WriteOff.id, WriteOffVat.tax_rate_code)).all()
    return [{"ref": ref(w.id), "account_number": n, "account_name": nm, "state": w.state, "posted_at": w.posted_at, "proposed_by": w.proposed_by,
             "decided_by": w.decided_by, "batch_ref": batch_ref(w.batch_id) if w.batch_id else "", "tax_rate_code": v.tax_rate_code or "no VAT invoice",
             "rate": v.rate, "gross_minor": v.gross_minor, "vat_relief_minor": v.vat_relief_minor, "currency": w.currency, "reason": w.reason}
            for w, v, n, nm in rows]


__all__ = ["BulkCriteria", "UnableToWriteOff", "WriteOffAlreadyProposed", "approve", "approve_batch", "decide", "decide_batch", "dry_run", "get_batch", "get_write_off",
           "list_write_offs", "parse_amount", "parse_criteria", "preview", "propose", "propose_batch", "relief", "vat_relief_rows",
           "waiting_for"]
