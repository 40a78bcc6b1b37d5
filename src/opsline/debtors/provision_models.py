"""Tables for the IFRS 9 bad-debt provision: month-end ageing snapshots, forward-looking adjustments, provision runs."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from opsline.db.base import Base, IdPk, JSONType, sql_in

BUCKETS = ("current", "d30", "d60", "d90", "d120", "d120_plus")  # billing.AGEING_BUCKETS: the aged-debtors report's buckets
WRITTEN_OFF = "written_off"  # not a bucket: what was written off during the month (the absorbing state)
AGEING_ROWS = (*BUCKETS, WRITTEN_OFF)
SOURCES = ("ledger", "import")

LIFECYCLES: tuple = ()


class ProvisionAccountSnapshot(Base):
    """One account's open debt by days past due at a month end, as the ledger stood at that instant (entries posted up to
    the end of the month's last local day), with what was written off on it during that month. Roll rates compare an
    account's buckets one month end with the next."""

    __tablename__ = "provision_account_snapshot"
    month_end: Mapped[date] = mapped_column(Date, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    segment_code: Mapped[str] = mapped_column(String(30))
    value_tier_code: Mapped[str] = mapped_column(String(30), default="")
    current: Mapped[int] = mapped_column(BigInteger, default=0)
    d30: Mapped[int] = mapped_column(BigInteger, default=0)
    d60: Mapped[int] = mapped_column(BigInteger, default=0)
    d90: Mapped[int] = mapped_column(BigInteger, default=0)
    d120: Mapped[int] = mapped_column(BigInteger, default=0)
    d120_plus: Mapped[int] = mapped_column(BigInteger, default=0)
    written_off_minor: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (Index("ix_provision_account_snapshot_segment", "month_end", "currency", "segment_code"),)


class ProvisionHistoryImport(Base):
    """One file of month-end ageing history from the prior billing system (all its lines, or none)."""

    __tablename__ = "provision_history_import"
    id: Mapped[IdPk]
    filename: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    lines: Mapped[int] = mapped_column(Integer)
    months: Mapped[int] = mapped_column(Integer)
    first_month: Mapped[date] = mapped_column(Date)
    last_month: Mapped[date] = mapped_column(Date)
    imported_at: Mapped[datetime]
    imported_by: Mapped[str] = mapped_column(String(120))


class ProvisionAgeing(Base):
    """Balances per month end, segment, value tier ('' = all tiers, as imported) and bucket, from the ledger or imported.
    `rolled_minor`: how much of this bucket's balance sat one bucket older a month later (for 120+: was written off);
    `stayed_minor` (120+ only): how much was still 120+ a month later. Null when not known (the aggregate estimate is used)."""

    __tablename__ = "provision_ageing"
    id: Mapped[IdPk]
    month_end: Mapped[date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(10))
    currency: Mapped[str] = mapped_column(String(3))
    segment_code: Mapped[str] = mapped_column(String(30))
    value_tier_code: Mapped[str] = mapped_column(String(30), default="")
    bucket: Mapped[str] = mapped_column(String(12))
    balance_minor: Mapped[int] = mapped_column(BigInteger)
    rolled_minor: Mapped[int | None] = mapped_column(BigInteger)
    stayed_minor: Mapped[int | None] = mapped_column(BigInteger)
    accounts: Mapped[int | None] = mapped_column(Integer)
    import_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("provision_history_import.id"))
    computed_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("month_end", "source", "currency", "segment_code", "value_tier_code", "bucket", name="uq_provision_ageing_cell"),
        CheckConstraint(sql_in("source", SOURCES), name="source"),
        CheckConstraint(sql_in("bucket", AGEING_ROWS), name="bucket"),
        CheckConstraint("balance_minor >= 0 AND (rolled_minor IS NULL OR rolled_minor >= 0) AND (stayed_minor IS NULL OR stayed_minor >= 0)",
                        name="non_negative"),
    )


class ProvisionAdjustment(Base):
    """The forward-looking adjustment: +/- percent on the loss rates from `valid_from` (a month's first day) until a later
    entry replaces it; for one segment, or all (segment_code ''). A segment's own entry wins over the overall one."""

    __tablename__ = "provision_adjustment"
    id: Mapped[IdPk]
    valid_from: Mapped[date] = mapped_column(Date)
    segment_code: Mapped[str] = mapped_column(String(30), default="")
    pct: Mapped[Decimal] = mapped_column(Numeric(9, 4))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))

    __table_args__ = (
        CheckConstraint("pct > -100 AND pct <= 1000", name="pct_range"),
        Index("ix_provision_adjustment_month", "valid_from", "segment_code"),
    )


class ProvisionRun(Base):
    """One provision for one month end: its inputs (history used, roll rates, adjustments) and results, kept as
    calculated. A month has one current run; running it again needs a reason and supersedes the earlier one."""

    __tablename__ = "provision_run"
    id: Mapped[IdPk]
    month_end: Mapped[date] = mapped_column(Date)
    seq: Mapped[int] = mapped_column(Integer)
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)
    lookback_months: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    results: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    __table_args__ = (
        UniqueConstraint("month_end", "seq", name="uq_provision_run_month_seq"),
        Index("uq_provision_run_current", "month_end", unique=True,
              postgresql_where=text("is_current"), sqlite_where=text("is_current = 1")),
    )


class ProvisionLine(Base):
    """The provision for one currency, segment and bucket of a run: balance x loss rate x (1 + adjustment), half-up to
    the minor unit, and last month's figure for the movement."""

    __tablename__ = "provision_line"
    run_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("provision_run.id"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    segment_code: Mapped[str] = mapped_column(String(30), primary_key=True)
    bucket: Mapped[str] = mapped_column(String(12), primary_key=True)
    balance_minor: Mapped[int] = mapped_column(BigInteger)
    accounts: Mapped[int | None] = mapped_column(Integer)
    loss_rate: Mapped[Decimal] = mapped_column(Numeric(12, 8))
    adjustment_pct: Mapped[Decimal] = mapped_column(Numeric(9, 4))
    provision_minor: Mapped[int] = mapped_column(BigInteger)
    previous_minor: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (CheckConstraint(sql_in("bucket", BUCKETS), name="bucket"),)


class ProvisionSnapshot(Base):
    """That a month end's ledger ageing was taken (a month with no debt has no ageing rows, yet is history all the same)."""

    __tablename__ = "provision_snapshot"
    month_end: Mapped[date] = mapped_column(Date, primary_key=True)
    computed_at: Mapped[datetime]
    accounts: Mapped[int] = mapped_column(Integer)
    balance_minor: Mapped[int] = mapped_column(BigInteger)
