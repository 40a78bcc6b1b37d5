"""Case operations: open, the lifecycle (one transition table), queues and assignment, priority, notes,
feedback emails, FCR, retention offers and sales leads. Every change writes a `case_event` (replayed by the
SLA engine), an audit event, and tells the SLA engine in the same transaction."""

from __future__ import annotations

import importlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from opsline.cases import mail
from opsline.cases.models import (
    OPEN_STATES, CaseAttachment, CaseCategory, CaseEvent, CaseLink, CaseNote, CaseSetting, CaseState, PriorityRule, Queue,
    QueueMember, RetentionOffer, SalesLead, SupportCase,
)
from opsline.cases.schemas import CaseIn, LeadIn, NoteIn
from opsline.core import events
from opsline.core.errors import Conflict, InvalidInput, NotFound, StaleVersion, TransitionNotAllowed
from opsline.core.events import Actor
from opsline.core.ids import reference as make_reference
from opsline.customers.models import Account, ValueTier
from opsline.users.models import User


class CaseNotFound(NotFound):
    pass


class UnableToOpenCase(InvalidInput):
    pass


class UnableToChangeCase(InvalidInput):
    pass


class CaseTransitionNotAllowed(TransitionNotAllowed):
    pass


class NoteNotAllowed(Conflict):
    title = "Note not allowed"
    type_slug = "note-not-allowed"


class RetentionNotAllowed(Conflict):
    title = "Retention offer not allowed"
    type_slug = "retention-not-allowed"


S = CaseState
# state -> {action: next state}. The only place that says which lifecycle moves exist.
CASE_TRANSITIONS: dict[str, dict[str, str]] = {
    S.ACKNOWLEDGED: {"start": S.IN_PROGRESS, "pend": S.PENDING, "hold": S.HELD, "resolve": S.RESOLVED, "cancel": S.CANCELLED, "reject": S.REJECTED},
    S.IN_PROGRESS: {"pend": S.PENDING, "hold": S.HELD, "resolve": S.RESOLVED, "cancel": S.CANCELLED, "reject": S.REJECTED},
    S.PENDING: {"resume": S.IN_PROGRESS, "resolve": S.RESOLVED, "cancel": S.CANCELLED},
    S.HELD: {"resume": S.IN_PROGRESS, "resolve": S.RESOLVED, "cancel": S.CANCELLED},
    S.RESOLVED: {"close": S.CLOSED, "reopen": S.IN_PROGRESS},
    S.CLOSED: {"reopen": S.IN_PROGRESS},
    S.CANCELLED: {},
    S.REJECTED: {},
}
ACTION_LABELS = {"start": "Start work", "pend": "Wait for customer", "hold": "Hold for third party", "resume": "Resume",
                 "resolve": "Resolve", "close": "Close", "reopen": "Reopen", "cancel": "Cancel", "reject": "Reject"}
# what each action must be given
NEEDS_REASON = {"pend", "cancel", "reject", "reopen"}
TMF_STATUS_TO_ACTION = {"inProgress": "start", "pending": "pend", "held": "hold", "resolved": "resolve", "closed": "close",
                        "cancelled": "cancel", "rejected": "reject"}


def allowed_actions(state: str) -> list[str]:
    return list(CASE_TRANSITIONS[CaseState(state)])


# --- helpers ------------------------------------------------------------------------------------

def sla_module() -> Any | None:
    """The SLA engine's service module, or None while it is not installed (the cases area works without it)."""
    try:
        return importlib.import_module("opsline.sla.service")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("opsline.sla"):
            return None
        raise


def _sla_changed(session: Session, *, case_id: int, now: datetime) -> None:
    mod = sla_module()
    fn = getattr(mod, "on_case_changed", None) if mod is not None else None
    if fn is not None:
        session.flush()
        fn(session, case_id=case_id, now=now)


def setting(session: Session, key: str, default: str) -> str:
    row = session.get(CaseSetting, key)
    return row.value if row is not None else default


def setting_int(session: Session, key: str, default: int) -> int:
    try:
        return int(setting(session, key, str(default)))
    except ValueError:
        return default


