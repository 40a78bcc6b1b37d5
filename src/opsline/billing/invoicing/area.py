"""Invoicing area wiring: TMF678 bills, PDFs and delivery, credit notes, claims, usage import and statements."""

from __future__ import annotations


from opsline.areas import Area
from opsline.billing.invoicing import models  # noqa: F401  (tables)
from opsline.billing.invoicing import invoices
from opsline.billing.invoicing.models import CLAIM, CREDIT_NOTE
from opsline.core.domain_events import Subscriber


def _settled(session, event, now):  # type: ignore[no-untyped-def]
    invoices.follow_payment(session, invoice_id=int(event.payload["id"]), action="settle", now=event.occurred_at, actor=event.actor)


def _settled_batch(session, event, now):  # type: ignore[no-untyped-def]
    invoices.settle_many(session, invoice_ids=[int(i) for i in event.payload["ids"]], now=event.occurred_at, actor=event.actor)


def _reopened(session, event, now):  # type: ignore[no-untyped-def]
    invoices.follow_payment(session, invoice_id=int(event.payload["id"]), action="reopen", now=event.occurred_at, actor=event.actor)


COMPANY = dict(
    code="default", name="Opsline Demo ISP (Pty) Ltd", registration_number="2019/123456/07", vat_number="4123456789",
    address_line1="1 Fibre Lane, Rosebank", address_line2="Private Bag X1", city="Johannesburg", postal_code="2196", country="ZA",
    email="accounts@opsline.example", phone="+27 10 500 1234", bank_name="First National Bank", bank_account_number="62012345678",
    bank_branch_code="250655", claim_sla_business_days=10, max_attachment_bytes=2_000_000,
)


def _seed(session, *, now) -> None:  # type: ignore[no-untyped-def]
    from opsline.billing.invoicing.documents import ensure_templates
    from opsline.billing.invoicing.models import CompanyProfile

    if session.get(CompanyProfile, COMPANY["code"]) is None:
        session.add(CompanyProfile(**COMPANY))
    ensure_templates(session, now=now)


def _routers() -> list:
    from opsline.billing.invoicing import api, views

    return [views.router, api.router]


def _register_jobs(registry) -> None:  # type: ignore[no-untyped-def]
    from opsline.billing.invoicing import documents
    from opsline.core.events import Actor

    @registry.register("invoicing.render_pdf")
    def render_pdf(session, payload, now):  # type: ignore[no-untyped-def]
        doc = documents.store_invoice_pdf(session, invoice_id=int(payload["invoice_id"]), now=now)
        return {"document_id": doc.id, "sha256": doc.sha256}

    @registry.register("invoicing.email_invoice")
    def email_invoice(session, payload, now):  # type: ignore[no-untyped-def]
        return documents.email_invoice(session, invoice_id=int(payload["invoice_id"]), now=now, actor=Actor.system("invoice-mailer"))

    @registry.register("invoicing.email_claim_outcome")
    def email_claim_outcome(session, payload, now):  # type: ignore[no-untyped-def]
        return documents.email_claim_outcome(session, claim_id=int(payload["claim_id"]), now=now, actor=Actor.system("claims"))


def _panels() -> list:
    from opsline.billing.invoicing import views
    from opsline.web.panels import Panel

    return [Panel(key="invoices-claims", title="Invoices & claims", permission="billing.view", template="invoicing/_panel.html", loader=views.panel_loader)]


def _admin_views() -> list:
    from opsline.billing.invoicing.models import CompanyProfile
    from opsline.web.admin import ReferenceView

    return [ReferenceView(CompanyProfile, icon="fa fa-building", display_name="Company profile")]


def _cli(app) -> None:  # type: ignore[no-untyped-def]
    from opsline.billing.invoicing import cli

    cli.register(app)


def _demo(ctx) -> None:  # type: ignore[no-untyped-def]
    from opsline.billing.invoicing import demo_step

    demo_step.run(ctx)


AREA = Area(
    name="invoicing",
    order=60,
    routers=_routers,
    register_jobs=_register_jobs,
    seed=_seed,
    demo_steps=(("invoicing", _demo),),
    desks=(("Invoices", "/billing/invoices", "billing.view"),),
    panels=_panels,
    admin_views=_admin_views,
    cli=_cli,
    lifecycles=(CLAIM, CREDIT_NOTE),
    subscribers=(
        # payments publishes these (and declares them); the invoice follows in the same transaction
        Subscriber("invoicing.invoice_settled", "payments.invoice_settled", _settled),
        Subscriber("invoicing.invoices_settled", "payments.invoices_settled", _settled_batch),  # a statement import's batch
        Subscriber("invoicing.invoice_reopened", "payments.invoice_reopened", _reopened),
    ),
)
