"""Measuring replayed clocks on a business calendar: scalar (`BusinessCalendar`) or bulk (`CalendarIndex`) maths,
one batched `between` and one batched `add` for all clocks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np

from opsline.core.calendar import BusinessCalendar, CalendarIndex, OutsideCalendarRange
from opsline.sla.clocks.model import LABELS, Clock, ClockPlan, Event, PolicyTargets, epoch, from_epoch
from opsline.sla.clocks.replay import replay


class CalendarOps(Protocol):
    def between(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray: ...
    def add(self, starts: np.ndarray, durations: np.ndarray) -> np.ndarray: ...


class ScalarOps:
    """Calendar maths one instant at a time with `BusinessCalendar` (exact reference; fine for one case)."""

    def __init__(self, calendar: BusinessCalendar) -> None:
        self.calendar = calendar

    def between(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        return np.array([self.calendar.between(from_epoch(a), from_epoch(b)) // timedelta(seconds=1) for a, b in zip(starts.tolist(), ends.tolist())], dtype=np.int64)

    def add(self, starts: np.ndarray, durations: np.ndarray) -> np.ndarray:
        return np.array([epoch(self.calendar.add(from_epoch(a), timedelta(seconds=int(d)))) for a, d in zip(starts.tolist(), durations.tolist())], dtype=np.int64)


class IndexOps:
    """Calendar maths in bulk with a prebuilt `CalendarIndex`; falls back to the scalar calendar for the few
    instants outside the index range, so answers never depend on how wide the index was built."""

    def __init__(self, index: CalendarIndex, calendar: BusinessCalendar) -> None:
        self.index = index
        self.scalar = ScalarOps(calendar)
        self._lo, self._hi = epoch(index.start), epoch(index.end)

    def between(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        inside = (starts >= self._lo) & (ends <= self._hi) & (starts <= self._hi) & (ends >= self._lo)
        out = np.zeros(len(starts), dtype=np.int64)
        if inside.any():
            out[inside] = self.index.between_seconds(starts[inside], ends[inside])
        if (~inside).any():
            out[~inside] = self.scalar.between(starts[~inside], ends[~inside])
        return out

    def add(self, starts: np.ndarray, durations: np.ndarray) -> np.ndarray:
        out = np.zeros(len(starts), dtype=np.int64)
        inside = (starts >= self._lo) & (starts <= self._hi)
        if inside.any():
            try:
                out[inside] = self.index.add_seconds(starts[inside], durations[inside])
            except OutsideCalendarRange:
                idx = np.flatnonzero(inside)
                cum_room = self.index.business_seconds_at(np.full(1, self._hi, dtype=np.int64))[0] - self.index.business_seconds_at(starts[idx])
                fits = durations[idx] < cum_room
                out[idx[fits]] = self.index.add_seconds(starts[idx[fits]], durations[idx[fits]])
                inside[idx[~fits]] = False
        if (~inside).any():
            out[~inside] = self.scalar.add(starts[~inside], durations[~inside])
        return out


def evaluate(plans: Sequence[ClockPlan], ops: CalendarOps, *, now_s: int, queue_names: Mapping[str, str] | None = None) -> list[Clock]:
    """Measure every plan's segments on the calendar (one batched `between`, one batched `add`)."""
    if not plans:
        return []
    queue_names = queue_names or {}
    n = len(plans)
    seg_plan = np.fromiter((i for i, p in enumerate(plans) for _ in p.segments), dtype=np.int64)
    seg_start = np.fromiter((s for p in plans for s, _ in p.segments), dtype=np.int64, count=len(seg_plan))
    seg_end = np.fromiter((e for p in plans for _, e in p.segments), dtype=np.int64, count=len(seg_plan))
    seg_secs = ops.between(seg_start, seg_end) if len(seg_plan) else np.zeros(0, dtype=np.int64)
    elapsed = np.bincount(seg_plan, weights=seg_secs, minlength=n).astype(np.int64) if len(seg_plan) else np.zeros(n, dtype=np.int64)
    target = np.array([p.target_seconds for p in plans], dtype=np.int64)
    started = np.array([p.started_s for p in plans], dtype=np.int64)
    ends = np.array([p.stopped_s if p.stopped_s is not None else now_s for p in plans], dtype=np.int64)
    wall = ops.between(started, ends)
    paused_secs = np.maximum(wall - elapsed, 0)

    # Where each clock reaches its target: the segment whose running total first covers it.
    cum_after = np.zeros(len(seg_plan), dtype=np.int64)
    if len(seg_plan):
        total = np.cumsum(seg_secs)
        plan_first = np.searchsorted(seg_plan, np.arange(n), side="left")
        base = np.where(plan_first > 0, total[np.maximum(plan_first - 1, 0)], 0)
        cum_after = total - base[seg_plan]
    crossed = elapsed >= target
    has_segments = np.bincount(seg_plan, minlength=n) > 0 if len(seg_plan) else np.zeros(n, dtype=bool)
    stopped = np.array([p.stopped_s is not None for p in plans], dtype=bool)
    # Default: running or paused clocks fall due when the rest of the target runs on from now.
    due_from = np.full(n, now_s, dtype=np.int64)
    due_need = np.maximum(target - elapsed, 0)
    if len(seg_plan):
        last_seg = np.searchsorted(seg_plan, np.arange(n), side="right") - 1
        # Stopped and within target: the deadline as it stood while the clock last ran.
        st = stopped & ~crossed & has_segments
        due_from[st] = seg_start[last_seg[st]]
        due_need[st] = np.maximum(target[st] - (elapsed[st] - seg_secs[last_seg[st]]), 0)
        # Crossed: the instant inside the first segment whose running total covers the target.
        flagged = np.flatnonzero(cum_after >= target[seg_plan])
        if len(flagged):
            owners, first = np.unique(seg_plan[flagged], return_index=True)
            k = flagged[first]
            cr = np.zeros(n, dtype=bool)
            cr[owners] = True
            kk = np.zeros(n, dtype=np.int64)
            kk[owners] = k
            cr &= crossed
            due_from[cr] = seg_start[kk[cr]]
            due_need[cr] = np.maximum(target[cr] - (cum_after[kk[cr]] - seg_secs[kk[cr]]), 0)
    st0 = stopped & ~has_segments
    due_from[st0] = started[st0]
    due = ops.add(due_from, due_need)

    out: list[Clock] = []
    # plain Python ints once (indexing numpy arrays element by element costs more than the maths above)
    elapsed_l, target_l, crossed_l, due_l, paused_l = elapsed.tolist(), target.tolist(), crossed.tolist(), due.tolist(), paused_secs.tolist()
    for i, p in enumerate(plans):
        el, tg = elapsed_l[i], target_l[i]
        breached = crossed_l[i] and (tg > 0 or el > 0)
        if p.stopped_s is not None:
            state = "breached" if el > tg else "met"
            breached = el > tg
        elif breached:
            state = "breached"
        else:
            state = "paused" if p.paused else "running"
        due_at = from_epoch(due_l[i])
        out.append(
            Clock(
                metric=p.metric, key=p.key, label=LABELS[p.metric] if p.metric != "team" else f"Team · {queue_names.get(p.queue or '', p.queue)}",
                team=queue_names.get(p.queue or "", p.queue) if p.queue is not None else None, queue=p.queue, partner=p.partner,
                started_at=from_epoch(p.started_s), due_at=due_at,
                stopped_at=from_epoch(p.stopped_s) if p.stopped_s is not None else None,
                breached_at=due_at if breached else None,
                elapsed_seconds=el, target_seconds=tg, paused_seconds=paused_l[i],
                percent=round(100.0 * el / tg, 2) if tg else (100.0 if el else 0.0),
                state=state, paused=p.paused,
            )
        )
    return out


def compute_clocks(
    events: Sequence[Event],
    policy: PolicyTargets,
    calendar: BusinessCalendar | CalendarIndex,
    now: datetime,
    *,
    fallback_calendar: BusinessCalendar | None = None,
    initial_state: str = "acknowledged",
    initial_queue: str | None = None,
    initial_partner: str | None = None,
    queue_names: Mapping[str, str] | None = None,
) -> list[Clock]:
    """Replay a case's history against a policy on a business calendar; every clock as of `now`.

    `calendar` is a `BusinessCalendar` (scalar maths) or a `CalendarIndex` (vectorised; then pass the
    calendar it was built from as `fallback_calendar` for instants outside its range).
    Raises InvalidCalendar for naive datetimes.
    """
    plans = replay(events, policy, now=now, initial_state=initial_state, initial_queue=initial_queue, initial_partner=initial_partner)
    if isinstance(calendar, CalendarIndex):
        if fallback_calendar is None:
            raise ValueError("a CalendarIndex needs its fallback_calendar")
        ops: CalendarOps = IndexOps(calendar, fallback_calendar)
    else:
        ops = ScalarOps(calendar)
    return evaluate(plans, ops, now_s=epoch(now), queue_names=queue_names)
