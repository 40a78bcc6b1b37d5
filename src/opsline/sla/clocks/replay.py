"""Replaying a case's history into clock plans: the business-time segments each clock ran for, before any calendar
maths. Pure, no database.

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

from collections.abc import Sequence
from datetime import datetime

from opsline.sla.clocks.model import PAUSED_BY, STOPPED_STATES, ClockPlan, Event, PolicyTargets, epoch, is_customer_visible


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


class _Replay:
    """The walk over one case's events: current state, queue and partner, and a runner per clock."""

    def __init__(self, policy: PolicyTargets, *, opened_s: int, state: str, queue: str | None, initial_partner: str | None) -> None:
        self.policy = policy
        self.state = state
        self.queue = queue
        self.initial_partner = initial_partner
        self.plans: list[ClockPlan] = []
        self.ours: dict[str, _Runner] = {}
        for metric, target in (("first_response", policy.first_response_seconds), ("resolution", policy.resolution_seconds)):
            if target is not None:
                runner = _Runner(ClockPlan(metric=metric, key="", target_seconds=int(target), started_s=opened_s, segments=[]))
                self.plans.append(runner.plan)
                self.ours[metric] = runner
        self.teams: dict[str, _Runner] = {}
        self.windows: list[_Runner] = []
        self.partner_clock: _Runner | None = None
        self.partner_episodes: dict[str, int] = {}
        self.responded = False
        self.team_runner(queue, opened_s)
        self.active(opened_s)

    # -- clocks that appear during the walk ---------------------------------------------------------------
    def team_target(self, q: str) -> int | None:
        t = self.policy.team_seconds_by_queue.get(q)
        return int(t) if t is not None else (int(self.policy.team_seconds) if self.policy.team_seconds is not None else None)

    def team_runner(self, q: str | None, at: int) -> _Runner | None:
        if q is None:
            return None
        if q not in self.teams:
            target = self.team_target(q)
            if target is None:
                return None
            self.teams[q] = _Runner(ClockPlan(metric="team", key=f"q{q}", target_seconds=target, started_s=at, segments=[], queue=q))
            self.plans.append(self.teams[q].plan)
        return self.teams[q]

    def open_window(self, at: int) -> None:
        if self.policy.next_update_seconds is None:
            return
        if self.windows:
            self.windows[-1].stop(at)
        runner = _Runner(ClockPlan(metric="next_update", key=f"w{len(self.windows) + 1}", target_seconds=int(self.policy.next_update_seconds),
                                   started_s=at, segments=[]))
        self.windows.append(runner)
        self.plans.append(runner.plan)

    def start_partner(self, data: dict | None, at: int) -> None:
        partner = (data or {}).get("partner_code") or self.initial_partner
        if not partner:
            return
        target = self.policy.third_party_seconds_by_partner.get(partner, self.policy.third_party_seconds)
        if target is None:
            return
        self.partner_episodes[partner] = self.partner_episodes.get(partner, 0) + 1
        self.partner_clock = _Runner(ClockPlan(metric="third_party", key=f"{partner}#{self.partner_episodes[partner]}", target_seconds=int(target),
                                               started_s=at, segments=[], partner=partner))
        self.plans.append(self.partner_clock.plan)
        self.partner_clock.run(at)

    # -- the current state decides which clocks run --------------------------------------------------------
    def active(self, at: int) -> None:
        """Set every clock of ours running or halted as the current state says."""
        stopped = self.state in STOPPED_STATES
        pauses = PAUSED_BY.get(self.state, frozenset())
        for metric, runner in self.ours.items():
            if stopped or metric in pauses:
                runner.halt(at)
            else:
                runner.run(at)
        current_window = self.windows[-1] if self.windows else None
        if current_window is not None:
            if stopped or "next_update" in pauses:
                current_window.halt(at)
            else:
                current_window.run(at)
        for q, runner in self.teams.items():
            if stopped or "team" in pauses or q != self.queue:
                runner.halt(at)
            else:
                runner.run(at)

    def resume_resolution(self, at: int) -> None:
        """Reopened: resolution resumes where it stopped; a new update window opens once we have responded."""
        if "resolution" in self.ours:
            self.ours["resolution"].plan.stopped_s = None
        if self.responded:
            self.open_window(at)

    # -- one handler per event kind ----------------------------------------------------------------------------
    def on_state(self, e: Event, at: int) -> None:
        new_state = e.to_value or self.state
        if self.state == "held" and new_state != "held" and self.partner_clock is not None:
            self.partner_clock.stop(at)
            self.partner_clock = None
        if new_state == "held" and self.state != "held":
            self.start_partner(dict(e.data or {}), at)
        if new_state in STOPPED_STATES and self.state not in STOPPED_STATES:
            for metric in ("first_response", "resolution"):
                if metric in self.ours:
                    self.ours[metric].halt(at)
                    if metric == "resolution":
                        self.ours[metric].plan.stopped_s = at
                    elif not self.responded:
                        self.ours[metric].stop(at)
            if self.windows:
                self.windows[-1].stop(at)
        elif self.state in STOPPED_STATES and new_state not in STOPPED_STATES:
            self.resume_resolution(at)
        self.state = new_state
        self.active(at)

    def on_reopened(self, e: Event, at: int) -> None:
        if self.state in STOPPED_STATES:
            self.state = e.to_value if e.to_value and e.to_value not in STOPPED_STATES else "inProgress"
            self.resume_resolution(at)
            self.active(at)

    def on_queue(self, e: Event, at: int) -> None:
        if e.to_value != self.queue:
            self.queue = e.to_value
            self.team_runner(self.queue, at)
            self.active(at)

    def on_first_response(self, e: Event, at: int) -> None:
        if self.responded:
            return
        self.responded = True
        if "first_response" in self.ours:
            self.ours["first_response"].stop(at)
        if self.state not in STOPPED_STATES:
            self.open_window(at)
            self.active(at)

    def on_note(self, e: Event, at: int) -> None:
        if self.responded and self.state not in STOPPED_STATES and is_customer_visible(e.data):
            self.open_window(at)
            self.active(at)

    def finish(self, now_s: int) -> list[ClockPlan]:
        """Close every clock at `now` (paused ones stay paused) and return the plans."""
        pauses = PAUSED_BY.get(self.state, frozenset())
        for metric, runner in self.ours.items():
            runner.finish(now_s, paused=metric in pauses)
        for i, runner in enumerate(self.windows):
            runner.finish(now_s, paused="next_update" in pauses and i == len(self.windows) - 1)
        for q, runner in self.teams.items():
            runner.finish(now_s, paused=q == self.queue and "team" in pauses)
            if q != self.queue or self.state in STOPPED_STATES:
                # Handed on (or the case is done): the team's clock stands at the last moment it ran.
                plan = runner.plan
                plan.stopped_s = plan.segments[-1][1] if plan.segments else plan.started_s
                plan.paused = False
        if self.partner_clock is not None:
            self.partner_clock.finish(now_s, paused=False)
        # A team clock that never ran (e.g. the case went straight on hold) still shows, attributed nothing.
        return self.plans


