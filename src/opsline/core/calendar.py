"""Business calendars (shifts, public holidays, closures) and SLA clock maths, scalar and vectorised."""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib
import numpy as np

__all__ = [
    "BusinessCalendar",
    "CalendarIndex",
    "InvalidCalendar",
    "OutsideCalendarRange",
    "Shift",
    "standard_week",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_MICROSECOND = timedelta(microseconds=1)
_US = 1_000_000
# How many consecutive days without working time `add`/`next_open` search before giving up,
# so a calendar closed for good fails loudly instead of looping for ever.
_MAX_CLOSED_DAYS = 3660


class InvalidCalendar(ValueError):
    """A calendar definition or an argument given to it is unusable.

    Raised for overlapping shifts, shifts that end at or before they start, an unknown
    timezone or holiday country/subdivision, naive datetimes, and malformed stored data.
    """


class OutsideCalendarRange(ValueError):
    """A `CalendarIndex` was asked about an instant outside the range it was built for."""


@dataclass(frozen=True)
class Shift:
    """Working hours within one local day: ``[start, end)`` in wall-clock time.

    ``end == time(0, 0)`` means 24:00 (the end of the day), so ``Shift(time(0), time(0))`` is
    the whole day. A shift never crosses midnight: a night desk 22:00-02:00 is two shifts,
    22:00-24:00 on one weekday and 00:00-02:00 on the next (they join into one interval).

    Raises InvalidCalendar if ``end <= start`` (other than the 24:00 end), if either time
    carries a tzinfo, or is not a whole second.
    """

    start: time
    end: time

    def __post_init__(self) -> None:
        for value in (self.start, self.end):
            if not isinstance(value, time):
                raise InvalidCalendar(f"shift bounds must be datetime.time, got {value!r}")
            if value.tzinfo is not None:
                raise InvalidCalendar("shift bounds are local wall-clock times; drop the tzinfo")
            if value.microsecond:
                raise InvalidCalendar("shift bounds must be whole seconds")
        if self.end_seconds <= self.start_seconds:
            raise InvalidCalendar(f"shift ends at or before it starts: {self.start}-{self.end}")

    @property
    def start_seconds(self) -> int:
        return self.start.hour * 3600 + self.start.minute * 60 + self.start.second

    @property
    def end_seconds(self) -> int:
        """Seconds after local midnight; 86400 for an end of 24:00."""
        if self.end == time(0, 0):
            return 86400
        return self.end.hour * 3600 + self.end.minute * 60 + self.end.second

    @property
    def duration(self) -> timedelta:
        """Nominal length (wall clock); a DST change on the day makes the real length differ."""
        return timedelta(seconds=self.end_seconds - self.start_seconds)


def standard_week(
    *, days: Iterable[int] = range(5), shifts: Sequence[Shift] = (Shift(time(8), time(17)),)
) -> dict[int, tuple[Shift, ...]]:
    """A week with the same shifts on each of ``days`` (0=Monday); default Mon-Fri 08:00-17:00."""
    return {int(day): tuple(shifts) for day in days}


def _require_aware(value: datetime, name: str) -> None:
    if not isinstance(value, datetime):
        raise InvalidCalendar(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidCalendar(f"{name} is a naive datetime; pass a timezone-aware one")


def _epoch_seconds(value: datetime) -> int:
    return (value - _EPOCH) // _SECOND


def _epoch_micros(value: datetime) -> int:
    return (value - _EPOCH) // _MICROSECOND


def _time_to_text(value: time, *, is_end: bool) -> str:
    if is_end and value == time(0, 0):
        return "24:00"
    return value.strftime("%H:%M:%S" if value.second else "%H:%M")


def _time_from_text(text: str) -> time:
    if text in ("24:00", "24:00:00"):
        return time(0, 0)
    return time.fromisoformat(text)


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

    def _day_intervals(self, day: date) -> list[tuple[int, int]]:
        """Working intervals (epoch seconds, ordered, disjoint) of shifts on local `day`."""
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

    def index(self, *, start: datetime, end: datetime) -> CalendarIndex:
        """Shorthand for `CalendarIndex.build(self, start=start, end=end)`."""
        return CalendarIndex.build(self, start=start, end=end)


class CalendarIndex:
    """A calendar's working intervals over [start, end) as numpy arrays, for bulk SLA maths.

    All instants are int64 UTC epoch seconds; all durations int64 seconds. Built once, it
    answers millions of `add`/`between` queries with two `np.searchsorted` calls and no
    Python loop per element.
    """

    def __init__(self, *, start_s: int, end_s: int, intervals: Sequence[tuple[int, int]]) -> None:
        # A zero-length sentinel at start_s keeps every lookup index >= 0 without branches.
        pairs = np.array([(start_s, start_s), *intervals], dtype=np.int64).reshape(-1, 2)
        self._start_s, self._end_s = int(start_s), int(end_s)
        self._opens = np.ascontiguousarray(pairs[:, 0])
        self._closes = np.ascontiguousarray(pairs[:, 1])
        self._lengths = self._closes - self._opens
        self._cum_after = np.cumsum(self._lengths)  # business seconds up to each close
        self._cum_before = self._cum_after - self._lengths  # business seconds up to each open
        for array in (self._opens, self._closes, self._lengths, self._cum_after, self._cum_before):
            array.flags.writeable = False

    @classmethod
    def build(cls, calendar: BusinessCalendar, *, start: datetime, end: datetime) -> CalendarIndex:
        """Precompute `calendar`'s working intervals in [start, end) (whole seconds, floored).

        Raises InvalidCalendar for naive datetimes or end <= start.
        """
        _require_aware(start, "start")
        _require_aware(end, "end")
        start_s, end_s = _epoch_seconds(start), _epoch_seconds(end)
        if end_s <= start_s:
            raise InvalidCalendar("index end must be after its start")
        return cls(start_s=start_s, end_s=end_s, intervals=calendar._epoch_intervals(start_s, end_s))

    @property
    def start(self) -> datetime:
        return _EPOCH + timedelta(seconds=self._start_s)

    @property
    def end(self) -> datetime:
        return _EPOCH + timedelta(seconds=self._end_s)

    @property
    def opens(self) -> np.ndarray:
        """Epoch seconds at which each working interval opens (read-only)."""
        return self._opens[1:]

    @property
    def closes(self) -> np.ndarray:
        """Epoch seconds at which each working interval closes (read-only)."""
        return self._closes[1:]

    @property
    def cumulative(self) -> np.ndarray:
        """Prefix sum: business seconds from the index start to each close (read-only)."""
        return self._cum_after[1:]

    def _instants(self, values: Any, name: str) -> np.ndarray:
        array = np.asarray(values)
        if not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"{name} must be integer epoch seconds, got dtype {array.dtype}")
        array = array.astype(np.int64, copy=False)
        if array.size and (array.min() < self._start_s or array.max() > self._end_s):
            raise OutsideCalendarRange(f"{name} fall outside the index range {self.start}..{self.end}")
        return array

    def _business_seconds(self, ts: np.ndarray) -> np.ndarray:
        i = np.searchsorted(self._opens, ts, side="right") - 1
        return self._cum_before[i] + np.minimum(ts - self._opens[i], self._lengths[i])

    def business_seconds_at(self, ts: Any) -> np.ndarray:
        """Business seconds from the index start up to each instant in `ts`.

        Raises OutsideCalendarRange for instants outside [start, end]; TypeError for non-integers.
        """
        return self._business_seconds(self._instants(ts, "ts"))

    def between_seconds(self, starts: Any, ends: Any) -> np.ndarray:
        """Business seconds in [start, end) per pair; 0 where end <= start.

        Raises OutsideCalendarRange for instants outside [start, end]; TypeError for non-integers.
        """
        starts, ends = self._instants(starts, "starts"), self._instants(ends, "ends")
        return np.maximum(self._business_seconds(ends) - self._business_seconds(starts), 0)

    def add_seconds(self, starts: Any, durations: Any) -> np.ndarray:
        """Epoch seconds at which each duration of business time has elapsed since its start.

        Same rules as `BusinessCalendar.add` (a duration of 0 gives the next open instant).
        Raises OutsideCalendarRange for starts outside the range or results past its end;
        ValueError for negative durations; TypeError for non-integers.
        """
        starts = self._instants(starts, "starts")
        durations = np.asarray(durations)
        if not np.issubdtype(durations.dtype, np.integer):
            raise TypeError(f"durations must be integer seconds, got dtype {durations.dtype}")
        durations = durations.astype(np.int64, copy=False)
        if durations.size and durations.min() < 0:
            raise ValueError("durations must not be negative")
        target = self._business_seconds(starts) + durations
        # Interval where the target is reached: first whose close covers it; for a zero
        # duration the first that still has time after it (so a close rolls to the next open).
        j = np.searchsorted(self._cum_after, target + (durations == 0), side="left")
        if j.size and j.max() >= len(self._cum_after):
            raise OutsideCalendarRange(f"a result falls past the index end {self.end}")
        return self._opens[j] + (target - self._cum_before[j])
