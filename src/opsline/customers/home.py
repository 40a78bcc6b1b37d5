"""The customers area's tiles on desk home pages: possible duplicate accounts to clean up, suspended accounts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from opsline.areas import HomeCard
from opsline.core.events import Actor, AuditEvent
from opsline.customers.models import Account, AccountStatus

DUPLICATE_DESKS = ("billing_analyst", "second_line_agent")
SUSPENDED_DESKS = ("debtors_clerk", "debtors_manager", "second_line_agent")


def _age(seconds: float) -> str:
    days = int(seconds // 86400)
    return f"{days} d" if days else f"{int(seconds // 3600)} h"


def possible_duplicates(session: Session) -> int:
    """Open accounts whose phone number is also on another open account (what the duplicates page pairs first)."""
    other = aliased(Account)
    shared = (select(other.id).where(other.phone == Account.phone, other.id != Account.id, other.status != AccountStatus.CLOSED.value)
              .exists())
    return int(session.execute(select(func.count(Account.id)).where(Account.phone.is_not(None), Account.status != AccountStatus.CLOSED.value,
                                                                   shared)).scalar_one())


def _longest_suspended_since(session: Session) -> datetime | None:
    """When the longest-suspended account was last suspended, from the audit log (accounts loaded in bulk as suspended
    have no suspension event and are not guessed at)."""
    last = (select(func.max(AuditEvent.occurred_at).label("at"))
            .join(Account, Account.id == AuditEvent.account_id)
            .where(Account.status == AccountStatus.SUSPENDED.value, AuditEvent.entity_type == "account", AuditEvent.action == "suspend")
            .group_by(Account.id).subquery())
    return session.execute(select(func.min(last.c.at))).scalar_one()


def home(session: Session, *, now: datetime, actor: Actor, tz: Any) -> list[HomeCard]:
    """One query per card."""
    dups = possible_duplicates(session)
    by_status = dict(session.execute(select(Account.status, func.count(Account.id)).group_by(Account.status)).all())
    suspended = int(by_status.get(AccountStatus.SUSPENDED.value, 0))
    oldest = _longest_suspended_since(session) if suspended else None
    order = [s.value for s in AccountStatus]
    chart = {
        "type": "doughnut",
        "data": {"labels": [s for s in order if by_status.get(s)],
                 "datasets": [{"label": "Accounts by status", "data": [int(by_status[s]) for s in order if by_status.get(s)]}]},
        "options": {"plugins": {"legend": {"position": "bottom"}}},
    }
    return [
        HomeCard(desks=DUPLICATE_DESKS, title="Possible duplicate accounts", count=dups, href="/accounts/duplicates",
                 permission="customers.view", hint="share a phone number with another open account" if dups else "none to review",
                 tone="warn" if dups else "normal", order=60),
        HomeCard(desks=SUSPENDED_DESKS, title="Accounts suspended", count=suspended, href="/accounts?status=suspended",
                 permission="customers.view", hint=f"longest suspended {_age((now - oldest).total_seconds())}" if oldest else "",
                 chart=chart, order=61),
    ]
