"""SLA engine operations: replay case clocks, recalculate, scan for warnings and breaches, breach causes, risk."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from opsline.core import events, jobs
from opsline.core.calendar import BusinessCalendar, CalendarIndex
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.sla import policies as pol
from opsline.sla.clocks import LABELS, Clock, Event, IndexOps, ScalarOps, epoch, evaluate, from_epoch, replay
from opsline.sla.models import (
    BreachCause, BusinessCalendarRow, SlaBreach, SlaCase, SlaClock, SlaContract, SlaNotification, SlaPolicy, SlaWarning,
)

OPEN_CASE_STATES = ("acknowledged", "inProgress", "pending", "held")
_CHUNK = 2000
RECALC_SHARD = 5000  # case ids per "sla.recalculate" job


class UnableToSetBreachCause(InvalidInput):
    pass


class BreachNotFound(NotFound):
    pass


class CaseNotFound(NotFound):
    pass


def _chunks(ids: Sequence[int], size: int = _CHUNK) -> Iterable[list[int]]:
    for i in range(0, len(ids), size):
        yield [int(x) for x in ids[i : i + size]]


# -- loading -----------------------------------------------------------------------------------


@dataclass
class _CaseRow:
    id: int
    account_id: int | None
    category_code: str | None
    channel: str | None
    state: str
    priority: int
    value_tier_code: str | None
    queue_id: int | None
    partner: str | None
    sla_policy_id: int | None


def _load_cases(session: Session, case_ids: Sequence[int]) -> dict[int, _CaseRow]:
    from opsline.cases.models import SupportCase as C

    out: dict[int, _CaseRow] = {}
    for chunk in _chunks(case_ids):
        for r in session.execute(select(C.id, C.account_id, C.category_code, C.channel, C.state, C.priority, C.value_tier_code, C.queue_id, C.third_party_partner_code, C.sla_policy_id).where(C.id.in_(chunk))):
            out[r[0]] = _CaseRow(*r)
    return out


def _load_events(session: Session, case_ids: Sequence[int]) -> dict[int, list[Event]]:
    from opsline.cases.models import CaseEvent as E

    out: dict[int, list[Event]] = defaultdict(list)
    for chunk in _chunks(case_ids):
        q = select(E.case_id, E.at, E.kind, E.from_value, E.to_value, E.data).where(E.case_id.in_(chunk), E.kind != "policy").order_by(E.case_id, E.at, E.id)
        for cid, at, kind, fv, tv, data in session.execute(q):
            out[cid].append(Event(at=at, kind=kind, from_value=fv, to_value=tv, data=data))
    return out


def _queues(session: Session) -> dict[int, dict[str, Any]]:
    from opsline.cases.models import Queue

    return {r.id: {"id": r.id, "code": r.code, "name": r.name, "calendar_code": r.calendar_code, "manager_user_id": r.manager_user_id, "is_escalation": r.is_escalation}
            for r in session.execute(select(Queue.id, Queue.code, Queue.name, Queue.calendar_code, Queue.manager_user_id, Queue.is_escalation))}


def _normalise_queue_events(evs: list[Event], by_code: dict[str, int]) -> list[Event]:
    """Queue events may name queues by id or code; the replay keys team clocks by queue id."""
    out = []
    for e in evs:
        if e.kind == "queue":
            fv = str(by_code.get(e.from_value, e.from_value)) if e.from_value else None
            tv = str(by_code.get(e.to_value, e.to_value)) if e.to_value else None
            e = Event(at=e.at, kind=e.kind, from_value=fv, to_value=tv, data=e.data)
        out.append(e)
    return out


def _site_timezones(session: Session, account_ids: Iterable[int]) -> dict[int, str]:
    from opsline.customers.models import Site

    ids = sorted({int(a) for a in account_ids if a is not None})
    out: dict[int, str] = {}
    for chunk in _chunks(ids):
        for acc, tz in session.execute(select(Site.account_id, func.min(Site.timezone)).where(Site.account_id.in_(chunk), Site.timezone.is_not(None)).group_by(Site.account_id)):
            out[int(acc)] = tz
    return out


def _contracts(session: Session, account_ids: Iterable[int], *, today: Any) -> dict[int, tuple[int, dict[str, Any]]]:
    ids = sorted({int(a) for a in account_ids if a is not None})
    out: dict[int, tuple[int, dict[str, Any]]] = {}
    for chunk in _chunks(ids):
        q = select(SlaContract.account_id, SlaContract.id, SlaContract.overrides).where(
            SlaContract.account_id.in_(chunk), SlaContract.valid_from <= today, or_(SlaContract.valid_to.is_(None), SlaContract.valid_to > today)
        ).order_by(SlaContract.id)
        for acc, cid, overrides in session.execute(q):
            out.setdefault(int(acc), (int(cid), dict(overrides or {})))
    return out


def _calendar_data(session: Session) -> dict[str, dict[str, Any]]:
    return {r.code: dict(r.data) for r in session.execute(select(BusinessCalendarRow.code, BusinessCalendarRow.data))}


# -- the engine --------------------------------------------------------------------------------


@dataclass
class _Plan:
    case: _CaseRow
    policy: pol.PolicyRow | None
    calendar_key: tuple[str, str | None]


def _compute(session: Session, case_ids: Sequence[int], *, now: datetime, vectorised: bool) -> tuple[dict[int, _CaseRow], dict[int, _Plan], dict[int, list[Clock]]]:
    """Replay and measure every clock of `case_ids`; nothing is written."""
    cases = _load_cases(session, case_ids)
    if not cases:
        return cases, {}, {}
    queues = _queues(session)
    by_code = {q["code"]: qid for qid, q in queues.items()}
    queue_names = {str(qid): q["name"] for qid, q in queues.items()}
    policies = pol.load_policies(session)
    policy_by_id = {p.id: p for p in policies}
    pinned = {cid: pid for cid, pid in session.execute(select(SlaCase.case_id, SlaCase.policy_id).where(SlaCase.pinned.is_(True), SlaCase.case_id.in_(list(cases)))) } if len(cases) <= _CHUNK else {
        cid: pid for chunk in _chunks(list(cases)) for cid, pid in session.execute(select(SlaCase.case_id, SlaCase.policy_id).where(SlaCase.pinned.is_(True), SlaCase.case_id.in_(chunk)))}
    accounts = [c.account_id for c in cases.values() if c.account_id is not None]
    tzs = _site_timezones(session, accounts)
    contracts = _contracts(session, accounts, today=now.date())
    olas = pol.load_olas(session)
    partners = pol.partner_minutes(session)
    cal_data = _calendar_data(session)
    evs = _load_events(session, list(cases))

    plans: dict[int, _Plan] = {}
    match_cache: dict[tuple[Any, ...], pol.PolicyRow | None] = {}
    for cid, c in cases.items():
        contract = contracts.get(c.account_id) if c.account_id is not None else None
        attrs = (c.category_code, c.priority, c.value_tier_code, c.account_id, contract[0] if contract else None, c.channel)
        p = policy_by_id.get(pinned[cid]) if cid in pinned else None
        if p is None:
            if attrs not in match_cache:
                match_cache[attrs] = pol.match_policy(policies, attrs)
            p = match_cache[attrs]
        cal_code = (queues.get(c.queue_id) or {}).get("calendar_code") or (p.calendar_code if p else None) or "za-support"
        if cal_code not in cal_data:
            cal_code = p.calendar_code if p and p.calendar_code in cal_data else next(iter(cal_data), "za-support")
        plans[cid] = _Plan(c, p, (cal_code, tzs.get(c.account_id) if c.account_id is not None else None))

    # Group by calendar so each calendar's index is built once and measures all its cases together.
    groups: dict[tuple[str, str | None], list[int]] = defaultdict(list)
    for cid, plan in plans.items():
        if plan.policy is not None and evs.get(cid):
            groups[plan.calendar_key].append(cid)
    now_s = epoch(now)
    result: dict[int, list[Clock]] = {}
    for (code, tz), cids in groups.items():
        calendar = pol.calendar_from_row(cal_data[code], timezone=tz)
        case_plans = []
        owners = []
        for cid in cids:
            plan = plans[cid]
            c = plan.case
            contract = contracts.get(c.account_id) if c.account_id is not None else None
            targets = pol.targets_for(plan.policy, priority=c.priority, olas=olas, partners=partners, contract_overrides=contract[1] if contract else None)  # type: ignore[arg-type]
            case_events = evs[cid]
            first_queue = next((e.data.get("queue") for e in case_events if e.kind == "opened" and e.data and e.data.get("queue")), None)
            initial_queue = by_code.get(first_queue, c.queue_id) if first_queue else c.queue_id
            cps = replay(_normalise_queue_events(case_events, by_code), targets, now=now, initial_queue=str(initial_queue) if initial_queue is not None else None, initial_partner=c.partner)
            case_plans.extend(cps)
            owners.extend([cid] * len(cps))
        if not case_plans:
            continue
        if vectorised and len(cids) > 20:
            start = from_epoch(min(p.started_s for p in case_plans)) - timedelta(days=1)
            ops: Any = IndexOps(CalendarIndex.build(calendar, start=start, end=now + timedelta(days=120)), calendar)
        else:
            ops = ScalarOps(calendar)
        clocks = evaluate(case_plans, ops, now_s=now_s, queue_names=queue_names)
        for cid, clock in zip(owners, clocks):
            result.setdefault(cid, []).append(clock)
    return cases, plans, result


def _write(session: Session, *, cases: dict[int, _CaseRow], plans: dict[int, _Plan], clocks: dict[int, list[Clock]], now: datetime, actor: Actor, reason: str | None) -> dict[str, int]:
    """Make the stored clocks, breaches, warnings and policy choice equal the computed ones (idempotent)."""
    from opsline.cases.models import CaseEvent, SupportCase

    ids = list(cases)
    counts = {"clocks": 0, "breaches": 0, "warnings": 0, "policy_changes": 0}
    for chunk in _chunks(ids):
        existing = {(r.case_id, r.metric, r.clock_key): r for r in session.execute(select(SlaClock.id, SlaClock.case_id, SlaClock.metric, SlaClock.clock_key, SlaClock.due_at, SlaClock.elapsed_seconds, SlaClock.state, SlaClock.paused_seconds, SlaClock.stopped_at, SlaClock.policy_id, SlaClock.calendar_code, SlaClock.target_seconds, SlaClock.queue_id, SlaClock.started_at, SlaClock.breached_at, SlaClock.partner_code, SlaClock.paused, SlaClock.account_id).where(SlaClock.case_id.in_(chunk)))}
        wanted: dict[tuple[int, str, str], dict[str, Any]] = {}
        for cid in chunk:
            plan = plans.get(cid)
            for c in clocks.get(cid, []):
                wanted[(cid, c.metric, c.key)] = {
                    "case_id": cid, "account_id": cases[cid].account_id, "metric": c.metric, "clock_key": c.key,
                    "queue_id": int(c.queue) if c.queue is not None else None, "partner_code": c.partner,
                    "policy_id": plan.policy.id if plan and plan.policy else None, "calendar_code": plan.calendar_key[0] if plan else None,
                    "started_at": c.started_at, "due_at": c.due_at, "stopped_at": c.stopped_at, "breached_at": c.breached_at,
                    "elapsed_seconds": c.elapsed_seconds, "target_seconds": c.target_seconds, "paused_seconds": c.paused_seconds,
                    "state": c.state, "paused": c.paused,
                }
        inserts, updates = [], []
        for key, row in wanted.items():
            old = existing.get(key)
            if old is None:
                inserts.append(row | {"computed_at": now})
            elif any(getattr(old, k) != v for k, v in row.items()):
                updates.append(row | {"id": old.id, "computed_at": now})
        gone = [old.id for key, old in existing.items() if key not in wanted]
        if gone:
            session.execute(delete(SlaClock).where(SlaClock.id.in_(gone)))
        if inserts:
            session.execute(insert(SlaClock), inserts)
        if updates:
            session.execute(update(SlaClock), updates)
        counts["clocks"] += len(wanted)

        # Breaches: one per breached clock; a breach that recalculation shows never happened goes (unless analysed).
        old_b = {(r.case_id, r.metric, r.clock_key): r for r in session.execute(select(SlaBreach.id, SlaBreach.case_id, SlaBreach.metric, SlaBreach.clock_key, SlaBreach.cause_code, SlaBreach.due_at, SlaBreach.overrun_seconds, SlaBreach.queue_id, SlaBreach.partner_code).where(SlaBreach.case_id.in_(chunk)))}
        b_ins, b_upd = [], []
        for key, row in wanted.items():
            if row["state"] != "breached":
                continue
            overrun = max(row["elapsed_seconds"] - row["target_seconds"], 0)
            queue_id = row["queue_id"] if row["queue_id"] is not None else cases[key[0]].queue_id
            vals = {"queue_id": queue_id, "partner_code": row["partner_code"], "breached_at": row["breached_at"] or row["due_at"], "due_at": row["due_at"], "overrun_seconds": overrun}
            old = old_b.get(key)
            if old is None:
                b_ins.append({"case_id": key[0], "account_id": row["account_id"], "metric": key[1], "clock_key": key[2], "created_at": now} | vals)
            elif (old.due_at, old.overrun_seconds, old.queue_id, old.partner_code) != (vals["due_at"], overrun, queue_id, vals["partner_code"]):
                b_upd.append({"id": old.id} | vals)
        stale = [old.id for key, old in old_b.items() if old.cause_code is None and (key not in wanted or wanted[key]["state"] != "breached")]
        if stale:
            session.execute(delete(SlaBreach).where(SlaBreach.id.in_(stale)))
        if b_ins:
            session.execute(insert(SlaBreach), b_ins)
        if b_upd:
            session.execute(update(SlaBreach), b_upd)
        counts["breaches"] += len(b_ins)

        # Warnings: once per (clock, threshold) crossed while the clock is still open.
        old_w = set(session.execute(select(SlaWarning.case_id, SlaWarning.metric, SlaWarning.clock_key, SlaWarning.threshold).where(SlaWarning.case_id.in_(chunk))).tuples())
        w_ins = []
        for key, row in wanted.items():
            if row["stopped_at"] is not None or not row["target_seconds"]:
                continue
            plan = plans.get(key[0])
            thresholds = plan.policy.fields.get("warn_percents") if plan and plan.policy else [50, 75, 100]
            pct = 100.0 * row["elapsed_seconds"] / row["target_seconds"]
            for t in thresholds or []:
                if pct >= t and (key[0], key[1], key[2], int(t)) not in old_w:
                    w_ins.append({"case_id": key[0], "account_id": row["account_id"], "metric": key[1], "clock_key": key[2], "threshold": int(t), "percent": round(pct, 2), "due_at": row["due_at"], "created_at": now, "actions": []})
        if w_ins:
            session.execute(insert(SlaWarning), w_ins)
        counts["warnings"] += len(w_ins)

        # Policy choice: sla_case row per case and support_case.sla_policy_id; a change is a case event.
        sc_old = {r.case_id: r for r in session.execute(select(SlaCase.case_id, SlaCase.policy_id, SlaCase.pinned, SlaCase.calendar_code, SlaCase.timezone).where(SlaCase.case_id.in_(chunk)))}
        sc_ins, sc_upd, case_upd, ev_ins = [], [], [], []
        for cid in chunk:
            plan = plans.get(cid)
            if plan is None:
                continue
            pid = plan.policy.id if plan.policy else None
            vals = {"policy_id": pid, "calendar_code": plan.calendar_key[0], "timezone": plan.calendar_key[1], "computed_at": now}
            old = sc_old.get(cid)
            if old is None:
                sc_ins.append({"case_id": cid, "account_id": plan.case.account_id, "pinned": False} | vals)
            elif (old.policy_id, old.calendar_code, old.timezone) != (pid, plan.calendar_key[0], plan.calendar_key[1]):
                sc_upd.append({"case_id": cid} | vals)
            if plan.case.sla_policy_id != pid:
                case_upd.append({"b_id": cid, "b_policy": pid})
                ev_ins.append({"case_id": cid, "account_id": plan.case.account_id, "at": now, "kind": "policy", "from_value": None if plan.case.sla_policy_id is None else str(plan.case.sla_policy_id),
                               "to_value": None if pid is None else str(pid), "reason": reason or f"SLA policy: {plan.policy.name if plan.policy else 'none'}", "actor": actor.name, "data": {"policy_name": plan.policy.name if plan.policy else None}})
        if sc_ins:
            session.execute(insert(SlaCase), sc_ins)
        if sc_upd:
            session.execute(update(SlaCase), sc_upd)
        if case_upd:
            from sqlalchemy import bindparam

            st = SupportCase.__table__
            session.execute(st.update().where(st.c.id == bindparam("b_id")).values(sla_policy_id=bindparam("b_policy")), case_upd)
            session.execute(insert(CaseEvent.__table__), ev_ins)
            for cid, c in ((c["b_id"], c) for c in case_upd):
                cases[cid].sla_policy_id = c["b_policy"]
        counts["policy_changes"] += len(case_upd)
    return counts


def on_case_changed(session: Session, *, case_id: int, now: datetime) -> None:
    """Re-select the case's policy (unless pinned) and recompute its clocks from its `case_event` history.

    Called by the cases service in the same transaction after every change; idempotent. Raises nothing for
    a case without history (no clocks yet).
    """
    cases, plans, clocks = _compute(session, [case_id], now=now, vectorised=False)
    if cases:
        _write(session, cases=cases, plans=plans, clocks=clocks, now=now, actor=Actor.system("sla"), reason=None)


def recalculate(session: Session, *, case_ids: list[int] | None, now: datetime, reason: str, actor: Actor, include_closed: bool = False) -> dict[str, int]:
    """Recompute clocks, breaches, warnings and policy of `case_ids` (None = every open case) from history.

    Deadlines equal what they would be had the current priority, policy and calendars always applied.
    Uses one `CalendarIndex` per calendar for all cases' maths. Returns counts.
    """
    from opsline.cases.models import SupportCase

    if case_ids is None:
        q = select(SupportCase.id)
        if not include_closed:
            q = q.where(SupportCase.state.in_(OPEN_CASE_STATES))
        case_ids = list(session.execute(q.order_by(SupportCase.id)).scalars())
    total = {"cases": 0, "clocks": 0, "breaches": 0, "warnings": 0, "policy_changes": 0}
    for batch in _chunks(case_ids, 20_000):
        cases, plans, clocks = _compute(session, batch, now=now, vectorised=True)
        counts = _write(session, cases=cases, plans=plans, clocks=clocks, now=now, actor=actor, reason=reason)
        total["cases"] += len(cases)
        for k, v in counts.items():
            total[k] += v
    return total


def enqueue_recalculation(session: Session, *, now: datetime, reason: str, actor: Actor) -> int:
    """Enqueue "sla.recalculate" jobs sharded by case id ranges over every open case. Returns the job count."""
    from opsline.cases.models import SupportCase

    lo, hi = session.execute(select(func.min(SupportCase.id), func.max(SupportCase.id)).where(SupportCase.state.in_(OPEN_CASE_STATES))).one()
    if lo is None:
        return 0
    n = 0
    for start in range(int(lo), int(hi) + 1, RECALC_SHARD):
        jobs.enqueue(session, kind="sla.recalculate", payload={"from_id": start, "to_id": start + RECALC_SHARD, "reason": reason, "actor": actor.name}, now=now,
                     idempotency_key=f"sla.recalculate:{now.isoformat()}:{start}")
        n += 1
    return n


def run_recalculate_job(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    from opsline.cases.models import SupportCase

    ids = list(session.execute(select(SupportCase.id).where(SupportCase.id >= payload["from_id"], SupportCase.id < payload["to_id"], SupportCase.state.in_(OPEN_CASE_STATES))).scalars())
    return recalculate(session, case_ids=ids, now=now, reason=payload.get("reason", "recalculate"), actor=Actor.system(payload.get("actor", "sla")))


# -- reading clocks ------------------------------------------------------------------------------


def case_clocks(session: Session, *, case_id: int, now: datetime) -> list[dict[str, Any]]:
    """Every clock of the case as of `now`, computed from its history (earlier met next-update windows left out).

    Each dict: metric, label, team, partner, started_at, due_at, elapsed_seconds, target_seconds, percent,
    state, paused_seconds, paused (plus key, stopped_at, breached_at).
    """
    _, _, clocks = _compute(session, [case_id], now=now, vectorised=False)
    rows = clocks.get(case_id, [])
    windows = [c for c in rows if c.metric == "next_update"]
    last_window = windows[-1] if windows else None
    out = []
    order = {m: i for i, m in enumerate(LABELS)}
    for c in sorted(rows, key=lambda c: (order[c.metric], c.started_at)):
        if c.metric == "next_update" and c is not last_window and c.state != "breached":
            continue
        out.append(c.as_dict())
    return out


def breach_risk(session: Session, *, case_ids: list[int], now: datetime) -> dict[int, float]:
    """Probability (0..1) that each open case's resolution clock breaches.

    Model: for the case's queue and category, the empirical distribution H of resolution business-seconds of
    finished cases (resolution clocks met or breached; falls back to the queue, then to all history, then to a
    default of the target itself when fewer than 10 samples). A case that has already used e business seconds
    needs T - e more, with T drawn from H conditioned on T > e. Before work starts it waits behind the cases
    ahead of it in its queue (open, higher or equal priority, opened earlier): wait = ahead x median(H) / n,
    where n is the number of distinct assignees working that queue (at least 1). The risk is
    P(T - e + wait > remaining) = S(e + remaining - wait) / S(e), with S the empirical survival function, all
    computed with numpy `searchsorted` over the sorted history for every case at once. Paused clocks use the
    same formula (the pause only delays the deadline). A clock already breached has risk 1.
    """
    from opsline.cases.models import SupportCase as C

    if not case_ids:
        return {}
    rows = []
    for chunk in _chunks(case_ids):
        rows += session.execute(
            select(C.id, C.queue_id, C.category_code, C.priority, C.opened_at, SlaClock.elapsed_seconds, SlaClock.target_seconds, SlaClock.state, SlaClock.computed_at, SlaClock.paused)
            .join(SlaClock, and_(SlaClock.case_id == C.id, SlaClock.metric == "resolution"))
            .where(C.id.in_(chunk))
        ).all()
    out = {int(cid): 0.0 for cid in case_ids}
    if not rows:
        return out
    # History per (queue, category) and per queue.
    hist = session.execute(
        select(C.queue_id, C.category_code, SlaClock.elapsed_seconds).join(SlaClock, and_(SlaClock.case_id == C.id, SlaClock.metric == "resolution"))
        .where(SlaClock.state.in_(("met", "breached")), SlaClock.stopped_at.is_not(None))
    ).all()
    by_qc: dict[tuple[Any, Any], list[int]] = defaultdict(list)
    by_q: dict[Any, list[int]] = defaultdict(list)
    everything: list[int] = []
    for q, cat, el in hist:
        by_qc[(q, cat)].append(int(el))
        by_q[q].append(int(el))
        everything.append(int(el))
    # Backlog ahead in each queue: open cases with higher/equal priority opened earlier; capacity = assignees.
    open_rows = session.execute(select(C.id, C.queue_id, C.priority, C.opened_at, C.assignee_user_id).where(C.state.in_(OPEN_CASE_STATES))).all()
    per_queue: dict[Any, list[tuple[int, float, int]]] = defaultdict(list)
    staff: dict[Any, set[int]] = defaultdict(set)
    for cid, q, prio, opened, assignee in open_rows:
        per_queue[q].append((int(prio), opened.timestamp(), int(cid)))
        if assignee is not None:
            staff[q].add(int(assignee))
    ahead: dict[int, int] = {}
    for q, items in per_queue.items():
        items.sort()
        for rank, (_, _, cid) in enumerate(items):
            ahead[cid] = rank
    groups: dict[tuple[Any, Any], list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        groups[(r.queue_id, r.category_code)].append(i)
    elapsed = np.array([r.elapsed_seconds for r in rows], dtype=np.float64)
    target = np.array([r.target_seconds for r in rows], dtype=np.float64)
    breached = np.array([r.state == "breached" for r in rows])
    risk = np.zeros(len(rows))
    for (q, cat), idx_list in groups.items():
        sample = by_qc.get((q, cat)) or []
        if len(sample) < 10:
            sample = by_q.get(q) or []
        if len(sample) < 10:
            sample = everything
        idx = np.array(idx_list)
        e, t = elapsed[idx], target[idx]
        remaining = np.maximum(t - e, 0)
        if len(sample) < 10:
            # No history: risk grows with the share of the target already used.
            risk[idx] = np.clip((e / np.maximum(t, 1)) ** 2, 0, 1)
            continue
        h = np.sort(np.array(sample, dtype=np.float64))
        median = float(np.median(h))
        capacity = max(1, len(staff.get(q, ())))
        wait = np.array([ahead.get(int(rows[i].id), 0) for i in idx_list], dtype=np.float64) * median / capacity
        n = len(h)

        def survival(x: np.ndarray) -> np.ndarray:
            return (n - np.searchsorted(h, x, side="right")) / n

        s_e = np.maximum(survival(e), 1.0 / n)  # never divide by zero: a case longer than all history is still alive
        risk[idx] = np.clip(survival(e + remaining - wait) / s_e, 0.0, 1.0)
    risk[breached] = 1.0
    for r, v in zip(rows, risk.tolist()):
        out[int(r.id)] = round(float(v), 4)
    return out


# -- scan: warnings, escalations, breaches ------------------------------------------------------------


def scan(session: Session, *, now: datetime, actor: Actor | None = None) -> dict[str, int]:
    """Advance every running clock to `now` set-based (one CalendarIndex per calendar), record warnings once per
    (clock, threshold) and breaches, and perform the escalation actions of new warnings. Returns counts."""
    from opsline.cases.models import SupportCase

    actor = actor or Actor.system("sla.scan")
    rows = session.execute(
        select(SlaClock.id, SlaClock.case_id, SlaClock.account_id, SlaClock.metric, SlaClock.clock_key, SlaClock.queue_id, SlaClock.partner_code, SlaClock.elapsed_seconds,
               SlaClock.target_seconds, SlaClock.computed_at, SlaClock.due_at, SlaClock.calendar_code, SlaCase.timezone, SlaClock.policy_id, SupportCase.queue_id.label("case_queue_id"))
        .outerjoin(SlaCase, SlaCase.case_id == SlaClock.case_id).join(SupportCase, SupportCase.id == SlaClock.case_id)
        .where(SlaClock.state == "running", SlaClock.stopped_at.is_(None))
    ).all()
    counts = {"advanced": 0, "warnings": 0, "breaches": 0, "actions": 0}
    cal_data = _calendar_data(session)
    groups: dict[tuple[Any, Any], list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        groups[(r.calendar_code if r.calendar_code in cal_data else "za-support", r.timezone)].append(i)
    current = np.zeros(len(rows), dtype=np.int64)
    now_s = epoch(now)
    for (code, tz), idx_list in groups.items():
        calendar = pol.calendar_from_row(cal_data[code], timezone=tz)
        idx = np.array(idx_list)
        computed = np.array([epoch(rows[i].computed_at) for i in idx_list], dtype=np.int64)
        computed = np.minimum(computed, now_s)
        index = CalendarIndex.build(calendar, start=from_epoch(int(computed.min())) - timedelta(hours=1), end=now + timedelta(hours=1))
        base = np.array([rows[i].elapsed_seconds for i in idx_list], dtype=np.int64)
        current[idx] = base + index.between_seconds(computed, np.full(len(idx), now_s, dtype=np.int64))
    policies = {p.id: p for p in pol.load_policies(session)}
    # Only clocks that moved past their lowest threshold can need a warning: look up just those cases' rows.
    lowest = min((min(p.fields["warn_percents"] or [100]) for p in policies.values()), default=50)
    candidates = sorted({int(r.case_id) for i, r in enumerate(rows) if r.target_seconds and 100.0 * int(current[i]) / r.target_seconds >= lowest})
    existing_w: set[tuple[Any, ...]] = set()
    existing_b: set[tuple[Any, ...]] = set()
    for chunk in _chunks(candidates):
        existing_w |= set(session.execute(select(SlaWarning.case_id, SlaWarning.metric, SlaWarning.clock_key, SlaWarning.threshold).where(SlaWarning.case_id.in_(chunk))).tuples())
        existing_b |= set(session.execute(select(SlaBreach.case_id, SlaBreach.metric, SlaBreach.clock_key).where(SlaBreach.case_id.in_(chunk))).tuples())
    clock_upd, w_new, b_new = [], [], []
    for i, r in enumerate(rows):
        el, tg = int(current[i]), int(r.target_seconds)
        if el == r.elapsed_seconds:
            continue
        is_breached = tg > 0 and el >= tg
        clock_upd.append({"id": r.id, "elapsed_seconds": el, "computed_at": now, "state": "breached" if is_breached else "running", "breached_at": r.due_at if is_breached else None})
        p = policies.get(r.policy_id)
        thresholds = p.fields["warn_percents"] if p else [50, 75, 100]
        pct = 100.0 * el / tg if tg else 0.0
        for t in thresholds:
            if pct >= t and (r.case_id, r.metric, r.clock_key, int(t)) not in existing_w:
                w_new.append({"case_id": r.case_id, "account_id": r.account_id, "metric": r.metric, "clock_key": r.clock_key, "threshold": int(t), "percent": round(pct, 2), "due_at": r.due_at, "created_at": now, "actions": []})
        if is_breached and (r.case_id, r.metric, r.clock_key) not in existing_b:
            b_new.append({"case_id": r.case_id, "account_id": r.account_id, "metric": r.metric, "clock_key": r.clock_key, "queue_id": r.queue_id if r.queue_id is not None else r.case_queue_id,
                          "partner_code": r.partner_code, "breached_at": r.due_at, "due_at": r.due_at, "overrun_seconds": el - tg, "created_at": now})
    if clock_upd:
        session.execute(update(SlaClock), clock_upd)
    if w_new:
        session.execute(insert(SlaWarning), w_new)
    if b_new:
        session.execute(insert(SlaBreach), b_new)
    counts.update(advanced=len(clock_upd), warnings=len(w_new), breaches=len(b_new))
    counts["actions"] = _escalate(session, now=now, actor=actor)
    return counts


def _escalate(session: Session, *, now: datetime, actor: Actor) -> int:
    """Perform the policy's escalation actions for warnings not yet acted on (those with no recorded actions)."""
    from opsline.cases.models import SupportCase

    pending = session.execute(
        select(SlaWarning.id, SlaWarning.case_id, SlaWarning.account_id, SlaWarning.metric, SlaWarning.threshold, SlaCase.policy_id, SupportCase.queue_id, SupportCase.reference, SupportCase.state, SupportCase.priority)
        .join(SlaCase, SlaCase.case_id == SlaWarning.case_id).join(SupportCase, SupportCase.id == SlaWarning.case_id)
        .where(SlaWarning.handled_at.is_(None))
    ).all()
    if not pending:
        return 0
    policies = {p.id: p for p in pol.load_policies(session)}
    queues = _queues(session)
    code_to_id = {q["code"]: qid for qid, q in queues.items()}
    done = 0
    notes, warn_upd = [], []
    for w in pending:
        p = policies.get(w.policy_id)
        if p is None or w.state not in OPEN_CASE_STATES:
            warn_upd.append({"id": w.id, "actions": [], "handled_at": now})
            continue
        taken: list[dict[str, Any]] = []
        for step in p.fields["escalations"]:
            if int(step.get("at", -1)) != int(w.threshold):
                continue
            action = step.get("action")
            q = queues.get(w.queue_id) or {}
            if action == "notify_manager":
                notes.append({"case_id": w.case_id, "account_id": w.account_id, "user_id": q.get("manager_user_id"), "queue_id": w.queue_id,
                              "message": f"Case {w.reference}: {LABELS.get(w.metric, w.metric)} clock at {w.threshold}% of target", "created_at": now})
                taken.append({"action": "notify_manager", "user_id": q.get("manager_user_id")})
            elif action == "reassign" and step.get("queue_code") in code_to_id and code_to_id[step["queue_code"]] != w.queue_id:
                ok = _call_cases(session, "assign", case_id=w.case_id, queue_code=step["queue_code"], auto=True, now=now, actor=actor, reason=f"SLA escalation: {LABELS.get(w.metric, w.metric)} at {w.threshold}%")
                taken.append({"action": "reassign", "queue_code": step["queue_code"], "done": ok})
            elif action == "raise_priority":
                ok = w.priority > 1 and _call_cases(session, "change_priority", case_id=w.case_id, priority=w.priority - 1, now=now, actor=actor, reason=f"SLA escalation: {LABELS.get(w.metric, w.metric)} at {w.threshold}%")
                taken.append({"action": "raise_priority", "done": ok})
        warn_upd.append({"id": w.id, "actions": taken, "handled_at": now})
        if taken:
            events.record(session, now=now, actor=actor, entity_type="support_case", entity_id=w.case_id, account_id=w.account_id, action="sla.escalated",
                          reason=f"{LABELS.get(w.metric, w.metric)} at {w.threshold}%", after={"actions": taken})
            done += len(taken)
    if notes:
        session.execute(insert(SlaNotification), notes)
    if warn_upd:
        session.execute(update(SlaWarning), warn_upd)
    return done


