"""The report catalogue: every report a staff user can subscribe to, as (key, title, permission, build), where
build(session, now, tz, principal) returns the report's tables (core.exports.Sheet) from the owning area's own query
functions (read-only imports). `render_file` turns the tables into an xlsx workbook (the one safe writer) or a PDF."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any, Callable
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from opsline.core.errors import InvalidInput
from opsline.core.exports import Sheet, export_sheets, file_name
from opsline.core.money import Money

Build = Callable[[Session, datetime, ZoneInfo, Any], list[Sheet]]


@dataclass(frozen=True)
class Report:
    key: str
    title: str
    permission: str  # the subscriber must hold it when subscribing and at every send
    build: Build
    description: str = ""


def _major(minor: int | None, currency: str) -> Any:
    return None if minor is None else Money.from_minor(int(minor), currency).amount


def _top(n: int) -> Build:
    def build(session: Session, now: datetime, tz: ZoneInfo, principal: Any) -> list[Sheet]:
        from opsline.debtors.reports import queries
        from opsline.debtors.reports.views import TOP_HEADER

        data = queries.top_debtors(session, now=now, tz=tz, n=n)
        rows = []
        for r in data["rows"]:
            cur, act = r["currency"], r["last_action"] or {}
            rows.append([r["rank"], r["account_number"], r["name"], r["segment_code"], r["value_tier_code"], r["status"], cur, _major(r["total"], cur),
                         *[_major(r[b], cur) for b in queries.BUCKETS], r["oldest_due"], r["oldest_days"], r["last_payment_on"],
                         _major(r["last_payment_minor"], cur), _major(r["dispute_minor"], cur), r["owner"],
                         f"{act['what']} by {act['actor']}" if act else None, act.get("at"), r["next_step"]])
        nb = len(queries.BUCKETS)
        return [Sheet(f"Top {n} debtors {data['as_of']}", TOP_HEADER, rows, frozenset({7, *range(8, 8 + nb), 8 + nb + 3, 8 + nb + 4}))]
    return build


def _aged(session: Session, now: datetime, tz: ZoneInfo, principal: Any) -> list[Sheet]:
    from opsline.debtors.reports import queries

    data = queries.aged_debtors(session, now=now, tz=tz)
    header = ["Segment", "Currency", *[queries.BUCKET_LABELS[b] for b in queries.BUCKETS], "Total", "Accounts"]
    rows = [[r["segment_name"], r["currency"], *[_major(r[b], r["currency"]) for b in (*queries.BUCKETS, "total")], r["accounts"]] for r in data["rows"]]
    rows += [["All segments", t["currency"], *[_major(t[b], t["currency"]) for b in (*queries.BUCKETS, "total")], t["accounts"]] for t in data["totals"]]
    return [Sheet(f"Aged debtors {data['as_of']}", header, rows, frozenset(range(2, 3 + len(queries.BUCKETS))))]


def _collections(session: Session, now: datetime, tz: ZoneInfo, principal: Any) -> list[Sheet]:
    from opsline.debtors.reports import queries

    data = queries.collections_effectiveness(session, now=now, tz=tz)
    rows = [[s["currency"], m["month"], _major(m["billed_minor"], s["currency"]), _major(m["collected_minor"], s["currency"]),
             _major(m["credited_minor"], s["currency"]), _major(m["closing_minor"], s["currency"]), m["rate_pct"], m["dso_days"]]
            for s in data["series"] for m in s["months"]]
    return [Sheet("Collections", ["Currency", "Month", "Billed", "Collected", "Credited", "Closing debt", "Collection rate %", "DSO days"], rows,
                  frozenset({2, 3, 4, 5}))]


def _rollrates(session: Session, now: datetime, tz: ZoneInfo, principal: Any) -> list[Sheet]:
    from opsline.debtors.reports import rollrates

    return rollrates.sheets(rollrates.report(session, now=now, tz=tz))


def _promises(session: Session, now: datetime, tz: ZoneInfo, principal: Any) -> list[Sheet]:
    from opsline.debtors.reports import promises

    return promises.sheets(promises.report(session, now=now, tz=tz))


def _cancellations(session: Session, now: datetime, tz: ZoneInfo, principal: Any) -> list[Sheet]:
    from opsline.cancellations import reports

    r = reports.report(session, now=now, tz=tz, breach_limit=5000)
    reasons = list(r["by_reason"]["reasons"].items())
    return [
        Sheet("By reason and month", ["month"] + [label for _, label in reasons],
              [[m] + [r["by_reason"]["table"][m].get(code, 0) for code, _ in reasons] for m in r["by_reason"]["months"]]),
        Sheet("SLA per step", ["step", "done", "done late", "open", "open overdue", "compliance %"],
              [[s["label"], s["done"], s["done_late"], s["open"], s["overdue"], s["compliance"]] for s in r["sla"]]),
        Sheet("FNO deactivations", ["fno", "confirmed", "after the SLA", "waiting"], [[f["partner_code"], f["confirmed"], f["late"], f["waiting"]] for f in r["fno"]]),
    ]


def _trends(session: Session, now: datetime, tz: ZoneInfo, principal: Any) -> list[Sheet]:
    from opsline.cases import trends

    return trends.sheets(trends.report(session, now=now))


def _b2b(session: Session, now: datetime, tz: ZoneInfo, principal: Any) -> list[Sheet]:
    from opsline.b2b import queries

    v = queries.violations_list(session, limit=100_000)
    c = queries.credits_list(session, limit=100_000)
    return [
        Sheet("Violations", ["period", "customer", "contract", "metric", "actual", "reference", "measured", "cause", "credit state"],
              [[r["period"].isoformat(), r["account_name"], r["contract_reference"], r["metric_label"], float(r["actual_value"]), float(r["reference_value"]),
                r["sample_size"], r["cause"] or "", r["credit_state"] or ""] for r in v]),
        Sheet("Service credits", ["id", "period", "customer", "contract", "metric", "amount", "currency", "state"],
              [[r["id"], r["period"].isoformat(), r["account_name"], r["contract_reference"], r["metric_label"], _major(r["amount_minor"], r["currency"]),
                r["currency"], r["state"]] for r in c], frozenset({5})),
    ]


def _leakage(session: Session, now: datetime, tz: ZoneInfo, principal: Any) -> list[Sheet]:
    from opsline.assurance.views import leakage_sheets

    return leakage_sheets(session, now=now, tz=tz)


def _dashboard(session: Session, now: datetime, tz: ZoneInfo, principal: Any) -> list[Sheet]:
    from opsline.assurance import dashboard

    return dashboard.sheets(dashboard.build(session, now=now, tz=tz, principal=principal))


REPORTS: dict[str, Report] = {r.key: r for r in (
    Report("debtors.top10", "Top 10 debtors", "debtors.view", _top(10), "The ten largest open balances with ageing, last payment and next step"),
    Report("debtors.top60", "Top 60 debtors", "debtors.view", _top(60), "The sixty largest open balances with ageing, last payment and next step"),
    Report("debtors.aged", "Aged debtors", "debtors.view", _aged, "Open debt by days past due per segment"),
    Report("debtors.collections", "Collections effectiveness", "debtors.view", _collections, "Billed, collected, collection rate and DSO per month"),
    Report("debtors.rollrates", "Roll rates", "debtors.view", _rollrates, "How debt moves between ageing buckets month to month"),
    Report("debtors.promises", "Promises to pay", "debtors.view", _promises, "Promises kept and broken per clerk"),
    Report("cancellations.reports", "Cancellations", "cancellations.view", _cancellations, "Volumes per reason, SLA per step, FNO deactivations"),
    Report("cases.trends", "Support trends", "cases.view", _trends, "Weekly case volumes, first-contact resolution and sentiment"),
    Report("b2b.sla", "B2B SLA violations and service credits", "b2b.view", _b2b, "Contract SLA violations and the credits proposed for them"),
    Report("assurance.leakage", "FNO invoice leakage", "assurance.view", _leakage, "Overbilling by FNOs per month"),
    Report("management.dashboard", "Management dashboard", "management.view", _dashboard, "Every section of the management dashboard"),
)}
FORMATS = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "pdf": "application/pdf"}


def get(key: str) -> Report:
    """Raises InvalidInput (field `report`) for a key not in the catalogue."""
    r = REPORTS.get(key)
    if r is None:
        raise InvalidInput(f"'{key[:60]}' is not a report one can subscribe to", field="report")
    return r


def _cell(v: Any) -> str:
    if v is None:
        return ""
    return escape(v.isoformat() if hasattr(v, "isoformat") else str(v))


def _pdf(title: str, subtitle: str, sheets: list[Sheet]) -> bytes:
    from opsline.core.pdf import render_pdf

    parts = [f"<h1>{escape(title)}</h1><p class='sub'>{escape(subtitle)}</p>"]
    for s in sheets:
        rows = "".join("<tr>" + "".join(f"<td class='{'num' if isinstance(v, (int, float)) or i in s.money_cols else ''}'>{_cell(v)}</td>"
                                        for i, v in enumerate(r)) + "</tr>" for r in s.rows)
        parts.append(f"<h2>{escape(s.title)}</h2><table><thead><tr>{''.join(f'<th>{escape(str(h))}</th>' for h in s.header)}</tr></thead>"
                     f"<tbody>{rows or '<tr><td>Nothing to show.</td></tr>'}</tbody></table>")
    css = ("@page{size:A4 landscape;margin:12mm}body{font-family:sans-serif;font-size:8pt}h1{font-size:14pt}h2{font-size:11pt;margin-top:14pt}"
           ".sub{color:#555}table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:2pt 3pt;text-align:left}"
           "th{background:#e8eef4}td.num{text-align:right}")
    return render_pdf(f"<html><head><meta charset='utf-8'><style>{css}</style></head><body>{''.join(parts)}</body></html>")


def render_file(report: Report, *, fmt: str, session: Session, now: datetime, tz: ZoneInfo, principal: Any) -> tuple[str, str, bytes]:
    """(file name, content type, bytes) of the report as it stands at `now`. Raises InvalidInput (field `format`),
    PdfUnavailable."""
    if fmt not in FORMATS:
        raise InvalidInput(f"format '{fmt[:10]}' is not xlsx or pdf", field="format")
    sheets = report.build(session, now, tz, principal)
    stem = f"{report.key.replace('.', '-')}-{now.astimezone(tz):%Y-%m-%d}"
    if fmt == "xlsx":
        name, media, body = export_sheets("xlsx", name=stem, sheets=[Sheet(s.title, s.header, list(s.rows), s.money_cols) for s in sheets])
        return name, media, body
    return file_name(stem, "pdf"), FORMATS["pdf"], _pdf(report.title, f"As of {now.astimezone(tz):%Y-%m-%d %H:%M} ({tz.key})", sheets)
