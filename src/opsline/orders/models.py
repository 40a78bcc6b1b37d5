"""Tables for product orders (TMF622) with their items, and quotes (TMF648) with priced items."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from opsline.core.lifecycle import Lifecycle
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


OS, IS, QS = OrderState, ItemState, QuoteState

# A product order (TMF622). Staff and API clients hold, resume and cancel; everything else follows the items (system).
# 'cancel' goes to assessingCancellation; the system then confirms (cancelled) or refuses (back in progress).
ORDER = Lifecycle(
    name="product_order",
    states=OrderState,
    initial=OS.ACKNOWLEDGED,
    transitions={
        OS.ACKNOWLEDGED: {"start": OS.IN_PROGRESS, "hold": OS.HELD, "cancel": OS.ASSESSING_CANCELLATION, "reject": OS.REJECTED, "complete": OS.COMPLETED},
        OS.PENDING: {"start": OS.IN_PROGRESS, "hold": OS.HELD, "cancel": OS.ASSESSING_CANCELLATION},
        OS.HELD: {"resume": OS.IN_PROGRESS, "cancel": OS.ASSESSING_CANCELLATION},
        OS.IN_PROGRESS: {"hold": OS.HELD, "cancel": OS.ASSESSING_CANCELLATION, "complete": OS.COMPLETED, "fail": OS.FAILED, "partial": OS.PARTIAL},
        OS.ASSESSING_CANCELLATION: {"confirm_cancel": OS.CANCELLED, "await_cancel": OS.PENDING_CANCELLATION, "refuse_cancel": OS.IN_PROGRESS},
        OS.PENDING_CANCELLATION: {"confirm_cancel": OS.CANCELLED},
        OS.REJECTED: {}, OS.CANCELLED: {}, OS.COMPLETED: {}, OS.FAILED: {}, OS.PARTIAL: {},
    },
    system_actions={"start", "reject", "complete", "fail", "partial", "confirm_cancel", "await_cancel", "refuse_cancel"},
    permissions={"hold": "orders.manage", "resume": "orders.manage", "cancel": "orders.manage"},
    needs_reason={"hold", "cancel"},
    labels={"hold": "Hold", "resume": "Resume", "cancel": "Cancel order"},
)
OPEN_ORDER_STATES = tuple(OS(s) for s in ORDER.state_values() if not ORDER.is_final(s))

# One line of an order; driven entirely by the system (placement, the partner's answers, the order's cancellation).
ORDER_ITEM = Lifecycle(
    name="product_order_item",
    states=ItemState,
    initial=IS.ACKNOWLEDGED,
    transitions={
        IS.ACKNOWLEDGED: {"start": IS.IN_PROGRESS, "complete": IS.COMPLETED, "fail": IS.FAILED, "cancel": IS.CANCELLED, "hold": IS.HELD, "reject": IS.REJECTED},
        IS.PENDING: {"start": IS.IN_PROGRESS, "complete": IS.COMPLETED, "fail": IS.FAILED, "cancel": IS.CANCELLED},
        IS.HELD: {"start": IS.IN_PROGRESS, "complete": IS.COMPLETED, "fail": IS.FAILED, "cancel": IS.CANCELLED},
        IS.IN_PROGRESS: {"complete": IS.COMPLETED, "fail": IS.FAILED, "cancel": IS.CANCELLED, "hold": IS.HELD},
        IS.COMPLETED: {}, IS.FAILED: {}, IS.CANCELLED: {}, IS.REJECTED: {},
    },
    system_actions={"start", "complete", "fail", "cancel", "hold", "reject"},
)
OPEN_ITEM_STATES = tuple(IS(s) for s in ORDER_ITEM.state_values() if not ORDER_ITEM.is_final(s))

# A quote (TMF648). Accepting places the product order.
QUOTE = Lifecycle(
    name="quote",
    states=QuoteState,
    initial=QS.IN_PROGRESS,
    transitions={
        QS.IN_PROGRESS: {"approve": QS.APPROVED, "submit": QS.PENDING, "accept": QS.ACCEPTED, "reject": QS.REJECTED, "cancel": QS.CANCELLED},
        QS.PENDING: {"approve": QS.APPROVED, "reject": QS.REJECTED, "cancel": QS.CANCELLED},
        QS.APPROVED: {"accept": QS.ACCEPTED, "reject": QS.REJECTED, "cancel": QS.CANCELLED},
        QS.ACCEPTED: {}, QS.REJECTED: {}, QS.CANCELLED: {},
    },
    permissions={a: "orders.place" for a in ("approve", "submit", "accept", "reject", "cancel")},
    labels={"approve": "Approve", "submit": "Submit for approval", "accept": "Accept (place the order)", "reject": "Reject", "cancel": "Cancel"},
)


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
        QUOTE.check(),
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
        ORDER.check(),
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
    # early termination of a fixed-term product (delete items): the fee shown and confirmed when the order was placed,
    # charged on the final bill when the termination completes, unless waived (with the reason).
    etf_minor: Mapped[int | None] = mapped_column(BigInteger)
    etf_currency: Mapped[str | None] = mapped_column(String(3))
    etf_tax_rate_code: Mapped[str | None] = mapped_column(String(20))
    etf_waiver_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("action IN ('add','modify','delete','noChange')", name="action"),
        ORDER_ITEM.check(),
    )
