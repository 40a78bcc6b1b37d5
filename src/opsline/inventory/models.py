"""Tables for installed products (subscriptions) and customer equipment (routers, ONTs, SIMs) with history."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from opsline.core.lifecycle import Lifecycle
from opsline.db.base import Base, IdPk, append_only


class ProductState(enum.StrEnum):
    CREATED = "created"
    PENDING_ACTIVE = "pendingActive"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    PENDING_TERMINATE = "pendingTerminate"
    TERMINATED = "terminated"


class EquipmentState(enum.StrEnum):
    IN_STOCK = "in_stock"
    DISPATCHED = "dispatched"
    INSTALLED = "installed"
    AWAITING_RETURN = "awaiting_return"
    RETURNED = "returned"
    LOST = "lost"
    WRITTEN_OFF = "written_off"


PS, ES = ProductState, EquipmentState

# An installed product. 'activate' starts billing (start_date), 'terminate' ends it (end_date, exclusive);
# 'suspend'/'resume' follow the account (suspension for non-payment) or a fault.
PRODUCT = Lifecycle(
    name="product",
    states=ProductState,
    initial=PS.CREATED,
    transitions={
        PS.CREATED: {"submit": PS.PENDING_ACTIVE, "activate": PS.ACTIVE, "abandon": PS.TERMINATED},
        PS.PENDING_ACTIVE: {"activate": PS.ACTIVE, "abandon": PS.TERMINATED},
        PS.ACTIVE: {"suspend": PS.SUSPENDED, "request_termination": PS.PENDING_TERMINATE, "terminate": PS.TERMINATED},
        PS.SUSPENDED: {"resume": PS.ACTIVE, "request_termination": PS.PENDING_TERMINATE, "terminate": PS.TERMINATED},
        PS.PENDING_TERMINATE: {"terminate": PS.TERMINATED, "keep": PS.ACTIVE},
        PS.TERMINATED: {},
    },
    needs_reason={"suspend", "terminate", "abandon"},
    labels={"request_termination": "Request termination", "keep": "Keep (termination withdrawn)"},
)

EQUIPMENT = Lifecycle(
    name="equipment",
    states=EquipmentState,
    initial=ES.IN_STOCK,
    transitions={
        ES.IN_STOCK: {"dispatch": ES.DISPATCHED, "install": ES.INSTALLED, "write_off": ES.WRITTEN_OFF},
        ES.DISPATCHED: {"install": ES.INSTALLED, "await_return": ES.AWAITING_RETURN, "receive": ES.RETURNED, "lose": ES.LOST},
        ES.INSTALLED: {"await_return": ES.AWAITING_RETURN, "receive": ES.RETURNED, "lose": ES.LOST},
        ES.AWAITING_RETURN: {"receive": ES.RETURNED, "lose": ES.LOST, "write_off": ES.WRITTEN_OFF},
        ES.LOST: {"receive": ES.RETURNED, "write_off": ES.WRITTEN_OFF},
        ES.RETURNED: {"restock": ES.IN_STOCK, "write_off": ES.WRITTEN_OFF},
        ES.WRITTEN_OFF: {},
    },
    needs_reason={"write_off", "lose"},
)


class Product(Base):
    """An installed product. Billable over [start_date, end_date): end_date is the first non-billable day."""

    __tablename__ = "product"

    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    offering_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("product_offering.id"))
    site_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("site.id"))
    state: Mapped[str] = mapped_column(String(20), default=ProductState.CREATED)
    start_date: Mapped[date | None]
    end_date: Mapped[date | None]
    contract_months: Mapped[int] = mapped_column(Integer, default=0)
    contract_end_date: Mapped[date | None]
    partner_code: Mapped[str | None] = mapped_column(String(40))
    partner_line_ref: Mapped[str | None] = mapped_column(String(80))
    order_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    replaces_product_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("product.id"))
    msisdn: Mapped[str | None] = mapped_column(String(20))
    state_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        PRODUCT.check(),
        CheckConstraint("end_date IS NULL OR start_date IS NULL OR end_date >= start_date", name="dates"),
        Index("ix_product_state_account", "state", "account_id"),
        Index("ix_product_account", "account_id"),
    )


class Equipment(Base):
    """A serialised device. ONTs belong to the FNO; ISP routers are loaned or sold."""

    __tablename__ = "equipment"

    id: Mapped[IdPk]
    account_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("account.id"), index=True)
    product_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("product.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    model: Mapped[str] = mapped_column(String(80))
    serial_number: Mapped[str] = mapped_column(String(60), unique=True)
    mac: Mapped[str | None] = mapped_column(String(17))
    owner: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20), default=EquipmentState.IN_STOCK)
    offering_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("product_offering.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        CheckConstraint("kind IN ('router','ont','sim')", name="kind"),
        CheckConstraint("owner IN ('fno','isp_loaned','customer_owned')", name="owner"),
        EQUIPMENT.check(),
        Index("ix_equipment_state_kind", "state", "kind"),
    )


class EquipmentEvent(Base):
    """History of an equipment item's states (append-only)."""

    __tablename__ = "equipment_event"

    id: Mapped[IdPk]
    equipment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("equipment.id"))
    account_id: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[datetime]
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(120))

    __table_args__ = (Index("ix_equipment_event_equipment", "equipment_id", "id"),)


append_only(EquipmentEvent.__table__, "equipment_event is append-only")
