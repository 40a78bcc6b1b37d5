"""Tables for revenue assurance: an imported FNO invoice, its lines, and the findings its reconciliation made (each a
possible dispute to the partner, with the amount)."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from opsline.core.lifecycle import Lifecycle
from opsline.db.base import Base, IdPk
from opsline.inventory.models import Product


class FindingKind(enum.StrEnum):
    BILLED_NOT_ACTIVE = "billed_not_active"  # the FNO bills a line terminated (or never active) with us in that month
    PRICE_DIFFERS = "price_differs"  # the FNO bills an active line at another price than the wholesale cost
    NOT_BILLED_BY_PARTNER = "not_billed_by_partner"  # a line active with us all month that the FNO did not bill


DISPUTABLE = (FindingKind.BILLED_NOT_ACTIVE.value, FindingKind.PRICE_DIFFERS.value)


class FindingState(enum.StrEnum):
    OPEN = "open"
    DISPUTED = "disputed"  # the dispute went to the FNO with the amount
    RECOVERED = "recovered"  # the FNO credited it
    REJECTED = "rejected"  # the FNO refused it
    DISMISSED = "dismissed"  # explained, nothing to recover


F = FindingState

FINDING = Lifecycle(
    name="assurance_finding",
    states=FindingState,
    initial=F.OPEN,
    transitions={
        F.OPEN: {"dispute": F.DISPUTED, "dismiss": F.DISMISSED},
        F.DISPUTED: {"recover": F.RECOVERED, "reject": F.REJECTED},
        F.RECOVERED: {}, F.REJECTED: {}, F.DISMISSED: {},
    },
    permissions={"dispute": "assurance.manage", "dismiss": "assurance.manage", "recover": "assurance.manage", "reject": "assurance.manage"},
    needs_reason={"dismiss", "reject"},
    labels={"dispute": "Dispute with the FNO", "recover": "FNO credited it", "reject": "FNO refused", "dismiss": "Dismiss (explained)"},
)


class PartnerInvoice(Base):
    """One FNO's invoice for one month, as imported (the file's checksum refuses the same file twice)."""

    __tablename__ = "partner_invoice"

    id: Mapped[IdPk]
    partner_code: Mapped[str] = mapped_column(String(30), ForeignKey("partner.code"))
    period: Mapped[date] = mapped_column(Date)  # first day of the month billed
    file_name: Mapped[str] = mapped_column(String(200))
    file_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    encoding: Mapped[str] = mapped_column(String(20))
    lines_count: Mapped[int] = mapped_column(Integer)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    findings_count: Mapped[int] = mapped_column(Integer, default=0)
    leakage_minor: Mapped[int] = mapped_column(BigInteger, default=0)  # billed to us for lines we do not owe, and overcharges
    imported_at: Mapped[datetime]
    imported_by: Mapped[str] = mapped_column(String(120))

    __table_args__ = (UniqueConstraint("partner_code", "period", name="uq_partner_invoice_partner_period"),)


class PartnerInvoiceLine(Base):
    __tablename__ = "partner_invoice_line"

    id: Mapped[IdPk]
    invoice_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("partner_invoice.id"))
    line_no: Mapped[int] = mapped_column(Integer)  # the file's line number
    line_ref: Mapped[str] = mapped_column(String(80))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    product_id: Mapped[int | None] = mapped_column(BigInteger)  # our latest product on that line

    __table_args__ = (UniqueConstraint("invoice_id", "line_ref", name="uq_partner_invoice_line_ref"),
                      Index("ix_partner_invoice_line_product", "product_id"))


class AssuranceFinding(Base):
    """One difference between an FNO's invoice and our inventory, with the amount at stake (minor units)."""

    __tablename__ = "assurance_finding"

    id: Mapped[IdPk]
    invoice_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("partner_invoice.id"))
    partner_code: Mapped[str] = mapped_column(String(30))
    period: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(30))
    line_ref: Mapped[str] = mapped_column(String(80))
    invoice_line_id: Mapped[int | None] = mapped_column(BigInteger)
    product_id: Mapped[int | None] = mapped_column(BigInteger)
    account_id: Mapped[int | None] = mapped_column(BigInteger)
    journey_id: Mapped[int | None] = mapped_column(BigInteger)  # the product's cancellation journey, if any
    billed_minor: Mapped[int] = mapped_column(BigInteger, default=0)  # what the FNO billed
    expected_minor: Mapped[int] = mapped_column(BigInteger, default=0)  # what we owe (0 for a line not active)
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # billed - expected: > 0 is leakage (to dispute)
    currency: Mapped[str] = mapped_column(String(3))
    detail: Mapped[str] = mapped_column(String(300))
    state: Mapped[str] = mapped_column(String(12), default=FindingState.OPEN)
    state_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        FINDING.check(),
        CheckConstraint("kind IN ('billed_not_active','price_differs','not_billed_by_partner')", name="kind"),
        Index("ix_assurance_finding_invoice", "invoice_id", "kind"),
        Index("ix_assurance_finding_partner_period", "partner_code", "period"),
    )


# Reconciliation finds our products by the FNO's line id (one lookup per invoice line, and lines per FNO): declared here,
# beside the only reads that need it, on inventory's table.
Index("ix_product_partner_line", Product.partner_code, Product.partner_line_ref)
