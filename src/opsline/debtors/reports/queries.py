"""Read models for the debtors reports (aged debtors, Top 10 / Top 60, collections effectiveness, suspense ageing):
set-based SQL over the ledger, invoices, allocations and claims that runs the same on SQLite and PostgreSQL, plain dicts out.

Every ageing here settles debits the way the account page does (`billing.service.open_debits_cte`: credits pay the
oldest due debits first), so the report, the account panel and the provision agree to the cent. Days past due count
from the operator's local date (`tz`), and nothing reads a clock: `now` is passed in."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from opsline.billing import service as billing
from opsline.billing.invoicing.models import OPEN_CLAIM_STATES
from opsline.billing.periods import add_months
from opsline.billing.sql import Dialect, dialect_of
from opsline.core.errors import InvalidInput
from opsline.core.localtime import local_date, start_of_day
from opsline.core.money import Money
from opsline.payments import queries as payments_queries

BUCKETS = billing.AGEING_BUCKETS  # current, d30, d60, d90, d120, d120_plus: the account panel's buckets
BUCKET_LABELS = billing.BUCKET_LABELS
TOP_SIZES = (10, 60)
MAX_MONTHS = 36
PAGE = 100
COLOURS = ("#2e7d32", "#f9a825", "#ef6c00", "#d84315", "#b71c1c", "#4a148c")  # one per bucket, green → purple
SEGMENT_COLOURS = ("#1565c0", "#00897b", "#6d4c41", "#8e24aa", "#546e7a", "#c62828", "#f57f17", "#2e7d32")


@dataclass(frozen=True)
class AsOf:
    """The instant a report is taken at and the local business date days past due count from."""

    now: datetime
    today: date

    @classmethod
    def at(cls, now: datetime, tz: ZoneInfo) -> "AsOf":
        return cls(now, local_date(now, tz))

    def params(self, dia: Dialect) -> dict[str, Any]:
        return {"t": dia.bind_ts(self.now), "asof_d": dia.bind_date(self.today)}


def major(minor: int, currency: str) -> Decimal:
    """Minor units as a Decimal amount in the currency's own decimals (exports and charts; never a float)."""
    return Money.from_minor(int(minor), currency).amount


def _chart_amount(minor: int, currency: str) -> str:
    # Chart.js parses numeric strings; a string keeps money out of floats on our side
    return str(major(minor, currency))


def _date(v: Any) -> date | None:
    return billing.as_date(v)


def _dt(v: Any) -> datetime | None:
    if v is None or isinstance(v, datetime):
        return v.replace(tzinfo=timezone.utc) if isinstance(v, datetime) and v.tzinfo is None else v
    return datetime.fromisoformat(str(v)).replace(tzinfo=timezone.utc)


def _check_bucket(bucket: str) -> str:
    if bucket and bucket not in BUCKETS and bucket != "total":
        raise InvalidInput(f"'{bucket}' is not an ageing bucket (one of {', '.join(BUCKETS)})", field="bucket")
    return bucket or "total"


def _per_account_cte(dia: Dialect) -> str:
    """WITH clause ending in `pa(account_id, currency, <buckets>, total, oldest_due)`: every account that owes money,
    its open debt by days past due. Accounts in credit are left out (see `credit_balances`)."""
    days = dia.days("x.due", dia.d("asof_d"))
    cases = {
        "current": f"{days} <= 0", "d30": f"{days} BETWEEN 1 AND 30", "d60": f"{days} BETWEEN 31 AND 60",
        "d90": f"{days} BETWEEN 61 AND 90", "d120": f"{days} BETWEEN 91 AND 120", "d120_plus": f"{days} > 120",
    }
    cols = ",\n".join(f"SUM(CASE WHEN {cond} THEN x.open_minor ELSE 0 END) AS {b}" for b, cond in cases.items())
    return f"""WITH {billing.open_debits_cte(dia)},
    pa AS (
        SELECT x.account_id, x.currency, {cols}, SUM(x.open_minor) AS total, MIN(CASE WHEN x.open_minor > 0 THEN x.due END) AS oldest_due
        FROM x GROUP BY x.account_id, x.currency HAVING SUM(x.open_minor) > 0)"""


