"""Product orders (TMF622) and quotes (TMF648): validation, orchestration of inventory, equipment and partner
service orders, and the partner callback that completes, relocates or terminates products on confirmed dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from opsline.config import DEFAULT_TIMEZONE

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from opsline.catalog import service as catalog
from opsline.catalog.models import OfferingEquipment, ProductOffering
from opsline.core import events
from opsline.core.errors import Conflict, InvalidInput, NotFound, StaleVersion, TransitionNotAllowed
from opsline.core.events import Actor
from opsline.customers.models import Account, Site
from opsline.inventory import service as inventory
from opsline.inventory.models import Equipment, EquipmentState, Product, ProductState
from opsline.orders.models import ItemAction, ItemState, OrderState, ProductOrder, ProductOrderItem, Quote, QuoteItem, QuoteState
from opsline.orders.schemas import OrderIn, OrderItemIn, QuoteIn

LOCAL_TZ = ZoneInfo(DEFAULT_TIMEZONE)
OS = OrderState
IS = ItemState


class UnableToPlaceOrder(InvalidInput):
    pass


class OrderNotAllowed(Conflict):
    """The account or product is in a state that does not allow this order."""


class DuplicateOrderReference(Conflict):
    title = "Duplicate order reference"
    type_slug = "duplicate-order-reference"


class OrderNotFound(NotFound):
    pass


class QuoteNotFound(NotFound):
    pass


class OrderTransitionNotAllowed(TransitionNotAllowed):
    pass


class OrderCancellationNotAllowed(TransitionNotAllowed):
    pass


class QuoteTransitionNotAllowed(TransitionNotAllowed):
    pass


ORDER_TRANSITIONS: dict[str, dict[str, str]] = {
    # state -> {action: next state}. 'cancel' goes through assessingCancellation (see cancel_order).
    OS.ACKNOWLEDGED: {"start": OS.IN_PROGRESS, "hold": OS.HELD, "cancel": OS.ASSESSING_CANCELLATION, "reject": OS.REJECTED, "complete": OS.COMPLETED},
    OS.PENDING: {"start": OS.IN_PROGRESS, "hold": OS.HELD, "cancel": OS.ASSESSING_CANCELLATION},
    OS.HELD: {"resume": OS.IN_PROGRESS, "cancel": OS.ASSESSING_CANCELLATION},
    OS.IN_PROGRESS: {"hold": OS.HELD, "cancel": OS.ASSESSING_CANCELLATION, "complete": OS.COMPLETED, "fail": OS.FAILED, "partial": OS.PARTIAL},
    OS.ASSESSING_CANCELLATION: {"confirm_cancel": OS.CANCELLED, "await_cancel": OS.PENDING_CANCELLATION, "refuse_cancel": OS.IN_PROGRESS},
    OS.PENDING_CANCELLATION: {"confirm_cancel": OS.CANCELLED},
    OS.REJECTED: {}, OS.CANCELLED: {}, OS.COMPLETED: {}, OS.FAILED: {}, OS.PARTIAL: {},
}
USER_ACTIONS = ("hold", "resume", "cancel")  # what staff and API clients may ask for; the rest is driven by items
OPEN_ORDER_STATES = (OS.ACKNOWLEDGED, OS.PENDING, OS.HELD, OS.IN_PROGRESS, OS.ASSESSING_CANCELLATION, OS.PENDING_CANCELLATION)
OPEN_ITEM_STATES = (IS.ACKNOWLEDGED, IS.PENDING, IS.HELD, IS.IN_PROGRESS)

QUOTE_TRANSITIONS: dict[str, dict[str, str]] = {
    QuoteState.IN_PROGRESS: {"approve": QuoteState.APPROVED, "submit": QuoteState.PENDING, "accept": QuoteState.ACCEPTED, "reject": QuoteState.REJECTED, "cancel": QuoteState.CANCELLED},
    QuoteState.PENDING: {"approve": QuoteState.APPROVED, "reject": QuoteState.REJECTED, "cancel": QuoteState.CANCELLED},
    QuoteState.APPROVED: {"accept": QuoteState.ACCEPTED, "reject": QuoteState.REJECTED, "cancel": QuoteState.CANCELLED},
    QuoteState.ACCEPTED: {}, QuoteState.REJECTED: {}, QuoteState.CANCELLED: {},
}


def local_date(now: datetime) -> date:
    return now.astimezone(LOCAL_TZ).date()


# --- validation ---------------------------------------------------------------------------------

@dataclass
class _Item:
    """A validated order line, ready to be carried out."""

    data: OrderItemIn
    offering: ProductOffering
    product: Product | None
    site_id: int | None
    relocation: bool


def _check_account(session: Session, account_id: int) -> Account:
    acc = session.get(Account, account_id)
    if acc is None:
        raise UnableToPlaceOrder(f"account {account_id} does not exist", field="account_id")
    if acc.status not in ("active", "pending"):
        raise OrderNotAllowed(f"account {acc.account_number} is {acc.status}; orders are only taken on active accounts", field="account_id")
    return acc


def _check_site(session: Session, *, site_id: int, account_id: int, offering: ProductOffering, n: int) -> Site:
    site = session.get(Site, site_id)
    if site is None or site.account_id != account_id:
        raise UnableToPlaceOrder(f"item {n}: site {site_id} is not a site of this account", field=f"items[{n}].site_id")
    if offering.partner_code and offering.partner_code not in (site.fno_coverage or []):
        covered = ", ".join(site.fno_coverage or []) or "no FNO"
        raise UnableToPlaceOrder(f"item {n}: {offering.partner_code} does not cover {site.line1}, {site.city} (covered by {covered})", field=f"items[{n}].site_id")
    return site


def _validate(session: Session, *, account_id: int, items: list[OrderItemIn], on: date, for_quote: bool = False) -> list[_Item]:
    """Check every item before anything is written. Raises UnableToPlaceOrder, OrderNotAllowed, PriceNotValid, OfferingNotFound."""
    out: list[_Item] = []
    touched: set[int] = set()
    for n, it in enumerate(items):
        if it.action == ItemAction.NO_CHANGE:
            continue
        product = None
        if it.action in (ItemAction.MODIFY, ItemAction.DELETE):
            if it.product_id is None:
                raise UnableToPlaceOrder(f"item {n}: a {it.action} needs the product to change", field=f"items[{n}].product_id")
            product = session.get(Product, it.product_id)
            if product is None or product.account_id != account_id:
                raise UnableToPlaceOrder(f"item {n}: product {it.product_id} is not a product of this account", field=f"items[{n}].product_id")
            if product.state not in (ProductState.ACTIVE, ProductState.SUSPENDED):
                raise OrderNotAllowed(f"item {n}: product {product.id} is {product.state}; only active or suspended products can be changed", field=f"items[{n}].product_id")
            if product.id in touched:
                raise UnableToPlaceOrder(f"item {n}: product {product.id} appears twice in this order", field=f"items[{n}].product_id")
            touched.add(product.id)
            if not for_quote:
                busy = session.execute(
                    select(ProductOrderItem.order_id).where(ProductOrderItem.product_id == product.id, ProductOrderItem.state.in_([s.value for s in OPEN_ITEM_STATES])).limit(1)
                ).scalar_one_or_none()
                if busy is not None:
                    raise OrderNotAllowed(f"item {n}: product {product.id} already has open order {busy}", field=f"items[{n}].product_id")
        offering_id = it.offering_id if it.offering_id is not None else (product.offering_id if product else None)
        if offering_id is None:
            raise UnableToPlaceOrder(f"item {n}: choose a product offering", field=f"items[{n}].offering_id")
        try:
            offering = catalog.get_offering(session, offering_id=offering_id)
        except catalog.OfferingNotFound as exc:
            raise catalog.OfferingNotFound(f"item {n}: product offering {offering_id} does not exist", field=f"items[{n}].offering_id") from exc
        if it.action == ItemAction.ADD and not offering.active:
            raise UnableToPlaceOrder(f"item {n}: {offering.code} is no longer sold", field=f"items[{n}].offering_id")
        if product is not None and it.action == ItemAction.MODIFY:
            old = session.get(ProductOffering, product.offering_id)
            if old is not None and old.kind != offering.kind:
                raise UnableToPlaceOrder(f"item {n}: cannot change a {old.kind} product into a {offering.kind} offering", field=f"items[{n}].offering_id")
        site_id = it.site_id if it.site_id is not None else (product.site_id if product else None)
        if it.action in (ItemAction.ADD, ItemAction.MODIFY):
            if offering.partner_code and site_id is None:
                raise UnableToPlaceOrder(f"item {n}: {offering.code} is delivered by {offering.partner_code} and needs a site", field=f"items[{n}].site_id")
            if site_id is not None:
                _check_site(session, site_id=site_id, account_id=account_id, offering=offering, n=n)
            try:
                catalog.price_summary(session, offering_id=offering.id, on=on)
            except catalog.PriceNotValid as exc:
                raise catalog.PriceNotValid(f"item {n}: {offering.code} has no price valid on {on.isoformat()}", field=f"items[{n}].offering_id") from exc
        if it.action == ItemAction.MODIFY and product is not None and offering.id == product.offering_id and site_id == product.site_id:
            raise UnableToPlaceOrder(f"item {n}: nothing to change (same offering and site)", field=f"items[{n}]")
        relocation = bool(product is not None and it.action == ItemAction.MODIFY and site_id != product.site_id)
        out.append(_Item(it, offering, product, site_id, relocation))
    if not out:
        raise UnableToPlaceOrder("the order has no items that change anything", field="items")
    return out


# --- placing orders -------------------------------------------------------------------------------

def _order_snap(o: ProductOrder) -> dict[str, Any]:
    return {"state": o.state, "state_reason": o.state_reason}


def _set_order_state(session: Session, *, order: ProductOrder, action: str, now: datetime, actor: Actor, reason: str | None = None) -> None:
    allowed = ORDER_TRANSITIONS[OrderState(order.state)]
    if action not in allowed:
        raise OrderTransitionNotAllowed(f"cannot {action} order {order.id} that is {order.state}; allowed: {', '.join(a for a in allowed if a in USER_ACTIONS) or 'none'}")
    before = _order_snap(order)
    order.state = allowed[action]
    if reason:
        order.state_reason = reason
    order.updated_at = now
    if order.state in (OS.COMPLETED, OS.PARTIAL, OS.FAILED, OS.CANCELLED) and order.completion_date is None:
        order.completion_date = local_date(now)
    events.record(session, now=now, actor=actor, entity_type="product_order", entity_id=order.id, account_id=order.account_id, action=action, reason=reason, before=before, after=_order_snap(order))


def _set_item_state(session: Session, *, item: ProductOrderItem, state: str, now: datetime, actor: Actor, reason: str | None = None, completion_date: date | None = None) -> None:
    before = {"state": item.state}
    item.state = state
    if reason:
        item.state_reason = reason
    if completion_date is not None:
        item.completion_date = completion_date
    events.record(session, now=now, actor=actor, entity_type="product_order_item", entity_id=item.id, account_id=item.account_id, action=state, reason=reason,
                  before=before, after={"state": state, "order_id": item.order_id, "completion_date": completion_date.isoformat() if completion_date else None})


def _submit(session: Session, *, partner_code: str, action: str, account_id: int, product_id: int, site_id: int | None, requested_date: date, reason: str,
            now: datetime, actor: Actor, order_item_id: int) -> int:
    from opsline.partners import service as partners  # lazy: partners calls back into orders

    return partners.submit_service_order(session, partner_code=partner_code, action=action, account_id=account_id, product_id=product_id, site_id=site_id,
                                         requested_date=requested_date, reason=reason, now=now, actor=actor, order_item_id=order_item_id)


def _msisdn(product_id: int) -> str:
    return f"+2760{product_id % 10_000_000:07d}"


def _equip_new_product(session: Session, *, product: Product, offering: ProductOffering, now: datetime, actor: Actor, install: bool) -> None:
    """Dispatch the bundled equipment (router from stock or a new serial; SIM installed directly). ONTs come with activation."""
    links = session.execute(select(OfferingEquipment, ProductOffering).join(ProductOffering, ProductOffering.id == OfferingEquipment.equipment_offering_id)
                            .where(OfferingEquipment.offering_id == offering.id).order_by(OfferingEquipment.id)).all()
    for link, eq in links:
        if link.owner == "fno":
            continue
        inventory.assign_equipment(session, account_id=product.account_id, product_id=product.id, equipment_offering=eq, owner=link.owner, now=now, actor=actor,
                                   install=install or eq.equipment_kind == "sim")


def _install_on_activation(session: Session, *, product: Product, offering: ProductOffering, now: datetime, actor: Actor) -> None:
    """On activation: dispatched equipment is installed; the FNO's ONT is recorded as installed."""
    for e in inventory.equipment_of(session, product_id=product.id):
        if e.state == EquipmentState.DISPATCHED:
            inventory.transition_equipment(session, equipment=e, action="install", now=now, actor=actor, reason=f"product {product.id} activated")
    has_ont = any(e.kind == "ont" for e in inventory.equipment_of(session, product_id=product.id))
    if not has_ont:
        for link, eq in session.execute(select(OfferingEquipment, ProductOffering).join(ProductOffering, ProductOffering.id == OfferingEquipment.equipment_offering_id)
                                        .where(OfferingEquipment.offering_id == offering.id, OfferingEquipment.owner == "fno")).all():
            inventory.assign_equipment(session, account_id=product.account_id, product_id=product.id, equipment_offering=eq, owner="fno", now=now, actor=actor, install=True)


