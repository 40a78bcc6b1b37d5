"""Read side of the TMF621 Trouble Ticket API: one page of cases with everything a ticket shows, in a fixed number
of queries whatever the page size (no N+1)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsline.cases.models import CaseEvent, CaseLink, CaseNote, SupportCase
from opsline.api.tmf import sort_clauses
from opsline.customers.models import Account
from opsline.users.models import User


def ticket_rows(session: Session, *, case_ids: list[int]) -> list[dict[str, Any]]:
    """Every ticket's case fields, account, assignee, status history, notes and links, in `case_ids` order
    (5 queries in all). Unknown ids are left out."""
    if not case_ids:
        return []
    cases = {c.id: c for c in session.execute(select(SupportCase).where(SupportCase.id.in_(case_ids))).scalars()}
    acc_ids = {c.account_id for c in cases.values() if c.account_id}
    user_ids = {c.assignee_user_id for c in cases.values() if c.assignee_user_id}
    accounts = {i: (n, num) for i, n, num in session.execute(select(Account.id, Account.name, Account.account_number).where(Account.id.in_(acc_ids)))} if acc_ids else {}
    users = dict(session.execute(select(User.id, User.full_name).where(User.id.in_(user_ids))).all()) if user_ids else {}
    changes: dict[int, list[dict[str, Any]]] = defaultdict(list)
    tmf: dict[int, dict[str, Any]] = defaultdict(dict)  # TMF621 attributes kept as sent (opening), the latest severity given
    for cid, kind, at, to, reason, data in session.execute(
            select(CaseEvent.case_id, CaseEvent.kind, CaseEvent.at, CaseEvent.to_value, CaseEvent.reason, CaseEvent.data)
            .where(CaseEvent.case_id.in_(case_ids), CaseEvent.kind.in_(("opened", "state", "priority"))).order_by(CaseEvent.case_id, CaseEvent.id)):
        if kind == "opened":
            tmf[cid].update((data or {}).get("tmf") or {})
        elif kind == "priority":
            if data and "severity" in data:
                tmf[cid]["severity"] = data["severity"]
            continue
        if to is not None:
            changes[cid].append({"status": to, "at": at, "reason": reason})
    notes: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for n in session.execute(select(CaseNote).where(CaseNote.case_id.in_(case_ids)).order_by(CaseNote.case_id, CaseNote.id)).scalars():
        notes[n.case_id].append({"id": n.id, "author": n.author, "at": n.at, "body": n.body})
    links: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for cid, t, i, r, d in session.execute(select(CaseLink.case_id, CaseLink.target_type, CaseLink.target_id, CaseLink.target_ref, CaseLink.data)
                                           .where(CaseLink.case_id.in_(case_ids)).order_by(CaseLink.case_id, CaseLink.id)):
        links[cid].append({"target_type": t, "target_id": i, "target_ref": r, "data": d or {}})
    out = []
    for cid in case_ids:
        c = cases.get(cid)
        if c is None:
            continue
        name, number = accounts.get(c.account_id, (None, None)) if c.account_id else (None, None)
        out.append({"case": c, "account_name": name, "account_number": number, "assignee": users.get(c.assignee_user_id),
                    "changes": changes[cid], "notes": notes[cid], "links": links[cid], "tmf": tmf[cid]})
    return out


SORT = {"id": SupportCase.id, "creationDate": SupportCase.opened_at, "lastUpdate": SupportCase.updated_at, "status": SupportCase.state,
        "priority": SupportCase.priority, "name": SupportCase.subject, "ticketType": SupportCase.category_code, "resolutionDate": SupportCase.resolved_at}


def ticket_page(session: Session, *, status: str | None = None, priority: int | None = None, ticket_type: str | None = None,
                account_id: int | None = None, name: str | None = None, channel: str | None = None, sort: str | None = None,
                offset: int = 0, limit: int = 50) -> tuple[list[dict[str, Any]], int]:
    """One page of tickets, newest first unless `sort` (TMF630: `-creationDate,priority`) says otherwise, with the
    total matching the filters; everything in SQL. Raises UnsortableAttribute (400) for an attribute that cannot be sorted on."""
    order = sort_clauses(sort, SORT, default=[SupportCase.id.desc()], tiebreak=SupportCase.id.desc())
    conds = []
    if name:
        conds.append(func.lower(SupportCase.subject).like(f"%{name.strip().lower()}%"))
    if channel:
        conds.append(SupportCase.channel == channel)
    if status:
        conds.append(SupportCase.state == status)
    if priority:
        conds.append(SupportCase.priority == priority)
    if ticket_type:
        conds.append(SupportCase.category_code == ticket_type)
    if account_id is not None:
        conds.append(SupportCase.account_id == account_id)
    total = session.execute(select(func.count(SupportCase.id)).where(*conds)).scalar_one()
    ids = list(session.execute(select(SupportCase.id).where(*conds).order_by(*order).offset(offset).limit(limit)).scalars())
    return ticket_rows(session, case_ids=ids), total
