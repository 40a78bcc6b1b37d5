"""Debtors area wiring: dunning policies, runs, holds, the debtors desk, CLI `dunning-run`, worker jobs and demo."""

from __future__ import annotations

from opsline.areas import Area
from opsline.core.domain_events import Subscriber
from opsline.debtors import agency_models, models, provision_models  # noqa: F401  (tables)
from opsline.debtors.models import ARRANGEMENT, DUNNING_ACTION, DUNNING_HOLD, DUNNING_RUN
from opsline.debtors.models import WRITE_OFF, WRITE_OFF_BATCH

CLERK, MANAGER = "debtors_clerk", "debtors_manager"


def _seed(session, *, now) -> None:  # type: ignore[no-untyped-def]
    from opsline.debtors import arrangements, seed

    seed.seed(session, now=now)
    arrangements.seed_limits(session, now=now)


def _routers() -> list:
    from opsline.debtors import views
    from opsline.debtors.reports import views as reports

    from opsline.debtors import writeoff_views

    from opsline.debtors import arrangements_views

    from opsline.debtors import agencies_views, provision_views

    return [views.router, reports.router, arrangements_views.router, writeoff_views.router, agencies_views.router, provision_views.router]


def _reconnect_on_settled(session, event, now) -> None:  # type: ignore[no-untyped-def]
    from opsline.debtors import reconnect

    reconnect.on_settled(session, event, now)


def _reconnect_on_arrangement(session, event, now) -> None:  # type: ignore[no-untyped-def]
    from opsline.debtors import reconnect

    reconnect.on_arrangement_active(session, event, now)


def _panels() -> list:
    from opsline.debtors import desk
    from opsline.web.panels import Panel

    return [Panel(key="debtors", title="Debt collection", permission="debtors.view", template="debtors/_account_panel.html", loader=desk.panel_loader)]


def _admin_views() -> list:
    from opsline.debtors.models import ArrangementApprovalLimit
    from opsline.web.admin import ReferenceView

    return [ReferenceView(ArrangementApprovalLimit, icon="fa fa-handshake", display_name="Arrangement approval limits by role")]


def _register_jobs(registry) -> None:  # type: ignore[no-untyped-def]
    from opsline.debtors import actions, reconnect, runs

    registry.register(runs.PERFORM_JOB)(actions.perform_job)
    registry.register(reconnect.RECONNECT_JOB)(reconnect.reconnect_job)


def _cli(app) -> None:  # type: ignore[no-untyped-def]
    from opsline.debtors import agencies_cli, cli, provision_cli

    cli.register(app)
    agencies_cli.register(app)
    provision_cli.register(app)


def _demo(ctx) -> None:  # type: ignore[no-untyped-def]
    from opsline.debtors import demo_step

    demo_step.run(ctx)


def _demo_agencies(ctx) -> None:  # type: ignore[no-untyped-def]
    from opsline.debtors import agencies_demo

    agencies_demo.run(ctx)


def _demo_provision(ctx) -> None:  # type: ignore[no-untyped-def]
    from opsline.debtors import provision_demo

    provision_demo.run(ctx)


def _home(session, *, now, actor, tz):  # type: ignore[no-untyped-def]
    from opsline.debtors import home

    return home.cards(session, now=now, actor=actor, tz=tz)


AREA = Area(
    name="debtors",
    order=75,  # after payments (ledger, suspense, proposals) and billing claims
    routers=_routers,
    register_jobs=_register_jobs,
    seed=_seed,
    demo_steps=(("dunning", _demo), ("debt hand-over", _demo_agencies), ("bad-debt provision", _demo_provision)),
    desks=(("Debtors", "/debtors", "debtors.view"),),
    cli=_cli,
    permissions={
        "debtors.view": {CLERK, MANAGER},
        "debtors.run": {CLERK, MANAGER},
        "debtors.act": {CLERK, MANAGER},
        "debtors.hold": {CLERK, MANAGER},
        "debtors.policy": {MANAGER},
        "debtors.arrange": {CLERK, MANAGER},  # propose, approve (within the role's limit) and cancel arrangements
        "debtors.writeoff.propose": {CLERK, MANAGER},  # propose (single or bulk) and withdraw write-offs
        "debtors.writeoff.approve": {MANAGER},  # approve or reject them (never one's own: four eyes)
        "debtors.handover": {CLERK, MANAGER},  # hand debt over to an agency, recall it, import recovery files
        "debtors.agency": {MANAGER},  # agency terms: layouts, commission rates
        "debtors.provision": {MANAGER},  # run the IFRS 9 provision, enter the forward-looking adjustment
    },
    lifecycles=(DUNNING_RUN, DUNNING_ACTION, DUNNING_HOLD, ARRANGEMENT, WRITE_OFF, WRITE_OFF_BATCH) + agency_models.LIFECYCLES + provision_models.LIFECYCLES,
    events=("dunning.discontinuance_accepted",),  # a person accepted a discontinuance/final-account step: cancellations opens the journey
    home=_home,
    home_desks=('debtors_clerk', 'debtors_manager'),
    admin_views=_admin_views,
    panels=_panels,
    # a job, not the payment's transaction: a statement import settles thousands of invoices; reconnection can follow
    subscribers=(
        Subscriber("debtors.reconnect_on_invoice_settled", "payments.invoice_settled", _reconnect_on_settled, mode="job"),
        Subscriber("debtors.reconnect_on_invoices_settled", "payments.invoices_settled", _reconnect_on_settled, mode="job"),
        Subscriber("debtors.reconnect_on_arrangement", "arrangement.active", _reconnect_on_arrangement, mode="job"),
    ),
)
