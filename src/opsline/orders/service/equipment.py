"""What happens to a product's equipment when it starts, moves or ends."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.catalog.models import OfferingEquipment, ProductOffering
from opsline.core import events
from opsline.core.events import Actor
from opsline.inventory import service as inventory
from opsline.inventory.models import EquipmentState, Product

LIVE = (EquipmentState.DISPATCHED, EquipmentState.INSTALLED)


def _bundle(session: Session, offering_id: int, *, owner: str | None = None) -> list[tuple[OfferingEquipment, ProductOffering]]:
    q = (select(OfferingEquipment, ProductOffering).join(ProductOffering, ProductOffering.id == OfferingEquipment.equipment_offering_id)
         .where(OfferingEquipment.offering_id == offering_id).order_by(OfferingEquipment.id))
    if owner is not None:
        q = q.where(OfferingEquipment.owner == owner)
    return [(link, eq) for link, eq in session.execute(q).all()]


def equip_new_product(session: Session, *, product: Product, offering: ProductOffering, now: datetime, actor: Actor, install: bool) -> None:
    """Dispatch the bundled equipment (router from stock or a new serial; SIM installed directly). ONTs come with activation."""
    for link, eq in _bundle(session, offering.id):
        if link.owner == "fno":
            continue
        inventory.assign_equipment(session, account_id=product.account_id, product_id=product.id, equipment_offering=eq, owner=link.owner, now=now, actor=actor,
                                   install=install or eq.equipment_kind == "sim")


def install_on_activation(session: Session, *, product: Product, offering: ProductOffering, now: datetime, actor: Actor) -> None:
    """On activation: dispatched equipment is installed; the FNO's ONT is recorded as installed."""
    units = inventory.equipment_of(session, product_id=product.id)
    for e in units:
        if e.state == EquipmentState.DISPATCHED:
            inventory.transition_equipment(session, equipment=e, action="install", now=now, actor=actor, reason=f"product {product.id} activated")
    if not any(e.kind == "ont" for e in units):
        for _, eq in _bundle(session, offering.id, owner="fno"):
            inventory.assign_equipment(session, account_id=product.account_id, product_id=product.id, equipment_offering=eq, owner="fno", now=now, actor=actor, install=True)


def release_equipment(session: Session, *, product: Product, now: datetime, actor: Actor, reason: str) -> None:
    """When a product ends: loaned equipment is awaited back, FNO equipment goes back to the FNO, owned equipment stays."""
    for e in inventory.equipment_of(session, product_id=product.id):
        if e.state not in LIVE:
            continue
        if e.owner == "isp_loaned":
            inventory.transition_equipment(session, equipment=e, action="await_return", now=now, actor=actor, reason=reason)
        elif e.owner == "fno":
            inventory.transition_equipment(session, equipment=e, action="receive", now=now, actor=actor, reason=f"{reason}; stays with the FNO")


def move_equipment(session: Session, *, old: Product, new: Product, now: datetime, actor: Actor) -> None:
    """On relocation/upgrade the customer's router moves to the new product; the old ONT stays with the FNO."""
    for e in inventory.equipment_of(session, product_id=old.id):
        if e.state not in LIVE:
            continue
        if e.owner == "fno":
            inventory.transition_equipment(session, equipment=e, action="receive", now=now, actor=actor, reason=f"product {old.id} replaced by {new.id}; stays with the FNO")
        else:
            e.product_id = new.id
            e.updated_at = now
            events.record(session, now=now, actor=actor, entity_type="equipment", entity_id=e.id, account_id=e.account_id, action="moved", before={"product_id": old.id}, after={"product_id": new.id})


def return_prepared_equipment(session: Session, *, product: Product, now: datetime, actor: Actor, reason: str) -> None:
    """An item that will not happen: equipment sent for it is awaited back (the FNO keeps its own)."""
    for e in inventory.equipment_of(session, product_id=product.id):
        if (e.state == EquipmentState.DISPATCHED and e.owner != "fno") or (e.state == EquipmentState.INSTALLED and e.owner == "isp_loaned"):
            inventory.transition_equipment(session, equipment=e, action="await_return", now=now, actor=actor, reason=reason)
