"""Tables for courier collections of customer equipment: courier slots, bookings, items, attempts, unreturned-equipment
fees and their rules, device swaps and clean-up check runs."""

from __future__ import annotations

import enum
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from opsline.core.lifecycle import Lifecycle
from opsline.db.base import Base, IdPk, JSONType, sql_in


class CollectionState(enum.StrEnum):
    BOOKED = "booked"  # slot held, being sent to the courier
    CONFIRMED = "confirmed"  # the courier accepted it
    REJECTED = "rejected"  # the courier refused the booking (rebook)
    FAILED = "failed"  # an attempt failed: not home, refused, wrong address (rebook or cancel)
    COLLECTED = "collected"  # the courier has the equipment
    RECEIVED = "received"  # every item arrived at the warehouse
    CANCELLED = "cancelled"


C = CollectionState

# A courier collection. The courier (its callbacks or the simulator) confirms, rejects and reports attempts; staff may
# record attempts too (a courier's phone call), rebook and cancel; the warehouse receives.
COLLECTION = Lifecycle(
    name="collection_booking",
    states=CollectionState,
    initial=C.BOOKED,
    transitions={
        C.BOOKED: {"confirm": C.CONFIRMED, "reject": C.REJECTED, "collect": C.COLLECTED, "fail": C.FAILED, "cancel": C.CANCELLED},
        C.CONFIRMED: {"collect": C.COLLECTED, "fail": C.FAILED, "cancel": C.CANCELLED},
        C.REJECTED: {"rebook": C.BOOKED, "cancel": C.CANCELLED},
        C.FAILED: {"rebook": C.BOOKED, "cancel": C.CANCELLED},
        C.COLLECTED: {"receive": C.RECEIVED},
        C.RECEIVED: {},
        C.CANCELLED: {},
    },
    system_actions={"confirm", "reject"},
    permissions={"collect": "logistics.book", "fail": "logistics.book", "rebook": "logistics.book", "cancel": "logistics.book",
                 "receive": "logistics.receive"},
    needs_reason={"cancel", "fail", "reject"},
    labels={"fail": "Record failed attempt", "collect": "Record collected", "receive": "Received at warehouse"},
)
OPEN_COLLECTION_STATES = (C.BOOKED.value, C.CONFIRMED.value, C.REJECTED.value, C.FAILED.value, C.COLLECTED.value)
ATTEMPT_OUTCOMES = ("collected", "not_home", "refused", "wrong_address")
CONDITIONS = ("good", "faulty", "damaged", "destroyed")


class FeeState(enum.StrEnum):
    WARNED = "warned"  # the customer was told the fee is coming
    CHARGED = "charged"  # queued on the next bill
    CREDITED = "credited"  # the device arrived after the charge: credited back
    CANCELLED = "cancelled"  # the device arrived before the charge


F = FeeState

UNRETURNED_FEE = Lifecycle(
    name="unreturned_fee",
    states=FeeState,
    initial=F.WARNED,
    transitions={F.WARNED: {"charge": F.CHARGED, "cancel": F.CANCELLED}, F.CHARGED: {"credit": F.CREDITED}, F.CREDITED: {}, F.CANCELLED: {}},
    system_actions={"charge", "credit", "cancel"},
)


class CourierSlot(Base):
    """A courier's collection window on a weekday (local time), with how many collections it takes."""

    __tablename__ = "courier_slot"

    id: Mapped[IdPk]
    courier_code: Mapped[str] = mapped_column(String(30), ForeignKey("partner.code"))
    weekday: Mapped[int] = mapped_column(Integer)  # 0 Monday .. 6 Sunday
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)
    capacity: Mapped[int] = mapped_column(Integer, default=20)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),
        CheckConstraint("capacity >= 0", name="capacity"),
        CheckConstraint("end_time > start_time", name="window"),
        UniqueConstraint("courier_code", "weekday", "start_time"),
    )

    def __str__(self) -> str:
        return f"{self.courier_code} {self.weekday} {self.start_time:%H:%M}-{self.end_time:%H:%M}"


class Collection(Base):
    """A booked courier collection of one account's equipment."""

    __tablename__ = "collection"

    id: Mapped[IdPk]
    number: Mapped[str] = mapped_column(String(20), unique=True)
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    courier_code: Mapped[str] = mapped_column(String(30), ForeignKey("partner.code"))
    slot_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("courier_slot.id"))
    state: Mapped[str] = mapped_column(String(20), default=CollectionState.BOOKED)
    purpose: Mapped[str] = mapped_column(String(10), default="return")  # return | swap
    slot_start: Mapped[datetime]
    slot_end: Mapped[datetime]
    address: Mapped[str] = mapped_column(String(300))
    contact_name: Mapped[str] = mapped_column(String(120))
    contact_phone: Mapped[str] = mapped_column(String(30))
    reference: Mapped[str | None] = mapped_column(String(60))  # the caller's reference, e.g. a cancellation journey
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    courier_ref: Mapped[str | None] = mapped_column(String(80))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    state_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))
    updated_at: Mapped[datetime]

    __table_args__ = (
        COLLECTION.check(),
        CheckConstraint("purpose IN ('return','swap')", name="purpose"),
        Index("ix_collection_account", "account_id", "id"),
        Index("ix_collection_slot", "courier_code", "slot_start", "state"),
        Index("ix_collection_state", "state", "slot_start"),
        Index("ix_collection_reference", "reference"),
    )


