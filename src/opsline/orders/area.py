"""Orders area wiring: product orders (TMF622) and quotes (TMF648), their lifecycles, the reaction to the partner's
service-order events, and the order cards on desk home pages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from opsline.areas import Area, HomeCard
from opsline.config import get_settings
from opsline.core.domain_events import DomainEvent, Subscriber
from opsline.core.events import Actor
from opsline.core.localtime import zone
from opsline.orders import models  # noqa: F401  (tables)
from opsline.orders import service
from opsline.orders.models import ORDER, ORDER_ITEM, QUOTE


def _routers() -> list:
    from opsline.orders import api, views

    return [views.router, api.router]


def _demo_orders(ctx) -> None:  # type: ignore[no-untyped-def]
    from opsline.orders.demo import load_orders

    load_orders(ctx)


def _on_service_order(session: Session, ev: DomainEvent, now: datetime) -> None:
    # the operator's timezone is read here, at the edge (like the worker does), and passed in
    service.handle_service_order_event(session, ev, now, tz=zone(get_settings().timezone))


def _age(now: datetime, then: datetime | None) -> str:
    if then is None:
        return ""
    if then.tzinfo is None:
        then = then.replace(tzinfo=now.tzinfo)
    hours = max(0, int((now - then).total_seconds() // 3600))
    return f"oldest {hours // 24} d {hours % 24} h"


def _home(session: Session, *, now: datetime, actor: Actor, tz: Any) -> list[HomeCard]:
    s = service.home_summary(session, now=now, tz=tz)
    by = s["by_state"]
    total = sum(n for n, _ in by.values())
    oldest = min((o for _, o in by.values() if o is not None), default=None)
    desks = ("billing_analyst", "cancellations_coordinator", "service_manager")
    chart = {"type": "bar", "data": {"labels": sorted(by), "datasets": [{"label": "Open orders", "data": [by[k][0] for k in sorted(by)]}]},
             "options": {"plugins": {"legend": {"display": False}}}} if by else None
    cards = [
        HomeCard(desks=desks, title="Open orders", count=total, href="/orders?open=1", permission="orders.view", hint=_age(now, oldest) or "none open",
                 chart=chart, order=30),
        HomeCard(desks=desks, title="Orders open over 14 days", count=s["stale_open"], href="/orders?open=1&older=14", permission="orders.view",
                 hint="stuck at the partner or held", tone="warn" if s["stale_open"] else "normal", order=31),
        HomeCard(desks=("billing_analyst", "service_manager"), title=f"Quotes expiring in {s['expiring_days']} days", count=s["quotes_expiring"],
                 href=f"/orders?quotes_expiring={s['expiring_days']}#quotes", permission="orders.view",
                 hint=f"first on {s['first_expiry'].isoformat()}" if s["first_expiry"] else "none", tone="warn" if s["quotes_expiring"] else "normal", order=32),
    ]
    for state in ("held", "assessingCancellation", "pendingCancellation"):
        if state in by:
            n, o = by[state]
            cards.append(HomeCard(desks=("cancellations_coordinator",) if "Cancellation" in state else desks, title=f"Orders {state}", count=n,
                                  href=f"/orders?state={state}", permission="orders.view", hint=_age(now, o), tone="warn", order=33))
    return cards


AREA = Area(
    name="orders",
    order=32,
    routers=_routers,
    demo_steps=(("orders", _demo_orders),),
    desks=(("Orders", "/orders", "orders.view"),),
    lifecycles=(ORDER, ORDER_ITEM, QUOTE),
    events=("orders.order_created", "orders.order_changed", "orders.quote_created", "orders.quote_changed"),  # service/placing.py, common.py, quotes.py
    subscribers=(Subscriber("orders.follow_partner_service_order", "partner_service_order.*", _on_service_order),),
    home=_home,
    home_desks=('billing_analyst', 'cancellations_coordinator', 'service_manager'),
)
