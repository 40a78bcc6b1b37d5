"""Clean-up checks (issue 12 item 10): the loose ends a cancellation can leave, each one set-based query with a count,
a list and an export, run by hand from /logistics/checks or by the daily job (which keeps the counts for the trend):
products terminated here but still active at the FNO, lines active at the FNO with no active product here, loaned
equipment awaiting return with no collection booked, terminated products still billed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from opsline.core.events import Actor
from opsline.logistics.models import OPEN_COLLECTION_STATES, CleanupRun

_OPEN = ", ".join(f"'{s}'" for s in OPEN_COLLECTION_STATES)

# key -> (title, what to do, FROM/WHERE clause, columns: entity id, account, detail)
CHECKS: dict[str, tuple[str, str, str, str]] = {
    "terminated_at_fno": (
        "Terminated here, still active at the FNO",
        "Send or chase the FNO deactivation; every day costs the wholesale line fee.",
        """FROM product p JOIN partner pa ON pa.code = p.partner_code AND pa.kind = 'fno' JOIN account a ON a.id = p.account_id
           WHERE p.state = 'terminated' AND p.start_date IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM partner_service_order so WHERE so.product_id = p.id AND so.action = 'delete' AND so.state = 'completed')""",
        "p.id AS entity_id, p.account_id, a.account_number, pa.name || ' line ' || COALESCE(p.partner_line_ref, '?') || ', ended ' || COALESCE(CAST(p.end_date AS VARCHAR(10)), '?') AS detail",
    ),
    "fno_without_product": (
        "Active at the FNO, no active product here",
        "The FNO activated a line we never activated (or abandoned): activate the product or cease the line.",
        """FROM product p JOIN partner pa ON pa.code = p.partner_code AND pa.kind = 'fno' JOIN account a ON a.id = p.account_id
           WHERE p.start_date IS NULL AND p.state IN ('created', 'pendingActive', 'terminated')
             AND EXISTS (SELECT 1 FROM partner_service_order so WHERE so.product_id = p.id AND so.action = 'add' AND so.state = 'completed')
             AND NOT EXISTS (SELECT 1 FROM partner_service_order so WHERE so.product_id = p.id AND so.action = 'delete' AND so.state = 'completed')""",
        "p.id AS entity_id, p.account_id, a.account_number, pa.name || ' line ' || COALESCE(p.partner_line_ref, '?') || ' (product ' || p.state || ')' AS detail",
    ),
    "awaiting_no_collection": (
        "Equipment awaiting return, no collection booked",
        "Book a collection (or a courier run) so the device comes back before the unreturned fee.",
        f"""FROM equipment e JOIN account a ON a.id = e.account_id
           WHERE e.state = 'awaiting_return' AND e.owner = 'isp_loaned'
             AND NOT EXISTS (SELECT 1 FROM collection_item ci JOIN collection c ON c.id = ci.collection_id
                             WHERE ci.equipment_id = e.id AND c.state IN ({_OPEN}))""",
        "e.id AS entity_id, e.account_id, a.account_number, e.model || ' ' || e.serial_number AS detail",
    ),
    "terminated_still_billed": (
        "Terminated products still billed",
        "Recurring charges for days after the end date that no correction has credited: check the next bill run.",
        """FROM product p JOIN account a ON a.id = p.account_id
           JOIN (SELECT l.product_id, SUM(l.amount_minor) AS billed FROM invoice_line l JOIN invoice i ON i.id = l.invoice_id JOIN product p2 ON p2.id = l.product_id
                 WHERE i.state <> 'draft' AND p2.state = 'terminated' AND p2.end_date IS NOT NULL AND l.period_start >= p2.end_date
                   AND l.kind IN ('recurring', 'adjustment')
                 GROUP BY l.product_id HAVING SUM(l.amount_minor) > 0) b ON b.product_id = p.id""",
        "p.id AS entity_id, p.account_id, a.account_number, 'billed ' || CAST(b.billed AS VARCHAR(20)) || ' minor after ' || CAST(p.end_date AS VARCHAR(10)) AS detail",
    ),
}


def counts(session: Session) -> dict[str, int]:
    """Every check's count, one query each."""
    return {k: int(session.execute(text(f"SELECT COUNT(*) {frm}")).scalar_one()) for k, (_, _, frm, _) in CHECKS.items()}


def rows(session: Session, *, key: str, limit: int | None = 200) -> list[dict[str, Any]]:
    """The items one check finds (oldest first). Raises KeyError for an unknown check (the views answer 404)."""
    title, _, frm, cols = CHECKS[key]
    sql = f"SELECT {cols} {frm} ORDER BY 1" + (" LIMIT :limit" if limit else "")
    return [dict(r._mapping) for r in session.execute(text(sql), {"limit": limit} if limit else {}).all()]


def run(session: Session, *, now: datetime, actor: Actor) -> dict[str, int]:
    """Run every check and keep the counts (the daily job and the page's 'run now')."""
    c = counts(session)
    session.add(CleanupRun(ran_at=now, ran_by=actor.name, counts=c))
    session.flush()
    return c


def page(session: Session, *, key: str | None = None) -> dict[str, Any]:
    c = counts(session)
    from sqlalchemy import select

    last = list(session.execute(select(CleanupRun).order_by(CleanupRun.id.desc()).limit(14)).scalars())
    checks = [{"key": k, "title": t, "hint": h, "count": c[k]} for k, (t, h, _, _) in CHECKS.items()]
    chart = None
    if last:
        runs = list(reversed(last))
        chart = {"type": "line", "data": {"labels": [r.ran_at.strftime("%m-%d %H:%M") for r in runs],
                                          "datasets": [{"label": CHECKS[k][0], "data": [int((r.counts or {}).get(k, 0)) for r in runs]} for k in CHECKS]},
                 "options": {"plugins": {"legend": {"position": "bottom"}}}}
    return {"checks": checks, "key": key, "items": rows(session, key=key) if key else [], "title": CHECKS[key][0] if key else None,
            "last_run": last[0].ran_at if last else None, "chart": chart}
