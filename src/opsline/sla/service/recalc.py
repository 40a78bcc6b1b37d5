"""Recalculation: one case on every change (the `case.changed` subscriber), many cases in batches and sharded jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsline.cases.models import SupportCase
from opsline.core import jobs
from opsline.core.domain_events import DomainEvent
from opsline.core.events import Actor
from opsline.sla.service import engine, writing
from opsline.sla.service.common import OPEN_CASE_STATES, RECALC_SHARD, chunks

SYSTEM = Actor.system("sla")


def recompute_case(session: Session, *, case_id: int, now: datetime) -> None:
    """Re-select the case's policy (unless pinned) and recompute only its clocks from its `case_event` history, with
    the memoised calendar index. Idempotent; a case without history gets no clocks."""
    session.flush()
    cases, plans, clocks = engine.compute(session, [case_id], now=now)
    if cases:
        writing.write(session, cases=cases, plans=plans, clocks=clocks, now=now, actor=SYSTEM, reason=None)


def on_case_changed(session: Session, event: DomainEvent, now: datetime) -> None:
    """Subscriber to `case.changed` (same transaction): recompute that one case's clocks, once per service call,
    unless the change cannot move a clock (`clocks` False: an internal note; the replay ignores those). The case's
    standing then moves on with time through the scheduled recalculation, as it does between changes."""
    if event.payload.get("clocks") is False:
        return
    recompute_case(session, case_id=int(event.payload["id"]), now=event.occurred_at)


def recalculate(session: Session, *, case_ids: list[int] | None, now: datetime, reason: str, actor: Actor, include_closed: bool = False,
                vectorised: bool = True) -> dict[str, int]:
    """Recompute clocks, breaches, warnings and policy of `case_ids` (None = every open case) from history.

    Deadlines equal what they would be had the current priority, policy and calendars always applied.
    Uses one `CalendarIndex` per calendar for all cases' maths. Returns counts."""
    if case_ids is None:
        q = select(SupportCase.id)
        if not include_closed:
            q = q.where(SupportCase.state.in_(OPEN_CASE_STATES))
        case_ids = list(session.execute(q.order_by(SupportCase.id)).scalars())
    total = {"cases": 0, "clocks": 0, "breaches": 0, "warnings": 0, "policy_changes": 0}
    for batch in chunks(case_ids, 20_000):
        cases, plans, clocks = engine.compute(session, batch, now=now, vectorised=vectorised)
        counts = writing.write(session, cases=cases, plans=plans, clocks=clocks, now=now, actor=actor, reason=reason)
        total["cases"] += len(cases)
        for k, v in counts.items():
            total[k] += v
    return total


def enqueue_recalculation(session: Session, *, now: datetime, reason: str, actor: Actor) -> int:
    """Enqueue "sla.recalculate" jobs sharded by case id ranges over every open case. Returns the job count."""
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
    ids = list(session.execute(select(SupportCase.id).where(SupportCase.id >= payload["from_id"], SupportCase.id < payload["to_id"],
                                                          SupportCase.state.in_(OPEN_CASE_STATES))).scalars())
    return recalculate(session, case_ids=ids, now=now, reason=payload.get("reason", "recalculate"), actor=Actor.system(payload.get("actor", "sla")))
