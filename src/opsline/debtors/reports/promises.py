"""Promises kept and broken: arrangements (promises to pay and pay-off plans) by the local month they were made and by
the clerk who made them or the person who approved them: kept, broken, open and cancelled counts and amounts, and the
kept rate (kept ÷ kept and broken), with the arrangements behind every number."""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from opsline.billing.periods import add_months
from opsline.billing.sql import dialect_of
from opsline.core.errors import InvalidInput
from opsline.core.exports import Sheet
from opsline.core.localtime import start_of_day
from opsline.core.money import Money
from opsline.debtors.reports.queries import _chart_amount, _date, month_bounds

BY = {"clerk": "created_by", "approver": "decided_by"}
OUTCOMES = ("kept", "broken", "open", "cancelled")
OUTCOME_SQL = "CASE WHEN g.state IN ('proposed', 'active') THEN 'open' ELSE g.state END"
NOBODY = "(not approved yet)"


def _by(by: str) -> str:
    if by not in BY:
        raise InvalidInput(f"'{by}' is not one of {', '.join(BY)}", field="by")
    return BY[by]


def _rate(kept: int, broken: int) -> Decimal | None:
    return (Decimal(kept) * 100 / (kept + broken)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP) if kept + broken else None


def report(session: Session, *, now: datetime, tz: ZoneInfo, months: int = 12, by: str = "clerk") -> dict[str, Any]:
    """Per local month the arrangement was made and per person (clerk or approver) and currency: counts and amounts by
    outcome and the kept rate; month totals for the chart. One grouped query. Raises InvalidInput (months, by)."""
    col = _by(by)
    bounds = month_bounds(now=now, tz=tz, months=months)
    dia = dialect_of(session)
    params: dict[str, Any] = {"s0": dia.bind_ts(bounds[0][1]), "t": dia.bind_ts(now)}
    whens = []
    for k, (_, _, end) in enumerate(bounds[:-1]):
        params[f"e{k}"] = dia.bind_ts(end)
        whens.append(f"WHEN g.created_at < :e{k} THEN {k}")
    kcase = f"CASE {' '.join(whens)} ELSE {len(bounds) - 1} END" if whens else "0"
    rows = session.execute(text(f"""
        SELECT k, person, outcome, currency, COUNT(*) AS n, SUM(amount_minor) AS amount FROM (
            SELECT {kcase} AS k, COALESCE(g.{col}, '{NOBODY}') AS person, {OUTCOME_SQL} AS outcome, g.currency, g.amount_minor
            FROM arrangement g WHERE g.created_at >= :s0 AND g.created_at <= :t) x
        GROUP BY k, person, outcome, currency"""), params).all()
    labels = [m.strftime("%Y-%m") for m, _, _ in bounds]
    cells: dict[tuple[int, str, str], dict[str, Any]] = {}
    totals: dict[tuple[int, str], dict[str, Any]] = {}
    for r in rows:
        for key, acc in (((int(r.k), r.person, r.currency), cells), ((int(r.k), r.currency), totals)):
            c = acc.setdefault(key, {**{f"{o}_n": 0 for o in OUTCOMES}, **{f"{o}_minor": 0 for o in OUTCOMES}})
            c[f"{r.outcome}_n"] += int(r.n)
            c[f"{r.outcome}_minor"] += int(r.amount or 0)
    out = []
    for (k, person, cur), c in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1])):
        out.append({"month": labels[k], "person": person, "currency": cur, **c, "kept_rate": _rate(c["kept_n"], c["broken_n"]),
                    "kept_amount_rate": _rate(c["kept_minor"], c["broken_minor"])})
    month_rows = []
    for (k, cur), c in sorted(totals.items()):
        month_rows.append({"month": labels[k], "currency": cur, **c, "kept_rate": _rate(c["kept_n"], c["broken_n"])})
    per_person: dict[str, dict[str, Any]] = {}
    for r in out:
        p = per_person.setdefault(r["person"], {"person": r["person"], **{f"{o}_n": 0 for o in OUTCOMES}})
        for o in OUTCOMES:
            p[f"{o}_n"] += r[f"{o}_n"]
    people = sorted(({**p, "kept_rate": _rate(p["kept_n"], p["broken_n"])} for p in per_person.values()), key=lambda p: p["person"])
    chart = None
    if month_rows:
        by_month = {m: {o: 0 for o in OUTCOMES} for m in labels}
        for t in month_rows:
            for o in OUTCOMES:
                by_month[t["month"]][o] += t[f"{o}_n"]
        rates = [_rate(by_month[m]["kept"], by_month[m]["broken"]) for m in labels]
        colours = {"kept": "#2e7d32", "broken": "#c62828", "open": "#f9a825", "cancelled": "#9e9e9e"}
        chart = {"type": "bar", "data": {"labels": labels, "datasets": [
            *[{"label": o.capitalize(), "data": [by_month[m][o] for m in labels], "backgroundColor": colours[o], "stack": "n", "yAxisID": "y"} for o in OUTCOMES],
            {"type": "line", "label": "Kept rate (%)", "data": [None if r is None else str(r) for r in rates], "borderColor": "#1565c0",
             "backgroundColor": "#1565c0", "yAxisID": "rate"}]},
            "options": {"plugins": {"legend": {"display": True}},
                        "scales": {"x": {"stacked": True}, "y": {"stacked": True, "beginAtZero": True, "title": {"display": True, "text": "arrangements"}},
                                   "rate": {"beginAtZero": True, "max": 100, "position": "right", "grid": {"drawOnChartArea": False},
                                            "title": {"display": True, "text": "% kept"}}}}}
    return {"months": labels, "by": by, "rows": out, "month_rows": month_rows, "people": people, "chart": chart, "outcomes": OUTCOMES}


