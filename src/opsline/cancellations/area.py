"""Cancellations area wiring: the journey and step lifecycles, the desk (/cancellations), the account panel ("Cancel
service"), reactions to the FNO's service-order events and to declined retention offers, escalation, seeds and demo."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from opsline.areas import Area
from opsline.cancellations import models, prevention, totals  # noqa: F401  (tables)
from opsline.cancellations.models import CANCEL_ORDER_TASK, JOURNEY, STEP
from opsline.config import get_settings
from opsline.core.domain_events import DomainEvent, Subscriber
from opsline.core.localtime import zone

COORD = "cancellations_coordinator"
VIEWERS = {COORD, "second_line_agent", "billing_analyst", "service_manager", "debtors_clerk", "debtors_manager"}


def _tz():  # type: ignore[no-untyped-def]
    # the operator's timezone is read here, at the edge, and passed into the service
    return zone(get_settings().timezone)


def _seed(session, *, now) -> None:  # type: ignore[no-untyped-def]
    from opsline.cancellations import seed

    seed.seed(session, now=now)


def _routers() -> list:
    from opsline.cancellations import reports_views, tmf622, views

    return [reports_views.router, views.router, tmf622.router]  # reports first: its fixed paths before /cancellations/{journey_id}


def _panels() -> list:
    from opsline.cancellations import queries
    from opsline.web.panels import Panel

    return [Panel(key="cancellations", title="Cancellations", permission="cancellations.view", template="cancellations/_panel.html",
                  loader=queries.account_panel)]


def _on_service_order(session: Session, ev: DomainEvent, now: datetime) -> None:
    from opsline.cancellations import service

    p = ev.payload
    details = p.get("details") or {}
    confirmed = details.get("confirmed_date")
    service.on_service_order_event(session, service_order_id=int(p["id"]), state=str(p["to"]),
                                   confirmed_date=date.fromisoformat(confirmed) if confirmed else None, reason=p.get("reason"),
                                   now=now, tz=_tz(), actor=ev.actor)


def _on_retention_declined(session: Session, ev: DomainEvent, now: datetime) -> None:
    from opsline.cancellations import service

    p = ev.payload
    service.open_from_case(session, case_id=int(p["id"]), account_id=p.get("account_id"), offer=str(p.get("offer") or ""), now=now, tz=_tz(),
                           actor=ev.actor)


def _on_order_item_held(session: Session, ev: DomainEvent, now: datetime) -> None:
    from opsline.cancellations import service

    service.on_order_item_held(session, order_item_id=int(ev.payload["id"]), now=now, tz=_tz(), actor=ev.actor)


def _on_collection_booked(session: Session, ev: DomainEvent, now: datetime) -> None:
    from opsline.cancellations import followups

    followups.on_collection_booked(session, ev.payload, now=now, actor=ev.actor)


def _on_collection_attempted(session: Session, ev: DomainEvent, now: datetime) -> None:
    from opsline.cancellations import followups

    followups.on_collection_attempted(session, ev.payload, now=now, actor=ev.actor)


def _on_equipment_received(session: Session, ev: DomainEvent, now: datetime) -> None:
    from opsline.cancellations import followups

    followups.on_equipment_received(session, ev.payload, now=now, tz=_tz(), actor=ev.actor)


def _on_fee_charged(session: Session, ev: DomainEvent, now: datetime) -> None:
    from opsline.cancellations import followups

    followups.on_unreturned_fee_charged(session, ev.payload, now=now, tz=_tz(), actor=ev.actor)


def _on_final_account(session: Session, ev: DomainEvent, now: datetime) -> None:
    from opsline.cancellations import followups

    followups.on_final_account_issued(session, ev.payload, now=now, actor=ev.actor)


def _on_order_cancelled(session: Session, ev: DomainEvent, now: datetime) -> None:
    from opsline.cancellations import tmf622

    for order_id in ev.payload.get("ids") or [ev.payload["id"]]:
        tmf622.on_order_cancelled(session, order_id=int(order_id), now=now)


def _on_discontinuance_accepted(session: Session, ev: DomainEvent, now: datetime) -> None:
    from opsline.cancellations import dunning

    dunning.on_discontinuance_accepted(session, ev.payload, now=now, tz=_tz(), actor=ev.actor)


def _register_jobs(registry) -> None:  # type: ignore[no-untyped-def]
    from opsline.cancellations import service

    @registry.register(service.ESCALATE_JOB)
    def _escalate(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
        return service.escalation_job(session, payload, now, tz=_tz())


def _cli(app) -> None:  # type: ignore[no-untyped-def]
    from opsline.cancellations import cli

    cli.register(app)


def _demo(ctx) -> None:  # type: ignore[no-untyped-def]
    from opsline.cancellations import demo

    demo.run(ctx)


def _home(session, *, now, actor, tz):  # type: ignore[no-untyped-def]
    from opsline.cancellations import home

    return home.cards(session, now=now, actor=actor, tz=tz)


def _schedules(session, *, now, tz) -> None:  # type: ignore[no-untyped-def]
    from opsline.cancellations import service

    service.schedule_escalation(session, now=now)  # the hourly escalation chain


AREA = Area(
    name="cancellations",
    order=85,  # after orders, partners, inventory, billing and cases: it orchestrates them
    routers=_routers,
    register_jobs=_register_jobs,
    seed=_seed,
    schedules=_schedules,
    demo_steps=(("cancellation journeys", _demo),),
    desks=(("Cancellations", "/cancellations", "cancellations.view"),),
    panels=_panels,
    cli=_cli,
    permissions={
        "cancellations.view": VIEWERS,
        "cancellations.request": {COORD, "second_line_agent"},  # open a journey from the account page
        "cancellations.work": {COORD},  # retention, confirm, withdraw, steps, close, bulk actions
    },
    lifecycles=(JOURNEY, STEP, CANCEL_ORDER_TASK, prevention.PREVENTION_ACTION),
    events=("cancellation.steps_at_risk",),
    home=_home,
    home_desks=('cancellations_coordinator',),
    subscribers=(
        Subscriber("cancellations.follow_fno_deactivation", "partner_service_order.*", _on_service_order),
        Subscriber("cancellations.open_on_retention_declined", "case.retention_declined", _on_retention_declined),
        # same transaction: a TMF622 delete and its journey are created together, or the order is refused with the reason
        Subscriber("cancellations.open_on_tmf622_delete", "product_order_item.held", _on_order_item_held),
        # logistics and billing own collection and the final account; their events tick the journey's checklist
        Subscriber("cancellations.note_collection_booked", "collection.booked", _on_collection_booked),
        Subscriber("cancellations.note_collection_attempt", "collection.attempted", _on_collection_attempted),
        Subscriber("cancellations.equipment_received", "equipment.received", _on_equipment_received),
        Subscriber("cancellations.equipment_fee_charged", "equipment.unreturned_fee_charged", _on_fee_charged),
        Subscriber("cancellations.final_account_issued", "billing.final_account_issued", _on_final_account),
        Subscriber("cancellations.cancel_task_done", "product_order.cancelled", _on_order_cancelled),
        # same transaction: an accepted discontinuance and its journeys are made together, or the accept is refused
        Subscriber("cancellations.open_on_dunning_discontinuance", "dunning.discontinuance_accepted", _on_discontinuance_accepted),
    ),
)
