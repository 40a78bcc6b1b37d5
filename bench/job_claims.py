"""Benchmark: the job worker's cost per job as the backlog grows (PostgreSQL), our claim vs a sort-every-due-job claim.

Whole job per job: claim (one transaction: the expired-lease walk, the queued walk with FOR UPDATE SKIP LOCKED, the
lease written), run a registered handler, mark the job done (second transaction), as `opsline worker` does. Data: a
backlog of N due jobs over the priorities the areas use (50 notifications, 60 dunning actions, 100 default, 120/130
partner replies), half of them on per-account serial keys, plus N/2 jobs due in three days (retries and partner
callbacks waiting their time), on top of the demo-sized history of done jobs. At each N, K jobs are drained with our
claim, then K with the baseline on a fresh copy of the same queue. Baseline: the claim as it was before migration
0028, the usual "fetch the due jobs, sort, take the first" (`ORDER BY priority, run_at, id LIMIT 1` over an index on
(state, run_at, priority)). Asserted: each drained job ran once, in claim order (priority, then due time), and both
claims took the same jobs. Leaves out: the handlers' own work (the load test measures it, see bench/load.py).

    .venv/bin/python bench/job_claims.py [--backlogs 1000,10000,100000] [--drain 300]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import and_, exists, or_, select, text
from sqlalchemy.orm import aliased, sessionmaker

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from benchdb import copy_database, drop_database, fresh_database  # noqa: E402

from opsline.core import jobs  # noqa: E402
from opsline.core.jobs import ClaimedJob, Job, JobState  # noqa: E402
from opsline.db.session import make_engine, make_sessionmaker  # noqa: E402

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def baseline_claim(factory: sessionmaker, *, worker_id: str, now: datetime, lease: timedelta = timedelta(minutes=5)) -> ClaimedJob | None:
    """The claim before migration 0028: every runnable job (queued and due, or an expired lease) sorted for each claim."""
    with factory() as session, session.begin():
        other = aliased(Job)
        runnable = or_(and_(Job.state == JobState.QUEUED.value, Job.run_at <= now), and_(Job.state == JobState.RUNNING.value, Job.lease_until < now))
        blocked = exists().where(other.serial_key == Job.serial_key, other.id < Job.id, other.state.in_([JobState.QUEUED.value, JobState.RUNNING.value]))
        q = (select(Job).where(runnable, or_(Job.serial_key.is_(None), ~blocked)).order_by(Job.priority, Job.run_at, Job.id).limit(1)
             .with_for_update(skip_locked=True, of=Job))
        job = session.execute(q).scalar_one_or_none()
        if job is None:
            return None
        job.state, job.lease_until, job.locked_by, job.attempts = JobState.RUNNING.value, now + lease, worker_id, job.attempts + 1
        return ClaimedJob(job.id, job.kind, dict(job.payload or {}), job.attempts, job.max_attempts)


def _fill(url: str, n: int) -> None:
    engine = make_engine(url)
    with engine.begin() as c:
        c.execute(text("TRUNCATE job"))
        # the history a running system has: done jobs (the demo at 2,000 accounts leaves about 16,000)
        c.execute(text("INSERT INTO job (kind, payload, state, run_at, finished_at, priority, attempts, max_attempts, created_at) "
                       "SELECT 'bench.noop', '{}'::jsonb, 'done', :now - make_interval(mins => g), :now, 100, 1, 8, :now FROM generate_series(1, 20000) g"),
                  {"now": NOW})
        c.execute(text("INSERT INTO job (kind, payload, state, run_at, priority, attempts, max_attempts, created_at, serial_key) "
                       "SELECT 'bench.noop', jsonb_build_object('n', g), 'queued', :now - make_interval(secs => g % 3600), "
                       "(ARRAY[50, 60, 100, 120, 130])[1 + g % 5], 0, 8, :now, CASE WHEN g % 2 = 0 THEN 'account:' || (g % 5000) END "
                       "FROM generate_series(1, :n) g"), {"now": NOW, "n": n})
        c.execute(text("INSERT INTO job (kind, payload, state, run_at, priority, attempts, max_attempts, created_at) "
                       "SELECT 'bench.noop', '{}'::jsonb, 'queued', :now + interval '3 days', 50, 0, 8, :now FROM generate_series(1, :n) g"),
                  {"now": NOW, "n": n // 2})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM ANALYZE job"))
    engine.dispose()


def _drain(url: str, k: int, claim) -> tuple[float, list[int]]:  # type: ignore[no-untyped-def]
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    registry = jobs.Registry()
    registry.register("bench.noop")(lambda session, payload, now: None)
    taken: list[int] = []
    t0 = time.perf_counter()
    for _ in range(k):
        job = claim(factory, worker_id="bench", now=NOW)
        assert job is not None, "the queue ran dry"
        assert jobs.run_claimed(factory, registry, job, worker_id="bench", now=NOW)
        taken.append(job.id)
    seconds = time.perf_counter() - t0
    with engine.connect() as c:
        rows = c.execute(text("SELECT id, state, attempts, priority, run_at FROM job WHERE id = ANY(:ids)"), {"ids": taken}).all()
    engine.dispose()
    assert len(rows) == k and all(r.state == "done" and r.attempts == 1 for r in rows), "a drained job did not run exactly once"
    by_id = {r.id: (r.priority, r.run_at) for r in rows}
    order = [by_id[i] for i in taken]
    assert order == sorted(order), "jobs were not taken in claim order (priority, then due time)"
    return seconds, taken


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backlogs", default="1000,10000,100000")
    ap.add_argument("--drain", type=int, default=300, help="jobs drained at each backlog, by each claim")
    ap.add_argument("--url", default=os.environ.get("OPSLINE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/opsline_bench_jobs"))
    args = ap.parse_args()
    fresh_database(args.url).dispose()
    try:
        print(f"{'due jobs waiting':>17} {'ours ms/job':>12} {'baseline ms/job':>16} {'ratio':>6}")
        for n in (int(x) for x in args.backlogs.split(",")):
            _fill(args.url, n)
            copy = copy_database(args.url, "_baseline")
            try:
                ours, taken = _drain(args.url, args.drain, jobs.claim)
                base, base_taken = _drain(copy, args.drain, baseline_claim)
            finally:
                drop_database(copy)
            assert taken == base_taken, "our claim and the baseline took different jobs"
            print(f"{n:17,d} {1000 * ours / args.drain:12.2f} {1000 * base / args.drain:16.2f} {base / ours:6.1f}", flush=True)
    finally:
        drop_database(args.url)


if __name__ == "__main__":
    main()
