"""Append-only audit event log: who did what to which entity, when, why, with before/after snapshots."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsline.db.base import Base, IdPk, JSONType, append_only


@dataclass(frozen=True)
class Actor:
    """Who is acting: a staff user, an API client, or the system (worker, scheduler)."""

    name: str
    user_id: int | None = None
    roles: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_system(self) -> bool:
        """The worker, scheduler or a partner callback acting, not a person."""
        return self.name.startswith("system:")

    @classmethod
    def system(cls, what: str = "system") -> "Actor":
        return cls(name=f"system:{what}", roles=frozenset({"admin"}))


class AuditEvent(Base):
    __tablename__ = "audit_event"

    id: Mapped[IdPk]
    occurred_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(120))
    entity_type: Mapped[str] = mapped_column(String(60))
    entity_id: Mapped[str] = mapped_column(String(60))
    account_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("account.id", ondelete="RESTRICT"), nullable=True)
    action: Mapped[str] = mapped_column(String(80))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)

    __table_args__ = (
        Index("ix_audit_event_entity", "entity_type", "entity_id", "id"),
        Index("ix_audit_event_account", "account_id", "id"),
    )


append_only(AuditEvent.__table__, "audit_event is append-only")


def record(
    session: Session,
    *,
    now: datetime,
    actor: Actor,
    entity_type: str,
    entity_id: object,
    action: str,
    account_id: int | None = None,
    reason: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event in the caller's transaction."""
    ev = AuditEvent(
        occurred_at=now,
        actor=actor.name,
        entity_type=entity_type,
        entity_id=str(entity_id),
        account_id=account_id,
        action=action,
        reason=reason,
        before=before,
        after=after,
    )
    session.add(ev)
    return ev


def history(session: Session, *, entity_type: str, entity_id: object, limit: int = 200) -> list[dict[str, Any]]:
    rows = session.execute(
        select(AuditEvent)
        .where(AuditEvent.entity_type == entity_type, AuditEvent.entity_id == str(entity_id))
        .order_by(AuditEvent.id.desc())
        .limit(limit)
    ).scalars()
    return [as_dict(e) for e in rows]


def account_timeline(session: Session, *, account_id: int, limit: int = 100, before_id: int | None = None) -> list[dict[str, Any]]:
    q = select(AuditEvent).where(AuditEvent.account_id == account_id)
    if before_id:
        q = q.where(AuditEvent.id < before_id)
    rows = session.execute(q.order_by(AuditEvent.id.desc()).limit(limit)).scalars()
    return [as_dict(e) for e in rows]


def as_dict(e: AuditEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "occurred_at": e.occurred_at,
        "actor": e.actor,
        "entity_type": e.entity_type,
        "entity_id": e.entity_id,
        "account_id": e.account_id,
        "action": e.action,
        "reason": e.reason,
        "before": e.before,
        "after": e.after,
    }


def diff(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only the fields that changed, for compact before/after snapshots."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}
