"""SLA metrics per account and calendar month from Opsline's own data (outage cases, case clocks, orders, invoices,
credit notes, billing claims). One query per data source for every contracted account at once; the arithmetic on the
fetched rows is pure and tested on its own (`merged_seconds`, `measure`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select, true
from sqlalchemy.orm import Session

from opsline.billing.invoicing.models import BillingClaim, CreditNote
from opsline.billing.models import Invoice
from opsline.cases.models import CaseLink, SupportCase
from opsline.catalog.models import ProductOffering
from opsline.core.localtime import start_of_day
from opsline.customers.models import Site
from opsline.inventory.models import Product
from opsline.orders.models import ProductOrder

FOUR = Decimal("0.0001")


@dataclass(frozen=True)
class Settings:
    outage_categories: tuple[str, ...]
    first_response_hours: int


def month_bounds(period: date, tz: ZoneInfo) -> tuple[datetime, datetime, date]:
    """UTC instants [start, end) of the local calendar month starting `period`, and the first day of the next month."""
    nxt = date(period.year + (period.month == 12), period.month % 12 + 1, 1)
    return start_of_day(period, tz), start_of_day(nxt, tz), nxt


def _utc(v: datetime | None) -> datetime | None:
    if v is None:
        return None
    return v.replace(tzinfo=timezone.utc) if v.tzinfo is None else v.astimezone(timezone.utc)


def merged_seconds(intervals: Iterable[tuple[datetime, datetime]], start: datetime, end: datetime) -> float:
    """Seconds of [start, end) covered by the union of `intervals` (overlapping outages count once)."""
    clipped = sorted((max(a, start), min(b, end)) for a, b in intervals if b > start and a < end)
    total = 0.0
    cur_a: datetime | None = None
    cur_b: datetime | None = None
    for a, b in clipped:
        if b <= a:
            continue
        if cur_b is None or a > cur_b:
            if cur_b is not None and cur_a is not None:
                total += (cur_b - cur_a).total_seconds()
            cur_a, cur_b = a, b
        elif b > cur_b:
            cur_b = b
    if cur_a is not None and cur_b is not None:
        total += (cur_b - cur_a).total_seconds()
    return total


def _pct(num: int | Decimal, den: int | Decimal) -> Decimal:
    return (Decimal(num) * 100 / Decimal(den)).quantize(FOUR, ROUND_HALF_UP)


def case_metrics(rows: list[dict[str, Any]], *, start: datetime, end: datetime, settings: Settings) -> dict[str, tuple[Decimal, int]]:
    """Case-based metrics for one account: {metric: (value, sample size)}. Rows: category_code, opened_at,
    first_response_at, resolved_at, sla_breached_at (UTC). A metric with no sample is left out."""
    out: dict[str, tuple[Decimal, int]] = {}
    outages = [r for r in rows if r["category_code"] in settings.outage_categories]
    down = merged_seconds(((r["opened_at"], r["resolved_at"] or end) for r in outages), start, end)
    span = (end - start).total_seconds()
    out["availability"] = (((Decimal(span) - Decimal(down)) * 100 / Decimal(span)).quantize(FOUR, ROUND_HALF_UP), len(outages))
    restored = [r for r in outages if r["resolved_at"] is not None and start <= r["resolved_at"] < end]
    if restored:
        hours = sum(Decimal((r["resolved_at"] - r["opened_at"]).total_seconds()) for r in restored) / 3600 / len(restored)
        out["mttr"] = (hours.quantize(FOUR, ROUND_HALF_UP), len(restored))
    opened = [r for r in rows if start <= r["opened_at"] < end]
    if opened:
        limit = timedelta(hours=settings.first_response_hours)
        ok = sum(1 for r in opened if r["first_response_at"] is not None and r["first_response_at"] - r["opened_at"] <= limit)
        out["first_response_compliance"] = (_pct(ok, len(opened)), len(opened))
    resolved = [r for r in rows if r["resolved_at"] is not None and start <= r["resolved_at"] < end]
    if resolved:
        ok = sum(1 for r in resolved if r["sla_breached_at"] is None or r["sla_breached_at"] > r["resolved_at"])
        out["resolution_compliance"] = (_pct(ok, len(resolved)), len(resolved))
    return out


def measure(session: Session, *, account_ids: list[int] | None, period: date, tz: ZoneInfo, settings: Settings,
            contracted_only: Any = None) -> dict[int, dict[str, tuple[Decimal, int]]]:
    """Every metric for the month starting `period`, per account: {account_id: {metric: (value, sample size)}}.
    `contracted_only` is a SQL selectable of account ids (e.g. the accounts with an active contract), so one query per
    source covers every account; `account_ids` narrows to given accounts (tests, one customer's page)."""
    start, end, nxt = month_bounds(period, tz)

    def scope(col: Any) -> Any:
        conds = []
        if contracted_only is not None:
            conds.append(col.in_(contracted_only))
        if account_ids is not None:
            conds.append(col.in_(account_ids))
        return and_(*conds) if conds else true()

    result: dict[int, dict[str, tuple[Decimal, int]]] = defaultdict(dict)
    # cases: open during the month (outages), opened in it (first response) or resolved in it
    c = SupportCase
    rows = session.execute(select(c.account_id, c.category_code, c.opened_at, c.first_response_at, c.resolved_at, c.sla_breached_at)
                           .where(scope(c.account_id), c.opened_at < end, (c.resolved_at.is_(None)) | (c.resolved_at >= start))).all()
    per: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        per[int(r.account_id)].append({"category_code": r.category_code, "opened_at": _utc(r.opened_at), "first_response_at": _utc(r.first_response_at),
                                       "resolved_at": _utc(r.resolved_at), "sla_breached_at": _utc(r.sla_breached_at)})
    for acc, rs in per.items():
        result[acc].update(case_metrics(rs, start=start, end=end, settings=settings))
    # orders completed in the month against their committed (requested completion) date
    o = ProductOrder
    on_time = func.sum(case((o.completion_date <= o.requested_completion_date, 1), else_=0))
    for r in session.execute(select(o.account_id, func.count(), on_time).where(
            scope(o.account_id), o.completion_date >= period, o.completion_date < nxt, o.requested_completion_date.is_not(None))
            .group_by(o.account_id)).all():
        result[int(r[0])]["order_on_time"] = (_pct(int(r[2] or 0), int(r[1])), int(r[1]))
    # invoice accuracy: credit notes issued in the month as a share of invoices issued in it
    inv = dict(session.execute(select(Invoice.account_id, func.sum(Invoice.total_minor)).where(
        scope(Invoice.account_id), Invoice.issued_at >= start, Invoice.issued_at < end).group_by(Invoice.account_id)).all())
    cn = dict(session.execute(select(CreditNote.account_id, func.sum(CreditNote.total_minor)).where(
        scope(CreditNote.account_id), CreditNote.issued_at >= start, CreditNote.issued_at < end).group_by(CreditNote.account_id)).all())
    for acc, billed in inv.items():
        if billed and int(billed) > 0:
            share = _pct(int(cn.get(acc) or 0), int(billed))
            result[int(acc)]["invoice_accuracy"] = (max(Decimal(0), Decimal(100) - share), 1)
    # billing claims decided in the month: decided by their due date (local date)
    b = BillingClaim
    counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for r in session.execute(select(b.account_id, b.decided_at, b.due_date).where(scope(b.account_id), b.decided_at >= start, b.decided_at < end)).all():
        k = counts[int(r.account_id)]
        k[0] += 1
        k[1] += 1 if _utc(r.decided_at).astimezone(tz).date() <= r.due_date else 0
    for acc, (n, ok) in counts.items():
        result[acc]["claims_resolved_on_time"] = (_pct(ok, n), n)
    # a month without any outage is 100 % available: every account in scope is measured for availability
    ids = account_ids if account_ids is not None else (session.execute(contracted_only).scalars().all() if contracted_only is not None else [])
    for acc in ids:
        result[int(acc)].setdefault("availability", (Decimal("100.0000"), 0))
    return dict(result)


def availability_by_service(session: Session, *, account_id: int, period: date, tz: ZoneInfo, settings: Settings) -> list[dict[str, Any]]:
    """Availability per service (product) and site in the month, from the outage cases linked to each product
    (case links of type 'product'); a product without a linked outage is 100 %. One query for the products, one for
    the linked outages."""
    start, end, nxt = month_bounds(period, tz)
    products = session.execute(
        select(Product.id, ProductOffering.name, Site.label, Site.city)
        .join(ProductOffering, ProductOffering.id == Product.offering_id).outerjoin(Site, Site.id == Product.site_id)
        .where(Product.account_id == account_id, Product.start_date.is_not(None), Product.start_date < nxt,
               (Product.end_date.is_(None)) | (Product.end_date > period))
        .order_by(Product.id)).all()
    links = session.execute(
        select(CaseLink.target_id, SupportCase.opened_at, SupportCase.resolved_at)
        .join(SupportCase, SupportCase.id == CaseLink.case_id)
        .where(CaseLink.account_id == account_id, CaseLink.target_type == "product", SupportCase.category_code.in_(settings.outage_categories),
               SupportCase.opened_at < end, (SupportCase.resolved_at.is_(None)) | (SupportCase.resolved_at >= start))).all()
    per: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for target, opened, resolved in links:
        per[str(target)].append((_utc(opened), _utc(resolved) or end))  # type: ignore[arg-type]
    span = Decimal((end - start).total_seconds())
    out = []
    for pid, name, label, city in products:
        down = Decimal(merged_seconds(per.get(str(pid), []), start, end))
        out.append({"product_id": int(pid), "service": name, "site": " ".join(x for x in (label, city) if x) or "—",
                    "outages": len(per.get(str(pid), [])), "down_hours": ((down / 3600).quantize(FOUR, ROUND_HALF_UP)),
                    "availability": ((span - down) * 100 / span).quantize(FOUR, ROUND_HALF_UP)})
    return out
