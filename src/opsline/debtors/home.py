"""Desk home cards for the debtors clerk and manager: proposals for a person, accounts due for their next step, holds
ending this week, failed actions and the last dunning run."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from opsline.areas import HomeCard
from opsline.core.localtime import local_date
from opsline.core.money import Money
from opsline.debtors import arrangements, desk

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
    g = arrangements.desk_counts(session, today=today)
    out += [
        HomeCard(desks=DESKS, title="Promises due today", count=g["due_today"], href="/debtors/arrangements?state=active", permission="debtors.view",
                 hint="arrangement dates falling today", tone="warn" if g["due_today"] else "normal", order=25),
        HomeCard(desks=DESKS, title="Arrangements waiting for approval", count=g["waiting"], href="/debtors/arrangements?state=proposed",
                 permission="debtors.view", hint="above the proposer's limit; never the proposer's to approve", tone="warn" if g["waiting"] else "normal",
                 order=26),
        HomeCard(desks=DESKS, title="Arrangements broken this week", count=g["broken_week"], href="/debtors/arrangements?state=broken",
                 permission="debtors.view", hint="dunning resumed from where each account stood", tone="danger" if g["broken_week"] else "normal", order=27),
    ]
    if s["failed"]:
        out.append(HomeCard(desks=DESKS, title="Dunning actions that failed", count=s["failed"], href="/debtors#failed", permission="debtors.view",
                            tone="danger", order=24))
    out.extend(_write_off_cards(session, actor=actor, currency=s["currency"]))
    return out


def _write_off_cards(session: Session, *, actor: Any, currency: str) -> list[HomeCard]:
    """The manager's approvals: write-offs (single and batches) someone else proposed."""
    from opsline.debtors import writeoffs

    w = writeoffs.waiting_for(session, actor_name=getattr(actor, "name", ""))
    hint = str(Money.from_minor(w["amount_minor"], currency)) + (f" · {w['batches']} bulk" if w["batches"] else "")
    return [HomeCard(desks=("debtors_manager",), title="Write-offs waiting for your approval", count=w["count"], href="/debtors/writeoffs",
                     permission="debtors.writeoff.approve", hint=hint, tone="warn" if w["count"] else "normal", order=19)]
