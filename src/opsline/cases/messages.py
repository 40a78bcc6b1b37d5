"""Every message the cases area sends: notes to the customer, feedback to the originating agent, escalations to a
queue manager and the ICASA complaint acknowledgement. All go through `opsline.notifications.service.send` (templates
are data, seeded below; delivery, retries, opt-outs, quiet hours and the account timeline are the notifications
area's). Formal communication on a case flagged litigation, brand risk or contractual dispute is held for Legal/Brand
sign-off (`needs_approval`)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from opsline.cases.models import Queue, SupportCase
from opsline.core.events import Actor
from opsline.notifications import service as notifications
from opsline.users.models import User

_ADDR = re.compile(r"[\w.+'-]+@[\w-]+(\.[\w-]+)+")

NOTE = "case.note_to_customer"
AGENT_NOTE = "case.note_to_agent"
RESOLVED = "case.resolved"
AGENT_FEEDBACK = "case.resolved_agent_feedback"
ESCALATED = "case.escalated"
COMPLAINT_ACK = "case.complaint_acknowledged"

# event -> (subject, body); the subject keeps the reference in brackets so replies thread onto the case
TEMPLATES: dict[str, tuple[str, str]] = {
    NOTE: ("[{{ case.reference }}] {{ case.subject }}", "{{ body }}\n\nReply to this email (keep {{ case.reference }} in the subject) to add to your case."),
    AGENT_NOTE: ("[{{ case.reference }}] {{ case.subject }}", "Second line on the case you escalated:\n\n{{ body }}"),
    RESOLVED: ("[{{ case.reference }}] Resolved: {{ case.subject }}",
               "Case {{ case.reference }}: {{ case.subject }}\n\nResolution:\n{{ case.resolution }}\n\n"
               "Reply to this email (keep {{ case.reference }} in the subject) if the problem is not solved."),
    AGENT_FEEDBACK: ("[{{ case.reference }}] Feedback: the case you escalated is resolved",
                     "The case you escalated has been resolved by second line.\n\nCase {{ case.reference }}: {{ case.subject }}\n\n"
                     "Resolution:\n{{ case.resolution }}"),
    ESCALATED: ("[{{ case.reference }}] Escalated to {{ queue }}: {{ case.subject }}",
                "Case {{ case.reference }} was routed to {{ queue }} because of {{ why }}.\n\nSubject: {{ case.subject }}\n"
                "Priority: P{{ case.priority }}\n\n{{ case.description }}"),
    COMPLAINT_ACK: ("[{{ case.reference }}] We have received your complaint",
                    "Your complaint '{{ case.subject }}' is logged under reference {{ case.reference }}. Please quote it whenever you "
                    "contact us. We will resolve it within {{ resolve_days }} days."),
}


def seed_templates(session: Session, *, now: datetime, language: str = "en") -> None:
    """The cases area's message templates (idempotent; operators edit them in the notifications desk)."""
    sample = {"case": {"reference": "CS00000042", "subject": "Double debit order", "resolution": "Refund processed", "priority": 2, "description": ""},
              "body": "We are checking the debit order file.", "queue": "Escalations", "why": "litigation risk", "resolve_days": 14}
    for event, (subject, body) in TEMPLATES.items():
        notifications.ensure_template(session, event=event, channel="email", language=language, subject=subject, body=body, now=now,
                                      description=f"Cases: {event.split('.', 1)[1].replace('_', ' ')}", sample_context=sample)


def address_of(text: str | None) -> str | None:
    """The email address inside 'Name <a@b>' or a bare address; None when there is none."""
    if not text:
        return None
    m = _ADDR.search(text)
    return m.group(0) if m else None


def needs_sign_off(c: SupportCase) -> bool:
    """Formal communication on a case flagged litigation, brand risk or contractual dispute waits for Legal/Brand."""
    return bool(c.litigation_risk or c.brand_risk or c.contractual_dispute)


def _case(c: SupportCase) -> dict[str, Any]:
    return {"reference": c.reference, "subject": c.subject, "resolution": c.resolution or "", "priority": c.priority, "description": c.description or ""}


def _to_customer(session: Session, c: SupportCase, *, event: str, context: dict[str, Any], now: datetime, actor: Actor, key: str) -> int:
    return notifications.send(session, event=event, account_id=c.account_id, context={"case": _case(c)} | context, now=now, actor=actor,
                              to=c.contact_email, subject_ref=c.reference, needs_approval=needs_sign_off(c), idempotency_key=key)


def _to_staff(session: Session, c: SupportCase, *, to: str, event: str, context: dict[str, Any], now: datetime, actor: Actor, key: str) -> int:
    # Internal mail: not on the customer's timeline and not subject to the customer's opt-outs.
    return notifications.send(session, event=event, account_id=None, context={"case": _case(c)} | context, now=now, actor=actor, to=to,
                              subject_ref=c.reference, idempotency_key=key)


def note_to_customer(session: Session, c: SupportCase, *, note_id: int, body: str, now: datetime, actor: Actor) -> int:
    return _to_customer(session, c, event=NOTE, context={"body": body}, now=now, actor=actor, key=f"case-note:{note_id}")


def note_to_agent(session: Session, c: SupportCase, *, note_id: int, to: str, body: str, now: datetime, actor: Actor) -> int:
    return _to_staff(session, c, to=to, event=AGENT_NOTE, context={"body": body}, now=now, actor=actor, key=f"case-note:{note_id}")


def resolved(session: Session, c: SupportCase, *, now: datetime, actor: Actor) -> None:
    """Resolving tells the customer and the originating front-line agent (feedback loop)."""
    stamp = f"{c.id}:{c.reopen_count}"
    if c.contact_email:
        _to_customer(session, c, event=RESOLVED, context={}, now=now, actor=actor, key=f"case-resolved:{stamp}")
    agent = address_of(c.originating_agent)
    if agent:
        _to_staff(session, c, to=agent, event=AGENT_FEEDBACK, context={}, now=now, actor=actor, key=f"case-feedback:{stamp}")


def escalated(session: Session, c: SupportCase, queue: Queue, *, why: str, now: datetime, actor: Actor) -> None:
    """Tell the receiving queue's manager (if the queue has one with an email address)."""
    mgr = session.get(User, queue.manager_user_id) if queue.manager_user_id is not None else None
    if mgr is None or not mgr.email:
        return
    _to_staff(session, c, to=mgr.email, event=ESCALATED, context={"queue": queue.name, "why": why}, now=now, actor=actor,
              key=f"case-escalated:{c.id}:{queue.id}:{now.isoformat()}")


def complaint_acknowledged(session: Session, c: SupportCase, *, resolve_days: int, now: datetime, actor: Actor) -> int | None:
    """ICASA: a complaint is acknowledged with its reference when it is opened (well within the 48 hours)."""
    if not c.contact_email and c.account_id is None:
        return None
    return _to_customer(session, c, event=COMPLAINT_ACK, context={"resolve_days": resolve_days}, now=now, actor=actor, key=f"case-ack:{c.id}")
