"""Shared by the benchmarks: a fresh, empty database with the whole schema (dropped and recreated, untimed), a copy
of a prepared PostgreSQL database for one run, and dropping it afterwards."""

from __future__ import annotations

import os

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

import opsline.models  # noqa: F401  (every table)
from opsline.db.base import metadata
from opsline.db.session import make_engine


def admin_sql(url: str, *statements: str) -> None:
    """Run `statements` (CREATE / DROP DATABASE) on the PostgreSQL server of `url`, from its `postgres` database."""
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        for sql in statements:
            c.execute(text(sql))
    admin.dispose()


def drop_database(url: str) -> None:
    """Drop the PostgreSQL database named by `url` (sessions on it are ended)."""
    admin_sql(url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


def copy_database(url: str, suffix: str) -> str:
    """A copy of the PostgreSQL database of `url` named with `suffix` (CREATE DATABASE ... TEMPLATE: a file copy,
    seconds), replacing any earlier one; returns its URL."""
    u = make_url(url)
    copy = u.set(database=f"{u.database}{suffix}")
    admin_sql(url, f'DROP DATABASE IF EXISTS "{copy.database}" WITH (FORCE)', f'CREATE DATABASE "{copy.database}" TEMPLATE "{u.database}"')
    return copy.render_as_string(hide_password=False)


def fresh_database(url: str) -> Engine:
    """Drop and recreate the PostgreSQL database (or delete the SQLite file) named by `url`, then create every table."""
    u = make_url(url)
    if u.get_backend_name() == "postgresql":
        drop_database(url)
        admin_sql(url, f'CREATE DATABASE "{u.database}"')
    elif u.database and os.path.exists(u.database):
        os.remove(u.database)
    engine = make_engine(url)
    metadata.create_all(engine)
    return engine
