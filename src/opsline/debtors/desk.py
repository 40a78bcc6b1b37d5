"""What the debtors desk shows: today's work (calls to make, promises due, broken promises, approvals waiting, suspended
accounts in arrears, decisions waiting for a person), the last runs, and the account page's Collections panel. One
query per section."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from opsline.billing.sql import Dialect, dialect_of
from opsline.config import DEFAULT_CURRENCY
from opsline.customers.models import Account
from opsline.debtors.actions import LABELS
from opsline.debtors.models import ActionState, DunningAccount, DunningAction, DunningHold, DunningRun, DunningStep, HoldState, StepAction

# proposals that are decisions rather than calls: they stay in "steps waiting for a person"
DECISION_ACTIONS = (StepAction.DISCONTINUANCE.value, StepAction.FINAL_ACCOUNT.value, StepAction.WRITE_OFF_PROPOSAL.value)


def summary(session: Session, *, today: date) -> dict[str, Any]:
    proposals = session.execute(select(func.count(), func.coalesce(func.sum(DunningAction.overdue_minor), 0), func.max(DunningAction.days_overdue))
                                .where(DunningAction.state == ActionState.PROPOSED, DunningAction.action.in_(DECISION_ACTIONS))).one()
    due = session.execute(select(func.count()).select_from(DunningAccount).where(DunningAccount.next_step_from <= today)).scalar_one()
    ending = session.execute(select(func.count(), func.min(DunningHold.valid_to)).where(
        DunningHold.state == HoldState.ACTIVE, DunningHold.valid_to > today, DunningHold.valid_to <= today + timedelta(days=7))).one()
    failed = session.execute(select(func.count()).select_from(DunningAction).where(DunningAction.state == ActionState.FAILED)).scalar_one()
    last = session.execute(select(DunningRun).order_by(DunningRun.run_date.desc()).limit(1)).scalar_one_or_none()
    return {"proposals": int(proposals[0]), "proposals_minor": int(proposals[1]), "proposals_oldest_days": proposals[2],
            "due_for_step": int(due), "holds_ending": int(ending[0]), "first_hold_end": ending[1], "failed": int(failed),
            "last_run": None if last is None else {"id": last.id, "run_date": last.run_date, "actions": last.actions_count, "state": last.state},
            "currency": last.currency if last else DEFAULT_CURRENCY}


def proposals(session: Session, *, limit: int = 100) -> list[dict[str, Any]]:
    """Decisions waiting for a person (discontinuance, final account, write-off proposal), biggest and oldest first; the
    contacts a person makes (calls, VIP letters and suspensions) are today's calls."""
    rows = session.execute(
        select(DunningAction, DunningStep.name, Account.account_number, Account.name, Account.value_tier_code)
        .join(DunningStep, DunningStep.id == DunningAction.step_id).join(Account, Account.id == DunningAction.account_id)
        .where(DunningAction.state == ActionState.PROPOSED, DunningAction.action.in_(DECISION_ACTIONS))
        .order_by(DunningAction.overdue_minor.desc(), DunningAction.days_overdue.desc(), DunningAction.id).limit(limit)).all()
    return [{"id": a.id, "account_id": a.account_id, "account_number": n, "account_name": nm, "tier": tier, "step": step, "action": a.action,
             "label": LABELS.get(StepAction(a.action), a.action), "days_overdue": a.days_overdue, "overdue_minor": a.overdue_minor,
             "currency": a.currency, "run_date": a.run_date} for a, step, n, nm, tier in rows]


def run_actions(session: Session, *, run_id: int, limit: int = 200) -> list[dict[str, Any]]:
    rows = session.execute(
        select(DunningAction, DunningStep.name, Account.account_number, Account.name)
        .join(DunningStep, DunningStep.id == DunningAction.step_id).join(Account, Account.id == DunningAction.account_id)
        .where(DunningAction.run_id == run_id).order_by(DunningAction.overdue_minor.desc(), DunningAction.id).limit(limit)).all()
    return [{"id": a.id, "account_id": a.account_id, "account_number": n, "account_name": nm, "step": step, "action": a.action,
             "label": LABELS.get(StepAction(a.action), a.action), "state": a.state, "days_overdue": a.days_overdue,
             "overdue_minor": a.overdue_minor, "currency": a.currency, "message_id": a.message_id, "note": a.note} for a, step, n, nm in rows]


