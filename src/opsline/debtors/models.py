"""Debtors tables: dunning policies and their steps (data), dunning runs, the actions a run takes, where each account
stands in dunning, holds out of dunning, and letters of demand."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, LargeBinary, Numeric, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from opsline.core.lifecycle import Lifecycle
from opsline.db.base import Base, IdPk, JSONType, sql_in


class StepAction(enum.StrEnum):
    REMINDER_EMAIL = "reminder_email"
    REMINDER_SMS = "reminder_sms"
    LETTER_OF_DEMAND = "letter_of_demand"
    SUSPENSION_WARNING = "suspension_warning"
    SUSPEND = "suspend"
    # recorded as proposals for a person in this slice (the partner cease, final invoice and write-off come later)
    DISCONTINUANCE = "discontinuance"
    FINAL_ACCOUNT = "final_account"
    WRITE_OFF_PROPOSAL = "write_off_proposal"
    CALL = "call"  # a person phones the customer (VIP / high-value routing)


PROPOSAL_ACTIONS = (StepAction.DISCONTINUANCE, StepAction.FINAL_ACCOUNT, StepAction.WRITE_OFF_PROPOSAL, StepAction.CALL)
HANDLERS = ("system", "person")




class DunningPolicy(Base):
    """Which steps apply to accounts of a segment and value tier (null = any). The most specific active policy wins
    (segment and tier, then segment, then tier, then the default)."""

    __tablename__ = "dunning_policy"
    id: Mapped[IdPk]
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    segment_code: Mapped[str | None] = mapped_column(String(30), ForeignKey("segment.code"))
    value_tier_code: Mapped[str | None] = mapped_column(String(30), ForeignKey("value_tier.code"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(120))
    version: Mapped[int] = mapped_column(Integer, default=1)

    def __str__(self) -> str:
        return self.name


class DunningStep(Base):
    """One step of a policy: taken once an account is `min_days_overdue` days overdue with at least `min_balance_minor`
    overdue, and no sooner than the previous step's `notice_days` after it. `handled_by='person'` routes it to the desk."""

    __tablename__ = "dunning_step"
    id: Mapped[IdPk]
    policy_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("dunning_policy.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(30))
    min_days_overdue: Mapped[int] = mapped_column(Integer)
    min_balance_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    notice_days: Mapped[int] = mapped_column(Integer, default=0)  # days the customer gets after this step before the next
    handled_by: Mapped[str] = mapped_column(String(10), default="system")
    template_event: Mapped[str | None] = mapped_column(String(80))

    __table_args__ = (
        UniqueConstraint("policy_id", "position", name="uq_dunning_step_policy_position"),
        CheckConstraint(sql_in("action", StepAction), name="action"),
        CheckConstraint(sql_in("handled_by", HANDLERS), name="handled_by"),
        CheckConstraint("min_days_overdue >= 0 AND min_balance_minor >= 0 AND notice_days >= 0 AND position >= 1", name="non_negative"),
    )


class RunState(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


DUNNING_RUN = Lifecycle(
    name="dunning_run",
    states=RunState,
    initial=RunState.RUNNING,
    transitions={RunState.RUNNING: {"complete": RunState.COMPLETED, "fail": RunState.FAILED}, RunState.COMPLETED: {}, RunState.FAILED: {}},
    system_actions={"complete", "fail"},
)


class DunningRun(Base):
    """One run per date (a second run the same day finds this row and does nothing). `summary` keeps per-step counts
    and amounts and the exclusions, as the dry run showed them."""

    __tablename__ = "dunning_run"
    id: Mapped[IdPk]
    run_date: Mapped[date] = mapped_column(Date, unique=True)
    state: Mapped[str] = mapped_column(String(20), default=RunState.RUNNING)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    started_by: Mapped[str] = mapped_column(String(120))
    previous_run_date: Mapped[date | None] = mapped_column(Date)
    accounts_evaluated: Mapped[int] = mapped_column(Integer, default=0)
    actions_count: Mapped[int] = mapped_column(Integer, default=0)
    overdue_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    summary: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    __table_args__ = (DUNNING_RUN.check(),)


class ActionState(enum.StrEnum):
    QUEUED = "queued"  # written by the run; the worker sends / suspends
    DONE = "done"
    SKIPPED = "skipped"  # nothing to do when the worker came to it (e.g. already suspended)
    FAILED = "failed"
    PROPOSED = "proposed"  # waits for a person (routed step, discontinuance, final account, write-off)
    ACCEPTED = "accepted"
    DISMISSED = "dismissed"


A = ActionState
DUNNING_ACTION = Lifecycle(
    name="dunning_action",
    states=ActionState,
    initial=A.QUEUED,
    transitions={
        A.QUEUED: {"perform": A.DONE, "skip": A.SKIPPED, "fail": A.FAILED},
        A.FAILED: {"retry": A.QUEUED},
        A.PROPOSED: {"accept": A.ACCEPTED, "dismiss": A.DISMISSED},
        A.DONE: {}, A.SKIPPED: {}, A.ACCEPTED: {}, A.DISMISSED: {},
    },
    system_actions={"perform", "skip", "fail"},
    permissions={"retry": "debtors.run", "accept": "debtors.act", "dismiss": "debtors.act"},
    needs_reason={"dismiss"},
    labels={"retry": "Retry", "accept": "Done / accepted", "dismiss": "Dismiss"},
)


class DunningAction(Base):
    """What a run did (or proposes) for one account: at most one per account per run date."""

    __tablename__ = "dunning_action"
    id: Mapped[IdPk]
    run_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("dunning_run.id"), index=True)
    run_date: Mapped[date] = mapped_column(Date)
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    policy_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("dunning_policy.id"))
    step_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("dunning_step.id"))
    position: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(30))
    handled_by: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(20), default=ActionState.QUEUED)
    days_overdue: Mapped[int] = mapped_column(Integer)
    overdue_minor: Mapped[int] = mapped_column(BigInteger)
    balance_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    done_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(120))

    __table_args__ = (
        DUNNING_ACTION.check(),
        UniqueConstraint("account_id", "run_date", name="uq_dunning_action_account_date"),
        CheckConstraint(sql_in("action", StepAction), name="action"),
        Index("ix_dunning_action_state", "state", "run_date"),
        Index("ix_dunning_action_account", "account_id", "id"),
    )