def sheets(data: dict[str, Any]) -> list[Sheet]:
    def amt(minor: int, cur: str) -> Decimal:
        return Money.from_minor(minor, cur).amount

    head = ["Month made", "Clerk" if data["by"] == "clerk" else "Approver", "Currency"]
    rows = [[r["month"], r["person"], r["currency"], *[r[f"{o}_n"] for o in OUTCOMES], *[amt(r[f"{o}_minor"], r["currency"]) for o in OUTCOMES],
             r["kept_rate"]] for r in data["rows"]]
    months = [[t["month"], "all", t["currency"], *[t[f"{o}_n"] for o in OUTCOMES], *[amt(t[f"{o}_minor"], t["currency"]) for o in OUTCOMES],
               t["kept_rate"]] for t in data["month_rows"]]
    cols = head + [f"{o.capitalize()} (count)" for o in OUTCOMES] + [f"{o.capitalize()} (amount)" for o in OUTCOMES] + ["Kept rate %"]
    money = frozenset(range(7, 11))
    return [Sheet("By person", cols, rows, money), Sheet("By month", cols, months, money)]


def arrangements(session: Session, *, tz: ZoneInfo, month: date, by: str = "clerk", person: str = "", state: str = "", limit: int | None = 100,
                 offset: int = 0) -> dict[str, Any]:
    """The arrangements behind a figure: made in local month `month`, by/approved by `person` (blank: anyone), with
    outcome `state` (kept, broken, open, cancelled; blank: any), biggest first. Raises InvalidInput (by, state)."""
    col = _by(by)
    if state and state not in OUTCOMES:
        raise InvalidInput(f"'{state}' is not one of {', '.join(OUTCOMES)}", field="state")
    dia = dialect_of(session)
    params: dict[str, Any] = {"s": dia.bind_ts(start_of_day(month, tz)), "e": dia.bind_ts(start_of_day(add_months(month, 1), tz))}
    where = ""
    if person:
        where += f" AND COALESCE(g.{col}, '{NOBODY}') = :p"
        params["p"] = person
    if state:
        where += f" AND {OUTCOME_SQL} = :o"
        params["o"] = state
    page = ""
    if limit is not None:
        page, params["lim"], params["off"] = "LIMIT :lim OFFSET :off", int(limit), max(0, int(offset))
    rows = session.execute(text(f"""
        SELECT g.id, g.account_id, a.account_number, a.name, g.kind, {OUTCOME_SQL} AS outcome, g.created_at, g.created_by, g.decided_by,
               g.amount_minor, g.currency, g.closed_on, (SELECT MAX(i.due_date) FROM arrangement_instalment i WHERE i.arrangement_id = g.id) AS last_due,
               COUNT(*) OVER () AS n_all
        FROM arrangement g JOIN account a ON a.id = g.account_id
        WHERE g.created_at >= :s AND g.created_at < :e {where}
        ORDER BY g.amount_minor DESC, g.id {page}"""), params).all()
    out = []
    for r in rows:
        at = r.created_at if isinstance(r.created_at, datetime) else datetime.fromisoformat(str(r.created_at))
        if at.tzinfo is None:
            at = at.replace(tzinfo=ZoneInfo("UTC"))
        out.append({"id": r.id, "account_id": r.account_id, "account_number": r.account_number, "name": r.name, "kind": r.kind, "outcome": r.outcome,
                    "created_on": at.astimezone(tz).date(), "created_by": r.created_by, "decided_by": r.decided_by, "amount_minor": int(r.amount_minor),
                    "currency": r.currency, "closed_on": _date(r.closed_on), "last_due": _date(r.last_due)})
    return {"month": month.strftime("%Y-%m"), "by": by, "person": person, "state": state, "count": int(rows[0].n_all) if rows else 0, "rows": out,
            "chart_total": _chart_amount(sum(r["amount_minor"] for r in out), out[0]["currency"]) if out else None}
