"""Bill-run review: totals by offering, segment and account kind; each account's change against last period split into
its reasons (one-off, catch-up or credit lines; products added or ended; price changes; usage; discounts; partial
periods), flagging only the change no reason explains; exceptions (currency mismatches, active accounts without lines,
negative invoices). Every query is one linear pass (joins on indexed keys, grouped; no correlated anti-join)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from opsline.billing.billrun import bill_run_detail, get_run
from opsline.billing.models import BILL_RUN
from opsline.billing.charges import dialect_of
from opsline.billing.periods import add_months
from opsline.billing.review_stats import REASONS, build_components, flag_sql, variance_stats
from opsline.billing.service import setting
from opsline.core.money import Money

def explain(d: dict[str, Any]) -> tuple[list[str], str | None]:
    """(reasons, why flagged) for one account's row: each reason with its amount ex VAT."""
    cur = d["currency"]
    reasons = [f"{label} {Money.from_minor(int(d[key]), cur)}" for key, label in REASONS if d.get(key)]
    why = None
    if d.get("unbilled_before"):
        why = f"{Money.from_minor(int(d['unbilled_before']), cur)} for products active before last period but not billed then"
    elif d.get("unexplained"):
        why = f"{Money.from_minor(int(d['unexplained']), cur)} change on the same products at the same prices, not explained by any reason"
    if d["previous_minor"] is None and not why:
        reasons.insert(0, "first invoice")
    return reasons, why


