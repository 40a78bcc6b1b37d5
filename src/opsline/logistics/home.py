"""Desk home cards for the cancellations coordinator: today's collections, failed attempts to rebook, devices waiting
for receipt, devices out with no booking, fee warnings; and for the coordinator and billing: FNO deactivations in
jeopardy and the fee exposure they cause."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from opsline.areas import HomeCard
from opsline.core.localtime import local_date
from opsline.logistics import queries
from opsline.partners import exposure

COORD = ("cancellations_coordinator",)


def cards(session: Session, *, now: datetime, actor: Any, tz: ZoneInfo) -> list[HomeCard]:
    h = queries.home_counts(session, now=now, tz=tz)
    today = local_date(now, tz)
    j = exposure.jeopardy(session, today=today, limit=1)
    e = exposure.exposure(session, today=today, open_only=True, limit=1)
    return [
        HomeCard(desks=COORD, title="Collections today", count=h["today"], href=f"/logistics/collections?on={today.isoformat()}", permission="logistics.view",
                 hint="booked or confirmed for today's runs", order=50),
        HomeCard(desks=COORD, title="Failed collections to rebook", count=h["failed"], href="/logistics/collections?state=failed", permission="logistics.view",
                 hint="not home, refused, wrong address or refused by the courier", tone="warn" if h["failed"] else "normal", order=51),
        HomeCard(desks=COORD, title="Collected, awaiting warehouse receipt", count=h["receipt"], href="/logistics/collections?state=collected",
                 permission="logistics.view", order=52),
        HomeCard(desks=COORD, title="Devices out with no collection booked", count=h["no_booking"], href="/logistics/checks?key=awaiting_no_collection",
                 permission="logistics.view", hint=f"{h['warned']} customers warned of the unreturned fee", tone="warn" if h["no_booking"] else "normal", order=53),
        HomeCard(desks=COORD + ("billing_analyst",), title="FNO deactivations in jeopardy", count=j["late"], href="/partners/exposure#jeopardy",
                 permission="partners.view", hint=f"{j['at_risk']} due today", tone="danger" if j["late"] else "normal", order=54),
        HomeCard(desks=COORD + ("billing_analyst",), title="Fee exposure growing at FNOs", count=str(e["total"]), href="/partners/exposure",
                 permission="partners.view", hint=f"{e['total_items']} lines still active after their effective date", tone="warn" if e["total_items"] else "normal",
                 order=55),
    ]