def _release_equipment(session: Session, *, product: Product, now: datetime, actor: Actor, reason: str) -> None:
    """When a product ends: loaned equipment is awaited back, FNO equipment goes back to the FNO, owned equipment stays."""
    for e in inventory.equipment_of(session, product_id=product.id):
        if e.state not in (EquipmentState.DISPATCHED, EquipmentState.INSTALLED):
            continue
        if e.owner == "isp_loaned":
            inventory.transition_equipment(session, equipment=e, action="await_return", now=now, actor=actor, reason=reason)
        elif e.owner == "fno":
            inventory.transition_equipment(session, equipment=e, action="receive", now=now, actor=actor, reason=f"{reason}; stays with the FNO")


def _move_equipment(session: Session, *, old: Product, new: Product, now: datetime, actor: Actor) -> None:
    """On relocation/upgrade the customer's router moves to the new product; the old ONT stays with the FNO."""
    for e in inventory.equipment_of(session, product_id=old.id):
        if e.owner == "fno":
            if e.state in (EquipmentState.DISPATCHED, EquipmentState.INSTALLED):
                inventory.transition_equipment(session, equipment=e, action="receive", now=now, actor=actor, reason=f"product {old.id} replaced by {new.id}; stays with the FNO")
        elif e.state in (EquipmentState.DISPATCHED, EquipmentState.INSTALLED):
            e.product_id = new.id
            e.updated_at = now
            events.record(session, now=now, actor=actor, entity_type="equipment", entity_id=e.id, account_id=e.account_id, action="moved", before={"product_id": old.id}, after={"product_id": new.id})


