"""Demo revenue assurance: Openserve's invoice for last month, built the way an FNO writes it (one CSV row per line it
thinks is live, at its wholesale price) with a few realistic errors, then imported through the real import: three lines
billed after we cancelled them (those with a cancellation journey first), two billed above the wholesale cost, two live lines forgotten. `invoice_csv` builds
the same file for any month (tests, or trying the upload page)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import text

from opsline.assurance import service
from opsline.billing.sql import dialect_of
from opsline.config import get_settings
from opsline.core.events import Actor
from opsline.core.localtime import local_date, zone
from opsline.db.session import make_sessionmaker

ANALYST = Actor(name="billing", roles=frozenset({"billing_analyst"}))
PARTNER = "openserve"


def invoice_csv(session: Any, *, period: date, partner_code: str = PARTNER) -> tuple[bytes, dict[str, int]]:
    """The CSV an FNO would send for `period`, with the planted errors; returns (bytes, what was planted)."""
    dia = dialect_of(session)
    ps, pe = period, service.next_month(period)
    p = {"pc": partner_code, "ps": dia.bind_date(ps), "pe": dia.bind_date(pe)}
    cost = (f"COALESCE((SELECT pr.amount_minor FROM price pr WHERE pr.offering_id = q.offering_id AND pr.kind = 'wholesale_cost' "
            f"AND pr.valid_from <= {dia.d('ps')} ORDER BY pr.valid_from DESC LIMIT 1), pa.monthly_line_cost_minor)")
    live = session.execute(text(
        f"SELECT q.partner_line_ref AS ref, MAX({cost}) AS cost FROM product q JOIN partner pa ON pa.code = q.partner_code "
        f"WHERE q.partner_code = :pc AND q.partner_line_ref IS NOT NULL AND q.start_date <= {dia.d('ps')} "
        f"AND (q.end_date IS NULL OR q.end_date >= {dia.d('pe')}) GROUP BY q.partner_line_ref ORDER BY q.partner_line_ref"), p).all()
    ended = session.execute(text(
        f"SELECT q.partner_line_ref AS ref, MAX({cost}) AS cost FROM product q JOIN partner pa ON pa.code = q.partner_code "
        f"WHERE q.partner_code = :pc AND q.partner_line_ref IS NOT NULL AND q.end_date IS NOT NULL AND q.end_date <= {dia.d('ps')} "
        f"AND NOT EXISTS (SELECT 1 FROM product r WHERE r.partner_code = q.partner_code AND r.partner_line_ref = q.partner_line_ref "
        f"AND (r.end_date IS NULL OR r.end_date > {dia.d('ps')})) GROUP BY q.partner_line_ref ORDER BY MAX(CASE WHEN EXISTS (SELECT 1 FROM cancellation_journey j WHERE j.product_id = q.id) THEN 1 ELSE 0 END) DESC, MAX(q.end_date) DESC LIMIT 3"), p).all()
    rows: list[tuple[str, int]] = []
    forgotten = min(2, max(0, len(live) - 3))
    for i, r in enumerate(live[forgotten:]):
        rows.append((r.ref, int(r.cost) + (2500 if i in (1, 4) else 0)))  # two lines at R25 above the price list
    rows += [(r.ref, int(r.cost)) for r in ended]  # still billing lines we cancelled
    body = "line_id,period,amount\n" + "".join(f"{ref},{period:%Y-%m},{amount // 100}.{amount % 100:02d}\n" for ref, amount in rows)
    return body.encode(), {"lines": len(rows), "ended": len(ended), "overpriced": min(2, len(live) - forgotten), "forgotten": forgotten}


def run(ctx: Any) -> None:
    tz = zone(get_settings().timezone)
    today = local_date(ctx.now, tz)
    period = date(today.year - (today.month == 1), (today.month - 2) % 12 + 1, 1)
    with make_sessionmaker(ctx.engine).begin() as s:
        data, planted = invoice_csv(s, period=period)
        if planted["lines"] == 0:
            return
        name = f"demo-{PARTNER}-invoice-{period:%Y-%m}.csv"
        r = service.import_invoice(s, partner_code=PARTNER, period=period, file_name=name, data=data, now=ctx.now, actor=ANALYST)
    ctx.counts["partner invoice findings"] = r["findings"]