def get_case(session: Session, *, case_id: int, for_update: bool = False) -> SupportCase:
    """Raises CaseNotFound."""
    c = session.get(SupportCase, case_id, with_for_update=for_update or None)
    if c is None:
        raise CaseNotFound(f"case {case_id} not found")
    return c


def get_case_by_reference(session: Session, *, reference: str) -> SupportCase:
    c = session.execute(select(SupportCase).where(SupportCase.reference == reference.upper())).scalar_one_or_none()
    if c is None:
        raise CaseNotFound(f"case {reference} not found")
    return c


def get_queue(session: Session, *, code: str | None = None, queue_id: int | None = None) -> Queue:
    """Raises InvalidInput for an unknown or inactive queue."""
    q = session.get(Queue, queue_id) if queue_id is not None else session.execute(select(Queue).where(Queue.code == code)).scalar_one_or_none()
    if q is None or not q.active:
        raise InvalidInput(f"unknown queue '{code if code is not None else queue_id}'", field="queue_code")
    return q


def _event(session: Session, c: SupportCase, *, now: datetime, actor: Actor, kind: str, from_value: Any = None, to_value: Any = None,
           reason: str | None = None, data: dict[str, Any] | None = None) -> None:
    session.add(CaseEvent(case_id=c.id, account_id=c.account_id, at=now, kind=kind, from_value=None if from_value is None else str(from_value),
                          to_value=None if to_value is None else str(to_value), reason=reason, actor=actor.name, data=data))


