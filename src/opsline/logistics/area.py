"""Logistics area wiring: courier collections of loaned equipment (lifecycle `collection_booking`), the courier
adapter and simulator jobs, unreturned-equipment fees (lifecycle `unreturned_fee`), faulty-device swaps, the clean-up
checks, the daily job, the /logistics desk and its home cards. Other areas call `opsline.logistics.service` and
subscribe to collection.booked / collection.attempted / collection.collected / equipment.received /
equipment.unreturned_fee_charged / equipment.unreturned_fee_credited."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from opsline.areas import Area
from opsline.config import get_settings
from opsline.core.localtime import zone
from opsline.logistics import models  # noqa: F401  (tables)
from opsline.logistics.models import COLLECTION, UNRETURNED_FEE
from opsline.logistics.service import EVENTS

COORD, BILLING = "cancellations_coordinator", "billing_analyst"


def _tz() -> Any:
    return zone(get_settings().timezone)


def _register_jobs(registry: Any) -> None:
    from opsline.logistics import courier, daily, service

    tz = _tz()
    registry.register(service.DELIVER_JOB)(lambda s, p, now: courier.deliver_job(s, p, now, tz=tz))
    registry.register(courier.COURIER_EVENT_JOB)(
        lambda s, p, now: courier.apply_courier_event(s, courier_code=str(p["courier_code"]), event=dict(p["event"]), now=now, tz=tz))
    registry.register(service.NOTIFY_JOB)(lambda s, p, now: service.notify_booked_job(s, collection_ids=[int(i) for i in p["collection_ids"]], now=now, tz=tz))
    registry.register(daily.DAILY_JOB)(lambda s, p, now: daily.daily_job(s, p, now, tz=tz))


def _seed(session, *, now: datetime) -> None:  # type: ignore[no-untyped-def]
    from opsline.logistics.seed import seed

    seed(session, now=now)


def _routers() -> list:
    from opsline.logistics import api, views

    return [views.router, api.router]


def _panels() -> list:
    from opsline.logistics import queries
    from opsline.web.panels import Panel

    return [Panel(key="collections", title="Collections", permission="logistics.view", template="logistics/_panel.html", loader=queries.account_panel)]


def _admin_views() -> list:
    from opsline.logistics.models import CourierSlot, EquipmentFeeRule, OntReturnRule
    from opsline.web.admin import ReferenceView

    return [ReferenceView(CourierSlot, icon="fa fa-truck", display_name="Courier slots"),
            ReferenceView(EquipmentFeeRule, icon="fa fa-coins", display_name="Unreturned equipment fees"),
            ReferenceView(OntReturnRule, icon="fa fa-plug", display_name="FNO ONT return rules")]


def _home(session, *, now, actor, tz):  # type: ignore[no-untyped-def]
    from opsline.logistics import home

    return home.cards(session, now=now, actor=actor, tz=tz)


def _demo(ctx) -> None:  # type: ignore[no-untyped-def]
    from opsline.logistics import demo

    demo.run(ctx)


def _cli(app) -> None:  # type: ignore[no-untyped-def]
    from opsline.logistics import cli

    cli.register(app)


def _schedules(session, *, now, tz) -> None:  # type: ignore[no-untyped-def]
    from opsline.logistics import daily

    daily.schedule(session, now=now, tz=tz)  # unreturned-equipment fees, FNO claims, clean-up checks at 06:00


AREA = Area(
    name="logistics",
    order=80,  # after partners, inventory, billing and notifications
    routers=_routers,
    register_jobs=_register_jobs,
    seed=_seed,
    schedules=_schedules,
    demo_steps=(("collections", _demo),),
    desks=(("Logistics", "/logistics", "logistics.view"),),
    admin_views=_admin_views,
    panels=_panels,
    cli=_cli,
    permissions={
        "logistics.view": {COORD, BILLING, "service_manager", "second_line_agent"},
        "logistics.book": {COORD},  # book, rebook, record attempts, cancel, swap, courier runs
        "logistics.receive": {COORD},  # warehouse receipt
        "logistics.checks": {COORD, BILLING},  # clean-up checks page, run and export
    },
    lifecycles=(COLLECTION, UNRETURNED_FEE),
    events=EVENTS,
    home=_home,
    home_desks=('cancellations_coordinator', 'billing_analyst'),
)
