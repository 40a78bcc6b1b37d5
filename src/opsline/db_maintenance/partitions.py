"""Monthly partitions ahead of time (PostgreSQL): usage_record and audit_event are RANGE-partitioned by month (migration
0027); a daily job makes sure this month's and the next two months' partitions exist, so rows never pile up in the
DEFAULT partition. The DDL runs inside `opsline_ensure_month_partitions()`, a SECURITY DEFINER function the migration
created as the owner, because the application's role has no DDL rights. On SQLite there is nothing to do."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from opsline.core.jobs import Registry, enqueue

PARTITIONS_JOB = "db.partitions"
PARTITION_KEYS = {"usage_record": "started_at", "audit_event": "occurred_at"}
PARTITIONED_TABLES = tuple(PARTITION_KEYS)
MONTHS_AHEAD = 2  # besides the current month
EVERY = timedelta(days=1)


def partitioned_tables(session: Session) -> list[str]:
    """The tables that are partitioned in this database (none on SQLite, or before migration 0027)."""
    if session.get_bind().dialect.name != "postgresql":
        return []
    return list(session.execute(text("SELECT relname FROM pg_class WHERE relkind = 'p' AND relname = ANY(:t) AND relnamespace = 'public'::regnamespace "
                                     "ORDER BY relname"), {"t": list(PARTITIONED_TABLES)}).scalars())


def ensure_partitions(session: Session, *, now: datetime, months_ahead: int = MONTHS_AHEAD) -> dict[str, int]:
    """Create the monthly partitions (UTC months) from `now`'s month to `months_ahead` months later, for each partitioned
    table, and one for every month that has rows waiting in the DEFAULT partition (back-dated history, e.g. an import of
    last year's usage); those rows move into their month's partition. Returns {table: partitions created}."""
    first = now.astimezone(timezone.utc).date().replace(day=1)
    out: dict[str, int] = {}
    for t in partitioned_tables(session):
        key = PARTITION_KEYS[t]
        waiting = session.execute(text(f"SELECT DISTINCT CAST(date_trunc('month', {key} AT TIME ZONE 'UTC') AS date) FROM {t}_default "
                                       "ORDER BY 1 LIMIT 120")).scalars()
        created = sum(int(session.execute(text("SELECT opsline_ensure_month_partitions(:t, :m, 1)"), {"t": t, "m": m}).scalar_one()) for m in list(waiting))
        out[t] = created + int(session.execute(text("SELECT opsline_ensure_month_partitions(:t, :m, :n)"),
                                               {"t": t, "m": first, "n": months_ahead + 1}).scalar_one())
    return out


def month_partitions(session: Session, *, table: str) -> list[tuple[str, str]]:
    """(partition name, bounds) of a partitioned table, oldest first, the DEFAULT partition last."""
    rows = session.execute(text("SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                "WHERE i.inhparent = CAST(:t AS regclass) ORDER BY c.relname"), {"t": table}).all()
    return sorted(((r[0], r[1]) for r in rows), key=lambda r: (r[1] == "DEFAULT", r[0]))


def schedule_partitions(session: Session, *, now: datetime, every: timedelta = EVERY) -> None:
    """Enqueue the next run (one per slot, however many workers, migrations or seeds ask)."""
    slot = int(every.total_seconds())
    at = datetime.fromtimestamp((int(now.timestamp()) // slot + 1) * slot, tz=timezone.utc)
    enqueue(session, kind=PARTITIONS_JOB, payload={}, now=now, run_at=at, idempotency_key=f"{PARTITIONS_JOB}:{at:%Y%m%d%H%M}", priority=500)


def partitions_job(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    created = ensure_partitions(session, now=now)
    schedule_partitions(session, now=now)
    return {"created": created}


def register(registry: Registry) -> None:
    registry.register(PARTITIONS_JOB, lock="immediate")(partitions_job)
