"""Reference data every installation starts with (idempotent). Operators edit it afterwards in /admin."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from sqlalchemy.orm import Session

from opsline.customers.models import Segment, ValueTier

SEGMENTS = [("consumer", "Consumer"), ("soho", "Small office / home office"), ("sme", "SME"), ("enterprise", "Enterprise"), ("public", "Public sector"), ("wholesale", "Wholesale")]
VALUE_TIERS = [("vip", "VIP", 10), ("influencer", "Influencer", 20), ("high_value", "High value", 30), ("standard", "Standard", 100)]


def _merge_all(session: Session, rows: list) -> None:
    for row in rows:
        session.merge(row)


def seed_customers(session: Session, *, now: datetime) -> None:
    _merge_all(session, [Segment(code=c, name=n) for c, n in SEGMENTS])
    _merge_all(session, [ValueTier(code=c, name=n, rank=r) for c, n, r in VALUE_TIERS])


def seeders() -> list[Callable[..., None]]:
    """Reference-data seeders of every area, in area order."""
    from opsline.areas import load_areas

    return [a.seed for a in load_areas() if a.seed is not None]


def schedule_periodic(session: Session, *, now: datetime, tz: Any) -> list[str]:
    """Start every area's periodic jobs (bill-run checks, SLA scans, escalations, daily and monthly runs) and the
    database's statistics refresh; safe to call on every `opsline migrate`. Returns the areas that scheduled something."""
    from opsline.areas import load_areas
    from opsline.db.maintenance import schedule_optimize

    schedule_optimize(session, now=now)
    done = []
    for area in load_areas():
        if area.schedules is not None:
            area.schedules(session, now=now, tz=tz)
            done.append(area.name)
    session.flush()
    return done


def seed_reference(session: Session, *, now: datetime) -> None:
    for fn in seeders():
        fn(session, now=now)
        session.flush()
