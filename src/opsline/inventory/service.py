"""Installed products (subscriptions) and customer equipment: lifecycles, queries and account-page panels."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from opsline.catalog.models import ProductOffering
from opsline.core import events
from opsline.core.errors import NotFound, TransitionNotAllowed
from opsline.core.events import Actor
from opsline.customers.models import Site
from opsline.inventory.models import Equipment, EquipmentEvent, EquipmentState, Product, ProductState

PS = ProductState
ES = EquipmentState


class ProductNotFound(NotFound):
    pass


class EquipmentNotFound(NotFound):
    pass


class ProductTransitionNotAllowed(TransitionNotAllowed):
    pass


PRODUCT_TRANSITIONS: dict[str, dict[str, str]] = {
    # state -> {action: next state}
    PS.CREATED: {"submit": PS.PENDING_ACTIVE, "activate": PS.ACTIVE, "abandon": PS.TERMINATED},
    PS.PENDING_ACTIVE: {"activate": PS.ACTIVE, "abandon": PS.TERMINATED},
    PS.ACTIVE: {"suspend": PS.SUSPENDED, "request_termination": PS.PENDING_TERMINATE, "terminate": PS.TERMINATED},
    PS.SUSPENDED: {"resume": PS.ACTIVE, "request_termination": PS.PENDING_TERMINATE, "terminate": PS.TERMINATED},
    PS.PENDING_TERMINATE: {"terminate": PS.TERMINATED, "keep": PS.ACTIVE},
    PS.TERMINATED: {},
}

EQUIPMENT_TRANSITIONS: dict[str, dict[str, str]] = {
    ES.IN_STOCK: {"dispatch": ES.DISPATCHED, "install": ES.INSTALLED, "write_off": ES.WRITTEN_OFF},
    ES.DISPATCHED: {"install": ES.INSTALLED, "await_return": ES.AWAITING_RETURN, "receive": ES.RETURNED, "lose": ES.LOST},
    ES.INSTALLED: {"await_return": ES.AWAITING_RETURN, "receive": ES.RETURNED, "lose": ES.LOST},
    ES.AWAITING_RETURN: {"receive": ES.RETURNED, "lose": ES.LOST, "write_off": ES.WRITTEN_OFF},
    ES.LOST: {"receive": ES.RETURNED, "write_off": ES.WRITTEN_OFF},
    ES.RETURNED: {"restock": ES.IN_STOCK, "write_off": ES.WRITTEN_OFF},
    ES.WRITTEN_OFF: {},
}


def get_product(session: Session, *, product_id: int, account_id: int | None = None) -> Product:
    """Raises ProductNotFound (also when it belongs to another account)."""
    p = session.get(Product, product_id) if 0 < product_id < 2**62 else None
    if p is None or (account_id is not None and p.account_id != account_id):
        raise ProductNotFound(f"product {product_id} not found" + (f" on account {account_id}" if account_id else ""), field="product.id")
    return p


def _snap(p: Product) -> dict[str, Any]:
    return {"state": p.state, "start_date": p.start_date.isoformat() if p.start_date else None, "end_date": p.end_date.isoformat() if p.end_date else None, "site_id": p.site_id}


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
    return p


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    import calendar

    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def transition_product(session: Session, *, product: Product, action: str, now: datetime, actor: Actor, reason: str | None = None, effective_date: date | None = None) -> list[str]:
    """Apply a lifecycle action. 'activate' sets start_date (and the contract end); 'terminate' sets end_date (exclusive)
    to `effective_date`; 'abandon' ends a never-activated product. Returns the next allowed actions.
    Raises ProductTransitionNotAllowed."""
    allowed = PRODUCT_TRANSITIONS[ProductState(product.state)]
    if action not in allowed:
        raise ProductTransitionNotAllowed(f"cannot {action} product {product.id} that is {product.state}; allowed: {', '.join(allowed) or 'none'}")
    before = _snap(product)
    product.state = allowed[action]
    if action == "activate":
        product.start_date = effective_date or now.date()
        if product.contract_months:
            product.contract_end_date = _add_months(product.start_date, product.contract_months)
        product.end_date = None
    elif action == "terminate":
        product.end_date = effective_date or now.date()
        if product.start_date and product.end_date < product.start_date:
            product.end_date = product.start_date
    if reason:
        product.state_reason = reason
    product.updated_at = now
    events.record(session, now=now, actor=actor, entity_type="product", entity_id=product.id, account_id=product.account_id, action=action, reason=reason, before=before, after=_snap(product))
    return list(PRODUCT_TRANSITIONS[ProductState(product.state)])


def transition_equipment(session: Session, *, equipment: Equipment, action: str, now: datetime, actor: Actor, reason: str | None = None) -> list[str]:
    """Apply an equipment lifecycle action and write its history row and audit event. Raises TransitionNotAllowed."""
    allowed = EQUIPMENT_TRANSITIONS[EquipmentState(equipment.state)]
    if action not in allowed:
        raise TransitionNotAllowed(f"cannot {action} {equipment.kind} {equipment.serial_number} that is {equipment.state}; allowed: {', '.join(allowed) or 'none'}")
    before = equipment.state
    equipment.state = allowed[action]
    equipment.updated_at = now
    session.add(EquipmentEvent(equipment_id=equipment.id, account_id=equipment.account_id, at=now, from_state=before, to_state=equipment.state, reason=reason, actor=actor.name))
    events.record(session, now=now, actor=actor, entity_type="equipment", entity_id=equipment.id, account_id=equipment.account_id, action=action, reason=reason,
                  before={"state": before}, after={"state": equipment.state, "serial_number": equipment.serial_number})
    return list(EQUIPMENT_TRANSITIONS[EquipmentState(equipment.state)])


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
        "allowed_actions": list(PRODUCT_TRANSITIONS[ProductState(p.state)]),
    }


def product_detail(session: Session, *, product_id: int) -> dict[str, Any]:
    """Raises ProductNotFound."""
    r = session.execute(_product_query().where(Product.id == product_id)).first() if 0 < product_id < 2**62 else None
    if r is None:
        raise ProductNotFound(f"product {product_id} not found")
    return _product_row(r)


def list_products(session: Session, *, account_id: int | None = None, state: str | None = None, offering_id: int | None = None, offset: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    q = _product_query()
    if account_id is not None:
        q = q.where(Product.account_id == account_id)
    if state:
        q = q.where(Product.state == state)
    if offering_id is not None:
        q = q.where(Product.offering_id == offering_id)
    return [_product_row(r) for r in session.execute(q.order_by(Product.id.desc()).offset(offset).limit(limit)).all()]


def active_products_of(session: Session, *, account_id: int) -> list[dict[str, Any]]:
    """Products that can be modified, relocated or cancelled (active or suspended)."""
    q = _product_query().where(Product.account_id == account_id, Product.state.in_([PS.ACTIVE.value, PS.SUSPENDED.value]))
    return [_product_row(r) for r in session.execute(q.order_by(Product.id)).all()]


def equipment_dict(e: Equipment) -> dict[str, Any]:
    return {"id": e.id, "account_id": e.account_id, "product_id": e.product_id, "kind": e.kind, "model": e.model, "serial_number": e.serial_number,
            "mac": e.mac, "owner": e.owner, "state": e.state, "created_at": e.created_at, "updated_at": e.updated_at,
            "allowed_actions": list(EQUIPMENT_TRANSITIONS[EquipmentState(e.state)])}


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
