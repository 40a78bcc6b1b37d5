"""Monthly partitions of usage records and the audit log on PostgreSQL (migration 0027 and the db.partitions job):
rows land in their month's partition, the job creates months ahead (moving early rows out of the DEFAULT partition),
the audit log stays append-only and its digest unchanged, external ids stay unique across months, the application's
role (no DDL) can run the job, and backup/restore round-trips a partitioned database. SQLite: the job does nothing."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

from opsline.core.events import Actor
from opsline.core.jobs import Registry, Worker, enqueue
from opsline.db.backup import audit_digest, backup, restore
from opsline.db.migrate import upgrade
from opsline.db.session import make_engine, make_sessionmaker
from opsline.db_maintenance.partitions import PARTITIONS_JOB, ensure_partitions, month_partitions, partitioned_tables, register

PG_URL = os.environ.get("OPSLINE_TEST_POSTGRES_URL")
needs_pg = pytest.mark.skipif(not PG_URL, reason="partitioning is PostgreSQL's (OPSLINE_TEST_POSTGRES_URL not set)")
FAR = datetime(2031, 5, 15, 9, 0, tzinfo=timezone.utc)


def _fresh(suffix: str) -> tuple[str, Engine]:
    url = make_url(PG_URL)  # type: ignore[arg-type]
    name = f"{url.database}_{suffix}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    target = url.set(database=name).render_as_string(hide_password=False)
    return target, make_engine(target)


def _drop(url: str) -> None:
    u = make_url(url)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def migrated() -> Iterator[Engine]:
    """One database built by the migrations (the partitioning lives in migration 0027, not in the models)."""
    if not PG_URL:
        pytest.skip("OPSLINE_TEST_POSTGRES_URL not set")
    from opsline.customers import service as customers
    from opsline.customers.schemas import AccountIn
    from opsline.seed import seed_reference

    url, engine = _fresh("part")
    upgrade(engine)
    now = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)
    with make_sessionmaker(engine).begin() as s:
        seed_reference(s, now=now)
        customers.create_account(s, data=AccountIn(name="Naledi Dube", email="n@example.com"), now=now, actor=Actor(name="tester", roles=frozenset({"admin"})))
    yield engine
    engine.dispose()
    _drop(url)


def _audit(c, at: str, n: str = "1") -> int:  # type: ignore[no-untyped-def]
    return c.execute(text("INSERT INTO audit_event (occurred_at, actor, entity_type, entity_id, action) VALUES (:at, 'tester', 'test', :n, 'noted') "
                          "RETURNING id"), {"at": at, "n": n}).scalar_one()


def _usage(c, at: str, ext: str) -> int:  # type: ignore[no-untyped-def]
    acc = c.execute(text("SELECT id FROM account ORDER BY id LIMIT 1")).scalar_one()
    return c.execute(text("INSERT INTO usage_record (account_id, usage_type, started_at, quantity, external_id, state, currency) "
                          "VALUES (:a, 'data_mb', :at, 5, :e, 'rated', 'ZAR') RETURNING id"), {"a": acc, "at": at, "e": ext}).scalar_one()


def _where(c, table: str, row_id: int) -> str:  # type: ignore[no-untyped-def]
    return c.execute(text(f"SELECT tableoid::regclass::text FROM {table} WHERE id = :i"), {"i": row_id}).scalar_one()


@needs_pg
def test_usage_and_audit_are_partitioned_by_month_with_a_default_and_months_ahead(migrated):  # type: ignore[no-untyped-def]
    factory = make_sessionmaker(migrated)
    with factory() as s:
        assert partitioned_tables(s) == ["audit_event", "usage_record"]
        now = datetime.now(timezone.utc)
        names = [n for n, _ in month_partitions(s, table="audit_event")]
    assert names[-1] == "audit_event_default"
    assert f"audit_event_y{now:%Y}m{now:%m}" in names and len(names) >= 4  # this month, the next two, the default
    with migrated.connect() as c:
        pk = c.execute(text("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'usage_record'::regclass AND contype = 'p'")).scalar_one()
    assert pk == "PRIMARY KEY (id, started_at)"


@needs_pg
def test_after_the_job_a_row_in_a_new_month_lands_in_its_own_partition_and_early_rows_leave_the_default(migrated):  # type: ignore[no-untyped-def]
    with migrated.begin() as c:
        early = _audit(c, "2031-06-10 08:00+00", "early")
        early_usage = _usage(c, "2031-06-30 23:30+00", "early-usage")
        assert _where(c, "audit_event", early) == "audit_event_default"
        waiting = {t: set(c.execute(text(f"SELECT DISTINCT to_char({k} AT TIME ZONE 'UTC', 'YYYY-MM') FROM {t}_default")).scalars())
                   for t, k in (("audit_event", "occurred_at"), ("usage_record", "started_at"))}
    with migrated.connect() as d:  # (audit_digest streams: a connection of its own)
        digest = audit_digest(d)
    registry = Registry()
    register(registry)
    factory = make_sessionmaker(migrated)
    with factory.begin() as s:
        enqueue(s, kind=PARTITIONS_JOB, payload={}, now=FAR)
    assert Worker(factory, registry, worker_id="t", clock=lambda: FAR).drain(max_jobs=1) == 1
    with migrated.begin() as c:
        assert _where(c, "audit_event", early) == "audit_event_y2031m06"  # moved out of the default, same row
        assert _where(c, "usage_record", early_usage) == "usage_record_y2031m06"
    with migrated.connect() as d:
        assert audit_digest(d) == digest  # the chain is the same rows in the same order
    with migrated.begin() as c:
        later = _audit(c, "2031-07-31 23:59:59+00", "later")
        assert _where(c, "audit_event", later) == "audit_event_y2031m07"
        assert _where(c, "usage_record", _usage(c, "2031-05-20 10:00+00", "may-usage")) == "usage_record_y2031m05"
        nxt = c.execute(text("SELECT result FROM job WHERE kind = :k AND state = 'done'"), {"k": PARTITIONS_JOB}).scalar_one()
        ahead = {"2031-05", "2031-06", "2031-07"}  # the job's month and the next two, and each month waiting in the default
        assert nxt == {"created": {t: len(ahead | waiting[t]) for t in ("audit_event", "usage_record")}}
        assert c.execute(text("SELECT count(*) FROM job WHERE kind = :k AND state = 'queued'"), {"k": PARTITIONS_JOB}).scalar_one() == 1
    with factory.begin() as s:  # running again creates nothing
        assert ensure_partitions(s, now=FAR) == {"audit_event": 0, "usage_record": 0}


@needs_pg
def test_back_dated_rows_caught_by_the_default_partition_move_to_their_own_month_on_the_next_run(migrated):  # type: ignore[no-untyped-def]
    with migrated.begin() as c:
        old = _audit(c, "2019-03-15 12:00+00", "history")
        assert _where(c, "audit_event", old) == "audit_event_default"
    with make_sessionmaker(migrated).begin() as s:
        assert ensure_partitions(s, now=FAR)["audit_event"] == 1
    with migrated.begin() as c:
        assert _where(c, "audit_event", old) == "audit_event_y2019m03"
        assert c.execute(text("SELECT count(*) FROM audit_event_default")).scalar_one() == 0


@needs_pg
def test_the_audit_log_stays_append_only_and_external_ids_stay_unique_across_months(migrated):  # type: ignore[no-untyped-def]
    with migrated.begin() as c:
        row = _audit(c, "2027-01-05 10:00+00", "x")
        _usage(c, "2027-01-05 10:00+00", "dup-1")
    with migrated.connect() as c:
        with pytest.raises(DBAPIError, match="append-only"):
            c.execute(text("DELETE FROM audit_event WHERE id = :i"), {"i": row})
        c.rollback()
        with pytest.raises(DBAPIError, match="append-only"):
            c.execute(text("UPDATE audit_event_y2027m01 SET actor = 'x' WHERE id = :i"), {"i": row})  # a partition directly: the same trigger
        c.rollback()
        with pytest.raises(IntegrityError):
            _usage(c, "2027-02-05 10:00+00", "dup-1")  # another month, another partition: still refused
        c.rollback()
    with migrated.begin() as c:  # an id freed by a delete (usage rows may be deleted) can be loaded again
        c.execute(text("DELETE FROM usage_record WHERE external_id = 'dup-1'"))
        _usage(c, "2027-02-05 10:00+00", "dup-1")


@needs_pg
def test_the_application_role_runs_the_partition_job_without_ddl_rights(migrated):  # type: ignore[no-untyped-def]
    from opsline.db.roles import ensure_app_role

    with migrated.begin() as c:
        ensure_app_role(c, role="opsline_part_app")
    app = create_engine(migrated.url.set(username="opsline_part_app").render_as_string(hide_password=False))
    try:
        with make_sessionmaker(app).begin() as s:
            assert ensure_partitions(s, now=datetime(2032, 1, 10, tzinfo=timezone.utc)) == {"audit_event": 3, "usage_record": 3}
        with app.connect() as c:
            with pytest.raises(DBAPIError, match="permission denied|must be owner"):
                c.execute(text("CREATE TABLE audit_event_y2040m01 PARTITION OF audit_event FOR VALUES FROM ('2040-01-01') TO ('2040-02-01')"))
            c.rollback()
            with pytest.raises(DBAPIError, match="permission denied"):
                c.execute(text("TRUNCATE audit_event"))
    finally:
        app.dispose()
        with migrated.begin() as c:
            c.execute(text("DROP OWNED BY opsline_part_app"))
            c.execute(text("DROP ROLE opsline_part_app"))


@needs_pg
def test_backup_and_restore_round_trip_a_partitioned_database(migrated, tmp_path):  # type: ignore[no-untyped-def]
    with migrated.begin() as c:
        _audit(c, "2026-12-02 10:00+00", "backup")
        _usage(c, "2026-12-02 10:00+00", "backup-usage")
    now = datetime(2026, 12, 3, tzinfo=timezone.utc)
    man = backup(migrated, tmp_path / "p.backup", now=now)
    url, target = _fresh("part_restore")
    target.dispose()
    try:
        found = restore(url, tmp_path / "p.backup", now=now)
        assert found["tables"] == man["tables"] and found["audit_digest"] == man["audit_digest"]
        restored = create_engine(url)
        with restored.connect() as c:
            assert c.execute(text("SELECT relkind FROM pg_class WHERE relname = 'audit_event'")).scalar_one() == "p"
            assert c.execute(text("SELECT count(*) FROM usage_record_external_id")).scalar_one() == c.execute(
                text("SELECT count(*) FROM usage_record")).scalar_one()
        restored.dispose()
    finally:
        _drop(url)


def test_on_sqlite_the_partition_job_has_nothing_to_do(factory, now):  # type: ignore[no-untyped-def]
    if factory.kw["bind"].dialect.name != "sqlite":
        pytest.skip("the SQLite case")
    with factory.begin() as s:
        assert partitioned_tables(s) == [] and ensure_partitions(s, now=now) == {}


def test_the_partition_job_is_registered_and_scheduled_daily(factory, now):  # type: ignore[no-untyped-def]
    from opsline.areas import load_areas
    from opsline.jobs_registry import build_registry

    assert build_registry().get(PARTITIONS_JOB) is not None
    area = next(a for a in load_areas() if a.name == "db_maintenance")
    with factory.begin() as s:
        area.schedules(s, now=now, tz=None)
        area.schedules(s, now=now, tz=None)  # idempotent per slot
        rows = s.execute(text("SELECT run_at FROM job WHERE kind = :k"), {"k": PARTITIONS_JOB}).all()
    assert len(rows) == 1


