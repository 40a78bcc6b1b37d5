"""Demo: a week of payments against the demo invoices, generated with realistic behaviour per segment and imported through the
real service as one file of each format (MT940, camt.053, bank CSV, debit-order results, then a file of unpaids), so the
desk shows a realistic match rate, proposals to approve and a real suspense queue."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from opsline.core.events import Actor
from opsline.db.session import make_sessionmaker
from opsline.payments import behaviour, imports
from opsline.payments.behaviour import OpenInvoice

CLERK = Actor(name="debtors", roles=frozenset({"debtors_clerk"}))
MAX_INVOICES = 200_000
UNPAID_REASONS = ("02", "02", "02", "04", "03", "30")


def open_invoices(session: Session, *, limit: int, currency: str) -> list[OpenInvoice]:
    """Issued invoices with money still open (total − credit notes − allocations), oldest due first."""
    rows = session.execute(text("""
        SELECT i.id, i.account_id, a.account_number, a.name, i.number, i.due_date, a.segment_code,
               i.total_minor - COALESCE(cn.s, 0) - COALESCE(al.s, 0) AS open_minor
        FROM invoice i JOIN account a ON a.id = i.account_id
        LEFT JOIN (SELECT invoice_id, SUM(total_minor) AS s FROM credit_note GROUP BY invoice_id) cn ON cn.invoice_id = i.id
        LEFT JOIN (SELECT invoice_id, SUM(amount_minor) AS s FROM payment_allocation WHERE state IN ('allocated','proposed') GROUP BY invoice_id) al
               ON al.invoice_id = i.id
        WHERE i.number IS NOT NULL AND i.due_date IS NOT NULL AND i.total_minor > 0 AND i.currency = :cur
        ORDER BY i.due_date, i.id LIMIT :n"""), {"n": limit, "cur": currency}).all()
    return [OpenInvoice(invoice_id=r.id, account_id=r.account_id, account_number=r.account_number, account_name=r.name, invoice_number=r.number,
                        open_minor=int(r.open_minor), due_date=r.due_date if isinstance(r.due_date, date) else date.fromisoformat(str(r.due_date)),
                        segment=r.segment_code) for r in rows if r.open_minor > 0]


def run(ctx: Any) -> None:
    factory = make_sessionmaker(ctx.engine)
    with factory() as s:
        currency = s.execute(text("SELECT currency FROM account GROUP BY currency ORDER BY COUNT(*) DESC LIMIT 1")).scalar()
        invoices = open_invoices(s, limit=MAX_INVOICES, currency=currency) if currency else []
    if not invoices:
        ctx.counts["payments"] = 0
        return
    day = (ctx.now - timedelta(days=3)).date()
    # a quarter of the invoices stay open: collections has debtors to chase, and the desk's sample files have lines to match
    keep = [inv for inv in invoices if inv.invoice_id % 4 != 0]
    lines = behaviour.behave(keep, rng=ctx.rng, day=day, noise=max(4, len(keep) // 200))
    eft = [ln for ln in lines if ln.channel != "debit_order"]
    dos = [ln for ln in lines if ln.channel == "debit_order"]
    thirds = [eft[k::3] for k in range(3)]
    files = [
        (f"fnb-{day:%Y%m%d}.sta", behaviour.mt940(thirds[0], account="250655/62012345678", opening_minor=1_250_000_00, currency=currency), None, None),
        (f"nedbank-camt053-{day:%Y%m%d}.xml", behaviour.camt053(thirds[1], account="1020304050", opening_minor=480_000_00, currency=currency), None, None),
        (f"standard-bank-{day:%Y%m%d}.csv", behaviour.standard_bank_csv(thirds[2]), "csv", "standard-bank"),
        (f"debit-orders-{day:%Y%m%d}.csv", behaviour.debit_results(dos), None, None),
    ]
    unpaid = {ln.collection_ref: UNPAID_REASONS[k % len(UNPAID_REASONS)] for k, ln in enumerate(dos) if k % 29 == 3}
    if unpaid:
        files.append((f"debit-order-unpaids-{day + timedelta(days=3):%Y%m%d}.csv", behaviour.debit_results(dos, unpaid=unpaid), None, None))
    task = ctx.progress.add_task("payments", total=len(files))
    totals = {"payments": 0, "allocated": 0, "proposed": 0, "suspense": 0}
    for name, data, fmt, mapping in files:
        if data.count(b"\n") < 2:
            continue
        with factory.begin() as s:
            at = ctx.now if "unpaids" in name else ctx.now - timedelta(days=2)
            res = imports.import_statement(s, data=data, filename=name, fmt=fmt, mapping_name=mapping, now=at, actor=CLERK)
        for k in totals:
            totals[k] += int(res.get(k, 0))
        ctx.progress.advance(task)
    ctx.counts.update({f"payments_{k}": v for k, v in totals.items()})
