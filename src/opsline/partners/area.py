"""Partners area wiring: FNOs, couriers and collection agencies; outbound TMF641 service orders; the FNO simulator."""

from opsline.areas import Area
from opsline.partners import models  # noqa: F401  (tables)


def _routers() -> list:
    from opsline.partners import api, views

    return [views.router, api.router]


def _register_jobs(registry) -> None:  # type: ignore[no-untyped-def]
    from opsline.partners import service

    service.register_jobs(registry)


def _seed(session, *, now) -> None:  # type: ignore[no-untyped-def]
    from opsline.partners.seed import seed_partners

    seed_partners(session, now=now)


def _panels() -> list:
    from opsline.partners import service
    from opsline.web.panels import Panel

    return [Panel(key="partner_orders", title="Partner orders", permission="partners.view", template="partners/_panel.html", loader=service.account_partner_orders)]


def _admin_views() -> list:
    from opsline.partners.models import Partner
    from opsline.web.admin import ReferenceView

    return [ReferenceView(Partner, icon="fa fa-handshake", display_name="Partners")]


def _cli(app) -> None:  # type: ignore[no-untyped-def]
    from opsline.partners import cli

    cli.register(app)


def _demo_partner_orders(ctx) -> None:  # type: ignore[no-untyped-def]
    from opsline.partners.demo import load_partner_orders

    load_partner_orders(ctx)


AREA = Area(
    name="partners",
    order=35,
    routers=_routers,
    register_jobs=_register_jobs,
    seed=_seed,
    demo_steps=(("partner_orders", _demo_partner_orders),),
    desks=(("Partners", "/partners", "partners.view"),),
    panels=_panels,
    admin_views=_admin_views,
    cli=_cli,
)
