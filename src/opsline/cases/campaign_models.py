"""Tables for outbound campaigns: the campaign (saved filter, script, offers, channel) and its targets (work items)."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from opsline.core.lifecycle import Lifecycle
from opsline.db.base import Base, IdPk, JSONType, sql_in


class CampaignState(enum.StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


CAMPAIGN = Lifecycle(
    name="campaign",
    states=CampaignState,
    initial=CampaignState.DRAFT,
    transitions={
        CampaignState.DRAFT: {"launch": CampaignState.RUNNING, "cancel": CampaignState.CANCELLED},
        CampaignState.RUNNING: {"complete": CampaignState.COMPLETED, "cancel": CampaignState.CANCELLED},
        CampaignState.COMPLETED: {},
        CampaignState.CANCELLED: {},
    },
    permissions={"launch": "cases.campaigns", "complete": "cases.campaigns", "cancel": "cases.campaigns"},
    needs_reason={"cancel"},
    labels={"launch": "Launch (create the work items)", "complete": "Complete", "cancel": "Cancel"},
)

FILTER_KINDS = ("contract_ending", "product_retiring", "outage_area")
CAMPAIGN_CHANNELS = ("call", "email")
# a target's outcome: pending (work item open), no_answer (tried), reached/accepted/declined (spoke to them), capped (the
# contact caps allow no more marketing contact in the period: kept, not worked), opted_out (the account said no to marketing)
TARGET_OUTCOMES = ("pending", "no_answer", "reached", "accepted", "declined", "capped", "opted_out")


class Campaign(Base):
    __tablename__ = "campaign"

    id: Mapped[IdPk]
    name: Mapped[str] = mapped_column(String(120))
    filter_kind: Mapped[str] = mapped_column(String(30))
    filter_params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    script: Mapped[str] = mapped_column(Text)
    offers: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    channel: Mapped[str] = mapped_column(String(10), default="call")
    state: Mapped[str] = mapped_column(String(20), default=CampaignState.DRAFT)
    target_count: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime]
    launched_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]

    __table_args__ = (
        CAMPAIGN.check(),
        CheckConstraint(sql_in("filter_kind", FILTER_KINDS), name="filter_kind"),
        CheckConstraint(sql_in("channel", CAMPAIGN_CHANNELS), name="channel"),
    )


class CampaignTarget(Base):
    """One account to contact in a campaign: an agent's work item (a call) or an email through notifications."""

    __tablename__ = "campaign_target"

    id: Mapped[IdPk]
    campaign_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("campaign.id"))
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    outcome: Mapped[str] = mapped_column(String(20), default="pending")
    offer: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    lead_id: Mapped[int | None] = mapped_column(BigInteger)
    agent: Mapped[str | None] = mapped_column(String(120))
    outcome_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    __table_args__ = (
        CheckConstraint(sql_in("outcome", TARGET_OUTCOMES), name="outcome"),
        UniqueConstraint("campaign_id", "account_id"),
        Index("ix_campaign_target_outcome", "campaign_id", "outcome"),
    )


class TrendSubscription(Base):
    """A manager's weekly trends report by email (the job `cases.trends_weekly` sends it every Monday with the workbook)."""

    __tablename__ = "trend_subscription"

    id: Mapped[IdPk]
    email: Mapped[str] = mapped_column(String(200))
    weeks: Mapped[int] = mapped_column(Integer, default=12)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime]
    last_sent_for: Mapped[date | None]  # the Monday of the last week reported

    __table_args__ = (CheckConstraint("weeks BETWEEN 1 AND 104", name="weeks"), UniqueConstraint("email"))


class IncidentState(enum.StrEnum):
    OPEN = "open"
    CONTAINED = "contained"
    CLOSED = "closed"


# a brand emergency raised from a flagged case: worked by its owner, stakeholders told at each step, closed with a summary
BRAND_INCIDENT = Lifecycle(
    name="brand_incident",
    states=IncidentState,
    initial=IncidentState.OPEN,
    transitions={
        IncidentState.OPEN: {"contain": IncidentState.CONTAINED, "close": IncidentState.CLOSED},
        IncidentState.CONTAINED: {"close": IncidentState.CLOSED, "reopen": IncidentState.OPEN},
        IncidentState.CLOSED: {},
    },
    permissions={"close": "cases.incidents", "reopen": "cases.incidents"},
    needs_reason={"reopen"},
    labels={"contain": "Contained", "close": "Close with summary", "reopen": "Reopen"},
)


class BrandIncident(Base):
    __tablename__ = "brand_incident"

    id: Mapped[IdPk]
    reference: Mapped[str | None] = mapped_column(String(20), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    severity: Mapped[int] = mapped_column(Integer, default=2)
    state: Mapped[str] = mapped_column(String(20), default=IncidentState.OPEN)
    owner: Mapped[str] = mapped_column(String(120))  # a staff username
    stakeholders: Mapped[list[Any]] = mapped_column(JSONType, default=list)  # email addresses told at each step
    raised_from_case_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("support_case.id"))
    summary: Mapped[str | None] = mapped_column(Text)
    opened_at: Mapped[datetime]
    opened_by: Mapped[str] = mapped_column(String(120))
    closed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]

    __table_args__ = (
        BRAND_INCIDENT.check(),
        CheckConstraint("severity BETWEEN 1 AND 3", name="severity"),
        CheckConstraint("state <> 'closed' OR summary IS NOT NULL", name="closed_summary"),
        Index("ix_brand_incident_state", "state", "opened_at"),
    )


class BrandIncidentCase(Base):
    __tablename__ = "brand_incident_case"

    id: Mapped[IdPk]
    incident_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("brand_incident.id"))
    case_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("support_case.id"), index=True)
    linked_at: Mapped[datetime]
    linked_by: Mapped[str] = mapped_column(String(120))

    __table_args__ = (UniqueConstraint("incident_id", "case_id"),)
