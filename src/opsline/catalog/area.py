"""Catalog area wiring."""

from opsline.areas import Area
from opsline.catalog import models  # noqa: F401  (tables)
from opsline.catalog.models import ProductOffering
from opsline.catalog.service import OFFERING_CHANGED, OFFERING_CREATED


def _routers() -> list:
    from opsline.catalog import api, views

    return [views.router, api.router]


def _seed(session, *, now) -> None:  # type: ignore[no-untyped-def]
    from opsline.catalog.seed import seed_catalog

    seed_catalog(session, now=now)


def _admin_views() -> list:
    from opsline.catalog.admin import OfferingView
    from opsline.catalog.models import ContractTerm, OfferingEquipment, Price
    from opsline.web.admin import ReferenceView

    return [
        OfferingView(ProductOffering, icon="fa fa-box", display_name="Product offerings"),
        ReferenceView(Price, icon="fa fa-tag", display_name="Prices"),
        ReferenceView(ContractTerm, icon="fa fa-file-contract", display_name="Contract terms"),
        ReferenceView(OfferingEquipment, icon="fa fa-hdd", display_name="Offering equipment"),
    ]


AREA = Area(
    name="catalog",
    order=20,
    routers=_routers,
    seed=_seed,
    desks=(("Catalog", "/catalog", "catalog.view"),),
    admin_views=_admin_views,
    events=(OFFERING_CREATED, OFFERING_CHANGED),  # admin.py (the /admin offering editor) through service.py
)
