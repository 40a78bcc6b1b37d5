"""Quiet hours in operator local time: windows that wrap midnight and windows within one day."""

from datetime import datetime, timedelta, timezone

from hypothesis import given, strategies as st

from opsline.core.localtime import zone
from opsline.notifications.contacts import quiet_until

TZ = zone("Africa/Johannesburg")  # UTC+2, no DST


def _utc(h: int, m: int = 0, day: int = 23) -> datetime:
    return datetime(2026, 11, day, h, m, tzinfo=timezone.utc)


def test_an_evening_message_waits_until_eight_the_next_morning():
    assert quiet_until(_utc(19, 30), quiet_from="20:00", quiet_to="08:00", tz=TZ) == _utc(6, 0, day=24)


def test_an_early_morning_message_waits_until_eight_the_same_morning():
    assert quiet_until(_utc(3, 0), quiet_from="20:00", quiet_to="08:00", tz=TZ) == _utc(6, 0)


def test_the_window_is_half_open_eight_sharp_is_allowed_and_twenty_sharp_is_quiet():
    assert quiet_until(_utc(6, 0), quiet_from="20:00", quiet_to="08:00", tz=TZ) is None
    assert quiet_until(_utc(18, 0), quiet_from="20:00", quiet_to="08:00", tz=TZ) == _utc(6, 0, day=24)


def test_a_window_within_one_day_ends_the_same_day():
    assert quiet_until(_utc(11, 0), quiet_from="12:00", quiet_to="14:00", tz=TZ) == _utc(12, 0)  # 13:00 local
    assert quiet_until(_utc(13, 0), quiet_from="12:00", quiet_to="14:00", tz=TZ) is None  # 15:00 local


def test_the_end_of_month_rolls_into_the_next_month():
    assert quiet_until(datetime(2026, 11, 30, 20, 0, tzinfo=timezone.utc), quiet_from="20:00", quiet_to="08:00", tz=TZ) == \
        datetime(2026, 12, 1, 6, 0, tzinfo=timezone.utc)


@given(minutes=st.integers(min_value=0, max_value=7 * 24 * 60))
def test_the_next_allowed_time_is_never_earlier_and_never_quiet(minutes: int):
    at = _utc(0) + timedelta(minutes=minutes)
    end = quiet_until(at, quiet_from="20:00", quiet_to="08:00", tz=TZ)
    if end is None:
        local = at.astimezone(TZ).time()
        assert local.hour >= 8 and local.hour < 20
    else:
        assert at < end <= at + timedelta(hours=12)
        assert quiet_until(end, quiet_from="20:00", quiet_to="08:00", tz=TZ) is None
