"""Customer SLA compliance for the management dashboard: clocks that stopped in the period, met when never breached."""

from datetime import timedelta

from opsline.sla.models import SlaClock
from opsline.sla.service import compliance


def _clock(case_id: int, metric: str, *, stopped, breached=None, start=None):  # type: ignore[no-untyped-def]
    start = start or stopped - timedelta(hours=5)
    return SlaClock(case_id=case_id, metric=metric, clock_key="", started_at=start, due_at=start + timedelta(hours=4), stopped_at=stopped,
                    breached_at=breached, elapsed_seconds=3600, target_seconds=14400,
                    state="breached" if breached else ("met" if stopped else "running"), computed_at=stopped or start)


def test_compliance_counts_clocks_stopped_in_the_period_per_metric_and_overall(session, now) -> None:
    since, until = now - timedelta(days=10), now
    session.add_all([
        _clock(1, "resolution", stopped=now - timedelta(days=1)),
        _clock(2, "resolution", stopped=now - timedelta(days=2), breached=now - timedelta(days=3)),
        _clock(3, "resolution", stopped=now - timedelta(days=3)),
        _clock(1, "first_response", stopped=now - timedelta(days=1)),
        _clock(4, "resolution", stopped=now - timedelta(days=20)),  # stopped before the period
        _clock(5, "resolution", stopped=None, start=now - timedelta(days=2)),  # still running
        _clock(6, "team", stopped=now - timedelta(days=1), breached=now - timedelta(days=2)),  # internal clock: not the customer's promise
    ])
    session.flush()
    c = compliance(session, since=since, until=until)
    assert (c["stopped"], c["met"], c["met_pct"]) == (4, 3, 75.0)
    by = {m["metric"]: m for m in c["by_metric"]}
    assert (by["resolution"]["stopped"], by["resolution"]["met"], by["resolution"]["met_pct"]) == (3, 2, 66.7)
    assert (by["first_response"]["met_pct"], by["next_update"]["met_pct"], by["next_update"]["stopped"]) == (100.0, None, 0)


def test_compliance_with_nothing_stopped_has_no_percentage(session, now) -> None:
    assert compliance(session, since=now - timedelta(days=1), until=now) == {
        "stopped": 0, "met": 0, "met_pct": None,
        "by_metric": [{"metric": m, "label": compliance(session, since=now, until=now)["by_metric"][i]["label"], "stopped": 0, "met": 0, "met_pct": None}
                      for i, m in enumerate(("first_response", "next_update", "resolution"))]}
