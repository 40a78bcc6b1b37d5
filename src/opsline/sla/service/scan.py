"""The periodic scan: advance running clocks set-based, record warnings and breaches, run escalations, refresh the
case summaries as clocks age."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from opsline.cases import service as cases_service
from opsline.cases.models import SupportCase
from opsline.core import events, jobs
from opsline.core.calendar import CalendarIndex
from opsline.core.errors import OpslineError
from opsline.core.events import Actor
from opsline.sla import policies as pol
from opsline.sla.clocks import LABELS, epoch, from_epoch
from opsline.sla.models import SlaBreach, SlaCase, SlaClock, SlaNotification, SlaWarning
from opsline.sla.service import loading
from opsline.sla.service.common import DEFAULT_CALENDAR, OPEN_CASE_STATES, chunks
from opsline.sla.service.reading import case_summaries

SUMMARY_MAX_AGE = timedelta(minutes=15)
SUMMARY_BATCH = 5000


def scan(session: Session, *, now: datetime, actor: Actor | None = None) -> dict[str, int]:
    """Advance every running clock to `now` set-based (one CalendarIndex per calendar), record warnings once per
    (clock, threshold) and breaches, and perform the escalation actions of new warnings. Returns counts."""
    actor = actor or Actor.system("sla.scan")
    rows = session.execute(
        select(SlaClock.id, SlaClock.case_id, SlaClock.account_id, SlaClock.metric, SlaClock.clock_key, SlaClock.queue_id, SlaClock.partner_code, SlaClock.elapsed_seconds,
               SlaClock.target_seconds, SlaClock.computed_at, SlaClock.due_at, SlaClock.calendar_code, SlaCase.timezone, SlaClock.policy_id, SupportCase.queue_id.label("case_queue_id"))
        .outerjoin(SlaCase, SlaCase.case_id == SlaClock.case_id).join(SupportCase, SupportCase.id == SlaClock.case_id)
        .where(SlaClock.state == "running", SlaClock.stopped_at.is_(None))
    ).all()
    counts = {"advanced": 0, "warnings": 0, "breaches": 0, "actions": 0}
    cal_data = loading.calendar_data(session)
    groups: dict[tuple[Any, Any], list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        groups[(r.calendar_code if r.calendar_code in cal_data else DEFAULT_CALENDAR, r.timezone)].append(i)
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
    for chunk in chunks(candidates):
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
        session.execute(insert(SlaWarning.__table__), w_new)
    if b_new:
        session.execute(insert(SlaBreach.__table__), b_new)
    counts.update(advanced=len(clock_upd), warnings=len(w_new), breaches=len(b_new))
    counts["actions"] = _escalate(session, now=now, actor=actor)
    counts["summaries"] = refresh_summaries(session, now=now, must={int(r["case_id"]) for r in w_new + b_new})
    return counts


def refresh_summaries(session: Session, *, now: datetime, must: set[int], limit: int = SUMMARY_BATCH) -> int:
    """Give cases a fresh summary for cases whose clocks just crossed a threshold, plus the open cases whose summary
    is oldest (at most `limit` a scan), so the breach probabilities shown age with the clocks. Returns rows written."""
    stale = list(session.execute(select(SupportCase.id).where(SupportCase.state.in_(OPEN_CASE_STATES), SupportCase.sla_as_of.is_not(None),
                                                              SupportCase.sla_as_of < now - SUMMARY_MAX_AGE)
                                 .order_by(SupportCase.sla_as_of).limit(limit)).scalars())
    ids = sorted(must | set(stale))
    return cases_service.record_sla(session, rows=case_summaries(session, case_ids=ids, now=now), now=now)


def _escalate(session: Session, *, now: datetime, actor: Actor) -> int:
    """Perform the policy's escalation actions for warnings not yet acted on (those with no recorded actions).
    A reassign or priority raise goes through the cases service; one it refuses is recorded as not done, with why."""
    pending = session.execute(
        select(SlaWarning.id, SlaWarning.case_id, SlaWarning.account_id, SlaWarning.metric, SlaWarning.threshold, SlaCase.policy_id, SupportCase.queue_id,
               SupportCase.reference, SupportCase.state, SupportCase.priority)
        .join(SlaCase, SlaCase.case_id == SlaWarning.case_id).join(SupportCase, SupportCase.id == SlaWarning.case_id)
        .where(SlaWarning.handled_at.is_(None))
    ).all()
    if not pending:
        return 0
    policies = {p.id: p for p in pol.load_policies(session)}
    queues = loading.load_queues(session)
    code_to_id = {q["code"]: qid for qid, q in queues.items()}
    done = 0
    notes, warn_upd = [], []
    for w in pending:
        p = policies.get(w.policy_id)
        if p is None or w.state not in OPEN_CASE_STATES:
            warn_upd.append({"id": w.id, "actions": [], "handled_at": now})
            continue
        taken: list[dict[str, Any]] = []
        why = f"SLA escalation: {LABELS.get(w.metric, w.metric)} at {w.threshold}%"
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
                taken.append({"action": "reassign", "queue_code": step["queue_code"]} | _attempt(
                    session, lambda: cases_service.assign(session, case_id=w.case_id, queue_code=step["queue_code"], auto=True, now=now, actor=actor, reason=why)))
            elif action == "raise_priority":
                if w.priority <= 1:
                    taken.append({"action": "raise_priority", "done": False, "why": "already the highest priority"})
                else:
                    taken.append({"action": "raise_priority"} | _attempt(
                        session, lambda: cases_service.change_priority(session, case_id=w.case_id, priority=w.priority - 1, now=now, actor=actor, reason=why)))
        warn_upd.append({"id": w.id, "actions": taken, "handled_at": now})
        if taken:
            events.record(session, now=now, actor=actor, entity_type="support_case", entity_id=w.case_id, account_id=w.account_id, action="sla.escalated",
                          reason=f"{LABELS.get(w.metric, w.metric)} at {w.threshold}%", after={"actions": taken})
            done += len(taken)
    if notes:
        session.execute(insert(SlaNotification.__table__), notes)
    if warn_upd:
        session.execute(update(SlaWarning), warn_upd)
    return done


def _attempt(session: Session, call: Callable[[], Any]) -> dict[str, Any]:
    """Run one escalation through the cases service in a savepoint. A refusal the cases service raises on purpose
    (finished case, someone else changed it) is recorded as not done with its reason; anything else propagates."""
    try:
        with session.begin_nested():
            call()
    except OpslineError as exc:
        return {"done": False, "why": exc.detail}
    return {"done": True}


def run_scan_job(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    """"sla.scan": scan, then re-enqueue itself a minute later (idempotency key per minute)."""
    counts = scan(session, now=now)
    schedule_scan(session, now=now)
    return counts


def schedule_scan(session: Session, *, now: datetime) -> None:
    nxt = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    jobs.enqueue(session, kind="sla.scan", payload={}, now=now, run_at=nxt, idempotency_key=f"sla.scan:{nxt:%Y%m%d%H%M}")

