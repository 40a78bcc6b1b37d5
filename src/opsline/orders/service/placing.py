"""Placing a product order and carrying out its items: products created (pendingActive while a partner delivers them),
equipment dispatched, partner service orders submitted; items without a partner complete at once."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.catalog.models import ProductOffering
from opsline.core import domain_events, events
from opsline.core.events import Actor
from opsline.inventory import service as inventory
from opsline.inventory.models import Product, ProductState
from opsline.orders.models import OPEN_ITEM_STATES, ItemAction, ItemState, OrderState, ProductOrder, ProductOrderItem
from opsline.orders.schemas import OrderIn
from opsline.orders.service import equipment, risk_hold, termination
from opsline.orders.service.common import SYSTEM, item_transition, local_date, order_transition
from opsline.orders.service.errors import DuplicateOrderReference, OrderNotAllowed, UnableToPlaceOrder
from opsline.orders.service.validation import Item, check_account, validate_items
from opsline.partners import service as partners

OS, IS = OrderState, ItemState
ORDER_CREATED = "orders.order_created"  # {"id"}: a product order placed


def msisdn_for(product_id: int) -> str:
    return f"+2760{product_id % 10_000_000:07d}"


def place_order(session: Session, *, data: OrderIn, now: datetime, tz: ZoneInfo, actor: Actor, quote_id: int | None = None) -> ProductOrder:
    """Validate and place a product order, then start it. Everything happens in the caller's transaction, so a failure
    leaves nothing behind. A delete of a product in its fixed term records the early-termination fee (or its waiver) to
    be charged when the line ends. Raises UnableToPlaceOrder, OrderNotAllowed (account closed, or suspended unless every
    item is a delete, product busy
    or already terminated), UnableToTerminateProduct (an end before the activation), WaiverReasonRequired,
    DuplicateOrderReference, catalog.OfferingNotFound, catalog.PriceNotValid, partners.UnableToSubmitServiceOrder."""
    check_account(session, data.account_id, deletes_only=bool(data.items) and all(i.action == "delete" for i in data.items))
    today = local_date(now, tz)
    start = data.requested_start_date or today
    if start < today:
        raise UnableToPlaceOrder(f"requested start date {start.isoformat()} is in the past", field="requested_start_date")
    if data.requested_completion_date and data.requested_completion_date < start:
        raise UnableToPlaceOrder("requested completion date is before the requested start date", field="requested_completion_date")
    if data.external_id:
        dup = session.execute(select(ProductOrder.id).where(ProductOrder.account_id == data.account_id, ProductOrder.external_id == data.external_id)).scalar_one_or_none()
        if dup is not None:
            raise DuplicateOrderReference(f"order reference '{data.external_id}' was already used for order {dup} on this account", field="external_id")
    items = validate_items(session, account_id=data.account_id, items=data.items, on=start)
    order = ProductOrder(account_id=data.account_id, external_id=data.external_id, state=OS.ACKNOWLEDGED.value, requested_start_date=start,
                         requested_completion_date=data.requested_completion_date, channel=data.channel, priority=data.priority, quote_id=quote_id,
                         description=data.description, created_at=now, updated_at=now)
    session.add(order)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="product_order", entity_id=order.id, account_id=order.account_id, action="placed",
                  after={"state": order.state, "external_id": order.external_id, "quote_id": quote_id,
                         "items": [{"action": i.data.action, "offering": i.offering.code, "product_id": i.product.id if i.product else None, "site_id": i.site_id} for i in items]})
    # before anything moves it (a hold, a rejection, its items): the TMF622 create event comes first
    domain_events.publish(session, ORDER_CREATED, {"id": order.id}, now=now, actor=actor)
    # flagged account or a credit check that refers/declines: nothing is carried out until a second person releases it
    if risk_hold.assess(session, order=order, data=data, items=items, start=start, now=now, tz=tz, actor=actor) != "go":
        return order
    for it in items:
        _start_item(session, order=order, it=it, start=start, now=now, tz=tz, actor=actor, hold=data.hold_terminations)
    roll_up(session, order=order, now=now, tz=tz)
    return order


def carry_out_released(session: Session, *, order: ProductOrder, data: OrderIn, now: datetime, tz: ZoneInfo, actor: Actor) -> ProductOrder:
    """Carry out an order whose risk hold was released: its items are checked again (the account or products may have
    changed while it waited) and started from the requested date, or today when that has passed.
    Raises what place_order's checks raise (OrderNotAllowed, UnableToPlaceOrder ...)."""
    check_account(session, order.account_id, deletes_only=bool(data.items) and all(i.action == "delete" for i in data.items))
    start = max(order.requested_start_date or local_date(now, tz), local_date(now, tz))
    items = validate_items(session, account_id=order.account_id, items=data.items, on=start)
    for it in items:
        _start_item(session, order=order, it=it, start=start, now=now, tz=tz, actor=actor, hold=data.hold_terminations)
    roll_up(session, order=order, now=now, tz=tz)
    return order


