"""Inventory area wiring: installed products and customer equipment."""

from opsline.areas import Area
from opsline.inventory import models  # noqa: F401  (tables)


def _routers() -> list:
    from opsline.inventory import api

    return [api.router]


def _panels() -> list:
    from opsline.inventory import service
    from opsline.web.panels import Panel

    return [
        Panel(key="products", title="Products", permission="inventory.view", template="inventory/_panel_products.html", loader=service.products_panel),
        Panel(key="equipment", title="Equipment", permission="inventory.view", template="inventory/_panel_equipment.html", loader=service.equipment_panel),
    ]


def _demo_products(ctx) -> None:  # type: ignore[no-untyped-def]
    from opsline.inventory.demo import load_products

    load_products(ctx)


AREA = Area(
    name="inventory",
    order=30,
    routers=_routers,
    demo_steps=(("products", _demo_products),),
    panels=_panels,
)
