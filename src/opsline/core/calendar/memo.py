"""Memoised calendars and indexes, keyed by the calendar's stored data (an edit gives a new key, so nothing goes
stale): the single-case SLA path reuses one `CalendarIndex` per calendar instead of rebuilding or looping."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from opsline.core.calendar.base import _EPOCH
from opsline.core.calendar.business import BusinessCalendar
from opsline.core.calendar.index import CalendarIndex

# An index is built for a window around the instant asked about, aligned to buckets so that nearby instants share it.
_BUCKET = timedelta(days=30)
_BEFORE = timedelta(days=400)
_AFTER = timedelta(days=430)


def _key(data: Mapping[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, default=str)


@lru_cache(maxsize=64)
def _calendar(key: str) -> BusinessCalendar:
    return BusinessCalendar.from_data(json.loads(key))


def calendar_from_data(data: Mapping[str, Any]) -> BusinessCalendar:
    """`BusinessCalendar.from_data(data)`, built once per distinct data. Raises InvalidCalendar."""
    return _calendar(_key(data))


@lru_cache(maxsize=64)
def _index(key: str, bucket: int) -> CalendarIndex:
    middle = _EPOCH + bucket * _BUCKET
    return CalendarIndex.build(_calendar(key), start=middle - _BEFORE, end=middle + _AFTER)


def index_around(data: Mapping[str, Any], at: datetime) -> CalendarIndex:
    """A memoised index of the calendar covering at least 370 days before and 400 days after `at`."""
    return _index(_key(data), (at - _EPOCH) // _BUCKET)
