"""The "Hand-over recoveries" report: per agency and month handed over, what was handed over, recovered (of it
written-off debt), the recovery rate, the commission owed and what is left net; set-based over the placements, plain
dicts out, a Chart.js config for the page."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from opsline.billing.sql import dialect_of
from opsline.core.money import Money
from opsline.debtors.agencies import _month_sql

COLOURS = ("#1565c0", "#00897b", "#6d4c41", "#8e24aa", "#546e7a", "#c62828")


def rate_pct(recovered_minor: int, handed_minor: int) -> Decimal | None:
    """Recovered as a percentage of handed over, one decimal half-up (None when nothing was handed over)."""
    if handed_minor <= 0:
        return None
    return (Decimal(recovered_minor) * 100 / Decimal(handed_minor)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def _figures(r: dict[str, Any]) -> dict[str, Any]:
    return r | {"rate_pct": rate_pct(r["recovered_minor"], r["handed_minor"]), "net_minor": r["recovered_minor"] - r["commission_minor"]}


def recoveries_report(session: Session, *, agency: str = "") -> dict[str, Any]:
    """Rows per agency, currency and month handed over (newest month first): placements, handed over, recovered, of it
    written-off debt, commission, net (recovered less commission), still with the agency; totals per agency; the chart."""
    d = dialect_of(session)
    cond = "WHERE pl.partner_code = :a" if agency else ""
    rows = session.execute(text(f"""
        SELECT pl.partner_code, pr.name, pl.currency, {_month_sql(d, 'pl.placed_on')} AS month, COUNT(*) AS placements,
               SUM(pl.amount_minor) AS handed, SUM(pl.recovered_minor) AS recovered, SUM(pl.bad_debt_recovered_minor) AS bad_debt,
               SUM(pl.commission_minor) AS commission,
               SUM(CASE WHEN pl.state = 'placed' THEN pl.amount_minor - pl.recovered_minor ELSE 0 END) AS open_minor,
               SUM(CASE WHEN pl.state = 'closed_paid' THEN 1 ELSE 0 END) AS paid_up
        FROM agency_placement pl JOIN partner pr ON pr.code = pl.partner_code {cond}
        GROUP BY pl.partner_code, pr.name, pl.currency, {_month_sql(d, 'pl.placed_on')}
        ORDER BY pr.name, pl.currency, month DESC"""), {"a": agency} if agency else {}).all()
    out = [_figures({"agency": r[0], "agency_name": r[1], "currency": r[2], "month": r[3], "placements": int(r[4]), "handed_minor": int(r[5] or 0),
                     "recovered_minor": int(r[6] or 0), "bad_debt_minor": int(r[7] or 0), "commission_minor": int(r[8] or 0),
                     "open_minor": int(r[9] or 0), "paid_up": int(r[10] or 0)}) for r in rows]
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for r in out:
        t = totals.setdefault((r["agency"], r["currency"]), {"agency": r["agency"], "agency_name": r["agency_name"], "currency": r["currency"], "placements": 0,
                                                             "handed_minor": 0, "recovered_minor": 0, "bad_debt_minor": 0, "commission_minor": 0,
                                                             "open_minor": 0, "paid_up": 0})
        for k in ("placements", "handed_minor", "recovered_minor", "bad_debt_minor", "commission_minor", "open_minor", "paid_up"):
            t[k] += r[k]
    tot = [_figures(t) for t in totals.values()]
    return {"rows": out, "totals": tot, "chart": _chart(out)}


def _chart(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Bars per month handed over: handed over and recovered per agency (the main currency only)."""
    if not rows:
        return None
    by_cur: dict[str, int] = {}
    for r in rows:
        by_cur[r["currency"]] = by_cur.get(r["currency"], 0) + r["handed_minor"]
    cur = max(by_cur, key=lambda c: by_cur[c])
    mine = [r for r in rows if r["currency"] == cur]
    months = sorted({r["month"] for r in mine})
    agencies = sorted({(r["agency"], r["agency_name"]) for r in mine}, key=lambda a: a[1])
    cell = {(r["agency"], r["month"]): r for r in mine}
    amount = lambda m: str(Money.from_minor(m, cur).amount)  # noqa: E731  (Chart.js parses numeric strings; no floats here)
    datasets = []
    for k, (code, name) in enumerate(agencies):
        colour = COLOURS[k % len(COLOURS)]
        datasets.append({"label": f"{name}: handed over", "data": [amount(cell[(code, m)]["handed_minor"]) if (code, m) in cell else "0" for m in months],
                         "backgroundColor": colour + "55", "borderColor": colour, "borderWidth": 1, "stack": code})
        datasets.append({"label": f"{name}: recovered", "data": [amount(cell[(code, m)]["recovered_minor"]) if (code, m) in cell else "0" for m in months],
                         "backgroundColor": colour, "stack": code + "-r"})
    return {"type": "bar", "data": {"labels": months, "datasets": datasets},
            "options": {"plugins": {"legend": {"display": True}, "title": {"display": True, "text": f"Handed over and recovered by month handed over ({cur})"}},
                        "scales": {"y": {"beginAtZero": True}}}}


__all__ = ["rate_pct", "recoveries_report"]
