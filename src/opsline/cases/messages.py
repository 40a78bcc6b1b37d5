"""Every message the cases area sends to a person: notes to the customer, feedback to the originating agent,
escalations to a queue manager and the ICASA complaint acknowledgement. One room, so the channel is swapped in one
place. Returns the message's id for the note row."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from opsline.cases import mail
from opsline.cases.models import Queue, SupportCase
from opsline.core.events import Actor
from opsline.users.models import User


def needs_sign_off(c: SupportCase) -> bool:
    """Formal communication on a case flagged litigation, brand risk or contractual dispute waits for Legal/Brand."""
    return bool(c.litigation_risk or c.brand_risk or c.contractual_dispute)


def note_to_customer(session: Session, c: SupportCase, *, body: str, now: datetime, actor: Actor) -> str:
    msg = mail.queue_email(session, case=c, to=c.contact_email or "", purpose="note_customer", now=now, subject=f"[{c.reference}] {c.subject}", body=body)
    return msg.message_id


def note_to_agent(session: Session, c: SupportCase, *, to: str, body: str, now: datetime, actor: Actor) -> str:
    msg = mail.queue_email(session, case=c, to=to, purpose="note_originating_agent", now=now, subject=f"[{c.reference}] {c.subject}", body=body)
    return msg.message_id


def resolved(session: Session, c: SupportCase, *, now: datetime, actor: Actor) -> None:
    """Resolving tells the customer and the originating front-line agent (feedback loop)."""
    body = f"Case {c.reference}: {c.subject}\n\nResolution:\n{c.resolution}\n\nReply to this email (keep {c.reference} in the subject) if the problem is not solved."
    if c.contact_email:
        mail.queue_email(session, case=c, to=c.contact_email, purpose="resolved_customer", now=now, subject=f"[{c.reference}] Resolved: {c.subject}", body=body)
    agent = mail.address_of(c.originating_agent)
    if agent:
        mail.queue_email(session, case=c, to=agent, purpose="resolved_agent", now=now, subject=f"[{c.reference}] Feedback: the case you escalated is resolved",
                         body=f"The case you escalated has been resolved by second line.\n\n{body}")


def escalated(session: Session, c: SupportCase, queue: Queue, *, why: str, now: datetime, actor: Actor) -> None:
    """Tell the receiving queue's manager (if the queue has one with an email address)."""
    mgr = session.get(User, queue.manager_user_id) if queue.manager_user_id is not None else None
    if mgr is None or not mgr.email:
        return
    mail.queue_email(session, case=c, to=mgr.email, purpose="escalation", now=now, subject=f"[{c.reference}] Escalated to {queue.name}: {c.subject}",
                     body=f"Case {c.reference} was routed to {queue.name} because of {why}.\n\nSubject: {c.subject}\nPriority: P{c.priority}\n\n{c.description or ''}")


def complaint_acknowledged(session: Session, c: SupportCase, *, now: datetime, actor: Actor) -> None:
    """ICASA: a complaint is acknowledged with its reference (sent when it is opened, well within 48 hours)."""
    if not c.contact_email:
        return
    mail.queue_email(session, case=c, to=c.contact_email, purpose="complaint_ack", now=now, subject=f"[{c.reference}] We have received your complaint",
                     body=f"Your complaint '{c.subject}' is logged under reference {c.reference}. Quote it whenever you contact us; "
                          f"we will resolve it within 14 days.")
