"""Read side of cases: work queues sorted by breach risk, case detail with SLA clocks, account panel, FCR report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case as sql_case
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from opsline.cases.models import (
    CHANNELS, NOTE_VISIBILITY, OPEN_STATES, CaseAttachment, CaseCategory, CaseEvent, CaseLink, CaseNote, CaseState, Queue, QueueMember,
    RetentionOffer, SalesLead, SupportCase,
)
from opsline.cases.service import ACTION_LABELS, allowed_actions, get_case, sla_module
from opsline.customers.models import Account, ValueTier
from opsline.users.models import User

PAGE_SIZE = 50
CANDIDATES = 500  # cases ranked by breach risk per page view; the rest follow by priority
TABS = ("mine", "team", "breaching", "all")


def _clocks(session: Session, *, case_id: int, now: datetime) -> list[dict[str, Any]]:
    mod = sla_module()
    fn = getattr(mod, "case_clocks", None) if mod else None
    if fn is None:
        return []
    try:
        with session.begin_nested():
            out = list(fn(session, case_id=case_id, now=now))
    except Exception:  # noqa: BLE001 - the page still works when the SLA engine cannot answer
        return []
    for c in out:
        pct = float(c.get("percent") or 0)
        c["width"] = max(0.0, min(pct, 100.0))
        c["css"] = "bad" if pct >= 100 else "warn" if pct >= 75 else ""
    return out


def _risks(session: Session, *, case_ids: list[int], now: datetime) -> dict[int, float]:
    mod = sla_module()
    fn = getattr(mod, "breach_risk", None) if mod else None
    if fn is None or not case_ids:
        return {}
    try:
        with session.begin_nested():
            return {int(k): float(v) for k, v in fn(session, case_ids=case_ids, now=now).items()}
    except Exception:  # noqa: BLE001
        return {}


def reference_data(session: Session) -> dict[str, Any]:
    return {
        "categories": [{"code": c, "name": n} for c, n in session.execute(select(CaseCategory.code, CaseCategory.name).order_by(CaseCategory.name))],
        "queues": [{"id": i, "code": c, "name": n, "is_escalation": e} for i, c, n, e in
                   session.execute(select(Queue.id, Queue.code, Queue.name, Queue.is_escalation).where(Queue.active.is_(True)).order_by(Queue.name))],
        "users": [{"id": i, "username": u, "full_name": f} for i, u, f in session.execute(select(User.id, User.username, User.full_name).where(User.active.is_(True)).order_by(User.full_name))],
        "states": [s.value for s in CaseState],
        "channels": list(CHANNELS),
        "visibilities": list(NOTE_VISIBILITY),
    }


def _base_select():  # type: ignore[no-untyped-def]
    assignee = aliased(User)
    return select(
        SupportCase.id, SupportCase.reference, SupportCase.subject, SupportCase.state, SupportCase.priority, SupportCase.value_tier_code,
        SupportCase.category_code, SupportCase.opened_at, SupportCase.updated_at, SupportCase.litigation_risk, SupportCase.brand_risk,
        SupportCase.account_id, SupportCase.channel, SupportCase.reopen_count, SupportCase.third_party_partner_code,
        Queue.name.label("queue_name"), Queue.code.label("queue_code"), assignee.full_name.label("assignee"), Account.name.label("account_name"),
        func.coalesce(ValueTier.rank, 1000).label("tier_rank"),
    ).join(Queue, Queue.id == SupportCase.queue_id).outerjoin(assignee, assignee.id == SupportCase.assignee_user_id) \
        .outerjoin(Account, Account.id == SupportCase.account_id).outerjoin(ValueTier, ValueTier.code == SupportCase.value_tier_code)


def work_queue(session: Session, *, now: datetime, user_id: int | None, tab: str = "mine", state: str | None = None, category: str | None = None,
               queue: str | None = None, priority: int | None = None, page: int = 1) -> dict[str, Any]:
    """Cases for a tab (mine / team / breaching / all) with filters, ranked by SLA breach risk, then priority,
    then value tier. Open cases only unless a state filter says otherwise."""
    tab = tab if tab in TABS else "mine"
    q = _base_select()
    if state:
        q = q.where(SupportCase.state == state)
    else:
        q = q.where(SupportCase.state.in_([s.value for s in OPEN_STATES]))
    if category:
        q = q.where(SupportCase.category_code == category)
    if queue:
        q = q.where(Queue.code == queue)
    if priority:
        q = q.where(SupportCase.priority == priority)
    if tab == "mine":
        q = q.where(SupportCase.assignee_user_id == (user_id or -1))
    elif tab == "team":
        my_queues = select(QueueMember.queue_id).where(QueueMember.user_id == (user_id or -1), QueueMember.active.is_(True))
        q = q.where(SupportCase.queue_id.in_(my_queues))
    total = session.execute(select(func.count()).select_from(q.order_by(None).subquery())).scalar_one()
    rows = [dict(r._mapping) for r in session.execute(q.order_by(SupportCase.priority, func.coalesce(ValueTier.rank, 1000), SupportCase.opened_at).limit(CANDIDATES))]
    risks = _risks(session, case_ids=[r["id"] for r in rows], now=now)
    for r in rows:
        r["risk"] = risks.get(r["id"], 0.0)
        r["breaching"] = r["risk"] >= 0.5
    rows.sort(key=lambda r: (-round(r["risk"], 3), r["priority"], r["tier_rank"], r["opened_at"]))
    if tab == "breaching":
        # a running clock at 75% or more counts too, even when the predicted risk is still below half
        for r in [r for r in rows if not r["breaching"] and r["risk"] > 0][:100]:
            r["breaching"] = any(k.get("state") == "running" and float(k.get("percent") or 0) >= 75 for k in _clocks(session, case_id=r["id"], now=now))
        rows = [r for r in rows if r["breaching"]]
        total = len(rows)
    page = max(1, page)
    items = rows[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
    return {"items": items, "total": total, "page": page, "pages": max(1, -(-min(total, len(rows)) // PAGE_SIZE)), "tab": tab}


def tab_counts(session: Session, *, user_id: int | None) -> dict[str, int]:
    open_states = [s.value for s in OPEN_STATES]
    mine = session.execute(select(func.count(SupportCase.id)).where(SupportCase.assignee_user_id == (user_id or -1), SupportCase.state.in_(open_states))).scalar_one()
    my_queues = select(QueueMember.queue_id).where(QueueMember.user_id == (user_id or -1), QueueMember.active.is_(True))
    team = session.execute(select(func.count(SupportCase.id)).where(SupportCase.queue_id.in_(my_queues), SupportCase.state.in_(open_states))).scalar_one()
    every = session.execute(select(func.count(SupportCase.id)).where(SupportCase.state.in_(open_states))).scalar_one()
    return {"mine": mine, "team": team, "all": every}


def case_dict(session: Session, c: SupportCase) -> dict[str, Any]:
    queue = session.get(Queue, c.queue_id)
    assignee = session.get(User, c.assignee_user_id) if c.assignee_user_id else None
    acc = session.get(Account, c.account_id) if c.account_id else None
    cat = session.get(CaseCategory, c.category_code)
    tier = session.get(ValueTier, c.value_tier_code) if c.value_tier_code else None
    return {
        "id": c.id, "reference": c.reference, "account_id": c.account_id, "account_name": acc.name if acc else None,
        "account_number": acc.account_number if acc else None, "category_code": c.category_code, "category_name": cat.name if cat else c.category_code,
        "category_retention": bool(cat and cat.retention), "channel": c.channel, "subject": c.subject, "description": c.description, "state": c.state,
        "priority": c.priority, "value_tier_code": c.value_tier_code, "value_tier_name": tier.name if tier else None,
        "queue_id": c.queue_id, "queue_code": queue.code if queue else None, "queue_name": queue.name if queue else None,
        "assignee_user_id": c.assignee_user_id, "assignee": assignee.full_name if assignee else None, "originating_agent": c.originating_agent,
        "contact_email": c.contact_email, "contact_phone": c.contact_phone, "litigation_risk": c.litigation_risk, "brand_risk": c.brand_risk,
        "opened_at": c.opened_at, "opened_by": c.opened_by, "first_response_at": c.first_response_at, "resolved_at": c.resolved_at,
        "closed_at": c.closed_at, "reopen_count": c.reopen_count, "first_contact_resolution": c.first_contact_resolution,
        "fcr_candidate": c.fcr_candidate, "pending_reason": c.pending_reason, "held_reason": c.held_reason,
        "third_party_partner_code": c.third_party_partner_code, "resolution": c.resolution, "state_reason": c.state_reason,
        "sla_policy_id": c.sla_policy_id, "updated_at": c.updated_at, "version": c.version,
        "allowed_actions": [{"action": a, "label": ACTION_LABELS[a]} for a in allowed_actions(c.state)],
    }


def case_history(session: Session, *, case_id: int) -> list[dict[str, Any]]:
    rows = session.execute(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id)).scalars()
    return [{"id": e.id, "at": e.at, "kind": e.kind, "from_value": e.from_value, "to_value": e.to_value, "reason": e.reason, "actor": e.actor, "data": e.data} for e in rows]


def case_notes(session: Session, *, case_id: int) -> list[dict[str, Any]]:
    rows = session.execute(select(CaseNote).where(CaseNote.case_id == case_id).order_by(CaseNote.id)).scalars()
    return [{"id": n.id, "at": n.at, "author": n.author, "visibility": n.visibility, "direction": n.direction, "body": n.body, "email_message_id": n.email_message_id} for n in rows]


def case_detail(session: Session, *, case_id: int, now: datetime) -> dict[str, Any]:
    """Everything the case page shows. Raises CaseNotFound."""
    c = get_case(session, case_id=case_id)
    notes = case_notes(session, case_id=c.id)
    history = case_history(session, case_id=c.id)
    notes_by_id = {n["id"]: n for n in notes}
    timeline = []
    user_ids = {int(v) for e in history if e["kind"] == "assignee" for v in (e["from_value"], e["to_value"]) if v and v.isdigit()}
    names = dict(session.execute(select(User.id, User.full_name).where(User.id.in_(user_ids))).all()) if user_ids else {}
    for e in history:
        item = dict(e)
        if e["kind"] == "assignee":
            item["from_value"] = names.get(int(e["from_value"]), e["from_value"]) if e["from_value"] and e["from_value"].isdigit() else e["from_value"]
            item["to_value"] = names.get(int(e["to_value"]), e["to_value"]) if e["to_value"] and e["to_value"].isdigit() else e["to_value"]
        if e["kind"] == "note" and e["data"] and e["data"].get("note_id") in notes_by_id:
            item["note"] = notes_by_id[e["data"]["note_id"]]
        timeline.append(item)
    seen = {e["data"].get("note_id") for e in history if e["kind"] == "note" and e["data"]}
    for n in notes:  # notes without a history row (demo data loaded before history existed)
        if n["id"] not in seen:
            timeline.append({"id": 0, "at": n["at"], "kind": "note", "actor": n["author"], "note": n, "from_value": None, "to_value": n["visibility"], "reason": None, "data": None})
    timeline.sort(key=lambda e: (e["at"], e["id"]), reverse=True)
    links = [{"id": lk.id, "target_type": lk.target_type, "target_id": lk.target_id, "target_ref": lk.target_ref, "note": lk.note, "created_at": lk.created_at, "created_by": lk.created_by}
             for lk in session.execute(select(CaseLink).where(CaseLink.case_id == c.id).order_by(CaseLink.id)).scalars()]
    attachments = [{"id": a, "filename": f, "content_type": t, "size": s, "uploaded_at": u, "uploaded_by": b} for a, f, t, s, u, b in session.execute(
        select(CaseAttachment.id, CaseAttachment.filename, CaseAttachment.content_type, CaseAttachment.size, CaseAttachment.uploaded_at, CaseAttachment.uploaded_by)
        .where(CaseAttachment.case_id == c.id).order_by(CaseAttachment.id))]
    offers = [{"id": o.id, "offer": o.offer, "outcome": o.outcome, "at": o.at, "by": o.by}
              for o in session.execute(select(RetentionOffer).where(RetentionOffer.case_id == c.id).order_by(RetentionOffer.id)).scalars()]
    leads = [{"id": ld.id, "product_interest": ld.product_interest, "notes": ld.notes, "state": ld.state, "created_by": ld.created_by, "created_at": ld.created_at}
             for ld in session.execute(select(SalesLead).where(SalesLead.case_id == c.id).order_by(SalesLead.id)).scalars()]
    return {"case": case_dict(session, c), "timeline": timeline, "notes": notes, "history": history, "links": links, "attachments": attachments,
            "offers": offers, "leads": leads, "clocks": _clocks(session, case_id=c.id, now=now)}


def account_cases(session: Session, *, account_id: int, now: datetime, recent_closed: int = 5) -> dict[str, Any]:
    """Open cases and the most recent finished ones of one account (the account 360 panel)."""
    open_states = [s.value for s in OPEN_STATES]
    q = _base_select().where(SupportCase.account_id == account_id)
    open_rows = [dict(r._mapping) for r in session.execute(q.where(SupportCase.state.in_(open_states)).order_by(SupportCase.priority, SupportCase.opened_at))]
    closed_rows = [dict(r._mapping) for r in session.execute(q.where(SupportCase.state.not_in(open_states)).order_by(SupportCase.updated_at.desc()).limit(recent_closed))]
    return {"open_cases": open_rows, "closed_cases": closed_rows}


def fcr_report(session: Session, *, by: str = "queue") -> list[dict[str, Any]]:
    """FCR rate over decided cases, per queue or per agent (the agent who resolved it)."""
    decided = SupportCase.first_contact_resolution.is_not(None)
    fcr = func.sum(sql_case((SupportCase.first_contact_resolution.is_(True), 1), else_=0))
    if by == "agent":
        q = select(SupportCase.resolved_by.label("key"), func.count(SupportCase.id), fcr).where(decided).group_by(SupportCase.resolved_by)
        # closed cases keep resolved_by; reopened-and-closed ones too
    else:
        q = select(Queue.name.label("key"), func.count(SupportCase.id), fcr).join(Queue, Queue.id == SupportCase.queue_id).where(decided).group_by(Queue.name)
    out = []
    for key, n, k in session.execute(q.order_by("key")):
        out.append({"key": key or "(unknown)", "decided": int(n), "fcr": int(k or 0), "rate": (int(k or 0) / int(n)) if n else 0.0})
    return out


def queues_overview(session: Session) -> list[dict[str, Any]]:
    open_states = [s.value for s in OPEN_STATES]
    counts = dict(session.execute(select(SupportCase.queue_id, func.count(SupportCase.id)).where(SupportCase.state.in_(open_states)).group_by(SupportCase.queue_id)).all())
    members: dict[int, list[str]] = {}
    for qid, name in session.execute(select(QueueMember.queue_id, User.username).join(User, User.id == QueueMember.user_id).where(QueueMember.active.is_(True)).order_by(User.username)):
        members.setdefault(qid, []).append(name)
    mgr = aliased(User)
    rows = session.execute(select(Queue, mgr.full_name).outerjoin(mgr, mgr.id == Queue.manager_user_id).order_by(Queue.name)).all()
    return [{"id": q.id, "code": q.code, "name": q.name, "assignment": q.assignment, "is_escalation": q.is_escalation, "manager": m, "open": counts.get(q.id, 0),
             "members": members.get(q.id, []), "skills": q.skills, "calendar_code": q.calendar_code} for q, m in rows]


def case_detail_links(session: Session, *, case_id: int) -> list[dict[str, Any]]:
    return [{"target_type": t, "target_id": i, "target_ref": r} for t, i, r in
            session.execute(select(CaseLink.target_type, CaseLink.target_id, CaseLink.target_ref).where(CaseLink.case_id == case_id).order_by(CaseLink.id))]
