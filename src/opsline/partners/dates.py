"""Business-day arithmetic for partner SLAs and notice rules (South African public holidays)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from opsline.config import DEFAULT_TIMEZONE

import holidays as holidays_lib

LOCAL_TZ = ZoneInfo(DEFAULT_TIMEZONE)


@lru_cache(maxsize=32)
def _holidays(year: int) -> frozenset[date]:
    return frozenset(holidays_lib.country_holidays("ZA", years=year).keys())


def is_business_day(d: date) -> bool:
    return d.weekday() < 5 and d not in _holidays(d.year)


def next_business_day(d: date) -> date:
    """`d` itself when it is a business day, else the next one."""
    while not is_business_day(d):
        d += timedelta(days=1)
    return d


def add_business_days(d: date, n: int) -> date:
    """The business day `n` business days after `d` (n=0: `d` rolled forward to a business day)."""
    d = next_business_day(d)
    for _ in range(max(0, n)):
        d = next_business_day(d + timedelta(days=1))
    return d


def local_date(now: datetime) -> date:
    return now.astimezone(LOCAL_TZ).date()


def local_morning(d: date, hour: int = 9) -> datetime:
    return datetime(d.year, d.month, d.day, hour, tzinfo=LOCAL_TZ)