# --- today's work (issue 11 item 8): one query per section, biggest and oldest first -------------------------------------

BROKEN_FOLLOW_UP_DAYS = 30  # a broken promise stays on the desk this long unless a new arrangement follows it


def _x(session: Session, sql: str, params: dict[str, Any]) -> Any:
    return session.execute(text(sql), params)


def _calls_sql(d: Dialect) -> str:
    """Calls to make: proposed steps routed to a person that are contacts (a policy's `call` step, a VIP letter or
    suspension a person decides: phone first), and accounts whose last step was a letter of demand whose notice has run
    out (the policy's notice days) with no hold or arrangement since: phone before the next step."""
    decision = ", ".join(f"'{a}'" for a in DECISION_ACTIONS)
    return f"""
        SELECT 'action' AS kind, a.id AS ref_id, a.account_id, a.overdue_minor, a.days_overdue, a.currency, s.name AS step, a.action,
               a.run_date AS since
        FROM dunning_action a JOIN dunning_step s ON s.id = a.step_id
        WHERE a.state = 'proposed' AND a.action NOT IN ({decision})
        UNION ALL
        SELECT 'letter' AS kind, la.id AS ref_id, da.account_id, la.overdue_minor, la.days_overdue + {d.days('la.run_date', d.d('today'))},
               la.currency, s.name AS step, la.action, da.next_step_from AS since
        FROM dunning_account da JOIN dunning_step s ON s.id = da.step_id
        JOIN dunning_action la ON la.account_id = da.account_id AND la.run_date = da.last_step_on
        WHERE s.action = 'letter_of_demand' AND la.action = 'letter_of_demand' AND la.state = 'done' AND da.next_step_from <= {d.d('today')}
          AND NOT EXISTS (SELECT 1 FROM dunning_hold h WHERE h.account_id = da.account_id AND h.state = 'active'
                          AND h.valid_from <= {d.d('today')} AND h.valid_to > {d.d('today')})
          AND NOT EXISTS (SELECT 1 FROM arrangement g WHERE g.account_id = da.account_id AND g.state IN ('proposed', 'active'))
          AND NOT EXISTS (SELECT 1 FROM dunning_action p WHERE p.account_id = da.account_id AND p.state = 'proposed')"""


def _promises_sql(d: Dialect) -> str:
    """Active arrangements with money due by today that the payments since it was made have not covered: what is due,
    the oldest unpaid date, who made it."""
    from opsline.debtors.arrangements import _paid_sql

    return f"""
        WITH p AS (SELECT g.id, g.account_id, g.kind, g.amount_minor, g.currency, g.created_by, {_paid_sql(d, by=':now')} AS paid
                   FROM arrangement g WHERE g.state = 'active'),
        c AS (SELECT i.arrangement_id, i.due_date, SUM(i.amount_minor) OVER (PARTITION BY i.arrangement_id ORDER BY i.seq) AS cum
              FROM arrangement_instalment i JOIN p ON p.id = i.arrangement_id),
        due AS (SELECT p.id, MAX(c.cum) AS due_cum, MIN(c.due_date) AS oldest FROM p JOIN c ON c.arrangement_id = p.id
                WHERE c.due_date <= {d.d('today')} AND c.cum > p.paid GROUP BY p.id)
        SELECT p.id AS ref_id, p.account_id, p.kind, p.amount_minor, p.currency, p.created_by AS owner, p.paid,
               due.due_cum - p.paid AS due_minor, due.oldest, {d.days('due.oldest', d.d('today'))} AS days_late
        FROM p JOIN due ON due.id = p.id"""


