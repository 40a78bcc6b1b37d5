"""The billing desk's home cards: the current bill run, drafts waiting for review or approval, flagged variances,
open claims by age and invoiced totals by month (a Chart.js bar chart)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from opsline.areas import HomeCard
from opsline.billing.periods import add_months
from opsline.billing.charges import dialect_of
from opsline.billing.models import BillRunState
from opsline.billing.invoicing.models import OPEN_CLAIM_STATES
from opsline.core.events import Actor
from opsline.core.localtime import local_date, zone

DESKS = ("billing_analyst",)
WAITING = (BillRunState.DRAFT, BillRunState.REVIEW, BillRunState.APPROVED)


def cards(session: Session, *, now: datetime, actor: Actor, tz: Any) -> list[HomeCard]:
    """Cards for the billing analyst's desk (one query per card)."""
    dia = dialect_of(session)
    today = local_date(now, zone(tz) if isinstance(tz, str) else tz)
    out: list[HomeCard] = []
    cur = session.execute(text("SELECT id, cycle_date, state, shards_done, shard_count, dry_run FROM bill_run WHERE state <> 'rolled_back' "
                               "ORDER BY cycle_date DESC, id DESC LIMIT 1")).mappings().first()
    if cur is None:
        out.append(HomeCard(desks=DESKS, title="Current bill run", count="none", href="/billing/runs", permission="billing.view", hint="no bill run yet", order=10))
    else:
        hint = f"cycle {cur['cycle_date']}" + (f", {cur['shards_done']}/{cur['shard_count']} shards" if cur["state"] == BillRunState.DRAFT_RUNNING else "")
        out.append(HomeCard(desks=DESKS, title="Current bill run", count=str(cur["state"]).replace("_", " "), href=f"/billing/runs/{cur['id']}",
                            permission="billing.view", hint=hint + (" (dry run)" if cur["dry_run"] else ""),
                            tone="danger" if cur["state"] == BillRunState.FAILED else "normal", order=10))
    waiting = session.execute(text("SELECT state, COUNT(*) AS n, MIN(created_at) AS oldest FROM bill_run WHERE state IN ('draft', 'review', 'approved') "
                                   "GROUP BY state")).mappings().all()
    by_state = {r["state"]: int(r["n"]) for r in waiting}
    n_wait = sum(by_state.values())
    out.append(HomeCard(desks=DESKS, title="Bill runs awaiting review or approval", count=n_wait, href="/billing/runs", permission="billing.view",
                        hint=", ".join(f"{n} {s}" for s, n in sorted(by_state.items())) or "nothing waiting", tone="warn" if n_wait else "normal", order=20))
    flagged = session.execute(text("SELECT id, flagged_count FROM bill_run WHERE state IN ('draft', 'review') AND flagged_count IS NOT NULL "
                                   "ORDER BY cycle_date DESC, id DESC LIMIT 1")).first()
    if flagged is not None:
        out.append(HomeCard(desks=DESKS, title="Unexplained variances", count=int(flagged[1]), href=f"/billing/runs/{flagged[0]}#diff",
                            permission="billing.view", hint="in the draft awaiting review", tone="warn" if flagged[1] else "normal", order=30))
    states = ", ".join(f"'{s}'" for s in OPEN_CLAIM_STATES)
    ages = session.execute(text(
        f"SELECT SUM(CASE WHEN due_date < {dia.d('today')} THEN 1 ELSE 0 END) AS overdue, COUNT(*) AS n, MIN(raised_at) AS oldest "
        f"FROM billing_claim WHERE state IN ({states})"), {"today": dia.bind_date(today)}).mappings().one()
    n_claims, overdue = int(ages["n"] or 0), int(ages["overdue"] or 0)
    out.append(HomeCard(desks=DESKS, title="Open billing claims", count=n_claims, href="/billing/claims?open=1", permission="billing.view",
                        hint=(f"{overdue} past their due date" if overdue else "none overdue") + (f"; oldest raised {_day(ages['oldest'])}" if n_claims else ""),
                        tone="danger" if overdue else "normal", order=40))
    start = add_months(today.replace(day=1), -11)
    month = "to_char(period_start, 'YYYY-MM')" if dia.pg else "strftime('%Y-%m', period_start)"
    rows = session.execute(text(
        f"SELECT {month} AS m, currency, SUM(total_minor) AS total FROM invoice WHERE number IS NOT NULL AND period_start >= {dia.d('start')} "
        f"GROUP BY 1, currency ORDER BY 1"), {"start": dia.bind_date(start)}).all()
    labels = sorted({r[0] for r in rows})
    datasets = []
    for c in sorted({r[1] for r in rows}):
        vals = {r[0]: int(r[2]) for r in rows if r[1] == c}
        datasets.append({"label": f"Invoiced ({c})", "data": [round(vals.get(m, 0) / 100, 2) for m in labels]})
    total_last = sum(d["data"][-1] for d in datasets) if labels else 0
    out.append(HomeCard(desks=DESKS, title="Invoiced by month", count=f"{total_last:,.2f}" if labels else 0, href="/billing/invoices",
                        permission="billing.view", hint=f"latest month {labels[-1]}" if labels else "no invoices yet",
                        chart={"type": "bar", "data": {"labels": labels, "datasets": datasets}, "options": {"plugins": {"legend": {"display": True}}}}, order=50))
    return out


def _day(v: Any) -> str:
    if isinstance(v, datetime):
        return v.date().isoformat()
    if isinstance(v, date):
        return v.isoformat()
    return str(v)[:10] if v else ""
