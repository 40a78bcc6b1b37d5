"""Shared pieces of the SLA engine: errors, chunking, and which case states count as open."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import JSON, BigInteger, ColumnElement, Table, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from opsline.db.bulk import copy_rows

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
    for i in range(0, len(ids), size):
        yield [int(x) for x in ids[i : i + size]]


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
    """Insert rows (dicts with the same keys) in the session's transaction: COPY on PostgreSQL, executemany on SQLite.
    On PostgreSQL only the JSON columns are converted here (the generic `copy_rows` inspects every value, a third
    of the cost of copying tens of thousands of clocks)."""
    if not rows:
        return
    cols = list(rows[0])
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        copy_rows(conn, table, cols, ([r[c] for c in cols] for r in rows))
        return
    as_json = {c for c in cols if isinstance(table.c[c].type, JSON)}
    names = ", ".join(f'"{c}"' for c in cols)
    with conn.connection.driver_connection.cursor() as cur, cur.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        write = copy.write_row
        if as_json:
            for r in rows:
                write([json.dumps(r[c]) if c in as_json and r[c] is not None else r[c] for c in cols])
        else:
            for r in rows:
                write([r[c] for c in cols])
