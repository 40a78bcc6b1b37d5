"""Tables for the product catalog: offerings, their prices (recurring, one-off, usage, wholesale cost, early
termination), contract terms with early-termination rules, and the equipment an offering bundles."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from opsline.db.base import Base, IdPk


class OfferingKind(enum.StrEnum):
    FIBRE = "fibre"
    MOBILE = "mobile"
    B2B_LINK = "b2b_link"
    EQUIPMENT = "equipment"
    SERVICE = "service"


class PriceKind(enum.StrEnum):
    RECURRING = "recurring"
    ONE_OFF = "one_off"
    USAGE = "usage"
    WHOLESALE_COST = "wholesale_cost"
    EARLY_TERMINATION = "early_termination"


class ProductOffering(Base):
    """Something we sell. `partner_code` names the FNO / wholesale partner that delivers it (None: we deliver)."""

    __tablename__ = "product_offering"

    id: Mapped[IdPk]
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    partner_code: Mapped[str | None] = mapped_column(String(40))
    download_mbps: Mapped[int | None] = mapped_column(Integer)
    upload_mbps: Mapped[int | None] = mapped_column(Integer)
    contract_months: Mapped[int] = mapped_column(Integer, default=0)  # 0 = month-to-month
    description: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    # extra columns (Opsline's own)
    equipment_kind: Mapped[str | None] = mapped_column(String(20))  # for kind='equipment': router / ont / sim
    customer_kind: Mapped[str] = mapped_column(String(20), default="any")  # 'consumer', 'business', 'any'
    sla_template_code: Mapped[str | None] = mapped_column(String(40))

    __table_args__ = (
        CheckConstraint("kind IN ('fibre','mobile','b2b_link','equipment','service')", name="kind"),
        CheckConstraint("contract_months >= 0", name="contract_months"),
        CheckConstraint("equipment_kind IS NULL OR equipment_kind IN ('router','ont','sim')", name="equipment_kind"),
        CheckConstraint("customer_kind IN ('consumer','business','any')", name="customer_kind"),
        Index("ix_product_offering_kind_partner", "kind", "partner_code"),
    )

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class Price(Base):
    """One price of an offering, valid over [valid_from, valid_to). Tax is by code (billing owns the rates)."""

    __tablename__ = "price"

    id: Mapped[IdPk]
    offering_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("product_offering.id"))
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(120))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    tax_rate_code: Mapped[str] = mapped_column(String(20), default="VAT15")
    charge_event: Mapped[str | None] = mapped_column(String(30))
    usage_type: Mapped[str | None] = mapped_column(String(20))
    included_quantity: Mapped[Decimal | None] = mapped_column(Numeric(18, 4))
    unit: Mapped[str | None] = mapped_column(String(20))
    valid_from: Mapped[date]
    valid_to: Mapped[date | None]
    # early termination rule data (kind='early_termination'): charge = fraction x remaining recurring months,
    # capped at cap_months; applies to consumers, juristic persons or both.
    etc_fraction: Mapped[Decimal | None] = mapped_column(Numeric(6, 4))
    etc_cap_months: Mapped[int | None] = mapped_column(Integer)
    applies_to: Mapped[str] = mapped_column(String(20), default="all")  # 'consumer', 'juristic', 'all'

    __table_args__ = (
        CheckConstraint("kind IN ('recurring','one_off','usage','wholesale_cost','early_termination')", name="kind"),
        CheckConstraint(
            "charge_event IS NULL OR charge_event IN ('installation','activation','router','reconnection','unreturned_equipment','cancellation','monthly')",
            name="charge_event",
        ),
        CheckConstraint("usage_type IS NULL OR usage_type IN ('data_mb','voice_sec','sms')", name="usage_type"),
        CheckConstraint("applies_to IN ('consumer','juristic','all')", name="applies_to"),
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="valid_range"),
        Index("ix_price_offering_kind_from", "offering_id", "kind", "valid_from"),
    )

    def __str__(self) -> str:
        return f"{self.name} {self.currency} {self.amount_minor / 100:.2f}"


class ContractTerm(Base):
    """Data-driven contract and cancellation terms (CPA s14 for consumers; juristic persons per contract).

    `notice_business_days`: notice a customer of that kind must give; `may_cancel_early`: whether a fixed-term
    contract may be ended early at all; the penalty itself is the offering's early_termination price rows."""

    __tablename__ = "contract_term"

    id: Mapped[IdPk]
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    months: Mapped[int] = mapped_column(Integer)
    customer_kind: Mapped[str] = mapped_column(String(20))  # 'consumer' or 'juristic'
    notice_business_days: Mapped[int] = mapped_column(Integer, default=20)
    may_cancel_early: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(Text)
    # the "reasonable penalty" policy (CPA s14, consumers only): an early-termination fee never exceeds this fraction of
    # the recurring charges still due to the contract end. None: no cap (juristic persons: the contract decides).
    penalty_cap_fraction: Mapped[Decimal | None] = mapped_column(Numeric(6, 4))

    __table_args__ = (
        CheckConstraint("customer_kind IN ('consumer','juristic')", name="customer_kind"),
        CheckConstraint("penalty_cap_fraction IS NULL OR (penalty_cap_fraction >= 0 AND penalty_cap_fraction <= 1)", name="penalty_cap_fraction"),
        CheckConstraint("customer_kind = 'consumer' OR penalty_cap_fraction IS NULL", name="penalty_cap_consumers_only"),
        UniqueConstraint("months", "customer_kind"),
    )

    def __str__(self) -> str:
        return self.name


class OfferingEquipment(Base):
    """Equipment an offering bundles: e.g. fibre 100/100 ships a loaned router; the FNO installs its ONT."""

    __tablename__ = "offering_equipment"

    id: Mapped[IdPk]
    offering_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("product_offering.id"), index=True)
    equipment_offering_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("product_offering.id"))
    owner: Mapped[str] = mapped_column(String(20), default="isp_loaned")
    quantity: Mapped[int] = mapped_column(Integer, default=1)

    __table_args__ = (
        CheckConstraint("owner IN ('fno','isp_loaned','customer_owned')", name="owner"),
        UniqueConstraint("offering_id", "equipment_offering_id"),
    )
