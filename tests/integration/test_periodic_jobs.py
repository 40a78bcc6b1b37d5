"""Periodic jobs: `opsline migrate` starts every area's periodic chain (once, however often it runs); the reference seed
used by tests and the demo never enqueues a job."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from opsline.core.jobs import Job
from opsline.core.localtime import zone
from opsline.seed import schedule_periodic


def _kinds(factory) -> Counter:  # type: ignore[no-untyped-def]
    with factory() as s:
        return Counter(s.execute(select(Job.kind)).scalars())


def test_a_seeded_database_has_no_jobs_until_migrate_schedules_the_periodic_ones_once(factory, now):
    assert _kinds(factory) == Counter()
    tz = zone("Africa/Johannesburg")
    with factory.begin() as s:
        areas = schedule_periodic(s, now=now, tz=tz)
    assert {"b2b", "cancellations", "logistics", "sla"} <= set(areas)
    first = _kinds(factory)
    assert {"b2b.evaluate_month", "cancellations.escalate", "logistics.daily", "sla.scan"} <= set(first)
    assert all(n == 1 for n in first.values()), first
    with factory.begin() as s:  # a second `opsline migrate` a moment later adds nothing
        schedule_periodic(s, now=now, tz=tz)
    assert _kinds(factory) == first
