"""Tables for second-line support cases (TMF621 trouble tickets), queues, notes, history, retention and sales leads."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, false, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from opsline.core.lifecycle import Lifecycle
from opsline.db.base import Base, IdPk, JSONType, append_only, sql_in


class CaseState(enum.StrEnum):
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "inProgress"
    PENDING = "pending"
    HELD = "held"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


S = CaseState
# The case lifecycle: the only place that says which moves exist (buttons, CHECK constraint and audit come from it).
CASE = Lifecycle(
    name="case",
    states=CaseState,
    initial=S.ACKNOWLEDGED,
    transitions={
        S.ACKNOWLEDGED: {"start": S.IN_PROGRESS, "pend": S.PENDING, "hold": S.HELD, "resolve": S.RESOLVED, "cancel": S.CANCELLED, "reject": S.REJECTED},
        S.IN_PROGRESS: {"pend": S.PENDING, "hold": S.HELD, "resolve": S.RESOLVED, "cancel": S.CANCELLED, "reject": S.REJECTED},
        S.PENDING: {"resume": S.IN_PROGRESS, "resolve": S.RESOLVED, "cancel": S.CANCELLED},
        S.HELD: {"resume": S.IN_PROGRESS, "resolve": S.RESOLVED, "cancel": S.CANCELLED},
        S.RESOLVED: {"close": S.CLOSED, "reopen": S.IN_PROGRESS},
        S.CLOSED: {"reopen": S.IN_PROGRESS},
        S.CANCELLED: {},
        S.REJECTED: {},
    },
    needs_reason={"pend", "cancel", "reject", "reopen"},
    labels={"start": "Start work", "pend": "Wait for customer", "hold": "Hold for third party", "resume": "Resume",
            "resolve": "Resolve", "close": "Close", "reopen": "Reopen", "cancel": "Cancel", "reject": "Reject"},
)


class LeadState(enum.StrEnum):
    NEW = "new"
    QUALIFIED = "qualified"
    HANDED_OVER = "handed_over"  # with a sales team (a queue) or a sales partner, waiting for the outcome
    WON = "won"
    LOST = "lost"


LEAD = Lifecycle(
    name="lead",
    states=LeadState,
    initial=LeadState.NEW,
    transitions={
        LeadState.NEW: {"qualify": LeadState.QUALIFIED, "lose": LeadState.LOST},
        LeadState.QUALIFIED: {"win": LeadState.WON, "lose": LeadState.LOST, "hand_over": LeadState.HANDED_OVER},
        LeadState.HANDED_OVER: {"win": LeadState.WON, "lose": LeadState.LOST},
        LeadState.WON: {},
        LeadState.LOST: {},
    },
    needs_reason={"lose"},
    labels={"qualify": "Qualify", "win": "Won", "lose": "Lost", "hand_over": "Hand over to sales"},
)

SLA_STATES = ("ok", "at_risk", "breached")
OPEN_STATES = (CaseState.ACKNOWLEDGED, CaseState.IN_PROGRESS, CaseState.PENDING, CaseState.HELD)
CHANNELS = ("call", "email", "web", "campaign", "front_line_escalation", "partner")
NOTE_VISIBILITY = ("internal", "customer", "originating_agent")
LINK_TYPES = ("account", "invoice", "order", "product", "partner_ticket", "cancellation")
ASSIGNMENT = ("manual", "round_robin", "least_loaded")




class CaseCategory(Base):
    """Reference data: what a case is about; its default priority and queue, and the skill it needs."""

    __tablename__ = "case_category"
    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    default_priority: Mapped[int] = mapped_column(Integer, default=3)
    default_queue_code: Mapped[str | None] = mapped_column(String(40))
    required_skills: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    retention: Mapped[bool] = mapped_column(Boolean, default=False)  # "wants to cancel": retention offers apply

    __table_args__ = (CheckConstraint("default_priority BETWEEN 1 AND 4", name="default_priority"),)

    def __str__(self) -> str:
        return self.name


class Queue(Base):
    """A team's work queue; `calendar_code` names the SLA engine's business calendar for its clocks."""

    __tablename__ = "queue"
    id: Mapped[IdPk]
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    is_escalation: Mapped[bool] = mapped_column(Boolean, default=False)
    manager_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("staff_user.id"))
    assignment: Mapped[str] = mapped_column(String(20), default="manual")
    skills: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    calendar_code: Mapped[str | None] = mapped_column(String(40))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    rr_last_user_id: Mapped[int | None] = mapped_column(BigInteger)  # round-robin pointer (last assigned member)

    __table_args__ = (CheckConstraint(sql_in("assignment", ASSIGNMENT), name="assignment"),)

    def __str__(self) -> str:
        return self.name


class QueueMember(Base):
    __tablename__ = "queue_member"
    id: Mapped[IdPk]
    queue_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("queue.id"))
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("staff_user.id"))
    skills: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (UniqueConstraint("queue_id", "user_id", name="queue_user"), Index("ix_queue_member_user", "user_id"))


class PriorityRule(Base):
    """Reference data: priority adjustment (negative = more urgent) for a value tier and/or category (null = any)."""

    __tablename__ = "priority_rule"
    id: Mapped[IdPk]
    value_tier_code: Mapped[str | None] = mapped_column(String(30), ForeignKey("value_tier.code"))
    category_code: Mapped[str | None] = mapped_column(String(40), ForeignKey("case_category.code"))
    adjust: Mapped[int] = mapped_column(Integer, default=-1)
    description: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class CaseSetting(Base):
    """Reference data: operator-tunable case settings (auto-close days, FCR window, escalation queue ...)."""

    __tablename__ = "case_setting"
    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(300))

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class SupportCase(Base):
    __tablename__ = "support_case"

    id: Mapped[IdPk]
    reference: Mapped[str] = mapped_column(String(20), unique=True)
    account_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("account.id"))
    category_code: Mapped[str] = mapped_column(String(40), ForeignKey("case_category.code"))
    channel: Mapped[str] = mapped_column(String(30), default="call")
    subject: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20), default=CaseState.ACKNOWLEDGED)
    priority: Mapped[int] = mapped_column(Integer, default=3)
    value_tier_code: Mapped[str | None] = mapped_column(String(30))
    queue_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("queue.id"))
    assignee_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("staff_user.id"))
    originating_agent: Mapped[str | None] = mapped_column(String(200))
    contact_email: Mapped[str | None] = mapped_column(String(200))
    contact_phone: Mapped[str | None] = mapped_column(String(30))
    litigation_risk: Mapped[bool] = mapped_column(Boolean, default=False)
    brand_risk: Mapped[bool] = mapped_column(Boolean, default=False)
    contractual_dispute: Mapped[bool] = mapped_column(Boolean, default=False)
    opened_at: Mapped[datetime]
    opened_by: Mapped[str | None] = mapped_column(String(120))
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(120))
    closed_at: Mapped[datetime | None]
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    fcr_candidate: Mapped[bool] = mapped_column(Boolean, default=False)  # resolved within the opening interaction
    first_contact_resolution: Mapped[bool | None] = mapped_column(Boolean)  # decided after the reopen window
    ever_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    ever_handed_off: Mapped[bool] = mapped_column(Boolean, default=False)
    pending_reason: Mapped[str | None] = mapped_column(Text)
    held_reason: Mapped[str | None] = mapped_column(Text)
    third_party_partner_code: Mapped[str | None] = mapped_column(String(40))
    resolution: Mapped[str | None] = mapped_column(Text)
    sentiment_recovered: Mapped[bool | None] = mapped_column(Boolean)  # outcome: an unhappy customer left satisfied (None: not judged)
    state_reason: Mapped[str | None] = mapped_column(Text)
    sla_policy_id: Mapped[int | None] = mapped_column(BigInteger)
    # The SLA engine's summary, given to cases through `cases.service.record_sla` (cases never reads SLA tables):
    # the open clock due first, the earliest breach still open and by how long, and the breach probability.
    sla_state: Mapped[str | None] = mapped_column(String(10))
    sla_due_at: Mapped[datetime | None]
    sla_breached_at: Mapped[datetime | None]
    sla_risk: Mapped[float | None] = mapped_column(Float)
    sla_as_of: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        CASE.check(),
        CheckConstraint("sla_state IS NULL OR " + sql_in("sla_state", SLA_STATES), name="sla_state"),
        CheckConstraint("sla_risk IS NULL OR (sla_risk >= 0 AND sla_risk <= 1)", name="sla_risk"),
        CheckConstraint(sql_in("channel", CHANNELS), name="channel"),
        CheckConstraint("priority BETWEEN 1 AND 4", name="priority"),
        Index("ix_support_case_account", "account_id", "id"),
        Index("ix_support_case_queue_state", "queue_id", "state"),
        Index("ix_support_case_assignee_state", "assignee_user_id", "state"),
        Index("ix_support_case_state", "state", "priority"),
        Index("ix_support_case_sla", "sla_state", "priority", "sla_due_at"),
    )


class CaseEvent(Base):
    """The case's state history, replayed by the SLA engine: one row per change of state/queue/priority/assignee."""

    __tablename__ = "case_event"

    id: Mapped[IdPk]
    case_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("support_case.id"))
    account_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("account.id"))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(20))
    from_value: Mapped[str | None] = mapped_column(String(200))
    to_value: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(120))
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    __table_args__ = (
        CheckConstraint("kind IN ('opened','state','queue','priority','assignee','first_response','note','reopened','policy')", name="kind"),
        Index("ix_case_event_case", "case_id", "id"),
    )


