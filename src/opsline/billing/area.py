"""Billing area wiring: charges, bill runs, ledger (the invoicing sub-package adds TMF678, PDFs, credit notes, usage)."""

from __future__ import annotations

from datetime import date

from opsline.areas import Area
from opsline.billing import models  # noqa: F401  (tables)
from opsline.billing import final_account as _final_account  # noqa: F401  (tables)
from opsline.billing import suspension
from opsline.billing.models import BILL_RUN, BILL_RUN_SHARD, INVOICE, PENDING_CHARGE, USAGE_RECORD
from opsline.core.domain_events import Subscriber

TAX_RATES = [
    ("VAT15", "VAT 15%", "0.1500", "ZA", date(2018, 4, 1), None),
    ("ZERO", "Zero-rated", "0.0000", "ZA", date(1991, 9, 30), None),
    ("EXEMPT", "Exempt", "0.0000", "ZA", date(1991, 9, 30), None),
]
CYCLES = [
    ("monthly-1", 1, 30, "Billed on the 1st for the calendar month in advance"),
    ("monthly-15", 15, 30, "Billed on the 15th for the 15th to the 14th in advance"),
    ("monthly-25", 25, 30, "Billed on the 25th for the 25th to the 24th in advance"),
]
SETTINGS = [
    ("suspension_policy", "charge", "str", "Bill suspended products and accounts: 'charge' (as normal) or 'no_charge' (no recurring charge for suspended days)"),
    ("reconnection_fee_policy", "charge", "str", "On reconnection after suspension: 'charge' the catalogue's reconnection fee or 'waive' it"),
    ("variance_threshold_percent", "20", "decimal", "Flag an account in review when its invoice moved more than this percent from last period"),
    ("proration_basis", "days_in_month", "str", "Pro-rata basis: days in the billed period"),
    ("bill_run_shards", "8", "int", "How many jobs a bill run is split into (by account-id range)"),
    ("invoice_number_prefix", "INV", "str", "Prefix of legal invoice numbers (INV-2026-00000001)"),
]


def _seed(session, *, now) -> None:  # type: ignore[no-untyped-def]
    from decimal import Decimal

    from opsline.billing.models import BillingCycle, BillingSetting, TaxRate

    for code, name, rate, country, vf, vt in TAX_RATES:
        if session.get(TaxRate, code) is None:
            session.add(TaxRate(code=code, name=name, rate=Decimal(rate), country=country, valid_from=vf, valid_to=vt))
    for code, day, terms, desc in CYCLES:
        if session.get(BillingCycle, code) is None:
            session.add(BillingCycle(code=code, bill_day=day, payment_terms_days=terms, description=desc))
    for key, value, vtype, desc in SETTINGS:
        if session.get(BillingSetting, key) is None:
            session.add(BillingSetting(key=key, value=value, value_type=vtype, description=desc))


def _routers() -> list:
    from opsline.billing import final_account_views, views

    return [views.router, final_account_views.router]


def _register_jobs(registry) -> None:  # type: ignore[no-untyped-def]
    from opsline.billing import billrun

    registry.register(billrun.SHARD_JOB)(billrun.shard_job)


def _panels() -> list:
    from opsline.billing import views
    from opsline.web.panels import Panel

    return [Panel(key="billing-balance", title="Balance & ageing", permission="billing.view", template="billing/_panel_balance.html", loader=views.balance_panel)]


def _admin_views() -> list:
    from opsline.billing.models import BillingCycle, BillingSetting, Discount, RelocationOverlap, TaxRate
    from opsline.web.admin import ReferenceView

    return [
        ReferenceView(TaxRate, icon="fa fa-percent", display_name="Tax rates"),
        ReferenceView(BillingCycle, icon="fa fa-calendar", display_name="Billing cycles"),
        ReferenceView(BillingSetting, icon="fa fa-sliders", display_name="Billing settings"),
        ReferenceView(Discount, icon="fa fa-tag", display_name="Discounts"),
        ReferenceView(RelocationOverlap, icon="fa fa-exchange", display_name="Relocation overlap per partner"),
    ]


def _cli(app) -> None:  # type: ignore[no-untyped-def]
    from opsline.billing import cli, final_account_views

    cli.register(app)
    final_account_views.register_cli(app)


def _demo(ctx) -> None:  # type: ignore[no-untyped-def]
    from opsline.billing.billrun import demo_bill_runs

    demo_bill_runs(ctx)


def _home(session, *, now, actor, tz):  # type: ignore[no-untyped-def]
    from opsline.billing import home

    return home.cards(session, now=now, actor=actor, tz=tz)


AREA = Area(
    name="billing",
    order=60,
    routers=_routers,
    register_jobs=_register_jobs,
    seed=_seed,
    demo_steps=(("billing", _demo),),
    desks=(("Billing", "/billing/runs", "billing.view"),),
    panels=_panels,
    admin_views=_admin_views,
    cli=_cli,
    lifecycles=(BILL_RUN, BILL_RUN_SHARD, INVOICE, PENDING_CHARGE, USAGE_RECORD),
    subscribers=(
        Subscriber("billing.account_suspended", "account.suspended", suspension.on_account_suspended),
        Subscriber("billing.account_reconnected", "account.active", suspension.on_account_active),
    ),
    home=_home,
    home_desks=('billing_analyst',),
    permissions={"billing.final_account": {"billing_analyst", "cancellations_coordinator"}},  # issue a final account by hand
    events=(_final_account.EVENT,),
)
