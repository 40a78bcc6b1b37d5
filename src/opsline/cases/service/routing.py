"""Where a case goes and how urgent it is: priority rules, queues, escalation queue, assignment strategies."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsline.cases.models import CaseCategory, PriorityRule, Queue, QueueMember, SupportCase
from opsline.cases.service.common import OPEN, setting
from opsline.core.errors import InvalidInput
from opsline.users.models import User


def compute_priority(session: Session, *, category_code: str, value_tier_code: str | None) -> int:
    """Category default adjusted by every active matching priority rule (tier and/or category), kept in 1..4.
    Raises InvalidInput (unknown category)."""
    cat = session.get(CaseCategory, category_code)
    if cat is None:
        raise InvalidInput(f"unknown category '{category_code}'", field="category_code")
    rules = session.execute(select(PriorityRule).where(PriorityRule.active.is_(True))).scalars()
    adjust = sum(r.adjust for r in rules
                 if (r.value_tier_code is None or r.value_tier_code == value_tier_code) and (r.category_code is None or r.category_code == category_code))
    return max(1, min(4, cat.default_priority + adjust))


def escalation_queue(session: Session) -> Queue:
    """The queue litigation / brand-risk cases go to. Raises InvalidInput when none is configured."""
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
        .where(SupportCase.assignee_user_id.in_(members), SupportCase.state.in_(OPEN))
        .group_by(SupportCase.assignee_user_id)
    ).all())
    return min(members, key=lambda m: (loads.get(m, 0), m))
