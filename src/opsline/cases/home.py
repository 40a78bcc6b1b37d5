"""The cases area's tiles on desk home pages: my open cases (oldest first), breached, at risk, and open cases by age."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case as sql_case
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsline.areas import HomeCard
from opsline.cases.models import OPEN_STATES, SupportCase
from opsline.cases.queries import awaiting_sign_off, overdue_text
from opsline.notifications.models import Message, MessageState
from opsline.core.events import Actor

DESKS = ("second_line_agent", "service_manager")
AGE_BUCKETS = (("< 1 day", 1), ("1–3 days", 3), ("3–7 days", 7), ("7–14 days", 14), ("> 14 days", None))


def home(session: Session, *, now: datetime, actor: Actor, tz: str) -> list[HomeCard]:
    """Cards for the second-line and service-manager desks (one query per card)."""
    open_states = [s.value for s in OPEN_STATES]
    is_open = SupportCase.state.in_(open_states)
    mine_n, mine_oldest = session.execute(select(func.count(SupportCase.id), func.min(SupportCase.opened_at))
                                          .where(is_open, SupportCase.assignee_user_id == (actor.user_id or -1))).one()
    by_state = dict(session.execute(select(SupportCase.sla_state, func.count(SupportCase.id)).where(is_open, SupportCase.sla_state.in_(("breached", "at_risk")))
                                    .group_by(SupportCase.sla_state)).all())
    first_breach = session.execute(select(func.min(SupportCase.sla_breached_at)).where(is_open, SupportCase.sla_state == "breached")).scalar_one()
    held_n, held_oldest = session.execute(
        select(func.count(func.distinct(Message.subject_ref)), func.min(Message.created_at))
        .where(Message.state == MessageState.AWAITING_APPROVAL.value, Message.subject_ref.in_(select(SupportCase.reference).where(
            is_open, SupportCase.reference.in_(awaiting_sign_off()))))).one()
    age_days = (func.julianday(now) - func.julianday(SupportCase.opened_at)) if session.get_bind().dialect.name == "sqlite" else \
        func.extract("epoch", now - SupportCase.opened_at) / 86400.0
    bucket = sql_case(*[(age_days < days, i) for i, (_, days) in enumerate(AGE_BUCKETS) if days is not None], else_=len(AGE_BUCKETS) - 1)
    ages = dict(session.execute(select(bucket, func.count(SupportCase.id)).where(is_open).group_by(bucket)).all())
    chart: dict[str, Any] = {
        "type": "bar",
        "data": {"labels": [label for label, _ in AGE_BUCKETS],
                 "datasets": [{"label": "Open cases by age", "data": [int(ages.get(i, 0)) for i in range(len(AGE_BUCKETS))]}]},
        "options": {"plugins": {"legend": {"display": False}}},
    }
    return [
        HomeCard(desks=DESKS, title="My open cases", count=int(mine_n), href="/cases?tab=mine&sort=oldest", permission="cases.view", order=10,
                 hint=f"oldest opened {overdue_text((now - mine_oldest).total_seconds())} ago" if mine_oldest else "none waiting"),
        HomeCard(desks=DESKS, title="Breached, still open", count=int(by_state.get("breached", 0)), href="/cases?tab=breaching", permission="cases.view",
                 hint=f"longest overdue {overdue_text((now - first_breach).total_seconds())}" if first_breach else "",
                 tone="danger" if by_state.get("breached") else "normal", order=11),
        HomeCard(desks=DESKS, title="At risk of breaching", count=int(by_state.get("at_risk", 0)), href="/cases?tab=breaching", permission="cases.view",
                 hint="breach probability of 50% or more", tone="warn" if by_state.get("at_risk") else "normal", order=12),
        HomeCard(desks=DESKS, title="Awaiting Legal/Brand sign-off", count=int(held_n), href="/cases?tab=all&signoff=1", permission="cases.view",
                 hint=f"oldest held {overdue_text((now - held_oldest).total_seconds())}" if held_oldest else "messages on flagged cases wait here",
                 tone="warn" if held_n else "normal", order=13),
        HomeCard(desks=DESKS, title="Open cases by age", count=sum(int(v) for v in ages.values()), href="/cases?tab=all", permission="cases.view",
                 chart=chart, order=14),
    ]

