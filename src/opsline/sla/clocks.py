"""SLA clocks replayed from a case's event history: pure functions, no database, scalar or vectorised maths.

The replay walks the events once and produces, per clock, the business-time *segments* during which that
clock ran (plain epoch seconds). Evaluation then measures the segments on a business calendar — one
`between` per segment and one `add` per clock — either with `BusinessCalendar` (scalar) or a prebuilt
`CalendarIndex` (numpy, all clocks of thousands of cases in two `searchsorted` calls). Both give the same
whole-second answers, so recomputing from history is exact and replayable.

Pause rules (per metric):
- `pending` (waiting for the customer) pauses resolution, next_update and the team clocks, not first_response;
- `held` (waiting for a third party) pauses every clock of ours and starts a third_party clock for the partner;
- resolved/closed/cancelled/rejected stop our clocks; reopening resumes resolution (time already spent counts)
  and the current team's clock;
- a customer-visible note (and the first response) closes the current next_update window and opens a new one;
- each queue hand-off starts (or resumes) the receiving team's clock, so business time is attributed to the
  team that held the case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np

from opsline.core.calendar import BusinessCalendar, CalendarIndex, OutsideCalendarRange

METRICS = ("first_response", "next_update", "resolution", "team", "third_party")
LABELS = {
    "first_response": "First response",
    "next_update": "Next update",
    "resolution": "Resolution",
    "team": "Team (OLA)",
    "third_party": "Third party",
}
STOPPED_STATES = frozenset({"resolved", "closed", "cancelled", "rejected"})
PAUSED_BY = {
    # state -> metrics it pauses
    "pending": frozenset({"resolution", "next_update", "team"}),
    "held": frozenset({"first_response", "resolution", "next_update", "team"}),
}
DEFAULT_WARN_PERCENTS = (50, 75, 100)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Event:
    """One `case_event` row, as the replay needs it (values are strings as stored)."""

    at: datetime
    kind: str
    from_value: str | None = None
    to_value: str | None = None
    data: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class PolicyTargets:
    """Targets (business seconds) the clocks are measured against; a None target means no clock."""

    policy_id: int | None = None
    first_response_seconds: int | None = None
    next_update_seconds: int | None = None
    resolution_seconds: int | None = None
    team_seconds: int | None = None  # default OLA for every queue
    team_seconds_by_queue: Mapping[str, int] = field(default_factory=dict)
    third_party_seconds_by_partner: Mapping[str, int] = field(default_factory=dict)
    third_party_seconds: int | None = None  # default for partners without their own target
    warn_percents: tuple[int, ...] = DEFAULT_WARN_PERCENTS


@dataclass
class ClockPlan:
    """What the replay found for one clock: when it ran (segments), before any calendar maths."""

    metric: str
    key: str  # distinguishes clocks of one metric on one case: queue id, partner#episode, window number
    target_seconds: int
    started_s: int
    segments: list[tuple[int, int]]  # [start, end) epoch seconds while running; last may end at now
    stopped_s: int | None = None
    paused: bool = False
    queue: str | None = None
    partner: str | None = None


@dataclass(frozen=True)
class Clock:
    metric: str
    key: str
    label: str
    team: str | None
    queue: str | None
    partner: str | None
    started_at: datetime
    due_at: datetime
    stopped_at: datetime | None
    breached_at: datetime | None
    elapsed_seconds: int
    target_seconds: int
    paused_seconds: int
    percent: float
    state: str  # running | paused | met | breached
    paused: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric, "key": self.key, "label": self.label, "team": self.team, "queue": self.queue,
            "partner": self.partner, "started_at": self.started_at, "due_at": self.due_at, "stopped_at": self.stopped_at,
            "breached_at": self.breached_at, "elapsed_seconds": self.elapsed_seconds, "target_seconds": self.target_seconds,
            "percent": self.percent, "state": self.state, "paused_seconds": self.paused_seconds, "paused": self.paused,
        }


def epoch(value: datetime) -> int:
    """Whole epoch seconds (floored), the unit every clock works in."""
    return int((value - _EPOCH) // timedelta(seconds=1))


def from_epoch(seconds: int) -> datetime:
    return _EPOCH + timedelta(seconds=int(seconds))


def is_customer_visible(data: Mapping[str, Any] | None) -> bool:
    """Notes are customer-visible updates unless their data says otherwise (`internal`, `visibility`, `customer_visible`,
    or `direction` "in", i.e. from the customer)."""
    if not data:
        return True
    if data.get("internal") is True or data.get("direction") == "in":
        return False
    if "customer_visible" in data:
        return bool(data["customer_visible"])
    if "visible_to_customer" in data:
        return bool(data["visible_to_customer"])
    visibility = data.get("visibility")
    return visibility is None or str(visibility).lower() in ("customer", "public", "external")


class _Runner:
    """One clock being replayed: start/stop/pause bookkeeping in epoch seconds."""

    def __init__(self, plan: ClockPlan) -> None:
        self.plan = plan
        self.open_from: int | None = None

    def run(self, at: int) -> None:
        if self.open_from is None and self.plan.stopped_s is None:
            self.open_from = at

    def halt(self, at: int) -> None:
        if self.open_from is not None:
            if at > self.open_from:
                self.plan.segments.append((self.open_from, at))
            self.open_from = None

    def stop(self, at: int) -> None:
        self.halt(at)
        if self.plan.stopped_s is None:
            self.plan.stopped_s = at

    def finish(self, now: int, *, paused: bool) -> None:
        if self.open_from is not None and self.plan.stopped_s is None:
            if now > self.open_from:
                self.plan.segments.append((self.open_from, now))
            self.open_from = None
        self.plan.paused = paused and self.plan.stopped_s is None


def replay(
    events: Sequence[Event],
    policy: PolicyTargets,
    *,
    now: datetime,
    initial_state: str = "acknowledged",
    initial_queue: str | None = None,
    initial_partner: str | None = None,
) -> list[ClockPlan]:
    """Walk the events in time order and return every clock's running segments up to `now`.

    Events after `now` are ignored. Queue values are opaque keys (the service passes queue ids); the
    `held` partner comes from the event's `data.partner_code`, else `initial_partner`.
    """
    now_s = epoch(now)
    ordered = sorted((e for e in events if epoch(e.at) <= now_s), key=lambda e: epoch(e.at))
    if not ordered:
        return []
    opened_s = epoch(ordered[0].at)
    for e in ordered:
        if e.kind == "opened":
            opened_s = epoch(e.at)
            break

    state = initial_state
    queue = initial_queue
    first_queue_event = next((e for e in ordered if e.kind == "queue"), None)
    if first_queue_event is not None and first_queue_event.from_value:
        queue = first_queue_event.from_value
    first_state_event = next((e for e in ordered if e.kind == "state"), None)
    if first_state_event is not None and first_state_event.from_value:
        state = first_state_event.from_value

    plans: list[ClockPlan] = []
    ours: dict[str, _Runner] = {}
    for metric, target in (("first_response", policy.first_response_seconds), ("resolution", policy.resolution_seconds)):
        if target is not None:
            runner = _Runner(ClockPlan(metric=metric, key="", target_seconds=int(target), started_s=opened_s, segments=[]))
            plans.append(runner.plan)
            ours[metric] = runner
    teams: dict[str, _Runner] = {}
    windows: list[_Runner] = []
    partner_clock: _Runner | None = None
    partner_episodes: dict[str, int] = {}
    responded = False

    def team_target(q: str) -> int | None:
        t = policy.team_seconds_by_queue.get(q)
        return int(t) if t is not None else (int(policy.team_seconds) if policy.team_seconds is not None else None)

    def team_runner(q: str | None, at: int) -> _Runner | None:
        if q is None:
            return None
        if q not in teams:
            target = team_target(q)
            if target is None:
                return None
            teams[q] = _Runner(ClockPlan(metric="team", key=f"q{q}", target_seconds=target, started_s=at, segments=[], queue=q))
            plans.append(teams[q].plan)
        return teams[q]

    def open_window(at: int) -> None:
        if policy.next_update_seconds is None:
            return
        if windows:
            windows[-1].stop(at)
        runner = _Runner(ClockPlan(metric="next_update", key=f"w{len(windows) + 1}", target_seconds=int(policy.next_update_seconds), started_s=at, segments=[]))
        windows.append(runner)
        plans.append(runner.plan)

    def active(at: int) -> None:
        """Set every clock of ours running or halted as the current state says."""
        stopped = state in STOPPED_STATES
        pauses = PAUSED_BY.get(state, frozenset())
        for metric, runner in ours.items():
            if stopped or metric in pauses:
                runner.halt(at)
            else:
                runner.run(at)
        current_window = windows[-1] if windows else None
        if current_window is not None:
            if stopped or "next_update" in pauses:
                current_window.halt(at)
            else:
                current_window.run(at)
        for q, runner in teams.items():
            if stopped or "team" in pauses or q != queue:
                runner.halt(at)
            else:
                runner.run(at)

    team_runner(queue, opened_s)
    active(opened_s)

    for e in ordered:
        at = epoch(e.at)
        if at < opened_s:
            at = opened_s
        if e.kind == "state":
            new_state = e.to_value or state
            if state == "held" and new_state != "held" and partner_clock is not None:
                partner_clock.stop(at)
                partner_clock = None
            if new_state == "held" and state != "held":
                data = e.data or {}
                partner = data.get("partner_code") or initial_partner
                if partner:
                    target = policy.third_party_seconds_by_partner.get(partner, policy.third_party_seconds)
                    if target is not None:
                        partner_episodes[partner] = partner_episodes.get(partner, 0) + 1
                        partner_clock = _Runner(ClockPlan(metric="third_party", key=f"{partner}#{partner_episodes[partner]}", target_seconds=int(target), started_s=at, segments=[], partner=partner))
                        plans.append(partner_clock.plan)
                        partner_clock.run(at)
            if new_state in STOPPED_STATES and state not in STOPPED_STATES:
                for metric in ("first_response", "resolution"):
                    if metric in ours:
                        ours[metric].halt(at)
                        if metric == "resolution":
                            ours[metric].plan.stopped_s = at
                        elif not responded:
                            ours[metric].stop(at)
                if windows:
                    windows[-1].stop(at)
            elif state in STOPPED_STATES and new_state not in STOPPED_STATES:
                # Reopened: resolution resumes where it stopped.
                if "resolution" in ours:
                    ours["resolution"].plan.stopped_s = None
                if responded:
                    open_window(at)
            state = new_state
            active(at)
        elif e.kind == "reopened":
            if state in STOPPED_STATES:
                if "resolution" in ours:
                    ours["resolution"].plan.stopped_s = None
                state = e.to_value if e.to_value and e.to_value not in STOPPED_STATES else "inProgress"
                if responded:
                    open_window(at)
                active(at)
        elif e.kind == "queue":
            new_queue = e.to_value
            if new_queue != queue:
                queue = new_queue
                team_runner(queue, at)
                active(at)
        elif e.kind == "first_response":
            if not responded:
                responded = True
                if "first_response" in ours:
                    ours["first_response"].stop(at)
                if state not in STOPPED_STATES:
                    open_window(at)
                    active(at)
        elif e.kind == "note":
            if responded and state not in STOPPED_STATES and is_customer_visible(e.data):
                open_window(at)
                active(at)

    pauses = PAUSED_BY.get(state, frozenset())
    for metric, runner in ours.items():
        runner.finish(now_s, paused=metric in pauses)
    for i, runner in enumerate(windows):
        runner.finish(now_s, paused="next_update" in pauses and i == len(windows) - 1)
    for q, runner in teams.items():
        runner.finish(now_s, paused=q == queue and "team" in pauses)
        if q != queue or state in STOPPED_STATES:
            # Handed on (or the case is done): the team's clock stands at the last moment it ran.
            plan = runner.plan
            plan.stopped_s = plan.segments[-1][1] if plan.segments else plan.started_s
            plan.paused = False
    if partner_clock is not None:
        partner_clock.finish(now_s, paused=False)
    # A team clock that never ran (e.g. the case went straight on hold) still shows, attributed nothing.
    return plans


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
    for i, p in enumerate(plans):
        el, tg = int(elapsed[i]), int(target[i])
        breached = bool(crossed[i]) and (tg > 0 or el > 0)
        if p.stopped_s is not None:
            state = "breached" if el > tg else "met"
            breached = el > tg
        elif breached:
            state = "breached"
        else:
            state = "paused" if p.paused else "running"
        out.append(
            Clock(
                metric=p.metric, key=p.key, label=LABELS[p.metric] if p.metric != "team" else f"Team · {queue_names.get(p.queue or '', p.queue)}",
                team=queue_names.get(p.queue or "", p.queue) if p.queue is not None else None, queue=p.queue, partner=p.partner,
                started_at=from_epoch(p.started_s), due_at=from_epoch(int(due[i])),
                stopped_at=from_epoch(p.stopped_s) if p.stopped_s is not None else None,
                breached_at=from_epoch(int(due[i])) if breached else None,
                elapsed_seconds=el, target_seconds=tg, paused_seconds=int(paused_secs[i]),
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
