"""Benchmark: recalculating the SLA clocks of N open cases from their event histories.

Histories are generated like the demo's (opened over the last 60 days, hand-offs between three teams,
waits on the customer, holds for an FNO, customer-visible notes, some resolved and reopened).
Ours: replay every case, then measure all clocks' segments with one CalendarIndex per calendar
(`recalculate`'s engine: `replay` + `evaluate` with `IndexOps`). Baseline: per case, the same replay
measured with scalar `BusinessCalendar.between/add` (what a naive per-case recalculation does), on the
first M cases; both must agree exactly on those.

    .venv/bin/python bench/sla_recalc.py [--cases N] [--baseline-cases M] [--seed S]
"""

from __future__ import annotations

import argparse
import time as timer
from datetime import UTC, datetime, timedelta

import numpy as np

from opsline.core.calendar import CalendarIndex

from opsline.sla.clocks import Event, IndexOps, PolicyTargets, ScalarOps, epoch, evaluate, replay
from opsline.sla.policies import CALENDARS, calendar_from_row

H = 3600


def histories(n: int, now: datetime, rng: np.random.Generator) -> list[list[Event]]:
    out = []
    opened = rng.integers(epoch(now) - 60 * 86400, epoch(now) - 3600, size=n)
    for k in range(n):
        t = int(opened[k])
        evs = [Event(datetime.fromtimestamp(t, UTC), "opened", None, "acknowledged", {"queue": "1"})]
        state, queue = "acknowledged", "1"
        for _ in range(int(rng.integers(0, 8))):
            t += int(rng.integers(600, 30 * H))
            if t >= epoch(now):
                break
            at = datetime.fromtimestamp(t, UTC)
            r = rng.random()
            if r < 0.2:
                new_q = str(int(rng.integers(1, 4)))
                if new_q != queue:
                    evs.append(Event(at, "queue", queue, new_q))
                    queue = new_q
            elif r < 0.35 and state != "resolved":
                evs.append(Event(at, "first_response"))
            elif r < 0.55 and state != "resolved":
                evs.append(Event(at, "note", data={"visibility": "customer"}))
            elif r < 0.7:
                new = {"acknowledged": "pending", "inProgress": "held", "pending": "inProgress", "held": "inProgress", "resolved": "inProgress"}[state]
                evs.append(Event(at, "state", state, new, {"partner_code": "openserve"} if new == "held" else None))
                state = new
            elif state != "resolved":
                evs.append(Event(at, "state", state, "resolved"))
                state = "resolved"
        out.append(evs)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--baseline-cases", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=20261123)
    args = parser.parse_args(argv)
    n, m = args.cases, min(args.baseline_cases, args.cases)
    now = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    rng = np.random.default_rng(args.seed)
    cases = histories(n, now, rng)
    calendar = calendar_from_row(CALENDARS[0][2])
    targets = [PolicyTargets(policy_id=p, first_response_seconds=fr * H, next_update_seconds=8 * H, resolution_seconds=res * H, team_seconds=16 * H,
                             third_party_seconds_by_partner={"openserve": 24 * H}) for p, fr, res in ((1, 1, 4), (2, 2, 16), (3, 4, 24), (4, 8, 40))]
    prio = rng.integers(0, 4, size=n)

    t0 = timer.perf_counter()
    plans, owners = [], []
    for k, evs in enumerate(cases):
        ps = replay(evs, targets[int(prio[k])], now=now, initial_queue="1")
        plans.extend(ps)
        owners.extend([k] * len(ps))
    start = min(datetime.fromtimestamp(p.started_s, UTC) for p in plans) - timedelta(days=1)
    ops = IndexOps(CalendarIndex.build(calendar, start=start, end=now + timedelta(days=120)), calendar)
    clocks = evaluate(plans, ops, now_s=epoch(now))
    ours_s = timer.perf_counter() - t0

    base_plans = [p for p, o in zip(plans, owners) if o < m]
    t0 = timer.perf_counter()
    baseline: list = []
    for k in range(m):
        ps = replay(cases[k], targets[int(prio[k])], now=now, initial_queue="1")
        baseline.extend(evaluate(ps, ScalarOps(calendar), now_s=epoch(now)))
    base_s = timer.perf_counter() - t0
    assert baseline == clocks[: len(base_plans)], "vectorised and scalar clocks differ"

    ratio = (base_s / m) / (ours_s / n)
    print(f"ours:     {n} cases, {len(clocks)} clocks in {ours_s:.2f} s = {n / ours_s:,.0f} cases/s")
    print(f"baseline: {m} cases, {len(baseline)} clocks in {base_s:.2f} s = {m / base_s:,.0f} cases/s (scalar BusinessCalendar per case)")
    print(f"sla_recalc: {n} cases {ours_s:.2f} s; baseline {m} cases {base_s:.2f} s; per-case ratio {ratio:.1f}; agree {len(base_plans)}/{len(base_plans)} clocks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
