"""Services P&L per B2B customer and month: revenue billed (invoice lines before VAT, service credits apart), service
credits on the bills, credit notes (claims, re-rating), the FNO's wholesale cost of the customer's products (prorated
by day from the offering's wholesale_cost price), write-offs, and the margin; twelve months to the given one. One query
per source over the whole window for the one customer."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from opsline.b2b.metrics import _utc, month_bounds
from opsline.billing.invoicing.models import CreditNote
from opsline.billing.models import Invoice, InvoiceLine, LedgerEntry, PendingCharge
from opsline.catalog.models import Price
from opsline.core.errors import NotFound
from opsline.customers.models import Account
from opsline.inventory.models import Product

COLUMNS = (("revenue", "Revenue billed"), ("service_credits", "Service credits"), ("credit_notes", "Credit notes"),
           ("wholesale", "Wholesale / partner cost"), ("write_offs", "Write-offs"), ("margin", "Margin"))


def _months(last: date, n: int = 12) -> list[date]:
    out, y, m = [], last.year, last.month
    for _ in range(n):
        out.append(date(y, m, 1))
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return list(reversed(out))


def services_pnl(session: Session, *, account_id: int, last: date, tz: ZoneInfo) -> dict[str, Any]:
    """{"account", "currency", "months": [{"period", revenue..margin (minor units)}], "chart"}. Raises NotFound."""
    acc = session.get(Account, account_id)
    if acc is None:
        raise NotFound(f"account {account_id} not found", field="account_id")
    months = _months(last.replace(day=1))
    start, _, _ = month_bounds(months[0], tz)
    _, end, nxt = month_bounds(months[-1], tz)
    rows: dict[date, dict[str, int]] = {m: defaultdict(int) for m in months}

    def bucket(at: Any) -> date | None:
        d = _utc(at).astimezone(tz).date().replace(day=1)
        return d if d in rows else None

    credit_line = and_(PendingCharge.id == InvoiceLine.pending_charge_id, PendingCharge.idempotency_key.like("b2b-credit:%"))
    for issued, amount, is_credit in session.execute(
            select(Invoice.issued_at, InvoiceLine.amount_minor, PendingCharge.id.is_not(None))
            .join(InvoiceLine, InvoiceLine.invoice_id == Invoice.id).outerjoin(PendingCharge, credit_line)
            .where(Invoice.account_id == account_id, Invoice.issued_at >= start, Invoice.issued_at < end)).all():
        m = bucket(issued)
        if m is not None:
            rows[m]["service_credits" if is_credit else "revenue"] += -int(amount) if is_credit else int(amount)
    for issued, sub in session.execute(select(CreditNote.issued_at, CreditNote.subtotal_minor).where(
            CreditNote.account_id == account_id, CreditNote.issued_at >= start, CreditNote.issued_at < end)).all():
        m = bucket(issued)
        if m is not None:
            rows[m]["credit_notes"] += int(sub)
    for posted, amount in session.execute(select(LedgerEntry.posted_at, LedgerEntry.amount_minor).where(
            LedgerEntry.account_id == account_id, LedgerEntry.kind == "write_off", LedgerEntry.posted_at >= start, LedgerEntry.posted_at < end)).all():
        m = bucket(posted)
        if m is not None:
            rows[m]["write_offs"] += -int(amount)
    # wholesale cost: each product's monthly wholesale price for the days it was live in each month
    for p_start, p_end, amount, valid_from, valid_to in session.execute(
            select(Product.start_date, Product.end_date, Price.amount_minor, Price.valid_from, Price.valid_to)
            .join(Price, and_(Price.offering_id == Product.offering_id, Price.kind == "wholesale_cost"))
            .where(Product.account_id == account_id, Product.start_date.is_not(None), Product.start_date < nxt,
                   or_(Product.end_date.is_(None), Product.end_date > months[0]))).all():
        for m in months:
            m_end = date(m.year + (m.month == 12), m.month % 12 + 1, 1)
            lo = max(m, p_start, valid_from)
            hi = min(m_end, p_end or m_end, valid_to or m_end)
            if hi > lo:
                rows[m]["wholesale"] += int(amount) * (hi - lo).days // (m_end - m).days
    out = []
    for m in months:
        r = rows[m]
        r["margin"] = r["revenue"] - r["service_credits"] - r["credit_notes"] - r["wholesale"] - r["write_offs"]
        out.append({"period": m, **{k: int(r[k]) for k, _ in COLUMNS}})
    chart = {"type": "bar", "data": {"labels": [f"{m['period']:%b %y}" for m in out], "datasets": [
        {"label": "Revenue", "data": [m["revenue"] / 100 for m in out], "backgroundColor": "#2c7be5"},
        {"label": "Costs and credits", "data": [(m["revenue"] - m["margin"]) / 100 for m in out], "backgroundColor": "#e67e22"},
        {"label": "Margin", "type": "line", "data": [m["margin"] / 100 for m in out], "borderColor": "#27ae60"}]},
        "options": {"plugins": {"legend": {"position": "bottom"}}}}
    return {"account": {"id": acc.id, "name": acc.name, "account_number": acc.account_number}, "currency": acc.currency, "months": out,
            "columns": COLUMNS, "chart": chart, "last": last}
