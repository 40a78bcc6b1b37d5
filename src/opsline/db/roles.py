"""The application's own PostgreSQL role: migrations run as the schema owner; the web app and workers connect as a role
that reads and writes rows but holds no DDL, no TRUNCATE, and no UPDATE or DELETE on the append-only tables (the audit
log, memos, case and equipment histories), so even a compromised application cannot rewrite history.

`ensure_app_role` is idempotent: run it after every migration (new tables get the grants through default privileges;
new append-only tables lose UPDATE/DELETE when it runs again)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import Connection, text

ROW_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
SEQUENCE_PRIVILEGES = "USAGE, SELECT, UPDATE"
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class UnableToSetUpRole(ValueError):
    """The database or the role name cannot take an application role (SQLite, a bad name, the owner itself)."""


@dataclass
class RoleReport:
    role: str
    created: bool
    tables: int
    append_only: list[str] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)


def append_only_tables(conn: Connection, *, schema: str = "public") -> list[str]:
    """Tables whose rows the database refuses to change: they carry a trigger calling `<table>_append_only()`
    (db.base.append_only / append_only_sql), so the declaration in the models is the one source."""
    return list(conn.execute(text(
        "SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_proc p ON p.oid = t.tgfoid WHERE NOT t.tgisinternal AND n.nspname = :s AND p.proname LIKE '%\\_append\\_only' ORDER BY 1"),
        {"s": schema}).scalars())


def ensure_app_role(conn: Connection, *, role: str, password: str | None = None, schema: str = "public") -> RoleReport:
    """Create or update `role` (LOGIN) and set its grants on the current database, as the schema owner.
    Raises UnableToSetUpRole on SQLite, for a name that is not a plain lower-case identifier, or for the owner itself."""
    if conn.dialect.name != "postgresql":
        raise UnableToSetUpRole("application database roles are a PostgreSQL feature; SQLite has one file and no roles")
    if not _ROLE_NAME.match(role):
        raise UnableToSetUpRole(f"role name '{role}' must be lower-case letters, digits and _ (at most 63), starting with a letter")
    owner = conn.execute(text("SELECT current_user")).scalar_one()
    if role == owner:
        raise UnableToSetUpRole(f"'{role}' is the role running the migrations (the owner); choose another name for the application")
    database = conn.execute(text("SELECT current_database()")).scalar_one()
    exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first() is not None
    q_role, q_owner, q_db, q_schema = (conn.dialect.identifier_preparer.quote(x) for x in (role, owner, database, schema))
    report = RoleReport(role=role, created=not exists, tables=0)

    def run(sql: str, params: dict[str, str] | None = None) -> None:
        report.statements.append(sql)
        conn.execute(text(sql), params or {})

    # Role attributes: a plain login, never a superuser or able to create roles or databases.
    if not exists:
        run(f"CREATE ROLE {q_role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT")
    else:
        run(f"ALTER ROLE {q_role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT")
    if password:
        # The password is sent as a literal (ALTER ROLE takes no bind parameters); quote it the server's way.
        literal = conn.execute(text("SELECT quote_literal(:p)"), {"p": password}).scalar_one()
        conn.execute(text(f"ALTER ROLE {q_role} PASSWORD {literal}"))
        report.statements.append(f"ALTER ROLE {q_role} PASSWORD '***'")
    # Database and schema: connect and use temporary tables (batch jobs stage rows in them), create nothing.
    run(f"GRANT CONNECT, TEMPORARY ON DATABASE {q_db} TO {q_role}")
    run(f"REVOKE CREATE ON SCHEMA {q_schema} FROM PUBLIC")
    run(f"REVOKE CREATE ON SCHEMA {q_schema} FROM {q_role}")
    run(f"GRANT USAGE ON SCHEMA {q_schema} TO {q_role}")
    # Rows: start from nothing each time (so a privilege granted by hand is taken back), then rows only; no TRUNCATE,
    # REFERENCES or TRIGGER.
    run(f"REVOKE ALL ON ALL TABLES IN SCHEMA {q_schema} FROM {q_role}")
    run(f"GRANT {ROW_PRIVILEGES} ON ALL TABLES IN SCHEMA {q_schema} TO {q_role}")
    run(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {q_schema} FROM {q_role}")
    run(f"GRANT {SEQUENCE_PRIVILEGES} ON ALL SEQUENCES IN SCHEMA {q_schema} TO {q_role}")
    run(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {q_schema} TO {q_role}")
    # History is added to, never changed.
    report.append_only = append_only_tables(conn, schema=schema)
    import opsline.models  # noqa: F401  (every table's declaration, for its redactable column)
    from opsline.db.base import metadata

    for table in report.append_only:
        q_table = f"{q_schema}.{conn.dialect.identifier_preparer.quote(table)}"
        run(f"REVOKE UPDATE, DELETE ON {q_table} FROM {q_role}")
        declared = metadata.tables.get(table)
        redactable = declared.info.get("append_only_redactable") if declared is not None else None
        if redactable:  # a POPIA erasure may overwrite this one column (the trigger allows only a redaction marker)
            run(f"GRANT UPDATE ({conn.dialect.identifier_preparer.quote(redactable)}) ON {q_table} TO {q_role}")
    # Tables and sequences the owner creates later (the next migration) get the row grants without another run.
    run(f"ALTER DEFAULT PRIVILEGES FOR ROLE {q_owner} IN SCHEMA {q_schema} GRANT {ROW_PRIVILEGES} ON TABLES TO {q_role}")
    run(f"ALTER DEFAULT PRIVILEGES FOR ROLE {q_owner} IN SCHEMA {q_schema} GRANT {SEQUENCE_PRIVILEGES} ON SEQUENCES TO {q_role}")
    report.tables = conn.execute(text(
        "SELECT count(*) FROM information_schema.role_table_grants WHERE grantee = :r AND table_schema = :s AND privilege_type = 'INSERT'"),
        {"r": role, "s": schema}).scalar_one()
    return report