append_only(CaseEvent.__table__, "case_event is append-only")


class CaseNote(Base):
    __tablename__ = "case_note"

    id: Mapped[IdPk]
    case_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("support_case.id"))
    account_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("account.id"))
    at: Mapped[datetime]
    author: Mapped[str] = mapped_column(String(200))
    visibility: Mapped[str] = mapped_column(String(20), default="internal")
    direction: Mapped[str] = mapped_column(String(10), default="out")  # 'in' = from the customer
    body: Mapped[str] = mapped_column(Text)
    email_message_id: Mapped[str | None] = mapped_column(String(300))

    __table_args__ = (
        CheckConstraint(sql_in("visibility", NOTE_VISIBILITY), name="visibility"),
        CheckConstraint("direction IN ('in','out')", name="direction"),
        Index("ix_case_note_case", "case_id", "id"),
        Index("ix_case_note_message", "email_message_id"),
    )


class CaseAttachment(Base):
    __tablename__ = "case_attachment"

    id: Mapped[IdPk]
    case_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("support_case.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("account.id"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_at: Mapped[datetime]
    uploaded_by: Mapped[str] = mapped_column(String(120))

    __table_args__ = (CheckConstraint("size <= 5242880", name="size"),)


class CaseLink(Base):
    __tablename__ = "case_link"

    id: Mapped[IdPk]
    case_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("support_case.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("account.id"))
    target_type: Mapped[str] = mapped_column(String(30))
    target_id: Mapped[str | None] = mapped_column(String(60))
    target_ref: Mapped[str | None] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))

    __table_args__ = (CheckConstraint(sql_in("target_type", LINK_TYPES), name="target_type"),)


