"""Tables for handing debt over to collection agencies: each agency's terms (export and recovery file layouts, commission
rates by age of debt), hand-over batches, placements (one account with one agency), recovery files and their lines."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from opsline.core.lifecycle import Lifecycle
from opsline.db.base import Base, IdPk, JSONType, sql_in

FILE_FORMATS = ("csv", "xlsx")
COMMISSION_BASES = ("flat", "by_age")  # flat: the partner's commission_percent; by_age: agency_commission_rate bands


class PlacementState(enum.StrEnum):
    PLACED = "placed"  # with the agency
    RECALLED = "recalled"  # we took it back (the agency was told)
    CLOSED_PAID = "closed_paid"  # fully recovered
    CLOSED_RETURNED = "closed_returned"  # the agency gave up on it (uncollectable)


P = PlacementState
AGENCY_PLACEMENT = Lifecycle(
    name="agency_placement",
    states=PlacementState,
    initial=P.PLACED,
    transitions={
        P.PLACED: {"recall": P.RECALLED, "close_paid": P.CLOSED_PAID, "return": P.CLOSED_RETURNED},
        P.RECALLED: {}, P.CLOSED_PAID: {}, P.CLOSED_RETURNED: {},
    },
    system_actions={"close_paid"},  # a recovery file that covers the whole amount closes it
    permissions={"recall": "debtors.handover", "return": "debtors.handover"},
    needs_reason={"recall", "return"},
    labels={"recall": "Recall from the agency", "return": "Returned by the agency (uncollectable)"},
)
LIFECYCLES: tuple[Lifecycle, ...] = (AGENCY_PLACEMENT,)


class AgencyTerms(Base):
    """One collection agency's terms, as data a debtors manager edits: the layout of the hand-over file we send
    (columns in order with the agency's header names, date format, CSV delimiter or xlsx), how commission is charged,
    and the layout of the recovery files the agency sends back."""

    __tablename__ = "agency_terms"
    partner_code: Mapped[str] = mapped_column(String(30), ForeignKey("partner.code"), primary_key=True)
    export_format: Mapped[str] = mapped_column(String(4))
    export_delimiter: Mapped[str] = mapped_column(String(1), default=",")
    export_date_format: Mapped[str] = mapped_column(String(20))
    export_columns: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)  # [{"field": "account_number", "header": "AccountNo"}, ...]
    commission_basis: Mapped[str] = mapped_column(String(10))
    recovery_format: Mapped[str] = mapped_column(String(4))
    recovery_delimiter: Mapped[str] = mapped_column(String(1), default=",")
    recovery_date_format: Mapped[str] = mapped_column(String(20))
    recovery_columns: Mapped[dict[str, str]] = mapped_column(JSONType)  # {"account": header, "amount": ..., "paid_on": ..., "agency_ref": ...}
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(120))
    version: Mapped[int] = mapped_column(Integer, default=1)

    __table_args__ = (
        CheckConstraint(sql_in("export_format", FILE_FORMATS), name="export_format"),
        CheckConstraint(sql_in("recovery_format", FILE_FORMATS), name="recovery_format"),
        CheckConstraint(sql_in("commission_basis", COMMISSION_BASES), name="commission_basis"),
    )


class AgencyCommissionRate(Base):
    """A commission band: debt at least `min_age_days` old at hand-over (oldest unpaid due date) earns `percent` of what
    is recovered; the band with the largest threshold not above the age applies."""

    __tablename__ = "agency_commission_rate"
    id: Mapped[IdPk]
    partner_code: Mapped[str] = mapped_column(String(30), ForeignKey("partner.code"))
    min_age_days: Mapped[int] = mapped_column(Integer)
    percent: Mapped[Decimal] = mapped_column(Numeric(5, 2))

    __table_args__ = (
        UniqueConstraint("partner_code", "min_age_days", name="uq_agency_commission_rate_band"),
        CheckConstraint("min_age_days >= 0 AND percent >= 0 AND percent <= 100", name="band"),
    )


class AgencyBatch(Base):
    """One hand-over: the accounts placed with one agency together (the file sent is this batch in the agency's layout)."""

    __tablename__ = "agency_batch"
    id: Mapped[IdPk]
    partner_code: Mapped[str] = mapped_column(String(30), ForeignKey("partner.code"))
    accounts: Mapped[int] = mapped_column(Integer)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    criteria: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    placed_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))
    idempotency_key: Mapped[str | None] = mapped_column(String(80), unique=True)  # a repeated form post replays the first batch

    __table_args__ = (Index("ix_agency_batch_partner", "partner_code", "placed_on"),)


