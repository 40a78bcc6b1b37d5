"""Desk home cards for debtors: proposals to approve, suspense (count, amount, oldest, ageing chart), unpaids today, refunds."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from opsline.areas import HomeCard
from opsline.core.money import Money
from opsline.payments import queries

DESKS = ("debtors_clerk", "debtors_manager")


def cards(session: Session, *, now: datetime, actor: Any, tz: ZoneInfo) -> list[HomeCard]:
    s = queries.desk_summary(session, now=now, tz=tz)
    cur = s["currency"]
    ageing = queries.suspense_ageing(session, now=now)
    oldest = s["oldest_days"]
    return [
        HomeCard(desks=DESKS, title="Payment proposals to approve", count=s["proposals"], href="/payments#proposals", permission="payments.approve",
                 hint=str(Money.from_minor(s["proposals_minor"], cur)), tone="warn" if s["proposals"] else "normal", order=10),
        HomeCard(desks=DESKS, title="Money in suspense", count=s["suspense"], href="/payments/suspense", permission="payments.view",
                 hint=f"{Money.from_minor(s['suspense_minor'], cur)}" + (f" · oldest {oldest} d" if oldest is not None else ""),
                 tone="danger" if (oldest or 0) > 7 else ("warn" if s["suspense"] else "normal"), chart=ageing["chart"] if s["suspense"] else None, order=11),
        HomeCard(desks=DESKS, title="Debit-order unpaids today", count=s["unpaids_today"], href="/payments#unpaids", permission="payments.view",
                 tone="warn" if s["unpaids_today"] else "normal", order=12),
        HomeCard(desks=("debtors_manager",), title="Refunds awaiting a second person", count=s["refunds"], href="/payments#refunds",
                 permission="payments.refund", tone="warn" if s["refunds"] else "normal", order=13),
    ]