class SalesLead(Base):
    __tablename__ = "sales_lead"

    id: Mapped[IdPk]
    case_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("support_case.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("account.id"), index=True)
    product_interest: Mapped[str] = mapped_column(String(200))
    notes: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20), default=LeadState.NEW)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime | None]
    # the pipeline (issue 17, cases/leads.py): where it came from, what it is worth, the consent given, who has it, how it ended
    source: Mapped[str] = mapped_column(String(20), default="case", server_default="case")
    contact_name: Mapped[str | None] = mapped_column(String(200))
    contact_phone: Mapped[str | None] = mapped_column(String(30))
    contact_email: Mapped[str | None] = mapped_column(String(200))
    value_minor: Mapped[int | None] = mapped_column(BigInteger)  # expected monthly value, minor units of `currency`
    currency: Mapped[str | None] = mapped_column(String(3))
    consent_marketing: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    consent_channel: Mapped[str | None] = mapped_column(String(10))
    consent_at: Mapped[datetime | None]
    team_code: Mapped[str | None] = mapped_column(String(40))  # the recording agent's team (queue code), for conversion by team
    handed_to_kind: Mapped[str | None] = mapped_column(String(10))
    handed_to: Mapped[str | None] = mapped_column(String(40))  # queue code or partner code
    handed_at: Mapped[datetime | None]
    handover_message_id: Mapped[int | None] = mapped_column(BigInteger)
    won_order_id: Mapped[int | None] = mapped_column(BigInteger)
    lost_reason: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None]
    campaign_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        LEAD.check(),
        CheckConstraint("source IN ('case','contact','campaign')", name="source"),
        CheckConstraint("handed_to_kind IS NULL OR handed_to_kind IN ('team','partner')", name="handed_to_kind"),
        CheckConstraint("value_minor IS NULL OR (value_minor >= 0 AND currency IS NOT NULL)", name="value"),
        Index("ix_sales_lead_state", "state", "created_at"),
    )


class RetentionOffer(Base):
    __tablename__ = "retention_offer"

    id: Mapped[IdPk]
    case_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("support_case.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("account.id"), index=True)
    offer: Mapped[str] = mapped_column(String(300))
    outcome: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime]
    by: Mapped[str] = mapped_column(String(120))
    reason_code: Mapped[str | None] = mapped_column(String(30))  # why the customer wants to leave (cases/retention.py)
    change_order_id: Mapped[int | None] = mapped_column(BigInteger)  # the plan change placed when the offer was accepted

    __table_args__ = (CheckConstraint("outcome IN ('offer_made','accepted','declined')", name="outcome"),)