class DunningAccount(Base):
    """Where an account stands in dunning: its last step and the first date the next may come. Removed when the account
    is no longer overdue, so a later arrear starts again at the first step."""

    __tablename__ = "dunning_account"
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"), primary_key=True)
    policy_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("dunning_policy.id"))
    position: Mapped[int] = mapped_column(Integer)
    step_id: Mapped[int] = mapped_column(BigInteger)
    last_step_on: Mapped[date] = mapped_column(Date)
    next_step_from: Mapped[date] = mapped_column(Date)  # last_step_on + that step's notice days


class HoldState(enum.StrEnum):
    ACTIVE = "active"
    RELEASED = "released"


DUNNING_HOLD = Lifecycle(
    name="dunning_hold",
    states=HoldState,
    initial=HoldState.ACTIVE,
    transitions={HoldState.ACTIVE: {"release": HoldState.RELEASED}, HoldState.RELEASED: {}},
    permissions={"release": "debtors.hold"},
    needs_reason={"release"},
    labels={"release": "Release hold"},
)


class DunningHold(Base):
    """A person holds an account out of dunning on [valid_from, valid_to) with a reason."""

    __tablename__ = "dunning_hold"
    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    state: Mapped[str] = mapped_column(String(20), default=HoldState.ACTIVE)
    reason: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date] = mapped_column(Date)  # exclusive: dunning resumes on this date
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))
    released_at: Mapped[datetime | None]
    released_by: Mapped[str | None] = mapped_column(String(120))

    __table_args__ = (
        DUNNING_HOLD.check(),
        CheckConstraint("valid_to > valid_from", name="period"),
        Index("ix_dunning_hold_account", "account_id", "state", "valid_to"),
    )


