"""Running totals for the cancellations desk at 50,000 open journeys (issue 12, Speed): steps per UTC due date, code,
state and done-late flag (the SLA report), and journeys per notice month, reason, retention outcome, FNO flags, open
or not, current step and at-risk flag (the volume report, the board's counts, the home cards). Kept by database
triggers on cancellation_step and cancellation_journey in the writer's own transaction (statement-level and set-based
on PostgreSQL), whatever wrote the rows: the services, the escalation's bulk UPDATE, a bulk load. The pages sum these
rows instead of counting every step and journey; what depends on the clock (overdue, due today, today's part) and on
recorded breach causes is read from the rows themselves through small index range scans."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, DDL, Index, String, Table, event, text
from sqlalchemy.orm import Mapped, mapped_column

from opsline.cancellations.models import OPEN_SQL, CancellationJourney, CancellationStep
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


class CancellationJourneyTotal(Base):
    """Journeys counted per notice month, kind, reason, retention outcome, FNO (with its deactivation confirmed, late,
    waiting), open or not, and for open ones their current step and at-risk flag: the volume report, the board's
    counts per step and the coordinator's home cards sum these. Text keys are '' where the journey has none."""

    __tablename__ = "cancellation_journey_total"

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    reason_code: Mapped[str] = mapped_column(String(30), primary_key=True)
    retention_outcome: Mapped[str] = mapped_column(String(20), primary_key=True)
    partner_code: Mapped[str] = mapped_column(String(30), primary_key=True)
    fno_confirmed: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    fno_late: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    fno_waiting: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    open: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    current_step: Mapped[str] = mapped_column(String(30), primary_key=True)
    at_risk: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (Index("ix_cancellation_journey_total_open", "open", "current_step", "partner_code", "reason_code", "at_risk"),)


# the clock-dependent counts of open journeys as index-only range scans: overdue (due before now), due today, the FNO's
# late ones, per step and filter; and the oldest open journey
_OPEN = text(f"state IN ({OPEN_SQL})")
CJ = CancellationJourney
DESK_INDEXES = (
    Index("ix_cancellation_journey_open_next_due", CJ.next_due_at, CJ.current_step, CJ.partner_code, CJ.reason_code, CJ.at_risk,
          postgresql_where=_OPEN, sqlite_where=_OPEN),
    Index("ix_cancellation_journey_open_created", CJ.created_at, postgresql_where=_OPEN, sqlite_where=_OPEN),
)


# --- the keys: the same expressions the reports and the board compare with ------------------------------------------

def _false(d: str) -> str:
    return "false" if d == "postgresql" else "0"


def _step_keys(p: str, d: str) -> list[tuple[str, str]]:
    day = f"CAST(({p}due_at AT TIME ZONE 'UTC') AS DATE)" if d == "postgresql" else f"date({p}due_at)"
    return [("due_date", day), ("code", f"{p}code"), ("state", f"{p}state"),
            ("late", f"COALESCE({p}state = 'done' AND {p}done_at > {p}due_at, {_false(d)})")]


def _journey_keys(p: str, d: str) -> list[tuple[str, str]]:
    month = f"CAST(date_trunc('month', {p}notice_date) AS DATE)" if d == "postgresql" else f"date({p}notice_date, 'start of month')"
    is_open = f"{p}state IN ({OPEN_SQL})"
    return [("month", month), ("kind", f"{p}kind"), ("reason_code", f"{p}reason_code"), ("retention_outcome", f"COALESCE({p}retention_outcome, '')"),
            ("partner_code", f"COALESCE({p}partner_code, '')"), ("fno_confirmed", f"{p}fno_confirmed_date IS NOT NULL"),
            ("fno_late", f"COALESCE({p}fno_confirmed_date > {p}fno_due_date, {_false(d)})"),
            ("fno_waiting", f"({p}fno_confirmed_date IS NULL AND {p}service_order_id IS NOT NULL AND {p}state = 'deactivation_sent')"),
            ("open", f"({is_open})"), ("current_step", f"COALESCE(CASE WHEN {is_open} THEN {p}current_step END, '')"),
            ("at_risk", f"COALESCE({is_open} AND {p}at_risk, {_false(d)})")]


# (totals table, source table, key expressions, which rows count, the source columns the keys read)
SPECS = (
    ("cancellation_step_total", "cancellation_step", _step_keys, "{p}due_at IS NOT NULL", ("code", "state", "due_at", "done_at")),
    ("cancellation_journey_total", "cancellation_journey", _journey_keys, "true",
     ("notice_date", "kind", "reason_code", "retention_outcome", "partner_code", "fno_confirmed_date", "fno_due_date", "service_order_id", "state",
      "current_step", "at_risk")),
)


