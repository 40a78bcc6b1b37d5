"""Run Alembic migrations programmatically (no alembic.ini needed): `opsline migrate`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).parent / "migrations"
# Tables the database keeps for itself, outside the models: the account search index (an FTS5 virtual table and its
# shadow tables on SQLite, a trigger-maintained table on PostgreSQL). Schema comparison leaves them alone.
UNMANAGED_TABLE_PREFIXES = ("account_search",)


# Migration 0027 partitions usage_record and audit_event by month on PostgreSQL: the partitions, and the guard table and
# plain index that stand in for usage_record's unique external_id (a partitioned table cannot have a unique index without
# its partition key), are not in the models.
PARTITION_TABLES = re.compile(r"^(usage_record|audit_event)_(y\d{4}m\d{2}|default|external_id)$")
PARTITION_REPLACED = {"uq_usage_record_external_id", "ix_usage_record_external_id"}


def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    """Alembic filter: compare everything except the unmanaged tables (and what monthly partitioning replaces)."""
    if type_ == "table" and name:
        return not name.startswith(UNMANAGED_TABLE_PREFIXES) and not PARTITION_TABLES.match(name)
    if type_ in ("index", "unique_constraint") and name in PARTITION_REPLACED:
        return False
    return True


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic filter for the models' side: usage_record's unique external_id is enforced by a guard table on a
    partitioned PostgreSQL database (migration 0027), so its absence as a constraint there is not a difference."""
    return not (type_ == "unique_constraint" and name in PARTITION_REPLACED and compare_to is None)


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
