"""Alembic environment: batch mode for SQLite, metadata from every Opsline area."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

import opsline.models  # noqa: F401  (fills the metadata)
from opsline.db.base import metadata
from opsline.db.migrate import include_name, include_object

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_with(connection)
        return
    engine = engine_from_config(config.get_section(config.config_ini_section) or {}, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.begin() as conn:
        _run_with(conn)


def _run_with(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True,
                      include_name=include_name, include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()


run()
