"""The db_maintenance area: the partition job and its daily schedule (no pages, no permissions)."""

from __future__ import annotations

from opsline.areas import Area


def _register_jobs(registry) -> None:  # type: ignore[no-untyped-def]
    from opsline.db_maintenance import partitions

    partitions.register(registry)


def _schedules(session, *, now, tz) -> None:  # type: ignore[no-untyped-def]
    from opsline.db_maintenance.partitions import ensure_partitions, schedule_partitions

    ensure_partitions(session, now=now)  # a fresh install has this month's and the next months' partitions at once
    schedule_partitions(session, now=now)


AREA = Area(name="db_maintenance", order=5, register_jobs=_register_jobs, schedules=_schedules)
