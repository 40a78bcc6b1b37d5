"""The invoice detail page's data in a fixed number of queries (no query per line): lines, what is creditable and
disputed, the usage records behind each usage line, credit notes, claims and the allowed actions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsline.billing.invoicing import claims as cl
from opsline.billing.invoicing import credits as cr
from opsline.billing.invoicing import invoices, statements
from opsline.billing.invoicing.models import CLAIM
from opsline.billing.models import INVOICE, UsageRecord

USAGE_TYPE_OF_LINE = {"Out-of-bundle data": "data_mb", "Voice calls": "voice_sec", "SMS": "sms"}


def usage_by_line(session: Session, *, invoice_id: int, per_line: int = 50) -> dict[tuple[int | None, str], list[dict[str, Any]]]:
    """(product id, usage type) -> the first `per_line` rated records billed on the invoice, in one query."""
    rn = func.row_number().over(partition_by=(UsageRecord.product_id, UsageRecord.usage_type), order_by=(UsageRecord.started_at, UsageRecord.id)).label("rn")
    inner = select(UsageRecord.id, UsageRecord.product_id, UsageRecord.usage_type, UsageRecord.started_at, UsageRecord.quantity, UsageRecord.rated_amount_minor,
                   UsageRecord.currency, UsageRecord.explanation, UsageRecord.external_id, rn).where(UsageRecord.invoice_id == invoice_id).subquery()
    out: dict[tuple[int | None, str], list[dict[str, Any]]] = {}
    for r in session.execute(select(inner).where(inner.c.rn <= per_line).order_by(inner.c.product_id, inner.c.usage_type, inner.c.rn)).mappings():
        out.setdefault((r["product_id"], r["usage_type"]), []).append(
            {k: r[k] for k in ("id", "usage_type", "started_at", "quantity", "rated_amount_minor", "currency", "explanation", "external_id")})
    return out


def invoice_detail(session: Session, *, invoice_id: int, now: datetime) -> dict[str, Any]:
    """Everything the invoice page shows. Raises NotFound."""
    inv = invoices.get_invoice(session, invoice_id=invoice_id)
    creditable = cr.creditable_by_line(session, invoice_id=invoice_id)
    disputed = cl.open_disputed_by_line(session, invoice_id=invoice_id)
    usage = usage_by_line(session, invoice_id=invoice_id) if any(ln["kind"] == "usage" for ln in inv["lines"]) else {}
    for ln in inv["lines"]:
        ln["creditable_minor"] = creditable.get(ln["id"], 0)
        ln["disputed_minor"] = disputed.get(ln["id"], 0)
        ln["usage"] = usage.get((ln["product_id"], USAGE_TYPE_OF_LINE.get(ln["description"], "")), []) if ln["kind"] == "usage" else []
    return {"invoice": inv, "account": statements.account_row(session, account_id=inv["account_id"]),
            "credit_notes": cr.list_credit_notes(session, invoice_id=invoice_id), "claims": cl.list_claims(session, invoice_id=invoice_id, now=now),
            "manual_actions": invoices.allowed_actions(inv["state"], manual_only=True), "action_labels": dict(INVOICE.labels),
            "channels": cl.CHANNELS, "claim_labels": dict(CLAIM.labels)}


def claim_page(session: Session, *, claim_id: int, now: datetime) -> dict[str, Any]:
    """A claim with its invoice number, account and action labels (the claim page). Raises NotFound."""
    c = cl.get_claim(session, claim_id=claim_id, now=now)
    inv = invoices.get_invoice_row(session, invoice_id=c["invoice_id"])
    return {"claim": c, "invoice_number": inv.number, "labels": dict(CLAIM.labels), "account": statements.account_row(session, account_id=c["account_id"])}
