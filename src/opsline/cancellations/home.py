"""Desk home cards for the cancellations coordinator: open journeys, steps overdue, at risk and due today, and
deactivations waiting at the FNO (with how many are late), and the breach prevention actions open (how many overdue)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from opsline.areas import HomeCard
from opsline.cancellations import prevention, queries
from opsline.core.localtime import local_date

DESKS = ("cancellations_coordinator",)


def cards(session: Session, *, now: datetime, actor: Any, tz: ZoneInfo) -> list[HomeCard]:
    c = queries.counts(session, now=now, tz=tz)
    acts = prevention.action_counts(session, today=local_date(now, tz))
    oldest = c["oldest"]
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=now.tzinfo)
    return [
        HomeCard(desks=DESKS, title="Open cancellation journeys", count=c["open"], href="/cancellations", permission="cancellations.view",
                 hint=f"oldest {(now - oldest).days} d" if oldest else "none open", order=10),
        HomeCard(desks=DESKS, title="Journey steps overdue", count=c["overdue"], href="/cancellations?breaching=1", permission="cancellations.view",
                 hint=f"{c['at_risk']} at risk", tone="danger" if c["overdue"] else ("warn" if c["at_risk"] else "normal"), order=11),
        HomeCard(desks=DESKS, title="Steps due today", count=c["due_today"], href="/cancellations#day-plan", permission="cancellations.view",
                 hint="your day plan", tone="warn" if c["due_today"] else "normal", order=12),
        HomeCard(desks=DESKS, title="Deactivations waiting for the FNO", count=c["at_fno"], href="/cancellations?step=fno_deactivation",
                 permission="cancellations.view", hint=f"{c['fno_late']} past the FNO's SLA", tone="danger" if c["fno_late"] else "normal", order=13),
        HomeCard(desks=DESKS, title="Breach prevention actions open", count=acts["open"], href="/cancellations/prevention", permission="cancellations.view",
                 hint=f"{acts['overdue']} overdue" if acts["overdue"] else "none overdue", tone="danger" if acts["overdue"] else "normal", order=14),
    ]