def _call_cases(session: Session, name: str, **kwargs: Any) -> bool:
    """Call the cases service's `name` (lazy, guarded: a refused escalation is recorded as not done and must
    not fail the scan; a savepoint keeps its partial effects out)."""
    try:
        from opsline.cases import service as cases_service
    except ImportError:
        return False
    fn = getattr(cases_service, name, None)
    if fn is None:
        return False
    try:
        with session.begin_nested():
            fn(session, **kwargs)
        return True
    except Exception:  # noqa: BLE001 - any refusal (stale version, finished case) is just "not done"
        return False


def run_scan_job(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    """"sla.scan": scan, then re-enqueue itself a minute later (idempotency key per minute)."""
    counts = scan(session, now=now)
    schedule_scan(session, now=now)
    return counts


def schedule_scan(session: Session, *, now: datetime) -> None:
    nxt = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    jobs.enqueue(session, kind="sla.scan", payload={}, now=now, run_at=nxt, idempotency_key=f"sla.scan:{nxt:%Y%m%d%H%M}")


# -- breaches ------------------------------------------------------------------------------------------


def set_breach_cause(session: Session, *, breach_id: int, cause_code: str, note: str | None, now: datetime, actor: Actor) -> dict[str, Any]:
    """Record why a breach happened. Raises BreachNotFound, UnableToSetBreachCause (unknown cause)."""
    breach = session.get(SlaBreach, breach_id)
    if breach is None:
        raise BreachNotFound(f"breach {breach_id} not found")
    if session.get(BreachCause, cause_code) is None:
        raise UnableToSetBreachCause(f"unknown breach cause '{cause_code}'", field="cause_code")
    before = {"cause_code": breach.cause_code, "cause_note": breach.cause_note}
    breach.cause_code, breach.cause_note, breach.set_by, breach.set_at = cause_code, (note or None), actor.name, now
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="sla_breach", entity_id=breach.id, account_id=breach.account_id, action="cause_set",
                  reason=note, before=before, after={"cause_code": cause_code, "cause_note": breach.cause_note})
    return {"id": breach.id, "cause_code": cause_code, "cause_note": breach.cause_note}


