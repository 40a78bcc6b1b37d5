"""Read side of revenue assurance: imported invoices, their findings (with the line, product, account and cancellation
journey each links to), a line's history, leakage per partner per month (chart), and our inventory against our own
billing for a month (active products not billed, billed products not active). One query per section."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from opsline.assurance.models import DISPUTABLE, FINDING, AssuranceFinding, FindingKind, PartnerInvoice
from opsline.assurance.service import next_month
from opsline.billing.sql import dialect_of
from opsline.core.errors import InvalidInput
from opsline.core.events import Actor
from opsline.customers.models import Account
from opsline.inventory.models import Product
from opsline.partners.models import Partner

KIND_LABELS = {
    FindingKind.BILLED_NOT_ACTIVE.value: "Billed, not active with us",
    FindingKind.PRICE_DIFFERS.value: "Price differs from the wholesale cost",
    FindingKind.NOT_BILLED_BY_PARTNER.value: "Active with us, not billed by the FNO",
}
PAGE = 100


def fnos(session: Session) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in session.execute(select(Partner.code, Partner.name, Partner.currency)
                                                      .where(Partner.kind == "fno").order_by(Partner.name)).all()]


def fnos_with_lines(session: Session) -> set[str]:
    """FNOs we hold at least one line with (their reference on our product)."""
    return set(session.execute(select(Product.partner_code).where(Product.partner_line_ref.is_not(None), Product.partner_code.is_not(None)).distinct()).scalars())


def invoices(session: Session, *, partner_code: str = "", limit: int = 50) -> list[dict[str, Any]]:
    q = (select(PartnerInvoice.id, PartnerInvoice.partner_code, Partner.name.label("partner_name"), PartnerInvoice.period, PartnerInvoice.file_name,
                PartnerInvoice.lines_count, PartnerInvoice.total_minor, PartnerInvoice.currency, PartnerInvoice.findings_count,
                PartnerInvoice.leakage_minor, PartnerInvoice.imported_at, PartnerInvoice.imported_by)
         .join(Partner, Partner.code == PartnerInvoice.partner_code).order_by(PartnerInvoice.period.desc(), PartnerInvoice.id.desc()).limit(limit))
    if partner_code:
        q = q.where(PartnerInvoice.partner_code == partner_code)
    return [dict(r._mapping) for r in session.execute(q).all()]


def findings(session: Session, *, invoice_id: int | None = None, kind: str = "", state: str = "", partner_code: str = "", period: date | None = None,
             limit: int | None = PAGE, offset: int = 0, actor: Actor | None = None) -> list[dict[str, Any]]:
    """Findings with their account and the actions the actor may take."""
    if kind and kind not in KIND_LABELS:
        raise InvalidInput(f"'{kind[:30]}' is not a finding kind", field="kind")
    f = AssuranceFinding
    q = (select(f.id, f.invoice_id, f.partner_code, f.period, f.kind, f.line_ref, f.product_id, f.account_id, f.journey_id, f.billed_minor,
                f.expected_minor, f.amount_minor, f.currency, f.detail, f.state, f.state_reason, Account.account_number, Account.name.label("account_name"))
         .select_from(f).outerjoin(Account, Account.id == f.account_id)
         .order_by(f.amount_minor.desc(), f.id).offset(offset))
    if limit is not None:
        q = q.limit(limit)
    for cond, val in ((f.invoice_id, invoice_id), (f.kind, kind), (f.state, state), (f.partner_code, partner_code), (f.period, period)):
        if val:
            q = q.where(cond == val)
    out = []
    for r in session.execute(q).all():
        d = dict(r._mapping)
        d["kind_label"] = KIND_LABELS[d["kind"]]
        d["buttons"] = [b for b in FINDING.buttons(d["state"], actor=actor)
                        if b["action"] != "dispute" or (d["kind"] in DISPUTABLE and d["amount_minor"] > 0)] if actor else []
        out.append(d)
    return out


def line_history(session: Session, *, partner_code: str, line_ref: str) -> dict[str, Any]:
    """Everything about one FNO line: our products on it, the partner's service orders, what the FNO billed each month
    and the findings. Raises InvalidInput (field `line_ref`) for a line we never had."""
    products = [dict(r._mapping) for r in session.execute(text(
        "SELECT p.id, p.account_id, a.account_number, a.name AS account_name, p.state, p.start_date, p.end_date, o.name AS offering, "
        "(SELECT MAX(j.id) FROM cancellation_journey j WHERE j.product_id = p.id) AS journey_id "
        "FROM product p JOIN account a ON a.id = p.account_id JOIN product_offering o ON o.id = p.offering_id "
        "WHERE p.partner_code = :pc AND p.partner_line_ref = :ref ORDER BY p.id"), {"pc": partner_code, "ref": line_ref}).all()]
    if not products:
        raise InvalidInput(f"{partner_code} line {line_ref[:80]} is not a line we have or had", field="line_ref")
    orders = [dict(r._mapping) for r in session.execute(text(
        "SELECT so.id, so.action, so.state, so.external_ref, so.requested_date, so.confirmed_date FROM partner_service_order so "
        "WHERE so.partner_code = :pc AND so.product_id IN (SELECT p.id FROM product p WHERE p.partner_code = :pc AND p.partner_line_ref = :ref) "
        "ORDER BY so.id"), {"pc": partner_code, "ref": line_ref}).all()]
    billed = [dict(r._mapping) for r in session.execute(text(
        "SELECT i.id AS invoice_id, i.period, l.line_no, l.amount_minor, i.currency FROM partner_invoice_line l JOIN partner_invoice i ON i.id = l.invoice_id "
        "WHERE i.partner_code = :pc AND l.line_ref = :ref ORDER BY i.period"), {"pc": partner_code, "ref": line_ref}).all()]
    found = [
        dict(r._mapping) | {"kind_label": KIND_LABELS[r.kind]} for r in session.execute(
            select(AssuranceFinding.id, AssuranceFinding.invoice_id, AssuranceFinding.period, AssuranceFinding.kind, AssuranceFinding.amount_minor,
                   AssuranceFinding.currency, AssuranceFinding.detail, AssuranceFinding.state)
            .where(AssuranceFinding.partner_code == partner_code, AssuranceFinding.line_ref == line_ref).order_by(AssuranceFinding.period)).all()]
    return {"partner_code": partner_code, "line_ref": line_ref, "products": products, "orders": orders, "billed": billed, "findings": found}


def _months(today: date, n: int) -> list[date]:
    out, d = [], today.replace(day=1)
    for _ in range(n):
        out.append(d)
        d = date(d.year - (d.month == 1), (d.month - 2) % 12 + 1, 1)
    return out[::-1]


def leakage_by_month(session: Session, *, today: date, months: int = 12) -> dict[str, Any]:
    """Leakage (overbilling we can dispute) per FNO per month over the last `months` months, with a stacked bar chart;
    one grouped query."""
    ms = _months(today, months)
    dia = dialect_of(session)
    rows = session.execute(text(
        "SELECT f.partner_code, p.name, f.period, f.currency, SUM(f.amount_minor) AS amount, COUNT(*) AS n, "
        "SUM(CASE WHEN f.state = 'recovered' THEN f.amount_minor ELSE 0 END) AS recovered "
        f"FROM assurance_finding f JOIN partner p ON p.code = f.partner_code WHERE f.amount_minor > 0 AND f.kind IN ('billed_not_active', 'price_differs') "
        f"AND f.period >= {dia.d('since')} GROUP BY f.partner_code, p.name, f.period, f.currency ORDER BY f.partner_code, f.period"),
        {"since": dia.bind_date(ms[0])}).all()
    per: dict[str, dict[str, Any]] = {}
    for r in rows:
        period = r.period if isinstance(r.period, date) else date.fromisoformat(str(r.period))
        e = per.setdefault(r.partner_code, {"code": r.partner_code, "name": r.name, "currency": r.currency, "months": {}, "total": 0, "recovered": 0})
        e["months"][period] = {"amount": int(r.amount), "n": int(r.n)}
        e["total"] += int(r.amount)
        e["recovered"] += int(r.recovered)
    palette = ["#c0392b", "#2e86c1", "#27ae60", "#8e44ad", "#d68910", "#16a085"]
    chart = {"type": "bar", "data": {"labels": [f"{m:%Y-%m}" for m in ms], "datasets": [
        {"label": e["name"], "backgroundColor": palette[i % len(palette)], "stack": "leakage",
         "data": [round(e["months"].get(m, {}).get("amount", 0) / 100, 2) for m in ms]} for i, e in enumerate(per.values())]},
        "options": {"scales": {"x": {"stacked": True}, "y": {"stacked": True, "title": {"display": True, "text": "Leakage"}}}}} if per else None
    return {"months": ms, "partners": list(per.values()), "chart": chart, "total": sum(e["total"] for e in per.values()),
            "currency": next(iter(per.values()))["currency"] if per else "ZAR"}


def billing_consistency(session: Session, *, period: date, limit: int = PAGE) -> dict[str, Any]:
    """Our inventory against our own invoices for the month starting `period`: products active the whole month with no
    recurring invoice line for any day of it, and recurring lines billed for days their product was not active."""
    dia = dialect_of(session)
    ps, pe = period.replace(day=1), next_month(period)
    p = {"ps": dia.bind_date(ps), "pe": dia.bind_date(pe), "limit": limit}
    not_billed_from = (f"FROM product p JOIN account a ON a.id = p.account_id JOIN product_offering o ON o.id = p.offering_id "
                       f"WHERE p.start_date <= {dia.d('ps')} AND (p.end_date IS NULL OR p.end_date >= {dia.d('pe')}) AND p.state IN ('active', 'suspended', 'pendingTerminate') "
                       f"AND EXISTS (SELECT 1 FROM price pr WHERE pr.offering_id = p.offering_id AND pr.kind = 'recurring') "
                       f"AND NOT EXISTS (SELECT 1 FROM invoice_line il WHERE il.product_id = p.id AND il.kind = 'recurring' "
                       f"AND il.period_start < {dia.d('pe')} AND il.period_end > {dia.d('ps')})")
    billed_from = (f"FROM invoice_line il JOIN product p ON p.id = il.product_id JOIN account a ON a.id = p.account_id "
                   f"WHERE il.kind = 'recurring' AND il.period_start < {dia.d('pe')} AND il.period_end > {dia.d('ps')} "
                   f"AND NOT (p.start_date IS NOT NULL AND p.start_date < il.period_end AND (p.end_date IS NULL OR p.end_date > il.period_start))")
    journey = "(SELECT MAX(j.id) FROM cancellation_journey j WHERE j.product_id = p.id)"
    nb_count = session.execute(text(f"SELECT COUNT(*) {not_billed_from}"), p).scalar_one()
    nb = [dict(r._mapping) for r in session.execute(text(
        f"SELECT p.id AS product_id, p.account_id, a.account_number, a.name AS account_name, o.name AS offering, p.state, p.start_date, "
        f"p.partner_code, p.partner_line_ref, {journey} AS journey_id {not_billed_from} ORDER BY p.id LIMIT :limit"), p).all()]
    bna_count, bna_amount = session.execute(text(f"SELECT COUNT(*), COALESCE(SUM(il.amount_minor), 0) {billed_from}"), p).one()
    bna = [dict(r._mapping) for r in session.execute(text(
        f"SELECT il.id AS line_id, il.invoice_id, p.id AS product_id, p.account_id, a.account_number, a.name AS account_name, p.state, p.start_date, "
        f"p.end_date, il.period_start, il.period_end, il.amount_minor, il.currency, p.partner_code, p.partner_line_ref, {journey} AS journey_id "
        f"{billed_from} ORDER BY il.amount_minor DESC, il.id LIMIT :limit"), p).all()]
    return {"period": ps, "not_billed": nb, "not_billed_count": int(nb_count), "billed_not_active": bna, "billed_not_active_count": int(bna_count),
            "billed_not_active_minor": int(bna_amount)}


def open_findings_total(session: Session) -> dict[str, Any]:
    """Open and disputed overbilling (for the dashboard tile): one aggregate."""
    n, amount = session.execute(select(func.count(), func.coalesce(func.sum(AssuranceFinding.amount_minor), 0))
                                .where(AssuranceFinding.kind.in_(DISPUTABLE), AssuranceFinding.amount_minor > 0,
                                       AssuranceFinding.state.in_(("open", "disputed")))).one()
    return {"count": int(n), "amount_minor": int(amount)}
