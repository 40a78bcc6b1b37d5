"""Revenue assurance and management wiring: partner invoice import (CLI and upload page) with its reconciliation and
disputes, the leakage and billing-consistency reports, the management dashboard, permissions and the demo step."""

from __future__ import annotations

from opsline.areas import Area
from opsline.assurance import models  # noqa: F401  (tables)
from opsline.assurance.models import FINDING


def _routers() -> list:
    from opsline.assurance import dashboard_views, views

    return [views.router, dashboard_views.router]


def _cli(app) -> None:  # type: ignore[no-untyped-def]
    from opsline.assurance import cli

    cli.register(app)


def _home(session, *, now, actor, tz):  # type: ignore[no-untyped-def]
    from opsline.assurance import home

    return home.cards(session, now=now, actor=actor, tz=tz)


def _demo(ctx) -> None:  # type: ignore[no-untyped-def]
    from opsline.assurance import demo

    demo.run(ctx)


AREA = Area(
    name="assurance",
    order=97,  # after partners, inventory, billing, cancellations and b2b: it reads them all
    routers=_routers,
    cli=_cli,
    demo_steps=(("Revenue assurance: an FNO invoice imported and reconciled", _demo),),
    desks=(("Revenue assurance", "/assurance", "assurance.view"), ("Management", "/assurance/dashboard", "management.view")),
    permissions={
        "assurance.view": {"billing_analyst", "service_manager", "debtors_manager"},
        "assurance.import": {"billing_analyst"},  # importing a partner invoice
        "assurance.manage": {"billing_analyst"},  # disputing findings with the FNO, recording its answer, dismissing
        "management.view": {"service_manager", "debtors_manager", "billing_analyst"},  # the managers' dashboard
    },
    lifecycles=(FINDING,),
    home=_home,
    home_desks=('billing_analyst',),
)
