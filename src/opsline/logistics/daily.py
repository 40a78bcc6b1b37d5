"""The logistics daily job: unreturned-equipment warnings and fees, FNO claims for late deactivations, clean-up
checks; it re-enqueues itself for 06:00 local the next day (one job per day however many workers or starts ask)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from opsline.core import jobs
from opsline.core.events import Actor
from opsline.core.localtime import local_date
from opsline.logistics import checks, fees
from opsline.partners import exposure

DAILY_JOB = "logistics.daily"


def schedule(session: Session, *, now: datetime, tz: ZoneInfo) -> datetime:
    """Enqueue the next daily run (idempotent per day). Returns when it runs."""
    at = fees.next_run_at(now, tz)
    jobs.enqueue(session, kind=DAILY_JOB, payload={}, now=now, run_at=at, idempotency_key=f"{DAILY_JOB}:{at:%Y%m%d}", priority=400)
    return at


def run_daily(session: Session, *, now: datetime, tz: ZoneInfo, actor: Actor | None = None) -> dict[str, Any]:
    actor = actor or Actor.system("logistics.daily")
    out = {"fees": fees.run_fees(session, now=now, tz=tz, actor=actor),
           "claims": exposure.propose_claims(session, today=local_date(now, tz), now=now, actor=actor),
           "checks": checks.run(session, now=now, actor=actor)}
    return out


def daily_job(session: Session, payload: dict[str, Any], now: datetime, *, tz: ZoneInfo) -> dict[str, Any]:
    out = run_daily(session, now=now, tz=tz)
    schedule(session, now=now, tz=tz)
    return out
