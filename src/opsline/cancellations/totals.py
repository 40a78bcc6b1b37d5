"""Running totals of the journey steps for the SLA report: how many steps per UTC due date, step code, state and
"done late" flag, kept by database triggers on cancellation_step in the writer's own transaction (set-based on
PostgreSQL: one statement-level trigger per statement, whatever wrote the rows: the services, the escalation's bulk
UPDATE, a bulk load). The SLA report sums these rows instead of counting every step (issue 12, Speed); what depends on
the clock (open steps overdue, today's part) and on recorded breach causes is read from the steps themselves."""

from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Boolean, Date, DDL, Index, String, Table, event, text
from sqlalchemy.orm import Mapped, mapped_column

from opsline.cancellations.models import CancellationStep
from opsline.db.base import Base


class CancellationStepTotal(Base):
    """Steps counted per (UTC due date, code, state, done late). Steps without a due time are not counted (no report
    reads them). Rows are never deleted; a count that went back to zero stays as 0."""

    __tablename__ = "cancellation_step_total"

    due_date: Mapped[date] = mapped_column(Date, primary_key=True)
    code: Mapped[str] = mapped_column(String(30), primary_key=True)
    state: Mapped[str] = mapped_column(String(10), primary_key=True)
    late: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (Index("ix_cancellation_step_total_code", "code", "state", "due_date"),)


# --- the key of a step, the same expressions the reports compare with ------------------------------------------------

def _late(p: str, dialect: str) -> str:
    false = "false" if dialect == "postgresql" else "0"
    return f"COALESCE({p}state = 'done' AND {p}done_at > {p}due_at, {false})"


def _day(p: str, dialect: str) -> str:
    return f"CAST(({p}due_at AT TIME ZONE 'UTC') AS DATE)" if dialect == "postgresql" else f"date({p}due_at)"


_UPSERT = ("INSERT INTO cancellation_step_total AS t (due_date, code, state, late, n) {select} "
           "ON CONFLICT (due_date, code, state, late) DO UPDATE SET n = t.n + EXCLUDED.n")
# SQLite takes no table alias in a trigger's INSERT; the bare column is the existing row's
_SQLITE_UPSERT = ("INSERT INTO cancellation_step_total (due_date, code, state, late, n) {select} "
                  "ON CONFLICT (due_date, code, state, late) DO UPDATE SET n = n + excluded.n")


def _pg_keyed(rows: str, sign: int) -> str:
    return (f"SELECT {_day('', 'postgresql')} AS due_date, code, state, {_late('', 'postgresql')} AS late, {sign} AS d "
            f"FROM {rows} WHERE due_at IS NOT NULL")


def _pg_sum(inner: str) -> str:
    # one row per key, in key order (two writers lock the same total rows in the same order)
    return _UPSERT.format(select=f"SELECT due_date, code, state, late, SUM(d) FROM ({inner}) k GROUP BY due_date, code, state, late "
                                 "HAVING SUM(d) <> 0 ORDER BY due_date, code, state, late")


PG_DDL = [
    "CREATE OR REPLACE FUNCTION cancellation_step_total_ins() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    + _pg_sum(_pg_keyed("new_rows", 1)) + "; RETURN NULL; END $$",
    "CREATE OR REPLACE FUNCTION cancellation_step_total_del() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    + _pg_sum(_pg_keyed("old_rows", -1)) + "; RETURN NULL; END $$",
    # an UPDATE moves a step from its old key to its new one; rows whose key did not change cancel out (HAVING)
    "CREATE OR REPLACE FUNCTION cancellation_step_total_upd() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    + _pg_sum(_pg_keyed("old_rows", -1) + " UNION ALL " + _pg_keyed("new_rows", 1)) + "; RETURN NULL; END $$",
    "CREATE TRIGGER cancellation_step_total_ins AFTER INSERT ON cancellation_step REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION cancellation_step_total_ins()",
    "CREATE TRIGGER cancellation_step_total_upd AFTER UPDATE ON cancellation_step REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION cancellation_step_total_upd()",
    "CREATE TRIGGER cancellation_step_total_del AFTER DELETE ON cancellation_step REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION cancellation_step_total_del()",
]
PG_DROP = [
    "DROP TRIGGER IF EXISTS cancellation_step_total_ins ON cancellation_step",
    "DROP TRIGGER IF EXISTS cancellation_step_total_upd ON cancellation_step",
    "DROP TRIGGER IF EXISTS cancellation_step_total_del ON cancellation_step",
    "DROP FUNCTION IF EXISTS cancellation_step_total_ins()",
    "DROP FUNCTION IF EXISTS cancellation_step_total_upd()",
    "DROP FUNCTION IF EXISTS cancellation_step_total_del()",
]


