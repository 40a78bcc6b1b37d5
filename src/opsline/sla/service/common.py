"""Shared pieces of the SLA engine: errors, chunking, and which case states count as open."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Table, any_, bindparam, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from opsline.db.bulk import copy_rows_binary

from opsline.core.batching import pages
from opsline.core.errors import InvalidInput, NotFound

OPEN_CASE_STATES = ("acknowledged", "inProgress", "pending", "held")
CUSTOMER_METRICS = ("first_response", "next_update", "resolution")  # what the customer was promised (team/partner clocks are internal)
DEFAULT_CALENDAR = "za-support"  # used only for a case no policy covers
CHUNK = 2000
RECALC_SHARD = 5000  # case ids per "sla.recalculate" job
AT_RISK = 0.5  # a breach probability at or above this puts the case "at risk"


class UnableToSetBreachCause(InvalidInput):
    pass


class BreachNotFound(NotFound):
    pass


def chunks(ids: Sequence[int], size: int = CHUNK) -> Iterable[list[int]]:
    for part in pages(ids, size):
        yield [int(x) for x in part]


def id_filters(session: Session, column: Any, ids: Sequence[int]) -> list[ColumnElement[bool]]:
    """WHERE clauses that together cover `ids`, one query each: on PostgreSQL a single `column = ANY(:ids)` (one
    array parameter however many ids: no 2,000-placeholder IN-lists to render, parse and plan per chunk); on
    SQLite (in-process, no round trips) IN-lists of CHUNK."""
    ids = [int(x) for x in ids]
    if not ids:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return [column == any_(bindparam(None, ids, type_=ARRAY(BigInteger), unique=True))]
    return [column.in_(chunk) for chunk in chunks(ids)]


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows (dicts with the same keys) in the session's transaction: binary COPY on PostgreSQL (tens of
    thousands of clocks with four timestamps each: text COPY spent most of its time formatting and parsing them),
    executemany on SQLite."""
    if rows:
        cols = list(rows[0])
        copy_rows_binary(session.connection(), table, cols, ([r[c] for c in cols] for r in rows))


def update_rows(session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    """Set columns of existing rows of `model` (dicts with the same keys, its primary key among them). PostgreSQL:
    binary COPY into a staging table and one UPDATE ... FROM it; the ORM's bulk update sends one statement per
    row, and a recalculation an hour after the last one changes every running clock. SQLite (in-process, no round
    trips): the ORM's bulk update by primary key."""
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        session.execute(update(model), rows)
        return
    table: Table = model.__table__
    key = table.primary_key.columns.values()[0].name
    cols = list(rows[0])
    conn = session.connection()
    stage = f"stage_{table.name}"
    names = ", ".join(f'"{c}"' for c in cols)
    conn.execute(text(f'CREATE TEMP TABLE "{stage}" ON COMMIT DROP AS SELECT {names} FROM "{table.name}" WITH NO DATA'))
    copy_rows_binary(conn, stage, cols, ([r[c] for c in cols] for r in rows))
    sets = ", ".join(f'"{c}" = s."{c}"' for c in cols if c != key)
    conn.execute(text(f'UPDATE "{table.name}" AS t SET {sets} FROM "{stage}" AS s WHERE t."{key}" = s."{key}"'))
    conn.execute(text(f'DROP TABLE "{stage}"'))
