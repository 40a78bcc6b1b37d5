"""Benchmark: SLA resolution deadlines for N open cases, vectorised CalendarIndex vs businesstimedelta.

Calendar: Africa/Johannesburg, Mon-Fri 08:00-12:00 + 13:00-17:00, Saturday 08:00-12:00, South
African public holidays (observed days included). Cases are created at random seconds over the
90 days before a fixed `now`; each gets a target of 4, 8, 24, 40 or 72 business hours.

Ours: build the index and compute all N deadlines (int64 epoch seconds, no datetimes).
Baseline: the first M (10,000) cases with businesstimedelta (Saturday as a second WorkDayRule);
both must agree exactly on those. The ratio is taken at equal N: ours is timed again on the same M cases
(index build included), because a per-case ratio against a larger N flatters the index (its build cost is
spread over more cases). Throughput at N is printed beside it. Leaves out: the database (see sla_recalc.py,
which times the whole recalculation with reads and writes).

    .venv/bin/python bench/sla.py [--cases N] [--baseline-cases M] [--seed S]
"""

from __future__ import annotations

import argparse
import sys
import time as timer
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import businesstimedelta
import holidays
import numpy as np
import pytz

from opsline.core.calendar import BusinessCalendar, CalendarIndex, Shift

TIMEZONE = "Africa/Johannesburg"
TARGET_HOURS = np.array([4, 8, 24, 40, 72], dtype=np.int64)


def bench_calendar() -> BusinessCalendar:
    weekday = (Shift(time(8), time(12)), Shift(time(13), time(17)))
    week = {day: weekday for day in range(5)} | {5: (Shift(time(8), time(12)),)}
    return BusinessCalendar(timezone=TIMEZONE, week=week, holiday_country="ZA")


def baseline_rule() -> businesstimedelta.Rules:
    tz = pytz.timezone(TIMEZONE)
    weekdays = [0, 1, 2, 3, 4]
    return businesstimedelta.Rules(
        [
            businesstimedelta.WorkDayRule(start_time=time(8), end_time=time(17), working_days=weekdays, tz=tz),
            businesstimedelta.LunchTimeRule(start_time=time(12), end_time=time(13), working_days=weekdays, tz=tz),
            businesstimedelta.WorkDayRule(start_time=time(8), end_time=time(12), working_days=[5], tz=tz),
            businesstimedelta.HolidayRule(holidays.ZA(), tz=tz),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--baseline-cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20261123)
    args = parser.parse_args(argv)
    n, m = args.cases, min(args.baseline_cases, args.cases)

    now = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo(TIMEZONE))
    now_s = int(now.timestamp())
    rng = np.random.default_rng(args.seed)
    created = rng.integers(now_s - 90 * 86400, now_s, size=n, dtype=np.int64)
    target_s = rng.choice(TARGET_HOURS, size=n) * 3600
    calendar = bench_calendar()

    # Ours: index over the creation window plus headroom for 72 business hours (~2 weeks).
    t0 = timer.perf_counter()
    index = CalendarIndex.build(calendar, start=now - timedelta(days=91), end=now + timedelta(days=60))
    due = index.add_seconds(created, target_s)
    ours_s = timer.perf_counter() - t0

    # Ours again at equal N: the same M cases, index build included, on a fresh calendar (nothing memoised yet).
    fresh = bench_calendar()
    t0 = timer.perf_counter()
    index_m = CalendarIndex.build(fresh, start=now - timedelta(days=91), end=now + timedelta(days=60))
    due_m = index_m.add_seconds(created[:m], target_s[:m])
    ours_m_s = timer.perf_counter() - t0
    assert (due_m == due[:m]).all()

    # Baseline: businesstimedelta, one datetime at a time.
    rule = baseline_rule()
    deltas = {int(h): businesstimedelta.BusinessTimeDelta(rule, hours=int(h)) for h in TARGET_HOURS}
    starts = [datetime.fromtimestamp(int(s), UTC) for s in created[:m]]
    hours = (target_s[:m] // 3600).tolist()
    t0 = timer.perf_counter()
    baseline_due = [start + deltas[h] for start, h in zip(starts, hours)]
    base_s = timer.perf_counter() - t0

    baseline_due_s = np.array([int(d.timestamp()) for d in baseline_due], dtype=np.int64)
    mismatched = np.flatnonzero(baseline_due_s != due[:m])
    for k in mismatched[:10]:
        print(
            f"mismatch: created {datetime.fromtimestamp(int(created[k]), ZoneInfo(TIMEZONE))} "
            f"+{target_s[k] // 3600}h: ours {datetime.fromtimestamp(int(due[k]), ZoneInfo(TIMEZONE))} "
            f"baseline {baseline_due[k].astimezone(ZoneInfo(TIMEZONE))}",
            file=sys.stderr,
        )
    # The scalar API must agree with the vectorised path as well (a small sample keeps this quick).
    for k in range(min(m, 2000)):
        scalar = calendar.add(starts[k], timedelta(seconds=int(target_s[k])))
        assert int(scalar.timestamp()) == int(due[k]), (k, scalar, due[k])

    agree = m - len(mismatched)
    assert agree == m, f"{m - agree} deadlines differ from businesstimedelta"
    ratio = base_s / ours_m_s
    print(f"index: {len(index.opens)} working intervals {index.start:%Y-%m-%d}..{index.end:%Y-%m-%d}")
    print(f"ours:     {n} cases in {ours_s:.3f} s = {n / ours_s:,.0f} cases/s (throughput at N)")
    print(f"ours:     {m} cases in {ours_m_s:.4f} s = {m / ours_m_s:,.0f} cases/s (equal N, index build included)")
    print(f"baseline: {m} cases in {base_s:.3f} s = {m / base_s:,.0f} cases/s (businesstimedelta)")
    print(f"sla: {m} cases ours {ours_m_s:.3f} s, baseline {base_s:.2f} s, ratio at equal N {ratio:.0f}; "
          f"throughput at {n} cases {n / ours_s:,.0f} cases/s; agree {agree}/{m}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