def breach_causes(session: Session) -> list[dict[str, Any]]:
    return [{"code": c.code, "name": c.name, "controllable": c.controllable} for c in session.execute(select(BreachCause).order_by(BreachCause.name)).scalars()]


def list_breaches(session: Session, *, since: datetime | None = None, until: datetime | None = None, cause: str | None = None, uncaused: bool = False, case_id: int | None = None, limit: int = 200, offset: int = 0) -> dict[str, Any]:
    from opsline.cases.models import Queue, SupportCase

    q = (select(SlaBreach, SupportCase.reference, Queue.name.label("team"), BreachCause.name.label("cause_name"))
         .join(SupportCase, SupportCase.id == SlaBreach.case_id).outerjoin(Queue, Queue.id == SlaBreach.queue_id).outerjoin(BreachCause, BreachCause.code == SlaBreach.cause_code))
    cnt = select(func.count(SlaBreach.id))
    conds = []
    if since is not None:
        conds.append(SlaBreach.breached_at >= since)
    if until is not None:
        conds.append(SlaBreach.breached_at < until)
    if cause:
        conds.append(SlaBreach.cause_code == cause)
    if uncaused:
        conds.append(SlaBreach.cause_code.is_(None))
    if case_id is not None:
        conds.append(SlaBreach.case_id == case_id)
    if conds:
        q, cnt = q.where(*conds), cnt.where(*conds)
    total = session.execute(cnt).scalar_one()
    items = []
    for b, ref, team, cause_name in session.execute(q.order_by(SlaBreach.breached_at.desc(), SlaBreach.id.desc()).limit(limit).offset(offset)):
        items.append({"id": b.id, "case_id": b.case_id, "reference": ref, "account_id": b.account_id, "metric": b.metric, "label": LABELS.get(b.metric, b.metric),
                      "team": team, "queue_id": b.queue_id, "partner_code": b.partner_code, "breached_at": b.breached_at, "due_at": b.due_at,
                      "overrun_hours": round(b.overrun_seconds / 3600, 2), "cause_code": b.cause_code, "cause_name": cause_name, "cause_note": b.cause_note,
                      "set_by": b.set_by, "set_at": b.set_at})
    return {"items": items, "total": total}


