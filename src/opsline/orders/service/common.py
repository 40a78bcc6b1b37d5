"""Shared pieces of the orders service: the local date, and the two lifecycle wrappers (order, item) that keep the
order's completion date and reasons beside the state."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from opsline.core import domain_events, lifecycle
from opsline.core.events import Actor
from opsline.orders.models import ORDER, ORDER_ITEM, OrderState, ProductOrder, ProductOrderItem

OS = OrderState
SYSTEM = Actor.system("orders")  # roll-ups, partner answers and cancellation assessment are the system's doing
FINAL_ORDER_STATES = (OS.COMPLETED, OS.PARTIAL, OS.FAILED, OS.CANCELLED, OS.REJECTED)


ORDER_CHANGED = "orders.order_changed"  # {"id", "attributes"}: a product order changed other than its state

def local_date(now: datetime, tz: ZoneInfo) -> date:
    return now.astimezone(tz).date()


def order_transition(session: Session, *, order: ProductOrder, action: str, now: datetime, tz: ZoneInfo, actor: Actor,
                     reason: str | None = None) -> list[str]:
    """Move the order through its lifecycle (core/lifecycle ORDER) and stamp its completion date when it ends.
    Raises TransitionNotAllowed, ActionNotPermitted, ReasonRequired."""
    # the completion date and reason are set before the move, so the state-change event (rendered as it is published) carries them
    before = (order.completion_date, order.state_reason, order.updated_at)
    if order.completion_date is None and ORDER.target(order.state, action) in FINAL_ORDER_STATES:
        order.completion_date = local_date(now, tz)
    if reason:
        order.state_reason = reason
    order.updated_at = now
    try:
        return lifecycle.transition(session, ORDER, order, action, now=now, actor=actor, reason=reason,
                                    details={"channel": order.channel, "quote_id": order.quote_id})
    except Exception:
        order.completion_date, order.state_reason, order.updated_at = before
        raise


def item_transition(session: Session, *, item: ProductOrderItem, action: str, now: datetime, reason: str | None = None,
                    completion_date: date | None = None) -> None:
    """Move an order item (system-driven lifecycle ORDER_ITEM). Raises TransitionNotAllowed."""
    lifecycle.transition(session, ORDER_ITEM, item, action, now=now, actor=SYSTEM, reason=reason,
                         details={"order_id": item.order_id, "completion_date": completion_date.isoformat() if completion_date else None})
    if reason:
        item.state_reason = reason
    if completion_date is not None:
        item.completion_date = completion_date
    # an item's state is an attribute of its order (TMF622 ProductOrderAttributeValueChangeEvent on productOrderItem)
    domain_events.publish(session, ORDER_CHANGED, {"id": item.order_id, "attributes": ["productOrderItem"], "item_id": item.id, "item_state": item.state},
                          now=now, actor=SYSTEM)