def _sqlite_add(p: str, sign: int) -> str:
    return _SQLITE_UPSERT.format(select=f"SELECT {_day(p, 'sqlite')}, {p}code, {p}state, {_late(p, 'sqlite')}, {sign} WHERE true")


_SQLITE_KEY_CHANGED = ("OLD.code IS NOT NEW.code OR OLD.state IS NOT NEW.state OR date(OLD.due_at) IS NOT date(NEW.due_at) "
                       f"OR {_late('OLD.', 'sqlite')} IS NOT {_late('NEW.', 'sqlite')}")
SQLITE_DDL = [
    f"CREATE TRIGGER IF NOT EXISTS cancellation_step_total_ins AFTER INSERT ON cancellation_step WHEN NEW.due_at IS NOT NULL BEGIN "
    f"{_sqlite_add('NEW.', 1)}; END",
    f"CREATE TRIGGER IF NOT EXISTS cancellation_step_total_del AFTER DELETE ON cancellation_step WHEN OLD.due_at IS NOT NULL BEGIN "
    f"{_sqlite_add('OLD.', -1)}; END",
    f"CREATE TRIGGER IF NOT EXISTS cancellation_step_total_upd_old AFTER UPDATE OF code, state, due_at, done_at ON cancellation_step "
    f"WHEN OLD.due_at IS NOT NULL AND ({_SQLITE_KEY_CHANGED}) BEGIN {_sqlite_add('OLD.', -1)}; END",
    f"CREATE TRIGGER IF NOT EXISTS cancellation_step_total_upd_new AFTER UPDATE OF code, state, due_at, done_at ON cancellation_step "
    f"WHEN NEW.due_at IS NOT NULL AND ({_SQLITE_KEY_CHANGED}) BEGIN {_sqlite_add('NEW.', 1)}; END",
]
SQLITE_DROP = [f"DROP TRIGGER IF EXISTS {n}" for n in ("cancellation_step_total_ins", "cancellation_step_total_del", "cancellation_step_total_upd_old",
                                                       "cancellation_step_total_upd_new")]


def rebuild_sql(dialect: str) -> list[str]:
    """Recount every row from the steps (the migration's backfill; also a repair): set-based, two statements."""
    return ["DELETE FROM cancellation_step_total",
            f"INSERT INTO cancellation_step_total (due_date, code, state, late, n) SELECT {_day('', dialect)}, code, state, {_late('', dialect)}, COUNT(*) "
            f"FROM cancellation_step WHERE due_at IS NOT NULL GROUP BY {_day('', dialect)}, code, state, {_late('', dialect)}"]


def ddl(dialect: str) -> list[str]:
    return PG_DDL if dialect == "postgresql" else SQLITE_DDL if dialect == "sqlite" else []


def attach_ddl(step_table: Table) -> None:
    """Create the triggers with the steps table when the schema is built from the models (tests, fresh installs); the
    migration 0022 creates them on existing databases."""
    for dialect in ("sqlite", "postgresql"):
        for stmt in ddl(dialect):
            event.listen(step_table, "after_create", DDL(stmt.replace("%", "%%")).execute_if(dialect=dialect))


def rebuild(conn: object) -> None:
    """Recount the totals from the steps in the caller's transaction (`conn`: a Connection or Session)."""
    dialect = conn.get_bind().dialect.name if hasattr(conn, "get_bind") else conn.dialect.name  # type: ignore[attr-defined]
    for stmt in rebuild_sql(dialect):
        conn.execute(text(stmt))  # type: ignore[attr-defined]


attach_ddl(CancellationStep.__table__)
