"""Human-readable numbers from database sequences (never count(*)+1): a real SEQUENCE on PostgreSQL (no lock held,
concurrent callers never wait), one counter row per sequence on SQLite (where writes are serialised anyway)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Connection, Sequence, String, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsline.db.base import Base, metadata

ACCOUNT_NUMBER = "account_number_seq"
# Every named sequence, so create_all makes them on PostgreSQL (migrations create them by hand).
SEQUENCES = {ACCOUNT_NUMBER: Sequence(ACCOUNT_NUMBER, metadata=metadata, start=1)}


class NumberSequence(Base):
    """SQLite's stand-in for a PostgreSQL sequence: the last value handed out, per sequence name."""

    __tablename__ = "number_sequence"
    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    last_value: Mapped[int] = mapped_column(BigInteger, default=0)


def _dialect(obj: Session | Connection) -> str:
    return obj.get_bind().dialect.name if isinstance(obj, Session) else obj.dialect.name


def _check(name: str) -> None:
    if name not in SEQUENCES:
        raise KeyError(f"unknown sequence {name!r}")


def next_value(session: Session | Connection, name: str) -> int:
    """The next value of sequence `name` (1, 2, 3 ...). On PostgreSQL values used by a rolled-back transaction are
    skipped (gaps are fine for account numbers; invoice numbers use their own gapless counter)."""
    _check(name)
    if _dialect(session) == "postgresql":
        return int(session.execute(text(f"SELECT nextval('{name}')")).scalar_one())
    return int(session.execute(
        text("INSERT INTO number_sequence (name, last_value) VALUES (:n, 1) "
             "ON CONFLICT (name) DO UPDATE SET last_value = number_sequence.last_value + 1 RETURNING last_value"),
        {"n": name}).scalar_one())


def advance_to(conn: Session | Connection, name: str, value: int) -> None:
    """Make sure the next value handed out is greater than `value` (after bulk loads with explicit numbers)."""
    _check(name)
    if _dialect(conn) == "postgresql":
        conn.execute(text(f"SELECT setval('{name}', GREATEST(:v, (SELECT last_value FROM {name})), true)"), {"v": max(1, int(value))})
        return
    conn.execute(text("INSERT INTO number_sequence (name, last_value) VALUES (:n, :v) "
                      "ON CONFLICT (name) DO UPDATE SET last_value = MAX(number_sequence.last_value, excluded.last_value)"),
                 {"n": name, "v": int(value)})
