"""Set-based loading: COPY on PostgreSQL, executemany on SQLite. Used by the demo generator, imports and benches."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Iterable, Sequence

from sqlalchemy import Connection, Table, text

from opsline.db.base import sqlite_utc


def _sqlite_value(v: Any) -> Any:
    if isinstance(v, datetime):
        return sqlite_utc(v)
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return v


def _pg_value(v: Any) -> Any:
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return v


def copy_rows(conn: Connection, table: Table | str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Insert rows (tuples in `columns` order) as fast as the database allows. Returns the row count."""
    name = table if isinstance(table, str) else table.name
    n = 0
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection  # psycopg connection
        cols = ", ".join(f'"{c}"' for c in columns)
        with raw.cursor() as cur, cur.copy(f'COPY "{name}" ({cols}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row([_pg_value(v) for v in row])
                n += 1
        return n
    placeholders = ", ".join("?" for _ in columns)
    sql = f'INSERT INTO "{name}" ({", ".join(columns)}) VALUES ({placeholders})'
    cur = conn.connection.driver_connection.cursor()
    batch: list[list[Any]] = []
    for row in rows:
        batch.append([_sqlite_value(v) for v in row])
        if len(batch) >= 20_000:
            cur.executemany(sql, batch)
            n += len(batch)
            batch.clear()
    if batch:
        cur.executemany(sql, batch)
        n += len(batch)
    cur.close()
    return n


def copy_rows_binary(conn: Connection, table: Table | str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """`copy_rows` in PostgreSQL's binary COPY format, each column's type read from the catalogue: psycopg formats
    in C and the server parses no text (timestamps above all), several times faster for wide rows. JSON columns
    take Python objects, never JSON text. On SQLite it is `copy_rows`. Returns the row count."""
    if conn.dialect.name != "postgresql":
        return copy_rows(conn, table, columns, rows)
    name = table if isinstance(table, str) else table.name
    raw = conn.connection.driver_connection  # psycopg connection, in the session's transaction
    n = 0
    with raw.cursor() as cur:
        cur.execute("SELECT attname, atttypid FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped", (f'"{name}"',))
        oids = dict(cur.fetchall())
        cols = ", ".join(f'"{c}"' for c in columns)
        with cur.copy(f'COPY "{name}" ({cols}) FROM STDIN (FORMAT BINARY)') as copy:
            copy.set_types([oids[c] for c in columns])
            for row in rows:
                copy.write_row(row)
                n += 1
    return n


def next_id(conn: Connection, table: str) -> int:
    return int(conn.execute(text(f'SELECT COALESCE(MAX(id), 0) + 1 FROM "{table}"')).scalar_one())


def reset_sequence(conn: Connection, table: str) -> None:
    """After inserting explicit ids on PostgreSQL, move the id sequence past them."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), COALESCE((SELECT MAX(id) FROM \"{table}\"), 1))"))
