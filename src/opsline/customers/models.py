"""Tables for parties, accounts, contacts, sites, memos and the reference data that classifies accounts."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from opsline.core.lifecycle import Lifecycle
from opsline.customers.search import attach_ddl
from opsline.db.base import Base, IdPk, JSONType, append_only
from opsline.db.sequences import NumberSequence  # noqa: F401  (account numbers come from a sequence)


class PartyKind(enum.StrEnum):
    PERSON = "person"
    ORGANISATION = "organisation"


class AccountKind(enum.StrEnum):
    RETAIL = "retail"
    B2B = "b2b"
    WHOLESALE = "wholesale"


class AccountStatus(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


_A = AccountStatus
# The account lifecycle: the one place that says which status changes exist (buttons, CHECK constraint, audit and the
# `account.<status>` domain events other areas subscribe to come from it).
ACCOUNT = Lifecycle(
    name="account",
    states=AccountStatus,
    column="status",
    initial=_A.ACTIVE,
    transitions={
        _A.PENDING: {"activate": _A.ACTIVE, "close": _A.CLOSED},
        _A.ACTIVE: {"suspend": _A.SUSPENDED, "close": _A.CLOSED},
        _A.SUSPENDED: {"reconnect": _A.ACTIVE, "close": _A.CLOSED},
        _A.CLOSED: {},
    },
    needs_reason={"suspend", "reconnect", "close"},
    # One permission per action (granted in customers/area.py): not every role that edits an account may cut it off.
    permissions={"activate": "accounts.activate", "suspend": "accounts.suspend", "reconnect": "accounts.reconnect", "close": "accounts.close"},
    labels={"activate": "Activate", "suspend": "Suspend", "reconnect": "Reconnect", "close": "Close account"},
)


class Segment(Base):
    """Reference data: market segment (consumer, SOHO, SME, enterprise, wholesale ...)."""

    __tablename__ = "segment"
    code: Mapped[str] = mapped_column(String(30), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))

    def __str__(self) -> str:
        return self.name


class ValueTier(Base):
    """Reference data: customer value tier; `rank` orders work queues (lower = served first)."""

    __tablename__ = "value_tier"
    code: Mapped[str] = mapped_column(String(30), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    rank: Mapped[int] = mapped_column(Integer, default=100)

    def __str__(self) -> str:
        return self.name


class Party(Base):
    __tablename__ = "party"

    id: Mapped[IdPk]
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    given_name: Mapped[str | None] = mapped_column(String(100))
    family_name: Mapped[str | None] = mapped_column(String(100))
    registration_number: Mapped[str | None] = mapped_column(String(40))
    id_number: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime]

    __table_args__ = (CheckConstraint("kind IN ('person','organisation')", name="kind"),)


class Account(Base):
    __tablename__ = "account"

    id: Mapped[IdPk]
    account_number: Mapped[str] = mapped_column(String(20), unique=True)
    party_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("party.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=AccountStatus.ACTIVE)
    segment_code: Mapped[str] = mapped_column(String(30), ForeignKey("segment.code"))
    value_tier_code: Mapped[str] = mapped_column(String(30), ForeignKey("value_tier.code"))
    currency: Mapped[str] = mapped_column(String(3))
    email: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(20))
    billing_line1: Mapped[str | None] = mapped_column(String(200))
    billing_line2: Mapped[str | None] = mapped_column(String(200))
    billing_suburb: Mapped[str | None] = mapped_column(String(100))
    billing_city: Mapped[str | None] = mapped_column(String(100))
    billing_province: Mapped[str | None] = mapped_column(String(60))
    billing_postal_code: Mapped[str | None] = mapped_column(String(10))
    billing_country: Mapped[str] = mapped_column(String(2), default="ZA")
    payment_terms_days: Mapped[int] = mapped_column(Integer, default=30)
    bill_cycle_day: Mapped[int] = mapped_column(Integer, default=1)
    vat_registered: Mapped[bool] = mapped_column(Boolean, default=False)
    vat_number: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        CheckConstraint("kind IN ('retail','b2b','wholesale')", name="kind"),
        ACCOUNT.check(),
        CheckConstraint("bill_cycle_day BETWEEN 1 AND 28", name="bill_cycle_day"),
        Index("ix_account_name", "name"),
        Index("ix_account_email", "email"),
        Index("ix_account_phone", "phone"),
        Index("ix_account_status_cycle", "status", "bill_cycle_day"),
    )


class Contact(Base):
    __tablename__ = "contact"

    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(60), default="primary")
    email: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(20))
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_contact_email", "email"), Index("ix_contact_phone", "phone"))


class Site(Base):
    """A service address; `fno_coverage` lists the partner codes whose network reaches it."""

    __tablename__ = "site"

    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"), index=True)
    label: Mapped[str] = mapped_column(String(100), default="Home")
    line1: Mapped[str] = mapped_column(String(200))
    line2: Mapped[str | None] = mapped_column(String(200))
    suburb: Mapped[str | None] = mapped_column(String(100))
    city: Mapped[str] = mapped_column(String(100))
    province: Mapped[str | None] = mapped_column(String(60))
    postal_code: Mapped[str | None] = mapped_column(String(10))
    country: Mapped[str] = mapped_column(String(2), default="ZA")
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    fno_coverage: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    timezone: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_site_line1", "line1"),)


class Memo(Base):
    """An account note. Never edited, only added: the history debtors and support rely on."""

    __tablename__ = "memo"

    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    created_at: Mapped[datetime]
    author: Mapped[str] = mapped_column(String(120))
    category: Mapped[str] = mapped_column(String(30), default="general")
    body: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_memo_account", "account_id", "id"),)


append_only(Memo.__table__, "memos are never edited or deleted", redactable="body")  # body: erased on a POPIA request only
attach_ddl(Account.__table__, Site.__table__)