def start_held_termination(session: Session, *, order_item_id: int, on: date, waiver_reason: str | None, now: datetime, tz: ZoneInfo,
                           actor: Actor) -> int | None:
    """Start a delete item that was held for the cancellation journey: record the confirmed early-termination fee (or
    its waiver), mark the product pendingTerminate and send the FNO its delete for `on`. Returns the partner service
    order id. Raises OrderNotAllowed (not a held delete item), UnableToTerminateProduct, partners.UnableToSubmitServiceOrder."""
    item = session.get(ProductOrderItem, order_item_id)
    if item is None or item.action != ItemAction.DELETE or item.state != ItemState.HELD or item.product_id is None:
        raise OrderNotAllowed(f"order item {order_item_id} is not a delete waiting for its cancellation journey", field="order_item_id")
    order = session.get(ProductOrder, item.order_id)
    product = session.get(Product, item.product_id)
    assert order is not None and product is not None and product.partner_code
    inventory.check_termination(product, on=on)
    termination.record_fee_on_item(session, item=item, product=product, termination_date=on, waiver_reason=waiver_reason)
    why = f"order {order.id}"
    inventory.transition_product(session, product=product, action="request_termination", now=now, actor=actor, reason=why)
    _submit(session, order=order, item=item, partner_code=product.partner_code, action="delete", product=product, site_id=product.site_id,
            start=on, reason=why, now=now, tz=tz, actor=actor)
    roll_up(session, order=order, now=now, tz=tz)
    return item.partner_service_order_id


def _submit(session: Session, *, order: ProductOrder, item: ProductOrderItem, partner_code: str, action: str, product: Product, site_id: int | None,
            start: date, reason: str, now: datetime, tz: ZoneInfo, actor: Actor) -> None:
    item.partner_service_order_id = partners.submit_service_order(
        session, partner_code=partner_code, action=action, account_id=order.account_id, product_id=product.id, site_id=site_id,
        requested_date=start, reason=reason, now=now, actor=actor, order_item_id=item.id, tz=tz)
    item_transition(session, item=item, action="start", now=now, reason=f"service order {item.partner_service_order_id} sent to {partner_code}")


def _start_item(session: Session, *, order: ProductOrder, it: Item, start: date, now: datetime, tz: ZoneInfo, actor: Actor,
                hold: bool = False) -> ProductOrderItem:
    o = it.offering
    item = ProductOrderItem(order_id=order.id, account_id=order.account_id, action=it.data.action, offering_id=o.id, product_id=it.product.id if it.product else None,
                            site_id=it.site_id, state=IS.ACKNOWLEDGED.value, quantity=it.data.quantity)
    session.add(item)
    session.flush()
    why = f"order {order.id}"
    if it.data.action == ItemAction.ADD:
        product = inventory.create_product(session, account_id=order.account_id, offering=o, site_id=it.site_id, order_id=order.id, now=now, actor=actor, reason=why)
        if o.kind == "mobile":
            product.msisdn = msisdn_for(product.id)
        item.result_product_id = product.id
        if o.partner_code:
            inventory.transition_product(session, product=product, action="submit", now=now, actor=actor, reason=why)
            equipment.equip_new_product(session, product=product, offering=o, now=now, actor=actor, install=False)
            _submit(session, order=order, item=item, partner_code=o.partner_code, action="add", product=product, site_id=it.site_id, start=start, reason=why, now=now, tz=tz, actor=actor)
        else:
            equipment.equip_new_product(session, product=product, offering=o, now=now, actor=actor, install=True)
            inventory.transition_product(session, product=product, action="activate", now=now, actor=actor, reason=why, effective_date=start)
            item_transition(session, item=item, action="complete", now=now, completion_date=start)
    elif it.data.action == ItemAction.MODIFY:
        old = it.product
        assert old is not None
        what = ("relocation, " if it.relocation else "change, ") + why
        new = inventory.create_product(session, account_id=order.account_id, offering=o, site_id=it.site_id, order_id=order.id, now=now, actor=actor,
                                       replaces_product_id=old.id, msisdn=old.msisdn, reason=what)
        item.result_product_id = new.id
        if o.partner_code:
            inventory.transition_product(session, product=new, action="submit", now=now, actor=actor, reason=why)
            _submit(session, order=order, item=item, partner_code=o.partner_code, action="modify", product=new, site_id=it.site_id, start=start,
                    reason=("relocation, " if it.relocation else "") + why, now=now, tz=tz, actor=actor)
        else:
            switch(session, old=old, new=new, on=start, now=now, actor=actor, reason=why)
            item_transition(session, item=item, action="complete", now=now, completion_date=start)
    elif it.data.action == ItemAction.DELETE:
        product = it.product
        assert product is not None
        item.result_product_id = product.id
        if hold and product.partner_code:
            # published as product_order_item.held: the cancellations area opens the journey, which starts the item later
            item_transition(session, item=item, action="hold", now=now, reason="awaiting the cancellation journey (notice, penalty, FNO cut-off)")
            return item
        termination.record_fee_on_item(session, item=item, product=product, termination_date=start,
                                       waiver_reason=it.data.waiver_reason if it.data.waive_early_termination_fee else None)
        if product.partner_code:
            inventory.transition_product(session, product=product, action="request_termination", now=now, actor=actor, reason=why)
            _submit(session, order=order, item=item, partner_code=product.partner_code, action="delete", product=product, site_id=product.site_id,
                    start=start, reason=why, now=now, tz=tz, actor=actor)
        else:
            end_product(session, item=item, product=product, on=start, now=now, actor=actor, reason=why)
            item_transition(session, item=item, action="complete", now=now, completion_date=start)
    return item


