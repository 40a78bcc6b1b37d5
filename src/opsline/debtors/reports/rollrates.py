"""Roll-rate report (collections effectiveness): per month, the share of each ageing bucket's balance that sat one
bucket older a month later (120+: written off), from the provision's month-end snapshots (ledger and imported history),
its average over the window (the matrix the provision uses), and the accounts behind a month's roll."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from opsline.billing.periods import add_months
from opsline.billing.sql import dialect_of
from opsline.core.exports import Sheet
from opsline.core.money import Money
from opsline.debtors import provision
from opsline.debtors.provision_models import BUCKETS
from opsline.debtors.reports.queries import COLOURS

LABELS = provision.BUCKET_LABELS


def _to_label(b: str) -> str:
    return LABELS.get(provision.NEXT[b], provision.NEXT[b])


def report(session: Session, *, now: datetime, tz: ZoneInfo, months: int = 12, segment: str = "") -> dict[str, Any]:
    """Roll rates month by month over the last `months` transitions to the last month end, and their balance-weighted
    average. Months without history (or whose ledger snapshot is not taken yet: a provision run or `opsline
    provision-snapshot` takes it) are listed as missing, not guessed. Raises UnableToProvide (months out of 1..36)."""
    month = provision.last_ended_month(now=now, tz=tz)
    w = provision.window(session, month=month, lookback=months, now=now, tz=tz, strict=False, take=False)
    trend = provision.monthly_rates(w, segment=segment)
    rates = provision.roll_rates(w)
    wanted = [add_months(month, -k) for k in range(months, -1, -1)]
    matrix = [{"currency": cur, "roll": r.roll, "stayed": r.stayed, "loss": r.loss, "basis": r.basis, "balance": r.balance, "rolled": r.rolled}
              for (cur, seg), r in sorted(rates.items()) if seg == (segment or provision.ALL)]
    cur = trend[0]["currency"] if trend else None
    chart = None
    if trend:
        mine = [t for t in trend if t["currency"] == cur]
        chart = {"type": "line", "data": {"labels": [t["month"] for t in mine], "datasets": [
            {"label": f"{LABELS[b]} → {_to_label(b)}", "borderColor": COLOURS[k], "backgroundColor": COLOURS[k],
             "data": [None if t["rate"][b] is None else str((t["rate"][b] * 100).quantize(Decimal("0.01"))) for t in mine]}
            for k, b in enumerate(BUCKETS)]},
            "options": {"plugins": {"legend": {"display": True}, "title": {"display": True, "text": "Roll rate by month (%)"}},
                        "scales": {"y": {"beginAtZero": True, "max": 100, "title": {"display": True, "text": "% of the bucket"}}}}}
    return {"month": provision.month_text(month), "months": months, "segment": segment, "trend": trend, "matrix": matrix, "chart": chart,
            "buckets": [{"key": b, "label": LABELS[b], "to": _to_label(b)} for b in BUCKETS],
            "missing": [provision.month_text(m) for m in wanted if m not in w.months],
            "ledger_months": sum(1 for m in w.months if w.sources[m] == "ledger"),
            "imported_months": sum(1 for m in w.months if w.sources[m] == "import")}


def sheets(data: dict[str, Any]) -> list[Sheet]:
    trend = []
    for t in data["trend"]:
        for b in BUCKETS:
            cur = t["currency"]
            trend.append([t["month"], t["to"], t["source"], cur, LABELS[b], _to_label(b), Money.from_minor(t["balance"][b], cur).amount,
                          Money.from_minor(t["rolled"][b], cur).amount, None if t["rate"][b] is None else t["rate"][b] * 100])
    matrix = [[m["currency"], LABELS[b], _to_label(b), Money.from_minor(m["balance"][b], m["currency"]).amount,
               Money.from_minor(m["rolled"][b], m["currency"]).amount, m["roll"][b] * 100, m["loss"][b] * 100, m["basis"][b]]
              for m in data["matrix"] for b in BUCKETS]
    return [Sheet("Roll-rate matrix", ["Currency", "From", "To", "Balance (window)", "Rolled (window)", "Roll rate %", "Loss rate %", "Basis"], matrix,
                  frozenset({3, 4})),
            Sheet("By month", ["Month end", "Next month end", "Sources", "Currency", "From", "To", "Balance", "Rolled", "Roll rate %"], trend,
                  frozenset({6, 7}))]


def rolled_accounts(session: Session, *, month: date, bucket: str, segment: str = "", currency: str, limit: int | None = 100,
                    offset: int = 0) -> dict[str, Any]:
    """The accounts in `bucket` at month end `month` (ledger snapshots), with what of it sat one bucket older a month
    later (120+: was written off), most rolled first. Raises UnableToProvide (bucket)."""
    if bucket not in BUCKETS:
        raise provision.UnableToProvide(f"'{bucket}' is not an ageing bucket (one of {', '.join(BUCKETS)})", field="bucket")
    nxt_col = "written_off_minor" if bucket == BUCKETS[-1] else BUCKETS[BUCKETS.index(bucket) + 1]
    dia = dialect_of(session)
    params: dict[str, Any] = {"pv": dia.bind_date(provision.last_day(month)), "nx": dia.bind_date(provision.last_day(add_months(month, 1))),
                              "cur": currency}
    seg = ""
    if segment:
        seg, params["seg"] = "AND p.segment_code = :seg", segment
    page = ""
    if limit is not None:
        page, params["lim"], params["off"] = "LIMIT :lim OFFSET :off", int(limit), max(0, int(offset))
    rolled = dia.least(f"p.{bucket}", f"COALESCE(n.{nxt_col}, 0)")
    rows = session.execute(text(f"""
        SELECT p.account_id, a.account_number, a.name, p.segment_code, p.{bucket} AS bal, {rolled} AS rolled, COUNT(*) OVER () AS n_all,
               SUM(p.{bucket}) OVER () AS bal_all, SUM({rolled}) OVER () AS rolled_all
        FROM provision_account_snapshot p JOIN account a ON a.id = p.account_id
        LEFT JOIN provision_account_snapshot n ON n.month_end = {dia.d('nx')} AND n.account_id = p.account_id AND n.currency = p.currency
        WHERE p.month_end = {dia.d('pv')} AND p.currency = :cur AND p.{bucket} > 0 {seg}
        ORDER BY rolled DESC, bal DESC, p.account_id {page}"""), params).all()
    return {"month": provision.month_text(month), "next": provision.month_text(add_months(month, 1)), "bucket": bucket, "label": LABELS[bucket],
            "to_label": _to_label(bucket), "segment": segment, "currency": currency, "count": int(rows[0].n_all) if rows else 0,
            "balance_minor": int(rows[0].bal_all) if rows else 0, "rolled_minor": int(rows[0].rolled_all) if rows else 0,
            "rows": [{"account_id": r.account_id, "account_number": r.account_number, "name": r.name, "segment_code": r.segment_code,
                      "balance_minor": int(r.bal), "rolled_minor": int(r.rolled)} for r in rows]}
