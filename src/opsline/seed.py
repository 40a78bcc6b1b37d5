"""Reference data every installation starts with (idempotent). Operators edit it afterwards in /admin."""

from __future__ import annotations

from datetime import datetime
from typing import Callable

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


def seed_reference(session: Session, *, now: datetime) -> None:
    for fn in seeders():
        fn(session, now=now)
        session.flush()
