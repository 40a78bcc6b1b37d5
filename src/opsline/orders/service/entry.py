"""One call per interface action: each does the change and returns what the caller shows next, so API and view
handlers call exactly one service function."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from opsline.core.events import Actor
from opsline.orders.schemas import OrderIn, QuoteIn
from opsline.orders.service.actions import order_action
from opsline.orders.service.placing import place_order
from opsline.orders.service.queries import order_record
from opsline.orders.service.quotes import create_quote, quote_action, quote_detail


def submit_order(session: Session, *, data: OrderIn, now: datetime, tz: ZoneInfo, actor: Actor) -> dict[str, Any]:
    """Place the order (see place_order, which says what it raises) and return its record (order_record)."""
    order = place_order(session, data=data, now=now, tz=tz, actor=actor)
    session.flush()
    return order_record(session, order_id=order.id, now=now, tz=tz, actor=actor)


def change_order(session: Session, *, order_id: int, action: str, now: datetime, tz: ZoneInfo, actor: Actor, reason: str | None,
                 version: int | None = None) -> dict[str, Any]:
    """Hold, resume or cancel (see order_action for what it raises) and return the order's record (order_record)."""
    order_action(session, order_id=order_id, action=action, now=now, tz=tz, actor=actor, reason=reason, version=version)
    return order_record(session, order_id=order_id, now=now, tz=tz, actor=actor)


def submit_quote(session: Session, *, data: QuoteIn, now: datetime, tz: ZoneInfo, actor: Actor) -> dict[str, Any]:
    """Create the quote (see create_quote) and return its detail."""
    q = create_quote(session, data=data, now=now, tz=tz, actor=actor)
    session.flush()
    return quote_detail(session, quote_id=q.id, actor=actor)


def change_quote(session: Session, *, quote_id: int, action: str, now: datetime, tz: ZoneInfo, actor: Actor, reason: str | None = None) -> dict[str, Any]:
    """Apply a quote action (see quote_action) and return the quote's detail (with the order it placed, if any)."""
    quote_action(session, quote_id=quote_id, action=action, now=now, tz=tz, actor=actor, reason=reason)
    session.flush()
    return quote_detail(session, quote_id=quote_id, actor=actor)