def _bucket_row(r: Any) -> dict[str, int]:
    return {b: int(getattr(r, b) or 0) for b in (*BUCKETS, "total")}


# --- aged debtors ---------------------------------------------------------------------------------------------------

def aged_debtors(session: Session, *, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """Open debt by days past due (current, 1–30, 31–60, 61–90, 91–120, 120+) per segment and currency, with the
    accounts in credit beside it so the report reconciles to the ledger: total open debt + credit balances = the sum
    of every account's ledger at `now`. Returns {"as_of", "buckets", "rows", "totals", "credit", "chart"} (minor units)."""
    dia = dialect_of(session)
    asof = AsOf.at(now, tz)
    rows = session.execute(text(f"""{_per_account_cte(dia)}
        SELECT a.segment_code, COALESCE(s.name, a.segment_code) AS segment_name, pa.currency,
               {', '.join(f'SUM(pa.{b}) AS {b}' for b in BUCKETS)}, SUM(pa.total) AS total, COUNT(*) AS accounts
        FROM pa JOIN account a ON a.id = pa.account_id LEFT JOIN segment s ON s.code = a.segment_code
        GROUP BY a.segment_code, s.name, pa.currency ORDER BY pa.currency, a.segment_code"""), asof.params(dia)).all()
    out = [{"segment_code": r.segment_code, "segment_name": r.segment_name, "currency": r.currency, **_bucket_row(r), "accounts": int(r.accounts)}
           for r in rows]
    totals: dict[str, dict[str, Any]] = {}
    for r in out:
        t = totals.setdefault(r["currency"], {"currency": r["currency"], **{b: 0 for b in (*BUCKETS, "total")}, "accounts": 0})
        for k in (*BUCKETS, "total", "accounts"):
            t[k] += r[k]
    credit = credit_balances(session, now=now)
    return {"as_of": asof.today, "buckets": [{"key": b, "label": BUCKET_LABELS[b]} for b in BUCKETS], "rows": out,
            "totals": list(totals.values()), "credit": credit, "chart": _aged_chart(out)}


def _aged_chart(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Stacked bars: one bar per bucket, one colour per segment (the main currency only: amounts in two currencies do not add)."""
    if not rows:
        return None
    by_cur: dict[str, int] = {}
    for r in rows:
        by_cur[r["currency"]] = by_cur.get(r["currency"], 0) + r["total"]
    cur = max(by_cur, key=lambda c: by_cur[c])
    mine = [r for r in rows if r["currency"] == cur]
    datasets = [{"label": r["segment_name"], "data": [_chart_amount(r[b], cur) for b in BUCKETS],
                 "backgroundColor": SEGMENT_COLOURS[k % len(SEGMENT_COLOURS)]} for k, r in enumerate(mine)]
    return {"type": "bar", "data": {"labels": [BUCKET_LABELS[b] for b in BUCKETS], "datasets": datasets},
            "options": {"plugins": {"legend": {"display": True}, "title": {"display": True, "text": f"Open debt by days past due ({cur})"}},
                        "scales": {"x": {"stacked": True}, "y": {"stacked": True, "beginAtZero": True}}}}


def credit_balances(session: Session, *, now: datetime) -> list[dict[str, Any]]:
    """Accounts whose ledger is below zero at `now` (money we owe them), per currency: {"currency", "accounts", "amount_minor"}."""
    dia = dialect_of(session)
    rows = session.execute(text("""
        SELECT currency, COUNT(*) AS accounts, SUM(bal) AS amount FROM (
            SELECT account_id, currency, SUM(amount_minor) AS bal FROM ledger_entry WHERE posted_at <= :t GROUP BY account_id, currency
            HAVING SUM(amount_minor) < 0) c GROUP BY currency ORDER BY currency"""), {"t": dia.bind_ts(now)}).all()
    return [{"currency": r.currency, "accounts": int(r.accounts), "amount_minor": int(r.amount)} for r in rows]


def aged_accounts(session: Session, *, now: datetime, tz: ZoneInfo, segment: str = "", bucket: str = "", currency: str = "",
                  limit: int | None = PAGE, offset: int = 0) -> dict[str, Any]:
    """The accounts behind an aged-debtors number: those with open debt in `bucket` (or any, when empty) and `segment`,
    biggest first. Returns {"rows", "count", "bucket"}; `limit=None` returns them all (exports).
    Raises InvalidInput (unknown bucket)."""
    order = _check_bucket(bucket)
    dia = dialect_of(session)
    params = AsOf.at(now, tz).params(dia)
    where = [f"pa.{order} > 0"]
    if segment:
        where.append("a.segment_code = :seg")
        params["seg"] = segment
    if currency:
        where.append("pa.currency = :cur")
        params["cur"] = currency
    page = ""
    if limit is not None:
        page = "LIMIT :lim OFFSET :off"
        params.update(lim=int(limit), off=max(0, int(offset)))
    rows = session.execute(text(f"""{_per_account_cte(dia)}
        SELECT pa.*, a.account_number, a.name, a.segment_code, a.status, COUNT(*) OVER () AS n_all
        FROM pa JOIN account a ON a.id = pa.account_id WHERE {' AND '.join(where)}
        ORDER BY pa.{order} DESC, a.id {page}"""), params).all()
    out = [{"account_id": r.account_id, "account_number": r.account_number, "name": r.name, "segment_code": r.segment_code, "status": r.status,
            "currency": r.currency, **_bucket_row(r), "oldest_due": _date(r.oldest_due)} for r in rows]
    count = int(rows[0].n_all) if rows else 0
    if not rows and offset:
        count = aged_accounts(session, now=now, tz=tz, segment=segment, bucket=bucket, currency=currency, limit=1, offset=0)["count"]
    return {"rows": out, "count": count, "bucket": order}


# --- Top 10 / Top 60 --------------------------------------------------------------------------------------------------

def top_debtors(session: Session, *, now: datetime, tz: ZoneInfo, n: int = 10, segment: str = "") -> dict[str, Any]:
    """The `n` accounts that owe the most (10 or 60), with their ageing, days past due of the oldest open debit, last
    payment (date and amount allocated to the account), money in dispute (open billing claims), the last entry on their
    timeline, and the next dunning step (where the dunning runs have placed the account, or its hold). Owner stays
    empty: nothing in Opsline assigns debtors accounts to a person yet. Raises InvalidInput (n)."""
    if n not in TOP_SIZES:
        raise InvalidInput(f"Top {n} is not offered; choose {' or '.join(map(str, TOP_SIZES))}", field="n")
    dia = dialect_of(session)
    asof = AsOf.at(now, tz)
    params = asof.params(dia) | {"lim": n}
    seg = ""
    if segment:
        seg, params["seg"] = "WHERE a.segment_code = :seg", segment
    rows = session.execute(text(f"""{_per_account_cte(dia)}
        SELECT pa.*, a.account_number, a.name, a.segment_code, a.value_tier_code, a.status
        FROM pa JOIN account a ON a.id = pa.account_id {seg} ORDER BY pa.total DESC, a.id LIMIT :lim"""), params).all()
    ids = [int(r.account_id) for r in rows]
    pays, disputes, actions = _last_payments(session, ids), _disputes(session, ids), _last_actions(session, ids)
    steps = _next_steps(session, ids, today=asof.today)
    out = []
    for rank, r in enumerate(rows, start=1):
        oldest = _date(r.oldest_due)
        out.append({"rank": rank, "account_id": r.account_id, "account_number": r.account_number, "name": r.name, "segment_code": r.segment_code,
                    "value_tier_code": r.value_tier_code, "status": r.status, "currency": r.currency, **_bucket_row(r),
                    "oldest_due": oldest, "oldest_days": max(0, (asof.today - oldest).days) if oldest else 0,
                    "last_payment_on": pays.get(r.account_id, {}).get("received_on"), "last_payment_minor": pays.get(r.account_id, {}).get("amount_minor"),
                    "dispute_minor": disputes.get(r.account_id, 0), "last_action": actions.get(r.account_id),
                    "owner": None, "next_step": _next_step(steps.get(r.account_id), oldest)})
    total = sum(o["total"] for o in out)
    cur = out[0]["currency"] if out else None
    chart = None
    if out:
        chart = {"type": "bar", "data": {"labels": [o["account_number"] for o in out],
                                         "datasets": [{"label": BUCKET_LABELS[b], "backgroundColor": COLOURS[k],
                                                       "data": [_chart_amount(o[b], o["currency"]) for o in out]} for k, b in enumerate(BUCKETS)]},
                 "options": {"indexAxis": "y", "plugins": {"legend": {"display": True}},
                             "scales": {"x": {"stacked": True, "beginAtZero": True}, "y": {"stacked": True}}}}
    return {"as_of": asof.today, "n": n, "rows": out, "total_minor": total, "currency": cur, "chart": chart, "segment": segment}


def _in_list(ids: list[int]) -> str:
    return ",".join(str(int(i)) for i in ids)


def _last_payments(session: Session, ids: list[int]) -> dict[int, dict[str, Any]]:
    """Per account, the latest payment allocated to it: received date and the amount that reached this account."""
    if not ids:
        return {}
    rows = session.execute(text(f"""
        SELECT x.account_id, p.id, p.received_on, SUM(x.amount_minor) AS amount FROM payment_allocation x JOIN payment p ON p.id = x.payment_id
        WHERE x.account_id IN ({_in_list(ids)}) AND x.state = 'allocated' GROUP BY x.account_id, p.id, p.received_on""")).all()
    best: dict[int, tuple[date, int, int]] = {}
    for r in rows:
        key = (_date(r.received_on) or date.min, int(r.id), int(r.amount))
        if r.account_id not in best or key[:2] > best[r.account_id][:2]:
            best[r.account_id] = key
    return {a: {"received_on": k[0], "amount_minor": k[2]} for a, k in best.items()}


def _disputes(session: Session, ids: list[int]) -> dict[int, int]:
    if not ids:
        return {}
    states = ",".join(f"'{s}'" for s in OPEN_CLAIM_STATES)
    rows = session.execute(text(f"""SELECT account_id, SUM(disputed_minor) AS d FROM billing_claim
                                   WHERE account_id IN ({_in_list(ids)}) AND state IN ({states}) GROUP BY account_id""")).all()
    return {int(r.account_id): int(r.d) for r in rows}


def _last_actions(session: Session, ids: list[int]) -> dict[int, dict[str, Any]]:
    """The newest timeline entry per account (memos, messages, dunning actions all write one)."""
    if not ids:
        return {}
    rows = session.execute(text(f"""
        SELECT e.account_id, e.occurred_at, e.actor, e.entity_type, e.action, e.reason FROM audit_event e
        WHERE e.id IN (SELECT MAX(id) FROM audit_event WHERE account_id IN ({_in_list(ids)}) GROUP BY account_id)""")).all()
    return {int(r.account_id): {"at": _dt(r.occurred_at), "actor": r.actor,
                                "what": f"{r.entity_type} {r.action}".replace("_", " "), "reason": r.reason or ""} for r in rows}


def _next_steps(session: Session, ids: list[int], *, today: date) -> dict[int, dict[str, Any]]:
    """Per account, where dunning stands: the last step done, the next step of its policy and the first date it may come,
    or an active hold. Accounts the dunning runs have not reached yet are absent."""
    if not ids:
        return {}
    dia = dialect_of(session)
    marks = _in_list(ids)
    rows = session.execute(text(f"""
        SELECT da.account_id, da.next_step_from, cur.name AS done, nxt.name AS next_name, nxt.min_days_overdue
        FROM dunning_account da LEFT JOIN dunning_step cur ON cur.id = da.step_id
        LEFT JOIN dunning_step nxt ON nxt.policy_id = da.policy_id AND nxt.position = da.position + 1
        WHERE da.account_id IN ({marks})""")).all()
    out: dict[int, dict[str, Any]] = {int(r.account_id): {"done": r.done, "next": r.next_name, "from": _date(r.next_step_from),
                                                          "min_days": r.min_days_overdue} for r in rows}
    holds = session.execute(text(f"""SELECT account_id, MAX(valid_to) AS until FROM dunning_hold WHERE account_id IN ({marks}) AND state = 'active'
                                    AND valid_from <= {dia.d('today')} AND valid_to > {dia.d('today')} GROUP BY account_id"""),
                            {"today": dia.bind_date(today)}).all()
    for h in holds:
        out.setdefault(int(h.account_id), {})["held_until"] = _date(h.until)
    return out


def _next_step(step: dict[str, Any] | None, oldest_due: date | None) -> str | None:
    if not step:
        return None
    if step.get("held_until"):
        return f"held out of dunning until {step['held_until']}"
    if not step.get("next"):
        return f"last step done ({step['done']})" if step.get("done") else None
    start = step["from"]
    if oldest_due is not None and step.get("min_days") is not None:
        start = max(start, date.fromordinal(oldest_due.toordinal() + int(step["min_days"])))
    return f"{step['next']} from {start}"


# --- collections effectiveness ----------------------------------------------------------------------------------------

def month_bounds(*, now: datetime, tz: ZoneInfo, months: int) -> list[tuple[date, datetime, datetime]]:
    """The last `months` local calendar months up to `now` (the current one to date): (first day, start instant, end instant)."""
    if not 1 <= months <= MAX_MONTHS:
        raise InvalidInput(f"months must be between 1 and {MAX_MONTHS}", field="months")
    first = local_date(now, tz).replace(day=1)
    out = []
    for k in range(months - 1, -1, -1):
        m = add_months(first, -k)
        end = now if k == 0 else start_of_day(add_months(m, 1), tz)
        out.append((m, start_of_day(m, tz), end))
    return out


def collections_effectiveness(session: Session, *, now: datetime, tz: ZoneInfo, months: int = 12) -> dict[str, Any]:
    """Per local month and currency: billed (invoices posted), collected (payments posted, net of reversals), credited
    (credit notes) and the closing debtors balance, with the collection rate (collected ÷ billed) and DSO (closing
    balance ÷ billed × days in the month; the current month counts the days so far). One scan of the ledger.
    Raises InvalidInput (months out of 1..36)."""
    dia = dialect_of(session)
    bounds = month_bounds(now=now, tz=tz, months=months)
    # each entry's month is found once (k = -1 before the window), then a small GROUP BY: one pass, few comparisons a row
    params: dict[str, Any] = {"t": dia.bind_ts(now), "s0": dia.bind_ts(bounds[0][1])}
    whens = ["WHEN posted_at < :s0 THEN -1"]
    for k, (_, _, end) in enumerate(bounds[:-1]):
        params[f"e{k}"] = dia.bind_ts(end)
        whens.append(f"WHEN posted_at < :e{k} THEN {k}")
    rows = session.execute(text(f"""SELECT currency, k, kind, SUM(amount_minor) AS amount FROM (
                                       SELECT currency, kind, amount_minor, CASE {' '.join(whens)} ELSE {len(bounds) - 1} END AS k
                                       FROM ledger_entry WHERE posted_at <= :t) e
                                   GROUP BY currency, k, kind"""), params).all()
    sums: dict[str, dict[tuple[int, str], int]] = {}
    for r in rows:
        sums.setdefault(r.currency, {})[(int(r.k), r.kind)] = int(r.amount or 0)
    series = []
    for currency in sorted(sums):
        got = sums[currency]
        closing = sum(v for (k, _), v in got.items() if k == -1)
        months_out = []
        for k, (m, start, end) in enumerate(bounds):
            billed, collected, credited = got.get((k, "invoice"), 0), -got.get((k, "payment"), 0), -got.get((k, "credit_note"), 0)
            closing += sum(v for (kk, _), v in got.items() if kk == k)
            days = calendar.monthrange(m.year, m.month)[1] if k < len(bounds) - 1 else max(1, (local_date(now, tz) - m).days + 1)
            rate = (Decimal(collected) * 100 / Decimal(billed)).quantize(Decimal("0.1")) if billed > 0 else None
            dso = (Decimal(max(closing, 0)) * days / Decimal(billed)).quantize(Decimal("1")) if billed > 0 else None
            months_out.append({"month": m.strftime("%Y-%m"), "billed_minor": billed, "collected_minor": collected, "credited_minor": credited,
                               "closing_minor": closing, "rate_pct": rate, "dso_days": dso, "days": days})
        series.append({"currency": currency, "months": months_out})
    return {"months": [m.strftime("%Y-%m") for m, _, _ in bounds], "series": series, "chart": _collections_chart(series)}


def _collections_chart(series: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not series:
        return None
    main = max(series, key=lambda s: sum(m["billed_minor"] for m in s["months"]))
    cur = main["currency"]
    ms = main["months"]
    return {"type": "bar", "data": {"labels": [m["month"] for m in ms], "datasets": [
        {"label": f"Billed ({cur})", "data": [_chart_amount(m["billed_minor"], cur) for m in ms], "backgroundColor": "#1565c0", "yAxisID": "y"},
        {"label": f"Collected ({cur})", "data": [_chart_amount(m["collected_minor"], cur) for m in ms], "backgroundColor": "#2e7d32", "yAxisID": "y"},
        {"type": "line", "label": "DSO (days)", "data": [None if m["dso_days"] is None else int(m["dso_days"]) for m in ms], "borderColor": "#c62828",
         "backgroundColor": "#c62828", "yAxisID": "dso"}]},
            "options": {"plugins": {"legend": {"display": True}},
                        "scales": {"y": {"beginAtZero": True, "position": "left"},
                                   "dso": {"beginAtZero": True, "position": "right", "grid": {"drawOnChartArea": False},
                                           "title": {"display": True, "text": "days"}}}}}


MEASURES = ("billed", "collected", "credited")


def collections_accounts(session: Session, *, now: datetime, tz: ZoneInfo, month: str, measure: str = "billed", currency: str = "",
                         limit: int | None = PAGE, offset: int = 0) -> dict[str, Any]:
    """The accounts behind one month's billed, collected or credited figure, biggest first: {"rows", "count", "month", "measure"}.
    Raises InvalidInput (month not YYYY-MM, unknown measure)."""
    if measure not in MEASURES:
        raise InvalidInput(f"'{measure}' is not one of {', '.join(MEASURES)}", field="measure")
    try:
        first = datetime.strptime(month, "%Y-%m").date()
    except ValueError:
        raise InvalidInput(f"'{month}' is not a month (YYYY-MM)", field="month") from None
    dia = dialect_of(session)
    end = min(start_of_day(add_months(first, 1), tz), now)
    params: dict[str, Any] = {"s": dia.bind_ts(start_of_day(first, tz)), "e": dia.bind_ts(end)}
    kind = {"billed": "invoice", "collected": "payment", "credited": "credit_note"}[measure]
    sign = "" if measure == "billed" else "-"
    cur = ""
    if currency:
        cur, params["cur"] = "AND l.currency = :cur", currency
    page = ""
    if limit is not None:
        page = "LIMIT :lim OFFSET :off"
        params.update(lim=int(limit), off=max(0, int(offset)))
    rows = session.execute(text(f"""
        SELECT m.account_id, m.currency, m.amount, a.account_number, a.name, a.segment_code, COUNT(*) OVER () AS n_all FROM (
            SELECT l.account_id, l.currency, {sign}SUM(l.amount_minor) AS amount FROM ledger_entry l
            WHERE l.kind = '{kind}' AND l.posted_at >= :s AND l.posted_at < :e {cur} GROUP BY l.account_id, l.currency
            HAVING SUM(l.amount_minor) <> 0) m
        JOIN account a ON a.id = m.account_id ORDER BY m.amount DESC, a.id {page}"""), params).all()
    return {"rows": [{"account_id": r.account_id, "account_number": r.account_number, "name": r.name, "segment_code": r.segment_code,
                      "currency": r.currency, "amount_minor": int(r.amount)} for r in rows],
            "count": int(rows[0].n_all) if rows else 0, "month": month, "measure": measure}


# --- suspense ageing --------------------------------------------------------------------------------------------------

def suspense_ageing(session: Session, *, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """Unallocated money by age: the payments desk's own figures (`payments.queries.suspense_ageing`), plus its totals."""
    ageing = payments_queries.suspense_ageing(session, now=now)
    summary = payments_queries.desk_summary(session, now=now, tz=tz)
    return ageing | {"count": summary["suspense"], "amount_minor": summary["suspense_minor"], "currency": summary["currency"],
                     "oldest_days": summary["oldest_days"]}


def suspense_items(session: Session, *, now: datetime, limit: int = 200) -> list[dict[str, Any]]:
    """The open suspense items behind the ageing, oldest first (the payments desk's own list)."""
    return payments_queries.suspense_items(session, now=now, limit=limit)
