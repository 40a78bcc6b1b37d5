"""Tables for clean customer data and risk: account merges (with the ids of every moved row, for an exact undo),
risk flags on accounts, orders held for risk review, credit checks on orders, and the operator's settings for them."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from opsline.core.lifecycle import Lifecycle
from opsline.db.base import Base, IdPk, JSONType


class CustomerSetting(Base):
    """Reference data: operator-tunable settings of the customer-data and risk work (merge undo window, credit-check limit ...)."""

    __tablename__ = "customer_setting"
    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(300))

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class MergeState(enum.StrEnum):
    DONE = "done"
    UNDONE = "undone"


# A merge is done at once (customers.merge.merge_accounts); an undo within the window moves exactly its rows back.
ACCOUNT_MERGE = Lifecycle(
    name="account_merge",
    states=MergeState,
    initial=MergeState.DONE,
    transitions={MergeState.DONE: {"undo": MergeState.UNDONE}, MergeState.UNDONE: {}},
    permissions={"undo": "customers.merge"},
    needs_reason={"undo"},
    labels={"undo": "Undo merge"},
)


class AccountMerge(Base):
    """One merge of `merged_account_id` into `survivor_account_id`: the merged account is closed and points here."""

    __tablename__ = "account_merge"
    id: Mapped[IdPk]
    survivor_account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"), index=True)
    merged_account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"), index=True)
    state: Mapped[str] = mapped_column(String(10), default=MergeState.DONE)
    reason: Mapped[str] = mapped_column(Text)
    merged_by: Mapped[str] = mapped_column(String(120))
    merged_at: Mapped[datetime]
    undo_until: Mapped[datetime]
    merged_status_before: Mapped[str] = mapped_column(String(20))
    # set when the two parties were merged too (every row pointing at the merged party moved to the survivor's)
    survivor_party_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("party.id"))
    merged_party_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("party.id"))
    # field -> {"before": survivor's value, "after": the value taken from the merged account}
    fields: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    counts: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # "table.column" -> rows moved
    kept: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # "table" -> why its rows stay with the merged account
    undone_by: Mapped[str | None] = mapped_column(String(120))
    undone_at: Mapped[datetime | None]
    undo_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (ACCOUNT_MERGE.check(),)


class AccountMergeRow(Base):
    """One row a merge moved: undo moves exactly these back (and refuses when one of them is no longer where it left it)."""

    __tablename__ = "account_merge_row"
    id: Mapped[IdPk]
    merge_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account_merge.id"))
    table_name: Mapped[str] = mapped_column(String(63))
    column_name: Mapped[str] = mapped_column(String(63))
    row_id: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_account_merge_row_merge", "merge_id", "table_name", "column_name", "row_id"),)


class FlagKind(enum.StrEnum):
    FRAUD = "fraud"
    CREDIT = "credit"
    OTHER = "other"


class FlagState(enum.StrEnum):
    ACTIVE = "active"
    CLEARED = "cleared"


RISK_FLAG = Lifecycle(
    name="risk_flag",
    states=FlagState,
    initial=FlagState.ACTIVE,
    transitions={FlagState.ACTIVE: {"clear": FlagState.CLEARED}, FlagState.CLEARED: {}},
    permissions={"clear": "risk.flag"},
    needs_reason={"clear"},
    labels={"clear": "Clear flag"},
)


class RiskFlag(Base):
    """A fraud, credit or other risk flag on an account; active until cleared (with a reason) or until `expires_at`."""

    __tablename__ = "risk_flag"
    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    kind: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(10), default=FlagState.ACTIVE)
    reason: Mapped[str] = mapped_column(Text)
    set_by: Mapped[str] = mapped_column(String(120))
    set_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    cleared_by: Mapped[str | None] = mapped_column(String(120))
    cleared_at: Mapped[datetime | None]
    clear_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        RISK_FLAG.check(),
        CheckConstraint("kind IN ('fraud','credit','other')", name="kind"),
        Index("ix_risk_flag_account", "account_id", "state"),
    )


class HoldState(enum.StrEnum):
    PENDING = "pending"
    RELEASED = "released"
    REJECTED = "rejected"


ORDER_RISK_HOLD = Lifecycle(
    name="order_risk_hold",
    states=HoldState,
    initial=HoldState.PENDING,
    transitions={HoldState.PENDING: {"release": HoldState.RELEASED, "reject": HoldState.REJECTED},
                 HoldState.RELEASED: {}, HoldState.REJECTED: {}},
    permissions={"release": "risk.review", "reject": "risk.review"},
    needs_reason={"release", "reject"},
    four_eyes={"release": "placed_by", "reject": "placed_by"},
    labels={"release": "Release (carry out the order)", "reject": "Reject the order"},
)


class OrderRiskHold(Base):
    """A product order held for risk review before anything is carried out (flagged account, or a credit check that
    refers it). `order_in` keeps the order as placed so a release carries it out exactly."""

    __tablename__ = "order_risk_hold"
    id: Mapped[IdPk]
    order_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("product_order.id"), unique=True)
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"), index=True)
    state: Mapped[str] = mapped_column(String(10), default=HoldState.PENDING)
    reasons: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    flag_ids: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    order_in: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    placed_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(String(120))
    decided_at: Mapped[datetime | None]
    decision_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (ORDER_RISK_HOLD.check(),)


class CreditCheck(Base):
    """The credit check of one order above the limit: the bureau's outcome (pass, refer, decline), score and reasons."""

    __tablename__ = "order_credit_check"
    id: Mapped[IdPk]
    order_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("product_order.id"))
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"), index=True)
    bureau: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(10))
    score: Mapped[int] = mapped_column(Integer)
    reasons: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    order_value_minor: Mapped[int] = mapped_column(BigInteger)
    limit_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    checked_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("order_id"), CheckConstraint("outcome IN ('pass','refer','decline')", name="outcome"))
