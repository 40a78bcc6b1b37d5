"""Payment tables: statements, statement lines, matching rules, payments, allocations, suspense, refunds."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from opsline.core.lifecycle import Lifecycle
from opsline.db.base import Base, IdPk, JSONType, sql_in


class PaymentState(enum.StrEnum):
    RECEIVED = "received"  # recorded, not yet matched
    PROPOSED = "proposed"  # a matching rule proposed allocations that wait for a person
    ALLOCATED = "allocated"  # every cent sits on an account (invoices and/or account credit)
    SUSPENSE = "suspense"  # unmatched money, owned by a clerk until worked
    REFUNDED = "refunded"  # paid back to the payer from suspense
    RETURNED = "returned"  # a debit order came back unpaid


PAYMENT = Lifecycle(
    name="payment",
    states=PaymentState,
    initial=PaymentState.RECEIVED,
    transitions={
        PaymentState.RECEIVED: {"match": PaymentState.ALLOCATED, "propose": PaymentState.PROPOSED, "park": PaymentState.SUSPENSE},
        PaymentState.PROPOSED: {"approve": PaymentState.ALLOCATED, "reject": PaymentState.SUSPENSE},
        PaymentState.SUSPENSE: {"allocate": PaymentState.ALLOCATED, "refund": PaymentState.REFUNDED},
        PaymentState.ALLOCATED: {"reverse": PaymentState.SUSPENSE, "return": PaymentState.RETURNED},
        PaymentState.REFUNDED: {},
        PaymentState.RETURNED: {},
    },
    system_actions={"match", "propose", "park", "return"},
    permissions={"approve": "payments.approve", "reject": "payments.approve", "allocate": "payments.allocate",
                 "refund": "payments.refund", "reverse": "payments.allocate"},
    needs_reason={"allocate", "refund", "reverse", "reject"},
    labels={"approve": "Approve proposal", "reject": "Reject to suspense", "allocate": "Allocate", "refund": "Refund to payer",
            "reverse": "Reverse allocation"},
)


class AllocationState(enum.StrEnum):
    PROPOSED = "proposed"
    ALLOCATED = "allocated"
    REJECTED = "rejected"
    REVERSED = "reversed"


ALLOCATION = Lifecycle(
    name="allocation",
    states=AllocationState,
    initial=AllocationState.PROPOSED,
    transitions={
        AllocationState.PROPOSED: {"approve": AllocationState.ALLOCATED, "reject": AllocationState.REJECTED},
        AllocationState.ALLOCATED: {"reverse": AllocationState.REVERSED},
        AllocationState.REJECTED: {},
        AllocationState.REVERSED: {},
    },
    permissions={"approve": "payments.approve", "reject": "payments.approve", "reverse": "payments.allocate"},
    needs_reason={"reverse", "reject"},
    labels={"approve": "Approve", "reject": "Reject", "reverse": "Reverse"},
)


class RefundState(enum.StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"


REFUND = Lifecycle(
    name="refund",
    states=RefundState,
    initial=RefundState.REQUESTED,
    transitions={
        RefundState.REQUESTED: {"approve": RefundState.APPROVED, "reject": RefundState.REJECTED},
        RefundState.APPROVED: {},
        RefundState.REJECTED: {},
    },
    permissions={"approve": "payments.refund", "reject": "payments.refund"},
    needs_reason={"reject"},
    four_eyes={"approve": "requested_by"},
    labels={"approve": "Approve refund", "reject": "Reject refund"},
)

STATEMENT_FORMATS = ("csv", "mt940", "camt053", "debit_result")
RULE_KINDS = ("invoice_ref", "account_ref", "account_ref_check_digit", "payer_account", "amount_date", "payer_name")
METHODS = ("eft", "debit_order", "cash", "card")
SOURCES = ("statement", "debit_order", "api", "staff")




class PaymentSetting(Base):
    """Reference data: a payments policy an operator changes (thresholds, limits, fees). `value_type`: int, decimal, str."""

    __tablename__ = "payment_setting"
    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    value_type: Mapped[str] = mapped_column(String(10), default="str")
    description: Mapped[str] = mapped_column(String(300), default="")

    __table_args__ = (CheckConstraint("value_type IN ('str','int','decimal','bool')", name="value_type"),)

    def __str__(self) -> str:
        return self.key


class CsvMapping(Base):
    """How one bank's CSV export reads: columns (by header name or 1-based position), date format, decimal comma, signed amount
    or debit/credit columns, header/footer rows, encoding. `columns` maps our field → the bank's column."""

    __tablename__ = "payment_csv_mapping"
    id: Mapped[IdPk]
    name: Mapped[str] = mapped_column(String(60), unique=True)
    bank: Mapped[str] = mapped_column(String(80))
    encoding: Mapped[str] = mapped_column(String(30), default="utf-8")
    delimiter: Mapped[str] = mapped_column(String(1), default=",")
    date_format: Mapped[str] = mapped_column(String(30), default="%Y-%m-%d")
    decimal_comma: Mapped[bool] = mapped_column(Boolean, default=False)
    header_rows: Mapped[int] = mapped_column(Integer, default=1)  # rows before the data; the last of them names the columns
    footer_rows: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    bank_account: Mapped[str] = mapped_column(String(40))  # our account the statement is for
    columns: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime]

    __table_args__ = (CheckConstraint("header_rows >= 0 AND footer_rows >= 0", name="rows"),)

    def __str__(self) -> str:
        return self.name


