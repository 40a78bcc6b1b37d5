"""Notes (internal, to the customer, to the originating agent), links and attachments on a case."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from opsline.cases import messages
from opsline.cases.models import LINK_TYPES, CaseAttachment, CaseLink, CaseNote, CaseState, SupportCase
from opsline.cases.schemas import NoteIn
from opsline.cases.service import common as cm
from opsline.core.errors import InvalidInput
from opsline.core.events import Actor

FINISHED = (CaseState.CLOSED, CaseState.CANCELLED, CaseState.REJECTED)


def write_note(session: Session, c: SupportCase, *, data: NoteIn, now: datetime, actor: Actor, author: str | None = None, direction: str = "out",
               email_message_id: str | None = None) -> CaseNote:
    """Add a note to a loaded case (see `add_note`); does not publish."""
    if c.state in FINISHED and direction == "out":
        raise cm.NoteNotAllowed(f"case {c.reference} is {c.state}; reopen it to add notes")
    agent_to = None
    if direction == "out" and data.visibility == "customer" and not c.contact_email:
        raise cm.UnableToChangeCase(f"case {c.reference} has no customer email address", field="visibility")
    if direction == "out" and data.visibility == "originating_agent":
        agent_to = messages.address_of(c.originating_agent)
        if not agent_to:
            raise cm.UnableToChangeCase(f"case {c.reference} has no originating agent email address", field="visibility")
    note = CaseNote(case_id=c.id, account_id=c.account_id, at=now, author=author or actor.name, visibility=data.visibility, direction=direction,
                    body=data.body, email_message_id=email_message_id)
    session.add(note)
    session.flush()
    cm.history(session, c, now=now, actor=actor, kind="note", to_value=data.visibility, data={"note_id": note.id, "visibility": data.visibility, "direction": direction})
    cm.audit(session, c, now=now, actor=actor, action="note_added", after={"visibility": data.visibility, "direction": direction, "body": data.body[:500]})
    if direction == "out" and data.visibility == "customer":
        note.email_message_id = f"notification:{messages.note_to_customer(session, c, note_id=note.id, body=data.body, now=now, actor=actor)}"
        if c.first_response_at is None and not messages.needs_sign_off(c):
            c.first_response_at = now
            cm.history(session, c, now=now, actor=actor, kind="first_response", to_value="note")
    elif agent_to:
        note.email_message_id = f"notification:{messages.note_to_agent(session, c, note_id=note.id, to=agent_to, body=data.body, now=now, actor=actor)}"
    c.updated_at = now
    return note


@cm.one_call
def add_note(session: Session, *, case_id: int, data: NoteIn, now: datetime, actor: Actor, author: str | None = None, direction: str = "out",
             email_message_id: str | None = None) -> CaseNote:
    """Add a note. A note to the customer or the originating agent is sent as a message; the first note to the
    customer is the first response (on a case flagged litigation / brand risk / contractual dispute the note waits
    for Legal/Brand sign-off, and only counts once sent). Raises CaseNotFound, NoteNotAllowed (closed/cancelled case),
    UnableToChangeCase (no address to send to)."""
    c = cm.get_case(session, case_id=case_id, for_update=True)
    note = write_note(session, c, data=data, now=now, actor=actor, author=author, direction=direction, email_message_id=email_message_id)
    cm.changed(session, c, now=now, actor=actor, what="note", clocks=data.visibility != "internal")  # an internal note moves no clock
    return note


def add_link(session: Session, *, case_id: int, target_type: str, now: datetime, actor: Actor, target_id: str | None = None,
             target_ref: str | None = None, note: str | None = None, data: dict[str, Any] | None = None) -> CaseLink:
    """Raises CaseNotFound, InvalidInput (unknown target type, nothing to link to)."""
    c = cm.get_case(session, case_id=case_id, for_update=True)
    if target_type not in LINK_TYPES:
        raise InvalidInput(f"unknown link type '{target_type}'; choose from {', '.join(LINK_TYPES)}", field="target_type")
    if not (target_id or target_ref):
        raise InvalidInput("give the id or reference to link to", field="target_id")
    link = CaseLink(case_id=c.id, account_id=c.account_id, target_type=target_type, target_id=target_id, target_ref=target_ref, note=note,
                    data=data, created_at=now, created_by=actor.name)
    session.add(link)
    session.flush()
    cm.audit(session, c, now=now, actor=actor, action="linked", after={"target_type": target_type, "target_id": target_id, "target_ref": target_ref})
    return link


def add_attachment(session: Session, *, case_id: int, filename: str, content_type: str, data: bytes, now: datetime, actor: Actor) -> CaseAttachment:
    """Raises CaseNotFound, InvalidInput (empty or too large)."""
    c = cm.get_case(session, case_id=case_id, for_update=True)
    limit = cm.setting_int(session, "attachment_max_bytes", 5 * 1024 * 1024)
    if not data:
        raise InvalidInput("the attachment is empty", field="file")
    if len(data) > min(limit, 5 * 1024 * 1024):
        raise InvalidInput(f"the attachment is {len(data)} bytes; the limit is {limit}", field="file")
    att = CaseAttachment(case_id=c.id, account_id=c.account_id, filename=(filename or "attachment")[:255], content_type=(content_type or "application/octet-stream")[:120],
                         size=len(data), data=data, uploaded_at=now, uploaded_by=actor.name)
    session.add(att)
    session.flush()
    cm.audit(session, c, now=now, actor=actor, action="attachment_added", after={"filename": att.filename, "size": att.size})
    return att
