"""Billing tables: tax rates, cycles, settings, bill runs, invoices and lines, numbering, ledger, usage, discounts, queued charges."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from opsline.core.lifecycle import Lifecycle
from opsline.db.base import Base, IdPk, JSONType, sql_in


class BillRunState(enum.StrEnum):
    DRAFT_RUNNING = "draft_running"
    DRAFT = "draft"
    REVIEW = "review"
    APPROVED = "approved"
    FINALISING = "finalising"
    FINALISED = "finalised"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"


class InvoiceState(enum.StrEnum):
    DRAFT = "draft"
    NEW = "new"
    ON_HOLD = "onHold"
    VALIDATED = "validated"
    SENT = "sent"
    PARTIALLY_PAID = "partiallyPaid"
    PAID = "paid"


R = BillRunState
BILL_RUN = Lifecycle(
    name="bill_run",
    states=BillRunState,
    transitions={
        R.DRAFT_RUNNING: {"complete": R.DRAFT, "fail": R.FAILED, "rollback": R.ROLLED_BACK},
        R.DRAFT: {"review": R.REVIEW, "rollback": R.ROLLED_BACK},
        R.REVIEW: {"approve": R.APPROVED, "rollback": R.ROLLED_BACK},
        R.APPROVED: {"finalise": R.FINALISED, "rollback": R.ROLLED_BACK},
        R.FINALISING: {"finalise": R.FINALISED},
        R.FAILED: {"rollback": R.ROLLED_BACK},
        R.FINALISED: {},
        R.ROLLED_BACK: {},
    },
    system_actions={"complete", "fail"},
    permissions={"review": "billing.approve", "approve": "billing.approve", "finalise": "billing.approve", "rollback": "billing.approve"},
    four_eyes={"approve": "created_by"},
    labels={"review": "Open review", "approve": "Approve", "finalise": "Finalise and issue", "rollback": "Roll back draft"},
    initial=R.DRAFT_RUNNING,
)

I = InvoiceState
_PAYABLE = {"part_pay": I.PARTIALLY_PAID, "settle": I.PAID}
# Finalisation (draft -> new) belongs to the bill run; delivery sends; payments drive the paid states (system actions).
INVOICE = Lifecycle(
    name="invoice",
    states=InvoiceState,
    transitions={
        I.DRAFT: {"finalise": I.NEW},
        I.NEW: {"hold": I.ON_HOLD, "validate": I.VALIDATED, "send": I.SENT, **_PAYABLE},
        I.ON_HOLD: {"release": I.NEW, **_PAYABLE},
        I.VALIDATED: {"hold": I.ON_HOLD, "send": I.SENT, **_PAYABLE},
        I.SENT: dict(_PAYABLE),
        I.PARTIALLY_PAID: {"settle": I.PAID, "reopen": I.SENT},
        I.PAID: {"reopen": I.SENT},
    },
    system_actions={"send", "part_pay", "settle", "reopen"},
    permissions={"hold": "billing.approve", "release": "billing.approve", "validate": "billing.approve"},
    labels={"hold": "Put on hold", "release": "Release hold", "validate": "Validate", "send": "Mark sent", "part_pay": "Part-paid",
            "settle": "Paid", "reopen": "Reopen", "finalise": "Finalise"},
    initial=I.DRAFT,
)


class ShardState(enum.StrEnum):
    QUEUED = "queued"
    DONE = "done"


# a shard is computed by one job; re-running a done shard is an idempotent no-op, rollback deletes the run's shards
BILL_RUN_SHARD = Lifecycle(name="bill_run_shard", states=ShardState, transitions={ShardState.QUEUED: {"complete": ShardState.DONE}, ShardState.DONE: {}},
                           system_actions={"complete"}, initial=ShardState.QUEUED)


class UsageState(enum.StrEnum):
    RATED = "rated"
    BILLED = "billed"
    REJECTED = "rejected"


# rated usage is billed when its bill run finalises (set-based); rejected rows are kept for correction and re-import
USAGE_RECORD = Lifecycle(name="usage_record", states=UsageState,
                         transitions={UsageState.RATED: {"bill": UsageState.BILLED}, UsageState.BILLED: {}, UsageState.REJECTED: {}},
                         system_actions={"bill"}, initial=UsageState.RATED)


class PendingChargeState(enum.StrEnum):
    PENDING = "pending"
    BILLED = "billed"
    CANCELLED = "cancelled"


# a queued one-off charge (early-termination fee, reconnection fee, returned-debit fee) waits for the next bill
PENDING_CHARGE = Lifecycle(name="pending_charge", states=PendingChargeState,
                           transitions={PendingChargeState.PENDING: {"bill": PendingChargeState.BILLED, "cancel": PendingChargeState.CANCELLED},
                                        PendingChargeState.BILLED: {}, PendingChargeState.CANCELLED: {}},
                           system_actions={"bill"}, needs_reason={"cancel"}, initial=PendingChargeState.PENDING)


class InvoiceKind(enum.StrEnum):
    CYCLE = "cycle"
    FINAL = "final"
    ADHOC = "adhoc"


class LineKind(enum.StrEnum):
    RECURRING = "recurring"
    ONE_OFF = "one_off"
    USAGE = "usage"
    DISCOUNT = "discount"
    ADJUSTMENT = "adjustment"


class LedgerKind(enum.StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"
    PAYMENT = "payment"
    ADJUSTMENT = "adjustment"
    WRITE_OFF = "write_off"
    REFUND = "refund"




class TaxRate(Base):
    """Reference data: a tax rate by code (VAT15, ZERO, EXEMPT), valid on [valid_from, valid_to)."""

    __tablename__ = "tax_rate"
    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    rate: Mapped[Decimal] = mapped_column(Numeric(7, 4))
    country: Mapped[str] = mapped_column(String(2), default="ZA")
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)

    def __str__(self) -> str:
        return f"{self.code} ({self.rate})"


class BillingCycle(Base):
    """Reference data: a bill day; accounts with `bill_cycle_day` = bill_day are billed on runs for that day."""

    __tablename__ = "billing_cycle"
    code: Mapped[str] = mapped_column(String(30), primary_key=True)
    bill_day: Mapped[int] = mapped_column(Integer)
    payment_terms_days: Mapped[int] = mapped_column(Integer, default=30)
    description: Mapped[str] = mapped_column(String(200), default="")

    __table_args__ = (CheckConstraint("bill_day BETWEEN 1 AND 28", name="bill_day"),)

    def __str__(self) -> str:
        return self.code


class BillingSetting(Base):
    """Reference data: a billing policy an operator changes (value typed by `value_type`: str, int, decimal, bool)."""

    __tablename__ = "billing_setting"
    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    value_type: Mapped[str] = mapped_column(String(10), default="str")
    description: Mapped[str] = mapped_column(String(300), default="")

    __table_args__ = (CheckConstraint("value_type IN ('str','int','decimal','bool')", name="value_type"),)

    def __str__(self) -> str:
        return self.key


class BillRun(Base):
    __tablename__ = "bill_run"

    id: Mapped[IdPk]
    cycle_date: Mapped[date] = mapped_column(Date)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(20), default=BillRunState.DRAFT_RUNNING)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    shard_count: Mapped[int] = mapped_column(Integer, default=1)
    shards_done: Mapped[int] = mapped_column(Integer, default=0)
    accounts_count: Mapped[int] = mapped_column(Integer, default=0)
    lines_count: Mapped[int] = mapped_column(BigInteger, default=0)
    subtotal_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    tax_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    total_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="ZAR")
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))
    approved_at: Mapped[datetime | None]
    approved_by: Mapped[str | None] = mapped_column(String(120))
    finalised_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    flagged_count: Mapped[int | None] = mapped_column(Integer)  # accounts whose variance no reason explains (set when computed)

    __table_args__ = (
        BILL_RUN.check(),
        Index("uq_bill_run_cycle_live", "cycle_date", unique=True, postgresql_where=text("state <> 'rolled_back'"), sqlite_where=text("state <> 'rolled_back'")),
    )


class BillRunShard(Base):
    """One slice of a bill run (an account-id range), run by one job; progress and idempotent re-runs hang off it."""

    __tablename__ = "bill_run_shard"
    id: Mapped[IdPk]
    bill_run_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("bill_run.id"))
    shard_no: Mapped[int] = mapped_column(Integer)
    account_from: Mapped[int] = mapped_column(BigInteger)
    account_to: Mapped[int] = mapped_column(BigInteger)  # exclusive
    state: Mapped[str] = mapped_column(String(10), default="queued")
    accounts_count: Mapped[int] = mapped_column(Integer, default=0)
    lines_count: Mapped[int] = mapped_column(BigInteger, default=0)
    subtotal_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    tax_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    total_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    finished_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("bill_run_id", "shard_no"), BILL_RUN_SHARD.check())


class Invoice(Base):
    __tablename__ = "invoice"

    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    # no FK on bill_run_id: a bill run inserts a million invoices, and a per-row key-share check on the one run row is
    # pure overhead (the shard already holds that lock); rollback deletes by this column instead.
    bill_run_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    kind: Mapped[str] = mapped_column(String(10), default=InvoiceKind.CYCLE)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    number: Mapped[str | None] = mapped_column(String(30))  # unique once assigned (partial index below)
    state: Mapped[str] = mapped_column(String(20), default=InvoiceState.DRAFT)
    currency: Mapped[str] = mapped_column(String(3))
    subtotal_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    tax_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    total_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    issued_at: Mapped[datetime | None]
    due_date: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)

    __table_args__ = (
        UniqueConstraint("account_id", "period_start", "kind", name="uq_invoice_account_period_kind"),
        Index("uq_invoice_number", "number", unique=True, postgresql_where=text("number IS NOT NULL"), sqlite_where=text("number IS NOT NULL")),
        INVOICE.check(),
        CheckConstraint(sql_in("kind", InvoiceKind), name="kind"),
    )


class InvoiceLine(Base):
    __tablename__ = "invoice_line"

    id: Mapped[IdPk]
    invoice_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("invoice.id"))
    account_id: Mapped[int] = mapped_column(BigInteger)
    product_id: Mapped[int | None] = mapped_column(BigInteger)
    offering_id: Mapped[int | None] = mapped_column(BigInteger)
    price_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(12))
    description: Mapped[str] = mapped_column(String(300))
    period_start: Mapped[date | None] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)
    quantity: Mapped[Decimal] = mapped_column(Numeric(18, 6), default=1)
    unit_amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    tax_rate_code: Mapped[str] = mapped_column(String(20))
    tax_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    explanation: Mapped[str] = mapped_column(Text, default="")
    pending_charge_id: Mapped[int | None] = mapped_column(BigInteger)
    discount_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint(sql_in("kind", LineKind), name="kind"),
        Index("ix_invoice_line_product", "product_id"),
        Index("ix_invoice_line_invoice", "invoice_id"),
        Index("ix_invoice_line_account", "account_id"),
    )


class InvoiceSequence(Base):
    """Gapless legal numbering: the next number per prefix (e.g. 'INV-2026')."""

    __tablename__ = "invoice_sequence"
    prefix: Mapped[str] = mapped_column(String(20), primary_key=True)
    next_number: Mapped[int] = mapped_column(BigInteger, default=1)


class LedgerEntry(Base):
    """The account ledger: signed amounts (+ = the customer owes more). Balance and ageing derive from it."""

    __tablename__ = "ledger_entry"
    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    kind: Mapped[str] = mapped_column(String(20))
    ref_type: Mapped[str] = mapped_column(String(30))
    ref_id: Mapped[int] = mapped_column(BigInteger)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    posted_at: Mapped[datetime]
    due_date: Mapped[date | None] = mapped_column(Date)
    description: Mapped[str] = mapped_column(String(300), default="")

    __table_args__ = (
        CheckConstraint(sql_in("kind", LedgerKind), name="kind"),
        Index("ix_ledger_entry_account_posted", "account_id", "posted_at"),
        Index("ix_ledger_entry_ref", "ref_type", "ref_id"),
    )


class UsageRecord(Base):
    __tablename__ = "usage_record"
    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    product_id: Mapped[int | None] = mapped_column(BigInteger)
    usage_type: Mapped[str] = mapped_column(String(12))
    started_at: Mapped[datetime]
    quantity: Mapped[Decimal] = mapped_column(Numeric(18, 6))
    source_file: Mapped[str | None] = mapped_column(String(200))
    source_line: Mapped[int | None] = mapped_column(Integer)
    external_id: Mapped[str] = mapped_column(String(120), unique=True)
    state: Mapped[str] = mapped_column(String(10), default="rated")
    rated_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="ZAR")
    tax_rate_code: Mapped[str | None] = mapped_column(String(20))
    rated_at: Mapped[datetime | None]
    invoice_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("invoice.id"))
    explanation: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("usage_type IN ('data_mb','voice_sec','sms')", name="usage_type"),
        USAGE_RECORD.check(),
        Index("ix_usage_record_account_started", "account_id", "started_at"),
        Index("ix_usage_record_invoice", "invoice_id"),
    )


class Discount(Base):
    """Data: a discount for an account and/or offering; `percent` of matching recurring charges or a `fixed` amount (major units)."""

    __tablename__ = "discount"
    id: Mapped[IdPk]
    account_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("account.id"))
    offering_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(10))
    value: Mapped[Decimal] = mapped_column(Numeric(18, 4))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    description: Mapped[str] = mapped_column(String(200))

    __table_args__ = (CheckConstraint("kind IN ('percent','fixed')", name="kind"), CheckConstraint("account_id IS NOT NULL OR offering_id IS NOT NULL", name="target"),
                      Index("ix_discount_account", "account_id"), Index("ix_discount_offering", "offering_id"))

    def __str__(self) -> str:
        return self.description


class PendingCharge(Base):
    """A one-off charge queued by another area (penalty, reconnection fee, unreturned equipment); the next bill run bills it."""

    __tablename__ = "pending_charge"
    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    product_id: Mapped[int | None] = mapped_column(BigInteger)
    description: Mapped[str] = mapped_column(String(300))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    tax_rate_code: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(300))
    state: Mapped[str] = mapped_column(String(10), default="pending")
    invoice_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("invoice.id"))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    __table_args__ = (PENDING_CHARGE.check(), Index("ix_pending_charge_account_state", "account_id", "state"))


class AccountSuspension(Base):
    """When an account was suspended and reconnected (from the account lifecycle's events): the bill run follows the
    `suspension_policy` over these days; `resumed_on` is NULL while the account is still suspended. Dates are local."""

    __tablename__ = "billing_suspension"
    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    suspended_on: Mapped[date] = mapped_column(Date)
    resumed_on: Mapped[date | None] = mapped_column(Date)
    suspended_at: Mapped[datetime]
    resumed_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint("resumed_on IS NULL OR resumed_on >= suspended_on", name="dates"),
        Index("ix_billing_suspension_account", "account_id", "suspended_on"),
    )


class RelocationOverlap(Base):
    """Reference data: days a partner (FNO) bills the old and the new line together on a relocation; billing bills the
    old line that much past the move date too (no overlap for partners without a row)."""

    __tablename__ = "relocation_overlap"
    partner_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    overlap_days: Mapped[int] = mapped_column(Integer, default=0)
    description: Mapped[str] = mapped_column(String(200), default="")

    __table_args__ = (CheckConstraint("overlap_days BETWEEN 0 AND 31", name="overlap_days"),)

    def __str__(self) -> str:
        return f"{self.partner_code}: {self.overlap_days} days"