def _broken_sql(d: Dialect) -> str:
    """Promises broken in the last BROKEN_FOLLOW_UP_DAYS days with no arrangement made since, the account still owing."""
    return f"""
        SELECT g.id AS ref_id, g.account_id, g.kind, g.amount_minor, g.currency, g.created_by AS owner, g.closed_on, g.closing_note,
               b.balance_minor
        FROM arrangement g
        JOIN (SELECT le.account_id, SUM(le.amount_minor) AS balance_minor FROM ledger_entry le
              WHERE le.account_id IN (SELECT account_id FROM arrangement WHERE state = 'broken' AND closed_on >= {d.d('since')})
              GROUP BY le.account_id) b ON b.account_id = g.account_id
        WHERE g.state = 'broken' AND g.closed_on >= {d.d('since')} AND b.balance_minor > 0
          AND NOT EXISTS (SELECT 1 FROM arrangement g2 WHERE g2.account_id = g.account_id AND g2.id > g.id)"""


def _approvals_sql(*, arrangement_limit: int | None) -> str:
    """What a debtors manager may approve: arrangements above a clerk's limit (within this manager's own), single
    write-offs and write-off batches, all proposed by someone else (four eyes: never one's own)."""
    within = "" if arrangement_limit is None else f" AND g.amount_minor <= {int(arrangement_limit)}"
    return f"""
        SELECT 'arrangement' AS kind, g.id AS ref_id, g.account_id, g.amount_minor, g.currency, g.created_by AS proposed_by,
               g.created_at AS proposed_at, 1 AS accounts, g.kind AS what
        FROM arrangement g WHERE g.state = 'proposed' AND g.created_by <> :me{within}
        UNION ALL
        SELECT 'write_off', w.id, w.account_id, w.amount_minor, w.currency, w.proposed_by, w.proposed_at, 1, w.reason
        FROM write_off w WHERE w.state = 'proposed' AND w.batch_id IS NULL AND w.proposed_by <> :me
        UNION ALL
        SELECT 'batch', b.id, NULL, b.amount_minor, b.currency, b.proposed_by, b.proposed_at, b.accounts, b.reason
        FROM write_off_batch b WHERE b.state = 'proposed' AND b.proposed_by <> :me"""


def _suspended_sql(d: Dialect) -> str:
    """Suspended accounts still in arrears: overdue = debits due before today less every credit (credits settle the
    oldest first), the balance, and the active arrangement if any."""
    due = f"COALESCE(le.due_date, {'CAST(le.posted_at AS DATE)' if d.pg else 'date(le.posted_at)'})"
    return f"""
        SELECT a.id AS account_id, a.currency,
               SUM(CASE WHEN le.amount_minor > 0 AND {due} < {d.d('today')} THEN le.amount_minor WHEN le.amount_minor < 0 THEN le.amount_minor ELSE 0 END)
                   AS overdue_minor,
               SUM(le.amount_minor) AS balance_minor, MIN(CASE WHEN le.amount_minor > 0 THEN {due} END) AS oldest_due
        FROM account a JOIN ledger_entry le ON le.account_id = a.id
        WHERE a.status = 'suspended' AND le.posted_at <= :t
        GROUP BY a.id, a.currency
        HAVING SUM(CASE WHEN le.amount_minor > 0 AND {due} < {d.d('today')} THEN le.amount_minor WHEN le.amount_minor < 0 THEN le.amount_minor ELSE 0 END) > 0"""


def _params(d: Dialect, *, today: date, now: datetime, me: str = "") -> dict[str, Any]:
    return {"today": d.bind_date(today), "now": d.bind_ts(now), "t": d.bind_ts(now), "since": d.bind_date(today - timedelta(days=BROKEN_FOLLOW_UP_DAYS)),
            "me": me}


def _with_account(inner: str, order: str) -> str:
    return f"""SELECT c.*, acc.account_number, acc.name AS account_name, acc.phone, acc.value_tier_code AS tier
               FROM ({inner}) c LEFT JOIN account acc ON acc.id = c.account_id ORDER BY {order} LIMIT :n"""


