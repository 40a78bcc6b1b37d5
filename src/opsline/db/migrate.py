"""Run Alembic migrations programmatically (no alembic.ini needed): `opsline migrate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).parent / "migrations"
# Tables the database keeps for itself, outside the models: the account search index (an FTS5 virtual table and its
# shadow tables on SQLite, a trigger-maintained table on PostgreSQL). Schema comparison leaves them alone.
UNMANAGED_TABLE_PREFIXES = ("account_search",)


def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    """Alembic filter: compare everything except the unmanaged tables."""
    if type_ == "table" and name:
        return not name.startswith(UNMANAGED_TABLE_PREFIXES)
    return True


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_heads(engine: Engine) -> list[str]:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return list(MigrationContext.configure(conn).get_current_heads())
