"""Background work for cases: send outbox email, auto-close resolved cases, decide first-contact resolution."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from opsline.core.jobs import Registry, enqueue


def _send(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    from opsline.cases.mail import send_email

    return send_email(session, payload, now)


def schedule_autoclose(session: Session, *, now: datetime, every: timedelta = timedelta(hours=1)) -> None:
    """Enqueue the next hourly auto-close / FCR run (one per hour, however many workers ask)."""
    at = (now + every).replace(minute=0, second=0, microsecond=0)
    enqueue(session, kind="cases.autoclose", payload={}, now=now, run_at=at, idempotency_key=f"cases.autoclose:{at:%Y%m%d%H}")


def _autoclose(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    from opsline.cases.service import autoclose, decide_fcr

    closed = autoclose(session, now=now)
    decided = decide_fcr(session, now=now)
    schedule_autoclose(session, now=now)
    return {"closed": closed, "fcr_decided": decided}


def _fcr(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    from opsline.cases.service import decide_fcr

    return {"fcr_decided": decide_fcr(session, now=now)}


def register(registry: Registry) -> None:
    registry.register("cases.send_email")(_send)
    registry.register("cases.autoclose")(_autoclose)
    registry.register("cases.fcr")(_fcr)
