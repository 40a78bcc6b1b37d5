"""Customers area wiring (and the platform's own scheduled database upkeep)."""

from opsline import demo
from opsline.areas import Area
from opsline.customers import home, models, privacy  # noqa: F401  (tables)
from opsline.customers.models import ACCOUNT
from opsline.users.roles import Role


def _routers() -> list:
    from opsline.customers import api, views

    from opsline.customers import privacy_views

    return [views.router, api.router, privacy_views.router]


def _seed(session, *, now) -> None:  # type: ignore[no-untyped-def]
    from opsline.seed import seed_customers

    seed_customers(session, now=now)


def _register_jobs(registry) -> None:  # type: ignore[no-untyped-def]
    from opsline.db import maintenance

    maintenance.register(registry)


def _admin_views() -> list:
    from opsline.customers.models import Segment, ValueTier
    from opsline.web.admin import ReferenceView

    return [ReferenceView(Segment, icon="fa fa-tags", display_name="Segments"), ReferenceView(ValueTier, icon="fa fa-star", display_name="Value tiers")]


def _panels() -> list:
    from opsline.web.panels import Panel

    return [Panel(key="privacy", title="Data protection (POPIA)", permission="privacy.request", template="privacy/_panel.html", loader=privacy.panel)]


def _cli(app) -> None:  # type: ignore[no-untyped-def]
    from opsline.customers import privacy_views

    privacy_views.register_cli(app)


AREA = Area(
    name="customers",
    order=10,
    routers=_routers,
    register_jobs=_register_jobs,
    seed=_seed,
    demo_steps=(("users", demo.add_users), ("customers", demo.load_customers), ("memos", demo.add_memos_and_duplicates)),
    desks=(("Customers", "/accounts", "customers.view"),),
    admin_views=_admin_views,
    lifecycles=(ACCOUNT, privacy.PRIVACY_REQUEST),
    events=(privacy.ERASED_EVENT,),
    panels=_panels,
    cli=_cli,
    permissions={  # the account lifecycle's actions (customers.models.ACCOUNT); refused with 403 for other roles
        "accounts.activate": {Role.BILLING, Role.SERVICE_MANAGER, Role.SECOND_LINE},
        "accounts.suspend": {Role.DEBTORS_CLERK, Role.DEBTORS_MANAGER, Role.SERVICE_MANAGER},
        "accounts.reconnect": {Role.DEBTORS_CLERK, Role.DEBTORS_MANAGER, Role.SERVICE_MANAGER, Role.BILLING},
        "accounts.close": {Role.CANCELLATIONS, Role.DEBTORS_MANAGER},
    },
    home=home.home,
)
