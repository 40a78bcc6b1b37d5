"""Tables for invoice documents and deliveries, credit notes, billing claims, rejected usage and the supplier profile."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from opsline.core.lifecycle import Lifecycle
from opsline.db.base import Base, IdPk


class CompanyProfile(Base):
    """Reference data: the supplier printed on tax invoices, payment details, and claim settings."""

    __tablename__ = "company_profile"

    code: Mapped[str] = mapped_column(String(30), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    registration_number: Mapped[str | None] = mapped_column(String(40))
    vat_number: Mapped[str] = mapped_column(String(20))
    address_line1: Mapped[str] = mapped_column(String(200))
    address_line2: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(100))
    postal_code: Mapped[str | None] = mapped_column(String(10))
    country: Mapped[str] = mapped_column(String(2), default="ZA")
    email: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(30))
    bank_name: Mapped[str] = mapped_column(String(100))
    bank_account_number: Mapped[str] = mapped_column(String(30))
    bank_branch_code: Mapped[str] = mapped_column(String(10))
    claim_sla_business_days: Mapped[int] = mapped_column(Integer, default=10)
    max_attachment_bytes: Mapped[int] = mapped_column(Integer, default=2_000_000)

    def __str__(self) -> str:
        return self.name


class InvoiceDocument(Base):
    """The rendered PDF of one invoice (rendered once; the finalised invoice never changes)."""

    __tablename__ = "invoice_document"

    id: Mapped[IdPk]
    invoice_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("invoice.id"), unique=True)
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"), index=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    rendered_at: Mapped[datetime]


class DeliveryState(enum.StrEnum):
    SENT = "sent"
    FAILED = "failed"


class InvoiceDelivery(Base):
    """One email delivery of an invoice; unique per (invoice, channel) so an invoice is sent once."""

    __tablename__ = "invoice_delivery"

    id: Mapped[IdPk]
    invoice_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("invoice.id"))
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"), index=True)
    channel: Mapped[str] = mapped_column(String(20), default="email")
    recipient: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))
    sent_at: Mapped[datetime]
    message_id: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        UniqueConstraint("invoice_id", "channel"),
        CheckConstraint("state IN ('sent','failed')", name="state"),
    )


class CreditNoteState(enum.StrEnum):
    ISSUED = "issued"


# A credit note is born issued (numbered, posted) and never changes: corrections are new documents.
CREDIT_NOTE = Lifecycle(name="credit_note", states=CreditNoteState, transitions={CreditNoteState.ISSUED: {}}, initial=CreditNoteState.ISSUED)


class CreditNoteSequence(Base):
    """Gapless credit-note numbers per year: the row is locked while a number is taken."""

    __tablename__ = "credit_note_sequence"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer, default=0)


class CreditNote(Base):
    __tablename__ = "credit_note"

    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    invoice_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("invoice.id"), index=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    state: Mapped[str] = mapped_column(String(16), default=CreditNoteState.ISSUED)
    source: Mapped[str] = mapped_column(String(16), default="manual")  # manual, claim, rerate
    reason: Mapped[str] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(String(3))
    subtotal_minor: Mapped[int] = mapped_column(BigInteger)
    tax_minor: Mapped[int] = mapped_column(BigInteger)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    issued_at: Mapped[datetime]
    issued_by: Mapped[str] = mapped_column(String(120))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)

    __table_args__ = (
        CREDIT_NOTE.check(),
        CheckConstraint("source IN ('manual','claim','rerate')", name="source"),
        CheckConstraint("total_minor > 0", name="total_positive"),
        Index("ix_credit_note_account", "account_id", "id"),
    )


class CreditNoteLine(Base):
    __tablename__ = "credit_note_line"

    id: Mapped[IdPk]
    credit_note_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("credit_note.id"), index=True)
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    invoice_line_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("invoice_line.id"), index=True)
    description: Mapped[str] = mapped_column(String(300))
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # excluding tax, positive = credit to the customer
    tax_rate_code: Mapped[str | None] = mapped_column(String(20))
    tax_minor: Mapped[int] = mapped_column(BigInteger)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))


class ClaimState(enum.StrEnum):
    SUBMITTED = "submitted"
    IN_REVIEW = "inReview"
    UPHELD = "upheld"
    PARTIALLY_UPHELD = "partiallyUpheld"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


OPEN_CLAIM_STATES = (ClaimState.SUBMITTED.value, ClaimState.IN_REVIEW.value)

C = ClaimState
_DECISIONS = {"uphold": C.UPHELD, "partially_uphold": C.PARTIALLY_UPHELD, "reject": C.REJECTED, "withdraw": C.WITHDRAWN}
CLAIM = Lifecycle(
    name="claim",
    states=ClaimState,
    transitions={
        C.SUBMITTED: {"review": C.IN_REVIEW, **_DECISIONS},
        C.IN_REVIEW: dict(_DECISIONS),
        C.UPHELD: {}, C.PARTIALLY_UPHELD: {}, C.REJECTED: {}, C.WITHDRAWN: {},
    },
    permissions={"review": "claims.decide", "uphold": "claims.decide", "partially_uphold": "claims.decide", "reject": "claims.decide"},
    needs_reason={"uphold", "partially_uphold", "reject"},
    labels={"review": "Start review", "uphold": "Uphold", "partially_uphold": "Partially uphold", "reject": "Reject", "withdraw": "Withdrawn by customer"},
    initial=C.SUBMITTED,
)


class BillingClaim(Base):
    """A customer's dispute of invoice lines. Open claims hold their disputed amount out of dunning."""

    __tablename__ = "billing_claim"

    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    invoice_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("invoice.id"), index=True)
    state: Mapped[str] = mapped_column(String(20), default=ClaimState.SUBMITTED)
    reason: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(20), default="phone")
    owner: Mapped[str | None] = mapped_column(String(120))
    currency: Mapped[str] = mapped_column(String(3))
    disputed_minor: Mapped[int] = mapped_column(BigInteger)
    upheld_minor: Mapped[int | None] = mapped_column(BigInteger)
    raised_at: Mapped[datetime]
    raised_by: Mapped[str] = mapped_column(String(120))
    due_date: Mapped[date]
    decided_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(20))
    outcome_reason: Mapped[str | None] = mapped_column(Text)
    credit_note_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("credit_note.id"))
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        CLAIM.check(),
        CheckConstraint("disputed_minor > 0", name="disputed_positive"),
        Index("ix_billing_claim_account_state", "account_id", "state"),
    )