def place_order(session: Session, *, data: OrderIn, now: datetime, actor: Actor, quote_id: int | None = None) -> ProductOrder:
    """Validate and place a product order, then start it: products are created (pendingActive when a partner delivers
    them), bundled equipment is dispatched and partner service orders are submitted; items without a partner complete
    at once on the requested date. Everything happens in the caller's transaction, so a failure leaves nothing behind.
    Raises UnableToPlaceOrder, OrderNotAllowed (account suspended/closed, product busy), DuplicateOrderReference,
    catalog.OfferingNotFound, catalog.PriceNotValid, and the partners area's UnableToSubmitServiceOrder."""
    _check_account(session, data.account_id)
    today = local_date(now)
    start = data.requested_start_date or today
    if start < today:
        raise UnableToPlaceOrder(f"requested start date {start.isoformat()} is in the past", field="requested_start_date")
    if data.requested_completion_date and data.requested_completion_date < start:
        raise UnableToPlaceOrder("requested completion date is before the requested start date", field="requested_completion_date")
    if data.external_id:
        dup = session.execute(select(ProductOrder.id).where(ProductOrder.account_id == data.account_id, ProductOrder.external_id == data.external_id)).scalar_one_or_none()
        if dup is not None:
            raise DuplicateOrderReference(f"order reference '{data.external_id}' was already used for order {dup} on this account", field="external_id")
    items = _validate(session, account_id=data.account_id, items=data.items, on=start)
    order = ProductOrder(account_id=data.account_id, external_id=data.external_id, state=OS.ACKNOWLEDGED.value, requested_start_date=start,
                         requested_completion_date=data.requested_completion_date, channel=data.channel, priority=data.priority, quote_id=quote_id,
                         description=data.description, created_at=now, updated_at=now)
    session.add(order)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="product_order", entity_id=order.id, account_id=order.account_id, action="placed",
                  after={"state": order.state, "external_id": order.external_id, "items": [{"action": i.data.action, "offering": i.offering.code, "product_id": i.product.id if i.product else None, "site_id": i.site_id} for i in items], "quote_id": quote_id})
    for it in items:
        _start_item(session, order=order, it=it, start=start, now=now, actor=actor)
    _roll_up(session, order=order, now=now, actor=actor, first=True)
    return order


