"""Tables for staff users and API clients."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from opsline.db.base import Base, IdPk, JSONType


class User(Base):
    __tablename__ = "staff_user"

    id: Mapped[IdPk]
    username: Mapped[str] = mapped_column(String(60), unique=True)
    full_name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    roles: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    skills: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]

    def __str__(self) -> str:
        return self.username


class ApiClient(Base):
    """A system that calls the REST API with a bearer token (only the token's hash is kept)."""

    __tablename__ = "api_client"

    id: Mapped[IdPk]
    name: Mapped[str] = mapped_column(String(80), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    roles: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class StaffSession(Base):
    """A signed-in staff session kept on the server: the browser holds only a random token whose hash is stored
    here, so a session can be listed, expired and revoked (sign-out really ends it) and nothing about the user
    travels in the cookie."""

    __tablename__ = "staff_session"

    id: Mapped[IdPk]
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("staff_user.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))


class SignInAttempt(Base):
    """One password sign-in attempt, kept server-side so repeated failures for a username from one address
    (and from one address overall) are slowed down across every web process."""

    __tablename__ = "sign_in_attempt"

    id: Mapped[IdPk]
    username: Mapped[str] = mapped_column(String(60))
    ip: Mapped[str] = mapped_column(String(64))
    attempted_at: Mapped[datetime]
    succeeded: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        Index("ix_sign_in_attempt_user_ip", "username", "ip", "attempted_at"),
        Index("ix_sign_in_attempt_ip", "ip", "attempted_at"),
    )
