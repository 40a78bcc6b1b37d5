"""Installed products (subscriptions) and customer equipment: lifecycles, queries and account-page panels."""

from __future__ import annotations

import calendar
from datetime import date, datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from opsline.api.tmf import sort_clauses
from opsline.catalog import service as catalog
from opsline.catalog.models import ProductOffering
from opsline.core import domain_events, events, lifecycle
from opsline.core.errors import InvalidInput, NotFound, StaleVersion
from opsline.core.events import Actor
from opsline.customers.models import Account, Site
from opsline.orders.models import ProductOrderItem
from opsline.inventory.models import EQUIPMENT, PRODUCT, Equipment, EquipmentEvent, EquipmentState, Product, ProductState

PS = ProductState
ES = EquipmentState


class ProductNotFound(NotFound):
    pass


class EquipmentNotFound(NotFound):
    pass


class UnableToTerminateProduct(InvalidInput):
    """A termination that cannot be right: before the product started, or of a product already ended."""

    title = "Cannot terminate product"
    type_slug = "unable-to-terminate-product"


PRODUCT_CREATED = "inventory.product_created"  # {"id"}: a new product (TMF637 ProductCreateEvent)
PRODUCT_CHANGED = "inventory.product_changed"  # {"id", "attributes"}: its record corrected (msisdn, partner_line_ref)

def get_product(session: Session, *, product_id: int, account_id: int | None = None) -> Product:
    """Raises ProductNotFound (also when it belongs to another account)."""
    p = session.get(Product, product_id) if 0 < product_id < 2**62 else None
    if p is None or (account_id is not None and p.account_id != account_id):
        raise ProductNotFound(f"product {product_id} not found" + (f" on account {account_id}" if account_id else ""), field="product.id")
    return p


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


def create_product(
    session: Session, *, account_id: int, offering: ProductOffering, site_id: int | None, order_id: int | None, now: datetime, actor: Actor,
    replaces_product_id: int | None = None, msisdn: str | None = None, reason: str | None = None,
) -> Product:
    """A new product in state 'created' (not billable until activated)."""
    p = Product(
        account_id=account_id, offering_id=offering.id, site_id=site_id, state=PS.CREATED.value, contract_months=offering.contract_months,
        partner_code=offering.partner_code, order_id=order_id, replaces_product_id=replaces_product_id, msisdn=msisdn, created_at=now, updated_at=now,
    )
    session.add(p)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="product", entity_id=p.id, account_id=account_id, action="created", reason=reason,
                  after={"offering": offering.code, "site_id": site_id, "order_id": order_id, "replaces_product_id": replaces_product_id})
    domain_events.publish(session, PRODUCT_CREATED, {"id": p.id}, now=now, actor=actor)
    return p


