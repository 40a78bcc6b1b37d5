"""Declarative base, naming convention and column types shared by every area's models."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Annotated, Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# BIGINT ids on PostgreSQL; SQLite needs INTEGER PRIMARY KEY for rowid autoincrement.
BigId = BigInteger().with_variant(Integer(), "sqlite")
JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware instant stored in UTC. Naive datetimes are refused: every instant must say its zone."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime refused; pass a timezone-aware instant")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


IdPk = Annotated[int, mapped_column(BigId, primary_key=True, autoincrement=True)]


class Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType, list[Any]: JSONType}


def sqlite_utc(value: datetime) -> str:
    """The string SQLite stores for an instant; used by set-based SQL that writes datetimes directly."""
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")


def sql_in(col: str, values: Iterable[Any]) -> str:
    """A CHECK expression allowing only `values` (strings or StrEnum members) in `col`: "kind IN ('a','b')"."""
    return f"{col} IN (" + ",".join(f"'{v}'" for v in values) + ")"


# The one change an append-only row may take: its `redactable` text column replaced by a redaction marker starting
# with this (a POPIA erasure, customers/privacy.py), every other column unchanged.
REDACTION_PREFIX = "[erased"


def _starts_redacted(column: str) -> str:
    # substr, not LIKE: the DDL goes through %-formatting (sqlalchemy DDL) where a '%' would need escaping
    return f"substr(NEW.{column}, 1, {len(REDACTION_PREFIX)}) = '{REDACTION_PREFIX}'"


def append_only_sql(table: str, dialect: str, message: str, *, redactable: str | None = None, columns: Iterable[str] = ()) -> list[str]:
    """DDL that makes the database itself refuse UPDATE and DELETE on `table`. With `redactable` (and the table's
    `columns`), an UPDATE that only sets that column to a redaction marker is let through."""
    if dialect == "sqlite":
        when = ""
        if redactable:
            same = " AND ".join(f"NEW.{c} IS OLD.{c}" for c in columns if c != redactable)
            when = f" WHEN NOT ({_starts_redacted(redactable)}{' AND ' + same if same else ''})"
        return [
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table}{when} BEGIN SELECT RAISE(ABORT, '{message}'); END",
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table} BEGIN SELECT RAISE(ABORT, '{message}'); END",
        ]
    if dialect == "postgresql":
        allow = (f"IF TG_OP = 'UPDATE' AND {_starts_redacted(redactable)} AND (to_jsonb(NEW) - '{redactable}') = (to_jsonb(OLD) - '{redactable}') "
                 f"THEN RETURN NEW; END IF; ") if redactable else ""
        return [
            f"CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger AS $$ BEGIN {allow}RAISE EXCEPTION '{message}'; END; $$ LANGUAGE plpgsql",
            f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION {table}_append_only()",
        ]
    return []


def append_only(table: Any, message: str, *, redactable: str | None = None) -> None:
    """Attach append-only triggers to a table created by `metadata.create_all` (migrations call append_only_sql).
    `redactable` names the one text column a POPIA erasure may overwrite with a redaction marker."""
    from sqlalchemy import DDL, event

    table.info["append_only_redactable"] = redactable
    for dialect in ("sqlite", "postgresql"):
        for stmt in append_only_sql(table.name, dialect, message, redactable=redactable, columns=[c.name for c in table.columns]):
            event.listen(table, "after_create", DDL(stmt).execute_if(dialect=dialect))
