"""TMF event hub wiring: the /hub routes of every TM Forum API, the staff pages, the delivery job, the subscriber that
turns the areas' domain events into TMF events, and the admin card for dead deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from opsline.areas import Area, HomeCard
from opsline.core.domain_events import Subscriber
from opsline.tmfhub import models, service  # noqa: F401  (tables)
from opsline.tmfhub.catalogue import RULES


def _routers() -> list:
    from opsline.tmfhub import api, views

    return api.routers() + [views.router]


def _register_jobs(registry: Any) -> None:
    registry.register(service.DELIVER_JOB)(service.deliver_job)


def _home(session: Session, *, now: datetime, actor: Any, tz: Any) -> list[HomeCard]:
    dead = service.dead_count(session)
    if not dead:
        return []
    return [HomeCard(desks=("admin",), title="Dead TMF event deliveries", count=dead, href="/tmf-hub", permission="tmf.hub",
                     hint="a listener's callback refused or was down for hours", tone="danger", order=90)]


AREA = Area(
    name="tmfhub",
    order=95,  # after every area whose events it turns into TMF events
    routers=_routers,
    register_jobs=_register_jobs,
    desks=(("TMF event hub", "/tmf-hub", "tmf.hub"),),
    permissions={"tmf.hub": set()},  # the staff pages: administrators (the /hub APIs use each API's own read permission)
    subscribers=tuple(Subscriber(name=f"tmfhub.{pattern}", event=pattern, handler=service.subscriber_for(pattern))
                      for pattern in dict.fromkeys(r.domain_event for r in RULES)),
    home=_home,
    home_desks=("admin",),
)
