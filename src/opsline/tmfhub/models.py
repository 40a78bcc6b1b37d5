"""Hub listeners (one per registration on an API's /hub) and deliveries (one per listener per event), with each attempt."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from opsline.db.base import Base, BigId, IdPk, JSONType, sql_in


class DeliveryState(enum.StrEnum):
    PENDING = "pending"  # queued or retrying
    DELIVERED = "delivered"
    DEAD = "dead"  # gave up after the last attempt; an operator can retry it (nothing is lost)
    CANCELLED = "cancelled"  # the listener was deleted before it was delivered


class HubListener(Base):
    __tablename__ = "tmf_hub_listener"

    id: Mapped[IdPk]
    api_name: Mapped[str] = mapped_column(String(60))
    callback: Mapped[str] = mapped_column(String(2000))
    query: Mapped[str | None] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(100))  # HMAC-SHA256 key for the X-Hub-Signature-256 header
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))
    deleted_at: Mapped[datetime | None]
    deleted_by: Mapped[str | None] = mapped_column(String(120))

    __table_args__ = (Index("ix_tmf_hub_listener_api", "api_name", "deleted_at"),)


class HubDelivery(Base):
    __tablename__ = "tmf_hub_delivery"

    id: Mapped[IdPk]
    listener_id: Mapped[int] = mapped_column(BigId, ForeignKey("tmf_hub_listener.id"))
    event_id: Mapped[str] = mapped_column(String(40))  # the TMF eventId: one per event, the same for every listener
    event_type: Mapped[str] = mapped_column(String(80))
    resource_key: Mapped[str] = mapped_column(String(100))  # e.g. "productOrder:42": deliveries of one key go in order
    body: Mapped[dict[str, Any]] = mapped_column(JSONType)
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint(sql_in("state", DeliveryState), name="state"),
        UniqueConstraint("listener_id", "event_id", name="uq_tmf_hub_delivery_listener_event"),
        Index("ix_tmf_hub_delivery_order", "listener_id", "resource_key", "id"),
        Index("ix_tmf_hub_delivery_state", "state", "listener_id"),
    )


class HubAttempt(Base):
    __tablename__ = "tmf_hub_attempt"

    id: Mapped[IdPk]
    delivery_id: Mapped[int] = mapped_column(BigId, ForeignKey("tmf_hub_delivery.id"), index=True)
    at: Mapped[datetime]
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))  # delivered | failed | waiting | dead
