"""Read side of cases: work queues sorted by SLA standing (breached, at risk), priority, value tier and due time;
case detail; TMF621 pages without N+1; account panel; FCR report. The SLA standing is what the SLA engine last
reported through `service.record_sla` (cases never reads SLA tables)."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import case as sql_case
from sqlalchemy import Integer, bindparam, func, literal, select, union_all
from sqlalchemy.orm import Session, aliased

from opsline.cases.models import (
    CASE, CHANNELS, LEAD, NOTE_VISIBILITY, OPEN_STATES, CaseAttachment, CaseCategory, CaseEvent, CaseLink, CaseNote, CaseState, Queue,
    QueueMember, RetentionOffer, SalesLead, SupportCase,
)
from opsline.cases.service import get_case
from opsline.core.events import Actor
from opsline.customers.models import Account, ValueTier
from opsline.notifications.models import Message, MessageState
from opsline.users.models import User

PAGE_SIZE = 50
TABS = ("mine", "team", "breaching", "all")
AT_RISK = ("breached", "at_risk")


def sla_rank():  # type: ignore[no-untyped-def]
    """0 breached, 1 at risk, 2 everything else: the first sort key of every work list."""
    return sql_case((SupportCase.sla_state == "breached", 0), (SupportCase.sla_state == "at_risk", 1), else_=2)


def overdue_text(seconds: float) -> str:
    """'2 d 3 h', '3 h 20 m', '12 m': how long ago a deadline passed."""
    s = max(0, int(seconds))
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    return f"{d} d {h} h" if d else f"{h} h {m} m" if h else f"{m} m"


@lru_cache(maxsize=1)
def _reference_select():  # type: ignore[no-untyped-def]
    """Built once: statements are immutable, and building this union (and its cache key) cost more than running it."""
    parts = union_all(
        select(literal("category").label("kind"), literal(None, type_=Integer).label("id"), CaseCategory.code.label("code"), CaseCategory.name.label("name"),
               literal(False).label("flag")),
        select(literal("queue"), Queue.id, Queue.code, Queue.name, Queue.is_escalation).where(Queue.active.is_(True)),
        select(literal("user"), User.id, User.username, User.full_name, literal(False)).where(User.active.is_(True)),
    ).subquery()
    return select(parts).order_by(parts.c.kind, parts.c.name, parts.c.code)


def reference_data(session: Session) -> dict[str, Any]:
    """Categories, active queues and active staff for the case forms: one round trip (every case page and the work
    queue read them)."""
    rows = session.execute(_reference_select()).all()
    return {
        "categories": [{"code": r.code, "name": r.name} for r in rows if r.kind == "category"],
        "queues": [{"id": r.id, "code": r.code, "name": r.name, "is_escalation": bool(r.flag)} for r in rows if r.kind == "queue"],
        "users": [{"id": r.id, "username": r.code, "full_name": r.name} for r in rows if r.kind == "user"],
        "states": [s.value for s in CaseState],
        "channels": list(CHANNELS),
        "visibilities": list(NOTE_VISIBILITY),
    }


@lru_cache(maxsize=1)
def _base_select():  # type: ignore[no-untyped-def]
    """The work list's columns and joins, built once (a Select is immutable: each caller's .where() makes a new one)."""
    assignee = aliased(User)
    return select(
        SupportCase.id, SupportCase.reference, SupportCase.subject, SupportCase.state, SupportCase.priority, SupportCase.value_tier_code,
        SupportCase.category_code, SupportCase.opened_at, SupportCase.updated_at, SupportCase.litigation_risk, SupportCase.brand_risk,
        SupportCase.account_id, SupportCase.channel, SupportCase.reopen_count, SupportCase.third_party_partner_code, SupportCase.contractual_dispute,
        SupportCase.sla_state, SupportCase.sla_due_at, SupportCase.sla_breached_at, SupportCase.sla_risk,
        Queue.name.label("queue_name"), Queue.code.label("queue_code"), assignee.full_name.label("assignee"), Account.name.label("account_name"),
        func.coalesce(ValueTier.rank, 1000).label("tier_rank"),
    ).join(Queue, Queue.id == SupportCase.queue_id).outerjoin(assignee, assignee.id == SupportCase.assignee_user_id) \
        .outerjoin(Account, Account.id == SupportCase.account_id).outerjoin(ValueTier, ValueTier.code == SupportCase.value_tier_code)


def _decorate(r: dict[str, Any], now: datetime) -> dict[str, Any]:
    r["risk"] = float(r["sla_risk"] or 0.0)
    r["breached"] = r["sla_state"] == "breached"
    r["breaching"] = r["sla_state"] in AT_RISK
    r["overdue"] = overdue_text((now - r["sla_breached_at"]).total_seconds()) if r["breached"] and r["sla_breached_at"] else None
    return r


def awaiting_sign_off():  # type: ignore[no-untyped-def]
    """Case references with a message held for Legal/Brand sign-off (the notifications area's log, read only)."""
    return select(Message.subject_ref).where(Message.state == MessageState.AWAITING_APPROVAL.value, Message.subject_ref.is_not(None))


def work_queue(session: Session, *, now: datetime, user_id: int | None, tab: str = "mine", state: str | None = None, category: str | None = None,
               queue: str | None = None, priority: int | None = None, signoff: bool = False, sort: str = "sla", page: int = 1) -> dict[str, Any]:
    """Cases for a tab (mine / team / breaching / all) with filters, sorted by (breached / at risk, priority, value
    tier, due) or, with sort="oldest", oldest first; paged in SQL. Open cases only unless a state filter says
    otherwise. Breached cases say by how long."""
    tab = tab if tab in TABS else "mine"
    q = _base_select()
    q = q.where(SupportCase.state == state) if state else q.where(SupportCase.state.in_([s.value for s in OPEN_STATES]))
    if category:
        q = q.where(SupportCase.category_code == category)
    if queue:
        q = q.where(Queue.code == queue)
    if priority:
        q = q.where(SupportCase.priority == priority)
    if signoff:
        q = q.where(SupportCase.reference.in_(awaiting_sign_off()))
    if tab == "mine":
        q = q.where(SupportCase.assignee_user_id == (user_id or -1))
    elif tab == "team":
        my_queues = select(QueueMember.queue_id).where(QueueMember.user_id == (user_id or -1), QueueMember.active.is_(True))
        q = q.where(SupportCase.queue_id.in_(my_queues))
    elif tab == "breaching":
        q = q.where(SupportCase.sla_state.in_(AT_RISK))
    page = max(1, page)
    order = (sla_rank(), SupportCase.priority, func.coalesce(ValueTier.rank, 1000), SupportCase.sla_due_at.is_(None), SupportCase.sla_due_at,
             SupportCase.opened_at, SupportCase.id) if sort != "oldest" else (SupportCase.opened_at, SupportCase.id)
    # sort and page the narrow id list first, then read the page's rows: sorting every open case's full row was the
    # slowest page at 100,000 accounts. The total rides along as a window count (one round trip fewer).
    paged = session.execute(q.with_only_columns(SupportCase.id, func.count().over().label("total")).order_by(*order)
                            .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()
    page_ids = [r.id for r in paged]
    total = paged[0].total if paged else (0 if page == 1 else session.execute(select(func.count()).select_from(q.order_by(None).subquery())).scalar_one())
    by_id = {r.id: r for r in session.execute(q.where(SupportCase.id.in_(page_ids)))} if page_ids else {}
    rows = [_decorate(dict(by_id[i]._mapping), now) for i in page_ids if i in by_id]
    return {"items": rows, "total": total, "page": page, "pages": max(1, -(-total // PAGE_SIZE)), "tab": tab, "sort": sort}


def oldest_open(session: Session, *, user_id: int | None, now: datetime, limit: int = 5) -> list[dict[str, Any]]:
    """My open cases, oldest first (the desk home card)."""
    q = _base_select().where(SupportCase.assignee_user_id == (user_id or -1), SupportCase.state.in_([s.value for s in OPEN_STATES]))
    return [_decorate(dict(r._mapping), now) for r in session.execute(q.order_by(SupportCase.opened_at, SupportCase.id).limit(limit))]


@lru_cache(maxsize=1)
def _tab_counts_select():  # type: ignore[no-untyped-def]
    user = bindparam("user_id", type_=Integer)
    my_queues = select(QueueMember.queue_id).where(QueueMember.user_id == user, QueueMember.active.is_(True))
    return select(
        func.count(SupportCase.id).filter(SupportCase.assignee_user_id == user),
        func.count(SupportCase.id).filter(SupportCase.queue_id.in_(my_queues)),
        func.count(SupportCase.id),
    ).where(SupportCase.state.in_([s.value for s in OPEN_STATES]))


def tab_counts(session: Session, *, user_id: int | None) -> dict[str, int]:
    """Open cases: mine, my queues' and all, in one pass over the open cases."""
    mine, team, every = session.execute(_tab_counts_select(), {"user_id": user_id or -1}).one()
    return {"mine": mine, "team": team, "all": every}


@lru_cache(maxsize=1)
def _case_names() -> Any:
    """The names around a case in one round trip (outer joins: each may be absent); built once."""
    return select(Queue.code, Queue.name, User.full_name, Account.name, Account.account_number, CaseCategory.name, CaseCategory.retention, ValueTier.name) \
        .select_from(SupportCase).where(SupportCase.id == bindparam("case_id")) \
        .outerjoin(Queue, Queue.id == SupportCase.queue_id).outerjoin(User, User.id == SupportCase.assignee_user_id) \
        .outerjoin(Account, Account.id == SupportCase.account_id).outerjoin(CaseCategory, CaseCategory.code == SupportCase.category_code) \
        .outerjoin(ValueTier, ValueTier.code == SupportCase.value_tier_code)


def case_dict(session: Session, c: SupportCase, *, actor: Actor | None = None) -> dict[str, Any]:
    names = session.execute(_case_names(), {"case_id": c.id}).one()
    queue_code, queue_name, assignee, account_name, account_number, category_name, retention, tier_name = names
    return {
        "id": c.id, "reference": c.reference, "account_id": c.account_id, "account_name": account_name,
        "account_number": account_number, "category_code": c.category_code, "category_name": category_name or c.category_code,
        "category_retention": bool(retention), "channel": c.channel, "subject": c.subject, "description": c.description, "state": c.state,
        "priority": c.priority, "value_tier_code": c.value_tier_code, "value_tier_name": tier_name,
        "queue_id": c.queue_id, "queue_code": queue_code, "queue_name": queue_name,
        "assignee_user_id": c.assignee_user_id, "assignee": assignee, "originating_agent": c.originating_agent,
        "contact_email": c.contact_email, "contact_phone": c.contact_phone, "litigation_risk": c.litigation_risk, "brand_risk": c.brand_risk,
        "opened_at": c.opened_at, "opened_by": c.opened_by, "first_response_at": c.first_response_at, "resolved_at": c.resolved_at,
        "closed_at": c.closed_at, "reopen_count": c.reopen_count, "first_contact_resolution": c.first_contact_resolution,
        "fcr_candidate": c.fcr_candidate, "pending_reason": c.pending_reason, "held_reason": c.held_reason,
        "third_party_partner_code": c.third_party_partner_code, "resolution": c.resolution, "sentiment_recovered": c.sentiment_recovered, "state_reason": c.state_reason,
        "sla_policy_id": c.sla_policy_id, "updated_at": c.updated_at, "version": c.version,
        "contractual_dispute": c.contractual_dispute, "sla_state": c.sla_state, "sla_due_at": c.sla_due_at, "sla_breached_at": c.sla_breached_at,
        "sla_risk": c.sla_risk, "sla_as_of": c.sla_as_of, "allowed_actions": CASE.buttons(c.state, actor=actor),
    }


@lru_cache(maxsize=None)
def _of_case(model: type) -> Any:
    """A case's rows of one child table, oldest first; built once per table (the case page reads six of them)."""
    return select(model).where(model.case_id == bindparam("case_id")).order_by(model.id)  # type: ignore[attr-defined]


@lru_cache(maxsize=1)
def _attachments_of_case() -> Any:
    return select(CaseAttachment.id, CaseAttachment.filename, CaseAttachment.content_type, CaseAttachment.size, CaseAttachment.uploaded_at,
                  CaseAttachment.uploaded_by).where(CaseAttachment.case_id == bindparam("case_id")).order_by(CaseAttachment.id)


def case_history(session: Session, *, case_id: int) -> list[dict[str, Any]]:
    rows = session.execute(_of_case(CaseEvent), {"case_id": case_id}).scalars()
    return [{"id": e.id, "at": e.at, "kind": e.kind, "from_value": e.from_value, "to_value": e.to_value, "reason": e.reason, "actor": e.actor, "data": e.data} for e in rows]


def case_notes(session: Session, *, case_id: int) -> list[dict[str, Any]]:
    rows = session.execute(_of_case(CaseNote), {"case_id": case_id}).scalars()
    return [{"id": n.id, "at": n.at, "author": n.author, "visibility": n.visibility, "direction": n.direction, "body": n.body, "email_message_id": n.email_message_id} for n in rows]


def case_detail(session: Session, *, case_id: int, now: datetime, actor: Actor | None = None) -> dict[str, Any]:
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
             for lk in session.execute(_of_case(CaseLink), {"case_id": c.id}).scalars()]
    attachments = [{"id": a, "filename": f, "content_type": t, "size": s, "uploaded_at": u, "uploaded_by": b}
                   for a, f, t, s, u, b in session.execute(_attachments_of_case(), {"case_id": c.id})]
    offers = [{"id": o.id, "offer": o.offer, "outcome": o.outcome, "at": o.at, "by": o.by}
              for o in session.execute(_of_case(RetentionOffer), {"case_id": c.id}).scalars()]
    leads = [{"id": ld.id, "product_interest": ld.product_interest, "notes": ld.notes, "state": ld.state, "created_by": ld.created_by, "created_at": ld.created_at,
              "buttons": LEAD.buttons(ld.state, actor=actor)}
             for ld in session.execute(_of_case(SalesLead), {"case_id": c.id}).scalars()]
    d = case_dict(session, c, actor=actor)
    if c.sla_state == "breached" and c.sla_breached_at is not None and c.state in [s.value for s in OPEN_STATES]:
        d["overdue"] = overdue_text((now - c.sla_breached_at).total_seconds())
    return {"case": d, "timeline": timeline, "notes": notes, "history": history, "links": links, "attachments": attachments,
            "offers": offers, "leads": leads}


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
