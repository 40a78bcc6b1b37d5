"""Customers area wiring."""

from opsline import demo
from opsline.areas import Area
from opsline.customers import models  # noqa: F401  (tables)


def _routers() -> list:
    from opsline.customers import api, views

    return [views.router, api.router]


def _seed(session, *, now) -> None:  # type: ignore[no-untyped-def]
    from opsline.seed import seed_customers

    seed_customers(session, now=now)


def _admin_views() -> list:
    from opsline.customers.models import Segment, ValueTier
    from opsline.web.admin import ReferenceView

    return [ReferenceView(Segment, icon="fa fa-tags", display_name="Segments"), ReferenceView(ValueTier, icon="fa fa-star", display_name="Value tiers")]


AREA = Area(
    name="customers",
    order=10,
    routers=_routers,
    seed=_seed,
    demo_steps=(("users", demo.add_users), ("customers", demo.load_customers), ("memos", demo.add_memos_and_duplicates)),
    desks=(("Customers", "/accounts", "customers.view"),),
    admin_views=_admin_views,
)
