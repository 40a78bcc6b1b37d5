"""Tables of the cancellation journey: the journey (one per product being cancelled or relocated), its checklist steps
(the same visible steps for every journey) and the policies (data) that decide retention and withdrawal."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from opsline.core.lifecycle import Lifecycle
from opsline.db.base import Base, IdPk, sql_in


class JourneyState(enum.StrEnum):
    REQUESTED = "requested"
    RETENTION = "retention"
    CONFIRMED = "confirmed"  # effective date and penalty agreed; waiting for the FNO order to go out
    DEACTIVATION_SENT = "deactivation_sent"
    DEACTIVATION_CONFIRMED = "deactivation_confirmed"
    EQUIPMENT_COLLECTION = "equipment_collection"
    FINAL_BILLING = "final_billing"
    CLOSED = "closed"
    RETAINED = "retained"
    WITHDRAWN = "withdrawn"


J = JourneyState

JOURNEY = Lifecycle(
    name="cancellation_journey",
    states=JourneyState,
    initial=J.REQUESTED,
    transitions={
        J.REQUESTED: {"start_retention": J.RETENTION, "confirm": J.CONFIRMED, "withdraw": J.WITHDRAWN},
        J.RETENTION: {"retain": J.RETAINED, "confirm": J.CONFIRMED, "withdraw": J.WITHDRAWN},
        J.CONFIRMED: {"send_deactivation": J.DEACTIVATION_SENT, "confirm_deactivation": J.DEACTIVATION_CONFIRMED, "withdraw": J.WITHDRAWN},
        J.DEACTIVATION_SENT: {"confirm_deactivation": J.DEACTIVATION_CONFIRMED, "withdraw": J.WITHDRAWN},
        J.DEACTIVATION_CONFIRMED: {"collect_equipment": J.EQUIPMENT_COLLECTION, "bill_final": J.FINAL_BILLING, "close": J.CLOSED},
        J.EQUIPMENT_COLLECTION: {"bill_final": J.FINAL_BILLING, "close": J.CLOSED},
        J.FINAL_BILLING: {"close": J.CLOSED},
        J.CLOSED: {}, J.RETAINED: {}, J.WITHDRAWN: {},
    },
    system_actions={"send_deactivation"},
    permissions={a: "cancellations.work" for a in ("start_retention", "confirm", "withdraw", "retain", "confirm_deactivation",
                                                   "collect_equipment", "bill_final", "close")},
    needs_reason={"withdraw"},
    labels={"start_retention": "Start retention", "confirm": "Confirm cancellation", "withdraw": "Withdraw", "retain": "Retained",
            "confirm_deactivation": "FNO confirmed", "collect_equipment": "Equipment collection", "bill_final": "Final account", "close": "Close journey"},
)
OPEN_STATES = tuple(s for s in JOURNEY.state_values() if not JOURNEY.is_final(s))
OPEN_SQL = ", ".join(f"'{s}'" for s in OPEN_STATES)


class StepState(enum.StrEnum):
    OPEN = "open"
    DONE = "done"
    SKIPPED = "skipped"


STEP = Lifecycle(
    name="cancellation_step",
    states=StepState,
    initial=StepState.OPEN,
    transitions={StepState.OPEN: {"complete": StepState.DONE, "skip": StepState.SKIPPED}, StepState.DONE: {}, StepState.SKIPPED: {}},
    permissions={"complete": "cancellations.work", "skip": "cancellations.work"},
    needs_reason={"skip"},
    labels={"complete": "Mark done", "skip": "Not needed"},
)

# The checklist every journey shows, in order: (code, label, owner). Owners are roles or partners, shown on the board.
STEPS: tuple[tuple[str, str, str], ...] = (
    ("retention", "Retention offer", "cancellations_coordinator"),
    ("notice", "Notice & penalty confirmed", "cancellations_coordinator"),
    ("customer_notified", "Customer notified", "cancellations_coordinator"),
    ("fno_deactivation", "FNO deactivation", "fno"),
    ("equipment", "Equipment collection", "logistics"),
    ("final_account", "Final account", "billing_analyst"),
)
STEP_CODES = tuple(c for c, _, _ in STEPS)
STEP_LABELS = {c: label for c, label, _ in STEPS}

REASONS = {"moving": "Moving", "price": "Price", "service_quality": "Service quality", "competitor": "Competitor", "financial": "Financial",
           "deceased": "Deceased", "emigrating": "Emigrating", "non_payment": "Non-payment", "other": "Other"}
REQUESTERS = {"account_holder": "Account holder (verified)", "deceased_estate": "Deceased estate (with documents)", "api": "System (API order)"}
KINDS = ("cancellation", "relocation")


class CancellationPolicy(Base):
    """When retention is offered or skipped, how late a cancellation can be withdrawn, when a step is at risk and who
    hears of it. The most specific row wins: reason and segment, then reason, then segment, then the default (both None)."""

    __tablename__ = "cancellation_policy"

    id: Mapped[IdPk]
    code: Mapped[str] = mapped_column(String(40), unique=True)
    reason_code: Mapped[str | None] = mapped_column(String(30))
    segment_code: Mapped[str | None] = mapped_column(String(30))
    skip_retention: Mapped[bool] = mapped_column(Boolean, default=False)
    withdraw_days_before: Mapped[int] = mapped_column(Integer, default=5)  # calendar days before the effective date
    at_risk_hours: Mapped[int] = mapped_column(Integer, default=24)  # an open step due within this is at risk
    escalation_email: Mapped[str | None] = mapped_column(String(200))  # the coordinators' manager
    holiday_country: Mapped[str] = mapped_column(String(2), default="ZA")
    final_account_business_days: Mapped[int] = mapped_column(Integer, default=5)  # after the FNO confirmation
    equipment_grace_days: Mapped[int] = mapped_column(Integer, default=20)  # after deactivation
    description: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("reason_code", "segment_code"),
        CheckConstraint("withdraw_days_before >= 0 AND at_risk_hours >= 0 AND final_account_business_days >= 0 AND equipment_grace_days >= 0",
                        name="non_negative"),
    )

    def __str__(self) -> str:
        return self.code


class CancellationJourney(Base):
    """One product's way out (or to a new site): every date, amount and reference the desk shows."""

    __tablename__ = "cancellation_journey"

    id: Mapped[IdPk]
    reference: Mapped[str] = mapped_column(String(20), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="cancellation")
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    product_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("product.id"))
    partner_code: Mapped[str | None] = mapped_column(String(30))
    state: Mapped[str] = mapped_column(String(30), default=JourneyState.REQUESTED)
    reason_code: Mapped[str] = mapped_column(String(30))
    requester: Mapped[str] = mapped_column(String(20), default="account_holder")
    requester_name: Mapped[str | None] = mapped_column(String(120))
    documents: Mapped[str | None] = mapped_column(Text)  # deceased estate: death certificate, letter of executorship ...
    channel: Mapped[str] = mapped_column(String(20), default="staff")  # staff | case | api | portal
    case_id: Mapped[int | None] = mapped_column(BigInteger)
    notes: Mapped[str | None] = mapped_column(Text)
    notice_date: Mapped[date]  # the day the notice was received (operator's local date)
    requested_date: Mapped[date | None]  # a later end the customer asked for
    effective_date: Mapped[date | None]  # first day without service (exclusive end), once confirmed
    juristic: Mapped[bool] = mapped_column(Boolean, default=False)
    cpa_applies: Mapped[bool] = mapped_column(Boolean, default=False)
    date_explanation: Mapped[str | None] = mapped_column(Text)
    etf_minor: Mapped[int | None] = mapped_column(BigInteger)
    etf_currency: Mapped[str | None] = mapped_column(String(3))
    etf_waiver_reason: Mapped[str | None] = mapped_column(Text)
    retention_outcome: Mapped[str | None] = mapped_column(String(20))  # skipped | declined | accepted
    retention_offer: Mapped[str | None] = mapped_column(Text)
    retention_order_id: Mapped[int | None] = mapped_column(BigInteger)
    new_site_id: Mapped[int | None] = mapped_column(BigInteger)  # relocation
    new_offering_id: Mapped[int | None] = mapped_column(BigInteger)
    order_id: Mapped[int | None] = mapped_column(BigInteger)  # the delete (or relocation) order
    order_item_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    service_order_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    fno_due_date: Mapped[date | None]
    fno_confirmed_date: Mapped[date | None]
    at_risk: Mapped[bool] = mapped_column(Boolean, default=False)
    next_due_at: Mapped[datetime | None]  # the earliest open step's due time (the board sorts by it)
    current_step: Mapped[str | None] = mapped_column(String(30))  # the first open step
    state_reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        JOURNEY.check(),
        CheckConstraint(sql_in("kind", KINDS), name="kind"),
        CheckConstraint(sql_in("reason_code", REASONS), name="reason_code"),
        CheckConstraint(sql_in("requester", REQUESTERS), name="requester"),
        CheckConstraint("retention_outcome IS NULL OR " + sql_in("retention_outcome", ("skipped", "declined", "accepted")), name="retention_outcome"),
        Index("ix_cancellation_journey_state_due", "state", "next_due_at"),
        # the board's order over every open journey (earliest due first) without a sort of them all
        Index("ix_cancellation_journey_open_due", "next_due_at", "id", postgresql_where=text(f"state IN ({OPEN_SQL})"),
              sqlite_where=text(f"state IN ({OPEN_SQL})")),
        Index("ix_cancellation_journey_step_due", "current_step", "next_due_at"),
        Index("ix_cancellation_journey_partner_state", "partner_code", "state"),
        Index("ix_cancellation_journey_account", "account_id", "id"),
        Index("ix_cancellation_journey_product", "product_id", "state"),
    )


