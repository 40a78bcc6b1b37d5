"""Invoice and statement PDFs (WeasyPrint from Jinja2 HTML), invoice email delivery (SMTP), and xlsx/csv exports."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.billing.invoicing import invoices as inv_svc
from opsline.billing.invoicing.models import BillingClaim, CompanyProfile, InvoiceDelivery, InvoiceDocument
from opsline.billing.invoicing.statements import account_row, balance_at, statement
from opsline.billing.invoicing.tz import local_zone
from opsline.billing.models import InvoiceState, LedgerEntry
from opsline.config import DEFAULT_CURRENCY
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.core.exports import export_table
from opsline.core.money import Money
from opsline.core.pdf import render_pdf
from opsline.notifications import service as notifications
from opsline.web.templating import fmt_dt

_env = Environment(loader=FileSystemLoader(str(Path(__file__).parent / "pdf_templates")), autoescape=select_autoescape(["html"]))


def _money(minor: Any, currency: str = DEFAULT_CURRENCY) -> str:
    if minor is None:
        return ""
    return f"{Money.from_minor(int(minor), currency).amount:,.2f}".replace(",", " ")


_env.filters["m"] = _money
_env.filters["d"] = lambda v: v.astimezone(local_zone()).strftime("%d %b %Y") if isinstance(v, datetime) else (v.strftime("%d %b %Y") if isinstance(v, date) else "")
_env.filters["dt"] = fmt_dt
# periods are stored half-open; customers read the last day billed
_env.filters["dlast"] = lambda v: (v - timedelta(days=1)).strftime("%d %b %Y") if isinstance(v, date) else ""


class UnableToRenderInvoice(InvalidInput):
    title = "Unable to render invoice"
    type_slug = "unable-to-render-invoice"


def claim_row(session: Session, *, claim_id: int) -> BillingClaim:
    c = session.get(BillingClaim, claim_id)
    if c is None:
        raise NotFound(f"claim {claim_id} does not exist")
    return c


def company_profile(session: Session) -> dict[str, Any]:
    p = session.execute(select(CompanyProfile).order_by(CompanyProfile.code).limit(1)).scalar_one_or_none()
    if p is None:
        raise NotFound("no company profile is set up (seed reference data)")
    return {c.key: getattr(p, c.key) for c in CompanyProfile.__table__.columns}


def invoice_context(session: Session, *, invoice_id: int) -> dict[str, Any]:
    """Everything the tax invoice prints. Raises NotFound, UnableToRenderInvoice (a draft has no number yet)."""
    inv = inv_svc.get_invoice(session, invoice_id=invoice_id)
    if inv["number"] is None:
        raise UnableToRenderInvoice(f"invoice {invoice_id} is a draft; it gets a PDF when finalised", field="invoice_id")
    rates = inv_svc.tax_rates(session)
    vat: dict[str, dict[str, Any]] = {}
    for ln in inv["lines"]:
        v = vat.setdefault(ln["tax_rate_code"], {"code": ln["tax_rate_code"], "name": rates.get(ln["tax_rate_code"], {}).get("name", ln["tax_rate_code"]),
                                                 "rate": (Decimal(rates.get(ln["tax_rate_code"], {}).get("rate") or 0) * 100).quantize(Decimal("0.01")), "taxable_minor": 0, "tax_minor": 0})
        v["taxable_minor"] += ln["amount_minor"]
        v["tax_minor"] += ln["tax_minor"]
    issued = inv["issued_at"] or inv["created_at"]
    brought_forward = balance_at(session, account_id=inv["account_id"], before=issued, exclude_ref=("invoice", invoice_id))
    return {"company": company_profile(session), "account": account_row(session, account_id=inv["account_id"]), "invoice": inv, "vat": list(vat.values()),
            "brought_forward_minor": brought_forward, "amount_due_minor": brought_forward + inv["total_minor"], "currency": inv["currency"]}


def _pdf(html: str) -> bytes:
    return render_pdf(html)


def render_invoice_pdf(session: Session, *, invoice_id: int) -> bytes:
    """The tax invoice as PDF bytes (not stored). Raises as invoice_context."""
    return _pdf(_env.get_template("invoice.html").render(**invoice_context(session, invoice_id=invoice_id)))


def store_invoice_pdf(session: Session, *, invoice_id: int, now: datetime) -> InvoiceDocument:
    """Render and store the invoice PDF once (idempotent: an existing document is returned unchanged). Raises as invoice_context."""
    doc = session.execute(select(InvoiceDocument).where(InvoiceDocument.invoice_id == invoice_id)).scalar_one_or_none()
    if doc is not None:
        return doc
    content = render_invoice_pdf(session, invoice_id=invoice_id)
    inv = inv_svc.get_invoice_row(session, invoice_id=invoice_id)
    doc = InvoiceDocument(invoice_id=invoice_id, account_id=inv.account_id, content=content, sha256=hashlib.sha256(content).hexdigest(), size_bytes=len(content), rendered_at=now)
    session.add(doc)
    session.flush()
    return doc


def invoice_pdf(session: Session, *, invoice_id: int, now: datetime) -> tuple[str, bytes]:
    """(file name, PDF bytes) of an invoice, rendering and storing it on demand."""
    doc = store_invoice_pdf(session, invoice_id=invoice_id, now=now)
    inv = inv_svc.get_invoice_row(session, invoice_id=invoice_id)
    return f"{inv.number}.pdf", doc.content


def statement_pdf(session: Session, *, account_id: int, date_from: date | None, date_to: date | None, now: datetime) -> bytes:
    ctx = statement(session, account_id=account_id, date_from=date_from, date_to=date_to, now=now)
    return _pdf(_env.get_template("statement.html").render(company=company_profile(session), now=now, **ctx))


INVOICE_EVENT = "invoice.issued"
CLAIM_EVENT = "claim.decided"
TEMPLATES = (
    (INVOICE_EVENT, "Tax invoice {{ invoice.number }} from {{ company.name }}",
     "Dear {{ account.name }},\n\nPlease find attached tax invoice {{ invoice.number }} for {{ invoice.total }}, due {{ invoice.due_date }}.\n"
     "Pay to {{ company.bank_name }}, account {{ company.bank_account_number }}, branch {{ company.bank_branch_code }}, "
     "reference {{ account.account_number }}.\n\nKind regards\n{{ company.name }}\n",
     "The tax invoice email (the PDF is attached)"),
    (CLAIM_EVENT, "Your billing query {{ claim.id }} on invoice {{ invoice.number }}: {{ claim.outcome }}",
     "Dear {{ account.name }},\n\nWe have reviewed your query about invoice {{ invoice.number }} ({{ claim.disputed }} disputed).\n"
     "Outcome: {{ claim.outcome }}.\nReason: {{ claim.reason }}\n"
     "{% if claim.credited %}A credit of {{ claim.credited }} has been applied to your account.\n{% endif %}"
     "\nKind regards\n{{ company.name }}\n",
     "The outcome of a billing claim, with the reason"),
)


def ensure_templates(session: Session, *, now: datetime) -> None:
    """Seed the invoicing message templates (idempotent; an operator's edits are kept)."""
    for event, subject, body, desc in TEMPLATES:
        notifications.ensure_template(session, event=event, channel="email", language="en", subject=subject, body=body, now=now, description=desc)


def email_invoice(session: Session, *, invoice_id: int, now: datetime, actor: Actor) -> dict[str, Any]:
    """Send the invoice email with its PDF through the notifications service, once (an `invoice_delivery` row and the
    message's idempotency key guard against a second send), and mark the invoice sent. The PDF is rendered before the
    first write, so a worker holds no write lock while rendering. An invoice on hold or not finalised is skipped.
    Raises NotFound, and what notifications.send raises (the job retries)."""
    inv = inv_svc.get_invoice_row(session, invoice_id=invoice_id)
    prior = session.execute(select(InvoiceDelivery).where(InvoiceDelivery.invoice_id == invoice_id, InvoiceDelivery.channel == "email")).scalar_one_or_none()
    if prior is not None and prior.state == "sent":
        return {"skipped": "already sent", "delivery_id": prior.id}
    if inv.state == InvoiceState.ON_HOLD or inv.number is None:
        return {"skipped": f"invoice is {inv.state}"}
    acc = account_row(session, account_id=inv.account_id)
    if not acc["email"]:
        return {"skipped": "account has no email address"}
    doc = store_invoice_pdf(session, invoice_id=invoice_id, now=now)  # renders first, then one short write
    company = company_profile(session)
    ctx = {"invoice": {"id": inv.id, "number": inv.number, "total": str(Money.from_minor(inv.total_minor, inv.currency)),
                       "due_date": inv.due_date.isoformat() if inv.due_date else ""},
           "company": {k: company[k] for k in ("name", "bank_name", "bank_account_number", "bank_branch_code")}}
    try:
        message_id = notifications.send(
            session, event=INVOICE_EVENT, account_id=inv.account_id, context=ctx, now=now, actor=actor, to=acc["email"], category="billing",
            subject_ref=f"invoice:{inv.id}", idempotency_key=f"invoice-email:{inv.id}",
            attachments=[notifications.Attachment(filename=f"{inv.number}.pdf", content_type="application/pdf", ref=("invoice_document", "content", doc.id))])
    except notifications.RecipientOptedOut:
        # the customer chose not to get billing email: the invoice stays on the portal and the statement; nothing to retry
        return {"skipped": "the account opted out of billing email"}
    if prior is None:
        prior = InvoiceDelivery(invoice_id=invoice_id, account_id=inv.account_id, channel="email", recipient=acc["email"], state="sent", sent_at=now,
                                message_id=f"message:{message_id}")
        session.add(prior)
    else:
        prior.state, prior.sent_at, prior.message_id = "sent", now, f"message:{message_id}"
    session.flush()
    if inv.state in (InvoiceState.NEW, InvoiceState.VALIDATED):
        inv_svc.transition(session, invoice_id=invoice_id, action="send", now=now, actor=actor if actor.is_system else Actor.system("invoice-mailer"),
                           reason=f"emailed to {acc['email']}")
    return {"sent_to": acc["email"], "delivery_id": prior.id, "message_id": message_id}


def email_claim_outcome(session: Session, *, claim_id: int, now: datetime, actor: Actor) -> dict[str, Any]:
    """Tell the customer the outcome of a claim (and why) through the notifications service, once. Raises NotFound."""
    c = claim_row(session, claim_id=claim_id)
    inv = inv_svc.get_invoice_row(session, invoice_id=c.invoice_id)
    company = company_profile(session)
    outcome = {"upheld": "upheld", "partiallyUpheld": "partially upheld", "rejected": "not upheld"}.get(c.state, c.state)
    ctx = {"invoice": {"id": inv.id, "number": inv.number},
           "claim": {"id": c.id, "outcome": outcome, "reason": c.outcome_reason or "", "disputed": str(Money.from_minor(c.disputed_minor, c.currency)),
                     "credited": str(Money.from_minor(c.upheld_minor, c.currency)) if c.upheld_minor else ""},
           "company": {"name": company["name"]}}
    try:
        message_id = notifications.send(session, event=CLAIM_EVENT, account_id=c.account_id, context=ctx, now=now, actor=actor, category="billing",
                                        subject_ref=f"claim:{c.id}", idempotency_key=f"claim-outcome:{c.id}")
    except notifications.RecipientOptedOut:
        return {"skipped": "the account opted out of billing email"}
    return {"message_id": message_id}


# ------------------------------------------------------------------------------------------------ exports

INVOICE_COLUMNS = ["number", "account_number", "account_name", "kind", "state", "period_start", "period_end", "issued_at", "due_date", "currency", "subtotal", "tax", "total"]
LINE_COLUMNS = ["invoice_number", "line_id", "kind", "description", "period_start", "period_end", "quantity", "unit_amount", "amount_excl_tax", "tax_rate", "tax", "total", "currency", "explanation"]


def _invoice_rows(items: list[dict[str, Any]]) -> list[list[Any]]:
    def major(v: int, c: str) -> Decimal:
        return Money.from_minor(v, c).amount

    return [[i["number"], i["account_number"], i["account_name"], i["kind"], i["state"], i["period_start"], i["period_end"],
             i["issued_at"].astimezone(local_zone()).strftime("%Y-%m-%d %H:%M") if i["issued_at"] else "", i["due_date"], i["currency"],
             major(i["subtotal_minor"], i["currency"]), major(i["tax_minor"], i["currency"]), major(i["total_minor"], i["currency"])] for i in items]


def _line_rows(inv: dict[str, Any]) -> list[list[Any]]:
    return [[inv["number"], ln["id"], ln["kind"], ln["description"], ln["period_start"], ln["period_end"], ln["quantity"],
             Money.from_minor(ln["unit_amount_minor"], ln["currency"]).amount, Money.from_minor(ln["amount_minor"], ln["currency"]).amount, ln["tax_rate_code"],
             Money.from_minor(ln["tax_minor"], ln["currency"]).amount, Money.from_minor(ln["total_minor"], ln["currency"]).amount, ln["currency"], ln["explanation"]]
            for ln in inv["lines"]]


def export_invoices(session: Session, *, fmt: str, max_rows: int = 100_000, **filters: Any) -> tuple[str, str, bytes]:
    """(file name, media type, bytes) of the invoices matching `filters` (as list_invoices). Raises InvalidInput for an unknown format."""
    items = inv_svc.list_invoices(session, limit=max_rows, **filters)["items"]
    return export_table(fmt, name="invoices", header=INVOICE_COLUMNS, rows=_invoice_rows(items), money_cols={10, 11, 12})


def export_invoice_lines(session: Session, *, invoice_id: int, fmt: str) -> tuple[str, str, bytes]:
    """(file name, media type, bytes) of one invoice's lines. Raises NotFound, InvalidInput."""
    inv = inv_svc.get_invoice(session, invoice_id=invoice_id)
    stem = inv["number"] or f"draft-{invoice_id}"
    return export_table(fmt, name=f"{stem}-lines", header=LINE_COLUMNS, rows=_line_rows(inv), money_cols={7, 8, 10, 11})


def ledger_for_invoice(session: Session, *, invoice_id: int) -> list[dict[str, Any]]:
    rows = session.execute(select(LedgerEntry).where(LedgerEntry.ref_type == "invoice", LedgerEntry.ref_id == invoice_id)).scalars()
    return [{"id": e.id, "kind": e.kind, "amount_minor": e.amount_minor, "posted_at": e.posted_at} for e in rows]


__all__ = ["company_profile", "email_invoice", "export_invoice_lines", "export_invoices", "invoice_pdf", "render_invoice_pdf", "statement_pdf", "store_invoice_pdf"]
