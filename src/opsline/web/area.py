"""The web app's own contribution to desk home pages: background work that needs a person (dead or retrying jobs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from opsline.areas import Area, HomeCard
from opsline.core.events import Actor
from opsline.core.jobs import Job, JobState


def _age(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours // 24} d {hours % 24} h" if hours >= 24 else f"{hours} h {minutes % 60} min"


def home(session: Session, *, now: datetime, actor: Actor, tz: Any) -> list[HomeCard]:
    """One card for the administrator: jobs that are dead or retrying, with the oldest one's age (one query)."""
    retrying = (Job.state == JobState.QUEUED.value) & (Job.attempts > 0)
    dead, retry, oldest = session.execute(
        select(
            func.count().filter(Job.state == JobState.DEAD.value),
            func.count().filter(retrying),
            func.min(Job.created_at).filter(or_(Job.state == JobState.DEAD.value, retrying)),
        )
    ).one()
    stuck = int(dead or 0) + int(retry or 0)
    hint = f"{dead} dead, {retry} retrying" + (f"; oldest {_age((now - oldest).total_seconds())}" if stuck and oldest else "")
    return [HomeCard(desks=("admin",), title="Background jobs stuck", count=stuck, href="/jobs", permission="jobs.view",
                     hint=hint if stuck else "nothing stuck", tone="danger" if dead else "warn" if retry else "normal", order=90)]


AREA = Area(name="web", order=1, home=home, home_desks=("admin",))