class CancellationStep(Base):
    """One checklist line of a journey: who owns it, by when (business calendar), its state and how it was done."""

    __tablename__ = "cancellation_step"

    id: Mapped[IdPk]
    journey_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("cancellation_journey.id"))
    account_id: Mapped[int] = mapped_column(BigInteger)
    code: Mapped[str] = mapped_column(String(30))
    position: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(String(80))
    state: Mapped[str] = mapped_column(String(10), default=StepState.OPEN)
    due_at: Mapped[datetime | None]
    at_risk: Mapped[bool] = mapped_column(Boolean, default=False)
    escalated_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    done_by: Mapped[str | None] = mapped_column(String(80))
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        STEP.check(),
        CheckConstraint(sql_in("code", STEP_CODES), name="code"),
        UniqueConstraint("journey_id", "code"),
        Index("ix_cancellation_step_open_due", "state", "due_at"),
        Index("ix_cancellation_step_due", "due_at"),  # reports: steps due in a window, the latest breaches first
    )


class TaskState(enum.StrEnum):
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "inProgress"
    DONE = "done"
    TERMINATED_WITH_ERROR = "terminatedWithError"


# A TMF622 cancelProductOrder task: done when the order is cancelled, inProgress while the order waits in
# pendingCancellation for a partner that already holds its service order.
CANCEL_ORDER_TASK = Lifecycle(
    name="cancel_product_order",
    states=TaskState,
    initial=TaskState.ACKNOWLEDGED,
    transitions={
        TaskState.ACKNOWLEDGED: {"start": TaskState.IN_PROGRESS, "finish": TaskState.DONE, "error": TaskState.TERMINATED_WITH_ERROR},
        TaskState.IN_PROGRESS: {"finish": TaskState.DONE, "error": TaskState.TERMINATED_WITH_ERROR},
        TaskState.DONE: {}, TaskState.TERMINATED_WITH_ERROR: {},
    },
    system_actions={"start", "finish", "error"},
)


class CancelProductOrder(Base):
    """A request (TMF622 task) to cancel a product order, and how it ended."""

    __tablename__ = "cancel_product_order"

    id: Mapped[IdPk]
    product_order_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("product_order.id"), index=True)
    account_id: Mapped[int] = mapped_column(BigInteger)
    journey_id: Mapped[int | None] = mapped_column(BigInteger)  # the cancellation journey it withdrew, if any
    state: Mapped[str] = mapped_column(String(30), default=TaskState.ACKNOWLEDGED)
    cancellation_reason: Mapped[str | None] = mapped_column(Text)
    requested_cancellation_date: Mapped[datetime | None]
    effective_cancellation_date: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (CANCEL_ORDER_TASK.check(),)
