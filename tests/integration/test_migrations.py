"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

import os

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

import opsline.models  # noqa: F401
from opsline.db.base import metadata
from opsline.db.migrate import include_name, include_object, upgrade
from opsline.db.session import make_engine


def _diff(engine) -> list:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False, "render_as_batch": True, "include_name": include_name,
                                                 "include_object": include_object})
        return compare_metadata(ctx, metadata)


def test_migrations_on_sqlite_match_the_models_and_keep_memos_append_only(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine)
    assert _diff(engine) == []
    names = {r[0] for r in engine.connect().execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))}
    assert {"memo_no_update", "audit_event_no_delete"} <= names
    engine.dispose()


def test_migrations_on_postgresql_match_the_models():
    url = os.environ.get("OPSLINE_TEST_POSTGRES_URL")
    if not url:
        import pytest

        pytest.skip("OPSLINE_TEST_POSTGRES_URL not set")
    u = make_url(url)
    name = f"{u.database}_mig_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(u.set(database=name).render_as_string(hide_password=False))
    try:
        upgrade(engine)
        assert _diff(engine) == []
        assert "audit_event" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
