"""Inventory area wiring: installed products and customer equipment, their lifecycles, and the reaction to the
account's suspension and reconnection (the account's products follow it)."""

from datetime import datetime

from sqlalchemy.orm import Session

from typing import Any

from opsline.areas import Area, HomeCard
from opsline.core.domain_events import DomainEvent, Subscriber
from opsline.core.events import Actor
from opsline.inventory import models  # noqa: F401  (tables)
from opsline.inventory import service
from opsline.inventory.models import EQUIPMENT, PRODUCT


def _routers() -> list:
    from opsline.inventory import api, views

    return [views.router, api.router]


def _panels() -> list:
    from opsline.web.panels import Panel

    return [
        Panel(key="products", title="Products", permission="inventory.view", template="inventory/_panel_products.html", loader=service.products_panel),
        Panel(key="equipment", title="Equipment", permission="inventory.view", template="inventory/_panel_equipment.html", loader=service.equipment_panel),
    ]


def _demo_products(ctx) -> None:  # type: ignore[no-untyped-def]
    from opsline.inventory.demo import load_products

    load_products(ctx)


def _account_id(ev: DomainEvent) -> int:
    return int(ev.payload.get("account_id") or ev.payload["id"])


def _on_account_suspended(session: Session, ev: DomainEvent, now: datetime) -> None:
    """Suspension for non-payment suspends the account's active products (same transaction: an account is never
    suspended while its lines stay up)."""
    why = ev.payload.get("reason") or "account suspended"
    service.suspend_account_products(session, account_id=_account_id(ev), now=now, actor=ev.actor, reason=f"account suspended: {why}")


def _on_account_active(session: Session, ev: DomainEvent, now: datetime) -> None:
    """Reconnection (account.active with action 'reconnect') resumes the products the suspension suspended."""
    if ev.payload.get("action") != "reconnect":
        return
    why = ev.payload.get("reason") or "account reconnected"
    service.resume_account_products(session, account_id=_account_id(ev), now=now, actor=ev.actor, reason=f"account reconnected: {why}")


def _home(session: Session, *, now: datetime, actor: Actor, tz: Any) -> list[HomeCard]:
    s = service.awaiting_return_summary(session, now=now)
    oldest = s["oldest"]
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=now.tzinfo)
    hint = f"oldest waiting {(now - oldest).days} d" if oldest is not None else "none waiting"
    return [HomeCard(desks=("cancellations_coordinator",), title="Loaned equipment awaiting return", count=s["count"],
                     href="/inventory/equipment?state=awaiting_return&owner=isp_loaned", permission="inventory.view", hint=hint,
                     tone="warn" if s["count"] else "normal", order=45)]


AREA = Area(
    name="inventory",
    order=30,
    routers=_routers,
    demo_steps=(("products", _demo_products),),
    panels=_panels,
    lifecycles=(PRODUCT, EQUIPMENT),
    events=("inventory.product_created", "inventory.product_changed"),  # service.py
    home=_home,
    home_desks=('cancellations_coordinator',),
    subscribers=(
        Subscriber("inventory.suspend_products_with_account", "account.suspended", _on_account_suspended),
        Subscriber("inventory.resume_products_with_account", "account.active", _on_account_active),
    ),
)