def _rows(result: Any) -> list[dict[str, Any]]:
    # PostgreSQL sums of BIGINT come back as Decimal; amounts here are whole minor units
    return [{k: int(v) if isinstance(v, Decimal) else v for k, v in r._mapping.items()} for r in result]


def _iso(v: Any) -> Any:
    return date.fromisoformat(str(v)[:10]) if isinstance(v, str) else v


def today_work(session: Session, *, today: date, now: datetime, actor_name: str, can_approve: bool, arrangement_limit: int | None = None,
               limit: int = 50) -> dict[str, list[dict[str, Any]]]:
    """The debtors desk's work for today, each section one query, biggest and oldest first: calls to make, promises due
    today or overdue, broken promises to follow up, approvals waiting (only for someone who may approve: never their own
    proposals), suspended accounts with arrears."""
    d = dialect_of(session)
    p = _params(d, today=today, now=now, me=actor_name) | {"n": limit}
    calls = _rows(_x(session, _with_account(_calls_sql(d), "c.overdue_minor DESC, c.days_overdue DESC, c.ref_id"), p))
    for r in calls:
        r["since"] = _iso(r["since"])
        r["label"] = LABELS.get(StepAction(r["action"]), r["action"]) if r["kind"] == "action" else "Letter of demand: notice over, no payment"
    promises = _rows(_x(session, _with_account(_promises_sql(d), "c.due_minor DESC, c.oldest, c.ref_id"), p))
    for r in promises:
        r["oldest"] = _iso(r["oldest"])
    broken = _rows(_x(session, _with_account(_broken_sql(d), "c.balance_minor DESC, c.closed_on, c.ref_id"), p))
    for r in broken:
        r["closed_on"] = _iso(r["closed_on"])
    approvals: list[dict[str, Any]] = []
    if can_approve:
        approvals = _rows(_x(session, _with_account(_approvals_sql(arrangement_limit=arrangement_limit), "c.amount_minor DESC, c.proposed_at, c.ref_id"), p))
        for r in approvals:
            r["href"] = {"arrangement": f"/debtors/arrangements/{r['ref_id']}", "write_off": f"/debtors/writeoffs/{r['ref_id']}",
                         "batch": f"/debtors/writeoffs/batches/{r['ref_id']}"}[r["kind"]]
            r["ref"] = {"arrangement": "ARR-", "write_off": "WO-", "batch": "WOB-"}[r["kind"]] + str(r["ref_id"])
    suspended = _rows(_x(session, _with_account(_suspended_sql(d), "c.overdue_minor DESC, c.oldest_due, c.account_id"), p))
    for r in suspended:
        r["oldest_due"] = _iso(r["oldest_due"])
        r["days_overdue"] = (today - r["oldest_due"]).days if r["oldest_due"] else None
    return {"calls": calls, "promises": promises, "broken": broken, "approvals": approvals, "suspended": suspended}


def today_counts(session: Session, *, today: date, now: datetime, actor_name: str, can_approve: bool,
                 arrangement_limit: int | None = None) -> dict[str, Any]:
    """How many of each section (the home cards), one query: calls, promises due (and how many of them today),
    broken promises, approvals waiting (None when the actor may not approve), suspended accounts with arrears."""
    d = dialect_of(session)
    p = _params(d, today=today, now=now, me=actor_name)
    appr = f"(SELECT COUNT(*) FROM ({_approvals_sql(arrangement_limit=arrangement_limit)}) q)" if can_approve else "NULL"
    r = _x(session, f"""SELECT (SELECT COUNT(*) FROM ({_calls_sql(d)}) q) AS calls,
                               (SELECT COUNT(*) FROM ({_promises_sql(d)}) q) AS promises,
                               (SELECT COUNT(*) FROM ({_promises_sql(d)}) q WHERE q.days_late = 0) AS promises_today,
                               (SELECT COUNT(*) FROM ({_broken_sql(d)}) q) AS broken,
                               {appr} AS approvals,
                               (SELECT COUNT(*) FROM ({_suspended_sql(d)}) q) AS suspended""", p).one()
    return {"calls": int(r.calls), "promises": int(r.promises), "promises_today": int(r.promises_today), "broken": int(r.broken),
            "approvals": None if r.approvals is None else int(r.approvals), "suspended": int(r.suspended)}


