"""Benchmark: recalculating the SLA clocks of every open case end to end on PostgreSQL (or SQLite), against the
memoised scalar calendar doing the very same job in the same run.

Data: the demo generator (`users`, `customers`, `case_queues`, `cases` steps) at `--accounts` accounts; about 15 % of
accounts have a case and about half of those are open (130,000 accounts give about 10,000 open cases; 1.3 million
about 100,000). Histories are the demo's: hand-offs, waits on the customer, holds for an FNO, customer notes, reopens.

Both runs do the whole job `sla.service.recalculate` does for every open case: read the cases, their histories,
policies, calendars, site timezones and contracts; replay; measure; write clocks, breaches, warnings, the policy choice
and each case's SLA summary (through the cases service); commit. Before each run the SLA tables and summaries are
emptied (untimed), so neither run finds its rows already written (the headline figure: inserts). Each run then does
the same job again an hour later (timed and printed on its own line): every running clock has moved, so the stored
rows are compared and most are updated, the shape of a real re-run after a policy or calendar change.
- ours: one `CalendarIndex` per calendar per batch (numpy `searchsorted`);
- baseline: the same pipeline measuring with the scalar `BusinessCalendar`, whose per-day working intervals are
  memoised (what a competent engineer would write the other way); same process, same batches, one thread each.
Asserts: both runs store identical clocks (every field but ids and timestamps), breaches and summaries, after the
first calculation and again an hour later.
Leaves out: the warning escalations (`scan`), which are not part of a recalculation.

    .venv/bin/python bench/sla_recalc.py [--accounts 130000] [--repeat 2] [--reuse] [--url postgresql+psycopg://postgres@127.0.0.1:5432/opsline_bench_sla]

Last line: `sla_recalc: <N> open cases end to end <s> s (read+compute <s>, write <s>); memoised scalar <s> s; ratio <r>`
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.engine import Engine

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import opsline.models  # noqa: E402,F401
from opsline.cases.models import CaseEvent, SupportCase  # noqa: E402
from opsline.core.events import Actor  # noqa: E402
from opsline.db.session import make_engine, make_sessionmaker  # noqa: E402
from opsline.demo import run_demo  # noqa: E402
from benchdb import fresh_database  # noqa: E402
from opsline.sla.models import SlaBreach, SlaCase, SlaClock, SlaNotification, SlaWarning  # noqa: E402
from opsline.sla.service import engine as sla_engine  # noqa: E402
from opsline.sla.service import writing  # noqa: E402
from opsline.sla.service.common import OPEN_CASE_STATES, chunks  # noqa: E402

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)
LATER = NOW + timedelta(hours=1)  # the same job an hour on: every running clock has moved, most rows are updates
BATCH = 20_000  # the batch `recalculate` uses
ACTOR = Actor.system("bench")


def reset(engine: Engine) -> None:
    """Empty what a recalculation writes, so each run writes everything (untimed). The policy rows each run appends
    to the (append-only) case history stay; both runs append the same number."""
    pg = engine.dialect.name == "postgresql"
    with make_sessionmaker(engine).begin() as s:
        for model in (SlaWarning, SlaNotification, SlaBreach, SlaClock, SlaCase):
            s.execute(text(f"TRUNCATE {model.__tablename__}") if pg else model.__table__.delete())
        s.execute(update(SupportCase).values(sla_policy_id=None, sla_state=None, sla_due_at=None, sla_breached_at=None, sla_risk=None, sla_as_of=None)
                  .execution_options(synchronize_session=False))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM ANALYZE" if pg else "ANALYZE"))


def run(engine: Engine, ids: list[int], *, vectorised: bool, now: datetime = NOW) -> dict[str, Any]:
    """One recalculation of `ids`, timed end to end (the `recalculate` loop, split into compute and write)."""
    t_compute = t_write = 0.0
    counts = {"clocks": 0, "breaches": 0, "warnings": 0, "policy_changes": 0}
    t0, cpu0 = time.perf_counter(), time.process_time()
    with make_sessionmaker(engine).begin() as s:
        for batch in chunks(ids, BATCH):
            a = time.perf_counter()
            cases, plans, clocks = sla_engine.compute(s, batch, now=now, vectorised=vectorised)
            b = time.perf_counter()
            got = writing.write(s, cases=cases, plans=plans, clocks=clocks, now=now, actor=ACTOR, reason="bench")
            t_compute += b - a
            t_write += time.perf_counter() - b
            for k, v in got.items():
                counts[k] += v
    total = time.perf_counter() - t0
    return {"total": total, "compute": t_compute, "write": t_write, "commit": total - t_compute - t_write, "counts": counts,
            "cpu": time.process_time() - cpu0}


def snapshot(engine: Engine) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with make_sessionmaker(engine)() as s:
        cols = [c for c in SlaClock.__table__.columns if c.name not in ("id", "computed_at")]
        clocks = [tuple(r) for r in s.execute(select(*cols).order_by(SlaClock.case_id, SlaClock.metric, SlaClock.clock_key))]
        breaches = [tuple(r) for r in s.execute(select(SlaBreach.case_id, SlaBreach.metric, SlaBreach.clock_key, SlaBreach.due_at, SlaBreach.overrun_seconds)
                                                .order_by(SlaBreach.case_id, SlaBreach.metric, SlaBreach.clock_key))]
        summaries = [tuple(r) for r in s.execute(select(SupportCase.id, SupportCase.sla_state, SupportCase.sla_due_at, SupportCase.sla_breached_at,
                                                        SupportCase.sla_risk, SupportCase.sla_policy_id).order_by(SupportCase.id))]
    return clocks, breaches, summaries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=130_000)
    parser.add_argument("--url", default=os.environ.get("OPSLINE_BENCH_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/opsline_bench_sla"))
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each, interleaved; the best of each is reported (a shared machine is noisy)")
    parser.add_argument("--reuse", action="store_true", help="reuse the database a previous run built with the same --accounts")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    if args.reuse:
        engine = make_engine(args.url)
        counts = {}
    else:
        engine = fresh_database(args.url)
        counts = run_demo(engine, accounts=args.accounts, now=NOW, seed=args.seed, steps=["users", "customers", "case_queues", "cases"])
    with make_sessionmaker(engine)() as s:
        ids = list(s.execute(select(SupportCase.id).where(SupportCase.state.in_(OPEN_CASE_STATES)).order_by(SupportCase.id)).scalars())
        events = s.execute(select(text("count(*)")).select_from(CaseEvent.__table__).where(CaseEvent.case_id.in_(select(SupportCase.id).where(
            SupportCase.state.in_(OPEN_CASE_STATES))))).scalar_one()
    print(f"data: {engine.url.get_backend_name()}, {args.accounts} accounts, {counts.get('cases', 'existing')} cases, {len(ids)} open with {events} history rows "
          f"(demo generator, {time.perf_counter() - t0:.0f} s to build)")
    assert ids, "the demo made no open cases"

    load_before = os.getloadavg()
    base_runs, our_runs, base_again, our_again = [], [], [], []
    for _ in range(max(1, args.repeat)):
        reset(engine)
        base_runs.append(run(engine, ids, vectorised=False))
        expected = snapshot(engine)
        base_again.append(run(engine, ids, vectorised=False, now=LATER))
        expected_later = snapshot(engine)
        reset(engine)
        our_runs.append(run(engine, ids, vectorised=True))
        got = snapshot(engine)
        our_again.append(run(engine, ids, vectorised=True, now=LATER))
        got_later = snapshot(engine)
    base = min(base_runs, key=lambda r: r["total"])
    ours = min(our_runs, key=lambda r: r["total"])
    base_l = min(base_again, key=lambda r: r["total"])
    ours_l = min(our_again, key=lambda r: r["total"])

    assert base["counts"] == ours["counts"], (base["counts"], ours["counts"])
    assert base_l["counts"] == ours_l["counts"], (base_l["counts"], ours_l["counts"])
    assert got[0] == expected[0], "clocks differ between the index and the memoised scalar calendar"
    assert got[1] == expected[1], "breaches differ"
    assert got[2] == expected[2], "case summaries differ"
    assert got_later == expected_later, "clocks, breaches or summaries differ an hour later"
    assert got_later[0] != got[0], "an hour later no clock moved"
    assert ours["counts"]["clocks"] == len(got[0]) > len(ids), "fewer clocks than open cases"
    n = len(ids)
    c = ours["counts"]
    for name, r in (("ours", ours), ("memoised scalar", base)):
        print(f"{name + ':':17} {r['total']:7.2f} s = {n / r['total']:8,.0f} cases/s  (read+compute {r['compute']:.2f} s, write {r['write']:.2f} s, "
              f"commit {r['commit']:.2f} s; this process's CPU {r['cpu']:.2f} s, the rest is the database server and waiting)")
    print(f"written: {c['clocks']} clocks, {c['breaches']} breaches, {c['warnings']} warnings, {c['policy_changes']} policy choices, {n} summaries; "
          f"agree {len(got[0])}/{len(expected[0])} clocks, {len(got[1])} breaches, {len(got[2])} summaries")
    print(f"load average (1, 5, 15 min) before the runs {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, after "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores (a shared machine: compare the ratio, not the seconds)")
    print(f"all runs (s): ours {[round(r['total'], 1) for r in our_runs]}, memoised scalar {[round(r['total'], 1) for r in base_runs]}")
    print(f"an hour later (updates): ours {ours_l['total']:.2f} s (read+compute {ours_l['compute']:.2f}, write {ours_l['write']:.2f}; CPU {ours_l['cpu']:.2f}), "
          f"memoised scalar {base_l['total']:.2f} s (read+compute {base_l['compute']:.2f}, write {base_l['write']:.2f}; CPU {base_l['cpu']:.2f}); "
          f"ratio {base_l['total'] / ours_l['total']:.1f}; {ours_l['counts']['breaches']} new breaches, {ours_l['counts']['warnings']} new warnings")
    print(f"sla_recalc: {n} open cases end to end {ours['total']:.2f} s (read+compute {ours['compute']:.2f}, write {ours['write']:.2f}); "
          f"memoised scalar {base['total']:.2f} s; ratio {base['total'] / ours['total']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
