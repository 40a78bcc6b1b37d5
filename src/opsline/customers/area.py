"""Customers area wiring (and the platform's own scheduled database upkeep)."""

from opsline import demo
from opsline.areas import Area
from opsline.customers import data_models, home, models, privacy  # noqa: F401  (tables)
from opsline.customers.data_models import ACCOUNT_MERGE, ORDER_RISK_HOLD, RISK_FLAG
from opsline.customers.models import ACCOUNT
from opsline.users.roles import Role


def _routers() -> list:
    from opsline.customers import api, views

    from opsline.customers import privacy_views
    from opsline.customers import merge_views, quality_views, risk_views

    return [views.router, api.router, privacy_views.router, merge_views.router, quality_views.router, risk_views.router]


def _seed(session, *, now) -> None:  # type: ignore[no-untyped-def]
    from opsline.seed import seed_customers

    seed_customers(session, now=now)
    from opsline.customers import data_settings

    data_settings.seed(session)


def _register_jobs(registry) -> None:  # type: ignore[no-untyped-def]
    from opsline.db import maintenance

    maintenance.register(registry)


def _admin_views() -> list:
    from opsline.customers.models import Segment, ValueTier
    from opsline.web.admin import ReferenceView

    from opsline.customers.data_models import CustomerSetting

    return [ReferenceView(Segment, icon="fa fa-tags", display_name="Segments"), ReferenceView(ValueTier, icon="fa fa-star", display_name="Value tiers"),
            ReferenceView(CustomerSetting, icon="fa fa-sliders", display_name="Customer settings")]


def _panels() -> list:
    from opsline.web.panels import Panel

    from opsline.customers import merge, quality, risk

    return [Panel(key="risk", title="Risk flags", permission="customers.view", template="customers/_risk_panel.html", loader=risk.panel),
            Panel(key="privacy", title="Data protection (POPIA)", permission="privacy.request", template="privacy/_panel.html", loader=privacy.panel),
            Panel(key="details_check", title="Confirm or update details", permission="customers.edit", template="customers/_confirm_panel.html",
                  loader=quality.confirm_panel),
            Panel(key="merges", title="Merges", permission="customers.view", template="customers/_merge_panel.html", loader=merge.panel)]


def _cli(app) -> None:  # type: ignore[no-untyped-def]
    from opsline.customers import privacy_views

    privacy_views.register_cli(app)


def _demo_flags(ctx) -> None:  # type: ignore[no-untyped-def]
    from opsline.customers import risk

    risk.demo_flags(ctx)


def _home(session, *, now, actor, tz):  # type: ignore[no-untyped-def]
    from opsline.customers import quality, risk

    return (home.home(session, now=now, actor=actor, tz=tz) + quality.home(session, now=now, actor=actor, tz=tz)
            + risk.home(session, now=now, actor=actor, tz=tz))


AREA = Area(
    name="customers",
    order=10,
    routers=_routers,
    register_jobs=_register_jobs,
    seed=_seed,
    demo_steps=(("users", demo.add_users), ("customers", demo.load_customers), ("memos", demo.add_memos_and_duplicates), ("risk flags", _demo_flags)),
    desks=(("Customers", "/accounts", "customers.view"),),
    admin_views=_admin_views,
    lifecycles=(ACCOUNT, privacy.PRIVACY_REQUEST, ACCOUNT_MERGE, RISK_FLAG, ORDER_RISK_HOLD),
    events=(privacy.ERASED_EVENT, "customers.account_created", "customers.account_changed"),  # customers/service.py
    panels=_panels,
    cli=_cli,
    permissions={  # the account lifecycle's actions (customers.models.ACCOUNT); refused with 403 for other roles
        "accounts.activate": {Role.BILLING, Role.SERVICE_MANAGER, Role.SECOND_LINE},
        "accounts.suspend": {Role.DEBTORS_CLERK, Role.DEBTORS_MANAGER, Role.SERVICE_MANAGER},
        "accounts.reconnect": {Role.DEBTORS_CLERK, Role.DEBTORS_MANAGER, Role.SERVICE_MANAGER, Role.BILLING},
        "accounts.close": {Role.CANCELLATIONS, Role.DEBTORS_MANAGER},
        # clean customer data (customers/merge.py, quality.py) and risk (customers/risk.py, orders/service/risk_review.py)
        "customers.merge": {Role.SECOND_LINE, Role.SERVICE_MANAGER, Role.BILLING},
        "customers.quality": {Role.SECOND_LINE, Role.SERVICE_MANAGER, Role.BILLING},
        "risk.flag": {Role.SECOND_LINE, Role.SERVICE_MANAGER, Role.DEBTORS_MANAGER, Role.BILLING},
        "risk.review": {Role.SERVICE_MANAGER, Role.DEBTORS_MANAGER, Role.BILLING},
    },
    home=_home,
    home_desks=('billing_analyst', 'second_line_agent', 'debtors_clerk', 'debtors_manager', 'service_manager'),
)