def _start_item(session: Session, *, order: ProductOrder, it: _Item, start: date, now: datetime, actor: Actor) -> ProductOrderItem:
    o = it.offering
    item = ProductOrderItem(order_id=order.id, account_id=order.account_id, action=it.data.action, offering_id=o.id, product_id=it.product.id if it.product else None,
                            site_id=it.site_id, state=IS.ACKNOWLEDGED.value, quantity=it.data.quantity)
    session.add(item)
    session.flush()
    why = f"order {order.id}"
    if it.data.action == ItemAction.ADD:
        product = inventory.create_product(session, account_id=order.account_id, offering=o, site_id=it.site_id, order_id=order.id, now=now, actor=actor, reason=why)
        if o.kind == "mobile":
            product.msisdn = _msisdn(product.id)
        item.result_product_id = product.id
        if o.partner_code:
            inventory.transition_product(session, product=product, action="submit", now=now, actor=actor, reason=why)
            _equip_new_product(session, product=product, offering=o, now=now, actor=actor, install=False)
            item.partner_service_order_id = _submit(session, partner_code=o.partner_code, action="add", account_id=order.account_id, product_id=product.id,
                                                    site_id=it.site_id, requested_date=start, reason=why, now=now, actor=actor, order_item_id=item.id)
            _set_item_state(session, item=item, state=IS.IN_PROGRESS, now=now, actor=actor, reason=f"service order {item.partner_service_order_id} sent to {o.partner_code}")
        else:
            _equip_new_product(session, product=product, offering=o, now=now, actor=actor, install=True)
            inventory.transition_product(session, product=product, action="activate", now=now, actor=actor, reason=why, effective_date=start)
            _set_item_state(session, item=item, state=IS.COMPLETED, now=now, actor=actor, completion_date=start)
    elif it.data.action == ItemAction.MODIFY:
        old = it.product
        assert old is not None
        new = inventory.create_product(session, account_id=order.account_id, offering=o, site_id=it.site_id, order_id=order.id, now=now, actor=actor,
                                       replaces_product_id=old.id, msisdn=old.msisdn, reason=("relocation, " if it.relocation else "change, ") + why)
        item.result_product_id = new.id
        partner = o.partner_code
        if partner:
            inventory.transition_product(session, product=new, action="submit", now=now, actor=actor, reason=why)
            item.partner_service_order_id = _submit(session, partner_code=partner, action="modify", account_id=order.account_id, product_id=new.id,
                                                    site_id=it.site_id, requested_date=start, reason=("relocation, " if it.relocation else "") + why, now=now, actor=actor, order_item_id=item.id)
            _set_item_state(session, item=item, state=IS.IN_PROGRESS, now=now, actor=actor, reason=f"service order {item.partner_service_order_id} sent to {partner}")
        else:
            _switch(session, old=old, new=new, on=start, now=now, actor=actor, reason=why)
            _set_item_state(session, item=item, state=IS.COMPLETED, now=now, actor=actor, completion_date=start)
    elif it.data.action == ItemAction.DELETE:
        product = it.product
        assert product is not None
        item.result_product_id = product.id
        if product.partner_code:
            inventory.transition_product(session, product=product, action="request_termination", now=now, actor=actor, reason=why)
            item.partner_service_order_id = _submit(session, partner_code=product.partner_code, action="delete", account_id=order.account_id, product_id=product.id,
                                                    site_id=product.site_id, requested_date=start, reason=why, now=now, actor=actor, order_item_id=item.id)
            _set_item_state(session, item=item, state=IS.IN_PROGRESS, now=now, actor=actor, reason=f"service order {item.partner_service_order_id} sent to {product.partner_code}")
        else:
            inventory.transition_product(session, product=product, action="terminate", now=now, actor=actor, reason=why, effective_date=start)
            _release_equipment(session, product=product, now=now, actor=actor, reason=why)
            _set_item_state(session, item=item, state=IS.COMPLETED, now=now, actor=actor, completion_date=start)
    return item


