"""Demo: credit notes, billing claims in every state, and a usage file with a few rejected rows, through the real services."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from opsline.billing.invoicing import claims as cl
from opsline.billing.invoicing import credits as cr
from opsline.billing.invoicing.samples import make_finalised_invoice
from opsline.billing.invoicing.usage import import_usage
from opsline.billing.models import Invoice, InvoiceLine
from opsline.core.errors import OpslineError
from opsline.core.events import Actor
from opsline.core.money import Money
from opsline.db.session import make_sessionmaker
from opsline.inventory.models import Product

BILLING = Actor(name="billing", roles=frozenset({"billing_analyst"}))
SUPPORT = Actor(name="support", roles=frozenset({"second_line_agent"}))
CREDIT_REASONS = ["Fibre outage 3 days (FNO fault ref)", "Goodwill: installation delay", "Double-billed router rental", "Price promise not applied", "Cancelled within cooling-off period"]
CLAIM_REASONS = ["Customer says line was down most of the month", "Router was returned; still billed rental", "Did not order the upgrade",
                 "Out-of-bundle data disputed: phone was off", "Billed after cancellation notice"]


def _ensure_invoices(ctx: Any, factory: Any) -> list[int]:
    with factory() as s:
        ids = list(s.execute(select(Invoice.id).where(Invoice.number.is_not(None), Invoice.total_minor > 0).order_by(Invoice.id).limit(20_000)).scalars())
    if ids or len(ctx.account_ids) == 0:
        return ids
    # the bill run made none (no products?): a handful of sample invoices so the pages have something to show
    start = ctx.now.date().replace(day=1)
    prev = (start - timedelta(days=1)).replace(day=1)
    with factory.begin() as s:
        for acc in ctx.account_ids[:10]:
            ids.append(make_finalised_invoice(s, account_id=int(acc), now=ctx.now - timedelta(days=20), period_start=prev, period_end=start, lines=[
                {"description": "Fibre 50/50 Mbps uncapped", "amount_minor": 69900, "explanation": "Monthly subscription, full month"},
                {"description": "Router rental", "amount_minor": 4900, "explanation": "Loaned router, monthly rental"}], number=None))
    return ids


def run(ctx: Any) -> None:
    factory = make_sessionmaker(ctx.engine)
    invoice_ids = _ensure_invoices(ctx, factory)
    credits = claims = 0
    n = len(invoice_ids)
    if n:
        step = max(1, n // min(n, max(3, min(400, n // 60))))
        picks = invoice_ids[::step]
        for k, inv_id in enumerate(picks):
            at = ctx.now - timedelta(days=(k % 15), hours=k % 7)
            with factory.begin() as s:
                lines = list(s.execute(select(InvoiceLine.id, InvoiceLine.total_minor, InvoiceLine.currency).where(InvoiceLine.invoice_id == inv_id, InvoiceLine.total_minor > 0)
                                       .order_by(InvoiceLine.id)).all())
                inv = s.get(Invoice, inv_id)
                if not lines or inv.issued_at is None or inv.issued_at > at:
                    continue
                try:
                    if k % 2 == 0:
                        # a credit note: a quarter of the first line
                        amt = Money.from_minor(max(100, lines[0][1] // 4), lines[0][2])
                        cr.credit_line(s, invoice_line_id=lines[0][0], amount=amt, reason=CREDIT_REASONS[k % len(CREDIT_REASONS)], now=at, actor=BILLING,
                                       idempotency_key=f"demo-credit:{inv_id}")
                        credits += 1
                    else:
                        ln = lines[-1]
                        claim = cl.raise_claim(s, invoice_id=inv_id, lines=[(ln[0], Money.from_minor(ln[1], ln[2]))], reason=CLAIM_REASONS[k % len(CLAIM_REASONS)],
                                               channel=["phone", "email", "web"][k % 3], now=at, actor=SUPPORT,
                                               attachments=[("note.txt", "text/plain", b"Customer call notes")] if k % 4 == 1 else ())
                        claims += 1
                        outcome = (k // 2) % 6
                        later = at + timedelta(hours=3)
                        if outcome >= 1:
                            cl.transition_claim(s, claim_id=claim.id, action="review", now=later, actor=BILLING)
                        if outcome == 2:
                            cl.transition_claim(s, claim_id=claim.id, action="uphold", reason="FNO confirmed the fault; full credit", now=later, actor=BILLING)
                        elif outcome == 3:
                            cl.transition_claim(s, claim_id=claim.id, action="reject", reason="Usage records show normal service", now=later, actor=BILLING)
                        elif outcome == 4 and ln[1] >= 200:
                            cl.transition_claim(s, claim_id=claim.id, action="partially_uphold", upheld=Money.from_minor(ln[1] // 2, ln[2]),
                                                reason="Half the period affected", now=later, actor=BILLING)
                        elif outcome == 5:
                            cl.transition_claim(s, claim_id=claim.id, action="withdraw", reason="Customer found the router", now=later, actor=SUPPORT)
                except OpslineError:
                    continue
    ctx.counts["credit_notes"] = credits
    ctx.counts["billing_claims"] = claims
    ctx.counts["usage_rows"] = _usage_file(ctx, factory)


def _usage_file(ctx: Any, factory: Any) -> int:
    """A usage CSV for up to 300 mobile subscribers this month, with a few deliberately bad rows, imported and rated."""
    with factory() as s:
        month = ctx.now.date().replace(day=1)
        subs = list(s.execute(select(Product.id, Product.msisdn, Product.start_date).where(
            Product.msisdn.is_not(None), Product.state == "active", Product.start_date <= month).order_by(Product.id).limit(300)).all())
    rows = ["external_id,msisdn,product_id,usage_type,started_at,quantity"]
    k = 0
    days = max(1, (ctx.now.date() - month).days)
    for i, (pid, msisdn, _start) in enumerate(subs):
        for j in range(6):
            d = month + timedelta(days=(i + j * 3) % days)
            kind = ["data_mb", "data_mb", "voice_sec", "sms", "data_mb", "voice_sec"][j]
            qty = {"data_mb": 150 + (i * 37 + j * 91) % 900, "voice_sec": 30 + (i * 13 + j) % 600, "sms": 1 + (i + j) % 5}[kind]
            rows.append(f"DEMO-{month:%Y%m}-{pid}-{j},{msisdn},,{kind},{d.isoformat()}T{8 + j:02d}:{(i * 7) % 60:02d}:00+02:00,{qty}")
            k += 1
    rows += [
        f"DEMO-{month:%Y%m}-BAD-1,27829990000,,data_mb,{month.isoformat()}T10:00:00+02:00,50",
        f"DEMO-{month:%Y%m}-BAD-2,{subs[0][1] if subs else '27820000000'},,data_mb,{month.isoformat()}T10:00:00+02:00,-20",
        f"DEMO-{month:%Y%m}-BAD-3,{subs[0][1] if subs else '27820000000'},,voice_sec,2026-02-30T10:00:00+02:00,60",
        f"DEMO-{month:%Y%m}-BAD-4,{subs[0][1] if subs else '27820000000'},,data_mb,{month.isoformat()}T11:00:00,10",
    ]
    if k:
        rows.append(rows[1])  # a duplicate of the first row
    with factory.begin() as s:
        res = import_usage(s, file="\n".join(rows) + "\n", filename=f"usage-{month:%Y-%m}-demo.csv", now=ctx.now, actor=BILLING)
    ctx.counts["usage_rejected"] = res.rejected
    return res.loaded
