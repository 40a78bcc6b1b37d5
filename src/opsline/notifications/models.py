"""Notification tables: templates per event and language, the message log, contact preferences, caps, approvals."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from opsline.core.lifecycle import Lifecycle
from opsline.db.base import Base, IdPk, JSONType, sql_in

CHANNELS = ("email", "sms")
CATEGORIES = ("service", "billing", "collections", "marketing")




class MessageState(enum.StrEnum):
    AWAITING_APPROVAL = "awaiting_approval"
    QUEUED = "queued"  # waiting to go, or retrying while the server is down (attempts, last_error, next_attempt_at)
    SENT = "sent"
    FAILED = "failed"  # every attempt failed; an operator may retry it
    UNDELIVERABLE = "undeliverable"  # refused for good (unknown mailbox, invalid number); retry after fixing the address
    REJECTED = "rejected"  # the Legal/Brand approver refused it
    SUPPRESSED = "suppressed"  # not sent on purpose (opted out meanwhile, no address)
    CANCELLED = "cancelled"


MESSAGE = Lifecycle(
    name="message",
    states=MessageState,
    initial=MessageState.QUEUED,
    transitions={
        MessageState.AWAITING_APPROVAL: {"approve": MessageState.QUEUED, "reject": MessageState.REJECTED,
                                         "suppress": MessageState.SUPPRESSED},
        MessageState.QUEUED: {"deliver": MessageState.SENT, "fail": MessageState.FAILED, "bounce": MessageState.UNDELIVERABLE,
                              "suppress": MessageState.SUPPRESSED, "cancel": MessageState.CANCELLED},
        MessageState.FAILED: {"retry": MessageState.QUEUED, "cancel": MessageState.CANCELLED},
        MessageState.UNDELIVERABLE: {"retry": MessageState.QUEUED, "cancel": MessageState.CANCELLED},
        MessageState.SENT: {},
        MessageState.REJECTED: {},
        MessageState.SUPPRESSED: {},
        MessageState.CANCELLED: {},
    },
    system_actions={"deliver", "fail", "bounce", "suppress"},
    permissions={"approve": "notifications.approve", "reject": "notifications.approve", "retry": "notifications.manage",
                 "cancel": "notifications.manage"},
    needs_reason={"reject", "cancel"},
    four_eyes={"approve": "created_by"},
    labels={"approve": "Approve and send", "reject": "Reject", "retry": "Retry now", "cancel": "Cancel message"},
)

# States in which a message counts as a contact made or about to be made (for contact caps).
CONTACT_STATES = (MessageState.AWAITING_APPROVAL.value, MessageState.QUEUED.value, MessageState.SENT.value)


class MessageTemplate(Base):
    """A Jinja2 text template for one event, channel and language (data, editable in the UI)."""

    __tablename__ = "message_template"

    id: Mapped[IdPk]
    event: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(10))
    language: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(300), default="")
    sample_context: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(120), default="system:seed")

    __table_args__ = (
        UniqueConstraint("event", "channel", "language"),
        CheckConstraint(sql_in("channel", CHANNELS), name="channel"),
    )


class Message(Base):
    """One customer-facing message: rendered text, recipient, schedule and delivery state."""

    __tablename__ = "message"

    id: Mapped[IdPk]
    account_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("account.id", ondelete="RESTRICT"), nullable=True)
    event: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(10))
    category: Mapped[str] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(10))
    to_addr: Mapped[str | None] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text)
    template_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("message_template.id"), nullable=True)
    template_version: Mapped[int | None] = mapped_column(Integer)
    subject_ref: Mapped[str | None] = mapped_column(String(120))
    state: Mapped[str] = mapped_column(String(20), default=MessageState.QUEUED)
    needs_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime]
    run_at: Mapped[datetime]  # when it may go (later than created_at when capped or in quiet hours)
    schedule_note: Mapped[str | None] = mapped_column(String(300))  # why run_at was moved
    decided_by: Mapped[str | None] = mapped_column(String(120))
    decided_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]  # set while retrying after a failed attempt
    last_error: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(200))  # SMTP Message-ID or the SMS gateway's id
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)

    __table_args__ = (
        MESSAGE.check(),
        CheckConstraint(sql_in("channel", CHANNELS), name="channel"),
        CheckConstraint(sql_in("category", CATEGORIES), name="category"),
        Index("ix_message_account", "account_id", "id"),
        Index("ix_message_state", "state", "created_at"),
        Index("ix_message_contacts", "account_id", "category", "run_at"),
    )


class MessageAttachment(Base):
    """A file sent with a message: its bytes, or a reference (table, column, id) read at delivery time."""

    __tablename__ = "message_attachment"

    id: Mapped[IdPk]
    message_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("message.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    data: Mapped[bytes | None] = mapped_column(LargeBinary)
    ref_table: Mapped[str | None] = mapped_column(String(60))
    ref_column: Mapped[str | None] = mapped_column(String(60))
    ref_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (CheckConstraint("data IS NOT NULL OR (ref_table IS NOT NULL AND ref_column IS NOT NULL AND ref_id IS NOT NULL)",
                                      name="data_or_ref"),)


class ContactProfile(Base):
    """Per-account messaging profile: the language templates are chosen in."""

    __tablename__ = "contact_profile"

    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id", ondelete="CASCADE"), primary_key=True)
    language: Mapped[str] = mapped_column(String(10))
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(120))


class ContactPreference(Base):
    """An account's choice for one channel and category: allowed or opted out. No row means allowed."""

    __tablename__ = "contact_preference"

    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(10))
    category: Mapped[str] = mapped_column(String(20))
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(120))

    __table_args__ = (
        UniqueConstraint("account_id", "channel", "category"),
        CheckConstraint(sql_in("channel", CHANNELS), name="channel"),
        CheckConstraint(sql_in("category", CATEGORIES), name="category"),
    )


class ContactRule(Base):
    """A contact cap and/or quiet hours for a category (and optionally one channel), in operator local time.
    E.g. collections: at most 3 contacts per 7 days, none between 20:00 and 08:00."""

    __tablename__ = "contact_rule"

    id: Mapped[IdPk]
    code: Mapped[str] = mapped_column(String(40), unique=True)
    category: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str | None] = mapped_column(String(10))  # None: every channel
    max_contacts: Mapped[int | None] = mapped_column(Integer)
    period_days: Mapped[int | None] = mapped_column(Integer)
    quiet_from: Mapped[str | None] = mapped_column(String(5))  # "HH:MM" local
    quiet_to: Mapped[str | None] = mapped_column(String(5))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str] = mapped_column(String(300), default="")

    __table_args__ = (
        CheckConstraint(sql_in("category", CATEGORIES), name="category"),
        CheckConstraint("channel IS NULL OR " + sql_in("channel", CHANNELS), name="channel"),
        CheckConstraint("(max_contacts IS NULL) = (period_days IS NULL)", name="cap_pair"),
        CheckConstraint("(quiet_from IS NULL) = (quiet_to IS NULL)", name="quiet_pair"),
        CheckConstraint("max_contacts IS NULL OR max_contacts >= 1", name="max_contacts"),
        CheckConstraint("period_days IS NULL OR period_days >= 1", name="period_days"),
    )

    def __str__(self) -> str:
        return self.code
