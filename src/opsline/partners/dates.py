"""Partner-facing dates: business days come from the one business-day function (core.calendar.days) with the
partner's holiday country; local dates from the operator's timezone."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from opsline.config import DEFAULT_TIMEZONE
from opsline.core.calendar.days import add_business_days
from opsline.core.localtime import zone

__all__ = ["add_business_days", "next_business_day", "local_date", "local_morning"]


def next_business_day(d: date, *, holiday_country: str | None) -> date:
    """`d` itself when it is a business day, else the next one."""
    return add_business_days(d, 0, holiday_country=holiday_country)


def _tz(tz: ZoneInfo | None) -> ZoneInfo:
    return tz or zone(DEFAULT_TIMEZONE)


def local_date(now: datetime, tz: ZoneInfo | None = None) -> date:
    return now.astimezone(_tz(tz)).date()


def local_morning(d: date, hour: int = 9, tz: ZoneInfo | None = None) -> datetime:
    return datetime(d.year, d.month, d.day, hour, tzinfo=_tz(tz))
