"""Prescription (Prescription Act 68 of 1969, s11(d)): ordinary debt prescribes three years after it fell due. Prescribed
debt is flagged, never dunned (the `prescribed` exclusion) and reported here; writing it off is the usual outcome.

Credits settle the oldest debits first (as every ageing in Opsline), so an account's prescribed amount is what is left of
its debits due on or before the cut-off after all its credits: max(0, debits due by the cut-off - credits)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from opsline.billing.service import open_debits_cte
from opsline.billing.sql import Dialect, dialect_of

YEARS = 3


def cutoff(today: date) -> date:
    """The last due date that has prescribed by `today`: today three years back (29 February -> 28 February, so debt due
    on 29 February 2024 prescribes on 1 March 2027)."""
    try:
        return today.replace(year=today.year - YEARS)
    except ValueError:  # 29 February
        return today.replace(year=today.year - YEARS, day=28)


def _due(d: Dialect) -> str:
    return f"COALESCE(due_date, {'CAST(posted_at AS DATE)' if d.pg else 'date(posted_at)'})"


def prescribed_accounts_sql(d: Dialect) -> str:
    """SELECT account_id, currency, prescribed_minor for every account holding prescribed debt on :presc_cutoff (a
    date parameter): one pass over the debits, no window; credits are summed only for the accounts with old debits
    (few, and found through the ledger's account index), so the dunning run pays little for this exclusion."""
    old = f"amount_minor > 0 AND {_due(d)} <= {d.d('presc_cutoff')}"
    return f"""SELECT deb.account_id, deb.currency, deb.old_minor - COALESCE(cr.paid, 0) AS prescribed_minor
        FROM (SELECT account_id, currency, SUM(amount_minor) AS old_minor FROM ledger_entry WHERE {old} GROUP BY account_id, currency) deb
        LEFT JOIN (SELECT account_id, currency, -SUM(amount_minor) AS paid FROM ledger_entry
                   WHERE amount_minor < 0 AND account_id IN (SELECT account_id FROM ledger_entry WHERE {old})
                   GROUP BY account_id, currency) cr ON cr.account_id = deb.account_id AND cr.currency = deb.currency
        WHERE deb.old_minor > COALESCE(cr.paid, 0)"""


def exclusion_sql(d: Dialect, run_date: date) -> tuple[str, dict[str, Any]]:
    """For debtors.exclusions: the accounts with prescribed debt on `run_date`."""
    return (f"SELECT p.account_id FROM ({prescribed_accounts_sql(d)}) p", {"presc_cutoff": d.bind_date(cutoff(run_date))})


def prescribed(session: Session, *, today: date, now: datetime, limit: int | None = 500) -> dict[str, Any]:
    """Accounts with prescribed debt on `today`, biggest first: account, status, prescribed amount, the oldest unpaid due
    date, the balance, and an open write-off if any; with totals per currency (over all rows, not only those listed)."""
    d = dialect_of(session)
    days = d.days("x.due", d.d("presc_cutoff"))
    sql = f"""
        WITH {open_debits_cte(d)},
        p AS (SELECT account_id, currency, SUM(open_minor) AS prescribed_minor, MIN(due) AS oldest_due
              FROM x WHERE open_minor > 0 AND {days} >= 0 GROUP BY account_id, currency),
        b AS (SELECT account_id, currency, SUM(amount_minor) AS balance_minor FROM ledger_entry
              WHERE account_id IN (SELECT account_id FROM p) GROUP BY account_id, currency)
        SELECT p.account_id, a.account_number, a.name, a.status, p.currency, p.prescribed_minor, p.oldest_due, b.balance_minor,
               w.id AS write_off_id, w.state AS write_off_state
        FROM p JOIN account a ON a.id = p.account_id
        JOIN b ON b.account_id = p.account_id AND b.currency = p.currency
        LEFT JOIN write_off w ON w.account_id = p.account_id AND w.state IN ('proposed', 'approved')
        ORDER BY p.prescribed_minor DESC, p.account_id"""
    cut = cutoff(today)
    rows = session.execute(text(sql), {"t": d.bind_ts(now), "presc_cutoff": d.bind_date(cut)}).all()
    totals: dict[str, dict[str, Any]] = {}
    out = []
    for r in rows:
        due = r.oldest_due if isinstance(r.oldest_due, date) else date.fromisoformat(str(r.oldest_due)[:10])
        t = totals.setdefault(r.currency, {"currency": r.currency, "accounts": 0, "prescribed_minor": 0, "balance_minor": 0})
        t["accounts"] += 1
        t["prescribed_minor"] += int(r.prescribed_minor)
        t["balance_minor"] += int(r.balance_minor)
        if limit is None or len(out) < limit:
            out.append({"account_id": r.account_id, "account_number": r.account_number, "account_name": r.name, "status": r.status,
                        "currency": r.currency, "prescribed_minor": int(r.prescribed_minor), "oldest_due": due,
                        "years_past_due": round((today - due).days / 365.25, 1), "balance_minor": int(r.balance_minor),
                        "write_off_id": r.write_off_id, "write_off_state": r.write_off_state})
    return {"today": today, "cutoff": cut, "rows": out, "totals": sorted(totals.values(), key=lambda t: t["currency"]),
            "count": len(rows), "shown": len(out)}
