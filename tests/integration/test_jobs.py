"""The job table: outbox semantics, retries with backoff, leases, idempotency keys, per-account serial keys."""

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import event, select, text

from opsline.core import events
from opsline.core.events import Actor, AuditEvent
from opsline.core.jobs import Job, Registry, Worker, claim, enqueue, run_claimed


def _registry(calls: list, fail_times: int = 0) -> Registry:
    reg = Registry()
    state = {"fails": fail_times}

    @reg.register("test.echo")
    def echo(session, payload, now):  # type: ignore[no-untyped-def]
        if state["fails"] > 0:
            state["fails"] -= 1
            raise RuntimeError("partner down")
        calls.append(payload["n"])
        events.record(session, now=now, actor=Actor.system("test"), entity_type="test", entity_id=payload["n"], action="echoed")
        return {"ok": payload["n"]}

    return reg


def test_job_enqueued_in_a_rolled_back_transaction_never_runs(factory, now):
    s = factory()
    enqueue(s, kind="test.echo", payload={"n": 1}, now=now)
    s.rollback()
    s.close()
    calls: list = []
    assert Worker(factory, _registry(calls), worker_id="w", clock=lambda: now).drain() == 0
    assert calls == []


def test_repeated_idempotency_key_enqueues_one_job(factory, now):
    with factory.begin() as s:
        enqueue(s, kind="test.echo", payload={"n": 1}, now=now, idempotency_key="k1")
        enqueue(s, kind="test.echo", payload={"n": 1}, now=now, idempotency_key="k1")
    with factory() as s:
        assert len(s.execute(select(Job)).scalars().all()) == 1


def test_failed_job_is_retried_with_backoff_then_succeeds(factory, now):
    calls: list = []
    reg = _registry(calls, fail_times=1)
    with factory.begin() as s:
        enqueue(s, kind="test.echo", payload={"n": 7}, now=now)
    w = Worker(factory, reg, worker_id="w", clock=lambda: now)
    assert w.drain() == 1
    with factory() as s:
        job = s.execute(select(Job)).scalar_one()
        assert job.state == "queued" and job.attempts == 1 and "partner down" in job.last_error
        assert job.run_at > now
    assert w.drain() == 0  # not due yet
    later = Worker(factory, reg, worker_id="w", clock=lambda: now + timedelta(minutes=1))
    assert later.drain() == 1
    assert calls == [7]
    with factory() as s:
        assert s.execute(select(Job.state)).scalar_one() == "done"


def test_job_dies_after_max_attempts(factory, now):
    reg = _registry([], fail_times=99)
    with factory.begin() as s:
        enqueue(s, kind="test.echo", payload={"n": 1}, now=now, max_attempts=2)
    t = now
    for _ in range(3):
        Worker(factory, reg, worker_id="w", clock=lambda: t).drain()
        t = t + timedelta(hours=2)
    with factory() as s:
        assert s.execute(select(Job.state)).scalar_one() == "dead"


def test_crashed_workers_job_is_reclaimed_after_its_lease(factory, now):
    calls: list = []
    reg = _registry(calls)
    with factory.begin() as s:
        enqueue(s, kind="test.echo", payload={"n": 3}, now=now)
    crashed = claim(factory, worker_id="crashed", now=now, lease=timedelta(minutes=5))
    assert crashed is not None
    assert claim(factory, worker_id="other", now=now + timedelta(minutes=1)) is None
    job = claim(factory, worker_id="other", now=now + timedelta(minutes=6))
    assert job is not None and job.attempts == 2
    assert run_claimed(factory, reg, job, worker_id="other", now=now + timedelta(minutes=6))
    # the crashed worker waking up cannot complete the job a second time
    assert not run_claimed(factory, reg, crashed, worker_id="crashed", now=now + timedelta(minutes=7))
    # handlers run at least once; their database effects commit exactly once
    with factory() as s:
        assert len(s.execute(select(AuditEvent).where(AuditEvent.action == "echoed")).scalars().all()) == 1


def test_jobs_with_the_same_serial_key_run_one_at_a_time_in_order(factory, now):
    with factory.begin() as s:
        enqueue(s, kind="test.echo", payload={"n": 1}, now=now, serial_key="account:1")
        enqueue(s, kind="test.echo", payload={"n": 2}, now=now, serial_key="account:1")
        enqueue(s, kind="test.echo", payload={"n": 3}, now=now, serial_key="account:2")
    first = claim(factory, worker_id="a", now=now)
    second = claim(factory, worker_id="b", now=now)
    third = claim(factory, worker_id="c", now=now)
    assert first is not None and first.payload["n"] == 1
    assert second is not None and second.payload["n"] == 3  # account:1's second job waits
    assert third is None


def _slow_registry(started: threading.Event, release: threading.Event, calls: list) -> Registry:
    reg = Registry()

    @reg.register("test.slow")
    def slow(session, payload, now):  # type: ignore[no-untyped-def]
        started.set()
        release.wait(10)
        calls.append(payload["n"])
        return {"ok": payload["n"]}

    return reg


