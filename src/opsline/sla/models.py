"""Tables for SLA policies, business calendars, contracts, OLAs, clocks, warnings, breaches and breach causes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from opsline.db.base import Base, IdPk, JSONType

CLOCK_METRICS = ("first_response", "next_update", "resolution", "team", "third_party")
CLOCK_STATES = ("running", "paused", "met", "breached")
_METRIC_CHECK = "metric IN ('first_response','next_update','resolution','team','third_party')"


class BusinessCalendarRow(Base):
    """A business calendar: `data` is `BusinessCalendar.to_data()` (week of shifts, holidays country, closures)."""

    __tablename__ = "business_calendar"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime | None]

    def __str__(self) -> str:
        return self.name


class BreachCause(Base):
    """Reference data: why an SLA was breached (waiting on FNO, misrouted, capacity ...)."""

    __tablename__ = "breach_cause"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    controllable: Mapped[bool] = mapped_column(Boolean, default=True)

    def __str__(self) -> str:
        return self.name


class SlaContract(Base):
    """A B2B customer's contracted SLA: its own policy overrides and monthly service review day."""

    __tablename__ = "sla_contract"

    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    valid_from: Mapped[date]
    valid_to: Mapped[date | None]
    overrides: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # target field -> business minutes
    service_review_day: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]

    __table_args__ = (CheckConstraint("service_review_day IS NULL OR service_review_day BETWEEN 1 AND 28", name="review_day"),)

    def __str__(self) -> str:
        return self.name


class SlaPolicy(Base):
    """Which cases a policy covers (match criteria; null = any) and the targets in business minutes.

    The most specific matching active policy wins (most non-null criteria); ties go to the lowest id.
    `escalations` is a list of {"at": percent, "action": "notify_manager" | "reassign" | "raise_priority",
    "queue_code": ...}; `third_party_minutes` maps partner code (or "*") to business minutes.
    """

    __tablename__ = "sla_policy"

    id: Mapped[IdPk]
    name: Mapped[str] = mapped_column(String(120), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    category_code: Mapped[str | None] = mapped_column(String(40))
    priority: Mapped[int | None] = mapped_column(Integer)
    value_tier_code: Mapped[str | None] = mapped_column(String(30), ForeignKey("value_tier.code"))
    account_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("account.id"))
    sla_contract_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("sla_contract.id"))
    channel: Mapped[str | None] = mapped_column(String(30))
    first_response_minutes: Mapped[int | None] = mapped_column(Integer)
    next_update_minutes: Mapped[int | None] = mapped_column(Integer)
    resolution_minutes: Mapped[int | None] = mapped_column(Integer)
    team_minutes: Mapped[int | None] = mapped_column(Integer)
    third_party_minutes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    calendar_code: Mapped[str] = mapped_column(String(40), ForeignKey("business_calendar.code"))
    # False: the clocks run on the policy's calendar whatever queue holds the case; True ("team hours"): on the
    # calendar of the queue holding it (the policy's calendar only when the queue has none).
    team_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    warn_percents: Mapped[list[Any]] = mapped_column(JSONType, default=lambda: [50, 75, 100])
    escalations: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint("priority IS NULL OR priority BETWEEN 1 AND 4", name="priority"),
        CheckConstraint("first_response_minutes IS NULL OR first_response_minutes > 0", name="first_response_positive"),
        CheckConstraint("resolution_minutes IS NULL OR resolution_minutes > 0", name="resolution_positive"),
    )

    def __str__(self) -> str:
        return self.name


class QueueOla(Base):
    """Operational-level agreement: how long a team (queue) may hold a case, optionally per priority."""

    __tablename__ = "sla_queue_ola"

    id: Mapped[IdPk]
    queue_id: Mapped[int] = mapped_column(BigInteger, index=True)
    priority: Mapped[int | None] = mapped_column(Integer)
    target_minutes: Mapped[int] = mapped_column(Integer)

    __table_args__ = (UniqueConstraint("queue_id", "priority", name="uq_sla_queue_ola_queue_priority"), CheckConstraint("target_minutes > 0", name="target_positive"))


class SlaCase(Base):
    """The SLA side of a case: which policy and calendar its clocks use, and whether the policy is pinned."""

    __tablename__ = "sla_case"

    case_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    policy_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("sla_policy.id"))
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    calendar_code: Mapped[str | None] = mapped_column(String(40))
    timezone: Mapped[str | None] = mapped_column(String(40))
    computed_at: Mapped[datetime | None]