class DunningLetter(Base):
    """A letter of demand as sent: the PDF, rendered once by the worker."""

    __tablename__ = "dunning_letter"
    id: Mapped[IdPk]
    action_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("dunning_action.id"), unique=True)
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"), index=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    size_bytes: Mapped[int] = mapped_column(Integer)
    rendered_at: Mapped[datetime]


# --- arrangements (issue 11 item 3): extension of time and pay-off plans ------------------------------------------


class ArrangementKind(enum.StrEnum):
    PROMISE = "promise"  # extension of time: one amount by one date
    PLAN = "plan"  # pay-off plan: instalments


class ArrangementState(enum.StrEnum):
    PROPOSED = "proposed"  # above the proposer's approval limit: waits for a second person
    ACTIVE = "active"
    KEPT = "kept"
    BROKEN = "broken"
    CANCELLED = "cancelled"


_G = ArrangementState
ARRANGEMENT = Lifecycle(
    name="arrangement",
    states=ArrangementState,
    initial=_G.PROPOSED,
    transitions={
        _G.PROPOSED: {"approve": _G.ACTIVE, "cancel": _G.CANCELLED},
        _G.ACTIVE: {"keep": _G.KEPT, "break": _G.BROKEN, "cancel": _G.CANCELLED},
        _G.KEPT: {}, _G.BROKEN: {}, _G.CANCELLED: {},
    },
    system_actions={"keep", "break"},
    permissions={"approve": "debtors.arrange", "cancel": "debtors.arrange"},
    needs_reason={"cancel"},
    labels={"approve": "Approve", "cancel": "Cancel arrangement"},
)


class Arrangement(Base):
    """A promise to pay (one instalment) or a pay-off plan (several) for an account's debt. Payments count towards it
    from `created_at` on (every credit on the account's ledger), the oldest instalment first."""

    __tablename__ = "arrangement"
    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    kind: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(20), default=ArrangementState.PROPOSED)
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # what is promised in total (the instalments add up to it)
    debt_minor: Mapped[int] = mapped_column(BigInteger)  # overdue on the account when it was made
    currency: Mapped[str] = mapped_column(String(3))
    note: Mapped[str] = mapped_column(Text, default="")
    needs_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(120))
    closed_on: Mapped[date | None] = mapped_column(Date)  # kept / broken / cancelled on
    closing_note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        ARRANGEMENT.check(),
        CheckConstraint(sql_in("kind", ArrangementKind), name="kind"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        Index("ix_arrangement_account", "account_id", "state"),
        Index("ix_arrangement_state", "state"),
    )


class ArrangementInstalment(Base):
    """One dated amount of an arrangement; met when the payments since the arrangement cover it and every earlier one
    by the end of `due_date`."""

    __tablename__ = "arrangement_instalment"
    id: Mapped[IdPk]
    arrangement_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("arrangement.id"))
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    seq: Mapped[int] = mapped_column(Integer)
    due_date: Mapped[date] = mapped_column(Date)
    amount_minor: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("arrangement_id", "seq", name="uq_arrangement_instalment_seq"),
        CheckConstraint("amount_minor > 0 AND seq >= 1", name="positive"),
        Index("ix_arrangement_instalment_due", "due_date"),
    )


class ArrangementApprovalLimit(Base):
    """Settings data: the largest arrangement a role may approve on its own (null = no limit)."""

    __tablename__ = "arrangement_approval_limit"
    role: Mapped[str] = mapped_column(String(40), primary_key=True)
    max_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(120))

    def __str__(self) -> str:
        return self.role


# --- write-offs (issue 11 item 5): proposals a debtors manager approves (never the proposer), posted to the ledger ---

