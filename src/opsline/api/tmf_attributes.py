"""Attributes a TM Forum client sends that Opsline has no column for (an order's category and notes, item prices,
terms, relationships, a customer's credit profile or agreements ...): kept on the resource's audit trail and returned
with the resource, so nothing sent is silently dropped (issue 14). Any TMF API may use it; read for a whole page in
one query. A PATCH that changes them records a new set: the latest set recorded is the one returned."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.core import events
from opsline.core.events import Actor, AuditEvent

ACTION = "tmf_attributes_received"


def keep(session: Session, *, entity_type: str, entity_id: int, account_id: int | None, attributes: dict[str, Any], now: datetime, actor: Actor,
         replace: bool = False) -> None:
    """Record what the client sent beyond our columns. Nothing is recorded when there is nothing, unless `replace`
    (a PATCH that removed the last kept attribute records the now empty set)."""
    if attributes or replace:
        events.record(session, now=now, actor=actor, entity_type=entity_type, entity_id=entity_id, account_id=account_id, action=ACTION,
                      after={"attributes": attributes})


def kept(session: Session, *, entity_type: str, ids: list[int]) -> dict[int, dict[str, Any]]:
    """The attributes kept for these resources (id -> the latest set recorded; missing when none were ever sent)."""
    if not ids:
        return {}
    rows = session.execute(select(AuditEvent.entity_id, AuditEvent.after).where(
        AuditEvent.entity_type == entity_type, AuditEvent.entity_id.in_([str(i) for i in ids]), AuditEvent.action == ACTION)
        .order_by(AuditEvent.id)).all()
    return {int(eid): (after or {}).get("attributes", {}) for eid, after in rows}
