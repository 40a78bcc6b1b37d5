"""Reconnection when arrears are cleared: a job subscriber to the payments settled events and to an arrangement
becoming active. An account that dunning suspended, with nothing overdue left (or under an active arrangement), is
reconnected through the customers account lifecycle; its `account.active` event resumes the products, sends the
resume order to the FNO and queues the reconnection fee per the billing policy, so none of that is repeated here.
Also the desk list of suspended accounts with their arrears and days suspended."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Iterable

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from opsline.billing.sql import Dialect
from opsline.config import get_settings
from opsline.core import jobs
from opsline.core.batching import pages
from opsline.core.domain_events import DomainEvent
from opsline.core.events import Actor
from opsline.core.localtime import local_date, zone
from opsline.core.money import Money
from opsline.customers import service as customers
from opsline.customers.models import AccountStatus
from opsline.customers.schemas import MemoIn
from opsline.debtors import arrangements

DUNNING_ACTOR = "system:dunning"  # who suspends for non-payment (debtors.actions.SYSTEM)
SYSTEM = Actor.system("debtors")
RECONNECT_JOB = "debtors.reconnect"  # {"account_id"}: reconnect one account if its arrears are cleared


def _active_arrangement(session: Session, account_id: int) -> int | None:
    return session.execute(text("SELECT id FROM arrangement WHERE account_id = :a AND state = 'active' ORDER BY id DESC LIMIT 1"),
                           {"a": account_id}).scalar()


def suspended_by_dunning_among(session: Session, account_ids: Iterable[int]) -> list[int]:
    """Which of these accounts are suspended now, their latest suspension dunning's (not a person's, e.g. for fraud):
    one query per 1,000 ids (a statement import settles thousands of accounts, of which a handful are suspended)."""
    ids = sorted({int(a) for a in account_ids if a is not None})
    q = text("""SELECT a.id FROM account a WHERE a.status = :s AND a.id IN :ids
                AND (SELECT e.actor FROM audit_event e WHERE e.entity_type = 'account' AND e.account_id = a.id AND e.action = 'suspend'
                     ORDER BY e.occurred_at DESC, e.id DESC LIMIT 1) = :who ORDER BY a.id""").bindparams(bindparam("ids", expanding=True))
    return [int(i) for part in pages(ids, 1000)
            for i in session.execute(q, {"s": AccountStatus.SUSPENDED.value, "who": DUNNING_ACTOR, "ids": part}).scalars()]


def reconnect_if_cleared(session: Session, *, account_ids: Iterable[int], now: datetime) -> list[int]:
    """Reconnect each account suspended by dunning whose arrears are cleared or that has an active arrangement; memo on
    the account. Idempotent: an account no longer suspended is left alone. Returns the reconnected ids."""
    return _reconnect_cleared(session, suspended_by_dunning_among(session, account_ids), now=now)


def _reconnect_cleared(session: Session, suspended: list[int], *, now: datetime) -> list[int]:
    """reconnect_if_cleared for accounts already known to be suspended by dunning (suspended_by_dunning_among)."""
    today = local_date(now, zone(get_settings().timezone))
    done: list[int] = []
    for acc_id in suspended:
        owed = arrangements.overdue_minor(session, account_id=acc_id, today=today, now=now)
        arr = _active_arrangement(session, acc_id) if owed > 0 else None
        if owed > 0 and arr is None:
            continue
        why = "arrears cleared" if owed <= 0 else f"arrangement ARR-{arr} approved"
        customers.transition_account(session, account_id=acc_id, action="reconnect", now=now, actor=SYSTEM, reason=f"debtors: {why}")
        customers.add_memo(session, account_id=acc_id, data=MemoIn(category="debtors", body=f"Reconnection queued: {why} (services resume, the FNO is told, "
                                                                                           f"the reconnection fee follows the policy)"), now=now, actor=SYSTEM)
        done.append(acc_id)
    return done


def on_settled(session: Session, event: DomainEvent, now: datetime) -> None:
    """`payments.invoice_settled` ({"id", "account_id"}) and `payments.invoices_settled` ({"ids", "account_ids"}).
    Settlements of several suspended accounts (a statement import) fan out into one RECONNECT_JOB per account, so each
    reconnection (account lifecycle, products resumed, FNO resume orders, fee) commits on its own: one transaction over
    them all held their account rows locked for seconds, and every case note or order on those accounts waited."""
    p = event.payload
    ids = p.get("account_ids") or ([p["account_id"]] if p.get("account_id") is not None else [])
    suspended = suspended_by_dunning_among(session, ids)
    if len(suspended) <= 1:
        _reconnect_cleared(session, suspended, now=now)
        return
    for acc_id in suspended:
        jobs.enqueue(session, kind=RECONNECT_JOB, payload={"account_id": acc_id}, now=now, serial_key=f"account:{acc_id}")


def reconnect_job(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    """RECONNECT_JOB: one account's reconnection check (idempotent, like reconnect_if_cleared)."""
    return {"reconnected": reconnect_if_cleared(session, account_ids=[int(payload["account_id"])], now=now)}


