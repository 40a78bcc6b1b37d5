"""SLA area wiring: policies, calendars, clocks, breaches (after cases, whose history it replays)."""

from __future__ import annotations

from opsline.areas import Area
from opsline.core.domain_events import Subscriber
from opsline.sla import models  # noqa: F401  (tables)
from opsline.sla.service import recalc
from opsline.sla.service.scan import run_scan_job


def _routers() -> list:
    from opsline.sla import api, views

    return [views.router, api.router]


def _register_jobs(registry) -> None:  # type: ignore[no-untyped-def]
    registry.register("sla.recalculate")(recalc.run_recalculate_job)
    registry.register("sla.scan")(run_scan_job)


def _seed(session, *, now) -> None:  # type: ignore[no-untyped-def]
    from opsline.sla.policies import seed_sla_reference

    seed_sla_reference(session, now=now)


def _admin_views() -> list:
    from opsline.sla.models import BreachCause, BusinessCalendarRow, QueueOla, SlaContract, SlaPolicy
    from opsline.web.admin import ReferenceView

    return [
        ReferenceView(SlaPolicy, icon="fa fa-stopwatch", display_name="SLA policies"),
        ReferenceView(BusinessCalendarRow, icon="fa fa-calendar", display_name="Business calendars"),
        ReferenceView(BreachCause, icon="fa fa-triangle-exclamation", display_name="SLA breach causes"),
        ReferenceView(SlaContract, icon="fa fa-file-signature", display_name="SLA contracts"),
        ReferenceView(QueueOla, icon="fa fa-people-group", display_name="Team OLAs"),
    ]


def _demo(ctx) -> None:  # type: ignore[no-untyped-def]
    from opsline.sla.demo import run

    run(ctx)


def _home(session, *, now, actor, tz):  # type: ignore[no-untyped-def]
    from opsline.sla.home import home

    return home(session, now=now, actor=actor, tz=tz)


def _cli(app) -> None:  # type: ignore[no-untyped-def]
    from opsline.sla.cli import add_commands

    add_commands(app)


def _schedules(session, *, now, tz) -> None:  # type: ignore[no-untyped-def]
    from opsline.sla.service.scan import schedule_scan

    schedule_scan(session, now=now)  # warnings, escalations and breaches every minute


AREA = Area(
    name="sla",
    order=65,  # after cases (60): seeds validate categories and the demo replays the demo cases
    routers=_routers,
    register_jobs=_register_jobs,
    seed=_seed,
    schedules=_schedules,
    demo_steps=(("sla", _demo),),
    desks=(("SLA", "/sla", "sla.view"),),
    admin_views=_admin_views,
    cli=_cli,
    # Same transaction: a case's clocks are never out of step with its history; once per cases service call.
    subscribers=(Subscriber(name="sla.recompute_case", event="case.changed", handler=recalc.on_case_changed),),
    home=_home,
    home_desks=('second_line_agent', 'service_manager'),
)
