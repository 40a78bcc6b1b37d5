"""Opening a case and changing it: lifecycle actions (declared in `models.CASE`), hand-offs, priority, and the one
combined update the TMF621 PATCH calls. Each operation publishes `case.changed` once."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from opsline.cases import messages
from opsline.cases.models import CASE, CaseCategory, CaseState, Queue, SupportCase
from opsline.cases.schemas import CaseIn, NoteIn
from opsline.cases.service import common as cm
from opsline.cases.service.notes import write_note
from opsline.cases.service.routing import compute_priority, escalation_queue, pick_assignee
from opsline.core import lifecycle
from opsline.core.errors import InvalidInput
from opsline.core.events import Actor
from opsline.core.ids import reference as make_reference
from opsline.customers.models import Account
from opsline.users.models import User

S = CaseState
TMF_STATUS_TO_ACTION = {"pending": "pend", "held": "hold", "resolved": "resolve", "closed": "close", "cancelled": "cancel", "rejected": "reject"}
_TO_IN_PROGRESS = {"acknowledged": "start", "pending": "resume", "held": "resume", "resolved": "reopen", "closed": "reopen"}


def allowed_actions(state: str, *, actor: Actor | None = None) -> list[str]:
    return CASE.allowed_actions(state, actor=actor)


def action_for_status(current: str, status: str) -> str:
    """The lifecycle action that moves a case from `current` to the TMF621 `status`. Raises InvalidInput."""
    if status not in CASE.state_values() or status == S.ACKNOWLEDGED:
        raise InvalidInput(f"status cannot be set to '{status}'", field="status")
    if status == S.IN_PROGRESS:
        return _TO_IN_PROGRESS.get(current, "start")
    return TMF_STATUS_TO_ACTION[status]


@cm.one_call
def open_case(session: Session, *, data: CaseIn, now: datetime, actor: Actor, tmf: dict[str, Any] | None = None) -> SupportCase:
    """Open a case: priority from category and value tier, queue from category (or the escalation queue for
    litigation / brand risk, whose manager is told), assignee by the queue's strategy. A complaint gets its ICASA
    acknowledgement with the reference. `tmf`: the TMF621 attributes sent that have no column (severity as sent,
    externalId, attachments ...), kept with the opening in the case history and shown by the API.
    Raises UnableToOpenCase / InvalidInput (unknown account, category, queue or assignee)."""
    cat = session.get(CaseCategory, data.category_code)
    if cat is None:
        raise cm.UnableToOpenCase(f"unknown category '{data.category_code}'", field="category_code")
    acc = None
    if data.account_id is not None:
        acc = session.get(Account, data.account_id)
        if acc is None:
            raise cm.UnableToOpenCase(f"account {data.account_id} not found", field="account_id")
    escalate = data.litigation_risk or data.brand_risk
    if escalate:
        queue = escalation_queue(session)
    elif data.queue_code:
        queue = cm.get_queue(session, code=data.queue_code)
    else:
        if not cat.default_queue_code:
            raise cm.UnableToOpenCase(f"category '{cat.code}' has no default queue; choose one", field="queue_code")
        queue = cm.get_queue(session, code=cat.default_queue_code)
    if data.assignee_user_id is not None and session.get(User, data.assignee_user_id) is None:
        raise cm.UnableToOpenCase(f"user {data.assignee_user_id} not found", field="assignee_user_id")
    tier = acc.value_tier_code if acc else None
    priority = compute_priority(session, category_code=cat.code, value_tier_code=tier)
    if data.priority is not None:
        priority = min(priority, data.priority)  # callers may raise urgency, never lower what the rules say
    c = SupportCase(
        reference="~" + secrets.token_hex(8), account_id=acc.id if acc else None, category_code=cat.code, channel=data.channel,
        subject=data.subject, description=data.description, state=CASE.initial, priority=priority, value_tier_code=tier,
        queue_id=queue.id, assignee_user_id=None, originating_agent=data.originating_agent,
        contact_email=data.contact_email or (acc.email if acc else None), contact_phone=data.contact_phone or (acc.phone if acc else None),
        litigation_risk=data.litigation_risk, brand_risk=data.brand_risk, contractual_dispute=data.contractual_dispute,
        opened_at=now, opened_by=actor.name, reopen_count=0, updated_at=now,
    )
    session.add(c)
    session.flush()
    c.reference = make_reference("CS", c.id)
    assignee = data.assignee_user_id if data.assignee_user_id is not None else pick_assignee(session, queue=queue, category_code=cat.code)
    c.assignee_user_id = assignee
    cm.history(session, c, now=now, actor=actor, kind="opened", to_value=c.state,
               data={"queue": queue.code, "priority": priority, "channel": c.channel, "category": cat.code, "assignee_user_id": assignee}
               | ({"tmf": tmf} if tmf else {}))
    if assignee is not None:
        cm.history(session, c, now=now, actor=actor, kind="assignee", to_value=assignee,
                   reason=f"{queue.assignment} assignment" if data.assignee_user_id is None else "chosen")
    cm.audit(session, c, now=now, actor=actor, action="opened", after={"category": cat.code, "queue": queue.code, "priority": priority, "state": c.state})
    if escalate:
        why = " and ".join(w for w, f in (("litigation risk", data.litigation_risk), ("brand risk", data.brand_risk)) if f)
        messages.escalated(session, c, queue, why=why, now=now, actor=actor)
    if cat.code in {x.strip() for x in cm.setting(session, "icasa_ack_categories", "complaint").split(",")}:
        messages.complaint_acknowledged(session, c, resolve_days=cm.setting_int(session, "complaint_resolve_days", 14), now=now, actor=actor)
    cm.changed(session, c, now=now, actor=actor, what="opened")
    return c


def _apply(session: Session, c: SupportCase, *, action: str, now: datetime, actor: Actor, reason: str | None, partner_code: str | None,
           resolution: str | None) -> list[str]:
    """One lifecycle action on a loaded case (validation, side fields, history, audit via `lifecycle.transition`)."""
    reason = (reason or "").strip() or None
    if CASE.target(c.state, action) is not None:  # refusals of the move itself come from lifecycle.transition
        if action == "hold" and not (partner_code or "").strip():
            raise cm.UnableToChangeCase("a third-party partner code is required to hold a case", field="partner_code")
        if action == "resolve" and not (resolution or "").strip():
            raise cm.UnableToChangeCase("a resolution note is required to resolve a case", field="resolution")
    before = c.state
    data: dict[str, Any] = {}
    if action == "pend":
        data = {"reason": reason}
    elif action == "hold":
        data = {"partner_code": (partner_code or "").strip()}
    if before == S.HELD and action in ("resume", "resolve", "cancel"):
        data["released_partner_code"] = c.third_party_partner_code
    nxt = lifecycle.transition(session, CASE, c, action, now=now, actor=actor, reason=reason or (resolution or "").strip() or None,
                               details=data or None, label=f"case {c.reference}")
    target = c.state
    if action == "pend":
        c.pending_reason, c.ever_pending = reason, True
    elif action == "hold":
        c.third_party_partner_code, c.held_reason = data["partner_code"], reason
    elif action == "resolve":
        c.resolved_at, c.resolved_by, c.resolution = now, actor.name, (resolution or "").strip()
        window = cm.setting_int(session, "fcr_window_minutes", 60)
        c.fcr_candidate = (c.reopen_count == 0 and not c.ever_pending and not c.ever_handed_off and c.resolved_by == c.opened_by
                           and now - c.opened_at <= timedelta(minutes=window))
        if c.first_response_at is None:
            c.first_response_at = now
            cm.history(session, c, now=now, actor=actor, kind="first_response", to_value="resolution")
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
    c.updated_at = now
    if action == "reopen":
        cm.history(session, c, now=now, actor=actor, kind="reopened", from_value=before, to_value=target, reason=reason)
    cm.history(session, c, now=now, actor=actor, kind="state", from_value=before, to_value=target, reason=reason or resolution, data=data or None)
    if action == "resolve":
        messages.resolved(session, c, now=now, actor=actor)
    return nxt


@cm.one_call
def transition(session: Session, *, case_id: int, action: str, now: datetime, actor: Actor, reason: str | None = None,
               partner_code: str | None = None, resolution: str | None = None, version: int | None = None) -> list[str]:
    """Apply a lifecycle action; returns the next allowed actions.
    pend, cancel, reject and reopen need a reason; hold needs a partner code; resolve needs a resolution note.
    Raises CaseNotFound, TransitionNotAllowed, ReasonRequired, UnableToChangeCase (missing partner / resolution), StaleVersion."""
    c = cm.get_case(session, case_id=case_id, for_update=True)
    cm.check_version(c, version)
    nxt = _apply(session, c, action=action, now=now, actor=actor, reason=reason, partner_code=partner_code, resolution=resolution)
    cm.changed(session, c, now=now, actor=actor, what=action)
    return nxt


def _set_priority(session: Session, c: SupportCase, *, priority: int, now: datetime, actor: Actor, reason: str) -> None:
    if priority not in (1, 2, 3, 4):
        raise cm.UnableToChangeCase("priority must be 1 (highest) to 4", field="priority")
    if not (reason or "").strip():
        raise cm.UnableToChangeCase("a reason is required to change priority", field="reason")
    cm.require_open(c, "changing its priority")
    if priority == c.priority:
        return
    before = c.priority
    c.priority, c.updated_at = priority, now
    cm.history(session, c, now=now, actor=actor, kind="priority", from_value=before, to_value=priority, reason=reason)
    cm.audit(session, c, now=now, actor=actor, action="priority_changed", reason=reason, before={"priority": before}, after={"priority": priority})


@cm.one_call
def change_priority(session: Session, *, case_id: int, priority: int, now: datetime, actor: Actor, reason: str) -> SupportCase:
    """Raises CaseNotFound, UnableToChangeCase (bad priority, no reason), CaseNotOpen (case finished)."""
    c = cm.get_case(session, case_id=case_id, for_update=True)
    _set_priority(session, c, priority=priority, now=now, actor=actor, reason=reason)
    cm.changed(session, c, now=now, actor=actor, what="priority")
    return c


def _hand_over(session: Session, c: SupportCase, *, now: datetime, actor: Actor, queue_code: str | None, assignee_user_id: int | None,
               auto: bool, reason: str | None) -> None:
    cm.require_open(c, "handing it on")
    queue = session.get(Queue, c.queue_id)
    if queue_code and queue_code != (queue.code if queue else None):
        new_q = cm.get_queue(session, code=queue_code)
        cm.history(session, c, now=now, actor=actor, kind="queue", from_value=queue.code if queue else None, to_value=new_q.code, reason=reason,
                   data={"from_queue_id": c.queue_id, "to_queue_id": new_q.id})
        cm.audit(session, c, now=now, actor=actor, action="handed_off", reason=reason, before={"queue": queue.code if queue else None}, after={"queue": new_q.code})
        c.queue_id, c.ever_handed_off, queue = new_q.id, True, new_q
        if assignee_user_id is None and not auto:
            assignee_user_id = -1  # hand-off without a named person: unassigned in the new queue
        if new_q.is_escalation:
            messages.escalated(session, c, new_q, why=reason or "a hand-off", now=now, actor=actor)
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
        cm.history(session, c, now=now, actor=actor, kind="assignee", from_value=c.assignee_user_id, to_value=new_assignee, reason=reason)
        cm.audit(session, c, now=now, actor=actor, action="assigned", reason=reason, before={"assignee_user_id": c.assignee_user_id}, after={"assignee_user_id": new_assignee})
        c.assignee_user_id = new_assignee
    c.updated_at = now


@cm.one_call
def assign(session: Session, *, case_id: int, now: datetime, actor: Actor, queue_code: str | None = None, assignee_user_id: int | None = None,
           auto: bool = False, reason: str | None = None) -> SupportCase:
    """Hand the case to another queue and/or assignee. A queue change is a hand-off ('queue' case event: the
    receiving team's clock starts); with `auto` the receiving queue's strategy picks the assignee.
    Raises CaseNotFound, InvalidInput (unknown queue or user), CaseNotOpen (finished case)."""
    c = cm.get_case(session, case_id=case_id, for_update=True)
    _hand_over(session, c, now=now, actor=actor, queue_code=queue_code, assignee_user_id=assignee_user_id, auto=auto, reason=reason)
    cm.changed(session, c, now=now, actor=actor, what="assignment")
    return c


@cm.one_call
def update_case(session: Session, *, case_id: int, now: datetime, actor: Actor, status: str | None = None, reason: str | None = None,
                partner_code: str | None = None, priority: int | None = None, queue_code: str | None = None,
                notes: list[tuple[str, str | None]] | None = None, version: int | None = None, severity: str | None = None) -> SupportCase:
    """Several changes in one call (the TMF621 PATCH): status (as a lifecycle action), priority, queue, internal
    notes `(text, author)`, the severity the reporter gives (kept as given, in the history: it does not set the priority).
    All or nothing; the SLA clocks are recomputed once, at the end.
    Raises what `transition`, `change_priority`, `assign` and `add_note` raise."""
    c = cm.get_case(session, case_id=case_id, for_update=True)
    cm.check_version(c, version)
    what = []
    if status and status != c.state:
        action = action_for_status(c.state, status)
        _apply(session, c, action=action, now=now, actor=actor, reason=reason, partner_code=partner_code, resolution=reason)
        what.append(action)
    if priority is not None and priority != c.priority:
        _set_priority(session, c, priority=priority, now=now, actor=actor, reason=reason or "changed through the API")
        what.append("priority")
    if severity is not None:
        cm.require_open(c, "changing its severity")
        cm.history(session, c, now=now, actor=actor, kind="priority", from_value=c.priority, to_value=c.priority, reason=reason or "severity changed",
                   data={"severity": severity})
        cm.audit(session, c, now=now, actor=actor, action="severity_changed", reason=reason, after={"severity": severity})
        what.append("severity")
    if queue_code:
        _hand_over(session, c, now=now, actor=actor, queue_code=queue_code, assignee_user_id=None, auto=True, reason=reason or "changed through the API")
        what.append("assignment")
    for text, author in notes or []:
        write_note(session, c, data=NoteIn(body=text, visibility="internal"), now=now, actor=actor, author=author)
        what.append("note")
    if what:
        cm.changed(session, c, now=now, actor=actor, what=",".join(what))
    return c