def breach_report(session: Session, *, since: datetime, until: datetime) -> dict[str, Any]:
    """Breaches in [since, until) grouped by cause and by team: counts and total overrun business hours."""
    from opsline.cases.models import Queue

    window = and_(SlaBreach.breached_at >= since, SlaBreach.breached_at < until)
    by_cause = [
        {"cause_code": code, "cause": name or "Not yet analysed", "count": n, "overrun_hours": round((secs or 0) / 3600, 1)}
        for code, name, n, secs in session.execute(
            select(SlaBreach.cause_code, BreachCause.name, func.count(SlaBreach.id), func.sum(SlaBreach.overrun_seconds))
            .outerjoin(BreachCause, BreachCause.code == SlaBreach.cause_code).where(window).group_by(SlaBreach.cause_code, BreachCause.name)
            .order_by(func.count(SlaBreach.id).desc(), SlaBreach.cause_code))
    ]
    # A third party's breach is attributed to the partner, everything else to the team that held the case.
    merged: dict[str, dict[str, Any]] = {}
    for qid, name, partner, n, secs in session.execute(
            select(SlaBreach.queue_id, Queue.name, SlaBreach.partner_code, func.count(SlaBreach.id), func.sum(SlaBreach.overrun_seconds))
            .outerjoin(Queue, Queue.id == SlaBreach.queue_id).where(window).group_by(SlaBreach.queue_id, Queue.name, SlaBreach.partner_code)
            .order_by(SlaBreach.queue_id)):
        label = f"Partner {partner}" if partner else (name or "Unassigned")
        row = merged.setdefault(label, {"queue_id": None if partner else qid, "team": label, "partner_code": partner, "count": 0, "seconds": 0})
        row["count"] += n
        row["seconds"] += secs or 0
    by_team = sorted(({k: v for k, v in r.items() if k != "seconds"} | {"overrun_hours": round(r["seconds"] / 3600, 1)} for r in merged.values()), key=lambda r: (-r["count"], r["team"]))
    total = sum(r["count"] for r in by_cause)
    return {"since": since, "until": until, "by_cause": by_cause, "by_team": by_team, "total": total, "overrun_hours": round(sum(r["overrun_hours"] for r in by_cause), 1)}


