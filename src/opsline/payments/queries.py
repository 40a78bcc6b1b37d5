"""Read models for the payments desk, the account page and the statement: one query per page section, plain dicts out."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from opsline.billing import service as billing
from opsline.core.errors import NotFound
from opsline.core.localtime import local_date
from opsline.db.base import sqlite_utc

AGE_BUCKETS = (("0–2 days", 0, 2), ("3–7 days", 3, 7), ("8–30 days", 8, 30), ("31–90 days", 31, 90), ("90+ days", 91, 10**6))


def bind_ts(session: Session, v: datetime) -> Any:
    """An instant as a bind parameter for raw SQL on either database (SQLite stores UTC text)."""
    return v if session.get_bind().dialect.name == "postgresql" else sqlite_utc(v)


def _age_days(now: datetime, opened: datetime) -> int:
    return max(0, (now - opened).days)


def desk_summary(session: Session, *, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """Counts for the desk header and the home cards."""
    start = datetime.combine(local_date(now, tz), datetime.min.time(), tzinfo=tz)
    r = session.execute(text("""
        SELECT (SELECT COUNT(*) FROM payment WHERE state = 'proposed') AS proposals,
               (SELECT COALESCE(SUM(amount_minor), 0) FROM payment WHERE state = 'proposed') AS proposals_minor,
               (SELECT COUNT(*) FROM suspense_item WHERE closed_at IS NULL) AS suspense,
               (SELECT COALESCE(SUM(amount_minor), 0) FROM suspense_item WHERE closed_at IS NULL) AS suspense_minor,
               (SELECT MIN(opened_at) FROM suspense_item WHERE closed_at IS NULL) AS oldest,
               (SELECT COUNT(*) FROM payment_refund WHERE state = 'requested') AS refunds,
               (SELECT COUNT(*) FROM debit_order_result d JOIN statement_file f ON f.id = d.statement_file_id
                 WHERE d.status = 'unpaid' AND f.imported_at >= :start) AS unpaids_today,
               (SELECT MIN(currency) FROM account) AS currency"""), {"start": bind_ts(session, start)}).one()
    oldest = r.oldest
    if isinstance(oldest, str):
        oldest = datetime.fromisoformat(oldest).replace(tzinfo=now.tzinfo)
    return {"proposals": int(r.proposals), "proposals_minor": int(r.proposals_minor), "suspense": int(r.suspense), "suspense_minor": int(r.suspense_minor),
            "oldest_days": _age_days(now, oldest) if oldest else None, "refunds": int(r.refunds), "unpaids_today": int(r.unpaids_today),
            "currency": r.currency or "XXX"}  # XXX: ISO 4217 "no currency", when there are no accounts yet


def suspense_ageing(session: Session, *, now: datetime) -> dict[str, Any]:
    """Open suspense by age bucket, and the Chart.js config that draws it."""
    rows = session.execute(text("SELECT opened_at, amount_minor FROM suspense_item WHERE closed_at IS NULL")).all()
    counts = [0] * len(AGE_BUCKETS)
    amounts = [0] * len(AGE_BUCKETS)
    for opened, amount in rows:
        if isinstance(opened, str):
            opened = datetime.fromisoformat(opened).replace(tzinfo=now.tzinfo)
        age = _age_days(now, opened)
        for k, (_, lo, hi) in enumerate(AGE_BUCKETS):
            if lo <= age <= hi:
                counts[k] += 1
                amounts[k] += int(amount)
    labels = [b[0] for b in AGE_BUCKETS]
    chart = {"type": "bar", "data": {"labels": labels, "datasets": [{"label": "Items in suspense", "data": counts, "backgroundColor": "#c0392b"}]},
             "options": {"plugins": {"legend": {"display": False}}, "scales": {"y": {"beginAtZero": True, "ticks": {"precision": 0}}}}}
    return {"buckets": [{"label": l, "count": c, "amount_minor": a} for l, c, a in zip(labels, counts, amounts)], "chart": chart}


def suspense_items(session: Session, *, now: datetime, q: str = "", owner: str = "", limit: int = 200) -> list[dict[str, Any]]:
    where, params = ["s.closed_at IS NULL"], {"n": limit}
    if q.strip():
        where.append("(LOWER(p.payer_name) LIKE :q OR LOWER(p.reference) LIKE :q OR p.payer_account LIKE :q)")
        params["q"] = f"%{q.strip().lower()}%"
    if owner.strip():
        where.append("s.owner = :o")
        params["o"] = owner.strip()
    rows = session.execute(text(f"""SELECT s.id, s.payment_id, s.amount_minor, s.currency, s.owner, s.opened_at, s.opened_reason, p.payer_name, p.payer_account,
                                   p.reference, p.received_on, (SELECT COUNT(*) FROM payment_refund r WHERE r.suspense_item_id = s.id AND r.state = 'requested')
                                   AS refund_pending
                                   FROM suspense_item s JOIN payment p ON p.id = s.payment_id WHERE {' AND '.join(where)}
                                   ORDER BY s.opened_at, s.id LIMIT :n"""), params).mappings().all()
    out = []
    for r in rows:
        d = dict(r)
        opened = d["opened_at"]
        if isinstance(opened, str):
            opened = datetime.fromisoformat(opened).replace(tzinfo=now.tzinfo)
        d["age_days"] = _age_days(now, opened)
        out.append(d)
    return out


def proposals(session: Session, *, limit: int = 200) -> list[dict[str, Any]]:
    """Payments waiting for a person, with their proposed allocations (rule, evidence, score)."""
    rows = session.execute(text("""SELECT p.id AS payment_id, p.amount_minor AS payment_minor, p.currency, p.received_on, p.payer_name, p.reference,
                                   a.id, a.account_id, a.invoice_id, a.amount_minor, a.rule_code, a.score, a.evidence, acc.account_number, acc.name AS account_name,
                                   i.number AS invoice_number
                                   FROM payment p JOIN payment_allocation a ON a.payment_id = p.id AND a.state = 'proposed'
                                   JOIN account acc ON acc.id = a.account_id LEFT JOIN invoice i ON i.id = a.invoice_id
                                   WHERE p.state = 'proposed' AND p.id IN (SELECT id FROM payment WHERE state = 'proposed' ORDER BY id LIMIT :n)
                                   ORDER BY p.id, a.id"""), {"n": limit}).mappings().all()
    out: dict[int, dict[str, Any]] = {}
    for r in rows:
        p = out.setdefault(r["payment_id"], {"id": r["payment_id"], "amount_minor": r["payment_minor"], "currency": r["currency"], "received_on": r["received_on"],
                                             "payer_name": r["payer_name"], "reference": r["reference"], "rule_code": r["rule_code"], "score": r["score"],
                                             "account_id": r["account_id"], "account_number": r["account_number"], "account_name": r["account_name"],
                                             "evidence": _json(r["evidence"]), "allocations": []})
        p["allocations"].append({"id": r["id"], "invoice_id": r["invoice_id"], "invoice_number": r["invoice_number"], "amount_minor": r["amount_minor"]})
    return list(out.values())


def _json(v: Any) -> dict[str, Any]:
    import json

    return json.loads(v) if isinstance(v, str) else dict(v or {})


def statement_files(session: Session, *, limit: int = 20) -> list[dict[str, Any]]:
    return [dict(r) for r in session.execute(text("""SELECT id, filename, format, bank, bank_account, currency, lines_count, new_lines_count, matched_count,
                                                    proposed_count, suspense_count, imported_at, imported_by FROM statement_file ORDER BY id DESC LIMIT :n"""),
                                             {"n": limit}).mappings()]


def payment_detail(session: Session, *, payment_id: int) -> dict[str, Any]:
    """A payment with its bank line, allocations (with evidence), suspense history, refunds and audit trail. Raises NotFound."""
    p = session.execute(text("""SELECT p.*, a.account_number, a.name AS account_name, l.bank_reference, l.bank_account, l.line_no, f.filename, f.id AS file_id
                               FROM payment p LEFT JOIN account a ON a.id = p.account_id LEFT JOIN statement_line l ON l.id = p.statement_line_id
                               LEFT JOIN statement_file f ON f.id = l.statement_file_id WHERE p.id = :p"""), {"p": payment_id}).mappings().first()
    if p is None:
        raise NotFound(f"payment {payment_id} not found")
    allocs = [dict(r) | {"evidence": _json(r["evidence"])} for r in session.execute(text(
        """SELECT x.*, a.account_number, i.number AS invoice_number FROM payment_allocation x JOIN account a ON a.id = x.account_id
           LEFT JOIN invoice i ON i.id = x.invoice_id WHERE x.payment_id = :p ORDER BY x.id"""), {"p": payment_id}).mappings()]
    items = [dict(r) for r in session.execute(text("SELECT * FROM suspense_item WHERE payment_id = :p ORDER BY id"), {"p": payment_id}).mappings()]
    refunds = [dict(r) for r in session.execute(text("SELECT * FROM payment_refund WHERE payment_id = :p ORDER BY id"), {"p": payment_id}).mappings()]
    audit = [dict(r) for r in session.execute(text(
        """SELECT occurred_at, actor, entity_type, entity_id, action, reason FROM audit_event
           WHERE (entity_type = 'payment' AND entity_id = :ps)
              OR (entity_type = 'allocation' AND entity_id IN (SELECT CAST(id AS VARCHAR(30)) FROM payment_allocation WHERE payment_id = :p))
              OR (entity_type = 'suspense_item' AND entity_id IN (SELECT CAST(id AS VARCHAR(30)) FROM suspense_item WHERE payment_id = :p))
              OR (entity_type = 'refund' AND entity_id IN (SELECT CAST(id AS VARCHAR(30)) FROM payment_refund WHERE payment_id = :p))
           ORDER BY id"""), {"p": payment_id, "ps": str(payment_id)}).mappings()]
    return {"payment": dict(p), "allocations": allocs, "suspense": items, "refunds": refunds, "audit": audit}


def account_search(session: Session, *, q: str, limit: int = 20) -> list[dict[str, Any]]:
    """Accounts by number or name, with what they owe, for allocating suspense money."""
    q = q.strip()
    if not q:
        return []
    digits = "".join(ch for ch in q if ch.isdigit())
    cond = "a.account_number = :d" if len(digits) == 10 else "LOWER(a.name) LIKE :n"
    rows = session.execute(text(f"""SELECT a.id, a.account_number, a.name, a.currency,
                                   COALESCE((SELECT SUM(amount_minor) FROM ledger_entry l WHERE l.account_id = a.id), 0) AS balance_minor
                                   FROM account a WHERE {cond} ORDER BY a.name LIMIT :lim"""),
                           {"d": digits, "n": f"%{q.lower()}%", "lim": limit}).mappings().all()
    return [dict(r) for r in rows]


def open_invoices(session: Session, *, account_id: int) -> list[dict[str, Any]]:
    """The account's issued invoices with an open amount (total − credit notes − allocations in force or proposed), oldest first."""
    rows = session.execute(text("""
        SELECT i.id, i.number, i.due_date, i.total_minor, i.currency,
               i.total_minor - COALESCE((SELECT SUM(c.total_minor) FROM credit_note c WHERE c.invoice_id = i.id), 0)
               - COALESCE((SELECT SUM(x.amount_minor) FROM payment_allocation x WHERE x.invoice_id = i.id AND x.state IN ('allocated','proposed')), 0) AS open_minor
        FROM invoice i WHERE i.account_id = :a AND i.number IS NOT NULL ORDER BY i.due_date, i.id"""), {"a": account_id}).mappings().all()
    return [dict(r) for r in rows if r["open_minor"] > 0]


