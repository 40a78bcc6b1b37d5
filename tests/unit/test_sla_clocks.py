"""SLA clocks replayed from fixed case timelines on the real business calendars (no database)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from opsline.core.calendar import BusinessCalendar, CalendarIndex
from opsline.sla.clocks import Event, PolicyTargets, compute_clocks, epoch
from opsline.sla.policies import CALENDARS

SAST = ZoneInfo("Africa/Johannesburg")
SUPPORT = BusinessCalendar.from_data(CALENDARS[0][2])
H = 3600


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=SAST)


def policy(**kw: object) -> PolicyTargets:
    base = dict(policy_id=1, first_response_seconds=4 * H, next_update_seconds=8 * H, resolution_seconds=24 * H, team_seconds=16 * H, third_party_seconds_by_partner={"openserve": 16 * H})
    base.update(kw)
    return PolicyTargets(**base)  # type: ignore[arg-type]


def by_metric(clocks, metric, key=None):  # type: ignore[no-untyped-def]
    found = [c for c in clocks if c.metric == metric and (key is None or c.key == key)]
    assert found, f"no {metric} clock"
    return found[0] if len(found) == 1 or key is not None else found


FRIDAY = at(2026, 4, 24, 16, 55)


def test_case_raised_friday_before_freedom_day_is_due_thursday_not_wednesday() -> None:
    clocks = compute_clocks([Event(FRIDAY, "opened")], policy(), SUPPORT, at(2026, 4, 24, 17, 30), initial_queue="1")
    res = by_metric(clocks, "resolution")
    # 5 min Friday + 4 h Saturday morning; Monday 27 April is Freedom Day; 8 h Tuesday and Wednesday; 3 h 55 Thursday.
    assert res.due_at.astimezone(SAST) == at(2026, 4, 30, 11, 55)
    fr = by_metric(clocks, "first_response")
    assert fr.due_at.astimezone(SAST) == at(2026, 4, 25, 11, 55)
    assert res.elapsed_seconds == 5 * 60 and res.state == "running"


def test_putting_the_case_on_hold_for_the_fno_stops_our_clock_and_starts_theirs() -> None:
    events = [
        Event(FRIDAY, "opened"),
        Event(at(2026, 4, 28, 9, 0), "first_response"),
        Event(at(2026, 4, 28, 10, 0), "state", "inProgress", "held", {"partner_code": "openserve"}),
    ]
    now = at(2026, 4, 28, 15, 0)
    clocks = compute_clocks(events, policy(), SUPPORT, now, initial_queue="1")
    res = by_metric(clocks, "resolution")
    # Fri 5 min + Sat 4 h + Tue 08:00-10:00 = 6 h 05, then paused.
    assert res.elapsed_seconds == 6 * H + 5 * 60
    assert res.paused and res.state == "paused"
    tp = by_metric(clocks, "third_party")
    assert tp.partner == "openserve" and tp.state == "running"
    assert tp.elapsed_seconds == 4 * H  # 10-12 and 13-15 on the support calendar
    assert tp.started_at == at(2026, 4, 28, 10, 0)


def test_handing_to_another_team_attributes_business_time_to_each_team() -> None:
    events = [
        Event(at(2026, 11, 23, 9, 0), "opened"),
        Event(at(2026, 11, 23, 11, 0), "queue", "1", "2"),
        Event(at(2026, 11, 24, 9, 0), "queue", "2", "1"),
    ]
    now = at(2026, 11, 24, 10, 0)
    clocks = compute_clocks(events, policy(), SUPPORT, now, initial_queue="1", queue_names={"1": "Billing", "2": "Technical"})
    teams = {c.team: c for c in clocks if c.metric == "team"}
    assert set(teams) == {"Billing", "Technical"}
    assert teams["Billing"].elapsed_seconds == 3 * H  # 09-11 Monday, 09-10 Tuesday
    assert teams["Technical"].elapsed_seconds == 6 * H  # 11-12, 13-17 Monday and 08-09 Tuesday
    assert teams["Technical"].state == "met" and teams["Billing"].state == "running"
    assert sum(t.elapsed_seconds for t in teams.values()) == by_metric(clocks, "resolution").elapsed_seconds


def test_pending_on_the_customer_pauses_resolution_but_not_first_response() -> None:
    events = [Event(at(2026, 11, 23, 9, 0), "opened"), Event(at(2026, 11, 23, 10, 0), "state", "acknowledged", "pending")]
    clocks = compute_clocks(events, policy(), SUPPORT, at(2026, 11, 23, 15, 0), initial_queue="1")
    assert by_metric(clocks, "resolution").elapsed_seconds == H
    assert by_metric(clocks, "resolution").paused
    fr = by_metric(clocks, "first_response")
    assert fr.elapsed_seconds == 5 * H and fr.state == "breached"  # 4 h target ran out at 14:00
    assert fr.breached_at == at(2026, 11, 23, 14, 0)


def test_reopening_resumes_resolution_counting_time_already_spent() -> None:
    events = [
        Event(at(2026, 11, 23, 9, 0), "opened"),
        Event(at(2026, 11, 23, 9, 30), "first_response"),
        Event(at(2026, 11, 23, 11, 0), "state", "inProgress", "resolved"),
        Event(at(2026, 11, 24, 9, 0), "reopened", "resolved", "inProgress"),
    ]
    clocks = compute_clocks(events, policy(), SUPPORT, at(2026, 11, 24, 10, 0), initial_queue="1")
    res = by_metric(clocks, "resolution")
    assert res.elapsed_seconds == 3 * H and res.state == "running"
    assert res.due_at == SUPPORT.add(at(2026, 11, 24, 10, 0), timedelta(hours=21))


def test_resolved_case_stops_clocks_as_met() -> None:
    events = [Event(at(2026, 11, 23, 9, 0), "opened"), Event(at(2026, 11, 23, 9, 20), "first_response"), Event(at(2026, 11, 23, 11, 0), "state", "inProgress", "resolved")]
    clocks = compute_clocks(events, policy(), SUPPORT, at(2026, 11, 30, 10, 0), initial_queue="1")
    assert {c.metric: c.state for c in clocks if c.metric != "next_update"} == {"first_response": "met", "resolution": "met", "team": "met"}
    assert by_metric(clocks, "first_response").elapsed_seconds == 20 * 60


def test_customer_visible_note_restarts_next_update_but_internal_note_does_not() -> None:
    events = [
        Event(at(2026, 11, 23, 9, 0), "opened"),
        Event(at(2026, 11, 23, 9, 10), "first_response"),
        Event(at(2026, 11, 23, 10, 0), "note", data={"visibility": "internal"}),
        Event(at(2026, 11, 23, 11, 0), "note", data={"visibility": "customer"}),
    ]
    clocks = compute_clocks(events, policy(), SUPPORT, at(2026, 11, 23, 14, 0), initial_queue="1")
    windows = [c for c in clocks if c.metric == "next_update"]
    assert [w.key for w in windows] == ["w1", "w2"]
    assert windows[-1].started_at == at(2026, 11, 23, 11, 0)
    assert windows[-1].elapsed_seconds == 2 * H


def test_dst_timezone_calendar_measures_real_elapsed_time() -> None:
    london = BusinessCalendar.from_data({"timezone": "Europe/London", "holiday_country": None, "week": {str(d): [["00:00", "24:00"]] for d in range(7)}, "closures": []})
    lon = ZoneInfo("Europe/London")
    # Clocks go forward at 01:00 on Sunday 29 March 2026: that local day has 23 hours.
    opened = datetime(2026, 3, 28, 12, 0, tzinfo=lon)
    clocks = compute_clocks([Event(opened, "opened")], policy(resolution_seconds=24 * H), london, datetime(2026, 3, 29, 12, 0, tzinfo=lon), initial_queue="1")
    res = by_metric(clocks, "resolution")
    assert res.elapsed_seconds == 23 * H
    assert res.due_at.astimezone(lon) == datetime(2026, 3, 29, 13, 0, tzinfo=lon)


def test_dst_free_johannesburg_247_day_is_24_hours() -> None:
    cal = BusinessCalendar.from_data(CALENDARS[1][2])
    clocks = compute_clocks([Event(at(2026, 3, 28, 12, 0), "opened")], policy(resolution_seconds=48 * H), cal, at(2026, 3, 29, 12, 0), initial_queue="1")
    assert by_metric(clocks, "resolution").elapsed_seconds == 24 * H
    assert by_metric(clocks, "resolution").due_at == at(2026, 3, 30, 12, 0)


def test_vectorised_index_and_scalar_calendar_give_identical_clocks() -> None:
    events = [
        Event(FRIDAY, "opened"),
        Event(at(2026, 4, 28, 9, 0), "first_response"),
        Event(at(2026, 4, 28, 10, 0), "queue", "1", "2"),
        Event(at(2026, 4, 29, 10, 0), "state", "inProgress", "held", {"partner_code": "openserve"}),
        Event(at(2026, 4, 30, 10, 0), "state", "held", "inProgress"),
    ]
    now = at(2026, 5, 4, 12, 0)
    scalar = compute_clocks(events, policy(), SUPPORT, now, initial_queue="1")
    index = CalendarIndex.build(SUPPORT, start=at(2026, 4, 20, 0, 0), end=at(2026, 5, 10, 0, 0))
    vector = compute_clocks(events, policy(), index, now, fallback_calendar=SUPPORT, initial_queue="1")
    assert scalar == vector


_kinds = st.sampled_from(["queue", "pending", "held", "resume", "resolve", "reopen", "note"])


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(_kinds, st.integers(min_value=1, max_value=40 * 3600), st.sampled_from(["1", "2", "3"])), max_size=12))
def test_total_team_time_equals_elapsed_unpaused_business_time(steps: list[tuple[str, int, str]]) -> None:
    t = at(2026, 11, 20, 10, 0)
    events = [Event(t, "opened")]
    state, queue = "acknowledged", "1"
    for kind, gap, q in steps:
        t = t + timedelta(seconds=gap)
        if kind == "queue" and q != queue:
            events.append(Event(t, "queue", queue, q))
            queue = q
        elif kind in ("pending", "held", "resume", "resolve") and state not in ("resolved",):
            new = {"pending": "pending", "held": "held", "resume": "inProgress", "resolve": "resolved"}[kind]
            if new != state:
                events.append(Event(t, "state", state, new, {"partner_code": "openserve"}))
                state = new
        elif kind == "reopen" and state == "resolved":
            events.append(Event(t, "reopened", "resolved", "inProgress"))
            state = "inProgress"
        elif kind == "note":
            events.append(Event(t, "note"))
    now = t + timedelta(hours=3)
    clocks = compute_clocks(events, policy(), SUPPORT, now, initial_queue="1")
    team_total = sum(c.elapsed_seconds for c in clocks if c.metric == "team")
    res = by_metric(clocks, "resolution")
    assert team_total == res.elapsed_seconds
    assert res.elapsed_seconds + res.paused_seconds == SUPPORT.between(res.started_at, res.stopped_at or now) // timedelta(seconds=1)
    assert all(c.elapsed_seconds >= 0 and epoch(c.due_at) >= epoch(c.started_at) for c in clocks)