class BillingClaimLine(Base):
    __tablename__ = "billing_claim_line"

    id: Mapped[IdPk]
    claim_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("billing_claim.id"), index=True)
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    invoice_line_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("invoice_line.id"), index=True)
    disputed_minor: Mapped[int] = mapped_column(BigInteger)  # including tax
    currency: Mapped[str] = mapped_column(String(3))


class ClaimAttachment(Base):
    """Evidence for a claim (small files, stored in the database)."""

    __tablename__ = "billing_claim_attachment"

    id: Mapped[IdPk]
    claim_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("billing_claim.id"), index=True)
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    size_bytes: Mapped[int] = mapped_column(Integer)
    uploaded_at: Mapped[datetime]
    uploaded_by: Mapped[str] = mapped_column(String(120))


class UsageRejected(Base):
    """A usage row that failed import, kept with its raw line and reason for correction and re-import."""

    __tablename__ = "usage_rejected"

    id: Mapped[IdPk]
    source_file: Mapped[str] = mapped_column(String(200))
    source_line: Mapped[int] = mapped_column(Integer)
    raw_line: Mapped[str] = mapped_column(Text)
    field: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(300))
    external_id: Mapped[str | None] = mapped_column(String(100))
    account_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("account.id"))
    rejected_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_usage_rejected_file", "source_file", "source_line"), Index("ix_usage_rejected_external_id", "external_id"))


class RerateAdjustment(Base):
    """What re-rating already corrected on a finalised invoice (signed, ex tax: - credited, + debited), so a re-run corrects only what is left."""

    __tablename__ = "rerate_adjustment"

    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    invoice_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("invoice.id"), index=True)
    invoice_line_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("invoice_line.id"))
    product_id: Mapped[int | None] = mapped_column(BigInteger)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    credit_note_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("credit_note.id"))
    debit_invoice_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("invoice.id"))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