def _initial(timed: Sequence[tuple[int, Event]], *, initial_state: str, initial_queue: str | None) -> tuple[int, str, str | None]:
    """When the case opened, and its state and queue before the first recorded change."""
    opened_s = next((at for at, e in timed if e.kind == "opened"), timed[0][0])
    ordered = [e for _, e in timed]
    first_queue_event = next((e for e in ordered if e.kind == "queue"), None)
    queue = first_queue_event.from_value if first_queue_event is not None and first_queue_event.from_value else initial_queue
    first_state_event = next((e for e in ordered if e.kind == "state"), None)
    state = first_state_event.from_value if first_state_event is not None and first_state_event.from_value else initial_state
    return opened_s, state, queue


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
    # each event's epoch second once (the walk is per event; the conversion was most of its cost); a stable sort
    timed = sorted(((at, e) for at, e in ((epoch(e.at), e) for e in events) if at <= now_s), key=_first)
    if not timed:
        return []
    opened_s, state, queue = _initial(timed, initial_state=initial_state, initial_queue=initial_queue)
    walk = _Replay(policy, opened_s=opened_s, state=state, queue=queue, initial_partner=initial_partner)
    handlers = {"state": walk.on_state, "reopened": walk.on_reopened, "queue": walk.on_queue, "first_response": walk.on_first_response,
                "note": walk.on_note}
    for at, e in timed:
        handler = handlers.get(e.kind)
        if handler is not None:
            handler(e, at if at > opened_s else opened_s)
    return walk.finish(now_s)


def _first(pair: tuple[int, Event]) -> int:
    return pair[0]
