"""Idempotency-Key support for POST: a repeated key with the same body replays the first response."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import Integer, String, UniqueConstraint, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsline.core.errors import Conflict
from opsline.db.base import Base, IdPk, JSONType
from opsline.db.session import lock_for_write


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_record"

    id: Mapped[IdPk]
    principal: Mapped[str] = mapped_column(String(120))
    key: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(300))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("principal", "key", name="principal_key"),)


class IdempotencyKeyReused(Conflict):
    title = "Idempotency key reused"
    type_slug = "idempotency-key-reused"


def body_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _serialise(session: Session, *, principal: str, key: str) -> None:
    """Make concurrent repeats of one key wait for the first, so they replay its answer instead of racing it:
    a transaction-scoped advisory lock on PostgreSQL, the write lock on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        lock_id = int.from_bytes(hashlib.sha256(f"{principal}\x00{key}".encode()).digest()[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id})
    else:
        lock_for_write(session)


def run_idempotent(
    session: Session, *, principal: str, key: str | None, method: str, path: str, body: Any, now: datetime,
    action: Callable[[], tuple[int, dict[str, Any]]],
) -> tuple[int, dict[str, Any], bool]:
    """Run `action` once per (principal, key). Returns (status, body, replayed).
    Raises IdempotencyKeyReused when the key was used with a different request."""
    if not key:
        status, resp = action()
        return status, resp, False
    h = body_hash({"method": method, "path": path, "body": body})
    _serialise(session, principal=principal, key=key)
    prior = session.execute(select(IdempotencyRecord).where(IdempotencyRecord.principal == principal, IdempotencyRecord.key == key)).scalar_one_or_none()
    if prior is not None:
        if prior.request_hash != h:
            raise IdempotencyKeyReused(f"Idempotency-Key '{key}' was already used for a different request")
        return prior.status_code, prior.response, True
    status, resp = action()
    session.add(IdempotencyRecord(principal=principal, key=key, method=method, path=path, request_hash=h, status_code=status, response=json.loads(json.dumps(resp, default=str)), created_at=now))
    session.flush()
    return status, resp, False
