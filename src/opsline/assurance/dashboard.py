"""The management dashboard: open work by desk (every desk's home cards, with their age hints), SLA compliance (case
SLAs this month, B2B contract SLAs last month), cancellations and retention, collections (Top 10, ageing, cash collected
vs billed, DSO), billing (revenue by product and segment, bill-run status) and partner performance (deactivation delays,
fee exposure, invoice leakage). Each figure comes from the owning area's own query function (read-only imports) and
links to the page behind it; the two figures no area computes yet (revenue by product kind and segment, B2B SLA
compliance) are one aggregate query each here. `sheets()` is the same data for the xlsx export."""

from __future__ import annotations

from datetime import date, datetime, timedelta, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from opsline.assurance import queries as assurance_queries
from opsline.billing.billrun import list_runs
from opsline.billing.sql import dialect_of
from opsline.cancellations import reports as cancellation_reports
from opsline.core.exports import Sheet
from opsline.core.localtime import local_date
from opsline.core.money import Money
from opsline.debtors.reports import queries as debtor_reports
from opsline.partners import exposure as fno_exposure
from opsline.sla.service.breaches import breach_report
from opsline.sla.service import compliance as sla_compliance

PALETTE = ["#2e86c1", "#27ae60", "#c0392b", "#8e44ad", "#d68910", "#16a085", "#7f8c8d"]


def _last_month(today: date) -> date:
    return date(today.year - (today.month == 1), (today.month - 2) % 12 + 1, 1)


def _next(d: date) -> date:
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)


def _major(minor: int, currency: str) -> float:
    return float(Money.from_minor(minor, currency).amount)


def revenue_by_product_and_segment(session: Session, *, period: date) -> dict[str, Any]:
    """Invoiced revenue (before tax) for invoices whose period starts in the month, per offering kind and account segment:
    one aggregate query."""
    dia = dialect_of(session)
    rows = session.execute(text(
        "SELECT COALESCE(o.kind, 'other') AS product, a.segment_code AS segment, il.currency, SUM(il.amount_minor) AS amount, COUNT(DISTINCT il.account_id) AS accounts "
        "FROM invoice_line il JOIN invoice i ON i.id = il.invoice_id JOIN account a ON a.id = il.account_id "
        "LEFT JOIN product_offering o ON o.id = il.offering_id "
        f"WHERE i.period_start >= {dia.d('ps')} AND i.period_start < {dia.d('pe')} AND i.kind = 'cycle' "
        "GROUP BY COALESCE(o.kind, 'other'), a.segment_code, il.currency ORDER BY amount DESC"),
        {"ps": dia.bind_date(period), "pe": dia.bind_date(_next(period))}).all()
    out = [{"product": r.product, "segment": r.segment, "currency": r.currency, "amount_minor": int(r.amount or 0), "accounts": int(r.accounts)} for r in rows]
    products = sorted({r["product"] for r in out})
    segments = sorted({r["segment"] for r in out})
    chart = {"type": "bar", "data": {"labels": products, "datasets": [
        {"label": s, "stack": "rev", "backgroundColor": PALETTE[i % len(PALETTE)],
         "data": [round(sum(_major(r["amount_minor"], r["currency"]) for r in out if r["product"] == p and r["segment"] == s), 2) for p in products]}
        for i, s in enumerate(segments)]}, "options": {"scales": {"x": {"stacked": True}, "y": {"stacked": True}}}} if out else None
    return {"period": period, "rows": out, "total_minor": sum(r["amount_minor"] for r in out), "chart": chart,
            "currency": out[0]["currency"] if out else "ZAR"}


def b2b_sla_compliance(session: Session, *, period: date) -> dict[str, Any]:
    """Contract SLA rules in force in the month and how many were violated: one aggregate query."""
    dia = dialect_of(session)
    r = session.execute(text(
        "SELECT COUNT(*) AS rules, SUM(CASE WHEN EXISTS (SELECT 1 FROM b2b_violation v WHERE v.rule_id = r.id AND v.period = "
        f"{dia.d('ps')}) THEN 1 ELSE 0 END) AS violated FROM b2b_sla_rule r JOIN b2b_contract c ON c.id = r.contract_id "
        f"WHERE c.valid_from < {dia.d('pe')} AND (c.valid_to IS NULL OR c.valid_to > {dia.d('ps')})"),
        {"ps": dia.bind_date(period), "pe": dia.bind_date(_next(period))}).one()
    rules, violated = int(r.rules or 0), int(r.violated or 0)
    return {"period": period, "rules": rules, "violated": violated, "met_pct": round(100 * (rules - violated) / rules, 1) if rules else None}


