"""Queues and their members (reference data edited by managers)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.cases.models import ASSIGNMENT, Queue, QueueMember
from opsline.cases.service.common import get_queue
from opsline.core import events
from opsline.core.errors import Conflict, InvalidInput
from opsline.core.events import Actor
from opsline.users.models import User


def create_queue(session: Session, *, code: str, name: str, now: datetime, actor: Actor, assignment: str = "manual", is_escalation: bool = False,
                 manager_user_id: int | None = None, skills: list[str] | None = None, calendar_code: str | None = None, description: str | None = None) -> Queue:
    """Raises Conflict (code taken), InvalidInput (bad assignment strategy)."""
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
