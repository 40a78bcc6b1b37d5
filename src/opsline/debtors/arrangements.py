"""Arrangements: extension of time (a promise to pay an amount by a date) and pay-off plans (instalments), approval
limits by role, and the set-based review a dunning run does first (a missed date or a short payment breaks an
arrangement, payment in full keeps it). An active arrangement keeps dunning away (exclusions.under_arrangement); the
account's dunning position is untouched meanwhile, so a broken arrangement resumes dunning from where it stood.

Payments count towards an arrangement from the moment it was made: the net of the account's `payment` ledger entries
posted since, covering the instalments in date order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from opsline.billing.sql import Dialect
from opsline.core import events, lifecycle
from opsline.core.errors import InvalidInput, NotFound, PermissionDenied
from opsline.core.events import Actor
from opsline.core.lifecycle import FourEyesRequired
from opsline.core.money import Money
from opsline.customers import service as customers
from opsline.customers.models import Account
from opsline.customers.schemas import MemoIn
from opsline.db.session import lock_for_write
from opsline.debtors.models import (ARRANGEMENT, Arrangement, ArrangementApprovalLimit, ArrangementInstalment, ArrangementKind,
                                    ArrangementState)

SYSTEM = Actor.system("dunning")
MAX_PLAN_DAYS = 365
OPEN_STATES = (ArrangementState.PROPOSED, ArrangementState.ACTIVE)


class UnableToArrange(InvalidInput):
    title = "Unable to make the arrangement"
    type_slug = "unable-to-arrange"


class ArrangementNotAllowed(PermissionDenied):
    title = "Arrangement above your approval limit"
    type_slug = "arrangement-not-allowed"


@dataclass(frozen=True)
class InstalmentIn:
    due_date: date | None
    amount_minor: int | None


def overdue_minor(session: Session, *, account_id: int, today: date, now: datetime) -> int:
    """What the account owes past its due dates (open debits due before `today`, credits settling the oldest first)."""
    from opsline.billing.service import open_debits_cte

    d = Dialect(session.get_bind().dialect.name)
    sql = f"WITH {open_debits_cte(d, one_account=True)} SELECT COALESCE(SUM(open_minor), 0) FROM x WHERE due < {d.d('today')}"
    return int(session.execute(text(sql), {"t": d.bind_ts(now), "a": account_id, "today": d.bind_date(today)}).scalar_one())


def approval_limit(session: Session, *, actor: Actor) -> int | None:
    """The largest arrangement (minor units) the actor may approve alone: the highest limit among their roles; None = no
    limit; 0 when none of their roles has a limit row. The system has no limit."""
    if actor.is_system:
        return None
    rows = session.execute(select(ArrangementApprovalLimit.max_minor).where(ArrangementApprovalLimit.role.in_(sorted(actor.roles)))).all()
    if not rows:
        return 0
    if any(r.max_minor is None for r in rows):
        return None
    return max(int(r.max_minor) for r in rows)


def _within(limit: int | None, amount: int) -> bool:
    return limit is None or amount <= limit


def _memo(session: Session, account_id: int, body: str, *, now: datetime, actor: Actor) -> None:
    customers.add_memo(session, account_id=account_id, data=MemoIn(category="debtors", body=body), now=now, actor=actor)


def _money(minor: int, currency: str) -> str:
    return str(Money.from_minor(minor, currency))


def propose(session: Session, *, account_id: int, kind: str, instalments: list[InstalmentIn], today: date, now: datetime, actor: Actor,
            amount_minor: int | None = None, note: str = "") -> Arrangement:
    """Make a promise to pay (`kind='promise'`, one instalment) or a pay-off plan (`kind='plan'`, instalments in date
    order) for the account's overdue debt, or for `amount_minor` when given. Within the proposer's approval limit it is
    active at once; above it, it waits for a second person with a higher limit.

    Raises AccountNotFound, UnableToArrange naming the field (unknown kind, nothing overdue, an open arrangement already,
    a zero or negative amount, a date missing, in the past, out of order or more than a year out, instalments that do not
    add up to the debt or the stated amount). Nothing is changed when it raises."""
    lock_for_write(session)
    acc = customers.get_account(session, account_id=account_id)
    if kind not in {k.value for k in ArrangementKind}:
        raise UnableToArrange(f"'{kind}' is not a kind of arrangement (promise or plan)", field="kind")
    if amount_minor is not None and amount_minor <= 0:
        raise UnableToArrange("the amount must be more than zero", field="amount")
    if not instalments:
        raise UnableToArrange("give the date and amount to be paid", field="instalments")
    if kind == ArrangementKind.PROMISE and len(instalments) != 1:
        raise UnableToArrange("a promise to pay has one date and amount; use a pay-off plan for instalments", field="instalments")
    prefix = (lambda k, f: f) if kind == ArrangementKind.PROMISE else (lambda k, f: f"instalments[{k}].{f}")
    previous: date | None = None
    for k, i in enumerate(instalments, start=1):
        if i.due_date is None:
            raise UnableToArrange("a date is required", field=prefix(k, "due_date"))
        if i.due_date < today:
            raise UnableToArrange(f"{i.due_date.isoformat()} is in the past; a promise is for today or later", field=prefix(k, "due_date"))
        if i.due_date > today + timedelta(days=MAX_PLAN_DAYS):
            raise UnableToArrange(f"{i.due_date.isoformat()} is more than {MAX_PLAN_DAYS} days away", field=prefix(k, "due_date"))
        if previous is not None and i.due_date <= previous:
            raise UnableToArrange(f"instalment {k} ({i.due_date.isoformat()}) must come after instalment {k - 1} ({previous.isoformat()})",
                                  field=prefix(k, "due_date"))
        if i.amount_minor is None or i.amount_minor <= 0:
            raise UnableToArrange("the amount must be more than zero", field=prefix(k, "amount"))
        previous = i.due_date
    debt = overdue_minor(session, account_id=acc.id, today=today, now=now)
    if debt <= 0:
        raise UnableToArrange(f"account {acc.account_number} has nothing overdue", field="account")
    open_one = session.execute(select(Arrangement.id).where(Arrangement.account_id == acc.id, Arrangement.state.in_(OPEN_STATES))).scalar()
    if open_one is not None:
        raise UnableToArrange(f"account {acc.account_number} already has arrangement ARR-{open_one}; cancel it first", field="account")
    total = sum(int(i.amount_minor or 0) for i in instalments)
    target = amount_minor if amount_minor is not None else debt
    if total != target:
        what = "the stated amount" if amount_minor is not None else "the overdue debt"
        raise UnableToArrange(f"the instalments add up to {_money(total, acc.currency)}, not {what} of {_money(target, acc.currency)}",
                              field="amount" if kind == ArrangementKind.PROMISE else "instalments")
    needs = not _within(approval_limit(session, actor=actor), total)
    arr = Arrangement(account_id=acc.id, kind=kind, state=ArrangementState.PROPOSED, amount_minor=total, debt_minor=debt, currency=acc.currency,
                      note=(note or "").strip(), needs_approval=needs, created_at=now, created_by=actor.name)
    session.add(arr)
    session.flush()
    for k, i in enumerate(instalments, start=1):
        session.add(ArrangementInstalment(arrangement_id=arr.id, account_id=acc.id, seq=k, due_date=i.due_date, amount_minor=int(i.amount_minor or 0)))
    session.flush()
    last = instalments[-1].due_date
    events.record(session, now=now, actor=actor, entity_type="arrangement", entity_id=arr.id, account_id=acc.id, action="proposed",
                  reason=arr.note or None, after={"kind": kind, "amount_minor": total, "debt_minor": debt, "instalments": len(instalments),
                                                  "last_due_date": last.isoformat() if last else None, "needs_approval": needs})
    label = "Promise to pay" if kind == ArrangementKind.PROMISE else f"Pay-off plan ({len(instalments)} instalments)"
    _memo(session, acc.id, f"{label} ARR-{arr.id}: {_money(total, acc.currency)} by {last.isoformat() if last else '?'}"
          + (" — waits for approval above the proposer's limit" if needs else "") + (f". {arr.note}" if arr.note else ""), now=now, actor=actor)
    if not needs:
        _activate(session, arr, now=now, actor=actor)
    return arr


def _activate(session: Session, arr: Arrangement, *, now: datetime, actor: Actor) -> list[str]:
    nxt = lifecycle.transition(session, ARRANGEMENT, arr, "approve", now=now, actor=actor, label=f"arrangement ARR-{arr.id}",
                               details={"amount_minor": arr.amount_minor})
    arr.decided_at, arr.decided_by = now, actor.name
    session.flush()
    return nxt


def get(session: Session, *, arrangement_id: int) -> Arrangement:
    arr = session.get(Arrangement, arrangement_id)
    if arr is None:
        raise NotFound(f"arrangement {arrangement_id} not found", field="arrangement_id")
    return arr


def approve(session: Session, *, arrangement_id: int, now: datetime, actor: Actor) -> list[str]:
    """A second person approves an arrangement above the proposer's limit; it becomes active (dunning leaves the account
    alone). Raises NotFound, FourEyesRequired (the proposer), ArrangementNotAllowed (above the approver's own limit),
    TransitionNotAllowed, ActionNotPermitted. Nothing is changed when it raises."""
    lock_for_write(session)
    arr = get(session, arrangement_id=arrangement_id)
    if arr.state == ArrangementState.PROPOSED:
        if arr.created_by == actor.name:
            raise FourEyesRequired(f"arrangement ARR-{arr.id} was proposed by {actor.name}; a second person must approve it", field="actor")
        limit = approval_limit(session, actor=actor)
        if not _within(limit, arr.amount_minor):
            raise ArrangementNotAllowed(f"{_money(arr.amount_minor, arr.currency)} is above your approval limit of "
                                        f"{_money(limit or 0, arr.currency)}; a manager must approve it", field="amount")
    nxt = _activate(session, arr, now=now, actor=actor)
    _memo(session, arr.account_id, f"Arrangement ARR-{arr.id} approved by {actor.name}", now=now, actor=actor)
    return nxt


def cancel(session: Session, *, arrangement_id: int, reason: str, today: date, now: datetime, actor: Actor) -> list[str]:
    """Cancel a proposed or active arrangement with a reason (dunning resumes from where the account stood).
    Raises NotFound, ReasonRequired, TransitionNotAllowed, ActionNotPermitted."""
    lock_for_write(session)
    arr = get(session, arrangement_id=arrangement_id)
    nxt = lifecycle.transition(session, ARRANGEMENT, arr, "cancel", now=now, actor=actor, reason=reason, label=f"arrangement ARR-{arr.id}")
    arr.closed_on, arr.closing_note = today, reason.strip()
    _memo(session, arr.account_id, f"Arrangement ARR-{arr.id} cancelled: {reason.strip()}", now=now, actor=actor)
    session.flush()
    return nxt


def _paid_sql(d: Dialect, *, by: str) -> str:
    """Net payments on the arrangement's account since it was made, posted before `by` (an SQL expression)."""
    return f"""COALESCE((SELECT -SUM(le.amount_minor) FROM ledger_entry le WHERE le.account_id = g.account_id AND le.kind = 'payment'
                         AND le.posted_at >= g.created_at AND le.posted_at < {by}), 0)"""


def _day_after(d: Dialect, col: str) -> str:
    return f"(CAST({col} + 1 AS TIMESTAMP) AT TIME ZONE 'UTC')" if d.pg else f"date({col}, '+1 day')"


def broken_sql(d: Dialect) -> str:
    """SELECT of the ids of active arrangements broken by `:run_date`: an instalment due before it that the payments by
    the end of its date did not cover, with the instalments before it."""
    return f"""SELECT DISTINCT g.id FROM arrangement g
        JOIN (SELECT i.arrangement_id, i.due_date,
                     SUM(i.amount_minor) OVER (PARTITION BY i.arrangement_id ORDER BY i.seq) AS cum
              FROM arrangement_instalment i) c ON c.arrangement_id = g.id
        WHERE g.state = 'active' AND c.due_date < {d.d('run_date')}
          AND {_paid_sql(d, by=_day_after(d, 'c.due_date'))} < c.cum"""


def review(session: Session, *, run_date: date, now: datetime) -> dict[str, list[int]]:
    """Set-based, for a dunning run on `run_date`: every active arrangement with an instalment due before `run_date` that
    the payments by the end of its date did not cover (with the earlier ones) is broken; every other one paid in full is
    kept. Each change writes its audit event (the account timeline) and a memo. Returns {"broken": ids, "kept": ids}."""
    d = Dialect(session.get_bind().dialect.name)
    p = {"run_date": d.bind_date(run_date), "now": d.bind_ts(now)}
    session.flush()
    broken = list(session.execute(text(f"SELECT id FROM ({broken_sql(d)}) b ORDER BY id"), p).scalars())
    kept = list(session.execute(text(f"""
        SELECT g.id FROM arrangement g WHERE g.state = 'active' AND {_paid_sql(d, by=':now')} >= g.amount_minor ORDER BY g.id"""), p).scalars())
    kept = [i for i in kept if i not in set(broken)]
    out = {"broken": [], "kept": []}
    for action, ids, key in (("break", broken, "broken"), ("keep", kept, "kept")):
        if not ids:
            continue
        done = lifecycle.transition_many(session, ARRANGEMENT, Arrangement, ids, action, now=now, actor=SYSTEM,
                                         reason="missed date or short payment" if action == "break" else "paid in full")
        out[key] = done
        session.execute(text(f"UPDATE arrangement SET closed_on = {d.d('run_date')}, closing_note = :note WHERE id IN ({','.join(str(int(i)) for i in done)})"),
                        p | {"note": "missed date or short payment" if action == "break" else "paid in full"})
        rows = session.execute(select(Arrangement.id, Arrangement.account_id, Arrangement.amount_minor, Arrangement.currency).where(Arrangement.id.in_(done))).all()
        for r in rows:
            body = (f"Arrangement ARR-{r.id} broken: a date was missed or the payment by it was short; dunning resumes from where the account stood"
                    if action == "break" else f"Arrangement ARR-{r.id} kept: {_money(int(r.amount_minor), r.currency)} paid in full")
            _memo(session, int(r.account_id), body, now=now, actor=SYSTEM)
    for obj in [o for o in session.identity_map.values() if isinstance(o, Arrangement)]:
        session.expire(obj)
    return out


# --- reading ------------------------------------------------------------------------------------------------------


def _paid_now(session: Session, ids: list[int], *, now: datetime) -> dict[int, int]:
    if not ids:
        return {}
    d = Dialect(session.get_bind().dialect.name)
    rows = session.execute(text(f"SELECT g.id, {_paid_sql(d, by=':now')} AS paid FROM arrangement g WHERE g.id IN ({','.join(str(int(i)) for i in ids)})"),
                           {"now": d.bind_ts(now)}).all()
    return {int(r.id): max(0, int(r.paid or 0)) for r in rows}


def list_arrangements(session: Session, *, today: date, now: datetime, state: str | None = None, account_id: int | None = None,
                      limit: int = 200) -> list[dict[str, Any]]:
    """Arrangements with their next unpaid date: open ones first, those due today, then this week, then by date."""
    nxt = (select(ArrangementInstalment.arrangement_id, ArrangementInstalment.due_date.label("due"), ArrangementInstalment.amount_minor)).subquery()
    q = select(Arrangement, Account.account_number, Account.name).join(Account, Account.id == Arrangement.account_id)
    if state:
        q = q.where(Arrangement.state == state)
    if account_id is not None:
        q = q.where(Arrangement.account_id == account_id)
    rows = session.execute(q.order_by(Arrangement.id.desc()).limit(limit)).all()
    ids = [a.id for a, _, _ in rows]
    inst: dict[int, list[tuple[date, int]]] = {}
    if ids:
        for r in session.execute(select(nxt).where(nxt.c.arrangement_id.in_(ids)).order_by(nxt.c.arrangement_id, nxt.c.due)).all():
            inst.setdefault(int(r.arrangement_id), []).append((r.due, int(r.amount_minor)))
    paid = _paid_now(session, ids, now=now)
    out = []
    for a, number, name in rows:
        covered, cum, next_due, next_amount = paid.get(a.id, 0), 0, None, 0
        for due, amt in inst.get(a.id, []):
            cum += amt
            if cum > covered:
                next_due, next_amount = due, min(amt, cum - covered)
                break
        open_ = a.state in OPEN_STATES
        days = (next_due - today).days if (next_due and open_) else None
        out.append({"id": a.id, "ref": f"ARR-{a.id}", "account_id": a.account_id, "account_number": number, "account_name": name, "kind": a.kind,
                    "state": a.state, "amount": _money(a.amount_minor, a.currency), "amount_minor": a.amount_minor,
                    "paid": _money(paid.get(a.id, 0), a.currency), "paid_minor": paid.get(a.id, 0),
                    "next_due": next_due if open_ else None, "next_amount": _money(next_amount, a.currency) if next_due and open_ else "",
                    "due_in_days": days, "created_by": a.created_by, "created_at": a.created_at, "needs_approval": a.needs_approval,
                    "closed_on": a.closed_on, "instalments": len(inst.get(a.id, []))})
    rank = lambda r: (0 if r["state"] in OPEN_STATES else 1, 0 if r["due_in_days"] is not None and r["due_in_days"] <= 0 else  # noqa: E731
                      1 if r["due_in_days"] is not None and r["due_in_days"] <= 7 else 2, r["next_due"] or date.max, -r["id"])
    return sorted(out, key=rank)


def detail(session: Session, *, arrangement_id: int, now: datetime, actor: Actor | None = None) -> dict[str, Any]:
    """One arrangement with its instalments (what each has been covered by so far) and the payments since it was made."""
    a = get(session, arrangement_id=arrangement_id)
    acc = session.get(Account, a.account_id)
    paid = _paid_now(session, [a.id], now=now).get(a.id, 0)
    insts, cum = [], 0
    for i in session.execute(select(ArrangementInstalment).where(ArrangementInstalment.arrangement_id == a.id).order_by(ArrangementInstalment.seq)).scalars():
        covered = max(0, min(i.amount_minor, paid - cum))
        cum += i.amount_minor
        insts.append({"seq": i.seq, "due_date": i.due_date, "amount": _money(i.amount_minor, a.currency), "covered": _money(covered, a.currency),
                      "met": covered >= i.amount_minor})
    d = Dialect(session.get_bind().dialect.name)
    pays = session.execute(text("""SELECT id, posted_at, amount_minor, description FROM ledger_entry WHERE account_id = :a AND kind = 'payment'
                                   AND posted_at >= :since AND posted_at < :now ORDER BY posted_at, id"""),
                           {"a": a.account_id, "since": d.bind_ts(a.created_at), "now": d.bind_ts(now)}).all()
    return {"id": a.id, "ref": f"ARR-{a.id}", "kind": a.kind, "state": a.state, "account_id": a.account_id, "account_number": acc.account_number,
            "account_name": acc.name, "amount": _money(a.amount_minor, a.currency), "debt": _money(a.debt_minor, a.currency),
            "paid": _money(paid, a.currency), "note": a.note, "needs_approval": a.needs_approval, "created_by": a.created_by,
            "created_at": a.created_at, "decided_by": a.decided_by, "decided_at": a.decided_at, "closed_on": a.closed_on,
            "closing_note": a.closing_note, "instalments": insts,
            "payments": [{"posted_at": p.posted_at, "amount": _money(-int(p.amount_minor), a.currency), "description": p.description} for p in pays],
            "buttons": ARRANGEMENT.buttons(a.state, actor=actor)}


def desk_counts(session: Session, *, today: date) -> dict[str, int]:
    """For the desk cards: promises (next instalment dates) due today, arrangements waiting for approval, broken this week."""
    d = Dialect(session.get_bind().dialect.name)
    due_today = session.execute(text(f"""SELECT COUNT(DISTINCT g.id) FROM arrangement g JOIN arrangement_instalment i ON i.arrangement_id = g.id
                                         WHERE g.state = 'active' AND i.due_date = {d.d('d')}"""), {"d": d.bind_date(today)}).scalar_one()
    waiting = session.execute(text("SELECT COUNT(*) FROM arrangement WHERE state = 'proposed'")).scalar_one()
    broken = session.execute(text(f"SELECT COUNT(*) FROM arrangement WHERE state = 'broken' AND closed_on >= {d.d('d')}"),
                             {"d": d.bind_date(today - timedelta(days=today.weekday()))}).scalar_one()
    return {"due_today": int(due_today), "waiting": int(waiting), "broken_week": int(broken)}


def parse_amount(raw: str, *, field: str) -> int | None:
    """'1 250.50' -> 125050 minor units; '' -> None. Raises UnableToArrange naming the field."""
    from decimal import Decimal, InvalidOperation

    raw = (raw or "").replace(" ", "").replace(",", "")
    if not raw:
        return None
    try:
        return int((Decimal(raw) * 100).to_integral_value())
    except InvalidOperation:
        raise UnableToArrange(f"'{raw}' is not an amount", field=field) from None


def parse_day(raw: str, *, field: str) -> date | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise UnableToArrange(f"'{raw}' is not a date; use YYYY-MM-DD", field=field) from None


DEFAULT_LIMITS = (("debtors_clerk", 500_000), ("debtors_manager", None))  # R5,000 for a clerk; a manager any amount


def seed_limits(session: Session, *, now: datetime, currency: str = "ZAR") -> None:
    """Approval limits by role as settings data (editable in the admin); an existing row is left as the operator set it."""
    for role, limit in DEFAULT_LIMITS:
        if session.get(ArrangementApprovalLimit, role) is None:
            session.add(ArrangementApprovalLimit(role=role, max_minor=limit, currency=currency, updated_at=now, updated_by="system:seed"))
    session.flush()
