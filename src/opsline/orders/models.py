"""Tables for product orders (TMF622) with their items, and quotes (TMF648) with priced items."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from opsline.db.base import Base, IdPk


class OrderState(enum.StrEnum):
    ACKNOWLEDGED = "acknowledged"
    REJECTED = "rejected"
    PENDING = "pending"
    HELD = "held"
    IN_PROGRESS = "inProgress"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    FAILED = "failed"
    PARTIAL = "partial"
    ASSESSING_CANCELLATION = "assessingCancellation"
    PENDING_CANCELLATION = "pendingCancellation"


class ItemState(enum.StrEnum):
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "inProgress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    HELD = "held"
    PENDING = "pending"
    REJECTED = "rejected"


class ItemAction(enum.StrEnum):
    ADD = "add"
    MODIFY = "modify"
    DELETE = "delete"
    NO_CHANGE = "noChange"


class QuoteState(enum.StrEnum):
    IN_PROGRESS = "inProgress"
    PENDING = "pending"
    APPROVED = "approved"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


_ORDER_STATES = "'acknowledged','rejected','pending','held','inProgress','cancelled','completed','failed','partial','assessingCancellation','pendingCancellation'"
_ITEM_STATES = "'acknowledged','inProgress','completed','failed','cancelled','held','pending','rejected'"


class Quote(Base):
    __tablename__ = "quote"

    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"), index=True)
    external_id: Mapped[str | None] = mapped_column(String(80))
    state: Mapped[str] = mapped_column(String(20), default=QuoteState.IN_PROGRESS)
    description: Mapped[str | None] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(String(3))
    requested_start_date: Mapped[date | None]
    valid_until: Mapped[date | None]
    recurring_total_minor: Mapped[int] = mapped_column(BigInteger, default=0)  # excl. VAT, per month
    recurring_tax_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    one_off_total_minor: Mapped[int] = mapped_column(BigInteger, default=0)  # excl. VAT
    one_off_tax_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    product_order_id: Mapped[int | None] = mapped_column(BigInteger)
    state_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        CheckConstraint("state IN ('inProgress','pending','approved','accepted','rejected','cancelled')", name="state"),
        UniqueConstraint("account_id", "external_id"),
    )


class QuoteItem(Base):
    __tablename__ = "quote_item"

    id: Mapped[IdPk]
    quote_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("quote.id"), index=True)
    account_id: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(10), default=ItemAction.ADD)
    offering_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("product_offering.id"))
    product_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("product.id"))
    site_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("site.id"))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    currency: Mapped[str] = mapped_column(String(3))
    recurring_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    recurring_tax_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    one_off_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    one_off_tax_minor: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (CheckConstraint("action IN ('add','modify','delete','noChange')", name="action"),)


class ProductOrder(Base):
    __tablename__ = "product_order"

    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    external_id: Mapped[str | None] = mapped_column(String(80))
    state: Mapped[str] = mapped_column(String(30), default=OrderState.ACKNOWLEDGED)
    requested_start_date: Mapped[date | None]
    requested_completion_date: Mapped[date | None]
    completion_date: Mapped[date | None]
    channel: Mapped[str | None] = mapped_column(String(30))
    priority: Mapped[int] = mapped_column(Integer, default=4)
    quote_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("quote.id"))
    description: Mapped[str | None] = mapped_column(Text)
    state_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        CheckConstraint(f"state IN ({_ORDER_STATES})", name="state"),
        UniqueConstraint("account_id", "external_id"),
        Index("ix_product_order_state_created", "state", "created_at"),
        Index("ix_product_order_account", "account_id", "id"),
    )


class ProductOrderItem(Base):
    __tablename__ = "product_order_item"

    id: Mapped[IdPk]
    order_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("product_order.id"), index=True)
    account_id: Mapped[int] = mapped_column(BigInteger, index=True)
    action: Mapped[str] = mapped_column(String(10))
    offering_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("product_offering.id"))
    product_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("product.id"))
    site_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("site.id"))
    state: Mapped[str] = mapped_column(String(20), default=ItemState.ACKNOWLEDGED)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    result_product_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("product.id"))
    partner_service_order_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    state_reason: Mapped[str | None] = mapped_column(Text)
    completion_date: Mapped[date | None]

    __table_args__ = (
        CheckConstraint("action IN ('add','modify','delete','noChange')", name="action"),
        CheckConstraint(f"state IN ({_ITEM_STATES})", name="state"),
    )
