"""Reacting to the partner: the orders area subscribes to `partner_service_order.*` events and completes, relocates,
terminates or fails the item that asked for the service order, on the partner's confirmed date."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.catalog.models import ProductOffering
from opsline.core import events
from opsline.core.domain_events import DomainEvent
from opsline.core.events import Actor
from opsline.inventory import service as inventory
from opsline.inventory.models import Product
from opsline.orders.models import OPEN_ITEM_STATES, ItemAction, ItemState, OrderState, ProductOrder, ProductOrderItem
from opsline.orders.service.actions import partner_still_holds
from opsline.orders.service import equipment
from opsline.orders.service.common import item_transition, local_date
from opsline.orders.service.placing import end_product, roll_up, switch, undo_item

IS = ItemState
HEARD_STATES = ("inProgress", "completed", "failed", "rejected", "cancelled")


def on_partner_order_update(
    session: Session, *, service_order_id: int, order_item_id: int | None, state: str, confirmed_date: date | None, reason: str | None,
    now: datetime, tz: ZoneInfo, actor: Actor,
) -> None:
    """A partner service order raised for an order item changed state. 'completed' activates (add), terminates
    (delete) or switches old → new product (modify/relocation) on the partner's confirmed date; 'failed', 'rejected'
    or 'cancelled' fail the item with the reason and undo what was prepared. Updates for items no longer open (e.g. a
    cancelled order) are recorded and change nothing; service orders no order asked for (line suspensions) are not ours."""
    if order_item_id is None or state not in HEARD_STATES:
        return
    item = session.get(ProductOrderItem, order_item_id)
    if item is None or item.partner_service_order_id != service_order_id:
        return
    if item.state not in [s.value for s in OPEN_ITEM_STATES]:
        if not (item.state == IS.CANCELLED and state == "cancelled"):  # our own withdrawal coming back
            events.record(session, now=now, actor=actor, entity_type="product_order_item", entity_id=item.id, account_id=item.account_id, action="partner_update_ignored",
                          reason=f"partner reported {state} but the item is {item.state}", after={"service_order_id": service_order_id, "state": state})
        order = session.get(ProductOrder, item.order_id)
        if order is not None and order.state == OrderState.PENDING_CANCELLATION and state != "inProgress":
            items = list(session.execute(select(ProductOrderItem.id).where(ProductOrderItem.order_id == order.id)).scalars())
            if not partner_still_holds(session, order_item_ids=items, now=now, tz=tz):
                roll_up(session, order=order, now=now, tz=tz)  # the partner let go of the last one: the cancellation is confirmed
        return
    order = session.get(ProductOrder, item.order_id)
    product = session.get(Product, item.result_product_id) if item.result_product_id else None
    assert order is not None and product is not None
    if state == "inProgress":
        if item.state != IS.IN_PROGRESS:
            item_transition(session, item=item, action="start", now=now, reason=reason)
    elif state == "completed":
        on = confirmed_date or local_date(now, tz)
        _complete(session, item=item, product=product, service_order_id=service_order_id, on=on, now=now, actor=actor)
        item_transition(session, item=item, action="complete", now=now, reason=reason, completion_date=on)
    else:
        why = f"{product.partner_code or 'partner'} {state}: {reason or 'no reason given'}"
        undo_item(session, item=item, product=product, now=now, actor=actor, reason=why)
        item_transition(session, item=item, action="fail", now=now, reason=why)
    roll_up(session, order=order, now=now, tz=tz)


def _line_ref(product: Product, service_order_id: int) -> None:
    if product.partner_line_ref is None and product.partner_code:
        product.partner_line_ref = f"{product.partner_code[:3].upper()}-{service_order_id:08d}"


def _complete(session: Session, *, item: ProductOrderItem, product: Product, service_order_id: int, on: date, now: datetime, actor: Actor) -> None:
    confirmed_by = f"confirmed by {product.partner_code}"
    if item.action == ItemAction.ADD:
        offering = session.get(ProductOffering, product.offering_id)
        assert offering is not None
        inventory.transition_product(session, product=product, action="activate", now=now, actor=actor, reason=confirmed_by, effective_date=on)
        _line_ref(product, service_order_id)
        equipment.install_on_activation(session, product=product, offering=offering, now=now, actor=actor)
    elif item.action == ItemAction.DELETE:
        end_product(session, item=item, product=product, on=on, now=now, actor=actor, reason=f"line ceased by {product.partner_code}")
    elif item.action == ItemAction.MODIFY:
        old = session.get(Product, product.replaces_product_id) if product.replaces_product_id else None
        assert old is not None
        _line_ref(product, service_order_id)
        switch(session, old=old, new=product, on=on, now=now, actor=actor, reason=confirmed_by)


def handle_service_order_event(session: Session, ev: DomainEvent, now: datetime, *, tz: ZoneInfo) -> None:
    """The `partner_service_order.*` subscriber's body (same transaction: the partner's answer and its effect on the
    order commit together, or neither does)."""
    p = ev.payload
    details = p.get("details") or {}
    confirmed = details.get("confirmed_date")
    on_partner_order_update(session, service_order_id=int(p["id"]), order_item_id=details.get("order_item_id"), state=str(p["to"]),
                            confirmed_date=date.fromisoformat(confirmed) if confirmed else None, reason=p.get("reason"), now=now, tz=tz, actor=ev.actor)