def on_arrangement_active(session: Session, event: DomainEvent, now: datetime) -> None:
    """`arrangement.active`: an approved arrangement lets a suspended account back on."""
    if event.payload.get("account_id") is not None:
        reconnect_if_cleared(session, account_ids=[event.payload["account_id"]], now=now)


def suspended_accounts(session: Session, *, today: date, now: datetime, limit: int = 500) -> list[dict[str, Any]]:
    """Suspended accounts with their arrears and days suspended, longest suspended first (one query for the list)."""
    from opsline.billing.service import open_debits_cte

    d = Dialect(session.get_bind().dialect.name)
    rows = session.execute(text(f"""
        WITH {open_debits_cte(d)},
        owed AS (SELECT account_id, SUM(CASE WHEN due < {d.d('today')} THEN open_minor ELSE 0 END) AS overdue, SUM(open_minor) AS balance
                 FROM x GROUP BY account_id),
        susp AS (SELECT e.account_id, MAX(e.occurred_at) AS since FROM audit_event e
                 WHERE e.entity_type = 'account' AND e.action = 'suspend' GROUP BY e.account_id)
        SELECT a.id, a.account_number, a.name, a.currency, s.since, COALESCE(o.overdue, 0) AS overdue, COALESCE(o.balance, 0) AS balance,
               (SELECT e2.actor FROM audit_event e2 WHERE e2.entity_type = 'account' AND e2.action = 'suspend' AND e2.account_id = a.id
                ORDER BY e2.occurred_at DESC, e2.id DESC LIMIT 1) AS suspended_by,
               (SELECT MAX(g.id) FROM arrangement g WHERE g.account_id = a.id AND g.state IN ('proposed', 'active')) AS arrangement_id
        FROM account a LEFT JOIN susp s ON s.account_id = a.id LEFT JOIN owed o ON o.account_id = a.id
        WHERE a.status = 'suspended'
        ORDER BY s.since, a.id LIMIT :n"""), {"t": d.bind_ts(now), "today": d.bind_date(today), "n": limit}).all()
    out = []
    for r in rows:
        since = r.since if isinstance(r.since, datetime) else (datetime.fromisoformat(str(r.since)) if r.since else None)
        out.append({"id": int(r.id), "account_number": r.account_number, "name": r.name, "overdue": str(Money.from_minor(int(r.overdue), r.currency)),
                    "overdue_minor": int(r.overdue), "balance": str(Money.from_minor(int(r.balance), r.currency)),
                    "since": since.date() if since else None, "days_suspended": (today - since.date()).days if since else None,
                    "by_dunning": r.suspended_by == DUNNING_ACTOR, "suspended_by": r.suspended_by or "",
                    "arrangement_id": int(r.arrangement_id) if r.arrangement_id else None})
    return out