def dashboard(session: Session, *, now: datetime, month_start: datetime) -> dict[str, Any]:
    """Open clocks by state, the clocks breaching soonest, and this month's breach report."""
    from opsline.cases.models import Queue, SupportCase

    by_state = {s: n for s, n in session.execute(
        select(SlaClock.state, func.count(SlaClock.id)).join(SupportCase, SupportCase.id == SlaClock.case_id)
        .where(SupportCase.state.in_(OPEN_CASE_STATES), SlaClock.stopped_at.is_(None)).group_by(SlaClock.state))}
    soon = []
    for c, ref, team, prio in session.execute(
        select(SlaClock, SupportCase.reference, Queue.name, SupportCase.priority).join(SupportCase, SupportCase.id == SlaClock.case_id).outerjoin(Queue, Queue.id == SupportCase.queue_id)
        .where(SupportCase.state.in_(OPEN_CASE_STATES), SlaClock.state == "running", SlaClock.metric.in_(("first_response", "resolution", "next_update")))
        .order_by(SlaClock.due_at).limit(15)
    ):
        soon.append({"case_id": c.case_id, "reference": ref, "team": team, "priority": prio, "metric": c.metric, "label": LABELS[c.metric], "due_at": c.due_at,
                     "percent": round(100 * c.elapsed_seconds / c.target_seconds, 1) if c.target_seconds else 0})
    risks = breach_risk(session, case_ids=[s["case_id"] for s in soon], now=now)
    for s in soon:
        s["risk"] = round(100 * risks.get(s["case_id"], 0.0))
    return {"by_state": {s: by_state.get(s, 0) for s in ("running", "paused", "breached")}, "soon": soon, "report": breach_report(session, since=month_start, until=now + timedelta(seconds=1))}


