"""Monthly partitioning on PostgreSQL (issue 13): usage_record by started_at and audit_event by occurred_at

Each table becomes a declarative RANGE-partitioned table with one partition per calendar month (UTC) that holds rows,
the current and the next two months, and a DEFAULT partition that catches anything else. The primary key becomes
(id, <partition key>), as PostgreSQL requires; ids still come from the table's own sequence, so they stay unique.
usage_record's unique external_id cannot be a unique index on a partitioned table (it would have to include started_at),
so a trigger keeps it in `usage_record_external_id` (an ordinary table whose primary key enforces it, also under
concurrent imports). The append-only trigger, the foreign keys, the indexes and any grants are carried over.
`opsline_ensure_month_partitions()` (SECURITY DEFINER, owned by the migrating role) creates a month's partition ahead of
time for the periodic job run by the application's role, which has no DDL rights; rows already in the DEFAULT partition
for that month are moved into it. SQLite: nothing to do.

Revision ID: 0027_partitioning
Revises: 0026_revenue_assurance
"""
from datetime import date

from alembic import op
import sqlalchemy as sa
import opsline.db.base  # noqa: F401

revision = '0027_partitioning'
down_revision = '0026_revenue_assurance'
branch_labels = None
depends_on = None

# table -> partition key
PARTITIONED = {"usage_record": "started_at", "audit_event": "occurred_at"}

ENSURE_FUNCTION = r"""
CREATE OR REPLACE FUNCTION opsline_ensure_month_partitions(tbl text, first_month date, months integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
DECLARE
    keycol text;
    m date;
    part text;
    dflt text := tbl || '_default';
    created integer := 0;
    moved bigint;
BEGIN
    keycol := CASE tbl WHEN 'usage_record' THEN 'started_at' WHEN 'audit_event' THEN 'occurred_at' END;
    IF keycol IS NULL THEN
        RAISE EXCEPTION 'opsline_ensure_month_partitions: % is not a partitioned table', tbl;
    END IF;
    IF months < 1 OR months > 36 THEN
        RAISE EXCEPTION 'opsline_ensure_month_partitions: months must be 1..36';
    END IF;
    FOR i IN 0 .. months - 1 LOOP
        m := (date_trunc('month', first_month) + make_interval(months => i))::date;
        part := format('%s_y%sm%s', tbl, to_char(m, 'YYYY'), to_char(m, 'MM'));
        CONTINUE WHEN to_regclass(part) IS NOT NULL;
        -- rows that arrived early sit in the default partition: move them into the new month's own table first
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part, tbl);
        EXECUTE format('ALTER TABLE %I DISABLE TRIGGER USER', dflt);
        EXECUTE format('WITH gone AS (DELETE FROM %I WHERE %I >= %L::timestamptz AND %I < %L::timestamptz RETURNING *) INSERT INTO %I SELECT * FROM gone',
                       dflt, keycol, m::text || ' 00:00+00', keycol, (m + interval '1 month')::date::text || ' 00:00+00', part);
        GET DIAGNOSTICS moved = ROW_COUNT;
        EXECUTE format('ALTER TABLE %I ENABLE TRIGGER USER', dflt);
        EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', tbl, part,
                       m::text || ' 00:00+00', (m + interval '1 month')::date::text || ' 00:00+00');
        created := created + 1;
    END LOOP;
    RETURN created;
END
$fn$
"""

