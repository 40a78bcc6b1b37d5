"""`CalendarIndex`: a calendar's working intervals as numpy arrays, for bulk SLA maths."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from opsline.core.calendar.base import _EPOCH, InvalidCalendar, OutsideCalendarRange, _epoch_seconds, _require_aware
from opsline.core.calendar.business import BusinessCalendar


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