def _pg_ddl(total: str, source: str, keys: Any, where: str) -> list[str]:
    names = [k for k, _ in keys("", "postgresql")]
    cols = ", ".join(names)

    def keyed(rows: str, sign: int) -> str:
        return (f"SELECT {', '.join(f'{e} AS {k}' for k, e in keys('', 'postgresql'))}, {sign} AS d FROM {rows} "
                f"WHERE {where.format(p='')}")

    def upsert(inner: str) -> str:
        # one row per key, in key order (two writers lock the same total rows in the same order); a row whose key did
        # not change cancels out (HAVING)
        return (f"INSERT INTO {total} AS t ({cols}, n) SELECT {cols}, SUM(d) FROM ({inner}) k GROUP BY {cols} HAVING SUM(d) <> 0 "
                f"ORDER BY {cols} ON CONFLICT ({cols}) DO UPDATE SET n = t.n + EXCLUDED.n")

    body = {"ins": upsert(keyed("new_rows", 1)), "del": upsert(keyed("old_rows", -1)),
            "upd": upsert(keyed("old_rows", -1) + " UNION ALL " + keyed("new_rows", 1))}
    tables = {"ins": "NEW TABLE AS new_rows", "del": "OLD TABLE AS old_rows", "upd": "OLD TABLE AS old_rows NEW TABLE AS new_rows"}
    ops = {"ins": "INSERT", "del": "DELETE", "upd": "UPDATE"}
    out = [f"CREATE OR REPLACE FUNCTION {total}_{op}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body[op]}; RETURN NULL; END $$" for op in ops]
    out += [f"CREATE TRIGGER {total}_{op} AFTER {ops[op]} ON {source} REFERENCING {tables[op]} FOR EACH STATEMENT EXECUTE FUNCTION {total}_{op}()"
            for op in ops]
    return out


def _sqlite_ddl(total: str, source: str, keys: Any, where: str, columns: tuple[str, ...]) -> list[str]:
    cols = ", ".join(k for k, _ in keys("", "sqlite"))

    def add(p: str, sign: int) -> str:
        # SQLite takes no table alias in a trigger's INSERT; the bare column is the existing row's
        return (f"INSERT INTO {total} ({cols}, n) SELECT {', '.join(e for _, e in keys(p, 'sqlite'))}, {sign} WHERE true "
                f"ON CONFLICT ({cols}) DO UPDATE SET n = n + excluded.n")

    changed = " OR ".join(f"{o} IS NOT {n}" for (_, o), (_, n) in zip(keys("OLD.", "sqlite"), keys("NEW.", "sqlite")))
    of = ", ".join(columns)
    return [
        f"CREATE TRIGGER IF NOT EXISTS {total}_ins AFTER INSERT ON {source} WHEN {where.format(p='NEW.')} BEGIN {add('NEW.', 1)}; END",
        f"CREATE TRIGGER IF NOT EXISTS {total}_del AFTER DELETE ON {source} WHEN {where.format(p='OLD.')} BEGIN {add('OLD.', -1)}; END",
        f"CREATE TRIGGER IF NOT EXISTS {total}_upd_old AFTER UPDATE OF {of} ON {source} WHEN {where.format(p='OLD.')} AND ({changed}) "
        f"BEGIN {add('OLD.', -1)}; END",
        f"CREATE TRIGGER IF NOT EXISTS {total}_upd_new AFTER UPDATE OF {of} ON {source} WHEN {where.format(p='NEW.')} AND ({changed}) "
        f"BEGIN {add('NEW.', 1)}; END",
    ]


def ddl(dialect: str) -> list[str]:
    """The triggers that keep every totals table, for one dialect."""
    out: list[str] = []
    for total, source, keys, where, columns in SPECS:
        out += _pg_ddl(total, source, keys, where) if dialect == "postgresql" else _sqlite_ddl(total, source, keys, where, columns) if dialect == "sqlite" else []
    return out


def drop_sql(dialect: str) -> list[str]:
    out: list[str] = []
    for total, source, *_ in SPECS:
        if dialect == "postgresql":
            out += [f"DROP TRIGGER IF EXISTS {total}_{op} ON {source}" for op in ("ins", "upd", "del")]
            out += [f"DROP FUNCTION IF EXISTS {total}_{op}()" for op in ("ins", "upd", "del")]
        else:
            out += [f"DROP TRIGGER IF EXISTS {total}_{op}" for op in ("ins", "del", "upd_old", "upd_new")]
    return out


def rebuild_sql(dialect: str) -> list[str]:
    """Recount every totals row from its source (the migration's backfill; also a repair): set-based."""
    out: list[str] = []
    for total, source, keys, where, _ in SPECS:
        exprs = [e for _, e in keys("", dialect)]
        out += [f"DELETE FROM {total}",
                f"INSERT INTO {total} ({', '.join(k for k, _ in keys('', dialect))}, n) SELECT {', '.join(exprs)}, COUNT(*) FROM {source} "
                f"WHERE {where.format(p='')} GROUP BY {', '.join(exprs)}"]
    return out


def attach_ddl(table: Table) -> None:
    """Create the triggers when the schema is built from the models (tests, fresh installs): after the last source
    table; the migration 0022 creates them on existing databases."""
    for dialect in ("sqlite", "postgresql"):
        for stmt in ddl(dialect):
            event.listen(table, "after_create", DDL(stmt.replace("%", "%%")).execute_if(dialect=dialect))


def rebuild(conn: Any) -> None:
    """Recount the totals from the steps and journeys in the caller's transaction (`conn`: a Connection or Session)."""
    dialect = conn.get_bind().dialect.name if hasattr(conn, "get_bind") else conn.dialect.name
    for stmt in rebuild_sql(dialect):
        conn.execute(text(stmt))


attach_ddl(CancellationStep.__table__)  # created after cancellation_journey (its foreign key)
