"""The operator's local business date and timezone: one home. The timezone is a setting (`OPSLINE_TIMEZONE`)
read at the edge (web dependency `Tz`, CLI, worker) and passed into domain code like `now`."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo


@lru_cache(maxsize=32)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_date(now: datetime, tz: ZoneInfo) -> date:
    """The business date at instant `now` in the operator's timezone."""
    return now.astimezone(tz).date()


def start_of_day(d: date, tz: ZoneInfo) -> datetime:
    """The UTC instant at which local date `d` begins."""
    return datetime.combine(d, time.min, tzinfo=tz).astimezone(timezone.utc)
