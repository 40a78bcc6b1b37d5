"""Cases area wiring."""

from __future__ import annotations

from opsline.areas import Area
from opsline.cases import campaign_models, models  # noqa: F401  (tables)
from opsline.cases.campaign_models import BRAND_INCIDENT, CAMPAIGN
from opsline.cases.models import CASE, LEAD
from opsline.users.roles import Role


def _routers() -> list:
    from opsline.cases import api, support_views, views

    # support_views first: its fixed paths (/cases/leads, /cases/campaigns ...) must win over /cases/{case_id}
    return [support_views.router, views.router, api.router]


def _register_jobs(registry) -> None:  # type: ignore[no-untyped-def]
    from opsline.cases import jobs, lead_delivery, trends_mail

    jobs.register(registry)
    trends_mail.register(registry)
    lead_delivery.register(registry)


def _seed(session, *, now) -> None:  # type: ignore[no-untyped-def]
    from opsline.cases.seed import seed_cases_reference

    from opsline.cases.campaigns import seed_templates as seed_campaign_templates
    from opsline.cases.incidents import seed_templates as seed_incident_templates
    from opsline.cases.leads import seed_templates as seed_lead_templates
    from opsline.cases.trends_mail import seed_templates as seed_trend_templates

    seed_cases_reference(session, now=now)
    seed_lead_templates(session, now=now)
    seed_campaign_templates(session, now=now)
    seed_trend_templates(session, now=now)
    seed_incident_templates(session, now=now)


def _panels() -> list:
    from opsline.cases.views import cases_panel

    return [cases_panel()]


def _admin_views() -> list:
    from opsline.cases.models import CaseCategory, CaseSetting, PriorityRule, Queue, QueueMember
    from opsline.web.admin import ReferenceView

    return [
        ReferenceView(CaseCategory, icon="fa fa-folder", display_name="Case categories"),
        ReferenceView(Queue, icon="fa fa-inbox", display_name="Case queues"),
        ReferenceView(QueueMember, icon="fa fa-users", display_name="Queue members"),
        ReferenceView(PriorityRule, icon="fa fa-sort", display_name="Case priority rules"),
        ReferenceView(CaseSetting, icon="fa fa-sliders", display_name="Case settings"),
    ]


def _cli(app) -> None:  # type: ignore[no-untyped-def]
    from opsline.cases.cli import add_commands

    add_commands(app)


def _home(session, *, now, actor, tz):  # type: ignore[no-untyped-def]
    from opsline.cases import support_home
    from opsline.cases.home import home

    return home(session, now=now, actor=actor, tz=tz) + support_home.home(session, now=now, actor=actor, tz=tz)


def _demo_queues(ctx) -> None:  # type: ignore[no-untyped-def]
    from opsline.cases import demo

    demo.setup_queues(ctx)


def _demo_cases(ctx) -> None:  # type: ignore[no-untyped-def]
    from opsline.cases import demo

    demo.load_cases(ctx)


def _demo_support(ctx) -> None:  # type: ignore[no-untyped-def]
    from opsline.cases import support_demo

    support_demo.load(ctx)


AREA = Area(
    name="cases",
    order=60,
    routers=_routers,
    register_jobs=_register_jobs,
    seed=_seed,
    demo_steps=(("case_queues", _demo_queues), ("cases", _demo_cases), ("support_leads_campaigns", _demo_support)),
    desks=(("Support", "/cases", "cases.view"),),
    panels=_panels,
    admin_views=_admin_views,
    cli=_cli,
    lifecycles=(CASE, LEAD, CAMPAIGN, BRAND_INCIDENT),
    permissions={
        # leads: record, qualify, hand over, record the outcome (agents and their managers)
        "cases.leads": {Role.SECOND_LINE, Role.CANCELLATIONS, Role.SERVICE_MANAGER},
        # campaigns: create, build targets, launch, complete (managers); agents work the targets with cases.leads
        "cases.campaigns": {Role.SERVICE_MANAGER},
        # trends for management: the weekly report, drill-down and workbook
        "cases.trends": {Role.SERVICE_MANAGER},
        # brand incidents: any case worker raises and updates one; the service manager closes (with a summary) or reopens
        "cases.incidents": {Role.SERVICE_MANAGER},
    },
    events=("case.changed", "case.retention_declined"),
    home=_home,
    home_desks=('second_line_agent', 'service_manager'),
)
