"""Partners area wiring: FNOs, couriers and collection agencies; outbound TMF641 service orders (lifecycle
`partner_service_order`, whose events tell orders and inventory what the partner did); the FNO simulator; the line
suspension/resumption orders that follow a product's suspension; the partner cards on desk home pages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from opsline.areas import Area, HomeCard
from opsline.config import get_settings
from opsline.core.domain_events import DomainEvent, Subscriber
from opsline.core.events import Actor
from opsline.core.localtime import zone
from opsline.partners import models  # noqa: F401  (tables)
from opsline.partners import exposure  # noqa: F401  (the fno_claim table)
from opsline.partners import service
from opsline.partners.models import SERVICE_ORDER


def _tz() -> Any:
    """The operator's timezone, read at the edge (worker, subscribers, panels) and passed into the service."""
    return zone(get_settings().timezone)


def _register_jobs(registry: Any) -> None:
    service.register_jobs(registry, tz=_tz())


def _partner_orders_panel(session: Session, *, account_id: int, now: datetime) -> dict[str, Any]:
    return service.account_partner_orders(session, account_id=account_id, now=now, tz=_tz())


def _routers() -> list:
    from opsline.partners import api, views

    return [views.router, api.router]


def _seed(session, *, now) -> None:  # type: ignore[no-untyped-def]
    from opsline.partners.seed import seed_partners

    seed_partners(session, now=now)


def _panels() -> list:
    from opsline.web.panels import Panel

    return [Panel(key="partner_orders", title="Partner orders", permission="partners.view", template="partners/_panel.html", loader=_partner_orders_panel)]


def _admin_views() -> list:
    from opsline.partners.models import Partner
    from opsline.web.admin import ReferenceView

    return [ReferenceView(Partner, icon="fa fa-handshake", display_name="Partners")]


def _cli(app) -> None:  # type: ignore[no-untyped-def]
    from opsline.partners import cli

    cli.register(app)


def _demo_partner_orders(ctx) -> None:  # type: ignore[no-untyped-def]
    from opsline.partners.demo import load_partner_orders

    load_partner_orders(ctx)


def _on_product_suspended(session: Session, ev: DomainEvent, now: datetime) -> None:
    """A suspended line is suspended at the FNO too: a TMF641 modify (service state inactive) through the job table."""
    service.change_line_state(session, product_id=int(ev.payload["id"]), service_state="suspended", now=now, tz=_tz(), actor=ev.actor,
                              reason=ev.payload.get("reason") or "product suspended")


def _on_product_active(session: Session, ev: DomainEvent, now: datetime) -> None:
    """A resumed line (product.active after 'resume') is resumed at the FNO; activations need no message (the FNO did them)."""
    if ev.payload.get("action") != "resume":
        return
    service.change_line_state(session, product_id=int(ev.payload["id"]), service_state="active", now=now, tz=_tz(), actor=ev.actor,
                              reason=ev.payload.get("reason") or "product resumed")


def _age(now: datetime, then: datetime | None) -> str:
    if then is None:
        return ""
    if then.tzinfo is None:
        then = then.replace(tzinfo=now.tzinfo)
    hours = int((now - then).total_seconds() // 3600)
    return f"oldest {hours // 24} d {hours % 24} h"


def _home(session: Session, *, now: datetime, actor: Actor, tz: Any) -> list[HomeCard]:
    stuck, late = service.home_cards(session, now=now, tz=tz)
    desks = ("service_manager", "cancellations_coordinator")
    chart = None
    if late["by_partner"]:
        chart = {"type": "bar", "data": {"labels": [c for c, _ in late["by_partner"]],
                                         "datasets": [{"label": "Open past SLA", "data": [n for _, n in late["by_partner"]]}]},
                 "options": {"plugins": {"legend": {"display": False}}}}
    return [
        HomeCard(desks=desks, title=stuck["title"], count=stuck["count"], href=stuck["href"], permission="partners.view",
                 hint=(f"{stuck['dead']} dead, {stuck['retrying']} retrying; " + _age(now, stuck["oldest_at"])) if stuck["count"] else "none",
                 tone="danger" if stuck["dead"] else ("warn" if stuck["count"] else "normal"), order=40),
        HomeCard(desks=desks, title=late["title"], count=late["count"], href=late["href"], permission="partners.view",
                 hint=f"due since {late['oldest_due'].isoformat()}" if late["oldest_due"] else "none late", tone="warn" if late["count"] else "normal",
                 chart=chart, order=41),
    ]


AREA = Area(
    name="partners",
    order=35,
    routers=_routers,
    register_jobs=_register_jobs,
    seed=_seed,
    demo_steps=(("partner_orders", _demo_partner_orders),),
    desks=(("Partners", "/partners", "partners.view"),),
    panels=_panels,
    admin_views=_admin_views,
    cli=_cli,
    lifecycles=(SERVICE_ORDER, exposure.FNO_CLAIM),
    events=("partners.service_order_created", "partners.service_order_changed"),  # service.py
    permissions={"partners.claims": {"cancellations_coordinator", "billing_analyst"}},  # claims to FNOs for late deactivations
    subscribers=(
        Subscriber("partners.suspend_line_with_product", "product.suspended", _on_product_suspended),
        Subscriber("partners.resume_line_with_product", "product.active", _on_product_active),
    ),
    home=_home,
    home_desks=('service_manager', 'cancellations_coordinator'),
)