def _switch(session: Session, *, old: Product, new: Product, on: date, now: datetime, actor: Actor, reason: str) -> None:
    """The old product ends and the new one starts on the same day: no gap, no overlap."""
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
    _move_equipment(session, old=old, new=new, now=now, actor=actor)
    _install_on_activation(session, product=new, offering=offering, now=now, actor=actor)


def _roll_up(session: Session, *, order: ProductOrder, now: datetime, actor: Actor, first: bool = False) -> None:
    """Order state from its items: in progress while any is open; completed, partial or failed when all are done."""
    if order.state in (OS.CANCELLED, OS.REJECTED, OS.COMPLETED, OS.FAILED, OS.PARTIAL):
        return
    states = [s for (s,) in session.execute(select(ProductOrderItem.state).where(ProductOrderItem.order_id == order.id))]
    if any(s in OPEN_ITEM_STATES for s in states):
        if order.state in (OS.ACKNOWLEDGED, OS.PENDING):
            _set_order_state(session, order=order, action="start", now=now, actor=actor)
        return
    done = [s for s in states if s == IS.COMPLETED]
    if order.state in (OS.ACKNOWLEDGED, OS.PENDING, OS.HELD):
        _set_order_state(session, order=order, action="resume" if order.state == OS.HELD else "start", now=now, actor=actor)
    if order.state == OS.PENDING_CANCELLATION:
        _set_order_state(session, order=order, action="confirm_cancel", now=now, actor=actor)
        return
    if len(done) == len(states):
        _set_order_state(session, order=order, action="complete", now=now, actor=actor)
    elif done:
        _set_order_state(session, order=order, action="partial", now=now, actor=actor, reason="some items failed")
    else:
        _set_order_state(session, order=order, action="fail", now=now, actor=actor, reason="every item failed")


# --- partner callback ----------------------------------------------------------------------------

def on_partner_order_update(
    session: Session, *, service_order_id: int, product_id: int, action: str, state: str, confirmed_date: date | None, reason: str | None, now: datetime, actor: Actor,
) -> None:
    """A partner service order changed state. 'completed' activates (add), terminates (delete) or switches old → new
    product (modify/relocation) on the partner's confirmed date; 'failed'/'rejected' fail the item with the reason and
    undo what was prepared. Updates for items no longer open (e.g. a cancelled order) are recorded and ignored."""
    item = session.execute(select(ProductOrderItem).where(ProductOrderItem.partner_service_order_id == service_order_id)).scalar_one_or_none()
    if item is None:
        item = session.execute(select(ProductOrderItem).where(ProductOrderItem.result_product_id == product_id).order_by(ProductOrderItem.id.desc()).limit(1)).scalar_one_or_none()
    if item is None:
        return
    order = session.get(ProductOrder, item.order_id)
    assert order is not None
    if item.state not in [s.value for s in OPEN_ITEM_STATES]:
        events.record(session, now=now, actor=actor, entity_type="product_order_item", entity_id=item.id, account_id=item.account_id, action="partner_update_ignored",
                      reason=f"partner reported {state} but the item is {item.state}", after={"service_order_id": service_order_id, "state": state})
        return
    product = session.get(Product, item.result_product_id or product_id)
    assert product is not None
    offering = session.get(ProductOffering, product.offering_id)
    assert offering is not None
    if state == "inProgress":
        if item.state != IS.IN_PROGRESS:
            _set_item_state(session, item=item, state=IS.IN_PROGRESS, now=now, actor=actor, reason=reason)
        _roll_up(session, order=order, now=now, actor=actor)
        return
    if state == "completed":
        on = confirmed_date or local_date(now)
        if item.action == ItemAction.ADD:
            inventory.transition_product(session, product=product, action="activate", now=now, actor=actor, reason=f"confirmed by {product.partner_code}", effective_date=on)
            if product.partner_line_ref is None and product.partner_code:
                product.partner_line_ref = f"{product.partner_code[:3].upper()}-{service_order_id:08d}"
            _install_on_activation(session, product=product, offering=offering, now=now, actor=actor)
        elif item.action == ItemAction.DELETE:
            if product.state == ProductState.PENDING_TERMINATE or product.state in (ProductState.ACTIVE, ProductState.SUSPENDED):
                inventory.transition_product(session, product=product, action="terminate", now=now, actor=actor, reason=f"line ceased by {product.partner_code}", effective_date=on)
            _release_equipment(session, product=product, now=now, actor=actor, reason=f"product {product.id} terminated")
        elif item.action == ItemAction.MODIFY:
            old = session.get(Product, product.replaces_product_id) if product.replaces_product_id else None
            assert old is not None
            if product.partner_line_ref is None and product.partner_code:
                product.partner_line_ref = f"{product.partner_code[:3].upper()}-{service_order_id:08d}"
            _switch(session, old=old, new=product, on=on, now=now, actor=actor, reason=f"confirmed by {product.partner_code}")
        _set_item_state(session, item=item, state=IS.COMPLETED, now=now, actor=actor, reason=reason, completion_date=on)
        _roll_up(session, order=order, now=now, actor=actor)
        return
    if state in ("failed", "rejected", "cancelled"):
        why = f"{product.partner_code or 'partner'} {state}: {reason or 'no reason given'}"
        _undo_item(session, item=item, product=product, now=now, actor=actor, reason=why)
        _set_item_state(session, item=item, state=IS.FAILED, now=now, actor=actor, reason=why)
        _roll_up(session, order=order, now=now, actor=actor)


