"""The application's PostgreSQL role (db/roles.py, `opsline db-roles`): connected as it, the audit log and memos can be
added to but not truncated, updated or deleted, and no table can be created, altered or dropped; everyday work succeeds."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from opsline.db.roles import UnableToSetUpRole, append_only_tables, ensure_app_role




@pytest.fixture
def app_role(pg_engine, engine):  # type: ignore[no-untyped-def]
    """A fresh application role on the test database, with a password, dropped afterwards."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only (set OPSLINE_TEST_POSTGRES_URL)")
    name = f"opsline_app_{uuid.uuid4().hex[:8]}"
    with pg_engine.begin() as conn:
        report = ensure_app_role(conn, role=name, password="app-secret-123")
    url = pg_engine.url.set(username=name, password="app-secret-123")
    app_engine = create_engine(url)
    yield {"name": name, "engine": app_engine, "report": report}
    app_engine.dispose()
    with pg_engine.begin() as conn:
        conn.execute(text(f'DROP OWNED BY "{name}"'))
        conn.execute(text(f'DROP ROLE "{name}"'))


def _refused(engine, sql: str, params: dict | None = None) -> str:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        with pytest.raises(DBAPIError) as exc:
            conn.execute(text(sql), params or {})
        conn.rollback()
    return str(exc.value.orig)


def test_the_append_only_tables_come_from_their_triggers(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    with engine.connect() as conn:
        found = set(append_only_tables(conn))
    assert {"audit_event", "memo", "case_event", "equipment_event"} <= found


def test_the_app_role_cannot_truncate_update_or_delete_the_audit_log_and_memos(app_role, engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    app = app_role["engine"]
    for table in ("audit_event", "memo", "case_event"):
        assert "permission denied" in _refused(app, f"TRUNCATE {table}")
        assert "permission denied" in _refused(app, f"UPDATE {table} SET id = id")
        assert "permission denied" in _refused(app, f"DELETE FROM {table}")


def test_the_app_role_can_create_no_table_and_alter_or_drop_none(app_role, engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    app = app_role["engine"]
    assert "permission denied" in _refused(app, "CREATE TABLE sneaky (id int)")
    assert "must be owner" in _refused(app, "DROP TABLE audit_event")
    assert "must be owner" in _refused(app, "ALTER TABLE account ADD COLUMN sneaky int")
    assert "must be owner" in _refused(app, "DROP TRIGGER audit_event_no_change ON audit_event")
    assert "permission denied" in _refused(app, "TRUNCATE account CASCADE")


def test_the_app_role_does_everyday_work_adds_audit_events_and_memos_and_takes_sequence_numbers(app_role, engine, now):
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    from opsline.core.events import Actor
    from opsline.customers import service
    from opsline.customers.schemas import AccountIn, AccountUpdate, MemoIn
    from opsline.db.session import make_sessionmaker

    actor = Actor(name="clerk", roles=frozenset({"admin"}))
    with make_sessionmaker(app_role["engine"]).begin() as s:
        acc = service.create_account(s, data=AccountIn(name="Role Test"), now=now, actor=actor)  # account number from the sequence
        service.update_account(s, account_id=acc.id, data=AccountUpdate(version=acc.version, name="Role Test 2"), now=now, actor=actor)
        service.add_memo(s, account_id=acc.id, data=MemoIn(body="called the customer"), now=now, actor=actor)
        s.execute(text("CREATE TEMP TABLE stage (id bigint) ON COMMIT DROP"))  # batch jobs stage rows this way
        acc_id = acc.id
    with app_role["engine"].connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_event WHERE account_id = :a"), {"a": acc_id}).scalar_one() >= 2
        assert conn.execute(text("SELECT body FROM memo WHERE account_id = :a"), {"a": acc_id}).scalar_one() == "called the customer"
    with app_role["engine"].begin() as conn:  # the one change a memo may take: its body redacted (POPIA erasure)
        conn.execute(text("UPDATE memo SET body = '[erased under privacy request 1]' WHERE account_id = :a"), {"a": acc_id})
    assert "never edited" in _refused(app_role["engine"], "UPDATE memo SET body = 'rewritten' WHERE account_id = :a", {"a": acc_id})
    assert "permission denied" in _refused(app_role["engine"], "UPDATE memo SET author = 'x' WHERE account_id = :a", {"a": acc_id})


def test_setting_up_the_role_twice_changes_nothing_and_takes_back_a_privilege_granted_by_hand(app_role, pg_engine, engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    name = app_role["name"]
    with pg_engine.begin() as conn:
        conn.execute(text(f'GRANT TRUNCATE, UPDATE ON audit_event TO "{name}"'))
        again = ensure_app_role(conn, role=name)
    assert not again.created and again.tables == app_role["report"].tables > 50
    assert "permission denied" in _refused(app_role["engine"], "TRUNCATE audit_event")


def test_a_table_created_by_a_later_migration_is_usable_by_the_app_role_without_another_run(app_role, pg_engine, engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    with pg_engine.begin() as conn:
        conn.execute(text("CREATE TABLE later_table (id bigserial PRIMARY KEY, v text)"))
    try:
        with app_role["engine"].begin() as conn:
            conn.execute(text("INSERT INTO later_table (v) VALUES ('x')"))
            assert conn.execute(text("SELECT count(*) FROM later_table")).scalar_one() == 1
        assert "permission denied" in _refused(app_role["engine"], "TRUNCATE later_table")
    finally:
        with pg_engine.begin() as conn:
            conn.execute(text("DROP TABLE later_table"))


def test_a_bad_role_name_or_the_owner_itself_is_refused_with_a_clear_message(pg_engine, engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    with pg_engine.connect() as conn:
        for bad, words in (("Robert'); DROP TABLE x;--", "lower-case"), (conn.execute(text("SELECT current_user")).scalar_one(), "owner")):
            with pytest.raises(UnableToSetUpRole, match=words):
                ensure_app_role(conn, role=bad)
        conn.rollback()


def test_sqlite_has_no_roles_and_says_so(engine):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    with engine.connect() as conn:
        with pytest.raises(UnableToSetUpRole, match="PostgreSQL"):
            ensure_app_role(conn, role="opsline_app")
