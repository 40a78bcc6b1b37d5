"""Partner-facing dates: business days come from the one business-day function (core.calendar.days) with the
partner's holiday country; local dates use the operator's timezone, passed in like `now`."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from opsline.core.calendar.days import add_business_days
from opsline.core.localtime import local_date

__all__ = ["add_business_days", "next_business_day", "local_date", "local_morning"]


def next_business_day(d: date, *, holiday_country: str | None) -> date:
    """`d` itself when it is a business day, else the next one."""
    return add_business_days(d, 0, holiday_country=holiday_country)


def local_morning(d: date, hour: int, tz: ZoneInfo) -> datetime:
    """`hour` o'clock on local date `d`."""
    return datetime(d.year, d.month, d.day, hour, tzinfo=tz)
