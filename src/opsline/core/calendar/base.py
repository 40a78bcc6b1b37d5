"""Calendar building blocks: shifts, errors, and the epoch-second helpers every calendar module shares."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

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