def end_product(session: Session, *, item: ProductOrderItem, product: Product, on: date, now: datetime, actor: Actor, reason: str) -> None:
    """The line ends on `on` (exclusive): terminate, release its equipment, charge the confirmed early-termination fee."""
    if product.state in (ProductState.ACTIVE, ProductState.SUSPENDED, ProductState.PENDING_TERMINATE):
        inventory.transition_product(session, product=product, action="terminate", now=now, actor=actor, reason=reason, effective_date=on)
    equipment.release_equipment(session, product=product, now=now, actor=actor, reason=f"product {product.id} terminated")
    termination.charge_fee(session, item=item, product=product, now=now, actor=actor)


def switch(session: Session, *, old: Product, new: Product, on: date, now: datetime, actor: Actor, reason: str) -> None:
    """The old product ends and the new one starts on the same day: no gap, no overlap (billing credits the old line
    and charges the new one from that date)."""
    offering = session.get(ProductOffering, new.offering_id)
    assert offering is not None
    if new.state == ProductState.CREATED:
        inventory.transition_product(session, product=new, action="submit", now=now, actor=actor, reason=reason)
    inventory.transition_product(session, product=new, action="activate", now=now, actor=actor, reason=reason, effective_date=on)
    if old.contract_end_date and (new.contract_months == old.contract_months) and old.contract_end_date > on:
        new.contract_end_date = old.contract_end_date  # a relocation does not restart the contract
    new.partner_line_ref = new.partner_line_ref or (old.partner_line_ref if new.site_id == old.site_id else None)
    if old.state == ProductState.PENDING_TERMINATE:
        inventory.transition_product(session, product=old, action="keep", now=now, actor=actor)
    inventory.transition_product(session, product=old, action="terminate", now=now, actor=actor, reason=f"replaced by product {new.id}; {reason}", effective_date=on)
    equipment.move_equipment(session, old=old, new=new, now=now, actor=actor)
    equipment.install_on_activation(session, product=new, offering=offering, now=now, actor=actor)


def roll_up(session: Session, *, order: ProductOrder, now: datetime, tz: ZoneInfo) -> None:
    """Order state from its items: in progress while any is open; completed, partial or failed when all are done."""
    if order.state in (OS.CANCELLED, OS.REJECTED, OS.COMPLETED, OS.FAILED, OS.PARTIAL):
        return
    states = [s for (s,) in session.execute(select(ProductOrderItem.state).where(ProductOrderItem.order_id == order.id))]
    kw = dict(order=order, now=now, tz=tz, actor=SYSTEM)
    if any(s in OPEN_ITEM_STATES for s in states):
        if order.state in (OS.ACKNOWLEDGED, OS.PENDING):
            order_transition(session, action="start", **kw)  # type: ignore[arg-type]
        return
    if order.state == OS.PENDING_CANCELLATION:
        order_transition(session, action="confirm_cancel", **kw)  # type: ignore[arg-type]
        return
    if order.state in (OS.ACKNOWLEDGED, OS.PENDING):
        order_transition(session, action="start", **kw)  # type: ignore[arg-type]
    elif order.state == OS.HELD:
        order_transition(session, action="resume", **kw)  # type: ignore[arg-type]
    done = [s for s in states if s == IS.COMPLETED]
    if len(done) == len(states):
        order_transition(session, action="complete", **kw)  # type: ignore[arg-type]
    elif done:
        order_transition(session, action="partial", reason="some items failed", **kw)  # type: ignore[arg-type]
    else:
        order_transition(session, action="fail", reason="every item failed", **kw)  # type: ignore[arg-type]


def undo_item(session: Session, *, item: ProductOrderItem, product: Product, now: datetime, actor: Actor, reason: str) -> None:
    """An item will not happen: a new product is never activated (equipment comes back); a product due to end stays active."""
    if item.action in (ItemAction.ADD, ItemAction.MODIFY):
        if product.state in (ProductState.CREATED, ProductState.PENDING_ACTIVE):
            inventory.transition_product(session, product=product, action="abandon", now=now, actor=actor, reason=reason)
        equipment.return_prepared_equipment(session, product=product, now=now, actor=actor, reason=reason)
    elif item.action == ItemAction.DELETE and product.state == ProductState.PENDING_TERMINATE:
        inventory.transition_product(session, product=product, action="keep", now=now, actor=actor, reason=reason)