def review(session: Session, *, bill_run_id: int, limit: int = 100) -> dict[str, Any]:
    """What a billing analyst checks before approving. Raises NotFound."""
    dia = dialect_of(session)
    run = get_run(session, bill_run_id=bill_run_id)
    threshold = Decimal(str(setting(session, "variance_threshold_percent", 20)))
    prev = add_months(run.period_start, -1)
    p: dict[str, Any] = {"run": run.id}
    by_offering = session.execute(text("""
        SELECT COALESCE(o.name, CASE l.kind WHEN 'usage' THEN 'Usage' WHEN 'one_off' THEN 'One-off charges' WHEN 'adjustment' THEN 'Credits and corrections'
                                            ELSE 'Other' END) AS name, l.kind, l.currency,
               COUNT(*) AS lines, SUM(l.amount_minor) AS amount, SUM(l.tax_minor) AS tax, SUM(l.total_minor) AS total
        FROM invoice_line l JOIN invoice i ON i.id = l.invoice_id LEFT JOIN product_offering o ON o.id = l.offering_id
        WHERE i.bill_run_id = :run GROUP BY 1, l.kind, l.currency ORDER BY 7 DESC"""), p).mappings().all()
    by_group = {}
    for col in ("segment_code", "kind"):
        by_group[col] = session.execute(text(f"""
            SELECT a.{col} AS name, i.currency, COUNT(*) AS invoices, SUM(i.subtotal_minor) AS amount, SUM(i.tax_minor) AS tax, SUM(i.total_minor) AS total
            FROM invoice i JOIN account a ON a.id = i.account_id WHERE i.bill_run_id = :run GROUP BY a.{col}, i.currency ORDER BY 6 DESC"""), p).mappings().all()
    pp = {"run": run.id, "prev": dia.bind_date(prev), "thr": float(threshold)}
    over, flagged = flag_sql()
    table = build_components(session, run=run)
    stats = variance_stats(session, bill_run_id=run.id, run=run, built=True)
    rows = session.execute(text(f"""
        SELECT c.*, {over} AS over, {flagged} AS flagged FROM {table} c
        ORDER BY CASE WHEN {flagged} THEN 0 WHEN {over} THEN 1 ELSE 2 END, ABS(c.total_minor - COALESCE(c.previous_minor, 0)) DESC, c.account_id
        LIMIT :lim"""), pp | {"lim": limit}).mappings().all()
    diffs = []
    for r in rows:
        d = dict(r)
        d["flagged"], d["over"] = bool(d["flagged"]), bool(d["over"])
        prevv = d["previous_minor"]
        d["change_minor"] = d["total_minor"] - (prevv or 0)
        d["change_percent"] = None if not prevv else round(100 * (d["total_minor"] - prevv) / abs(prevv), 1)
        d["reasons"], d["flag_reason"] = explain(d)
        d["explanation"] = "; ".join(d["reasons"]) or ("no change" if d["change_minor"] == 0 else "")
        diffs.append(d)
    # billed last period but not in this run: a join on the invoice's unique key (account, period, kind), no correlated scan
    dropped = session.execute(text(f"""
        SELECT COUNT(*) FROM invoice pv LEFT JOIN invoice i ON i.account_id = pv.account_id AND i.period_start = {dia.d('ps')} AND i.kind = 'cycle'
            AND i.bill_run_id = :run
        WHERE pv.kind = 'cycle' AND pv.period_start = {dia.d('prev')} AND pv.number IS NOT NULL AND i.id IS NULL"""),
        {"run": run.id, "prev": dia.bind_date(prev), "ps": dia.bind_date(run.period_start)}).scalar_one()
    rp = {"run": run.id, "day": run.cycle_date.day, "ps": dia.bind_date(run.period_start), "pe": dia.bind_date(run.period_end)}
    mismatch_sql = f"""FROM product p JOIN account a ON a.id = p.account_id
        JOIN price pr ON pr.offering_id = p.offering_id AND pr.kind = 'recurring' AND pr.valid_from <= {dia.d('ps')} AND (pr.valid_to IS NULL OR pr.valid_to > {dia.d('ps')})
        JOIN product_offering o ON o.id = p.offering_id
        WHERE a.bill_cycle_day = :day AND pr.currency <> a.currency AND p.start_date IS NOT NULL AND p.start_date < {dia.d('pe')}
          AND (p.end_date IS NULL OR p.end_date > {dia.d('ps')}) AND p.state IN ('active','suspended','pendingTerminate','terminated')"""
    mismatches = session.execute(text(f"SELECT a.id AS account_id, a.account_number, a.name, a.currency AS account_currency, p.id AS product_id, "
                                      f"o.name AS offering, pr.currency AS price_currency {mismatch_sql} ORDER BY a.id LIMIT :lim"), rp | {"lim": limit}).mappings().all()
    mismatch_count = session.execute(text(f"SELECT COUNT(*) {mismatch_sql}"), rp).scalar_one()
    no_lines_sql = f"""FROM account a LEFT JOIN invoice i ON i.account_id = a.id AND i.period_start = {dia.d('ps')} AND i.kind = 'cycle' AND i.bill_run_id = :run
        WHERE a.bill_cycle_day = :day AND a.status = 'active' AND i.id IS NULL"""
    np = {"run": run.id, "day": run.cycle_date.day, "ps": dia.bind_date(run.period_start)}
    no_lines = session.execute(text(f"SELECT a.id AS account_id, a.account_number, a.name {no_lines_sql} ORDER BY a.id LIMIT :lim"), np | {"lim": limit}).mappings().all()
    no_lines_count = session.execute(text(f"SELECT COUNT(*) {no_lines_sql}"), np).scalar_one()
    negative = session.execute(text("""SELECT i.id AS invoice_id, i.account_id, a.account_number, a.name, i.total_minor, i.currency
        FROM invoice i JOIN account a ON a.id = i.account_id WHERE i.bill_run_id = :run AND i.total_minor < 0 ORDER BY i.total_minor LIMIT :lim"""),
        {"run": run.id, "lim": limit}).mappings().all()
    return {
        "threshold": threshold,
        "previous_period_start": prev,
        "by_offering": [dict(r) for r in by_offering],
        "by_segment": [dict(r) for r in by_group["segment_code"]],
        "by_account_kind": [dict(r) for r in by_group["kind"]],
        "diff": diffs,
        "diff_count": stats["n"],
        "over_threshold_count": stats["over"],
        "flagged_count": stats["flagged"],
        "new_accounts": stats["new_accounts"],
        "dropped_accounts": int(dropped or 0),
        "exceptions": {
            "currency_mismatch": [dict(r) for r in mismatches], "currency_mismatch_count": int(mismatch_count),
            "no_lines": [dict(r) for r in no_lines], "no_lines_count": int(no_lines_count),
            "negative": [dict(r) for r in negative], "negative_count": len(negative),
        },
    }


def run_page(session: Session, *, bill_run_id: int, limit: int = 50) -> dict[str, Any]:
    """A bill run's page: its summary, the review once computed, and the action labels. Raises NotFound."""
    run = bill_run_detail(session, bill_run_id=bill_run_id)
    rev = review(session, bill_run_id=bill_run_id, limit=limit) if run["state"] in ("draft", "review", "approved", "finalised") else None
    return {"run": run, "review": rev, "labels": dict(BILL_RUN.labels)}