class SlaClock(Base):
    """One clock of one case as last computed from its history (replaced idempotently on recalculation)."""

    __tablename__ = "sla_clock"

    id: Mapped[IdPk]
    case_id: Mapped[int] = mapped_column(BigInteger)
    account_id: Mapped[int | None] = mapped_column(BigInteger)
    metric: Mapped[str] = mapped_column(String(20))
    clock_key: Mapped[str] = mapped_column(String(60), default="")
    queue_id: Mapped[int | None] = mapped_column(BigInteger)
    partner_code: Mapped[str | None] = mapped_column(String(40))
    policy_id: Mapped[int | None] = mapped_column(BigInteger)
    calendar_code: Mapped[str | None] = mapped_column(String(40))
    started_at: Mapped[datetime]
    due_at: Mapped[datetime]
    stopped_at: Mapped[datetime | None]
    breached_at: Mapped[datetime | None]
    elapsed_seconds: Mapped[int] = mapped_column(BigInteger)
    target_seconds: Mapped[int] = mapped_column(BigInteger)
    paused_seconds: Mapped[int] = mapped_column(BigInteger, default=0)
    state: Mapped[str] = mapped_column(String(12))
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    computed_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("case_id", "metric", "clock_key", name="uq_sla_clock_case_metric_key"),
        CheckConstraint(_METRIC_CHECK, name="metric"),
        CheckConstraint("state IN ('running','paused','met','breached')", name="state"),
        Index("ix_sla_clock_state_due", "state", "due_at"),
    )


class SlaWarning(Base):
    """A clock crossed a warning threshold (recorded once per clock and threshold) and what was done about it."""

    __tablename__ = "sla_warning"

    id: Mapped[IdPk]
    case_id: Mapped[int] = mapped_column(BigInteger)
    account_id: Mapped[int | None] = mapped_column(BigInteger)
    metric: Mapped[str] = mapped_column(String(20))
    clock_key: Mapped[str] = mapped_column(String(60), default="")
    threshold: Mapped[int] = mapped_column(Integer)
    percent: Mapped[float]
    due_at: Mapped[datetime]
    created_at: Mapped[datetime]
    actions: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    handled_at: Mapped[datetime | None]  # when the escalation actions ran (null = not yet)

    __table_args__ = (UniqueConstraint("case_id", "metric", "clock_key", "threshold", name="uq_sla_warning_once"), CheckConstraint(_METRIC_CHECK, name="metric"))


class SlaNotification(Base):
    """A message for a person (queue manager) raised by an escalation; read in the SLA desk."""

    __tablename__ = "sla_notification"

    id: Mapped[IdPk]
    case_id: Mapped[int] = mapped_column(BigInteger)
    account_id: Mapped[int | None] = mapped_column(BigInteger)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    queue_id: Mapped[int | None] = mapped_column(BigInteger)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    read_at: Mapped[datetime | None]


class SlaBreach(Base):
    """A clock that ran past its target: attributed to a team (queue) or partner, with a cause once analysed."""

    __tablename__ = "sla_breach"

    id: Mapped[IdPk]
    case_id: Mapped[int] = mapped_column(BigInteger)
    account_id: Mapped[int | None] = mapped_column(BigInteger)
    metric: Mapped[str] = mapped_column(String(20))
    clock_key: Mapped[str] = mapped_column(String(60), default="")
    queue_id: Mapped[int | None] = mapped_column(BigInteger)
    partner_code: Mapped[str | None] = mapped_column(String(40))
    breached_at: Mapped[datetime]
    due_at: Mapped[datetime]
    overrun_seconds: Mapped[int] = mapped_column(BigInteger, default=0)
    cause_code: Mapped[str | None] = mapped_column(String(40), ForeignKey("breach_cause.code"))
    cause_note: Mapped[str | None] = mapped_column(Text)
    set_by: Mapped[str | None] = mapped_column(String(120))
    set_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("case_id", "metric", "clock_key", name="uq_sla_breach_case_metric_key"),
        CheckConstraint(_METRIC_CHECK, name="metric"),
        Index("ix_sla_breach_breached_at", "breached_at"),
    )