def test_a_running_jobs_heartbeat_keeps_its_lease_so_no_other_worker_takes_it(factory, now):
    with factory.begin() as s:
        enqueue(s, kind="test.slow", payload={"n": 1}, now=now)
    started, release, calls = threading.Event(), threading.Event(), []
    lease = timedelta(seconds=0.6)
    w = Worker(factory, _slow_registry(started, release, calls), worker_id="w1", clock=_real_clock, lease=lease)
    t = threading.Thread(target=w.run_once)
    t.start()
    assert started.wait(5)
    time.sleep(1.5)  # two and a half leases: without the heartbeat the lease would have run out
    assert claim(factory, worker_id="w2", now=_real_clock(), lease=lease) is None
    release.set()
    t.join(10)
    with factory() as s:
        job = s.execute(select(Job)).scalar_one()
        assert job.state == "done" and job.locked_by == "w1" and job.attempts == 1
    assert calls == [1]


def test_a_dead_workers_job_is_reclaimed_as_soon_as_its_short_lease_runs_out(factory, now):
    with factory.begin() as s:
        enqueue(s, kind="test.echo", payload={"n": 5}, now=now)
    lease = timedelta(seconds=30)
    # worker w1 claims and dies (no heartbeat, no completion)
    assert claim(factory, worker_id="w1", now=now, lease=lease) is not None
    assert claim(factory, worker_id="w2", now=now + timedelta(seconds=29), lease=lease) is None
    calls: list = []
    assert Worker(factory, _registry(calls), worker_id="w2", clock=lambda: now + timedelta(seconds=31), lease=lease).drain() == 1
    assert calls == [5]
    with factory() as s:
        job = s.execute(select(Job)).scalar_one()
        assert job.state == "done" and job.locked_by == "w2" and job.attempts == 2


def test_the_default_lease_is_short_on_postgresql_and_long_on_sqlite(factory):
    from opsline.core.jobs import LEASE_POSTGRESQL, LEASE_SQLITE, default_lease

    expected = LEASE_POSTGRESQL if factory.kw["bind"].dialect.name == "postgresql" else LEASE_SQLITE
    assert default_lease(factory) == expected
    assert LEASE_POSTGRESQL <= timedelta(seconds=30)


def _real_clock():  # type: ignore[no-untyped-def]
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


def test_claims_take_an_expired_lease_first_then_due_jobs_by_priority_due_time_and_id(factory, now):
    with factory.begin() as s:
        enqueue(s, kind="test.echo", payload={"n": 1}, now=now, priority=100)
        enqueue(s, kind="test.echo", payload={"n": 2}, now=now, priority=50, run_at=now + timedelta(hours=1))  # first in order, not yet due
        enqueue(s, kind="test.echo", payload={"n": 3}, now=now, priority=50, run_at=now - timedelta(minutes=1))
        enqueue(s, kind="test.echo", payload={"n": 4}, now=now, priority=50, run_at=now - timedelta(minutes=2))
        enqueue(s, kind="test.echo", payload={"n": 5}, now=now, priority=400)
    dead = claim(factory, worker_id="dead", now=now, lease=timedelta(seconds=30))
    assert dead is not None and dead.payload["n"] == 4  # priority 50, due earliest
    later = now + timedelta(minutes=1)
    order = [claim(factory, worker_id="w", now=later, lease=timedelta(hours=2)) for _ in range(5)]
    # the dead worker's job first (its lease ran out), then priority, due time, id; the job due in an hour waits
    assert [j.payload["n"] if j else None for j in order] == [4, 3, 1, 5, None]


def test_a_claim_walks_the_queued_jobs_index_in_claim_order_on_postgresql(factory, now):
    """The claim stops at the first due entry of ix_job_queued instead of sorting every due job (quadratic drains)."""
    engine = factory.kw["bind"]
    if engine.dialect.name != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    with factory.begin() as s:
        s.execute(text("INSERT INTO job (kind, payload, state, run_at, priority, attempts, max_attempts, created_at) "
                       "SELECT 'test.echo', '{}'::jsonb, 'queued', :now - make_interval(secs => g), 100 + g % 5, 0, 5, :now FROM generate_series(1, 5000) g"),
                  {"now": now})
        s.execute(text("ANALYZE job"))
    seen: list[tuple[str, object]] = []

    def grab(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT") and "FROM job" in statement:
            seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", grab)
    try:
        job = claim(factory, worker_id="w", now=now)
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    assert job is not None and job.payload == {}
    statement, params = seen[-1]  # the queued jobs' walk (the expired-lease one ran first and found nothing)
    with engine.connect() as c:
        plan = "\n".join(r[0] for r in c.exec_driver_sql("EXPLAIN " + statement, params))
    assert "ix_job_queued" in plan and "Sort" not in plan, plan