# Set-based: one INSERT ... SELECT per statement from its transition table (a row trigger would double the cost of a
# usage import's COPY); a changed external id (nothing in Opsline changes one) is handled row by row.
EXTERNAL_ID_TRIGGERS = [r"""
CREATE OR REPLACE FUNCTION usage_record_external_id_added() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
BEGIN
    -- the primary key refuses a second row with the same external id (unique_violation, as the unique index did)
    INSERT INTO usage_record_external_id (external_id) SELECT external_id FROM added;
    RETURN NULL;
END
$fn$
""", r"""
CREATE OR REPLACE FUNCTION usage_record_external_id_removed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
BEGIN
    DELETE FROM usage_record_external_id k USING removed r WHERE k.external_id = r.external_id;
    RETURN NULL;
END
$fn$
""", r"""
CREATE OR REPLACE FUNCTION usage_record_external_id_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
BEGIN
    IF NEW.external_id IS DISTINCT FROM OLD.external_id THEN
        DELETE FROM usage_record_external_id WHERE external_id = OLD.external_id;
        INSERT INTO usage_record_external_id (external_id) VALUES (NEW.external_id);
    END IF;
    RETURN NEW;
END
$fn$
""",
    "CREATE TRIGGER usage_record_external_id_added AFTER INSERT ON usage_record REFERENCING NEW TABLE AS added "
    "FOR EACH STATEMENT EXECUTE FUNCTION usage_record_external_id_added()",
    "CREATE TRIGGER usage_record_external_id_removed AFTER DELETE ON usage_record REFERENCING OLD TABLE AS removed "
    "FOR EACH STATEMENT EXECUTE FUNCTION usage_record_external_id_removed()",
    "CREATE TRIGGER usage_record_external_id_changed BEFORE UPDATE OF external_id ON usage_record "
    "FOR EACH ROW EXECUTE FUNCTION usage_record_external_id_changed()",
]
EXTERNAL_ID_FUNCTIONS = ("usage_record_external_id_added", "usage_record_external_id_removed", "usage_record_external_id_changed")


def _q(bind, sql: str, **params):  # type: ignore[no-untyped-def]
    return bind.execute(sa.text(sql), params)


def _grants(bind, table: str) -> list[str]:  # type: ignore[no-untyped-def]
    """GRANT statements that give back what other roles hold on `table` (table-wide and per column)."""
    who = lambda g: "PUBLIC" if g == "PUBLIC" else f'"{g}"'  # noqa: E731
    whole = {(g, p) for g, p in _q(bind, """SELECT grantee, privilege_type FROM information_schema.role_table_grants
                                            WHERE table_schema = 'public' AND table_name = :t AND grantee <> current_user""", t=table)}
    out = [f"GRANT {p} ON {table} TO {who(g)}" for g, p in sorted(whole)]
    for g, p, col in _q(bind, """SELECT grantee, privilege_type, column_name FROM information_schema.column_privileges
                                WHERE table_schema = 'public' AND table_name = :t AND grantee <> current_user ORDER BY 1, 2, 3""", t=table):
        if (g, p) not in whole:
            out.append(f'GRANT {p} ("{col}") ON {table} TO {who(g)}')
    return out


