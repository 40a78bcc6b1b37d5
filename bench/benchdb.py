"""Shared by the benchmarks: a fresh, empty database with the whole schema (dropped and recreated, untimed)."""

from __future__ import annotations

import os

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

import opsline.models  # noqa: F401  (every table)
from opsline.db.base import metadata
from opsline.db.session import make_engine


def fresh_database(url: str) -> Engine:
    """Drop and recreate the PostgreSQL database (or delete the SQLite file) named by `url`, then create every table."""
    u = make_url(url)
    if u.get_backend_name() == "postgresql":
        admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
            c.execute(text(f'CREATE DATABASE "{u.database}"'))
        admin.dispose()
    elif u.database and os.path.exists(u.database):
        os.remove(u.database)
    engine = make_engine(url)
    metadata.create_all(engine)
    return engine
