"""Tables for wholesale partners (FNOs, couriers, collection agencies), outbound service orders and every message exchanged."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from opsline.core.lifecycle import Lifecycle
from opsline.db.base import Base, IdPk, JSONType


class PartnerKind(enum.StrEnum):
    FNO = "fno"
    COURIER = "courier"
    DEBT_COLLECTOR = "debt_collector"


class AdapterKind(enum.StrEnum):
    SIMULATOR = "simulator"
    HTTP = "http"


class SimulatorMode(enum.StrEnum):
    DEMO = "demo"  # delays in seconds, so a user sees activation within a minute
    REALISTIC = "realistic"  # confirmation after the partner's SLA in business days


class ServiceOrderState(enum.StrEnum):
    ACKNOWLEDGED = "acknowledged"
    HELD = "held"
    IN_PROGRESS = "inProgress"
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


S = ServiceOrderState

# An outbound TMF641 service order. The partner moves it (accepts, progresses, completes, fails, rejects: system
# actions taken by the partner's callback, the simulator or the delivery job); staff may hold it or cancel it.
SERVICE_ORDER = Lifecycle(
    name="partner_service_order",
    states=ServiceOrderState,
    initial=S.ACKNOWLEDGED,
    transitions={
        S.ACKNOWLEDGED: {"hold": S.HELD, "start": S.IN_PROGRESS, "complete": S.COMPLETED, "fail": S.FAILED, "reject": S.REJECTED, "cancel": S.CANCELLED},
        S.HELD: {"start": S.IN_PROGRESS, "complete": S.COMPLETED, "fail": S.FAILED, "reject": S.REJECTED, "cancel": S.CANCELLED},
        S.IN_PROGRESS: {"hold": S.HELD, "complete": S.COMPLETED, "fail": S.FAILED, "cancel": S.CANCELLED},
        S.COMPLETED: {}, S.FAILED: {}, S.REJECTED: {}, S.CANCELLED: {},
    },
    system_actions={"start", "complete", "fail", "reject"},
    permissions={"hold": "partners.manage", "cancel": "partners.manage"},
    needs_reason={"cancel", "hold"},
    labels={"cancel": "Cancel (not yet delivered)"},
)
OPEN_SERVICE_ORDER_STATES = tuple(s for s in SERVICE_ORDER.state_values() if not SERVICE_ORDER.is_final(s))


class Partner(Base):
    """A wholesale partner. Fees, SLA targets, notice rules and the integration are data an operator edits in /admin."""

    __tablename__ = "partner"

    code: Mapped[str] = mapped_column(String(30), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # contact points
    contact_email: Mapped[str | None] = mapped_column(String(200))
    contact_phone: Mapped[str | None] = mapped_column(String(30))
    escalation_name: Mapped[str | None] = mapped_column(String(120))
    escalation_email: Mapped[str | None] = mapped_column(String(200))
    escalation_phone: Mapped[str | None] = mapped_column(String(30))
    # SLA targets
    activation_sla_days: Mapped[int] = mapped_column(Integer, default=5)  # business days
    deactivation_sla_days: Mapped[int] = mapped_column(Integer, default=3)  # business days
    fault_restore_hours: Mapped[int] = mapped_column(Integer, default=24)
    # fees (minor units in `currency`)
    currency: Mapped[str] = mapped_column(String(3))
    monthly_line_cost_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    late_deactivation_cost_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    late_deactivation_period: Mapped[str] = mapped_column(String(10), default="month")  # 'day' | 'month'
    collection_fee_minor: Mapped[int] = mapped_column(BigInteger, default=0)  # courier: per collection
    commission_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=0)  # debt collector: % of recovered
    # notice rules: a deactivation requested by `notice_cutoff_day` takes effect at month end; later, the next month end.
    # `notice_days` is the minimum notice after the request (e.g. Vumatel: month-end + 30 days).
    notice_cutoff_day: Mapped[int | None] = mapped_column(Integer)
    notice_days: Mapped[int] = mapped_column(Integer, default=0)
    notice_rule: Mapped[str | None] = mapped_column(String(200))
    # whose public holidays the partner's business days skip (ISO country code); None: weekends only
    holiday_country: Mapped[str | None] = mapped_column(String(2))
    # integration
    adapter: Mapped[str] = mapped_column(String(20), default=AdapterKind.SIMULATOR)
    base_url: Mapped[str | None] = mapped_column(String(300))
    auth_token: Mapped[str | None] = mapped_column(String(200))
    webhook_secret: Mapped[str | None] = mapped_column(String(200))
    timeout_seconds: Mapped[int] = mapped_column(Integer, default=10)
    # the built-in simulator's behaviour (data, so demos and tests can tune it)
    simulator_mode: Mapped[str] = mapped_column(String(20), default=SimulatorMode.DEMO)
    simulator_outage: Mapped[bool] = mapped_column(Boolean, default=False)
    simulator_reject_percent: Mapped[int] = mapped_column(Integer, default=5)
    simulator_progress_seconds: Mapped[int] = mapped_column(Integer, default=10)
    simulator_complete_seconds: Mapped[int] = mapped_column(Integer, default=30)

    __table_args__ = (
        CheckConstraint("kind IN ('fno','courier','debt_collector')", name="kind"),
        CheckConstraint("adapter IN ('simulator','http')", name="adapter"),
        CheckConstraint("simulator_mode IN ('demo','realistic')", name="simulator_mode"),
        CheckConstraint("late_deactivation_period IN ('day','month')", name="late_deactivation_period"),
        CheckConstraint("notice_cutoff_day IS NULL OR notice_cutoff_day BETWEEN 1 AND 31", name="notice_cutoff_day"),
        CheckConstraint("simulator_reject_percent BETWEEN 0 AND 100", name="simulator_reject_percent"),
    )

    def __str__(self) -> str:
        return self.name


class PartnerServiceOrder(Base):
    """An outbound TMF641 service order to a partner (activate / modify / deactivate a wholesale line)."""

    __tablename__ = "partner_service_order"

    id: Mapped[IdPk]
    partner_code: Mapped[str] = mapped_column(String(30), ForeignKey("partner.code"))
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    product_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("product.id"))
    order_item_id: Mapped[int | None] = mapped_column(BigInteger)
    site_id: Mapped[int | None] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(10))
    # for a 'modify' that only changes the line's state: 'suspended' (suspension for non-payment) or 'active' (resume)
    service_state: Mapped[str | None] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20), default=ServiceOrderState.ACKNOWLEDGED)
    external_ref: Mapped[str] = mapped_column(String(40), unique=True)
    partner_ref: Mapped[str | None] = mapped_column(String(80))
    requested_date: Mapped[date]
    due_date: Mapped[date]  # by when the partner's SLA says it should be confirmed
    confirmed_date: Mapped[date | None]
    state_reason: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)  # why we asked
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        SERVICE_ORDER.check(),
        CheckConstraint("action IN ('add','modify','delete')", name="action"),
        CheckConstraint("service_state IS NULL OR service_state IN ('suspended','active')", name="service_state"),
        Index("ix_partner_service_order_account", "account_id", "id"),
        Index("ix_partner_service_order_product", "product_id"),
        Index("ix_partner_service_order_item", "order_item_id"),
        Index("ix_partner_service_order_partner_state", "partner_code", "state", "due_date"),
        Index("ix_partner_service_order_partner_ref", "partner_code", "partner_ref"),
        Index("ix_partner_service_order_action", "action", "confirmed_date"),  # fee exposure reads the delete orders
    )


class PartnerMessage(Base):
    """Every exchange with a partner, in and out, including the ones we ignored (with why)."""

    __tablename__ = "partner_message"

    id: Mapped[IdPk]
    partner_code: Mapped[str] = mapped_column(String(30), ForeignKey("partner.code"))
    service_order_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("partner_service_order.id"))
    account_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("account.id"))
    direction: Mapped[str] = mapped_column(String(3))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(20), default="applied")  # applied | ignored | failed | sent
    note: Mapped[str | None] = mapped_column(Text)
    body: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    sequence: Mapped[int] = mapped_column(Integer, default=0)  # per service order, 1, 2, 3 ...

    __table_args__ = (
        CheckConstraint("direction IN ('in','out')", name="direction"),
        Index("ix_partner_message_order", "service_order_id", "sequence"),
        Index("ix_partner_message_account", "account_id", "id"),
    )
