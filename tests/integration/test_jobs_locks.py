"""SQLite under load: readers never wait for the writer, write locks are taken only when a transaction writes (or
reads FOR UPDATE), the worker holds no write lock while a handler renders or sends, and the planner's statistics are
refreshed by a scheduled job (ANALYZE on PostgreSQL)."""

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from opsline.core.jobs import Job, JobState, Registry, Worker, enqueue
from opsline.customers.models import Account, ValueTier
from opsline.db import maintenance
from opsline.db.session import holds_write_lock, lock_for_write, make_sessionmaker, read_transaction, with_lock_mode, write_transaction


def _sqlite_only(engine):  # type: ignore[no-untyped-def]
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite locking")


def test_a_reader_is_not_blocked_while_the_worker_holds_the_write_lock(engine):
    _sqlite_only(engine)
    writer = make_sessionmaker(engine)()
    writer.execute(text("UPDATE value_tier SET rank = rank + 1 WHERE code = 'vip'"))
    assert holds_write_lock(writer)
    try:
        t0 = time.perf_counter()
        with read_transaction(make_sessionmaker(engine)) as reader:
            rank = reader.execute(select(ValueTier.rank).where(ValueTier.code == "vip")).scalar_one()
            assert not holds_write_lock(reader)
        assert time.perf_counter() - t0 < 1.0
        assert rank == 10  # the committed value, not the writer's pending one
    finally:
        writer.rollback()
        writer.close()


def test_a_deferred_session_takes_the_write_lock_at_its_first_write_or_for_update_read(engine):
    _sqlite_only(engine)
    reader_factory = make_sessionmaker(engine, lock="deferred")
    with reader_factory() as s:
        s.execute(select(ValueTier)).all()
        assert not holds_write_lock(s)
        s.execute(select(ValueTier).where(ValueTier.code == "vip").with_for_update()).all()
        assert holds_write_lock(s)
        s.rollback()
    with reader_factory() as s:
        s.get(ValueTier, "vip").rank = 11
        assert not holds_write_lock(s)
        s.flush()
        assert holds_write_lock(s)
        s.commit()
    with reader_factory() as s:
        lock_for_write(s)
        assert holds_write_lock(s)
        s.rollback()
    with write_transaction(make_sessionmaker(engine, lock="deferred")) as s:
        assert holds_write_lock(s)


def test_a_second_writer_waits_for_the_first_instead_of_failing(engine):
    _sqlite_only(engine)
    factory = make_sessionmaker(engine, lock="deferred")
    first = factory()
    first.execute(text("UPDATE value_tier SET rank = 11 WHERE code = 'vip'"))
    done: list[float] = []

    def second() -> None:
        with factory.begin() as s:
            s.execute(text("UPDATE value_tier SET rank = rank + 1 WHERE code = 'vip'"))
        done.append(time.perf_counter())

    t = threading.Thread(target=second)
    t.start()
    time.sleep(0.3)
    released = time.perf_counter()
    first.commit()
    first.close()
    t.join(10)
    assert done and done[0] >= released
    with factory() as s:
        assert s.get(ValueTier, "vip").rank == 12


def test_the_worker_holds_no_write_lock_while_a_handler_works_before_writing(engine, factory, now):
    seen: dict[str, object] = {}
    registry = Registry()

    @registry.register("test.render_then_store")
    def handler(session, payload, at):  # type: ignore[no-untyped-def]
        seen["tier"] = session.get(ValueTier, "vip").rank
        seen["locked_while_rendering"] = holds_write_lock(session) if engine.dialect.name == "sqlite" else None
        # while it "renders", another connection can still write (sign-ins, pages)
        with factory.begin() as other:
            other.execute(text("UPDATE value_tier SET name = 'VIP customers' WHERE code = 'vip'"))
        session.execute(text("UPDATE value_tier SET rank = 9 WHERE code = 'vip'"))
        return {"ok": True}

    @registry.register("test.locked", lock="immediate")
    def locked(session, payload, at):  # type: ignore[no-untyped-def]
        seen["immediate_locked"] = holds_write_lock(session)
        return None

    with factory.begin() as s:
        enqueue(s, kind="test.render_then_store", payload={}, now=now)
        enqueue(s, kind="test.locked", payload={}, now=now)
    assert Worker(factory, registry, worker_id="w1", clock=lambda: now).drain() == 2
    if engine.dialect.name == "sqlite":
        assert seen["locked_while_rendering"] is False and seen["immediate_locked"] is True
    with factory() as s:
        tier = s.get(ValueTier, "vip")
        assert (tier.rank, tier.name) == (9, "VIP customers")
        assert s.execute(select(func.count()).select_from(Job).where(Job.state == JobState.DONE.value)).scalar_one() == 2


def test_registering_a_job_with_an_unknown_lock_mode_is_refused():
    with pytest.raises(ValueError):
        Registry().register("x", lock="sometimes")
    with pytest.raises(ValueError):
        with_lock_mode(None, "sometimes")  # type: ignore[arg-type]


def test_the_scheduled_optimize_job_refreshes_statistics_and_schedules_the_next(factory, now):
    registry = Registry()
    maintenance.register(registry)
    with factory.begin() as s:
        maintenance.schedule_optimize(s, now=now)
        maintenance.schedule_optimize(s, now=now)  # one per slot, however many ask
    with factory() as s:
        jobs = s.execute(select(Job).where(Job.kind == maintenance.OPTIMIZE_JOB)).scalars().all()
        assert len(jobs) == 1 and jobs[0].run_at > now
        due = jobs[0].run_at
    worker = Worker(factory, registry, worker_id="w", clock=lambda: due + timedelta(seconds=1))
    assert worker.drain() == 1
    with factory() as s:
        rows = s.execute(select(Job).where(Job.kind == maintenance.OPTIMIZE_JOB).order_by(Job.id)).scalars().all()
        assert [j.state for j in rows] == ["done", "queued"] and rows[1].run_at > due
        assert rows[0].result["ran"] in ("PRAGMA optimize", "ANALYZE")
        assert s.execute(select(func.count()).select_from(Account)).scalar_one() == 0
