"""Tables for customer portal sign-in: users, their access to a customer (party), sessions, one-time tokens, attempts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from opsline.db.base import Base, IdPk

# holder: a consumer's own login; admin: a company's admin contact (invites users); the rest are invited company users
PORTAL_ROLES = ("holder", "admin", "viewer", "orderer", "billing")
TOKEN_PURPOSES = ("verify", "reset", "invite")


class PortalUser(Base):
    __tablename__ = "portal_user"

    id: Mapped[IdPk]
    email: Mapped[str] = mapped_column(String(200), unique=True)  # stored lower-case
    full_name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(30))
    password_hash: Mapped[str | None] = mapped_column(String(200))  # None until an invited user sets one
    email_verified_at: Mapped[datetime | None]
    sms_code: Mapped[bool] = mapped_column(Boolean, default=False)  # a one-time code by SMS after the password
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))


class PortalMembership(Base):
    """Which customer (party) a portal user acts for, and in what role; the party's accounts are what they see."""

    __tablename__ = "portal_membership"

    id: Mapped[IdPk]
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("portal_user.id"), index=True)
    party_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("party.id"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))

    __table_args__ = (
        UniqueConstraint("user_id", "party_id", name="uq_portal_membership_user_party"),
        CheckConstraint("role IN ('holder','admin','viewer','orderer','billing')", name="role"),
    )


class PortalSession(Base):
    """A server-side customer session: the cookie holds a random token, the table its SHA-256."""

    __tablename__ = "portal_session"

    id: Mapped[IdPk]
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("portal_user.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    code_hash: Mapped[str | None] = mapped_column(String(64))  # a pending SMS code (session not usable until it is entered)
    code_expires_at: Mapped[datetime | None]
    code_attempts: Mapped[int] = mapped_column(Integer, default=0)


class PortalToken(Base):
    """A single-use, expiring link token (email verification, password reset, invitation); only its hash is kept."""

    __tablename__ = "portal_token"

    id: Mapped[IdPk]
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("portal_user.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(10))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]

    __table_args__ = (CheckConstraint("purpose IN ('verify','reset','invite')", name="purpose"),)


class PortalSignInAttempt(Base):
    __tablename__ = "portal_sign_in_attempt"

    id: Mapped[IdPk]
    email: Mapped[str] = mapped_column(String(200))
    ip: Mapped[str] = mapped_column(String(64))
    attempted_at: Mapped[datetime]
    succeeded: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (Index("ix_portal_sign_in_attempt_email_ip", "email", "ip", "attempted_at"),
                      Index("ix_portal_sign_in_attempt_ip", "ip", "attempted_at"))
