"""Report subscriptions wiring: the page (/reports/subscriptions), the daily send job and its schedule, the email
template seed, and who may subscribe (any staff user, to the reports their roles can read)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from opsline.areas import Area
from opsline.config import get_settings
from opsline.core.localtime import zone
from opsline.subscriptions import models  # noqa: F401  (tables)

STAFF = {"cancellations_coordinator", "second_line_agent", "debtors_clerk", "debtors_manager", "billing_analyst", "service_manager"}


def _routers() -> list:
    from opsline.subscriptions import views

    return [views.router]


def _seed(session, *, now) -> None:  # type: ignore[no-untyped-def]
    from opsline.subscriptions import service

    service.seed_templates(session, now=now)


def _schedules(session, *, now, tz) -> None:  # type: ignore[no-untyped-def]
    from opsline.subscriptions import service

    service.schedule(session, now=now, tz=tz)  # daily at local 06:00 (idempotent per day)


def _register_jobs(registry) -> None:  # type: ignore[no-untyped-def]
    from opsline.subscriptions import service

    @registry.register(service.SEND_JOB)
    def _send_due(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
        return service.send_due_job(session, payload, now, tz=zone(get_settings().timezone))


AREA = Area(
    name="subscriptions",
    order=98,  # after every area whose reports it sends
    routers=_routers,
    seed=_seed,
    schedules=_schedules,
    register_jobs=_register_jobs,
    desks=(("Report subscriptions", "/reports/subscriptions", "reports.subscribe"),),
    permissions={"reports.subscribe": STAFF},  # and, per report, that report's own permission
)