class CollectionItem(Base):
    """One device in a collection, and when (and in what condition) the warehouse received it."""

    __tablename__ = "collection_item"

    id: Mapped[IdPk]
    collection_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("collection.id"))
    equipment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("equipment.id"))
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    received_at: Mapped[datetime | None]
    condition: Mapped[str | None] = mapped_column(String(20))

    __table_args__ = (
        UniqueConstraint("collection_id", "equipment_id"),
        CheckConstraint("condition IS NULL OR " + sql_in("condition", CONDITIONS), name="condition"),
        Index("ix_collection_item_equipment", "equipment_id"),
    )


class CollectionAttempt(Base):
    """A courier's visit and its outcome (append-only history of the booking)."""

    __tablename__ = "collection_attempt"

    id: Mapped[IdPk]
    collection_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("collection.id"))
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    attempt_no: Mapped[int] = mapped_column(Integer)
    slot_start: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(10), default="staff")  # staff | courier
    recorded_at: Mapped[datetime]
    recorded_by: Mapped[str] = mapped_column(String(120))

    __table_args__ = (
        CheckConstraint(sql_in("outcome", ATTEMPT_OUTCOMES), name="outcome"),
        CheckConstraint("source IN ('staff','courier')", name="source"),
        UniqueConstraint("collection_id", "attempt_no"),
        Index("ix_collection_attempt_recorded", "recorded_at"),
    )


class EquipmentFeeRule(Base):
    """What an unreturned device of a model costs, after how many days, and when the customer is warned (data)."""

    __tablename__ = "equipment_fee_rule"

    model: Mapped[str] = mapped_column(String(80), primary_key=True)
    fee_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    tax_rate_code: Mapped[str] = mapped_column(String(20), default="VAT15")
    grace_days: Mapped[int] = mapped_column(Integer, default=20)
    warning_days: Mapped[int] = mapped_column(Integer, default=5)  # warn this many days before the fee
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (
        CheckConstraint("fee_minor >= 0", name="fee"),
        CheckConstraint("grace_days >= 0 AND warning_days >= 0", name="days"),
    )

    def __str__(self) -> str:
        return self.model


class OntReturnRule(Base):
    """Whether an FNO wants its ONTs back through us when a line ends (most leave them on the wall)."""

    __tablename__ = "ont_return_rule"

    partner_code: Mapped[str] = mapped_column(String(30), ForeignKey("partner.code"), primary_key=True)
    collect_ont: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(String(200))

    def __str__(self) -> str:
        return self.partner_code


class UnreturnedFee(Base):
    """The unreturned-equipment fee of one device: warned, charged (a queued billing charge), credited or cancelled."""

    __tablename__ = "unreturned_fee"

    id: Mapped[IdPk]
    equipment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("equipment.id"), unique=True)
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    model: Mapped[str] = mapped_column(String(80))
    state: Mapped[str] = mapped_column(String(20), default=FeeState.WARNED)
    since_date: Mapped[date]  # the reference date: when the device was due back (awaiting return since)
    due_date: Mapped[date]  # since_date + grace days: the fee's day
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    tax_rate_code: Mapped[str] = mapped_column(String(20))
    charge_id: Mapped[int | None] = mapped_column(BigInteger)
    credit_charge_id: Mapped[int | None] = mapped_column(BigInteger)
    warned_at: Mapped[datetime]
    charged_at: Mapped[datetime | None]
    credited_at: Mapped[datetime | None]

    __table_args__ = (UNRETURNED_FEE.check(), Index("ix_unreturned_fee_state", "state", "due_date"), Index("ix_unreturned_fee_account", "account_id"))


class EquipmentSwap(Base):
    """A faulty device swapped: the new one shipped, the old one collected (both keep their own history)."""

    __tablename__ = "equipment_swap"

    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    product_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("product.id"))
    old_equipment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("equipment.id"))
    new_equipment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("equipment.id"))
    collection_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("collection.id"))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))

    __table_args__ = (UniqueConstraint("old_equipment_id"), Index("ix_equipment_swap_account", "account_id"))


class CleanupRun(Base):
    """One run of the clean-up checks (scheduled or by hand): the count per check, for the trend on the page."""

    __tablename__ = "cleanup_run"

    id: Mapped[IdPk]
    ran_at: Mapped[datetime]
    ran_by: Mapped[str] = mapped_column(String(120))
    counts: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    __table_args__ = (Index("ix_cleanup_run_at", "ran_at"),)