def add_months(d: date, months: int) -> date:
    """The same day `months` later (the month's last day when it is shorter: 31 Jan + 1 = 28/29 Feb)."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def check_termination(product: Product, *, on: date) -> None:
    """Raises UnableToTerminateProduct when `product` cannot end on `on` (exclusive end date): it already ended,
    or `on` is before its first billable day."""
    if product.state == PS.TERMINATED:
        ended = f" on {product.end_date.isoformat()}" if product.end_date else ""
        raise UnableToTerminateProduct(f"product {product.id} was already terminated{ended}", field="product.id",
                                       extra={"state": product.state})
    if product.start_date is not None and on < product.start_date:
        raise UnableToTerminateProduct(
            f"product {product.id} cannot end on {on.isoformat()}: it was activated on {product.start_date.isoformat()}",
            field="requested_start_date")


def update_product_details(session: Session, *, product_id: int, now: datetime, actor: Actor, msisdn: str | None = None,
                           partner_line_ref: str | None = None, version: int | None = None) -> Product:
    """Correct what a product record says without changing the service (TMF637 PATCH): its mobile number and the
    partner's line reference. Audited. Raises ProductNotFound, StaleVersion (`version` not the stored one), InvalidInput
    (a finished product)."""
    p = get_product(session, product_id=product_id)
    if version is not None and version != p.version:
        raise StaleVersion(f"product {p.id} was changed by someone else (version {p.version}, you had {version}); reload and try again")
    if p.state == PS.TERMINATED:
        raise InvalidInput(f"product {p.id} is {p.state}; its record is final", field="product.id")
    before, after = {}, {}
    for attr, value in (("msisdn", msisdn), ("partner_line_ref", partner_line_ref)):
        if value is not None and value != getattr(p, attr):
            before[attr], after[attr] = getattr(p, attr), value
            setattr(p, attr, value)
    if after:
        p.updated_at = now
        session.flush()
        events.record(session, now=now, actor=actor, entity_type="product", entity_id=p.id, account_id=p.account_id, action="details_corrected",
                      before=before, after=after)
        domain_events.publish(session, PRODUCT_CHANGED, {"id": p.id, "attributes": sorted(after)}, now=now, actor=actor)
    return p


def transition_product(session: Session, *, product: Product, action: str, now: datetime, actor: Actor, reason: str | None = None,
                       effective_date: date | None = None) -> list[str]:
    """Apply a product lifecycle action (core/lifecycle PRODUCT; publishes `product.<state>`). 'activate' sets
    start_date (and the contract end) to `effective_date`; 'terminate' sets end_date (exclusive) to it; 'abandon' ends a
    never-activated product. Returns the next allowed actions.
    Raises TransitionNotAllowed, ReasonRequired, InvalidInput (activate/terminate without the date),
    UnableToTerminateProduct (terminating twice, an end before the start); nothing changes when it raises."""
    dated = action in ("activate", "terminate")
    if dated and effective_date is None and PRODUCT.target(product.state, action) is not None:
        raise InvalidInput(f"{action} needs the effective date (the product's first billable or first non-billable day)", field="effective_date")
    if action == "terminate" and effective_date is not None:
        check_termination(product, on=effective_date)
    details: dict[str, Any] = {"offering_id": product.offering_id, "partner_code": product.partner_code, "site_id": product.site_id}
    if action == "activate" and effective_date is not None:
        details |= {"start_date": effective_date.isoformat(),
                    "contract_end_date": _iso(add_months(effective_date, product.contract_months)) if product.contract_months else None}
    elif action == "terminate" and effective_date is not None:
        details |= {"start_date": _iso(product.start_date), "end_date": effective_date.isoformat(), "replaces_product_id": product.replaces_product_id}
    nxt = lifecycle.transition(session, PRODUCT, product, action, now=now, actor=actor, reason=reason, details=details)
    if action == "activate":
        product.start_date = effective_date
        product.contract_end_date = add_months(effective_date, product.contract_months) if product.contract_months and effective_date else None
        product.end_date = None
    elif action == "terminate":
        product.end_date = effective_date
    if reason:
        product.state_reason = reason
    product.updated_at = now
    return nxt


def transition_equipment(session: Session, *, equipment: Equipment, action: str, now: datetime, actor: Actor, reason: str | None = None) -> list[str]:
    """Apply an equipment lifecycle action (core/lifecycle EQUIPMENT) and write its history row. Raises TransitionNotAllowed."""
    before = equipment.state
    nxt = lifecycle.transition(session, EQUIPMENT, equipment, action, now=now, actor=actor, reason=reason,
                               details={"serial_number": equipment.serial_number, "product_id": equipment.product_id},
                               label=f"{equipment.kind} {equipment.serial_number}")
    equipment.updated_at = now
    session.add(EquipmentEvent(equipment_id=equipment.id, account_id=equipment.account_id, at=now, from_state=before, to_state=equipment.state, reason=reason, actor=actor.name))
    return nxt


# --- reactions to the account's lifecycle ---------------------------------------------------------

def suspend_account_products(session: Session, *, account_id: int, now: datetime, actor: Actor, reason: str) -> list[int]:
    """Suspend every active product of the account (suspension for non-payment). Each publishes `product.suspended`,
    which tells the partner. Returns the suspended product ids."""
    products = list(session.execute(select(Product).where(Product.account_id == account_id, Product.state == PS.ACTIVE.value)
                                    .order_by(Product.id)).scalars())
    for p in products:
        transition_product(session, product=p, action="suspend", now=now, actor=actor, reason=reason)
    return [p.id for p in products]


def resume_account_products(session: Session, *, account_id: int, now: datetime, actor: Actor, reason: str) -> list[int]:
    """Resume every suspended product of the account (reconnection). Each publishes `product.active` (action resume),
    which tells the partner. Returns the resumed product ids."""
    products = list(session.execute(select(Product).where(Product.account_id == account_id, Product.state == PS.SUSPENDED.value)
                                    .order_by(Product.id)).scalars())
    for p in products:
        transition_product(session, product=p, action="resume", now=now, actor=actor, reason=reason)
    return [p.id for p in products]


def get_equipment(session: Session, *, equipment_id: int) -> Equipment:
    e = session.get(Equipment, equipment_id) if 0 < equipment_id < 2**62 else None
    if e is None:
        raise EquipmentNotFound(f"equipment {equipment_id} not found")
    return e


def assign_equipment(
    session: Session, *, account_id: int, product_id: int, equipment_offering: ProductOffering, owner: str, now: datetime, actor: Actor, install: bool = False,
) -> Equipment:
    """Take a unit of the equipment offering from stock (oldest first) or register a new serial, assign it to the
    product and dispatch it (or install it directly, e.g. an FNO's ONT or a SIM)."""
    kind = equipment_offering.equipment_kind or "router"
    unit = None
    if owner != "fno":
        unit = session.execute(
            select(Equipment).where(Equipment.state == ES.IN_STOCK.value, Equipment.kind == kind, Equipment.account_id.is_(None),
                                    (Equipment.offering_id == equipment_offering.id) | Equipment.offering_id.is_(None)).order_by(Equipment.id).limit(1)
        ).scalar_one_or_none()
    if unit is None:
        prefix = {"router": "AXR", "ont": "ONT", "sim": "8927"}[kind]
        n = session.execute(select(func.count(Equipment.id)).where(Equipment.product_id == product_id)).scalar_one()
        unit = Equipment(kind=kind, model=equipment_offering.name, serial_number=f"{prefix}{product_id:010d}{n}", owner=owner, state=ES.IN_STOCK.value,
                         offering_id=equipment_offering.id, created_at=now, updated_at=now)
        session.add(unit)
        session.flush()
    unit.account_id, unit.product_id, unit.owner = account_id, product_id, owner
    transition_equipment(session, equipment=unit, action="install" if install else "dispatch", now=now, actor=actor, reason=f"for product {product_id}")
    return unit


def equipment_of(session: Session, *, product_id: int) -> list[Equipment]:
    return list(session.execute(select(Equipment).where(Equipment.product_id == product_id).order_by(Equipment.id)).scalars())


# --- queries -------------------------------------------------------------------------------------

def _product_query():  # type: ignore[no-untyped-def]
    return (
        select(Product, ProductOffering.code, ProductOffering.name, ProductOffering.kind, Site.line1, Site.suburb, Site.city)
        .join(ProductOffering, ProductOffering.id == Product.offering_id)
        .outerjoin(Site, Site.id == Product.site_id)
    )


def _product_row(r: Any) -> dict[str, Any]:
    p = r[0]
    return {
        "id": p.id, "account_id": p.account_id, "offering_id": p.offering_id, "offering_code": r[1], "offering_name": r[2], "offering_kind": r[3],
        "site_id": p.site_id, "site_address": ", ".join(x for x in (r[4], r[5], r[6]) if x) or None, "state": p.state, "start_date": p.start_date,
        "end_date": p.end_date, "contract_months": p.contract_months, "contract_end_date": p.contract_end_date, "partner_code": p.partner_code,
        "partner_line_ref": p.partner_line_ref, "order_id": p.order_id, "replaces_product_id": p.replaces_product_id, "msisdn": p.msisdn,
        "state_reason": p.state_reason, "created_at": p.created_at, "updated_at": p.updated_at, "version": p.version,
        "allowed_actions": PRODUCT.allowed_actions(p.state),
    }


def product_detail(session: Session, *, product_id: int) -> dict[str, Any]:
    """Raises ProductNotFound."""
    r = session.execute(_product_query().where(Product.id == product_id)).first() if 0 < product_id < 2**62 else None
    if r is None:
        raise ProductNotFound(f"product {product_id} not found")
    return _product_row(r)


PRODUCT_SORT = {"id": Product.id, "status": Product.state, "startDate": Product.start_date, "terminationDate": Product.end_date,
                "orderDate": Product.created_at, "name": ProductOffering.name}


def list_products(session: Session, *, account_id: int | None = None, state: str | None = None, offering_id: int | None = None, offset: int = 0,
                  limit: int = 100, sort: str | None = None) -> list[dict[str, Any]]:
    """Newest first, or by `sort` (TMF630: `-startDate,name`; raises UnsortableAttribute for another attribute)."""
    q = _product_query()
    if account_id is not None:
        q = q.where(Product.account_id == account_id)
    if state:
        q = q.where(Product.state == state)
    if offering_id is not None:
        q = q.where(Product.offering_id == offering_id)
    order = sort_clauses(sort, PRODUCT_SORT, default=[Product.id.desc()], tiebreak=Product.id.desc())
    return [_product_row(r) for r in session.execute(q.order_by(*order).offset(offset).limit(limit)).all()]


def products_for_api(session: Session, *, on: date, product_id: int | None = None, account_id: int | None = None, state: str | None = None,
                     offset: int = 0, limit: int = 100, offering_id: int | None = None, sort: str | None = None) -> dict[str, Any]:
    """Products (one, or a page) with their offering's prices valid on `on`, their equipment and the order item that
    made them: four queries whatever the page size (TMF637), and how many match in all: {"items", "total"}.
    Raises ProductNotFound for a single unknown product."""
    rows = [product_detail(session, product_id=product_id)] if product_id is not None else list_products(
        session, account_id=account_id, state=state, offering_id=offering_id, offset=offset, limit=limit, sort=sort)
    prices = catalog.prices_on(session, offering_ids=sorted({p["offering_id"] for p in rows}), on=on)
    equipment: dict[int, list[dict[str, Any]]] = {p["id"]: [] for p in rows}
    items: dict[int, tuple[int, str]] = {}
    if rows:
        for e in session.execute(select(Equipment).where(Equipment.product_id.in_(list(equipment))).order_by(Equipment.id)).scalars():
            equipment[e.product_id].append(equipment_dict(e))  # type: ignore[index]
        # the order item that created the product (read for the TMF637 reference; the orders area owns the table)
        for pid, item_id, action in session.execute(select(ProductOrderItem.result_product_id, ProductOrderItem.id, ProductOrderItem.action)
                                                    .where(ProductOrderItem.result_product_id.in_(list(equipment)), ProductOrderItem.action != "delete")
                                                    .order_by(ProductOrderItem.id)):
            items.setdefault(pid, (item_id, action))
    total = len(rows)
    if product_id is None:
        count = select(func.count()).select_from(Product)
        if account_id is not None:
            count = count.where(Product.account_id == account_id)
        if state:
            count = count.where(Product.state == state)
        if offering_id is not None:
            count = count.where(Product.offering_id == offering_id)
        total = session.execute(count).scalar_one()
    return {"items": [p | {"prices": prices.get(p["offering_id"], []), "equipment": equipment[p["id"]], "order_item_id": items.get(p["id"], (None, None))[0],
                           "order_item_action": items.get(p["id"], (None, None))[1]} for p in rows], "total": total}


def active_products_of(session: Session, *, account_id: int) -> list[dict[str, Any]]:
    """Products that can be modified, relocated or cancelled (active or suspended)."""
    q = _product_query().where(Product.account_id == account_id, Product.state.in_([PS.ACTIVE.value, PS.SUSPENDED.value]))
    return [_product_row(r) for r in session.execute(q.order_by(Product.id)).all()]


def equipment_dict(e: Equipment) -> dict[str, Any]:
    return {"id": e.id, "account_id": e.account_id, "product_id": e.product_id, "kind": e.kind, "model": e.model, "serial_number": e.serial_number,
            "mac": e.mac, "owner": e.owner, "state": e.state, "created_at": e.created_at, "updated_at": e.updated_at,
            "allowed_actions": EQUIPMENT.allowed_actions(e.state)}


def list_equipment(session: Session, *, account_id: int | None = None, product_id: int | None = None, state: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    q = select(Equipment)
    if account_id is not None:
        q = q.where(Equipment.account_id == account_id)
    if product_id is not None:
        q = q.where(Equipment.product_id == product_id)
    if state:
        q = q.where(Equipment.state == state)
    return [equipment_dict(e) for e in session.execute(q.order_by(Equipment.id.desc()).limit(limit)).scalars()]


_STATE_ORDER = case({PS.ACTIVE.value: 0, PS.SUSPENDED.value: 1, PS.PENDING_ACTIVE.value: 2, PS.PENDING_TERMINATE.value: 3, PS.CREATED.value: 4}, value=Product.state, else_=9)


def products_panel(session: Session, *, account_id: int, now: datetime) -> dict[str, Any]:
    """Account 360 'Products' panel: live products first, then history."""
    rows = session.execute(_product_query().where(Product.account_id == account_id).order_by(_STATE_ORDER, Product.id.desc()).limit(50)).all()
    return {"products": [_product_row(r) for r in rows], "account_id": account_id}


def equipment_panel(session: Session, *, account_id: int, now: datetime) -> dict[str, Any]:
    """Account 360 'Equipment' panel."""
    return {"equipment": list_equipment(session, account_id=account_id, limit=50), "account_id": account_id}


def equipment_page(session: Session, *, now: datetime, state: str | None = None, kind: str | None = None, owner: str | None = None,
                   offset: int = 0, limit: int = 100) -> dict[str, Any]:
    """Equipment across accounts (newest change first) with the account it sits with: one query for the page, one for
    the total. Filters by state, kind and owner; each row says how long it has been in its state."""
    q = select(Equipment, Account.account_number, Account.name).outerjoin(Account, Account.id == Equipment.account_id)
    for col, val in ((Equipment.state, state), (Equipment.kind, kind), (Equipment.owner, owner)):
        if val:
            q = q.where(col == val)
    total = session.execute(select(func.count()).select_from(q.subquery())).scalar_one()
    rows = session.execute(q.order_by(Equipment.updated_at, Equipment.id).offset(offset).limit(limit)).all()
    items = []
    for e, number, name in rows:
        since = e.updated_at if e.updated_at.tzinfo else e.updated_at.replace(tzinfo=now.tzinfo)
        items.append(equipment_dict(e) | {"account_number": number, "account_name": name, "days_in_state": max(0, (now - since).days)})
    return {"items": items, "total": total, "filters": {"state": state, "kind": kind, "owner": owner},
            "states": EQUIPMENT.state_values(), "offset": offset, "limit": limit}


def awaiting_return_summary(session: Session, *, now: datetime) -> dict[str, Any]:
    """Loaned equipment the customer still has to send back: how many, and since when (the oldest)."""
    n, oldest = session.execute(select(func.count(), func.min(Equipment.updated_at)).where(Equipment.state == ES.AWAITING_RETURN.value)).one()
    return {"count": int(n or 0), "oldest": oldest}