def build(session: Session, *, now: datetime, tz: ZoneInfo, principal: Any) -> dict[str, Any]:
    """Every section's data for the page and the export."""
    from opsline.areas import load_areas
    from opsline.users.roles import Role
    from opsline.web.desk import desk_cards

    today = local_date(now, tz)
    last = _last_month(today)
    month_start = datetime.combine(today.replace(day=1), time(0), tzinfo=tz)
    since12 = (today.replace(day=1) - timedelta(days=31 * 11)).replace(day=1)
    work = desk_cards(session, desk=Role.ADMIN.value, principal=principal, now=now, tz=tz, areas=tuple(a for a in load_areas() if a.name != "assurance"))
    sla = breach_report(session, since=month_start, until=now + timedelta(seconds=1))
    top = debtor_reports.top_debtors(session, now=now, tz=tz, n=10)
    aged = debtor_reports.aged_debtors(session, now=now, tz=tz)
    coll = debtor_reports.collections_effectiveness(session, now=now, tz=tz, months=12)
    exp = fno_exposure.exposure(session, today=today, limit=1)
    return {
        "today": today, "last_month": last, "work": work,
        "sla": {"breaches": sla["total"], "overrun_hours": sla["overrun_hours"], "by_cause": sla["by_cause"][:5], "b2b": b2b_sla_compliance(session, period=last),
                "cases": sla_compliance(session, since=month_start, until=now + timedelta(seconds=1))},
        "cancellations": {"retention": cancellation_reports.retention(session, since=since12),
                          "by_reason": cancellation_reports.by_reason_month(session, since=since12)},
        "collections": {"top": top, "aged": aged, "effectiveness": coll,
                        "last": [{"currency": s["currency"], **(s["months"][-2] if len(s["months"]) > 1 else s["months"][-1])} for s in coll["series"]]},
        "billing": {"revenue": revenue_by_product_and_segment(session, period=last), "runs": list_runs(session, limit=6)},
        "partners": {"lead_times": cancellation_reports.fno_lead_times(session, since=since12), "exposure": exp["by_partner"],
                     "exposure_total": exp["total_minor"], "exposure_currency": exp["currency"],
                     "leakage": assurance_queries.leakage_by_month(session, today=today)},
    }


def sheets(d: dict[str, Any]) -> list[Sheet]:
    """The dashboard as a workbook, one sheet per section."""
    work = [[s["label"], c["title"], c["count"] if isinstance(c["count"], int) else str(c["count"]), c["hint"], c["href"]]
            for s in d["work"]["sections"] for c in s["cards"]]
    sla = [["Case SLAs met this month (%)", d["sla"]["cases"]["met_pct"]], ["Case SLA clocks stopped this month", d["sla"]["cases"]["stopped"]]] + \
          [[f"{m['label']} met (%)", m["met_pct"]] for m in d["sla"]["cases"]["by_metric"]] + [["Case SLA breaches this month", d["sla"]["breaches"]], ["Overrun business hours", d["sla"]["overrun_hours"]],
           [f"B2B SLA rules {d['sla']['b2b']['period']:%Y-%m}", d["sla"]["b2b"]["rules"]], ["B2B rules violated", d["sla"]["b2b"]["violated"]],
           ["B2B rules met (%)", d["sla"]["b2b"]["met_pct"]]] + [[f"Breaches: {r['cause']}", r["count"]] for r in d["sla"]["by_cause"]]
    ret = d["cancellations"]["retention"]
    canc = [["Cancellation notices (12 months)", ret["total"]], ["Retention offered", ret["offered"]], ["Retained", ret["accepted"]],
            ["Retention rate (%)", ret["rate"]]]
    top = [[r["rank"], r["account_number"], r["name"], r["segment_code"], Money.from_minor(r["total"], r["currency"]).amount, r["currency"], r["oldest_days"]]
           for r in d["collections"]["top"]["rows"]]
    coll = [[s["currency"], m["month"], Money.from_minor(m["billed_minor"], s["currency"]).amount, Money.from_minor(m["collected_minor"], s["currency"]).amount,
             m["rate_pct"], m["dso_days"]] for s in d["collections"]["effectiveness"]["series"] for m in s["months"]]
    aged = [[t["currency"], *[Money.from_minor(t[b], t["currency"]).amount for b in debtor_reports.BUCKETS], Money.from_minor(t["total"], t["currency"]).amount,
             t["accounts"]] for t in d["collections"]["aged"]["totals"]]
    rev = [[r["product"], r["segment"], Money.from_minor(r["amount_minor"], r["currency"]).amount, r["currency"], r["accounts"]] for r in d["billing"]["revenue"]["rows"]]
    runs = [[r["id"], r["cycle_date"], r["state"]] for r in d["billing"]["runs"]]
    lead = [[r["partner_code"], r["confirmed"], r["late"], r["waiting"]] for r in d["partners"]["lead_times"]]
    leak = [[e["name"], Money.from_minor(e["total"], e["currency"]).amount, Money.from_minor(e["recovered"], e["currency"]).amount, e["currency"]]
            for e in d["partners"]["leakage"]["partners"]]
    return [
        Sheet("Open work", ["Desk", "Work", "Count", "Age / hint", "List"], work),
        Sheet("SLA", ["Measure", "Value"], sla),
        Sheet("Cancellations", ["Measure", "Value"], canc),
        Sheet("Top 10 debtors", ["Rank", "Account", "Name", "Segment", "Balance", "Currency", "Days past due"], top, frozenset({4})),
        Sheet("Ageing", ["Currency", *[debtor_reports.BUCKET_LABELS[b] for b in debtor_reports.BUCKETS], "Total", "Accounts"], aged,
              frozenset(range(1, len(debtor_reports.BUCKETS) + 2))),
        Sheet("Cash vs billed", ["Currency", "Month", "Billed", "Collected", "Collection rate (%)", "DSO (days)"], coll, frozenset({2, 3})),
        Sheet("Revenue", ["Product", "Segment", "Revenue", "Currency", "Accounts"], rev, frozenset({2})),
        Sheet("Bill runs", ["Run", "Cycle date", "State"], runs),
        Sheet("FNO deactivations", ["FNO", "Confirmed", "Confirmed late", "Waiting"], lead),
        Sheet("FNO leakage", ["FNO", "Leakage (12 months)", "Recovered", "Currency"], leak, frozenset({1, 2})),
    ]
