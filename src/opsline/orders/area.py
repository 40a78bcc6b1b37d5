"""Orders area wiring: product orders (TMF622) and quotes (TMF648)."""

from opsline.areas import Area
from opsline.orders import models  # noqa: F401  (tables)


def _routers() -> list:
    from opsline.orders import api, views

    return [views.router, api.router]


def _demo_orders(ctx) -> None:  # type: ignore[no-untyped-def]
    from opsline.orders.demo import load_orders

    load_orders(ctx)


AREA = Area(
    name="orders",
    order=32,
    routers=_routers,
    demo_steps=(("orders", _demo_orders),),
    desks=(("Orders", "/orders", "orders.view"),),
)
