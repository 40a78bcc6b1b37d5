"""`BusinessCalendar`: when a team works (weekly shifts in a timezone, less public holidays and closures), scalar maths."""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib

from opsline.core.calendar.base import (
    _EPOCH, _MAX_CLOSED_DAYS, _MICROSECOND, _US, InvalidCalendar, Shift, _epoch_micros, _epoch_seconds, _require_aware, _time_from_text,
    _time_to_text,
)

_MEMO_DAYS = 40_000  # about a century of days per calendar; the memo is cleared past that

class BusinessCalendar:
    """When a team works: weekly shifts in a timezone, less public holidays and closures.

    Every instant is an aware datetime; arithmetic is on real (UTC) elapsed time, so a shift on
    a DST-change day is as long as the clock on the wall says it is.

    A shift bound is resolved, on its date, to the first instant at which the local clock
    shows that time or later: an ambiguous time (autumn fall-back) is its first occurrence and
    a time skipped by the spring-forward gap is the instant the clocks jump.

    Public holidays (``holidays`` package, observed days included) and whole-date closures
    close every shift that starts on that local date; datetime-range closures ``[from, to)``
    cut through whatever working time they overlap.
    """

    def __init__(
        self,
        *,
        timezone: str,
        week: Mapping[int, Sequence[Shift]],
        holiday_country: str | None = "ZA",
        holiday_subdivision: str | None = None,
        closures: Sequence[date | tuple[datetime, datetime]] = (),
    ) -> None:
        """Raises InvalidCalendar for an unknown timezone or holiday country/subdivision,
        weekday keys outside 0-6, overlapping shifts, a week without any shift, and closures
        that are naive, not whole seconds, or end at or before they start."""
        try:
            self._tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise InvalidCalendar(f"unknown timezone {timezone!r}") from exc
        self._timezone = timezone

        self._week: dict[int, tuple[Shift, ...]] = {}
        for day, shifts in week.items():
            if not isinstance(day, int) or isinstance(day, bool) or not 0 <= day <= 6:
                raise InvalidCalendar(f"weekday must be an int 0 (Monday) to 6 (Sunday), got {day!r}")
            for shift in shifts:
                if not isinstance(shift, Shift):
                    raise InvalidCalendar(f"week[{day}] must hold Shift objects, got {shift!r}")
            ordered = tuple(sorted(shifts, key=lambda s: s.start_seconds))
            for earlier, later in zip(ordered, ordered[1:]):
                if later.start_seconds < earlier.end_seconds:
                    raise InvalidCalendar(
                        f"overlapping shifts on weekday {day}: "
                        f"{earlier.start}-{earlier.end} and {later.start}-{later.end}"
                    )
            if ordered:
                self._week[day] = ordered
        if not self._week:
            raise InvalidCalendar("the week has no shifts, so the clock would never run")

        self._holiday_country = holiday_country
        self._holiday_subdivision = holiday_subdivision
        self._holidays: holidays_lib.HolidayBase | None = None
        if holiday_country is not None:
            try:
                self._holidays = holidays_lib.country_holidays(holiday_country, subdiv=holiday_subdivision)
            except (NotImplementedError, KeyError, ValueError) as exc:
                raise InvalidCalendar(
                    f"unknown holiday country/subdivision {holiday_country!r}/{holiday_subdivision!r}"
                ) from exc
        elif holiday_subdivision is not None:
            raise InvalidCalendar("holiday_subdivision given without holiday_country")

        self._closures: tuple[date | tuple[datetime, datetime], ...] = tuple(closures)
        closed_dates: set[date] = set()
        ranges: list[tuple[int, int]] = []
        for closure in self._closures:
            if isinstance(closure, datetime):
                raise InvalidCalendar("a closure is a date or a (from, to) pair of datetimes, not one datetime")
            if isinstance(closure, date):
                closed_dates.add(closure)
                continue
            try:
                closed_from, closed_to = closure
            except (TypeError, ValueError) as exc:
                raise InvalidCalendar(f"bad closure {closure!r}") from exc
            _require_aware(closed_from, "closure start")
            _require_aware(closed_to, "closure end")
            if closed_from.microsecond or closed_to.microsecond:
                raise InvalidCalendar("closure bounds must be whole seconds")
            if closed_to <= closed_from:
                raise InvalidCalendar(f"closure ends at or before it starts: {closure!r}")
            ranges.append((_epoch_seconds(closed_from), _epoch_seconds(closed_to)))
        self._closed_dates = frozenset(closed_dates)
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted(ranges):
            if merged and lo <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        self._closed_ranges = merged
        self._closed_range_ends = [hi for _, hi in merged]
        # A calendar never changes once built, so each local day's working intervals are worked out once: the
        # scalar `add`/`between` then cost a dict lookup per day instead of timezone maths per shift bound.
        self._days: dict[date, tuple[tuple[int, int], ...]] = {}

    # -- plain data ---------------------------------------------------------------------

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> BusinessCalendar:
        """Build a calendar from what the database stores (see `to_data`).

        Raises InvalidCalendar for missing keys, malformed times/dates, or any invalid calendar.
        """
        try:
            week = {
                int(day): [Shift(_time_from_text(a), _time_from_text(b)) for a, b in shifts]
                for day, shifts in data["week"].items()
            }
            closures: list[date | tuple[datetime, datetime]] = []
            for item in data.get("closures", ()):
                if isinstance(item, str):
                    closures.append(date.fromisoformat(item))
                else:
                    closed_from, closed_to = item
                    closures.append((datetime.fromisoformat(closed_from), datetime.fromisoformat(closed_to)))
            timezone = data["timezone"]
        except InvalidCalendar:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidCalendar(f"malformed calendar data: {exc}") from exc
        return cls(
            timezone=timezone,
            week=week,
            holiday_country=data.get("holiday_country", "ZA"),
            holiday_subdivision=data.get("holiday_subdivision"),
            closures=closures,
        )

    def to_data(self) -> dict[str, Any]:
        """JSON-ready plain data; `from_data(to_data())` gives an equal calendar."""
        closures: list[Any] = []
        for closure in self._closures:
            if isinstance(closure, date):
                closures.append(closure.isoformat())
            else:
                closures.append([closure[0].isoformat(), closure[1].isoformat()])
        return {
            "timezone": self._timezone,
            "week": {
                str(day): [[_time_to_text(s.start, is_end=False), _time_to_text(s.end, is_end=True)] for s in shifts]
                for day, shifts in sorted(self._week.items())
            },
            "holiday_country": self._holiday_country,
            "holiday_subdivision": self._holiday_subdivision,
            "closures": closures,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BusinessCalendar):
            return NotImplemented
        return self.to_data() == other.to_data()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_data(), sort_keys=True))

    def __repr__(self) -> str:
        return f"BusinessCalendar({self.to_data()!r})"

    @property
    def timezone(self) -> ZoneInfo:
        return self._tz

    # -- working intervals --------------------------------------------------------------

    def _wall_to_epoch(self, day: date, seconds_into_day: int) -> int:
        """First instant on `day` whose local clock shows `seconds_into_day` or later."""
        if seconds_into_day == 86400:
            naive = datetime.combine(day + timedelta(days=1), time(0))
        else:
            naive = datetime.combine(day, time()) + timedelta(seconds=seconds_into_day)
        later = naive.replace(tzinfo=self._tz)  # fold=0: first occurrence, or pre-gap offset
        hi = _epoch_seconds(later)
        if (_EPOCH + timedelta(seconds=hi)).astimezone(self._tz).replace(tzinfo=None) == naive:
            return hi
        # Skipped by a spring-forward gap: the jump lies between the two offset readings.
        lo = _epoch_seconds(naive.replace(tzinfo=self._tz, fold=1))
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if (_EPOCH + timedelta(seconds=mid)).astimezone(self._tz).replace(tzinfo=None) >= naive:
                hi = mid
            else:
                lo = mid
        return hi

    def _is_closed_date(self, day: date) -> bool:
        return day in self._closed_dates or (self._holidays is not None and day in self._holidays)

    def _day_intervals(self, day: date) -> tuple[tuple[int, int], ...]:
        """Working intervals (epoch seconds, ordered, disjoint) of shifts on local `day` (memoised per calendar)."""
        got = self._days.get(day)
        if got is None:
            if len(self._days) > _MEMO_DAYS:
                self._days.clear()
            got = self._days[day] = tuple(self._compute_day(day))
        return got

    def _compute_day(self, day: date) -> list[tuple[int, int]]:
        shifts = self._week.get(day.weekday())
        if not shifts or self._is_closed_date(day):
            return []
        out: list[tuple[int, int]] = []
        for shift in shifts:
            opens = self._wall_to_epoch(day, shift.start_seconds)
            closes = self._wall_to_epoch(day, shift.end_seconds)
            if closes <= opens:
                continue  # the whole shift fell into a spring-forward gap
            if not self._closed_ranges:
                out.append((opens, closes))
                continue
            i = bisect.bisect_right(self._closed_range_ends, opens)
            cursor = opens
            while i < len(self._closed_ranges) and self._closed_ranges[i][0] < closes:
                closed_from, closed_to = self._closed_ranges[i]
                if closed_from > cursor:
                    out.append((cursor, closed_from))
                cursor = max(cursor, closed_to)
                i += 1
            if cursor < closes:
                out.append((cursor, closes))
        return out

    def _local_date(self, epoch_seconds: int) -> date:
        return (_EPOCH + timedelta(seconds=epoch_seconds)).astimezone(self._tz).date()

    def _epoch_intervals(self, start_s: int, end_s: int) -> list[tuple[int, int]]:
        """Merged working intervals clipped to [start_s, end_s), in epoch seconds."""
        out: list[tuple[int, int]] = []
        if end_s <= start_s:
            return out
        day = self._local_date(start_s) - timedelta(days=1)
        last_day = self._local_date(end_s)
        while day <= last_day:
            for opens, closes in self._day_intervals(day):
                opens, closes = max(opens, start_s), min(closes, end_s)
                if closes <= opens:
                    continue
                if out and out[-1][1] == opens:
                    out[-1] = (out[-1][0], closes)
                else:
                    out.append((opens, closes))
            day += timedelta(days=1)
        return out

    def _intervals_from(self, at_s: int) -> Iterator[tuple[int, int]]:
        """Unmerged working intervals that end after `at_s`, in order, for ever.

        Raises InvalidCalendar after _MAX_CLOSED_DAYS days in a row without working time.
        """
        day = self._local_date(at_s) - timedelta(days=1)
        closed_days = 0
        while True:
            found = False
            for opens, closes in self._day_intervals(day):
                if closes > at_s:
                    found = True
                    yield opens, closes
            closed_days = 0 if found else closed_days + 1
            if closed_days > _MAX_CLOSED_DAYS:
                raise InvalidCalendar(f"no working time in the {_MAX_CLOSED_DAYS} days before {day}")
            day += timedelta(days=1)

    def _from_micros(self, micros: int) -> datetime:
        return (_EPOCH + timedelta(microseconds=micros)).astimezone(self._tz)

    # -- public clock maths -------------------------------------------------------------

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant at which `duration` of business time has elapsed since `start`.

        Outside working hours the clock starts at the next opening. A duration that runs out
        exactly at a closing returns that closing instant (e.g. 12:00, not the 13:00 reopening).
        A zero duration returns the next business instant at or after `start` (`next_open`).
        Returns an aware datetime in the calendar's timezone.

        Raises InvalidCalendar for a naive `start` (or no working time within ~10 years);
        ValueError for a negative duration.
        """
        _require_aware(start, "start")
        if not isinstance(duration, timedelta):
            raise TypeError("duration must be a timedelta")
        remaining = duration // _MICROSECOND
        if remaining < 0:
            raise ValueError("duration must not be negative")
        start_us = _epoch_micros(start)
        for opens, closes in self._intervals_from(start_us // _US):
            begin = max(opens * _US, start_us)
            available = closes * _US - begin
            if available <= 0:
                continue
            if remaining == 0:
                return self._from_micros(begin)
            if remaining <= available:
                return self._from_micros(begin + remaining)
            remaining -= available
        raise AssertionError("unreachable: _intervals_from never ends")  # pragma: no cover

    def next_open(self, at: datetime) -> datetime:
        """`at` if the calendar is open then, else the next opening (calendar timezone).

        Raises InvalidCalendar for a naive `at`.
        """
        return self.add(at, timedelta(0))

    def is_open(self, at: datetime) -> bool:
        """Whether `at` falls in working time. Raises InvalidCalendar for a naive `at`."""
        _require_aware(at, "at")
        at_us = _epoch_micros(at)
        at_s = at_us // _US
        for day in (self._local_date(at_s) - timedelta(days=1), self._local_date(at_s)):
            for opens, closes in self._day_intervals(day):
                if opens * _US <= at_us < closes * _US:
                    return True
        return False

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time in [start, end); timedelta(0) when end <= start.

        Raises InvalidCalendar for naive datetimes.
        """
        _require_aware(start, "start")
        _require_aware(end, "end")
        start_us, end_us = _epoch_micros(start), _epoch_micros(end)
        if end_us <= start_us:
            return timedelta(0)
        total = 0
        for opens, closes in self._epoch_intervals(start_us // _US, -(-end_us // _US)):
            total += max(0, min(closes * _US, end_us) - max(opens * _US, start_us))
        return timedelta(microseconds=total)

    def intervals(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """Working intervals overlapping [start, end), clipped to it, joined where they touch,
        as UTC datetimes. Raises InvalidCalendar for naive datetimes."""
        _require_aware(start, "start")
        _require_aware(end, "end")
        start_us, end_us = _epoch_micros(start), _epoch_micros(end)
        out = []
        for opens, closes in self._epoch_intervals(start_us // _US, -(-end_us // _US)):
            lo, hi = max(opens * _US, start_us), min(closes * _US, end_us)
            if lo < hi:
                out.append((_EPOCH + timedelta(microseconds=lo), _EPOCH + timedelta(microseconds=hi)))
        return out
