"""Tables for report subscriptions and the record of each slot's delivery (one per subscription and slot)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from opsline.db.base import Base, IdPk

FREQUENCIES = ("daily", "weekly", "monthly")
FORMATS = ("xlsx", "pdf")


class ReportSubscription(Base):
    """A staff user's subscription to a catalogued report, sent at local 06:00 (daily; Mondays weekly; the 1st monthly)."""

    __tablename__ = "report_subscription"

    id: Mapped[IdPk]
    report_key: Mapped[str] = mapped_column(String(60))
    frequency: Mapped[str] = mapped_column(String(10))
    format: Mapped[str] = mapped_column(String(5))
    recipients: Mapped[str] = mapped_column(Text)  # comma-separated, validated addresses
    owner: Mapped[str] = mapped_column(String(120))  # the staff user who subscribed (their permission is checked at each send)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    last_sent_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint("frequency IN ('daily','weekly','monthly')", name="frequency"),
        CheckConstraint("format IN ('xlsx','pdf')", name="format"),
    )


class ReportDelivery(Base):
    """One subscription's send for one slot: the unique key makes a repeated slot a no-op."""

    __tablename__ = "report_delivery"

    id: Mapped[IdPk]
    subscription_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("report_subscription.id"))
    slot: Mapped[str] = mapped_column(String(20))  # e.g. 2026-11-23 (daily), 2026-W48, 2026-11
    at: Mapped[datetime]
    messages: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str] = mapped_column(String(20))  # sent | skipped
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("subscription_id", "slot", name="uq_report_delivery_slot"),)