class AgencyPlacement(Base):
    """One account's debt with one agency: `amount_minor` handed over, of it `written_off_minor` already written off
    (a recovery of that part is a bad-debt recovery) and `on_book_minor` still on the ledger. Commission is the rate
    fixed at hand-over (`commission_percent`) on each recovery. One open placement per account."""

    __tablename__ = "agency_placement"
    id: Mapped[IdPk]
    batch_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("agency_batch.id"), index=True)
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    partner_code: Mapped[str] = mapped_column(String(30), ForeignKey("partner.code"))
    state: Mapped[str] = mapped_column(String(20), default=PlacementState.PLACED)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    written_off_minor: Mapped[int] = mapped_column(BigInteger)
    on_book_minor: Mapped[int] = mapped_column(BigInteger)
    recovered_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    bad_debt_recovered_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    commission_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    commission_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    age_days: Mapped[int] = mapped_column(Integer)  # of the oldest unpaid debt on the hand-over day
    oldest_due: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    placed_on: Mapped[date] = mapped_column(Date)
    placed_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(120))
    close_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        AGENCY_PLACEMENT.check(),
        CheckConstraint("amount_minor > 0 AND written_off_minor >= 0 AND on_book_minor >= 0 AND written_off_minor + on_book_minor = amount_minor",
                        name="amounts"),
        CheckConstraint("recovered_minor >= 0 AND recovered_minor <= amount_minor", name="recovered"),
        # an account is with one agency at a time
        Index("uq_agency_placement_open_account", "account_id", unique=True,
              postgresql_where=text("state = 'placed'"), sqlite_where=text("state = 'placed'")),
        Index("ix_agency_placement_partner", "partner_code", "state", "placed_on"),
        Index("ix_agency_placement_account", "account_id", "id"),
    )


class AgencyRecoveryFile(Base):
    """A recovery file as imported (once: the same bytes for the same agency replay the first import)."""

    __tablename__ = "agency_recovery_file"
    id: Mapped[IdPk]
    partner_code: Mapped[str] = mapped_column(String(30), ForeignKey("partner.code"))
    filename: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    lines: Mapped[int] = mapped_column(Integer)
    new_lines: Mapped[int] = mapped_column(Integer)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    commission_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    imported_at: Mapped[datetime]
    imported_by: Mapped[str] = mapped_column(String(120))

    __table_args__ = (UniqueConstraint("partner_code", "sha256", name="uq_agency_recovery_file_hash"),)


class AgencyRecovery(Base):
    """One payment the agency collected (a line of a recovery file), allocated: `on_book_minor` paid debt still on the
    ledger, `bad_debt_minor` recovered written-off debt; `commission_minor` owed to the agency for it."""

    __tablename__ = "agency_recovery"
    id: Mapped[IdPk]
    file_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("agency_recovery_file.id"), index=True)
    placement_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("agency_placement.id"), index=True)
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    partner_code: Mapped[str] = mapped_column(String(30), ForeignKey("partner.code"))
    line_no: Mapped[int] = mapped_column(Integer)
    agency_ref: Mapped[str] = mapped_column(String(80))
    paid_on: Mapped[date] = mapped_column(Date)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    on_book_minor: Mapped[int] = mapped_column(BigInteger)
    bad_debt_minor: Mapped[int] = mapped_column(BigInteger)
    commission_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    posted_at: Mapped[datetime]

    __table_args__ = (
        # the agency's receipt reference is the line's key: a line sent again in a later file is not posted twice
        UniqueConstraint("partner_code", "agency_ref", name="uq_agency_recovery_ref"),
        CheckConstraint("amount_minor > 0 AND on_book_minor >= 0 AND bad_debt_minor >= 0 AND on_book_minor + bad_debt_minor = amount_minor "
                        "AND commission_minor >= 0", name="amounts"),
        Index("ix_agency_recovery_account", "account_id", "id"),
    )
