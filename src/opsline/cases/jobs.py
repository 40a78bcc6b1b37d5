"""Background work for cases: auto-close resolved cases, decide first-contact resolution (messages are the
notifications area's jobs)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from opsline.cases.service import autoclose, decide_fcr
from opsline.core.jobs import Registry, enqueue


def schedule_autoclose(session: Session, *, now: datetime, every: timedelta = timedelta(hours=1)) -> None:
    """Enqueue the next hourly auto-close / FCR run (one per hour, however many workers ask)."""
    at = (now + every).replace(minute=0, second=0, microsecond=0)
    enqueue(session, kind="cases.autoclose", payload={}, now=now, run_at=at, idempotency_key=f"cases.autoclose:{at:%Y%m%d%H}")


def _autoclose(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    closed = autoclose(session, now=now)
    decided = decide_fcr(session, now=now)
    schedule_autoclose(session, now=now)
    return {"closed": closed, "fcr_decided": decided}


def _fcr(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {"fcr_decided": decide_fcr(session, now=now)}


def register(registry: Registry) -> None:
    registry.register("cases.autoclose")(_autoclose)
    registry.register("cases.fcr")(_fcr)
