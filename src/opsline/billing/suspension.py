"""Billing's side of account suspension: the days an account was suspended (which the bill run treats per the
`suspension_policy` setting) and the reconnection fee from the catalogue (per `reconnection_fee_policy`), queued once."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from opsline.billing.charges import dialect_of
from opsline.billing.models import AccountSuspension
from opsline.billing.service import queue_charge, setting
from opsline.core import events
from opsline.config import get_settings
from opsline.core.events import Actor
from opsline.core.localtime import local_date, zone
from opsline.core.money import Money

RECONNECTION_EVENT = "reconnection"


def record_suspension(session: Session, *, account_id: int, on: date, now: datetime, actor: Actor) -> AccountSuspension:
    """Open a suspension interval from local date `on` (a repeat while one is open returns the open one)."""
    open_row = session.execute(select(AccountSuspension).where(AccountSuspension.account_id == account_id, AccountSuspension.resumed_on.is_(None))
                               .order_by(AccountSuspension.id.desc()).limit(1)).scalar_one_or_none()
    if open_row is not None:
        return open_row
    row = AccountSuspension(account_id=account_id, suspended_on=on, resumed_on=None, suspended_at=now)
    session.add(row)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="billing_suspension", entity_id=row.id, action="opened", account_id=account_id,
                  after={"suspended_on": on.isoformat(), "policy": setting(session, "suspension_policy", "charge")})
    return row


def record_reconnection(session: Session, *, account_id: int, on: date, now: datetime, actor: Actor) -> dict[str, Any]:
    """Close the open suspension interval on local date `on` and, when `reconnection_fee_policy` is 'charge', queue the
    catalogue's reconnection fee for each of the account's live products whose offering has one (idempotent per
    suspension and product). Returns {"suspension_id", "charges": [pending charge ids]}."""
    row = session.execute(select(AccountSuspension).where(AccountSuspension.account_id == account_id, AccountSuspension.resumed_on.is_(None))
                          .order_by(AccountSuspension.id.desc()).limit(1)).scalar_one_or_none()
    if row is None:
        return {"suspension_id": None, "charges": []}
    row.resumed_on = max(on, row.suspended_on)
    row.resumed_at = now
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="billing_suspension", entity_id=row.id, action="closed", account_id=account_id,
                  after={"suspended_on": row.suspended_on.isoformat(), "resumed_on": row.resumed_on.isoformat()})
    charges: list[int] = []
    if setting(session, "reconnection_fee_policy", "charge") != "charge":
        return {"suspension_id": row.id, "charges": charges}
    fees = session.execute(text(
        "SELECT p.id AS product_id, o.name AS offering, pr.amount_minor, pr.currency, pr.tax_rate_code, pr.name AS price_name "
        "FROM product p JOIN product_offering o ON o.id = p.offering_id "
        "JOIN price pr ON pr.offering_id = p.offering_id AND pr.kind = 'one_off' AND pr.charge_event = :ev AND pr.amount_minor > 0 "
        "  AND pr.valid_from <= :on AND (pr.valid_to IS NULL OR pr.valid_to > :on) "
        "WHERE p.account_id = :a AND p.state IN ('active', 'suspended') ORDER BY p.id"),
        {"ev": RECONNECTION_EVENT, "on": dialect_of(session).bind_date(on), "a": account_id}).mappings().all()
    for f in fees:
        charges.append(queue_charge(
            session, account_id=account_id, product_id=int(f["product_id"]), description=f"{f['price_name']} ({f['offering']})",
            amount=Money.from_minor(int(f["amount_minor"]), f["currency"]), tax_rate_code=f["tax_rate_code"],
            reason=f"reconnected on {row.resumed_on.isoformat()} after suspension from {row.suspended_on.isoformat()}", now=now, actor=actor,
            idempotency_key=f"reconnection-fee:{row.id}:{f['product_id']}"))
    return {"suspension_id": row.id, "charges": charges}


def _account_of(payload: dict[str, Any]) -> int:
    return int(payload.get("account_id") or payload["id"])


def _local(now: datetime) -> date:
    # subscribers run at the edge (no request): the operator's timezone comes from the settings, like in the CLI
    return local_date(now, zone(get_settings().timezone))


def on_account_suspended(session: Session, event: Any, now: datetime) -> None:
    """Subscriber (same transaction) to `account.suspended`."""
    record_suspension(session, account_id=_account_of(event.payload), on=_local(event.occurred_at), now=event.occurred_at, actor=event.actor)


def on_account_active(session: Session, event: Any, now: datetime) -> None:
    """Subscriber (same transaction) to `account.active`: only a reconnection (from suspended) concerns billing."""
    if event.payload.get("action") != "reconnect" and event.payload.get("from") != "suspended":
        return
    record_reconnection(session, account_id=_account_of(event.payload), on=_local(event.occurred_at), now=event.occurred_at, actor=event.actor)
