"""Backup and restore. SQLite through its online backup API (a consistent snapshot while the app keeps running),
PostgreSQL through pg_dump/pg_restore from an exported snapshot. Every backup carries a manifest (row counts per
table, a digest of the whole audit log, the schema revision), taken from the same snapshot, that restore checks
before it reports success: a restore that lost a row or changed an audit event fails loudly."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import Connection, Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url

from opsline.core.errors import OpslineError

MANIFEST_SUFFIX = ".manifest.json"
AUDIT_COLUMNS = "id, occurred_at, actor, entity_type, entity_id, account_id, action, reason, before, after"


class UnableToBackup(OpslineError):
    title = "Unable to back up"
    type_slug = "unable-to-backup"


class UnableToRestore(OpslineError):
    title = "Unable to restore"
    type_slug = "unable-to-restore"


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + MANIFEST_SUFFIX)


def _canonical(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def audit_digest(conn: Connection) -> str:
    """SHA-256 over every audit event in id order (JSON before/after compared as data, not text)."""
    h = hashlib.sha256()
    rows = conn.execution_options(stream_results=True, yield_per=10_000).execute(text(f"SELECT {AUDIT_COLUMNS} FROM audit_event ORDER BY id"))
    for row in rows:
        h.update(json.dumps([_canonical(v) for v in row], sort_keys=True, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()


def take_manifest(conn: Connection, *, now: datetime) -> dict[str, Any]:
    """Row counts per table, the audit digest and the schema revision, as `conn` sees the database."""
    names = sorted(inspect(conn).get_table_names())
    counts = {t: int(conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()) for t in names}
    revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar() if "alembic_version" in names else None
    return {"dialect": conn.dialect.name, "taken_at": now.isoformat(), "revision": revision, "tables": counts,
            "audit_events": counts.get("audit_event", 0), "audit_digest": audit_digest(conn) if "audit_event" in names else None}


def _libpq_url(engine_or_url: Engine | str) -> str:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _run(cmd: list[str], *, error: type[OpslineError]) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
    except FileNotFoundError:
        raise error(f"{cmd[0]} is not installed (Debian: apt-get install postgresql-client)", field="database_url") from None
    if done.returncode != 0:
        raise error(f"{cmd[0]} failed: {done.stderr.strip()[-2000:]}", field="database_url")


def _sqlite_file(url: Any) -> Path:
    if not url.database or url.database == ":memory:":
        raise UnableToBackup("an in-memory SQLite database cannot be backed up or restored", field="database_url")
    return Path(url.database)


def backup(engine: Engine, path: Path, *, now: datetime, force: bool = False, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Write a backup of the database behind `engine` to `path` and its manifest beside it; returns the manifest.
    Raises UnableToBackup (file exists without `force`, pg_dump missing or failing)."""
    path = Path(path)
    if path.exists() and not force:
        raise UnableToBackup(f"{path} already exists (use --force to overwrite it)", field="file")
    if not path.parent.exists():
        raise UnableToBackup(f"folder {path.parent} does not exist", field="file")
    if engine.dialect.name == "sqlite":
        _sqlite_file(engine.url)
        tmp = path.with_name(path.name + ".partial")
        tmp.unlink(missing_ok=True)
        raw = engine.raw_connection()
        try:
            dst = sqlite3.connect(tmp)
            try:
                raw.driver_connection.backup(dst, pages=4096, progress=(lambda _s, left, total: progress(total - left, total)) if progress else None)
            finally:
                dst.close()
        finally:
            raw.close()
        snap = create_engine(f"sqlite:///{tmp}")
        try:
            with snap.connect() as conn:
                man = take_manifest(conn, now=now)
        finally:
            snap.dispose()
        os.replace(tmp, path)
    elif engine.dialect.name == "postgresql":
        # One snapshot for the manifest and the dump: what the manifest counts is exactly what pg_dump writes.
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            with conn.begin():
                snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                man = take_manifest(conn, now=now)
                _run(["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--snapshot={snapshot}", f"--file={path}",
                      f"--dbname={_libpq_url(engine)}"], error=UnableToBackup)
    else:
        raise UnableToBackup(f"backups of {engine.dialect.name} are not supported", field="database_url")
    man["file"] = path.name
    man["size_bytes"] = path.stat().st_size
    manifest_path(path).write_text(json.dumps(man, indent=2, sort_keys=True))
    return man


def read_manifest(path: Path) -> dict[str, Any]:
    mp = manifest_path(Path(path))
    if not Path(path).exists():
        raise UnableToRestore(f"{path} does not exist", field="file")
    if not mp.exists():
        raise UnableToRestore(f"{mp} is missing: restore needs the manifest written beside the backup", field="file")
    try:
        man = json.loads(mp.read_text())
    except ValueError as exc:
        raise UnableToRestore(f"{mp} is not a valid manifest: {exc}", field="file") from None
    if not isinstance(man, dict) or not isinstance(man.get("tables"), dict):
        raise UnableToRestore(f"{mp} is not a valid manifest (no table counts)", field="file")
    return man


def compare(expected: dict[str, Any], found: dict[str, Any]) -> list[str]:
    """What differs between the manifest of a backup and what a restore holds (empty: identical)."""
    problems = [f"table {t}: {n} rows in the backup, {found['tables'].get(t)} restored" for t, n in sorted(expected["tables"].items())
                if found["tables"].get(t) != n]
    if expected.get("audit_digest") != found.get("audit_digest"):
        problems.append("the audit log differs from the backup's (digest mismatch)")
    if expected.get("revision") != found.get("revision"):
        problems.append(f"schema revision {found.get('revision')} restored, {expected.get('revision')} in the backup")
    return problems


def restore(database_url: str, path: Path, *, now: datetime, force: bool = False) -> dict[str, Any]:
    """Restore the backup at `path` into `database_url` (SQLite file or an existing PostgreSQL database) and check it
    against the backup's manifest. Raises UnableToRestore (wrong kind of backup, a target holding data without
    `force`, pg_restore failing, or the restored data not matching the manifest)."""
    path = Path(path)
    man = read_manifest(path)
    url = make_url(database_url)
    dialect = "sqlite" if url.drivername.startswith("sqlite") else "postgresql" if url.drivername.startswith("postgresql") else url.drivername
    if dialect != man.get("dialect"):
        raise UnableToRestore(f"{path.name} is a {man.get('dialect')} backup; the target is {dialect}", field="database_url")
    if dialect == "sqlite":
        target = _sqlite_file(url)
        if target.exists() and target.stat().st_size > 0 and not force:
            raise UnableToRestore(f"{target} already exists (use --force to replace it)", field="database_url")
        for extra in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
            extra.unlink(missing_ok=True)
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(target)
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
        engine = create_engine(f"sqlite:///{target}")
    else:
        engine = create_engine(url)
        with engine.connect() as conn:
            holds = [t for t in inspect(conn).get_table_names() if t != "alembic_version"]
        if holds and not force:
            engine.dispose()
            raise UnableToRestore(f"database {url.database} already holds {len(holds)} tables (use --force to replace them)", field="database_url")
        if holds:
            with engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        _run(["pg_restore", "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error", f"--dbname={_libpq_url(database_url)}", str(path)],
             error=UnableToRestore)
    try:
        with engine.connect() as conn:
            found = take_manifest(conn, now=now)
    finally:
        engine.dispose()
    problems = compare(man, found)
    if problems:
        raise UnableToRestore("the restored database does not match the backup: " + "; ".join(problems[:10]), field="file",
                              extra={"problems": problems})
    return found
