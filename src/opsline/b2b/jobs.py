"""The monthly run after month close: on the 2nd of each month (local 02:00) the worker measures the month just closed
for every contracted account (violations, proposed credits), generates every B2B customer's review, and schedules the next run."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from opsline.b2b import reviews, service
from opsline.core import jobs
from opsline.core.events import Actor
from opsline.core.localtime import local_date

EVALUATE_JOB = "b2b.evaluate_month"
SYSTEM = Actor.system("b2b-evaluation")


def next_run_at(now: datetime, tz: ZoneInfo) -> datetime:
    """02:00 local on the 2nd of the next month that has not yet reached it."""
    today = local_date(now, tz)
    at = datetime.combine(date(today.year, today.month, 2), time(2), tzinfo=tz)
    if at.astimezone(timezone.utc) <= now:
        at = datetime.combine(date(today.year + (today.month == 12), today.month % 12 + 1, 2), time(2), tzinfo=tz)
    return at.astimezone(timezone.utc)


def schedule(session: Session, *, now: datetime, tz: ZoneInfo) -> datetime:
    at = next_run_at(now, tz)
    jobs.enqueue(session, kind=EVALUATE_JOB, payload={}, now=now, run_at=at, idempotency_key=f"{EVALUATE_JOB}:{at:%Y%m}", priority=300)
    return at


def evaluate_job(session: Session, payload: dict[str, Any], now: datetime, *, tz: ZoneInfo) -> dict[str, Any]:
    """Evaluate the month before the local month of `now` (or payload['period']), then schedule the next run."""
    today = local_date(now, tz)
    prev = date(today.year - (today.month == 1), (today.month - 2) % 12 + 1, 1)
    period = service.month_start(payload.get("period") or prev)
    out = service.evaluate_month(session, period=period, now=now, tz=tz, actor=SYSTEM)
    made = reviews.generate(session, period=period, now=now, tz=tz, actor=SYSTEM)
    schedule(session, now=now, tz=tz)
    return {"period": f"{period:%Y-%m}", "reviews": made, **out}