def _partition(bind, table: str, key: str) -> None:  # type: ignore[no-untyped-def]
    oid = f"'public.{table}'::regclass"
    if _q(bind, f"SELECT relkind FROM pg_class WHERE oid = {oid}").scalar() == "p":
        return  # already partitioned
    # what the table carries today, replayed on the partitioned table (index and constraint names are then free again)
    indexes = list(_q(bind, f"""SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
                                WHERE i.indrelid = {oid} AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)""").scalars())
    fks = list(_q(bind, f"SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = {oid} AND contype = 'f'").all())
    uniques = list(_q(bind, f"SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = {oid} AND contype = 'u'").all())
    pk = _q(bind, f"SELECT conname FROM pg_constraint WHERE conrelid = {oid} AND contype = 'p'").scalar()
    triggers = list(_q(bind, f"SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = {oid} AND NOT tgisinternal").scalars())
    grants = _grants(bind, table)
    seq = _q(bind, "SELECT pg_get_serial_sequence(:t, 'id')", t=table).scalar()

    new = f"{table}__partitioned"
    _q(bind, f"CREATE TABLE {new} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE) PARTITION BY RANGE ({key})")
    _q(bind, f"CREATE TABLE {table}_default PARTITION OF {new} DEFAULT")
    months = [r[0] for r in _q(bind, f"""SELECT DISTINCT date_trunc('month', {key} AT TIME ZONE 'UTC')::date FROM {table}
                                         UNION SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => g))::date
                                         FROM generate_series(0, 2) g ORDER BY 1""")]
    for m in months:
        nxt = date(m.year + m.month // 12, m.month % 12 + 1, 1)
        _q(bind, f"CREATE TABLE {table}_y{m:%Y}m{m:%m} PARTITION OF {new} FOR VALUES FROM ('{m.isoformat()} 00:00+00') TO ('{nxt.isoformat()} 00:00+00')")
    _q(bind, f"INSERT INTO {new} SELECT * FROM {table}")
    if seq:
        _q(bind, f"ALTER SEQUENCE {seq} OWNED BY NONE")
    _q(bind, f"DROP TABLE {table}")
    _q(bind, f"ALTER TABLE {new} RENAME TO {table}")
    if seq:
        _q(bind, f"ALTER SEQUENCE {seq} OWNED BY {table}.id")
    _q(bind, f"ALTER TABLE {table} ADD CONSTRAINT {pk or 'pk_' + table} PRIMARY KEY (id, {key})")
    for name, definition in fks:
        _q(bind, f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    for definition in indexes:
        _q(bind, definition)
    for definition in triggers:
        _q(bind, definition)
    for grant in grants:
        _q(bind, grant)
    for name, definition in uniques:
        if table == "usage_record" and name.endswith("external_id"):
            _external_id_guard(bind)
        else:  # a unique constraint that includes the partition key carries over as it is
            _q(bind, f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition[:-1]}, {key})" if key not in definition else
               f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")


def _external_id_guard(bind) -> None:  # type: ignore[no-untyped-def]
    _q(bind, "CREATE TABLE usage_record_external_id (external_id VARCHAR(120) NOT NULL, CONSTRAINT pk_usage_record_external_id PRIMARY KEY (external_id))")
    _q(bind, "INSERT INTO usage_record_external_id (external_id) SELECT external_id FROM usage_record")
    _q(bind, "CREATE INDEX ix_usage_record_external_id ON usage_record (external_id)")
    for stmt in EXTERNAL_ID_TRIGGERS:
        _q(bind, stmt)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table, key in PARTITIONED.items():
        _partition(bind, table, key)
    _q(bind, ENSURE_FUNCTION)


def _unpartition(bind, table: str, key: str) -> None:  # type: ignore[no-untyped-def]
    oid = f"'public.{table}'::regclass"
    if _q(bind, f"SELECT relkind FROM pg_class WHERE oid = {oid}").scalar() != "p":
        return
    indexes = list(_q(bind, f"""SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
                                WHERE i.indrelid = {oid} AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
                                AND pg_get_indexdef(i.indexrelid) NOT LIKE '%ix_usage_record_external_id%'""").scalars())
    fks = list(_q(bind, f"SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = {oid} AND contype = 'f'").all())
    triggers = list(_q(bind, f"""SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = {oid} AND NOT tgisinternal
                                 AND tgname NOT LIKE 'usage_record_external_id_%'""").scalars())
    grants = _grants(bind, table)
    seq = _q(bind, "SELECT pg_get_serial_sequence(:t, 'id')", t=table).scalar()
    new = f"{table}__plain"
    _q(bind, f"CREATE TABLE {new} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)")
    _q(bind, f"INSERT INTO {new} SELECT * FROM {table}")
    if seq:
        _q(bind, f"ALTER SEQUENCE {seq} OWNED BY NONE")
    _q(bind, f"DROP TABLE {table}")  # drops every partition with it
    _q(bind, f"ALTER TABLE {new} RENAME TO {table}")
    if seq:
        _q(bind, f"ALTER SEQUENCE {seq} OWNED BY {table}.id")
    _q(bind, f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY (id)")
    for name, definition in fks:
        _q(bind, f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    for definition in indexes:
        _q(bind, definition)
    for definition in triggers:
        _q(bind, definition)
    for grant in grants:
        _q(bind, grant)
    if table == "usage_record":
        _q(bind, "DROP TABLE IF EXISTS usage_record_external_id")
        for fn in EXTERNAL_ID_FUNCTIONS:
            _q(bind, f"DROP FUNCTION IF EXISTS {fn}()")
        _q(bind, "ALTER TABLE usage_record ADD CONSTRAINT uq_usage_record_external_id UNIQUE (external_id)")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    _q(bind, "DROP FUNCTION IF EXISTS opsline_ensure_month_partitions(text, date, integer)")
    for table, key in PARTITIONED.items():
        _unpartition(bind, table, key)