# -- policies and calendars ---------------------------------------------------------------------------


def list_policies(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(select(SlaPolicy).order_by(SlaPolicy.id)).scalars().all()
    ranked = {p.id: i + 1 for i, p in enumerate(pol.load_policies(session))}
    out = []
    for p in rows:
        crit = {f: getattr(p, f) for f in pol.MATCH_FIELDS if getattr(p, f) is not None}
        out.append({"id": p.id, "name": p.name, "active": p.active, "criteria": crit, "specificity": len(crit), "rank": ranked.get(p.id),
                    "first_response_minutes": p.first_response_minutes, "next_update_minutes": p.next_update_minutes, "resolution_minutes": p.resolution_minutes,
                    "team_minutes": p.team_minutes, "calendar_code": p.calendar_code, "warn_percents": p.warn_percents, "escalations": p.escalations,
                    "third_party_minutes": p.third_party_minutes})
    return out


def create_policy(session: Session, *, fields: dict[str, Any], now: datetime, actor: Actor) -> int:
    """Add a policy. Raises UnableToSavePolicy for unknown category/calendar/queue or bad targets."""
    allowed = set(pol.MATCH_FIELDS) | set(pol.TARGET_FIELDS) | {"name", "active", "calendar_code", "warn_percents", "escalations", "third_party_minutes"}
    unknown = set(fields) - allowed
    if unknown:
        raise pol.UnableToSavePolicy(f"unknown policy fields: {', '.join(sorted(unknown))}")
    if not fields.get("name"):
        raise pol.UnableToSavePolicy("a policy needs a name", field="name")
    if not fields.get("calendar_code"):
        raise pol.UnableToSavePolicy("a policy needs a business calendar", field="calendar_code")
    pol.validate_policy_fields(session, fields)
    if session.execute(select(SlaPolicy.id).where(SlaPolicy.name == fields["name"])).first():
        raise pol.UnableToSavePolicy(f"a policy named '{fields['name']}' already exists", field="name")
    p = SlaPolicy(**({"warn_percents": [50, 75, 100], "escalations": [], "third_party_minutes": {}} | fields), version=1, updated_at=now)
    session.add(p)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="sla_policy", entity_id=p.id, action="created", after={k: v for k, v in fields.items()})
    return p.id


