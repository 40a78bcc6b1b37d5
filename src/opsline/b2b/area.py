"""B2B service management wiring: the desk (/b2b), contracts with SLA rules, violations, service credits (four eyes),
the monthly evaluation job, the service manager's home cards, seeds and the demo step."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from opsline.areas import Area
from opsline.b2b import models  # noqa: F401  (tables)
from opsline.b2b.models import CHANGE, CONTRACT, CREDIT, REVIEW
from opsline.config import get_settings
from opsline.core.domain_events import DomainEvent, Subscriber
from opsline.core.localtime import zone

MANAGER = "service_manager"


def _seed(session, *, now) -> None:  # type: ignore[no-untyped-def]
    from opsline.b2b import reviews, service

    service.seed(session, now=now)
    reviews.seed_templates(session, now=now)


def _schedules(session, *, now, tz) -> None:  # type: ignore[no-untyped-def]
    from opsline.b2b import jobs

    jobs.schedule(session, now=now, tz=tz)  # the monthly evaluation chain (idempotent per month)


def _routers() -> list:
    from opsline.b2b import api, views

    return [views.router, api.router]  # api: the TMF623 SLA read API


def _panels() -> list:
    from opsline.b2b import queries
    from opsline.web.panels import Panel

    return [Panel(key="b2b", title="B2B service", permission="b2b.view", template="b2b/_panel.html", loader=queries.account_panel)]


def _register_jobs(registry) -> None:  # type: ignore[no-untyped-def]
    from opsline.b2b import jobs

    @registry.register(jobs.EVALUATE_JOB)
    def _evaluate(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
        return jobs.evaluate_job(session, payload, now, tz=zone(get_settings().timezone))


def _on_order_completed(session: Session, ev: DomainEvent, now: datetime) -> None:
    from opsline.b2b import changes

    changes.on_order_completed(session, ev.payload, now=now)


def _on_bill_run_review(session: Session, ev: DomainEvent, now: datetime) -> None:
    from opsline.b2b import billcheck

    billcheck.compute(session, bill_run_id=int(ev.payload["id"]), now=now)


def _on_bill_run_approved(session: Session, ev: DomainEvent, now: datetime) -> None:
    from opsline.b2b import billcheck

    billcheck.refuse_approval_while_open(session, bill_run_id=int(ev.payload["id"]))


def _demo(ctx) -> None:  # type: ignore[no-untyped-def]
    from opsline.b2b import demo

    demo.run(ctx)


def _home(session, *, now, actor, tz):  # type: ignore[no-untyped-def]
    from opsline.b2b import home

    return home.cards(session, now=now, actor=actor, tz=tz)


AREA = Area(
    name="b2b",
    order=95,  # after billing, cases, SLA and orders: it measures them and queues credits through billing
    routers=_routers,
    register_jobs=_register_jobs,
    seed=_seed,
    schedules=_schedules,
    demo_steps=(("B2B contracts, SLA violations and service credits", _demo),),
    desks=(("B2B service", "/b2b", "b2b.view"),),
    panels=_panels,
    permissions={
        "b2b.view": {MANAGER, "billing_analyst"},
        "b2b.manage": {MANAGER},  # contracts, rules, evaluation, proposing credits
        "b2b.approve": {MANAGER},  # deciding credits (never one's own proposal)
        "b2b.signoff": {MANAGER, "billing_analyst"},  # signing off B2B billing differences (never on a run one started)
    },
    lifecycles=(CONTRACT, CREDIT, REVIEW, CHANGE),
    subscribers=(
        # same transaction: the order that delivers a change request completes, so the change is delivered with it
        Subscriber("b2b.change_delivered_with_its_order", "product_order.completed", _on_order_completed),
        # billing peer review: differences recorded when a run opens for review; approval refused while one is open
        Subscriber("b2b.peer_review_on_bill_run_review", "bill_run.review", _on_bill_run_review),
        Subscriber("b2b.peer_review_gates_bill_run_approval", "bill_run.approved", _on_bill_run_approved),
    ),
    home=_home,
    home_desks=('service_manager', 'billing_analyst'),
)