# --- the account page's debtors panel -------------------------------------------------------------------------------

def account_panel(session: Session, *, account_id: int, now: datetime, tz: Any = None) -> dict[str, Any]:
    """Where the account stands in collections (overdue, the dunning step and its notice, the last actions, an open
    arrangement, a hold, an open write-off) for the panel on the account page, which offers Arrange, Hold and Propose
    write-off to those allowed. Raises AccountNotFound."""
    from opsline.config import get_settings
    from opsline.core.localtime import local_date, zone
    from opsline.customers import service as customers
    from opsline.debtors import arrangements
    from opsline.debtors.models import Arrangement, WriteOff

    acc = customers.get_account(session, account_id=account_id)
    today = local_date(now, tz or zone(get_settings().timezone))
    overdue = arrangements.overdue_minor(session, account_id=acc.id, today=today, now=now)
    pos = session.execute(select(DunningAccount, DunningStep.name, DunningStep.action).join(DunningStep, DunningStep.id == DunningAccount.step_id)
                          .where(DunningAccount.account_id == acc.id)).first()
    recent = session.execute(select(DunningAction, DunningStep.name).join(DunningStep, DunningStep.id == DunningAction.step_id)
                             .where(DunningAction.account_id == acc.id).order_by(DunningAction.id.desc()).limit(5)).all()
    arr = session.execute(select(Arrangement).where(Arrangement.account_id == acc.id, Arrangement.state.in_(("proposed", "active")))
                          .order_by(Arrangement.id.desc()).limit(1)).scalar_one_or_none()
    hold = session.execute(select(DunningHold).where(DunningHold.account_id == acc.id, DunningHold.state == HoldState.ACTIVE,
                                                     DunningHold.valid_from <= today, DunningHold.valid_to > today)
                           .order_by(DunningHold.valid_to.desc()).limit(1)).scalar_one_or_none()
    wo = session.execute(select(WriteOff).where(WriteOff.account_id == acc.id, WriteOff.state.in_(("proposed", "approved")))
                         .order_by(WriteOff.id.desc()).limit(1)).scalar_one_or_none()
    return {"debtors": {
        "account_id": acc.id, "account_number": acc.account_number, "currency": acc.currency, "status": acc.status, "overdue_minor": overdue,
        "today": today, "default_hold_to": today + timedelta(days=14),
        "position": None if pos is None else {"step": pos[1], "action": pos[2], "last_step_on": pos[0].last_step_on, "next_step_from": pos[0].next_step_from},
        "actions": [{"id": a.id, "run_date": a.run_date, "step": name, "label": LABELS.get(StepAction(a.action), a.action), "state": a.state,
                     "letter": a.action == StepAction.LETTER_OF_DEMAND and a.state == ActionState.DONE, "overdue_minor": a.overdue_minor,
                     "currency": a.currency} for a, name in recent],
        "arrangement": None if arr is None else {"id": arr.id, "kind": arr.kind, "state": arr.state, "amount_minor": arr.amount_minor, "currency": arr.currency},
        "hold": None if hold is None else {"id": hold.id, "reason": hold.reason, "valid_to": hold.valid_to, "created_by": hold.created_by},
        "write_off": None if wo is None else {"id": wo.id, "state": wo.state, "amount_minor": wo.amount_minor, "currency": wo.currency,
                                              "proposed_by": wo.proposed_by},
    }}


def panel_loader(session: Session, *, account_id: int, now: datetime, **_: Any) -> dict[str, Any]:
    return account_panel(session, account_id=account_id, now=now)