def update_policy(session: Session, *, policy_id: int, changes: dict[str, Any], now: datetime, actor: Actor, reason: str) -> int:
    """Change a policy's criteria or targets and enqueue recalculation of every open case. Returns jobs enqueued.

    Raises NotFound, UnableToSavePolicy.
    """
    p = session.get(SlaPolicy, policy_id)
    if p is None:
        raise NotFound(f"SLA policy {policy_id} not found")
    allowed = set(pol.MATCH_FIELDS) | set(pol.TARGET_FIELDS) | {"name", "active", "calendar_code", "warn_percents", "escalations", "third_party_minutes"}
    unknown = set(changes) - allowed
    if unknown:
        raise pol.UnableToSavePolicy(f"unknown policy fields: {', '.join(sorted(unknown))}")
    pol.validate_policy_fields(session, changes)
    before = {k: getattr(p, k) for k in changes}
    for k, v in changes.items():
        setattr(p, k, v)
    p.version += 1
    p.updated_at = now
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="sla_policy", entity_id=p.id, action="updated", reason=reason, before=before, after=dict(changes))
    return enqueue_recalculation(session, now=now, reason=f"policy '{p.name}' changed: {reason}", actor=actor)


def pin_policy(session: Session, *, case_id: int, policy_id: int | None, now: datetime, actor: Actor, reason: str) -> None:
    """Pin a case to a policy (None unpins) and recompute it. Raises NotFound."""
    if policy_id is not None and session.get(SlaPolicy, policy_id) is None:
        raise NotFound(f"SLA policy {policy_id} not found")
    row = session.get(SlaCase, case_id)
    if row is None:
        row = SlaCase(case_id=case_id, pinned=False)
        session.add(row)
    row.policy_id, row.pinned = policy_id, policy_id is not None
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="support_case", entity_id=case_id, account_id=row.account_id, action="sla.policy_pinned", reason=reason, after={"policy_id": policy_id})
    recalculate(session, case_ids=[case_id], now=now, reason=reason, actor=actor)


