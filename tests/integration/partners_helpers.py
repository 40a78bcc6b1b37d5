"""Shared helpers for the partners tests: a customer with a covered site, a wholesale line, a worker with a movable clock."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from opsline.catalog.models import ProductOffering
from opsline.core.localtime import zone
from opsline.core.jobs import Worker
from opsline.customers import service as customers
from opsline.customers.schemas import AccountIn, SiteIn
from opsline.inventory.models import Product
from opsline.jobs_registry import build_registry
from opsline.partners.models import Partner


TZ = zone("Africa/Johannesburg")


class MovingClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **kw: float) -> datetime:
        self.at = self.at + timedelta(**kw)
        return self.at


def worker(factory, clock: MovingClock, name: str = "w1") -> Worker:  # type: ignore[no-untyped-def]
    return Worker(factory, build_registry(), worker_id=name, clock=clock)


def customer(session, now, actor, *, coverage=("openserve", "vumatel")):  # type: ignore[no-untyped-def]
    acc = customers.create_account(session, data=AccountIn(name="Lerato Dlamini", email="lerato@example.co.za", phone="082 555 0101",
                                                           sites=[SiteIn(line1="7 Jan Smuts Avenue", suburb="Rosebank", city="Johannesburg", postal_code="2196",
                                                                         latitude=-26.146, longitude=28.041, fno_coverage=list(coverage))]), now=now, actor=actor)
    session.flush()
    site = customers.account_360(session, account_id=acc.id)["sites"][0]
    return acc.id, site["id"]


def offering_id(session, partner: str = "openserve") -> int:  # type: ignore[no-untyped-def]
    return session.execute(select(ProductOffering.id).where(ProductOffering.partner_code == partner, ProductOffering.kind == "fibre").order_by(ProductOffering.id).limit(1)).scalar_one()


def line(session, now, actor, *, partner: str = "openserve", coverage=("openserve", "vumatel"), state: str = "active"):  # type: ignore[no-untyped-def]
    """An account, a site and an installed wholesale product row (created directly, not through an order)."""
    account_id, site_id = customer(session, now, actor, coverage=coverage)
    p = Product(account_id=account_id, offering_id=offering_id(session, partner), site_id=site_id, state=state, start_date=now.date() - timedelta(days=90),
                partner_code=partner, partner_line_ref=f"{partner[:3].upper()}-LINE-{account_id}", created_at=now, updated_at=now)
    session.add(p)
    session.flush()
    return account_id, site_id, p.id


def tune(session, code: str = "openserve", **values) -> None:  # type: ignore[no-untyped-def]
    defaults = dict(simulator_reject_percent=0, simulator_progress_seconds=10, simulator_complete_seconds=30, simulator_outage=False)
    session.execute(update(Partner).where(Partner.code == code).values(**(defaults | values)))
