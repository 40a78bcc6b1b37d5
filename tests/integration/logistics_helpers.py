"""Shared helpers for the logistics tests: an account whose fibre line has a loaned router (and the FNO's ONT)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from opsline.catalog.models import ProductOffering
from opsline.core.localtime import zone
from opsline.inventory import service as inventory
from opsline.inventory.models import Equipment

from partners_helpers import line

TZ = zone("Africa/Johannesburg")


def router_offering(session) -> ProductOffering:  # type: ignore[no-untyped-def]
    return session.execute(select(ProductOffering).where(ProductOffering.code == "EQ-ROUTER-AX1800")).scalar_one()


def loaned_router(session, now, actor, *, partner: str = "openserve", awaiting: bool = True):  # type: ignore[no-untyped-def]
    """(account_id, product_id, router) with the router installed, or awaiting return (the line ended)."""
    account_id, _site, product_id = line(session, now, actor, partner=partner)
    r = inventory.assign_equipment(session, account_id=account_id, product_id=product_id, equipment_offering=router_offering(session),
                                   owner="isp_loaned", now=now, actor=actor, install=True)
    if awaiting:
        inventory.transition_equipment(session, equipment=r, action="await_return", now=now, actor=actor, reason="line cancelled")
    session.flush()
    return account_id, product_id, r


def slot_at(day: datetime, hour: int = 8) -> datetime:
    """`hour` o'clock local on the date of `day` (a Courier Guy window starts at 08:00 and 12:00 on weekdays)."""
    d = day.astimezone(TZ).date()
    return datetime(d.year, d.month, d.day, hour, tzinfo=TZ)


def next_weekday_slot(now: datetime, days: int = 1, hour: int = 8) -> datetime:
    return slot_at(now + timedelta(days=days), hour)


def equipment_state(session, equipment_id: int) -> str:  # type: ignore[no-untyped-def]
    session.expire_all()
    return session.get(Equipment, equipment_id).state
