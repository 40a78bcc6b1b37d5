"""Business calendars and SLA clock maths: fixed cases at DST, month-end, leap-day and holiday edges, plus properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsline.core.calendar import (
    BusinessCalendar,
    CalendarIndex,
    InvalidCalendar,
    OutsideCalendarRange,
    Shift,
    standard_week,
)

SAST = ZoneInfo("Africa/Johannesburg")
NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
H = timedelta(hours=1)
MORNING, AFTERNOON = Shift(time(8), time(12)), Shift(time(13), time(17))
WHOLE_DAY = Shift(time(0), time(0))


def za_split_shift_calendar(**overrides) -> BusinessCalendar:
    """Mon-Fri 08:00-12:00 and 13:00-17:00 in Johannesburg with ZA public holidays."""
    kwargs = dict(timezone="Africa/Johannesburg", week=standard_week(shifts=(MORNING, AFTERNOON)))
    return BusinessCalendar(**(kwargs | overrides))


def night_desk_calendar(timezone: str = "Africa/Johannesburg") -> BusinessCalendar:
    """22:00-02:00 Monday night to Saturday morning, as two shifts either side of midnight."""
    week = {day: [Shift(time(22), time(0))] for day in range(5)}
    for day in range(1, 6):
        week.setdefault(day, []).insert(0, Shift(time(0), time(2)))
    return BusinessCalendar(timezone=timezone, week=week, holiday_country=None)


def round_the_clock_calendar(timezone: str) -> BusinessCalendar:
    return BusinessCalendar(timezone=timezone, week={day: [WHOLE_DAY] for day in range(7)}, holiday_country=None)


def sunday_only_calendar(timezone: str, *shifts: Shift) -> BusinessCalendar:
    return BusinessCalendar(timezone=timezone, week={6: shifts}, holiday_country=None)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- split shifts, holidays, closures -------------------------------------------------------


def test_a_target_that_runs_out_at_lunch_is_due_at_twelve_not_at_the_reopening():
    calendar = za_split_shift_calendar()
    assert calendar.add(datetime(2026, 11, 23, 11, 0, tzinfo=SAST), H) == datetime(2026, 11, 23, 12, 0, tzinfo=SAST)


def test_the_lunch_gap_does_not_count_as_business_time():
    calendar = za_split_shift_calendar()
    monday = datetime(2026, 11, 23, tzinfo=SAST)
    assert calendar.add(monday.replace(hour=11, minute=30), H) == monday.replace(hour=13, minute=30)
    assert calendar.between(monday.replace(hour=11), monday.replace(hour=14)) == 2 * H
    assert not calendar.is_open(monday.replace(hour=12, minute=30))


def test_case_raised_friday_1655_before_freedom_day_is_due_on_tuesday_morning():
    calendar = za_split_shift_calendar()
    due_at = calendar.add(datetime(2026, 4, 24, 16, 55, tzinfo=SAST), H)
    assert due_at == datetime(2026, 4, 28, 8, 55, tzinfo=SAST)


def test_a_sunday_public_holiday_is_observed_on_the_monday():
    calendar = za_split_shift_calendar()
    # National Women's Day, Sunday 9 August 2026, is observed on Monday 10 August.
    assert not calendar.is_open(datetime(2026, 8, 10, 10, 0, tzinfo=SAST))
    assert calendar.add(datetime(2026, 8, 7, 16, 0, tzinfo=SAST), 2 * H) == datetime(2026, 8, 11, 9, 0, tzinfo=SAST)


def test_a_calendar_without_holiday_country_works_on_public_holidays():
    calendar = za_split_shift_calendar(holiday_country=None)
    assert calendar.is_open(datetime(2026, 4, 27, 10, 0, tzinfo=SAST))


def test_subdivision_holidays_apply_only_to_that_subdivision():
    week = standard_week(shifts=(Shift(time(9), time(17)),))
    scotland = BusinessCalendar(timezone="Europe/London", week=week, holiday_country="GB", holiday_subdivision="SCT")
    england = BusinessCalendar(timezone="Europe/London", week=week, holiday_country="GB", holiday_subdivision="ENG")
    st_andrews_day = datetime(2026, 11, 30, 10, 0, tzinfo=LONDON)
    assert not scotland.is_open(st_andrews_day)
    assert england.is_open(st_andrews_day)


def test_a_whole_day_closure_is_skipped_like_a_public_holiday():
    calendar = za_split_shift_calendar(closures=[date(2026, 12, 24)])
    # Christmas Eve closed, Christmas Friday, Day of Goodwill Saturday: next working day is Monday 28th.
    assert calendar.add(datetime(2026, 12, 23, 16, 0, tzinfo=SAST), 2 * H) == datetime(2026, 12, 28, 9, 0, tzinfo=SAST)


def test_a_closure_range_cuts_through_working_hours():
    closed = (datetime(2026, 12, 1, 10, 0, tzinfo=SAST), datetime(2026, 12, 1, 15, 0, tzinfo=SAST))
    calendar = za_split_shift_calendar(closures=[closed])
    tuesday = datetime(2026, 12, 1, tzinfo=SAST)
    assert calendar.between(tuesday.replace(hour=8), tuesday.replace(hour=17)) == 4 * H
    assert calendar.add(tuesday.replace(hour=9), 2 * H) == tuesday.replace(hour=16)
    assert calendar.next_open(tuesday.replace(hour=11)) == tuesday.replace(hour=15)


def test_overlapping_closure_ranges_given_in_other_timezones_combine():
    closures = [
        (utc(2026, 12, 1, 8, 0), utc(2026, 12, 1, 10, 0)),  # 10:00-12:00 SAST
        (datetime(2026, 12, 1, 11, 0, tzinfo=SAST), datetime(2026, 12, 1, 14, 0, tzinfo=SAST)),
    ]
    calendar = za_split_shift_calendar(closures=closures)
    tuesday = datetime(2026, 12, 1, tzinfo=SAST)
    assert calendar.intervals(tuesday, tuesday + 24 * H) == [
        (utc(2026, 12, 1, 6, 0), utc(2026, 12, 1, 8, 0)),
        (utc(2026, 12, 1, 12, 0), utc(2026, 12, 1, 15, 0)),
    ]


# -- zero durations, edges, timezones of results --------------------------------------------


def test_adding_nothing_gives_start_when_open_and_the_next_opening_when_closed():
    calendar = za_split_shift_calendar()
    monday = datetime(2026, 11, 23, tzinfo=SAST)
    assert calendar.add(monday.replace(hour=9), timedelta(0)) == monday.replace(hour=9)
    assert calendar.add(monday.replace(hour=12), timedelta(0)) == monday.replace(hour=13)
    assert calendar.next_open(monday.replace(hour=17)) == monday.replace(day=24, hour=8)
    assert calendar.next_open(monday.replace(hour=6)) == monday.replace(hour=8)


def test_shift_start_is_open_and_shift_end_is_not():
    calendar = za_split_shift_calendar()
    monday = datetime(2026, 11, 23, tzinfo=SAST)
    assert calendar.is_open(monday.replace(hour=8))
    assert calendar.is_open(monday.replace(hour=11, minute=59, second=59, microsecond=999999))
    assert not calendar.is_open(monday.replace(hour=12))
    assert not calendar.is_open(monday.replace(hour=7, minute=59, second=59))


def test_add_answers_in_the_calendar_timezone_whatever_the_start_timezone():
    calendar = za_split_shift_calendar()
    due_at = calendar.add(utc(2026, 11, 23, 7, 0), H)  # 09:00 SAST
    assert due_at.tzinfo == SAST
    assert due_at == datetime(2026, 11, 23, 10, 0, tzinfo=SAST)


def test_sub_second_starts_and_durations_are_kept_exactly():
    calendar = za_split_shift_calendar()
    start = datetime(2026, 11, 23, 11, 59, 59, 250_000, tzinfo=SAST)
    due_at = calendar.add(start, timedelta(seconds=1))
    assert due_at == datetime(2026, 11, 23, 13, 0, 0, 250_000, tzinfo=SAST)
    assert calendar.between(start, due_at) == timedelta(seconds=1)


def test_between_is_zero_when_end_is_not_after_start():
    calendar = za_split_shift_calendar()
    monday = datetime(2026, 11, 23, 10, tzinfo=SAST)
    assert calendar.between(monday, monday) == timedelta(0)
    assert calendar.between(monday, monday - 5 * H) == timedelta(0)


def test_a_forty_hour_target_spans_a_working_week():
    calendar = za_split_shift_calendar()
    assert calendar.add(datetime(2026, 11, 23, 8, tzinfo=SAST), 40 * H) == datetime(2026, 11, 27, 17, tzinfo=SAST)


# -- DST ------------------------------------------------------------------------------------


def test_a_round_the_clock_desk_in_new_york_works_23_hours_on_the_spring_forward_day():
    calendar = round_the_clock_calendar("America/New_York")
    day = datetime(2026, 3, 8, tzinfo=NEW_YORK)
    assert calendar.between(day, datetime(2026, 3, 9, tzinfo=NEW_YORK)) == 23 * H
    assert calendar.add(datetime(2026, 3, 8, 1, 30, tzinfo=NEW_YORK), H) == datetime(2026, 3, 8, 3, 30, tzinfo=NEW_YORK)


def test_a_round_the_clock_desk_in_new_york_works_25_hours_on_the_fall_back_day():
    calendar = round_the_clock_calendar("America/New_York")
    assert calendar.between(datetime(2026, 11, 1, tzinfo=NEW_YORK), datetime(2026, 11, 2, tzinfo=NEW_YORK)) == 25 * H
    # 00:30 EDT + 2h of real time is 01:30 EST, the second 01:30 of the night.
    due_at = calendar.add(datetime(2026, 11, 1, 0, 30, tzinfo=NEW_YORK), 2 * H)
    # Python never finds a fold=1 time equal to one in another zone (PEP 495), so compare in UTC.
    assert due_at.astimezone(UTC) == utc(2026, 11, 1, 6, 30)
    assert (due_at.hour, due_at.minute, due_at.fold) == (1, 30, 1)


def test_friday_evening_time_in_london_carries_over_the_spring_forward_weekend():
    calendar = BusinessCalendar(
        timezone="Europe/London", week=standard_week(shifts=(Shift(time(9), time(17)),)), holiday_country="GB"
    )
    due_at = calendar.add(datetime(2026, 3, 27, 16, 0, tzinfo=LONDON), 2 * H)  # Friday, GMT
    assert due_at == datetime(2026, 3, 30, 10, 0, tzinfo=LONDON)  # Monday, BST
    assert due_at.utcoffset() == H
    assert calendar.between(datetime(2026, 3, 27, 16, 0, tzinfo=LONDON), due_at) == 2 * H


def test_a_london_sunday_shift_is_an_hour_shorter_on_spring_forward_and_longer_on_fall_back():
    calendar = sunday_only_calendar("Europe/London", Shift(time(0), time(4)))
    spring, autumn = datetime(2026, 3, 29, tzinfo=LONDON), datetime(2026, 10, 25, tzinfo=LONDON)
    assert calendar.between(spring, spring + 24 * H) == 3 * H
    assert calendar.between(autumn, autumn + 26 * H) == 5 * H
    assert calendar.add(spring.replace(minute=30), H) == datetime(2026, 3, 29, 2, 30, tzinfo=LONDON)


def test_a_shift_bound_skipped_by_spring_forward_opens_when_the_clocks_jump():
    calendar = sunday_only_calendar("America/New_York", Shift(time(2, 30), time(4)))
    day = datetime(2026, 3, 8, tzinfo=NEW_YORK)
    assert calendar.intervals(day, day + 24 * H) == [(utc(2026, 3, 8, 7, 0), utc(2026, 3, 8, 8, 0))]


def test_a_shift_wholly_inside_the_spring_forward_gap_gives_no_working_time():
    calendar = sunday_only_calendar("America/New_York", Shift(time(2), time(2, 30)))
    day = datetime(2026, 3, 8, tzinfo=NEW_YORK)
    assert calendar.between(day, day + 24 * H) == timedelta(0)
    assert calendar.next_open(day) == datetime(2026, 3, 15, 2, tzinfo=NEW_YORK)


def test_an_ambiguous_shift_bound_on_fall_back_means_its_first_occurrence():
    calendar = sunday_only_calendar("Europe/London", Shift(time(1, 30), time(3)))
    day = datetime(2026, 10, 25, tzinfo=LONDON)
    assert calendar.intervals(day, day + 24 * H) == [(utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 3, 0))]
    assert calendar.between(day, day + 24 * H) == timedelta(hours=2, minutes=30)


# -- midnight, month-end, leap day ----------------------------------------------------------


def test_a_night_desk_split_across_midnight_runs_as_one_interval():
    calendar = night_desk_calendar()
    monday_night = datetime(2026, 11, 23, 22, tzinfo=SAST)
    assert calendar.intervals(monday_night - 2 * H, monday_night + 6 * H) == [
        (utc(2026, 11, 23, 20, 0), utc(2026, 11, 24, 0, 0))
    ]
    assert calendar.add(monday_night + H, 2 * H) == datetime(2026, 11, 24, 1, tzinfo=SAST)


def test_the_night_desk_carries_a_case_over_month_end():
    calendar = night_desk_calendar()
    assert calendar.add(datetime(2026, 3, 31, 23, 30, tzinfo=SAST), H) == datetime(2026, 4, 1, 0, 30, tzinfo=SAST)
    # Friday night's desk closes at 02:00 Saturday; the next shift is Monday 22:00.
    assert calendar.add(datetime(2026, 10, 31, 1, 30, tzinfo=SAST), H) == datetime(2026, 11, 2, 22, 30, tzinfo=SAST)


def test_29_february_2028_is_a_working_day():
    calendar = za_split_shift_calendar()
    assert calendar.add(datetime(2028, 2, 28, 16, tzinfo=SAST), 2 * H) == datetime(2028, 2, 29, 9, tzinfo=SAST)
    assert calendar.add(datetime(2028, 2, 29, 16, 30, tzinfo=SAST), H) == datetime(2028, 3, 1, 8, 30, tzinfo=SAST)
    assert calendar.between(datetime(2028, 2, 29, tzinfo=SAST), datetime(2028, 3, 1, tzinfo=SAST)) == 8 * H


def test_midnight_as_a_shift_end_means_the_end_of_the_day():
    assert Shift(time(22), time(0)).duration == 2 * H
    assert WHOLE_DAY.duration == 24 * H


# -- bad input ------------------------------------------------------------------------------


def test_overlapping_shifts_are_rejected():
    with pytest.raises(InvalidCalendar, match="overlapping"):
        BusinessCalendar(timezone="UTC", week={0: [Shift(time(8), time(12)), Shift(time(11), time(17))]})


def test_touching_shifts_are_allowed_and_join_up():
    calendar = BusinessCalendar(
        timezone="UTC", week={0: [Shift(time(12), time(17)), Shift(time(8), time(12))]}, holiday_country=None
    )
    monday = utc(2026, 11, 23)
    assert calendar.intervals(monday, monday + 24 * H) == [(monday + 8 * H, monday + 17 * H)]


@pytest.mark.parametrize(
    ("start", "end"), [(time(12), time(8)), (time(9), time(9)), (time(9, 0, 0, 500), time(10))]
)
def test_a_shift_that_ends_at_or_before_it_starts_or_is_not_whole_seconds_is_rejected(start, end):
    with pytest.raises(InvalidCalendar):
        Shift(start, end)


@pytest.mark.parametrize(
    "overrides",
    [
        {"timezone": "Africa/Atlantis"},
        {"timezone": "../etc/passwd"},
        {"holiday_country": "XX"},
        {"holiday_subdivision": "ZZ"},
        {"holiday_country": None, "holiday_subdivision": "WC"},
        {"week": {}},
        {"week": {7: [MORNING]}},
        {"week": {0: [(time(8), time(12))]}},
        {"closures": [(datetime(2026, 12, 1, 12, tzinfo=SAST), datetime(2026, 12, 1, 10, tzinfo=SAST))]},
        {"closures": [(datetime(2026, 12, 1, 10), datetime(2026, 12, 1, 12))]},
        {"closures": [datetime(2026, 12, 1, 10, tzinfo=SAST)]},
    ],
    ids=[
        "unknown-timezone",
        "malformed-timezone",
        "unknown-country",
        "unknown-subdivision",
        "subdivision-without-country",
        "empty-week",
        "weekday-7",
        "shift-not-a-Shift",
        "reversed-closure",
        "naive-closure",
        "single-datetime-closure",
    ],
)
def test_a_bad_calendar_definition_is_rejected(overrides):
    with pytest.raises(InvalidCalendar):
        za_split_shift_calendar(**overrides)


@pytest.mark.parametrize(
    "call",
    [
        lambda c, naive: c.add(naive, H),
        lambda c, naive: c.between(naive, naive + H),
        lambda c, naive: c.between(datetime(2026, 1, 1, tzinfo=SAST), naive),
        lambda c, naive: c.is_open(naive),
        lambda c, naive: c.next_open(naive),
        lambda c, naive: c.intervals(naive, naive + H),
        lambda c, naive: CalendarIndex.build(c, start=naive, end=naive + H),
    ],
    ids=["add", "between-start", "between-end", "is_open", "next_open", "intervals", "index"],
)
def test_a_naive_datetime_is_rejected(call):
    with pytest.raises(InvalidCalendar, match="naive"):
        call(za_split_shift_calendar(), datetime(2026, 11, 23, 9, 0))


def test_a_negative_duration_is_rejected():
    with pytest.raises(ValueError, match="negative"):
        za_split_shift_calendar().add(datetime(2026, 11, 23, 9, tzinfo=SAST), -H)


def test_a_calendar_closed_for_good_fails_instead_of_searching_for_ever():
    closed = (datetime(2026, 1, 1, tzinfo=SAST), datetime(2046, 1, 1, tzinfo=SAST))
    calendar = za_split_shift_calendar(closures=[closed], holiday_country=None)
    with pytest.raises(InvalidCalendar, match="no working time"):
        calendar.add(datetime(2026, 6, 1, tzinfo=SAST), H)


# -- plain data -----------------------------------------------------------------------------


def test_the_stored_shape_builds_the_calendar_it_describes():
    data = {
        "timezone": "Africa/Johannesburg",
        "week": {str(day): [["08:00", "12:00"], ["13:00", "17:00"]] for day in range(5)},
        "holiday_country": "ZA",
        "holiday_subdivision": None,
        "closures": ["2026-12-24", ["2026-12-31T12:00:00+02:00", "2026-12-31T17:00:00+02:00"]],
    }
    calendar = BusinessCalendar.from_data(data)
    assert calendar.to_data() == data
    assert not calendar.is_open(datetime(2026, 12, 24, 9, tzinfo=SAST))
    assert calendar.between(datetime(2026, 12, 31, tzinfo=SAST), datetime(2027, 1, 1, tzinfo=SAST)) == 4 * H


def test_a_calendar_round_trips_through_plain_data():
    calendar = BusinessCalendar(
        timezone="America/New_York",
        week={0: [Shift(time(22), time(0))], 1: [Shift(time(0), time(2)), Shift(time(9), time(17, 30, 15))]},
        holiday_country="US",
        holiday_subdivision="NY",
        closures=[date(2026, 12, 24), (utc(2026, 12, 31, 17), utc(2026, 12, 31, 22))],
    )
    assert BusinessCalendar.from_data(calendar.to_data()) == calendar
    assert calendar.to_data()["week"]["0"] == [["22:00", "24:00"]]


@pytest.mark.parametrize(
    "data",
    [
        {"week": {"0": [["08:00", "17:00"]]}},
        {"timezone": "UTC", "week": {"0": [["8am", "5pm"]]}},
        {"timezone": "UTC", "week": {"monday": [["08:00", "17:00"]]}},
        {"timezone": "UTC", "week": {"0": [["08:00", "17:00"]]}, "closures": ["24/12/2026"]},
        {"timezone": "UTC", "week": {"0": [["17:00", "08:00"]]}},
    ],
    ids=["no-timezone", "bad-time", "bad-weekday", "bad-closure", "reversed-shift"],
)
def test_malformed_stored_data_is_rejected(data):
    with pytest.raises(InvalidCalendar):
        BusinessCalendar.from_data(data)


# -- the vectorised index -------------------------------------------------------------------


def _seconds(value: datetime) -> int:
    return int(value.timestamp())


def test_the_index_computes_many_deadlines_at_once():
    calendar = za_split_shift_calendar()
    index = CalendarIndex.build(calendar, start=datetime(2026, 4, 1, tzinfo=SAST), end=datetime(2026, 6, 1, tzinfo=SAST))
    starts = np.array([_seconds(datetime(2026, 4, 24, 16, 55, tzinfo=SAST)), _seconds(datetime(2026, 4, 28, 11, 0, tzinfo=SAST))])
    due = index.add_seconds(starts, np.array([3600, 3600]))
    assert due.tolist() == [
        _seconds(datetime(2026, 4, 28, 8, 55, tzinfo=SAST)),
        _seconds(datetime(2026, 4, 28, 12, 0, tzinfo=SAST)),
    ]
    assert index.between_seconds(starts, due).tolist() == [3600, 3600]
    assert index.between_seconds(due, starts).tolist() == [0, 0]
    assert index.business_seconds_at(np.array([_seconds(index.start)])).tolist() == [0]


def test_the_index_refuses_answers_past_its_range():
    calendar = za_split_shift_calendar()
    index = CalendarIndex.build(calendar, start=datetime(2026, 4, 1, tzinfo=SAST), end=datetime(2026, 4, 3, tzinfo=SAST))
    inside = np.array([_seconds(datetime(2026, 4, 1, 9, tzinfo=SAST))])
    with pytest.raises(OutsideCalendarRange):
        index.add_seconds(inside, np.array([100 * 3600]))
    with pytest.raises(OutsideCalendarRange):
        index.add_seconds(inside - 86400, np.array([0]))
    with pytest.raises(OutsideCalendarRange):
        index.between_seconds(inside, inside + 10 * 86400)


def test_the_index_rejects_non_integer_instants_and_negative_durations():
    calendar = za_split_shift_calendar()
    index = CalendarIndex.build(calendar, start=datetime(2026, 4, 1, tzinfo=SAST), end=datetime(2026, 5, 1, tzinfo=SAST))
    start = _seconds(datetime(2026, 4, 1, 9, tzinfo=SAST))
    with pytest.raises(TypeError):
        index.add_seconds(np.array([start + 0.5]), np.array([60]))
    with pytest.raises(ValueError, match="negative"):
        index.add_seconds(np.array([start]), np.array([-60]))


def test_the_index_arrays_are_read_only_epoch_seconds():
    calendar = za_split_shift_calendar()
    index = CalendarIndex.build(calendar, start=datetime(2026, 4, 1, tzinfo=SAST), end=datetime(2026, 4, 2, tzinfo=SAST))
    assert index.opens.tolist() == [_seconds(datetime(2026, 4, 1, 8, tzinfo=SAST)), _seconds(datetime(2026, 4, 1, 13, tzinfo=SAST))]
    assert index.cumulative.tolist() == [4 * 3600, 8 * 3600]
    with pytest.raises(ValueError):
        index.opens[0] = 0


# -- properties -----------------------------------------------------------------------------

CALENDARS = {
    "za-split-saturday": BusinessCalendar(
        timezone="Africa/Johannesburg",
        week=standard_week(shifts=(MORNING, AFTERNOON)) | {5: (MORNING,)},
        closures=[date(2026, 12, 24), (datetime(2027, 6, 2, 10, tzinfo=SAST), datetime(2027, 6, 3, 9, tzinfo=SAST))],
    ),
    "new-york-night-desk": BusinessCalendar(
        timezone="America/New_York",
        week={
            **{day: [Shift(time(0), time(2)), Shift(time(22), time(0))] for day in range(5)},
            6: [Shift(time(1, 30), time(3)), Shift(time(22), time(0))],
        },
        holiday_country="US",
    ),
    "london-weekdays": BusinessCalendar(
        timezone="Europe/London", week=standard_week(shifts=(Shift(time(9), time(17, 30)),)), holiday_country="GB"
    ),
}
RANGE_START, RANGE_END = utc(2025, 12, 1), utc(2029, 3, 1)
INDEXES = {name: CalendarIndex.build(cal, start=RANGE_START, end=RANGE_END) for name, cal in CALENDARS.items()}

calendar_names = st.sampled_from(sorted(CALENDARS))
# Uniform instants rarely land near the interesting edges, so half are drawn within two days of one:
# DST changes in New York and London, month-ends, 29 February 2028, ZA and US public holidays.
EDGES = [
    utc(2026, 3, 8, 7), utc(2026, 11, 1, 6), utc(2027, 3, 14, 7), utc(2027, 11, 7, 6),
    utc(2026, 3, 29, 1), utc(2026, 10, 25, 1), utc(2027, 3, 28, 1), utc(2027, 10, 31, 1),
    utc(2026, 3, 31, 22), utc(2026, 12, 31, 22), utc(2028, 2, 29, 12), utc(2028, 3, 1),
    utc(2026, 4, 27, 6), utc(2026, 8, 10, 6), utc(2026, 12, 24, 6), utc(2026, 11, 26, 12),
]
instants = st.one_of(
    st.integers(_seconds(utc(2026, 1, 1)), _seconds(utc(2028, 12, 1))),
    st.builds(lambda edge, offset: _seconds(edge) + offset, st.sampled_from(EDGES), st.integers(-2 * 86400, 2 * 86400)),
).map(lambda s: datetime.fromtimestamp(s, UTC))
durations = st.one_of(
    st.integers(0, 120).map(lambda hours: timedelta(hours=hours)),
    st.integers(0, 120 * 3600).map(lambda seconds: timedelta(seconds=seconds)),
)
quick = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@quick
@given(calendar_names, instants, durations)
def test_between_a_start_and_its_deadline_is_the_duration_added(name, start, duration):
    calendar = CALENDARS[name]
    assert calendar.between(start, calendar.add(start, duration)) == duration


@quick
@given(calendar_names, instants, st.integers(0, 10**6), durations, durations)
def test_later_targets_are_never_due_earlier(name, start, micros, first, second):
    calendar = CALENDARS[name]
    start += timedelta(microseconds=micros)
    shorter, longer = sorted((first, second))
    # In UTC: same-zone comparison ignores fold, so the repeated fall-back hour would mislead.
    assert calendar.add(start, shorter).astimezone(UTC) <= calendar.add(start, longer).astimezone(UTC)
    assert calendar.between(start, calendar.add(start, longer)) == longer


@quick
@given(calendar_names, instants, durations, durations.filter(bool))
def test_adding_in_two_steps_lands_where_adding_at_once_does(name, start, first, second):
    calendar = CALENDARS[name]
    in_steps = calendar.add(calendar.add(start, first), second)
    assert in_steps.astimezone(UTC) == calendar.add(start, first + second).astimezone(UTC)


@quick
@given(calendar_names, instants, st.integers(0, 14 * 86400), st.integers(0, 14 * 86400))
def test_business_time_adds_up_over_consecutive_spans(name, start, first, second):
    calendar = CALENDARS[name]
    middle = start + timedelta(seconds=first)
    end = middle + timedelta(seconds=second)
    assert calendar.between(start, middle) + calendar.between(middle, end) == calendar.between(start, end)


@quick
@given(calendar_names, instants)
def test_is_open_exactly_when_the_next_second_is_business_time(name, at):
    calendar = CALENDARS[name]
    assert calendar.is_open(at) == (calendar.between(at, at + timedelta(seconds=1)) == timedelta(seconds=1))
    assert calendar.is_open(calendar.next_open(at))


@quick
@given(calendar_names, st.lists(st.tuples(instants, durations, instants), min_size=1, max_size=8))
def test_the_scalar_clock_agrees_exactly_with_the_vectorised_index(name, cases):
    calendar, index = CALENDARS[name], INDEXES[name]
    starts = np.array([_seconds(start) for start, _, _ in cases], dtype=np.int64)
    seconds = np.array([int(duration.total_seconds()) for _, duration, _ in cases], dtype=np.int64)
    ends = np.array([_seconds(end) for _, _, end in cases], dtype=np.int64)
    assert index.add_seconds(starts, seconds).tolist() == [
        _seconds(calendar.add(start, duration)) for start, duration, _ in cases
    ]
    assert index.between_seconds(starts, ends).tolist() == [
        int(calendar.between(start, end).total_seconds()) for start, _, end in cases
    ]


@quick
@given(calendar_names, instants, st.integers(1, 10 * 86400))
def test_intervals_sum_to_the_business_time_between(name, start, span):
    calendar = CALENDARS[name]
    end = start + timedelta(seconds=span)
    pieces = calendar.intervals(start, end)
    assert sum((hi - lo for lo, hi in pieces), timedelta(0)) == calendar.between(start, end)
    assert all(lo.tzinfo == UTC and start <= lo < hi <= end for lo, hi in pieces)
    assert all(earlier[1] < later[0] for earlier, later in zip(pieces, pieces[1:]))


# -- business days (the one function) and memoised calendars ------------------------------------------------------

from opsline.core.calendar import add_business_days, calendar_from_data, index_around, is_business_day  # noqa: E402


@pytest.mark.parametrize("start, days, expected", [
    (date(2026, 11, 23), 1, date(2026, 11, 24)),   # Monday -> Tuesday
    (date(2026, 11, 27), 1, date(2026, 11, 30)),   # Friday -> Monday
    (date(2026, 12, 15), 1, date(2026, 12, 17)),   # 16 December is the Day of Reconciliation
    (date(2026, 12, 24), 1, date(2026, 12, 28)),   # Christmas and the Day of Goodwill, then the weekend
    (date(2028, 2, 28), 1, date(2028, 2, 29)),     # 29 February counts like any other weekday
    (date(2026, 1, 31), 0, date(2026, 2, 2)),      # a Saturday month end rolls forward with days=0
    (date(2026, 11, 23), 0, date(2026, 11, 23)),
    (date(2026, 11, 23), 20, date(2026, 12, 22)),  # CPA s14 notice: 20 business days, 16 December skipped
])
def test_business_days_skip_weekends_and_public_holidays(start, days, expected):
    assert add_business_days(start, days, holiday_country="ZA") == expected


def test_business_days_without_a_holiday_country_skip_only_weekends():
    assert add_business_days(date(2026, 12, 15), 1, holiday_country=None) == date(2026, 12, 16)
    assert not is_business_day(date(2026, 12, 16), holiday_country="ZA")


def test_business_days_refuse_bad_input():
    with pytest.raises(ValueError, match="negative"):
        add_business_days(date(2026, 11, 23), -1, holiday_country="ZA")
    with pytest.raises(InvalidCalendar, match="unknown holiday country"):
        add_business_days(date(2026, 11, 23), 1, holiday_country="XX")
    with pytest.raises(InvalidCalendar, match="without business days"):
        add_business_days(date(2026, 11, 23), 1, holiday_country=None, weekend=range(7))


def test_a_memoised_calendar_and_index_are_built_once_per_definition_and_change_with_it():
    data = {"timezone": "Africa/Johannesburg", "holiday_country": "ZA", "week": {str(d): [["08:00", "17:00"]] for d in range(5)}, "closures": []}
    at = datetime(2026, 11, 23, 7, tzinfo=UTC)
    assert calendar_from_data(data) is calendar_from_data(dict(data))
    idx = index_around(data, at)
    assert idx is index_around(data, at + timedelta(hours=1))
    assert idx.start <= at - timedelta(days=370) and idx.end >= at + timedelta(days=400)
    edited = data | {"closures": ["2026-11-24"]}
    assert calendar_from_data(edited) is not calendar_from_data(data)
    assert calendar_from_data(edited).between(at, at + timedelta(days=2)) == timedelta(hours=9)
