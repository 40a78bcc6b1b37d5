"""Business-day arithmetic on dates: THE one function for "N business days after" (weekends and public holidays
excluded). Partner SLAs, claim deadlines and notice periods all count days with it."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, timedelta
from functools import lru_cache

import holidays as holidays_lib

from opsline.core.calendar.base import InvalidCalendar

WEEKEND = frozenset({5, 6})  # Saturday, Sunday


@lru_cache(maxsize=256)
def _holiday_dates(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    try:
        return frozenset(holidays_lib.country_holidays(country, subdiv=subdivision, years=year).keys())
    except (NotImplementedError, KeyError, ValueError) as exc:
        raise InvalidCalendar(f"unknown holiday country/subdivision {country!r}/{subdivision!r}") from exc


def is_business_day(day: date, *, holiday_country: str | None, holiday_subdivision: str | None = None,
                    weekend: Collection[int] = WEEKEND) -> bool:
    """Whether `day` is neither a weekend day nor a public holiday (observed days included) of the country."""
    if day.weekday() in weekend:
        return False
    return holiday_country is None or day not in _holiday_dates(holiday_country, holiday_subdivision, day.year)


def add_business_days(start: date, days: int, *, holiday_country: str | None, holiday_subdivision: str | None = None,
                      weekend: Collection[int] = WEEKEND) -> date:
    """The `days`-th business day after `start` (`start` itself never counts). `days=0` gives `start` when it is a
    business day, else the next business day.

    Raises ValueError for a negative `days`; InvalidCalendar for an unknown holiday country, or a weekend of
    every day."""
    if days < 0:
        raise ValueError("days must not be negative")
    if len(set(weekend) & set(range(7))) == 7:
        raise InvalidCalendar("a week without business days")
    kw = {"holiday_country": holiday_country, "holiday_subdivision": holiday_subdivision, "weekend": weekend}
    d = start
    if days == 0:
        while not is_business_day(d, **kw):  # type: ignore[arg-type]
            d += timedelta(days=1)
        return d
    counted = 0
    while counted < days:
        d += timedelta(days=1)
        if is_business_day(d, **kw):  # type: ignore[arg-type]
            counted += 1
    return d