class MatchingRule(Base):
    """One step of the matching cascade (data: ordered by `position`, editable). A proposal at or above the auto threshold
    (setting `auto_confidence_threshold`) and within `auto_amount_limit_minor` is allocated at once; others wait for a person.
    `payer_name` rules only ever propose."""

    __tablename__ = "payment_matching_rule"
    id: Mapped[IdPk]
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(30))
    position: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    __table_args__ = (CheckConstraint(sql_in("kind", RULE_KINDS), name="kind"), CheckConstraint("confidence BETWEEN 0 AND 100", name="confidence"))

    def __str__(self) -> str:
        return f"{self.position}. {self.name}"


class UnpaidReason(Base):
    """Reference data: a debit-order unpaid reason code and whether the returned-debit fee is charged for it."""

    __tablename__ = "payment_unpaid_reason"
    code: Mapped[str] = mapped_column(String(10), primary_key=True)
    description: Mapped[str] = mapped_column(String(200))
    charge_fee: Mapped[bool] = mapped_column(Boolean, default=True)

    def __str__(self) -> str:
        return f"{self.code} {self.description}"


class StatementFile(Base):
    """One imported file (bank statement or debit-order result); its hash is unique so the same file never posts twice."""

    __tablename__ = "statement_file"
    id: Mapped[IdPk]
    filename: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    format: Mapped[str] = mapped_column(String(20))
    bank: Mapped[str] = mapped_column(String(80), default="")
    bank_account: Mapped[str] = mapped_column(String(40), default="")
    currency: Mapped[str] = mapped_column(String(3))
    mapping_name: Mapped[str | None] = mapped_column(String(60))
    statement_date: Mapped[date | None] = mapped_column(Date)
    opening_minor: Mapped[int | None] = mapped_column(BigInteger)
    closing_minor: Mapped[int | None] = mapped_column(BigInteger)
    lines_count: Mapped[int] = mapped_column(Integer, default=0)
    new_lines_count: Mapped[int] = mapped_column(Integer, default=0)
    matched_count: Mapped[int] = mapped_column(Integer, default=0)
    proposed_count: Mapped[int] = mapped_column(Integer, default=0)
    suspense_count: Mapped[int] = mapped_column(Integer, default=0)
    imported_at: Mapped[datetime]
    imported_by: Mapped[str] = mapped_column(String(120))

    __table_args__ = (CheckConstraint(sql_in("format", STATEMENT_FORMATS), name="format"),)


class StatementLine(Base):
    """One bank transaction. Unique by (bank account, bank reference, value date, amount), so an overlapping file posts it once."""

    __tablename__ = "statement_line"
    id: Mapped[IdPk]
    statement_file_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("statement_file.id"), index=True)
    line_no: Mapped[int] = mapped_column(Integer)
    bank_account: Mapped[str] = mapped_column(String(40))
    bank_reference: Mapped[str] = mapped_column(String(80))
    value_date: Mapped[date] = mapped_column(Date)
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # + money in, - money out
    currency: Mapped[str] = mapped_column(String(3))
    payer_name: Mapped[str] = mapped_column(String(200), default="")
    payer_account: Mapped[str] = mapped_column(String(40), default="")
    reference: Mapped[str] = mapped_column(String(300), default="")

    __table_args__ = (UniqueConstraint("bank_account", "bank_reference", "value_date", "amount_minor", name="uq_statement_line_bank_txn"),)


