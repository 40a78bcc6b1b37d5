"""Database upkeep on a schedule: keep the query planner's statistics fresh (`PRAGMA optimize` on SQLite, ANALYZE on
PostgreSQL), so pages and batch steps keep their index plans as tables grow."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from opsline.core.jobs import Registry, enqueue

OPTIMIZE_JOB = "db.optimize"
EVERY = timedelta(hours=6)


def schedule_optimize(session: Session, *, now: datetime, every: timedelta = EVERY) -> None:
    """Enqueue the next statistics refresh (one per slot, however many workers or seeds ask)."""
    slot_seconds = int(every.total_seconds())
    at = datetime.fromtimestamp((int(now.timestamp()) // slot_seconds + 1) * slot_seconds, tz=now.tzinfo)
    enqueue(session, kind=OPTIMIZE_JOB, payload={}, now=now, run_at=at, idempotency_key=f"{OPTIMIZE_JOB}:{at:%Y%m%d%H%M}", priority=500)


def refresh_statistics(session: Session) -> str:
    """What the job runs, in the caller's session. Returns the statement used."""
    dialect = session.get_bind().dialect.name
    stmt = "ANALYZE" if dialect == "postgresql" else "PRAGMA optimize"
    session.execute(text(stmt))
    return stmt


def optimize_job(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    stmt = refresh_statistics(session)
    schedule_optimize(session, now=now)
    return {"ran": stmt}


def register(registry: Registry) -> None:
    registry.register(OPTIMIZE_JOB)(optimize_job)