def _audit(session: Session, c: SupportCase, *, now: datetime, actor: Actor, action: str, reason: str | None = None,
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
    events.record(session, now=now, actor=actor, entity_type="case", entity_id=c.id, account_id=c.account_id, action=action,
                  reason=reason, before=before, after=(after or {}) | {"reference": c.reference})


def _flush(session: Session, c: SupportCase) -> None:
    try:
        session.flush()
    except StaleDataError as exc:
        raise StaleVersion(f"case {c.reference} was changed by someone else; reload and try again") from exc


def _check_version(c: SupportCase, version: int | None) -> None:
    if version is not None and c.version != version:
        raise StaleVersion(f"case {c.reference} was changed by someone else (version {c.version}, you had {version}); reload and try again")


# --- priority and routing ----------------------------------------------------------------------

def compute_priority(session: Session, *, category_code: str, value_tier_code: str | None) -> int:
    """Category default adjusted by every active matching priority rule (tier and/or category), kept in 1..4."""
    cat = session.get(CaseCategory, category_code)
    if cat is None:
        raise InvalidInput(f"unknown category '{category_code}'", field="category_code")
    rules = session.execute(select(PriorityRule).where(PriorityRule.active.is_(True))).scalars()
    adjust = sum(r.adjust for r in rules
                 if (r.value_tier_code is None or r.value_tier_code == value_tier_code) and (r.category_code is None or r.category_code == category_code))
    return max(1, min(4, cat.default_priority + adjust))


def escalation_queue(session: Session) -> Queue:
    code = setting(session, "escalation_queue_code", "escalations")
    q = session.execute(select(Queue).where(Queue.code == code, Queue.active.is_(True))).scalar_one_or_none()
    if q is None:
        q = session.execute(select(Queue).where(Queue.is_escalation.is_(True), Queue.active.is_(True)).order_by(Queue.id)).scalars().first()
    if q is None:
        raise InvalidInput("no escalation queue is configured (case setting escalation_queue_code)", field="queue_code")
    return q


def _eligible_members(session: Session, *, queue: Queue, category_code: str) -> list[int]:
    """Active members whose skills cover the category's required skills, by user id."""
    cat = session.get(CaseCategory, category_code)
    need = set(cat.required_skills or []) if cat else set()
    rows = session.execute(
        select(QueueMember.user_id, QueueMember.skills).join(User, User.id == QueueMember.user_id)
        .where(QueueMember.queue_id == queue.id, QueueMember.active.is_(True), User.active.is_(True)).order_by(QueueMember.user_id)
    ).all()
    return [uid for uid, skills in rows if need <= set(skills or [])]


def pick_assignee(session: Session, *, queue: Queue, category_code: str) -> int | None:
    """The member the queue's strategy designates (None for manual queues or when nobody has the skills).
    Round-robin advances the queue's persisted pointer."""
    if queue.assignment == "manual":
        return None
    members = _eligible_members(session, queue=queue, category_code=category_code)
    if not members:
        return None
    if queue.assignment == "round_robin":
        last = queue.rr_last_user_id
        nxt = next((m for m in members if last is None or m > last), members[0])
        queue.rr_last_user_id = nxt
        return nxt
    loads = dict(session.execute(
        select(SupportCase.assignee_user_id, func.count(SupportCase.id))
        .where(SupportCase.assignee_user_id.in_(members), SupportCase.state.in_([s.value for s in OPEN_STATES]))
        .group_by(SupportCase.assignee_user_id)
    ).all())
    return min(members, key=lambda m: (loads.get(m, 0), m))


def _notify_manager(session: Session, c: SupportCase, queue: Queue, *, now: datetime, why: str) -> None:
    if queue.manager_user_id is None:
        return
    mgr = session.get(User, queue.manager_user_id)
    if mgr is None or not mgr.email:
        return
    mail.queue_email(session, case=c, to=mgr.email, purpose="escalation", now=now,
                     subject=f"[{c.reference}] Escalated to {queue.name}: {c.subject}",
                     body=f"Case {c.reference} was routed to {queue.name} because of {why}.\n\nSubject: {c.subject}\nPriority: P{c.priority}\n\n{c.description or ''}")


# --- open ---------------------------------------------------------------------------------------

def open_case(session: Session, *, data: CaseIn, now: datetime, actor: Actor) -> SupportCase:
    """Open a case: priority from category and value tier, queue from category (or the escalation queue for
    litigation / brand risk, whose manager is emailed), assignee by the queue's strategy.
    Raises UnableToOpenCase / InvalidInput (unknown account, category, queue or assignee)."""
    cat = session.get(CaseCategory, data.category_code)
    if cat is None:
        raise UnableToOpenCase(f"unknown category '{data.category_code}'", field="category_code")
    acc = None
    if data.account_id is not None:
        acc = session.get(Account, data.account_id)
        if acc is None:
            raise UnableToOpenCase(f"account {data.account_id} not found", field="account_id")
    escalate = data.litigation_risk or data.brand_risk
    if escalate:
        queue = escalation_queue(session)
    elif data.queue_code:
        queue = get_queue(session, code=data.queue_code)
    else:
        if not cat.default_queue_code:
            raise UnableToOpenCase(f"category '{cat.code}' has no default queue; choose one", field="queue_code")
        queue = get_queue(session, code=cat.default_queue_code)
    if data.assignee_user_id is not None and session.get(User, data.assignee_user_id) is None:
        raise UnableToOpenCase(f"user {data.assignee_user_id} not found", field="assignee_user_id")
    tier = acc.value_tier_code if acc else None
    priority = compute_priority(session, category_code=cat.code, value_tier_code=tier)
    if data.priority is not None:
        priority = min(priority, data.priority)  # callers may raise urgency, never lower what the rules say
    c = SupportCase(
        reference="~" + secrets.token_hex(8), account_id=acc.id if acc else None, category_code=cat.code, channel=data.channel,
        subject=data.subject, description=data.description, state=CaseState.ACKNOWLEDGED.value, priority=priority, value_tier_code=tier,
        queue_id=queue.id, assignee_user_id=None, originating_agent=data.originating_agent,
        contact_email=data.contact_email or (acc.email if acc else None), contact_phone=data.contact_phone or (acc.phone if acc else None),
        litigation_risk=data.litigation_risk, brand_risk=data.brand_risk, opened_at=now, opened_by=actor.name, reopen_count=0,
        updated_at=now,
    )
    session.add(c)
    session.flush()
    c.reference = make_reference("CS", c.id)
    assignee = data.assignee_user_id if data.assignee_user_id is not None else pick_assignee(session, queue=queue, category_code=cat.code)
    c.assignee_user_id = assignee
    _event(session, c, now=now, actor=actor, kind="opened", to_value=c.state, data={"queue": queue.code, "priority": priority, "channel": c.channel,
                                                                                 "category": cat.code, "assignee_user_id": assignee})
    if assignee is not None:
        _event(session, c, now=now, actor=actor, kind="assignee", to_value=assignee, reason=f"{queue.assignment} assignment" if data.assignee_user_id is None else "chosen")
    _audit(session, c, now=now, actor=actor, action="opened", after={"category": cat.code, "queue": queue.code, "priority": priority, "state": c.state})
    if escalate:
        why = " and ".join(w for w, f in (("litigation risk", data.litigation_risk), ("brand risk", data.brand_risk)) if f)
        _notify_manager(session, c, queue, now=now, why=why)
    _flush(session, c)
    _sla_changed(session, case_id=c.id, now=now)
    return c


# --- lifecycle ----------------------------------------------------------------------------------

def transition(session: Session, *, case_id: int, action: str, now: datetime, actor: Actor, reason: str | None = None,
               partner_code: str | None = None, resolution: str | None = None, version: int | None = None) -> list[str]:
    """Apply a lifecycle action; returns the next allowed actions.
    pend needs a reason (what we wait for from the customer); hold needs a partner code; resolve needs a
    resolution note; cancel, reject and reopen need a reason.
    Raises CaseNotFound, CaseTransitionNotAllowed, UnableToChangeCase (missing reason / partner / resolution), StaleVersion."""
    c = get_case(session, case_id=case_id)
    _check_version(c, version)
    allowed = CASE_TRANSITIONS[CaseState(c.state)]
    if action not in allowed:
        raise CaseTransitionNotAllowed(f"cannot {action} case {c.reference} while it is {c.state}; allowed: {', '.join(allowed) or 'none'}",
                                       extra={"allowed": list(allowed)})
    reason = (reason or "").strip() or None
    if action in NEEDS_REASON and not reason:
        raise UnableToChangeCase(f"a reason is required to {action} a case", field="reason")
    if action == "hold" and not (partner_code or "").strip():
        raise UnableToChangeCase("a third-party partner code is required to hold a case", field="partner_code")
    if action == "resolve" and not (resolution or "").strip():
        raise UnableToChangeCase("a resolution note is required to resolve a case", field="resolution")
    before = c.state
    target = allowed[action]
    data: dict[str, Any] | None = None
    if action == "pend":
        c.pending_reason, c.ever_pending = reason, True
        data = {"reason": reason}
    elif action == "hold":
        c.third_party_partner_code, c.held_reason = partner_code.strip(), reason  # type: ignore[union-attr]
        data = {"partner_code": c.third_party_partner_code}
    if before == S.HELD and target != S.HELD:
        data = (data or {}) | {"released_partner_code": c.third_party_partner_code}
    if action == "resolve":
        c.resolved_at, c.resolved_by, c.resolution = now, actor.name, resolution.strip()  # type: ignore[union-attr]
        window = setting_int(session, "fcr_window_minutes", 60)
        c.fcr_candidate = (c.reopen_count == 0 and not c.ever_pending and not c.ever_handed_off and c.resolved_by == c.opened_by
                           and now - c.opened_at <= timedelta(minutes=window))
        if c.first_response_at is None:
            c.first_response_at = now
            _event(session, c, now=now, actor=actor, kind="first_response", to_value="resolution")
    elif action == "close":
        c.closed_at = now
    elif action == "reopen":
        c.reopen_count += 1
        c.fcr_candidate = False
        c.first_contact_resolution = False if c.first_contact_resolution is not None else None
        c.resolved_at = c.resolved_by = c.closed_at = None
    if action in ("cancel", "reject"):
        c.state_reason = reason
        c.closed_at = now
    c.state = target
    c.updated_at = now
    if action == "reopen":
        _event(session, c, now=now, actor=actor, kind="reopened", from_value=before, to_value=target, reason=reason)
    _event(session, c, now=now, actor=actor, kind="state", from_value=before, to_value=target, reason=reason or resolution, data=data)
    _audit(session, c, now=now, actor=actor, action=action, reason=reason or resolution, before={"state": before}, after={"state": target} | (data or {}))
    if action == "resolve":
        _send_feedback(session, c, now=now)
    _flush(session, c)
    _sla_changed(session, case_id=c.id, now=now)
    return allowed_actions(c.state)


def _send_feedback(session: Session, c: SupportCase, *, now: datetime) -> None:
    """Resolving tells the customer and the originating front-line agent (feedback loop)."""
    body = f"Case {c.reference}: {c.subject}\n\nResolution:\n{c.resolution}\n\nReply to this email (keep {c.reference} in the subject) if the problem is not solved."
    if c.contact_email:
        mail.queue_email(session, case=c, to=c.contact_email, purpose="resolved_customer", now=now, subject=f"[{c.reference}] Resolved: {c.subject}", body=body)
    agent = mail.address_of(c.originating_agent)
    if agent:
        mail.queue_email(session, case=c, to=agent, purpose="resolved_agent", now=now, subject=f"[{c.reference}] Feedback: the case you escalated is resolved",
                         body=f"The case you escalated has been resolved by second line.\n\n{body}")


def change_priority(session: Session, *, case_id: int, priority: int, now: datetime, actor: Actor, reason: str) -> SupportCase:
    """Raises CaseNotFound, UnableToChangeCase (bad priority, no reason, case finished)."""
    c = get_case(session, case_id=case_id)
    if priority not in (1, 2, 3, 4):
        raise UnableToChangeCase("priority must be 1 (highest) to 4", field="priority")
    if not (reason or "").strip():
        raise UnableToChangeCase("a reason is required to change priority", field="reason")
    if c.state not in [s.value for s in OPEN_STATES]:
        raise CaseTransitionNotAllowed(f"case {c.reference} is {c.state}; reopen it first")
    if priority == c.priority:
        return c
    before = c.priority
    c.priority, c.updated_at = priority, now
    _event(session, c, now=now, actor=actor, kind="priority", from_value=before, to_value=priority, reason=reason)
    _audit(session, c, now=now, actor=actor, action="priority_changed", reason=reason, before={"priority": before}, after={"priority": priority})
    _flush(session, c)
    _sla_changed(session, case_id=c.id, now=now)
    return c


def assign(session: Session, *, case_id: int, now: datetime, actor: Actor, queue_code: str | None = None, assignee_user_id: int | None = None,
           auto: bool = False, reason: str | None = None) -> SupportCase:
    """Hand the case to another queue and/or assignee. A queue change is a hand-off ('queue' case event: the
    receiving team's clock starts); with `auto` the receiving queue's strategy picks the assignee.
    Raises CaseNotFound, InvalidInput (unknown queue or user), CaseTransitionNotAllowed (finished case)."""
    c = get_case(session, case_id=case_id)
    if c.state not in [s.value for s in OPEN_STATES]:
        raise CaseTransitionNotAllowed(f"case {c.reference} is {c.state}; reopen it before handing it on")
    queue = session.get(Queue, c.queue_id)
    if queue_code and queue_code != (queue.code if queue else None):
        new_q = get_queue(session, code=queue_code)
        _event(session, c, now=now, actor=actor, kind="queue", from_value=queue.code if queue else None, to_value=new_q.code, reason=reason,
               data={"from_queue_id": c.queue_id, "to_queue_id": new_q.id})
        _audit(session, c, now=now, actor=actor, action="handed_off", reason=reason, before={"queue": queue.code if queue else None}, after={"queue": new_q.code})
        c.queue_id, c.ever_handed_off, queue = new_q.id, True, new_q
        if assignee_user_id is None and not auto:
            assignee_user_id = -1  # hand-off without a named person: unassigned in the new queue
        if new_q.is_escalation:
            _notify_manager(session, c, new_q, now=now, why=reason or "a hand-off")
    if assignee_user_id is not None and assignee_user_id > 0 and session.get(User, assignee_user_id) is None:
        raise InvalidInput(f"user {assignee_user_id} not found", field="assignee_user_id")
    new_assignee: int | None
    if auto:
        new_assignee = pick_assignee(session, queue=queue, category_code=c.category_code)  # type: ignore[arg-type]
    elif assignee_user_id is None:
        new_assignee = c.assignee_user_id
    else:
        new_assignee = assignee_user_id if assignee_user_id > 0 else None
    if new_assignee != c.assignee_user_id:
        _event(session, c, now=now, actor=actor, kind="assignee", from_value=c.assignee_user_id, to_value=new_assignee, reason=reason)
        _audit(session, c, now=now, actor=actor, action="assigned", reason=reason, before={"assignee_user_id": c.assignee_user_id}, after={"assignee_user_id": new_assignee})
        c.assignee_user_id = new_assignee
    c.updated_at = now
    _flush(session, c)
    _sla_changed(session, case_id=c.id, now=now)
    return c


# --- notes, links, attachments -----------------------------------------------------------------

def add_note(session: Session, *, case_id: int, data: NoteIn, now: datetime, actor: Actor, author: str | None = None, direction: str = "out",
             email_message_id: str | None = None) -> CaseNote:
    """Add a note. A note to the customer or the originating agent is emailed (via the outbox job); the first
    note to the customer is the first response. Raises CaseNotFound, NoteNotAllowed (closed/cancelled case),
    UnableToChangeCase (no address to send to)."""
    c = get_case(session, case_id=case_id)
    if c.state in (S.CLOSED, S.CANCELLED, S.REJECTED) and direction == "out":
        raise NoteNotAllowed(f"case {c.reference} is {c.state}; reopen it to add notes")
    to = None
    if direction == "out" and data.visibility == "customer":
        to = c.contact_email
        if not to:
            raise UnableToChangeCase(f"case {c.reference} has no customer email address", field="visibility")
    elif direction == "out" and data.visibility == "originating_agent":
        to = mail.address_of(c.originating_agent)
        if not to:
            raise UnableToChangeCase(f"case {c.reference} has no originating agent email address", field="visibility")
    note = CaseNote(case_id=c.id, account_id=c.account_id, at=now, author=author or actor.name, visibility=data.visibility, direction=direction,
                    body=data.body, email_message_id=email_message_id)
    session.add(note)
    session.flush()
    _event(session, c, now=now, actor=actor, kind="note", to_value=data.visibility, data={"note_id": note.id, "visibility": data.visibility, "direction": direction})
    _audit(session, c, now=now, actor=actor, action="note_added", after={"visibility": data.visibility, "direction": direction, "body": data.body[:500]})
    if to:
        msg = mail.queue_email(session, case=c, to=to, purpose=f"note_{data.visibility}", now=now, subject=f"[{c.reference}] {c.subject}", body=data.body)
        note.email_message_id = msg.message_id
        if data.visibility == "customer" and c.first_response_at is None:
            c.first_response_at = now
            _event(session, c, now=now, actor=actor, kind="first_response", to_value="note")
    c.updated_at = now
    _flush(session, c)
    _sla_changed(session, case_id=c.id, now=now)
    return note


def add_link(session: Session, *, case_id: int, target_type: str, now: datetime, actor: Actor, target_id: str | None = None,
             target_ref: str | None = None, note: str | None = None, data: dict[str, Any] | None = None) -> CaseLink:
    """Raises CaseNotFound, InvalidInput (unknown target type, nothing to link to)."""
    from opsline.cases.models import LINK_TYPES

    c = get_case(session, case_id=case_id)
    if target_type not in LINK_TYPES:
        raise InvalidInput(f"unknown link type '{target_type}'; choose from {', '.join(LINK_TYPES)}", field="target_type")
    if not (target_id or target_ref):
        raise InvalidInput("give the id or reference to link to", field="target_id")
    link = CaseLink(case_id=c.id, account_id=c.account_id, target_type=target_type, target_id=target_id, target_ref=target_ref, note=note,
                    data=data, created_at=now, created_by=actor.name)
    session.add(link)
    session.flush()
    _audit(session, c, now=now, actor=actor, action="linked", after={"target_type": target_type, "target_id": target_id, "target_ref": target_ref})
    return link


def add_attachment(session: Session, *, case_id: int, filename: str, content_type: str, data: bytes, now: datetime, actor: Actor) -> CaseAttachment:
    """Raises CaseNotFound, InvalidInput (empty or too large)."""
    c = get_case(session, case_id=case_id)
    limit = setting_int(session, "attachment_max_bytes", 5 * 1024 * 1024)
    if not data:
        raise InvalidInput("the attachment is empty", field="file")
    if len(data) > min(limit, 5 * 1024 * 1024):
        raise InvalidInput(f"the attachment is {len(data)} bytes; the limit is {limit}", field="file")
    att = CaseAttachment(case_id=c.id, account_id=c.account_id, filename=(filename or "attachment")[:255], content_type=(content_type or "application/octet-stream")[:120],
                         size=len(data), data=data, uploaded_at=now, uploaded_by=actor.name)
    session.add(att)
    session.flush()
    _audit(session, c, now=now, actor=actor, action="attachment_added", after={"filename": att.filename, "size": att.size})
    return att


# --- retention and sales ------------------------------------------------------------------------

def record_retention(session: Session, *, case_id: int, offer: str, outcome: str, now: datetime, actor: Actor) -> RetentionOffer:
    """Record a retention offer and its outcome on a 'wants to cancel' case. A declined offer records the
    cancellation request and links the case to the cancellation journey.
    Raises CaseNotFound, RetentionNotAllowed (not a retention case, case finished), InvalidInput (no offer, bad outcome)."""
    c = get_case(session, case_id=case_id)
    cat = session.get(CaseCategory, c.category_code)
    if cat is None or not cat.retention:
        raise RetentionNotAllowed(f"case {c.reference} is a {c.category_code} case; retention offers are for cases of customers who want to cancel")
    if c.state not in [s.value for s in OPEN_STATES]:
        raise RetentionNotAllowed(f"case {c.reference} is {c.state}; reopen it first")
    if outcome not in ("offer_made", "accepted", "declined"):
        raise InvalidInput("outcome must be offer_made, accepted or declined", field="outcome")
    if not (offer or "").strip():
        raise InvalidInput("describe the offer", field="offer")
    row = RetentionOffer(case_id=c.id, account_id=c.account_id, offer=offer.strip(), outcome=outcome, at=now, by=actor.name)
    session.add(row)
    session.flush()
    _audit(session, c, now=now, actor=actor, action=f"retention_{outcome}", after={"offer": row.offer, "outcome": outcome})
    if outcome == "declined":
        add_link(session, case_id=c.id, target_type="cancellation", target_ref="requested", now=now, actor=actor,
                 note=f"Customer declined '{row.offer}' and wants to cancel; hand to the cancellation journey.",
                 data={"status": "requested", "requested_at": now.isoformat(), "account_id": c.account_id, "retention_offer_id": row.id})
        add_note(session, case_id=c.id, data=NoteIn(body=f"Retention offer declined ({row.offer}); cancellation requested.", visibility="internal"), now=now, actor=actor)
        if c.account_id is not None:
            events.record(session, now=now, actor=actor, entity_type="cancellation_request", entity_id=c.reference, account_id=c.account_id,
                          action="requested", after={"case": c.reference, "offer_declined": row.offer})
    return row


def create_lead(session: Session, *, case_id: int, data: LeadIn, now: datetime, actor: Actor) -> SalesLead:
    """Raises CaseNotFound."""
    c = get_case(session, case_id=case_id)
    lead = SalesLead(case_id=c.id, account_id=c.account_id, product_interest=data.product_interest, notes=data.notes, state="new",
                     created_by=actor.name, created_at=now, updated_at=now)
    session.add(lead)
    session.flush()
    _audit(session, c, now=now, actor=actor, action="sales_lead", after={"lead_id": lead.id, "product_interest": data.product_interest})
    return lead


LEAD_TRANSITIONS = {"new": {"qualified", "lost"}, "qualified": {"won", "lost"}, "won": set(), "lost": set()}


def set_lead_state(session: Session, *, lead_id: int, state: str, now: datetime, actor: Actor) -> SalesLead:
    """Raises NotFound, TransitionNotAllowed."""
    lead = session.get(SalesLead, lead_id)
    if lead is None:
        raise NotFound(f"lead {lead_id} not found")
    if state not in LEAD_TRANSITIONS[lead.state]:
        raise TransitionNotAllowed(f"a {lead.state} lead cannot become {state}")
    before, lead.state, lead.updated_at = lead.state, state, now
    events.record(session, now=now, actor=actor, entity_type="sales_lead", entity_id=lead.id, account_id=lead.account_id, action=state, before={"state": before}, after={"state": state})
    return lead


# --- batch jobs ---------------------------------------------------------------------------------

def autoclose(session: Session, *, now: datetime, actor: Actor | None = None, limit: int = 5000) -> int:
    """Close resolved cases older than the auto-close setting (end to end). Returns how many closed."""
    actor = actor or Actor.system("cases.autoclose")
    days = setting_int(session, "autoclose_days", 7)
    ids = list(session.execute(select(SupportCase.id).where(SupportCase.state == S.RESOLVED.value, SupportCase.resolved_at <= now - timedelta(days=days))
                               .order_by(SupportCase.id).limit(limit)).scalars())
    for cid in ids:  # each close writes its history and tells the SLA engine; bounded per job run
        transition(session, case_id=cid, action="close", now=now, actor=actor, reason=f"auto-closed {days} days after resolution")
    return len(ids)


def decide_fcr(session: Session, *, now: datetime) -> int:
    """Decide first-contact resolution (set-based) for closed cases whose reopen window has passed:
    FCR = resolved in the opening interaction and never reopened. Returns how many were decided."""
    days = setting_int(session, "fcr_reopen_days", 7)
    res = session.execute(
        update(SupportCase)
        .where(SupportCase.state == S.CLOSED.value, SupportCase.first_contact_resolution.is_(None), SupportCase.resolved_at <= now - timedelta(days=days))
        .values(first_contact_resolution=and_(SupportCase.fcr_candidate.is_(True), SupportCase.reopen_count == 0))
        .execution_options(synchronize_session=False)
    )
    return res.rowcount or 0


def value_tier_ranks(session: Session) -> dict[str, int]:
    return {c: r for c, r in session.execute(select(ValueTier.code, ValueTier.rank)).all()}


# --- queues -------------------------------------------------------------------------------------

def create_queue(session: Session, *, code: str, name: str, now: datetime, actor: Actor, assignment: str = "manual", is_escalation: bool = False,
                 manager_user_id: int | None = None, skills: list[str] | None = None, calendar_code: str | None = None, description: str | None = None) -> Queue:
    """Raises Conflict (code taken), InvalidInput (bad assignment strategy)."""
    from opsline.cases.models import ASSIGNMENT

    if assignment not in ASSIGNMENT:
        raise InvalidInput(f"assignment must be one of {', '.join(ASSIGNMENT)}", field="assignment")
    if session.execute(select(Queue.id).where(Queue.code == code)).first():
        raise Conflict(f"queue '{code}' exists", field="code")
    q = Queue(code=code, name=name, description=description, is_escalation=is_escalation, manager_user_id=manager_user_id, assignment=assignment,
              skills=skills or [], calendar_code=calendar_code, active=True)
    session.add(q)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="queue", entity_id=q.id, action="created", after={"code": code, "assignment": assignment})
    return q


def add_member(session: Session, *, queue_code: str, user_id: int, now: datetime, actor: Actor, skills: list[str] | None = None) -> QueueMember:
    """Add (or re-activate) a queue member. Raises InvalidInput (unknown queue or user)."""
    q = get_queue(session, code=queue_code)
    if session.get(User, user_id) is None:
        raise InvalidInput(f"user {user_id} not found", field="user_id")
    m = session.execute(select(QueueMember).where(QueueMember.queue_id == q.id, QueueMember.user_id == user_id)).scalar_one_or_none()
    if m is None:
        m = QueueMember(queue_id=q.id, user_id=user_id, skills=skills or [], active=True)
        session.add(m)
    else:
        m.active, m.skills = True, skills if skills is not None else m.skills
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="queue", entity_id=q.id, action="member_added", after={"user_id": user_id, "skills": m.skills})
    return m