def _undo_item(session: Session, *, item: ProductOrderItem, product: Product, now: datetime, actor: Actor, reason: str) -> None:
    """An item will not happen: a new product is never activated (equipment comes back); a product due to end stays active."""
    if item.action in (ItemAction.ADD, ItemAction.MODIFY):
        if product.state in (ProductState.CREATED, ProductState.PENDING_ACTIVE):
            inventory.transition_product(session, product=product, action="abandon", now=now, actor=actor, reason=reason)
        for e in inventory.equipment_of(session, product_id=product.id):
            if (e.state == EquipmentState.DISPATCHED and e.owner != "fno") or (e.state == EquipmentState.INSTALLED and e.owner == "isp_loaned"):
                inventory.transition_equipment(session, equipment=e, action="await_return", now=now, actor=actor, reason=reason)
    elif item.action == ItemAction.DELETE and product.state == ProductState.PENDING_TERMINATE:
        inventory.transition_product(session, product=product, action="keep", now=now, actor=actor, reason=reason)


# --- order actions -------------------------------------------------------------------------------

def get_order(session: Session, *, order_id: int) -> ProductOrder:
    """Raises OrderNotFound."""
    o = session.get(ProductOrder, order_id) if 0 < order_id < 2**62 else None
    if o is None:
        raise OrderNotFound(f"product order {order_id} not found")
    return o


def allowed_actions(state: str) -> list[str]:
    return [a for a in ORDER_TRANSITIONS[OrderState(state)] if a in USER_ACTIONS]


def order_action(session: Session, *, order_id: int, action: str, now: datetime, actor: Actor, reason: str | None, version: int | None = None) -> list[str]:
    """Hold, resume or cancel an order. Returns the next allowed actions.
    Raises OrderNotFound, InvalidInput (no reason for cancel/hold), OrderTransitionNotAllowed, OrderCancellationNotAllowed, StaleVersion."""
    order = get_order(session, order_id=order_id)
    if version is not None and version != order.version:
        raise StaleVersion(f"order {order.id} was changed by someone else (version {order.version}, you had {version}); reload and try again")
    if action not in USER_ACTIONS:
        raise OrderTransitionNotAllowed(f"'{action}' is not an order action; use one of {', '.join(USER_ACTIONS)}")
    if action in ("cancel", "hold") and not (reason and reason.strip()):
        raise InvalidInput("a reason is required", field="reason")
    if action == "cancel":
        cancel_order(session, order=order, now=now, actor=actor, reason=reason or "")
    else:
        _set_order_state(session, order=order, action=action, now=now, actor=actor, reason=reason)
    try:
        session.flush()
    except StaleDataError as exc:
        raise StaleVersion(f"order {order.id} was changed by someone else; reload and try again") from exc
    return allowed_actions(order.state)


def cancel_order(session: Session, *, order: ProductOrder, now: datetime, actor: Actor, reason: str) -> None:
    """TMF622 cancellation: the order goes to assessingCancellation; it is refused when an item has already completed
    (the change happened: order a reversal instead); otherwise open items are cancelled (their partner service orders
    too, where the partner has not received them yet), prepared products are abandoned and the order is cancelled.
    Raises OrderTransitionNotAllowed, OrderCancellationNotAllowed."""
    if "cancel" not in ORDER_TRANSITIONS[OrderState(order.state)]:
        raise OrderTransitionNotAllowed(f"cannot cancel order {order.id} that is {order.state}")
    items = list(session.execute(select(ProductOrderItem).where(ProductOrderItem.order_id == order.id).order_by(ProductOrderItem.id)).scalars())
    done = [i for i in items if i.state == IS.COMPLETED]
    if done:
        raise OrderCancellationNotAllowed(f"order {order.id} cannot be cancelled: item {done[0].id} is already completed; place a new order to reverse it")
    _set_order_state(session, order=order, action="cancel", now=now, actor=actor, reason=reason)
    from opsline.partners import service as partners

    for item in items:
        if item.state not in [s.value for s in OPEN_ITEM_STATES]:
            continue
        if item.partner_service_order_id is not None:
            try:
                with session.begin_nested():
                    partners.cancel_service_order(session, service_order_id=item.partner_service_order_id, now=now, actor=actor, reason=f"order {order.id} cancelled: {reason}")
            except (TransitionNotAllowed, NotFound) as exc:
                events.record(session, now=now, actor=actor, entity_type="product_order_item", entity_id=item.id, account_id=item.account_id, action="partner_cancel_requested",
                              reason=f"{exc.detail}; confirm with the partner")
        product = session.get(Product, item.result_product_id) if item.result_product_id else None
        if product is not None:
            _undo_item(session, item=item, product=product, now=now, actor=actor, reason=f"order {order.id} cancelled")
        _set_item_state(session, item=item, state=IS.CANCELLED, now=now, actor=actor, reason=reason)
    _set_order_state(session, order=order, action="confirm_cancel", now=now, actor=actor, reason=reason)


# --- queries -------------------------------------------------------------------------------------

def order_dict(o: ProductOrder, *, now: datetime | None = None) -> dict[str, Any]:
    return {
        "id": o.id, "account_id": o.account_id, "external_id": o.external_id, "state": o.state, "requested_start_date": o.requested_start_date,
        "requested_completion_date": o.requested_completion_date, "completion_date": o.completion_date, "channel": o.channel, "priority": o.priority,
        "quote_id": o.quote_id, "description": o.description, "state_reason": o.state_reason, "created_at": o.created_at, "updated_at": o.updated_at,
        "version": o.version, "allowed_actions": allowed_actions(o.state),
        "age_days": (local_date(now) - local_date(o.created_at)).days if now else None,
    }


