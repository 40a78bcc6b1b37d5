"""Holds: a person keeps an account out of dunning, with a reason, until a date."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.core import events, lifecycle
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.customers import service as customers
from opsline.customers.schemas import MemoIn
from opsline.debtors.models import DUNNING_HOLD, DunningHold, HoldState

MAX_HOLD_DAYS = 366


class UnableToHold(InvalidInput):
    title = "Unable to hold account"
    type_slug = "unable-to-hold-account"


def parse_date(raw: str | None, *, field: str) -> date:
    """'2026-12-31' -> date. Raises UnableToHold naming the field."""
    if not (raw or "").strip():
        raise UnableToHold(f"{field.replace('_', ' ')} is required (YYYY-MM-DD)", field=field)
    try:
        return date.fromisoformat(str(raw).strip())
    except ValueError:
        raise UnableToHold(f"'{raw}' is not a date; use YYYY-MM-DD", field=field) from None


def place_hold(session: Session, *, account_id: int, reason: str, valid_to: date | None, today: date, now: datetime, actor: Actor,
               valid_from: date | None = None) -> DunningHold:
    """Hold the account out of dunning on [valid_from (today), valid_to). Raises UnableToHold (no reason, no or past end
    date, longer than a year), AccountNotFound. Nothing is changed when it raises."""
    acc = customers.get_account(session, account_id=account_id)
    reason = (reason or "").strip()
    if not reason:
        raise UnableToHold("a hold needs a reason (why dunning should wait)", field="reason")
    if valid_to is None:
        raise UnableToHold("a hold needs an end date; dunning resumes on it", field="valid_to")
    start = valid_from or today
    if valid_to <= start:
        raise UnableToHold(f"the end date {valid_to.isoformat()} must be after {start.isoformat()}", field="valid_to")
    if (valid_to - start).days > MAX_HOLD_DAYS:
        raise UnableToHold(f"a hold can last at most {MAX_HOLD_DAYS} days; ask again when it ends", field="valid_to")
    hold = DunningHold(account_id=acc.id, state=HoldState.ACTIVE, reason=reason, valid_from=start, valid_to=valid_to, created_at=now, created_by=actor.name)
    session.add(hold)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="dunning_hold", entity_id=hold.id, account_id=acc.id, action="placed", reason=reason,
                  after={"valid_from": start.isoformat(), "valid_to": valid_to.isoformat()})
    customers.add_memo(session, account_id=acc.id, data=MemoIn(category="debtors", body=f"Dunning hold until {valid_to.isoformat()}: {reason}"),
                       now=now, actor=actor)
    return hold


def release_hold(session: Session, *, hold_id: int, reason: str, now: datetime, actor: Actor) -> list[str]:
    """End a hold early. Raises NotFound, ReasonRequired, TransitionNotAllowed (already released), ActionNotPermitted."""
    hold = session.get(DunningHold, hold_id)
    if hold is None:
        raise NotFound(f"dunning hold {hold_id} not found", field="hold_id")
    nxt = lifecycle.transition(session, DUNNING_HOLD, hold, "release", now=now, actor=actor, reason=reason, label=f"dunning hold {hold_id}")
    hold.released_at, hold.released_by = now, actor.name
    customers.add_memo(session, account_id=hold.account_id, data=MemoIn(category="debtors", body=f"Dunning hold released: {reason.strip()}"),
                       now=now, actor=actor)
    session.flush()
    return nxt


def holds(session: Session, *, today: date, account_id: int | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Active holds (not yet ended), ending soonest first."""
    from opsline.customers.models import Account

    q = (select(DunningHold, Account.account_number, Account.name).join(Account, Account.id == DunningHold.account_id)
         .where(DunningHold.state == HoldState.ACTIVE, DunningHold.valid_to > today))
    if account_id is not None:
        q = q.where(DunningHold.account_id == account_id)
    rows = session.execute(q.order_by(DunningHold.valid_to, DunningHold.id).limit(limit)).all()
    return [{"id": h.id, "account_id": h.account_id, "account_number": n, "account_name": nm, "reason": h.reason, "valid_from": h.valid_from,
             "valid_to": h.valid_to, "created_by": h.created_by, "created_at": h.created_at, "days_left": (h.valid_to - today).days} for h, n, nm in rows]
