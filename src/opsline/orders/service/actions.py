"""What staff and API clients do to an order: hold, resume, cancel (TMF622 cancellation through assessingCancellation)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from opsline.core.errors import StaleVersion, TransitionNotAllowed
from opsline.core.events import Actor
from opsline.inventory.models import Product
from opsline.orders.models import OPEN_ITEM_STATES, ORDER, ItemState, ProductOrder, ProductOrderItem
from opsline.orders.service.common import SYSTEM, item_transition, order_transition
from opsline.orders.service.errors import OrderCancellationNotAllowed, OrderNotFound
from opsline.orders.service.placing import undo_item
from opsline.partners import service as partners

IS = ItemState
USER_ACTIONS = ("hold", "resume", "cancel")


def get_order(session: Session, *, order_id: int) -> ProductOrder:
    """Raises OrderNotFound."""
    o = session.get(ProductOrder, order_id) if 0 < order_id < 2**62 else None
    if o is None:
        raise OrderNotFound(f"product order {order_id} not found")
    return o


def allowed_actions(state: str, *, actor: Actor | None = None) -> list[str]:
    return ORDER.allowed_actions(state, actor=actor)


def order_action(session: Session, *, order_id: int, action: str, now: datetime, tz: ZoneInfo, actor: Actor, reason: str | None,
                 version: int | None = None) -> list[str]:
    """Hold, resume or cancel an order. Returns the next allowed actions.
    Raises OrderNotFound, StaleVersion, TransitionNotAllowed (not an order action, or not from this state),
    ActionNotPermitted, ReasonRequired (cancel/hold), OrderCancellationNotAllowed."""
    order = get_order(session, order_id=order_id)
    if version is not None and version != order.version:
        raise StaleVersion(f"order {order.id} was changed by someone else (version {order.version}, you had {version}); reload and try again")
    if action not in USER_ACTIONS:
        raise TransitionNotAllowed(f"'{action}' is not an order action; use one of {', '.join(USER_ACTIONS)}", field="action")
    if action == "cancel":
        cancel_order(session, order=order, now=now, tz=tz, actor=actor, reason=reason or "")
    else:
        order_transition(session, order=order, action=action, now=now, tz=tz, actor=actor, reason=reason)
    try:
        session.flush()
    except StaleDataError as exc:
        raise StaleVersion(f"order {order.id} was changed by someone else; reload and try again") from exc
    return ORDER.allowed_actions(order.state, actor=actor)


def cancel_order(session: Session, *, order: ProductOrder, now: datetime, tz: ZoneInfo, actor: Actor, reason: str) -> None:
    """TMF622 cancellation: the order goes to assessingCancellation; it is refused when an item has already completed
    (the change happened: order a reversal instead); otherwise open items are cancelled (their partner service orders
    are withdrawn where the partner has not received them; otherwise the partner must be asked, which is recorded),
    prepared products are abandoned and the system confirms the cancellation; while a partner still holds a service order
    it already received, the order waits in pendingCancellation until the partner lets go of it.
    Raises TransitionNotAllowed, ReasonRequired, OrderCancellationNotAllowed."""
    items = list(session.execute(select(ProductOrderItem).where(ProductOrderItem.order_id == order.id).order_by(ProductOrderItem.id)).scalars())
    done = [i for i in items if i.state == IS.COMPLETED]
    if done and ORDER.target(order.state, "cancel") is not None:
        raise OrderCancellationNotAllowed(f"order {order.id} cannot be cancelled: item {done[0].id} is already completed; place a new order to reverse it")
    order_transition(session, order=order, action="cancel", now=now, tz=tz, actor=actor, reason=reason)
    held: list[int] = []
    for item in items:
        if item.state not in [s.value for s in OPEN_ITEM_STATES]:
            continue
        item_transition(session, item=item, action="cancel", now=now, reason=reason)
        if item.partner_service_order_id is not None:
            if not partners.withdraw_service_order(session, service_order_id=item.partner_service_order_id, now=now, actor=SYSTEM,
                                                   reason=f"order {order.id} cancelled: {reason}"):
                held.append(item.id)
        product = session.get(Product, item.result_product_id) if item.result_product_id else None
        if product is not None:
            undo_item(session, item=item, product=product, now=now, actor=actor, reason=f"order {order.id} cancelled")
    waiting = partner_still_holds(session, order_item_ids=held, now=now, tz=tz)
    if waiting:
        order_transition(session, order=order, action="await_cancel", now=now, tz=tz, actor=SYSTEM,
                         reason=f"{reason}; waiting for the partner to cancel {', '.join(waiting)}")
        return
    order_transition(session, order=order, action="confirm_cancel", now=now, tz=tz, actor=SYSTEM, reason=reason)


def partner_still_holds(session: Session, *, order_item_ids: list[int], now: datetime, tz: ZoneInfo) -> list[str]:
    """External references of the items' service orders a partner received and has not finished."""
    return [so["external_ref"] for so in partners.service_orders_for_items(session, order_item_ids=order_item_ids, now=now, tz=tz)
            if so["delivered_at"] is not None and so["open"]]