def account_money(session: Session, *, account_id: int, now: datetime) -> dict[str, Any]:
    """The account page panel: balance, open items, credit, payments and their allocations."""
    bal = billing.account_balance(session, account_id=account_id, as_of=now)
    pays = [dict(r) for r in session.execute(text("""
        SELECT p.id, p.received_on, p.method, p.source, p.state, p.amount_minor, p.currency, p.reference, p.payer_name
        FROM payment p WHERE p.account_id = :a OR p.id IN (SELECT payment_id FROM payment_allocation WHERE account_id = :a)
        ORDER BY p.received_on DESC, p.id DESC LIMIT 20"""), {"a": account_id}).mappings()]
    allocs = [dict(r) | {"evidence": _json(r["evidence"])} for r in session.execute(text("""
        SELECT x.id, x.payment_id, x.invoice_id, i.number AS invoice_number, x.amount_minor, x.currency, x.state, x.rule_code, x.score, x.evidence,
               x.created_at, x.reversal_reason
        FROM payment_allocation x LEFT JOIN invoice i ON i.id = x.invoice_id WHERE x.account_id = :a ORDER BY x.id DESC LIMIT 30"""), {"a": account_id}).mappings()]
    from opsline.payments.refunds import available_credit_minor

    return {"balance": bal, "open_invoices": open_invoices(session, account_id=account_id), "payments": pays, "allocations": allocs,
            "credit_minor": available_credit_minor(session, account_id=account_id), "account_id": account_id}


