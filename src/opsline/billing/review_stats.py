"""The bill-run review's variance arithmetic: each account's change against last period split into its reasons, in
one linear pass (grouped joins on indexed keys), and the count of accounts whose change no reason explains."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from opsline.billing.models import BillRun
from opsline.billing.periods import add_months
from opsline.billing.service import setting
from opsline.billing.sql import dialect_of
from opsline.core.errors import NotFound


def analyze_run_tables(session: Session) -> None:
    """Fresh planner statistics for the tables a bill run just filled, before the review queries them in the same run
    (PostgreSQL plans from statistics; rows written in this transaction are otherwise invisible to it)."""
    if dialect_of(session).pg:
        session.execute(text("ANALYZE invoice, invoice_line"))
    else:
        session.execute(text("PRAGMA analysis_limit = 4000"))  # sampled, like PostgreSQL: bounded time at any size
        session.execute(text("ANALYZE invoice"))
        session.execute(text("ANALYZE invoice_line"))


REASONS = (
    ("oneoff_delta", "one-off, catch-up or credit lines"),
    ("added", "products added"),
    ("ended", "products ended"),
    ("price", "price changes"),
    ("partial", "part-period (start or end inside a period)"),
    ("usage_delta", "usage"),
    ("discount_delta", "discounts"),
)


LINES_TABLE = "review_lines"
COMPONENTS_TABLE = "review_components"


def lines_sql(dia: Any) -> str:
    """The lines of this run's invoices and of last period's finalised invoices, each with its reason category."""
    prev = dia.d("prev")
    return f"""SELECT l.account_id, l.product_id, l.kind, l.amount_minor, l.unit_amount_minor, l.period_start, l.period_end,
               CASE WHEN i.bill_run_id = :run THEN 1 ELSE 0 END AS cur, i.period_start AS ips, i.period_end AS ipe,
               CASE WHEN l.kind = 'usage' THEN 'usage' WHEN l.kind = 'discount' THEN 'discount'
                    WHEN l.kind = 'recurring' AND l.product_id IS NOT NULL AND l.period_start >= i.period_start THEN 'rec' ELSE 'oneoff' END AS cat
        FROM invoice i JOIN invoice_line l ON l.invoice_id = i.id
        WHERE i.bill_run_id = :run OR (i.kind = 'cycle' AND i.period_start = {prev} AND i.number IS NOT NULL)"""


def components_sql(dia: Any, lines: str = LINES_TABLE) -> str:
    """Per account of the run: subtotals now and last period and the change split by reason (minor units, ex VAT)."""
    prev = dia.d("prev")
    per_product = f"""SELECT x.account_id, x.product_id,
               SUM(CASE WHEN x.cur = 1 THEN x.amount_minor ELSE 0 END) AS rn, SUM(CASE WHEN x.cur = 0 THEN x.amount_minor ELSE 0 END) AS rp,
               SUM(x.cur) AS nn, SUM(1 - x.cur) AS np,
               MAX(CASE WHEN x.cur = 1 THEN x.unit_amount_minor END) AS un, MAX(CASE WHEN x.cur = 0 THEN x.unit_amount_minor END) AS up,
               MAX(CASE WHEN x.period_start > x.ips OR x.period_end < x.ipe THEN 1 ELSE 0 END) AS part,
               MIN(p.start_date) AS started
        FROM {lines} x LEFT JOIN product p ON p.id = x.product_id WHERE x.cat = 'rec' GROUP BY x.account_id, x.product_id"""
    # a product billed now, active before last period, but missing from the account's last invoice is unexplained
    # (only when there was a last invoice: an account's first bill is explained by being the first)
    products = f"""SELECT pp.account_id,
               SUM(CASE WHEN pp.np = 0 AND (pp.started IS NULL OR pp.started >= {prev}) THEN pp.rn ELSE 0 END) AS added,
               SUM(CASE WHEN pp.np = 0 AND pp.started < {prev} THEN pp.rn ELSE 0 END) AS unbilled_before,
               SUM(CASE WHEN pp.nn = 0 THEN -pp.rp ELSE 0 END) AS ended,
               SUM(CASE WHEN pp.nn > 0 AND pp.np > 0 AND pp.un <> pp.up THEN pp.rn - pp.rp ELSE 0 END) AS price,
               SUM(CASE WHEN pp.nn > 0 AND pp.np > 0 AND pp.un = pp.up AND pp.part = 1 THEN pp.rn - pp.rp ELSE 0 END) AS partial,
               SUM(CASE WHEN pp.nn > 0 AND pp.np > 0 AND pp.un = pp.up AND pp.part = 0 THEN pp.rn - pp.rp ELSE 0 END) AS same_changed
        FROM ({per_product}) pp GROUP BY pp.account_id"""
    other = f"""SELECT x.account_id,
               SUM(CASE WHEN x.cur = 1 THEN x.amount_minor ELSE 0 END) AS now_sub, SUM(CASE WHEN x.cur = 0 THEN x.amount_minor ELSE 0 END) AS prev_sub,
               SUM(CASE WHEN x.cat = 'oneoff' THEN (2 * x.cur - 1) * x.amount_minor ELSE 0 END) AS oneoff_delta,
               SUM(CASE WHEN x.cat = 'usage' THEN (2 * x.cur - 1) * x.amount_minor ELSE 0 END) AS usage_delta,
               SUM(CASE WHEN x.cat = 'discount' THEN (2 * x.cur - 1) * x.amount_minor ELSE 0 END) AS discount_delta,
               MAX(1 - x.cur) AS had_prev
        FROM {lines} x GROUP BY x.account_id"""
    return f"""SELECT i.id AS invoice_id, i.account_id, a.account_number, a.name, i.currency, i.total_minor, pv.total_minor AS previous_minor,
               o.now_sub, o.prev_sub, o.oneoff_delta, o.usage_delta, o.discount_delta,
               COALESCE(pr.added, 0) AS added, COALESCE(pr.ended, 0) AS ended, COALESCE(pr.price, 0) AS price, COALESCE(pr.partial, 0) AS partial,
               COALESCE(pr.same_changed, 0) + CASE WHEN pv.id IS NULL THEN 0 ELSE COALESCE(pr.unbilled_before, 0) END AS unexplained,
               CASE WHEN pv.id IS NULL THEN 0 ELSE COALESCE(pr.unbilled_before, 0) END AS unbilled_before
        FROM invoice i
        JOIN account a ON a.id = i.account_id
        LEFT JOIN invoice pv ON pv.account_id = i.account_id AND pv.period_start = {prev} AND pv.kind = 'cycle' AND pv.number IS NOT NULL
        LEFT JOIN ({other}) o ON o.account_id = i.account_id
        LEFT JOIN ({products}) pr ON pr.account_id = i.account_id
        WHERE i.bill_run_id = :run"""


def flag_sql(thr_col: str = ":thr") -> tuple[str, str]:
    over = f"(c.previous_minor IS NULL OR ABS(c.total_minor - c.previous_minor) * 100.0 > {thr_col} * ABS(c.previous_minor))"
    unexplained = f"(c.unexplained <> 0 AND (c.previous_minor IS NULL OR ABS(c.unexplained) * 100.0 > {thr_col} * ABS(COALESCE(c.prev_sub, 0))))"
    # a product live before last period that last period did not bill is a revenue leak at any size: always flagged
    return over, f"(({over} AND {unexplained}) OR c.unbilled_before <> 0)"


def build_components(session: Session, *, run: BillRun) -> str:
    """Compute every account's variance components once into a temporary table (two linear passes: the lines of both
    periods, then the grouped components); returns its name. Replaces an earlier build in the same connection."""
    dia = dialect_of(session)
    p = {"run": run.id, "prev": dia.bind_date(add_months(run.period_start, -1))}
    prefix = "" if dia.pg else "temp."
    for name, sql in ((LINES_TABLE, lines_sql(dia)), (COMPONENTS_TABLE, components_sql(dia))):
        session.execute(text(f"DROP TABLE IF EXISTS {prefix}{name}"))
        session.execute(text(f"CREATE TEMP TABLE {name} AS {sql}"), p)
        if name == LINES_TABLE and dia.pg:
            session.execute(text(f"ANALYZE {name}"))
    return COMPONENTS_TABLE


def variance_stats(session: Session, *, bill_run_id: int, run: BillRun | None = None, built: bool = False) -> dict[str, int]:
    """How many accounts were compared, moved over the threshold, are flagged (unexplained), and are new. Builds the
    components table unless `built` says the caller just did."""
    run = run or session.get(BillRun, bill_run_id)
    if run is None:
        raise NotFound(f"bill run {bill_run_id} not found")
    table = COMPONENTS_TABLE if built else build_components(session, run=run)
    thr = float(Decimal(str(setting(session, "variance_threshold_percent", 20))))
    over, flagged = flag_sql()
    row = session.execute(text(
        f"SELECT COUNT(*) AS n, SUM(CASE WHEN {over} THEN 1 ELSE 0 END) AS over, SUM(CASE WHEN {flagged} THEN 1 ELSE 0 END) AS flagged, "
        f"SUM(CASE WHEN c.previous_minor IS NULL THEN 1 ELSE 0 END) AS new_accounts FROM {table} c"), {"thr": thr}).one()
    return {"n": int(row.n or 0), "over": int(row.over or 0), "flagged": int(row.flagged or 0), "new_accounts": int(row.new_accounts or 0)}


