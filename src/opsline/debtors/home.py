"""Desk home cards for the debtors clerk and manager: today's work (calls, promises due, broken promises, approvals
for a manager, suspended accounts in arrears, with a chart), decisions for a person, accounts due for their next step,
holds ending this week, failed actions and the last dunning run."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from opsline.areas import HomeCard
from opsline.core.localtime import local_date
from opsline.core.money import Money
from opsline.debtors import arrangements, desk
from opsline.users.roles import allowed

DESKS = ("debtors_clerk", "debtors_manager")


def cards(session: Session, *, now: datetime, actor: Any, tz: ZoneInfo) -> list[HomeCard]:
    today = local_date(now, tz)
    s = desk.summary(session, today=today)
    last = s["last_run"]
    behind = last is None or (today - last["run_date"]).days > 1
    out = [
        HomeCard(desks=DESKS, title="Dunning steps waiting for a person", count=s["proposals"], href="/debtors#proposals", permission="debtors.view",
                 hint=str(Money.from_minor(s["proposals_minor"], s["currency"])) + (f" · up to {s['proposals_oldest_days']} d overdue" if s["proposals"] else ""),
                 tone="warn" if s["proposals"] else "normal", order=20),
        HomeCard(desks=DESKS, title="Accounts due for their next dunning step", count=s["due_for_step"], href="/debtors/run", permission="debtors.view",
                 hint="notice period over; the next run takes them", order=21),
        HomeCard(desks=DESKS, title="Dunning holds ending this week", count=s["holds_ending"], href="/debtors/holds", permission="debtors.view",
                 hint=f"first on {s['first_hold_end'].isoformat()}" if s["first_hold_end"] else "none", tone="warn" if s["holds_ending"] else "normal", order=22),
        HomeCard(desks=DESKS, title="Last dunning run", count=last["run_date"].isoformat() if last else "never", href="/debtors/run", permission="debtors.view",
                 hint=(f"{last['actions']} actions" if last else "no run yet") + (" · today's run not done" if behind else ""),
                 tone="warn" if behind else "normal", order=23),
    ]
    out += today_cards(session, today=today, now=now, actor=actor)
    if s["failed"]:
        out.append(HomeCard(desks=DESKS, title="Dunning actions that failed", count=s["failed"], href="/debtors#failed", permission="debtors.view",
                            tone="danger", order=24))
    return out


def today_cards(session: Session, *, today: Any, now: datetime, actor: Any) -> list[HomeCard]:
    """Today's work as cards (one count query): calls to make, promises due, broken promises to follow up, approvals
    waiting for this manager (never their own proposals), suspended accounts with arrears; and a chart of the five."""
    can_approve = bool(actor is not None and allowed(getattr(actor, "roles", frozenset()), "debtors.writeoff.approve"))
    limit = arrangements.approval_limit(session, actor=actor) if can_approve else None
    c = desk.today_counts(session, today=today, now=now, actor_name=getattr(actor, "name", ""), can_approve=can_approve, arrangement_limit=limit)
    labels = ["Calls", "Promises due", "Broken promises", "Suspended in arrears"] + (["Approvals"] if can_approve else [])
    values = [c["calls"], c["promises"], c["broken"], c["suspended"]] + ([c["approvals"]] if can_approve else [])
    chart = {"type": "bar", "data": {"labels": labels, "datasets": [{"label": "Today's work", "data": values}]},
             "options": {"plugins": {"legend": {"display": False}}, "scales": {"y": {"beginAtZero": True, "ticks": {"precision": 0}}}}}
    out = [
        HomeCard(desks=DESKS, title="Today's debtors work", count=sum(values), href="/debtors#today", permission="debtors.view",
                 hint="biggest and oldest first on the desk", chart=chart, tone="warn" if sum(values) else "normal", order=15),
        HomeCard(desks=DESKS, title="Calls to make", count=c["calls"], href="/debtors#calls", permission="debtors.view",
                 hint="steps routed to a person; letters whose notice ran out", tone="warn" if c["calls"] else "normal", order=16),
        HomeCard(desks=DESKS, title="Promises due today or overdue", count=c["promises"], href="/debtors#promises", permission="debtors.view",
                 hint=f"{c['promises_today']} due today", tone="warn" if c["promises"] else "normal", order=17),
        HomeCard(desks=DESKS, title="Broken promises to follow up", count=c["broken"], href="/debtors#broken", permission="debtors.view",
                 hint=f"broken in the last {desk.BROKEN_FOLLOW_UP_DAYS} days, no new arrangement", tone="danger" if c["broken"] else "normal", order=18),
        HomeCard(desks=DESKS, title="Suspended accounts in arrears", count=c["suspended"], href="/debtors#suspended", permission="debtors.view",
                 hint="biggest arrears first", tone="warn" if c["suspended"] else "normal", order=27),
    ]
    if can_approve:
        out.append(HomeCard(desks=("debtors_manager",), title="Approvals waiting for you", count=c["approvals"], href="/debtors#approvals",
                            permission="debtors.writeoff.approve", hint="arrangements above a clerk's limit, write-offs and batches others proposed",
                            tone="warn" if c["approvals"] else "normal", order=14))
    return out