def statement_payment_rows(session: Session, *, account_id: int, date_from: date, date_to: date) -> list[dict[str, Any]]:
    """Payments and their allocations for an account statement: one row per allocation in [date_from, date_to] (payment
    received date), with the invoice it paid, how it was matched and whether it was reversed."""
    pg = session.get_bind().dialect.name == "postgresql"
    rows = session.execute(text("""
        SELECT p.id AS payment_id, p.received_on, p.method, p.reference, x.id AS allocation_id, x.amount_minor, x.currency, x.state, x.rule_code,
               i.number AS invoice_number, x.reversal_reason
        FROM payment_allocation x JOIN payment p ON p.id = x.payment_id LEFT JOIN invoice i ON i.id = x.invoice_id
        WHERE x.account_id = :a AND x.state IN ('allocated','reversed') AND p.received_on >= :f AND p.received_on <= :t
        ORDER BY p.received_on, x.id"""), {"a": account_id, "f": date_from if pg else date_from.isoformat(),
                                            "t": date_to if pg else date_to.isoformat()}).mappings().all()
    return [dict(r) for r in rows]


def unpaids(session: Session, *, days: int, now: datetime) -> list[dict[str, Any]]:
    since = now - timedelta(days=days)
    return [dict(r) for r in session.execute(text("""
        SELECT d.id, d.collection_ref, d.account_id, a.account_number, a.name, d.amount_minor, d.currency, d.action_date, d.reason_code, r.description,
               d.payment_id, d.fee_charge_id, f.imported_at
        FROM debit_order_result d JOIN statement_file f ON f.id = d.statement_file_id JOIN account a ON a.id = d.account_id
        LEFT JOIN payment_unpaid_reason r ON r.code = d.reason_code
        WHERE d.status = 'unpaid' AND f.imported_at >= :s ORDER BY d.id DESC LIMIT 200"""), {"s": bind_ts(session, since)}).mappings()]