class Payment(Base):
    """Money received. `account_id` is set once the money is on one account (null in suspense or when split across accounts)."""

    __tablename__ = "payment"
    id: Mapped[IdPk]
    account_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("account.id"), index=True)
    statement_line_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("statement_line.id"), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(120), unique=True)  # API correlator / idempotency, debit-order collection ref
    source: Mapped[str] = mapped_column(String(20))
    method: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20), default=PaymentState.RECEIVED)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    received_on: Mapped[date] = mapped_column(Date)
    payer_name: Mapped[str] = mapped_column(String(200), default="")
    payer_account: Mapped[str] = mapped_column(String(40), default="")
    reference: Mapped[str] = mapped_column(String(300), default="")
    named_invoice_id: Mapped[int | None] = mapped_column(BigInteger)  # the invoice the payer named (API paymentItem, debit order)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))

    __table_args__ = (
        PAYMENT.check(),
        CheckConstraint(sql_in("source", SOURCES), name="source"),
        CheckConstraint(sql_in("method", METHODS), name="method"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        Index("ix_payment_state", "state", "received_on"),
        Index("ix_payment_payer_account", "payer_account"),
    )


class Allocation(Base):
    """Part of a payment placed on an account: on one invoice, or as account credit (`invoice_id` null). Proposals carry the
    rule, the evidence (what matched, where) and the score. Reversed allocations stay, with the reason; the ledger is reversed."""

    __tablename__ = "payment_allocation"
    id: Mapped[IdPk]
    payment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("payment.id"), index=True)
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    invoice_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("invoice.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(20), default=AllocationState.PROPOSED)
    rule_code: Mapped[str] = mapped_column(String(40))
    score: Mapped[int] = mapped_column(Integer)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(120))
    reversed_at: Mapped[datetime | None]
    reversal_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        ALLOCATION.check(),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("score BETWEEN 0 AND 100", name="score"),
        Index("ix_payment_allocation_account", "account_id", "state"),
        Index("ix_payment_allocation_invoice", "invoice_id", "state"),
        Index("ix_payment_allocation_state", "state", "created_at"),
    )


class KnownPayerAccount(Base):
    """A payer bank account previously seen paying an account (learned from allocated payments)."""

    __tablename__ = "payment_known_payer"
    id: Mapped[IdPk]
    payer_account: Mapped[str] = mapped_column(String(40))
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"), index=True)
    first_seen_on: Mapped[date] = mapped_column(Date)

    __table_args__ = (UniqueConstraint("payer_account", "account_id"),)


class SuspenseItem(Base):
    """Unmatched money with an owner and an age. Closed (never deleted) with the reason it left suspense."""

    __tablename__ = "suspense_item"
    id: Mapped[IdPk]
    payment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("payment.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    owner: Mapped[str | None] = mapped_column(String(120))
    opened_at: Mapped[datetime]
    opened_reason: Mapped[str] = mapped_column(String(300))
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(120))
    outcome: Mapped[str | None] = mapped_column(String(20))
    close_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("outcome IS NULL OR outcome IN ('allocated','refunded')", name="outcome"),
        Index("ix_suspense_item_open", "closed_at", "opened_at"),
    )


class Refund(Base):
    """Money paid back: from suspense to the payer (`payment_id`), or a credit balance to the account holder (`account_id`).
    Above the four-eyes limit a second person approves; below it the system approves at once."""

    __tablename__ = "payment_refund"
    id: Mapped[IdPk]
    account_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("account.id"), index=True)
    payment_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("payment.id"), index=True)
    suspense_item_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("suspense_item.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(20), default=RefundState.REQUESTED)
    payee_name: Mapped[str] = mapped_column(String(200))
    payee_account: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[datetime]
    requested_by: Mapped[str] = mapped_column(String(120))
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(120))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)

    __table_args__ = (
        REFUND.check(),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("account_id IS NOT NULL OR payment_id IS NOT NULL", name="target"),
    )


class DebitOrderResult(Base):
    """One row of a debit-order result file: a successful collection (a payment) or an unpaid with its reason code."""

    __tablename__ = "debit_order_result"
    id: Mapped[IdPk]
    statement_file_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("statement_file.id"), index=True)
    line_no: Mapped[int] = mapped_column(Integer)
    collection_ref: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(10))
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    invoice_id: Mapped[int | None] = mapped_column(BigInteger)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    action_date: Mapped[date] = mapped_column(Date)
    reason_code: Mapped[str | None] = mapped_column(String(10))
    payment_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("payment.id"))
    fee_charge_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("collection_ref", "status"), CheckConstraint("status IN ('paid','unpaid')", name="status"))