class WriteOffState(enum.StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    POSTED = "posted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


W = WriteOffState
WRITE_OFF = Lifecycle(
    name="write_off",
    states=WriteOffState,
    initial=W.PROPOSED,
    transitions={
        # `approve_in_batch`: the batch's approval (four eyes on the batch) moves its proposals; never a person's button
        W.PROPOSED: {"approve": W.APPROVED, "reject": W.REJECTED, "cancel": W.CANCELLED, "approve_in_batch": W.APPROVED},
        W.APPROVED: {"post": W.POSTED},
        W.POSTED: {}, W.REJECTED: {}, W.CANCELLED: {},
    },
    system_actions={"post", "approve_in_batch"},
    permissions={"approve": "debtors.writeoff.approve", "reject": "debtors.writeoff.approve", "cancel": "debtors.writeoff.propose"},
    needs_reason={"reject", "cancel"},
    four_eyes={"approve": "proposed_by"},
    labels={"approve": "Approve and post", "reject": "Reject", "cancel": "Withdraw"},
)

WRITE_OFF_BATCH = Lifecycle(
    name="write_off_batch",
    states=WriteOffState,
    initial=W.PROPOSED,
    transitions={
        W.PROPOSED: {"approve": W.APPROVED, "reject": W.REJECTED, "cancel": W.CANCELLED},
        W.APPROVED: {"post": W.POSTED},
        W.POSTED: {}, W.REJECTED: {}, W.CANCELLED: {},
    },
    system_actions={"post"},
    permissions={"approve": "debtors.writeoff.approve", "reject": "debtors.writeoff.approve", "cancel": "debtors.writeoff.propose"},
    needs_reason={"reject", "cancel"},
    four_eyes={"approve": "proposed_by"},
    labels={"approve": "Approve and post all", "reject": "Reject all", "cancel": "Withdraw all"},
)


class WriteOffBatch(Base):
    """Write-offs proposed together for a filtered set of accounts (the filter kept as proposed), decided in one action."""

    __tablename__ = "write_off_batch"
    id: Mapped[IdPk]
    state: Mapped[str] = mapped_column(String(20), default=WriteOffState.PROPOSED)
    reason: Mapped[str] = mapped_column(Text)
    criteria: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    accounts: Mapped[int] = mapped_column(Integer)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    vat_relief_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    proposed_at: Mapped[datetime]
    proposed_by: Mapped[str] = mapped_column(String(120))
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(120))
    posted_at: Mapped[datetime | None]

    __table_args__ = (WRITE_OFF_BATCH.check(),)


class WriteOff(Base):
    """A proposal to write off `amount_minor` of an account's debt, oldest debt first; posted as one ledger entry of
    kind write_off. `prescribed_minor`: how much of it was prescribed (3 years past due) when proposed."""

    __tablename__ = "write_off"
    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    batch_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("write_off_batch.id"), index=True)
    dunning_action_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("dunning_action.id"))
    state: Mapped[str] = mapped_column(String(20), default=WriteOffState.PROPOSED)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    vat_relief_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    prescribed_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    balance_minor: Mapped[int] = mapped_column(BigInteger)  # the balance when proposed
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(Text)
    proposed_at: Mapped[datetime]
    proposed_by: Mapped[str] = mapped_column(String(120))
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(120))
    decision_note: Mapped[str | None] = mapped_column(Text)
    posted_at: Mapped[datetime | None]
    ledger_entry_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        WRITE_OFF.check(),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        # one open write-off per account: a second proposal waits for the first to be decided
        Index("uq_write_off_open_account", "account_id", unique=True,
              postgresql_where=text("state IN ('proposed', 'approved')"), sqlite_where=text("state IN ('proposed', 'approved')")),
        Index("ix_write_off_state", "state", "proposed_at"),
    )


class WriteOffVat(Base):
    """The VAT relief of a write-off per VAT rate of the invoices written off: gross written off under that rate and its
    VAT fraction (gross x rate / (1 + rate), half-up). Debt not from an invoice has tax_rate_code '' and no relief."""

    __tablename__ = "write_off_vat"
    write_off_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("write_off.id"), primary_key=True)
    tax_rate_code: Mapped[str] = mapped_column(String(20), primary_key=True)
    rate: Mapped[Decimal] = mapped_column(Numeric(7, 4))
    gross_minor: Mapped[int] = mapped_column(BigInteger)
    vat_relief_minor: Mapped[int] = mapped_column(BigInteger)
