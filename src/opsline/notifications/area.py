"""Notifications area wiring."""

from __future__ import annotations

from opsline.areas import Area
from opsline.notifications import models  # noqa: F401  (tables)
from opsline.notifications.models import MESSAGE


def _routers() -> list:
    from opsline.notifications import views

    return [views.router]


def _register_jobs(registry) -> None:  # type: ignore[no-untyped-def]
    from opsline.notifications import delivery

    delivery.register(registry)


def _seed(session, *, now) -> None:  # type: ignore[no-untyped-def]
    from opsline.notifications.seed import seed_notifications

    seed_notifications(session, now=now)


def _panels() -> list:
    from opsline.notifications.views import messages_panel

    return [messages_panel()]


def _home(session, *, now, actor, tz):  # type: ignore[no-untyped-def]
    from opsline.notifications.queries import home_cards

    return home_cards(session, now=now, actor=actor, tz=tz)


def _demo(ctx) -> None:  # type: ignore[no-untyped-def]
    from opsline.notifications.demo import load_messages

    load_messages(ctx)


_STAFF = {"cancellations_coordinator", "second_line_agent", "debtors_clerk", "debtors_manager", "billing_analyst", "service_manager"}

AREA = Area(
    name="notifications",
    order=15,  # before every area that sends messages
    routers=_routers,
    register_jobs=_register_jobs,
    seed=_seed,
    demo_steps=(("messages", _demo),),
    desks=(("Messages", "/notifications/messages", "notifications.view"),),
    panels=_panels,
    permissions={
        "notifications.view": set(_STAFF),
        "notifications.preferences": set(_STAFF),
        "notifications.approve": {"service_manager", "debtors_manager"},
        "notifications.templates": {"service_manager"},
        "notifications.manage": {"service_manager"},
    },
    lifecycles=(MESSAGE,),
    home=_home,
    home_desks=('service_manager', 'debtors_manager'),
)