def list_calendars(session: Session) -> list[dict[str, Any]]:
    return [{"code": r.code, "name": r.name, "timezone": r.timezone, "week": pol.week_table(r.data), "closures": len(r.data.get("closures", [])), "holiday_country": r.data.get("holiday_country")}
            for r in session.execute(select(BusinessCalendarRow).order_by(BusinessCalendarRow.code)).scalars()]


def get_calendar(session: Session, *, code: str) -> BusinessCalendar:
    """Raises NotFound."""
    row = session.get(BusinessCalendarRow, code)
    if row is None:
        raise NotFound(f"business calendar '{code}' not found")
    return pol.calendar_from_row(row.data)


def calendar_view(session: Session, *, code: str, start: datetime, days: int = 60) -> dict[str, Any]:
    """Working hours per day for the next `days` days: shifts, holidays and closures shown as closed."""
    row = session.get(BusinessCalendarRow, code)
    if row is None:
        raise NotFound(f"business calendar '{code}' not found")
    cal = pol.calendar_from_row(row.data)
    tz = cal.timezone
    local = start.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    import holidays as holidays_lib

    hol = holidays_lib.country_holidays(row.data["holiday_country"]) if row.data.get("holiday_country") else None
    closures = set(c for c in row.data.get("closures", []) if isinstance(c, str))
    out = []
    for d in range(days):
        day = (local + timedelta(days=d)).replace(tzinfo=None)
        lo = datetime.combine(day.date(), datetime.min.time(), tzinfo=tz)
        hi = lo + timedelta(days=1)
        ivs = cal.intervals(lo, hi)
        note = hol.get(day.date()) if hol is not None else None  # an unpopulated HolidayBase is falsy
        if day.date().isoformat() in closures:
            note = "Closure"
        out.append({"date": day.date(), "weekday": day.strftime("%a"), "hours": round(sum((b - a).total_seconds() for a, b in ivs) / 3600, 2),
                    "shifts": ", ".join(f"{a.astimezone(tz):%H:%M}–{b.astimezone(tz):%H:%M}" for a, b in ivs), "note": note})
    return {"code": row.code, "name": row.name, "timezone": row.timezone, "week": pol.week_table(row.data), "days": out, "closures": row.data.get("closures", []), "version": row.version}


def update_calendar(session: Session, *, code: str, data: dict[str, Any] | None = None, add_closures: list[Any] | None = None, remove_closures: list[Any] | None = None, now: datetime, actor: Actor, reason: str) -> int:
    """Replace a calendar's data and/or add/remove closures (dates 'YYYY-MM-DD' or [from, to] ISO pairs); records
    an event and enqueues sharded recalculation of every open case. Returns jobs enqueued.

    Raises NotFound, UnableToSaveCalendar (overlapping shifts, bad timezone, malformed closure).
    """
    row = session.get(BusinessCalendarRow, code)
    if row is None:
        raise NotFound(f"business calendar '{code}' not found")
    new = dict(data if data is not None else row.data)
    closures = list(new.get("closures", []))
    for c in add_closures or []:
        if c not in closures:
            closures.append(c)
    for c in remove_closures or []:
        if c in closures:
            closures.remove(c)
    new["closures"] = closures
    normalised = pol.validate_calendar_data(new)
    before = dict(row.data)
    row.data = normalised
    row.timezone = normalised["timezone"]
    row.version += 1
    row.updated_at = now
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="business_calendar", entity_id=code, action="updated", reason=reason, before={"closures": before.get("closures"), "week": before.get("week")}, after={"closures": normalised["closures"], "week": normalised["week"]})
    return enqueue_recalculation(session, now=now, reason=f"calendar '{code}' changed: {reason}", actor=actor)


def create_calendar(session: Session, *, code: str, name: str, data: dict[str, Any], now: datetime, actor: Actor) -> None:
    """Add a calendar. Raises UnableToSaveCalendar (overlapping shifts, bad timezone, code taken)."""
    if session.get(BusinessCalendarRow, code) is not None:
        raise pol.UnableToSaveCalendar(f"calendar '{code}' already exists", field="code")
    normalised = pol.validate_calendar_data(data)
    session.add(BusinessCalendarRow(code=code, name=name, timezone=normalised["timezone"], data=normalised, version=1, updated_at=now))
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="business_calendar", entity_id=code, action="created", after=normalised)


def notifications(session: Session, *, limit: int = 50) -> list[dict[str, Any]]:
    return [{"id": n.id, "case_id": n.case_id, "message": n.message, "created_at": n.created_at, "user_id": n.user_id}
            for n in session.execute(select(SlaNotification).order_by(SlaNotification.id.desc()).limit(limit)).scalars()]


def stored_clocks(session: Session, *, case_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Stored clock rows (what the last recalculation wrote), for comparisons and exports."""
    out = []
    for chunk in _chunks(list(case_ids)):
        for c in session.execute(select(SlaClock).where(SlaClock.case_id.in_(chunk)).order_by(SlaClock.case_id, SlaClock.metric, SlaClock.clock_key)).scalars():
            out.append({k: getattr(c, k) for k in ("case_id", "metric", "clock_key", "queue_id", "partner_code", "policy_id", "calendar_code", "started_at", "due_at", "stopped_at",
                                                     "breached_at", "elapsed_seconds", "target_seconds", "paused_seconds", "state", "paused")} | {"id": c.id, "computed_at": c.computed_at})
    return out