def items_of(session: Session, *, order_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    rows = session.execute(
        select(ProductOrderItem, ProductOffering.code, ProductOffering.name, ProductOffering.partner_code, Site.line1, Site.city)
        .join(ProductOffering, ProductOffering.id == ProductOrderItem.offering_id).outerjoin(Site, Site.id == ProductOrderItem.site_id)
        .where(ProductOrderItem.order_id.in_(order_ids)).order_by(ProductOrderItem.id)
    ).all()
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in order_ids}
    for it, code, name, partner, line1, city in rows:
        out[it.order_id].append({
            "id": it.id, "order_id": it.order_id, "action": it.action, "offering_id": it.offering_id, "offering_code": code, "offering_name": name, "partner_code": partner,
            "product_id": it.product_id, "site_id": it.site_id, "site_address": ", ".join(x for x in (line1, city) if x) or None, "state": it.state, "quantity": it.quantity,
            "result_product_id": it.result_product_id, "partner_service_order_id": it.partner_service_order_id, "state_reason": it.state_reason, "completion_date": it.completion_date,
        })
    return out


def order_detail(session: Session, *, order_id: int, now: datetime) -> dict[str, Any]:
    """The order with items, account and partner service orders (with messages) when the partners area provides them. Raises OrderNotFound."""
    o = get_order(session, order_id=order_id)
    acc = session.get(Account, o.account_id)
    d = order_dict(o, now=now) | {"items": items_of(session, order_ids=[o.id])[o.id]}
    d["account"] = {"id": acc.id, "account_number": acc.account_number, "name": acc.name, "status": acc.status} if acc else None
    d["service_orders"] = []
    try:
        from opsline.partners import service as partners

        fn = getattr(partners, "service_orders_for_order", None)
        if fn is not None:
            d["service_orders"] = fn(session, order_id=o.id, now=now)
    except ImportError:
        pass
    d["history"] = events.history(session, entity_type="product_order", entity_id=o.id)
    return d


def list_orders(
    session: Session, *, now: datetime, state: str | None = None, account_id: int | None = None, open_only: bool = False, older_than_days: int | None = None,
    q: str | None = None, offset: int = 0, limit: int = 50,
) -> list[dict[str, Any]]:
    """Orders newest first with their account and item summary; filters by state, account, openness and age."""
    query = select(ProductOrder, Account.account_number, Account.name).join(Account, Account.id == ProductOrder.account_id)
    if state:
        query = query.where(ProductOrder.state == state)
    if open_only:
        query = query.where(ProductOrder.state.in_([s.value for s in OPEN_ORDER_STATES]))
    if account_id is not None:
        query = query.where(ProductOrder.account_id == account_id)
    if older_than_days:
        from datetime import timedelta

        query = query.where(ProductOrder.created_at < now - timedelta(days=older_than_days))
    if q:
        term = q.strip()
        query = query.where((Account.account_number == term) | (ProductOrder.external_id == term) | func.lower(Account.name).like(f"%{term.lower()}%"))
    rows = session.execute(query.order_by(ProductOrder.id.desc()).offset(offset).limit(limit)).all()
    items = items_of(session, order_ids=[r[0].id for r in rows])
    return [order_dict(o, now=now) | {"account_number": num, "account_name": name, "items": items[o.id]} for o, num, name in rows]


def order_counts(session: Session) -> dict[str, int]:
    return {s: n for s, n in session.execute(select(ProductOrder.state, func.count()).group_by(ProductOrder.state))}


# --- quotes --------------------------------------------------------------------------------------

def create_quote(session: Session, *, data: QuoteIn, now: datetime, actor: Actor) -> Quote:
    """Price the items from the catalog on the requested start date (recurring per month and once-off, with VAT).
    Raises UnableToPlaceOrder, OrderNotAllowed, DuplicateOrderReference, catalog.OfferingNotFound, catalog.PriceNotValid, catalog.UnknownTaxRate."""
    acc = _check_account(session, data.account_id)
    start = data.requested_start_date or local_date(now)
    if data.external_id and session.execute(select(Quote.id).where(Quote.account_id == acc.id, Quote.external_id == data.external_id)).first():
        raise DuplicateOrderReference(f"quote reference '{data.external_id}' was already used on this account", field="external_id")
    items = _validate(session, account_id=acc.id, items=data.items, on=start, for_quote=True)
    quote = Quote(account_id=acc.id, external_id=data.external_id, state=QuoteState.IN_PROGRESS.value, description=data.description, currency=acc.currency,
                  requested_start_date=start, valid_until=data.valid_until, created_at=now, updated_at=now)
    session.add(quote)
    session.flush()
    for it in items:
        s = catalog.price_summary(session, offering_id=it.offering.id, on=start, quantity=it.data.quantity, include_router=it.offering.contract_months == 0)
        if it.data.action != ItemAction.ADD:
            s = s | {"one_off_minor": 0, "one_off_tax_minor": 0} if it.data.action == ItemAction.MODIFY and not it.relocation else s
        if it.data.action == ItemAction.DELETE:
            s = s | {"recurring_minor": 0, "recurring_tax_minor": 0, "one_off_minor": 0, "one_off_tax_minor": 0}
        session.add(QuoteItem(quote_id=quote.id, account_id=acc.id, action=it.data.action, offering_id=it.offering.id, product_id=it.product.id if it.product else None,
                              site_id=it.site_id, quantity=it.data.quantity, currency=s["currency"], recurring_minor=s["recurring_minor"], recurring_tax_minor=s["recurring_tax_minor"],
                              one_off_minor=s["one_off_minor"], one_off_tax_minor=s["one_off_tax_minor"]))
        quote.recurring_total_minor += s["recurring_minor"]
        quote.recurring_tax_minor += s["recurring_tax_minor"]
        quote.one_off_total_minor += s["one_off_minor"]
        quote.one_off_tax_minor += s["one_off_tax_minor"]
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="quote", entity_id=quote.id, account_id=acc.id, action="created",
                  after={"recurring_total_minor": quote.recurring_total_minor, "one_off_total_minor": quote.one_off_total_minor, "currency": quote.currency})
    return quote


