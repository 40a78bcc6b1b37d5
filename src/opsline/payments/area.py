"""Payments area wiring: statement import, matching, allocation, suspense, refunds, TMF676, desk cards and demo."""

from __future__ import annotations

from opsline.areas import Area
from opsline.payments import models  # noqa: F401  (tables)
from opsline.payments.models import ALLOCATION, PAYMENT, REFUND

CLERK, MANAGER, ANALYST = "debtors_clerk", "debtors_manager", "billing_analyst"

INVOICE_SETTLED = "payments.invoice_settled"
INVOICE_REOPENED = "payments.invoice_reopened"
INVOICES_SETTLED = "payments.invoices_settled"  # one per import / approval batch: {"ids": [...], "account_ids": [...]}


def _seed(session, *, now) -> None:  # type: ignore[no-untyped-def]
    from opsline.payments import seed

    seed.seed(session, now=now)


def _routers() -> list:
    from opsline.payments import api, views

    return [views.router, api.router]


def _panels() -> list:
    from opsline.payments import views
    from opsline.web.panels import Panel

    return [Panel(key="payments", title="Payments & allocations", permission="payments.view", template="payments/_panel.html", loader=views.panel_loader)]


def _admin_views() -> list:
    from opsline.payments.models import CsvMapping, MatchingRule, PaymentSetting, UnpaidReason
    from opsline.web.admin import ReferenceView

    return [ReferenceView(MatchingRule, icon="fa fa-list-ol", display_name="Payment matching rules"),
            ReferenceView(CsvMapping, icon="fa fa-table", display_name="Bank CSV mappings"),
            ReferenceView(PaymentSetting, icon="fa fa-sliders", display_name="Payment settings"),
            ReferenceView(UnpaidReason, icon="fa fa-ban", display_name="Debit-order unpaid reasons")]


def _cli(app) -> None:  # type: ignore[no-untyped-def]
    from opsline.payments import cli

    cli.register(app)


def _demo(ctx) -> None:  # type: ignore[no-untyped-def]
    from opsline.payments import demo_step

    demo_step.run(ctx)


def _home(session, *, now, actor, tz):  # type: ignore[no-untyped-def]
    from opsline.payments import home

    return home.cards(session, now=now, actor=actor, tz=tz)


AREA = Area(
    name="payments",
    order=70,  # after billing (invoices, ledger)
    routers=_routers,
    seed=_seed,
    demo_steps=(("payments", _demo),),
    desks=(("Payments", "/payments", "payments.view"),),
    panels=_panels,
    admin_views=_admin_views,
    cli=_cli,
    permissions={
        "payments.view": {CLERK, MANAGER, ANALYST},
        "payments.allocate": {CLERK, MANAGER},
        "payments.approve": {CLERK, MANAGER},
        "payments.refund": {CLERK, MANAGER},
        "payments.capture": {CLERK, MANAGER},
    },
    lifecycles=(PAYMENT, ALLOCATION, REFUND),
    events=(INVOICE_SETTLED, INVOICE_REOPENED, INVOICES_SETTLED, "payments.payment_created", "payments.refund_created",
            "payments.payments_created"),  # allocations.py, refunds.py, matching.py
    home=_home,
    home_desks=('debtors_clerk', 'debtors_manager'),
)
