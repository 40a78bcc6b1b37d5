"""Customer self-service portal wiring: the /portal pages, the message templates, the demo logins, and the role a
customer acts with when the portal calls other areas' services."""

from __future__ import annotations

from opsline.areas import Area
from opsline.portal import models  # noqa: F401  (tables)
from opsline.portal.auth import CUSTOMER_ROLE


def _routers() -> list:
    from opsline.portal import views

    return [views.router]


def _seed(session, *, now) -> None:  # type: ignore[no-untyped-def]
    from opsline.portal import auth

    auth.ensure_templates(session, now=now)


def _panels() -> list:
    from opsline.portal import service
    from opsline.web.panels import Panel

    return [Panel(key="portal", title="Self-service", permission="customers.view", template="portal/_staff_panel.html", loader=service.staff_panel)]


def _demo(ctx) -> None:  # type: ignore[no-untyped-def]
    from opsline.portal import demo

    demo.run(ctx)


AREA = Area(
    name="portal",
    order=200,  # last: its demo step picks accounts with invoices, products and equipment made by the others
    routers=_routers,
    seed=_seed,
    panels=_panels,
    demo_steps=(("customer portal logins", _demo),),
    # A customer confirming their own cancellation (the portal scopes it to their own accounts first).
    permissions={"cancellations.work": {CUSTOMER_ROLE}},
)