def get_quote(session: Session, *, quote_id: int) -> Quote:
    q = session.get(Quote, quote_id) if 0 < quote_id < 2**62 else None
    if q is None:
        raise QuoteNotFound(f"quote {quote_id} not found")
    return q


def quote_action(session: Session, *, quote_id: int, action: str, now: datetime, actor: Actor, reason: str | None = None) -> Quote:
    """approve / submit / reject / cancel / accept a quote. Accepting places a product order from its items (on the later of
    the quote's requested start and today); if the order cannot be placed nothing changes.
    Raises QuoteNotFound, QuoteTransitionNotAllowed, and whatever place_order raises."""
    quote = get_quote(session, quote_id=quote_id)
    allowed = QUOTE_TRANSITIONS[QuoteState(quote.state)]
    if action not in allowed:
        raise QuoteTransitionNotAllowed(f"cannot {action} quote {quote.id} that is {quote.state}; allowed: {', '.join(allowed) or 'none'}")
    if quote.valid_until and action == "accept" and local_date(now) > quote.valid_until:
        raise QuoteTransitionNotAllowed(f"quote {quote.id} expired on {quote.valid_until.isoformat()}")
    before = quote.state
    if action == "accept":
        qitems = session.execute(select(QuoteItem).where(QuoteItem.quote_id == quote.id).order_by(QuoteItem.id)).scalars()
        start = max(quote.requested_start_date or local_date(now), local_date(now))
        order = place_order(session, data=OrderIn(account_id=quote.account_id, requested_start_date=start, channel="quote", description=quote.description,
                                                  items=[OrderItemIn(action=i.action, offering_id=i.offering_id, product_id=i.product_id, site_id=i.site_id, quantity=i.quantity) for i in qitems]),
                            now=now, actor=actor, quote_id=quote.id)
        quote.product_order_id = order.id
    quote.state = allowed[action]
    if reason:
        quote.state_reason = reason
    quote.updated_at = now
    events.record(session, now=now, actor=actor, entity_type="quote", entity_id=quote.id, account_id=quote.account_id, action=action, reason=reason,
                  before={"state": before}, after={"state": quote.state, "product_order_id": quote.product_order_id})
    return quote


def quote_detail(session: Session, *, quote_id: int) -> dict[str, Any]:
    q = get_quote(session, quote_id=quote_id)
    rows = session.execute(select(QuoteItem, ProductOffering.code, ProductOffering.name).join(ProductOffering, ProductOffering.id == QuoteItem.offering_id)
                           .where(QuoteItem.quote_id == q.id).order_by(QuoteItem.id)).all()
    acc = session.get(Account, q.account_id)
    return {
        "id": q.id, "account_id": q.account_id, "account_number": acc.account_number if acc else None, "account_name": acc.name if acc else None,
        "external_id": q.external_id, "state": q.state, "description": q.description, "currency": q.currency,
        "requested_start_date": q.requested_start_date, "valid_until": q.valid_until, "recurring_total_minor": q.recurring_total_minor, "recurring_tax_minor": q.recurring_tax_minor,
        "one_off_total_minor": q.one_off_total_minor, "one_off_tax_minor": q.one_off_tax_minor,
        "recurring_incl_minor": q.recurring_total_minor + q.recurring_tax_minor, "one_off_incl_minor": q.one_off_total_minor + q.one_off_tax_minor,
        "product_order_id": q.product_order_id, "state_reason": q.state_reason, "created_at": q.created_at, "updated_at": q.updated_at, "version": q.version,
        "allowed_actions": list(QUOTE_TRANSITIONS[QuoteState(q.state)]),
        "items": [{"id": i.id, "action": i.action, "offering_id": i.offering_id, "offering_code": code, "offering_name": name, "product_id": i.product_id, "site_id": i.site_id,
                   "quantity": i.quantity, "currency": i.currency, "recurring_minor": i.recurring_minor, "recurring_tax_minor": i.recurring_tax_minor,
                   "one_off_minor": i.one_off_minor, "one_off_tax_minor": i.one_off_tax_minor} for i, code, name in rows],
    }


def list_quotes(session: Session, *, account_id: int | None = None, state: str | None = None, offset: int = 0, limit: int = 50) -> list[dict[str, Any]]:
    q = select(Quote.id)
    if account_id is not None:
        q = q.where(Quote.account_id == account_id)
    if state:
        q = q.where(Quote.state == state)
    ids = list(session.execute(q.order_by(Quote.id.desc()).offset(offset).limit(limit)).scalars())
    return [quote_detail(session, quote_id=i) for i in ids]
