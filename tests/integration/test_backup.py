"""Backup and restore (issue 13 item 5): a restore holds every row and the audit log exactly as backed up, and refuses
a damaged backup, a backup of the other kind of database, or a target that already holds data."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from opsline.core import events
from opsline.core.events import Actor, AuditEvent
from opsline.customers import service as customers
from opsline.customers.schemas import AccountIn
from opsline.db.backup import UnableToRestore, backup, manifest_path, restore


def _some_data(factory, now) -> None:  # type: ignore[no-untyped-def]
    actor = Actor(name="backup-test", roles=frozenset({"admin"}))
    with factory.begin() as s:
        for k in range(3):
            customers.create_account(s, data=AccountIn(name=f"Naledi {k} Dube", email=f"n{k}@example.com"), now=now, actor=actor)
        events.record(s, now=now, actor=actor, entity_type="test", entity_id="1", action="noted", reason="ünïcode ✓", after={"b": 1, "a": [1, 2]})


@pytest.fixture
def target_url(engine, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """An empty database of the same kind to restore into."""
    if engine.dialect.name == "sqlite":
        yield f"sqlite:///{tmp_path / 'restored.db'}"
        return
    url = make_url(engine.url.render_as_string(hide_password=False))
    name = f"{url.database}_restore"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_a_restore_holds_every_row_and_the_same_audit_log_as_the_backup(engine, factory, now, tmp_path, target_url):
    _some_data(factory, now)
    file = tmp_path / "opsline.backup"
    man = backup(engine, file, now=now)
    assert manifest_path(file).exists() and man["tables"]["account"] == 3 and man["audit_events"] >= 7
    found = restore(target_url, file, now=now)
    assert found["tables"] == man["tables"] and found["audit_digest"] == man["audit_digest"]
    restored = create_engine(target_url)
    try:
        with restored.connect() as c:
            names = sorted(c.execute(text("SELECT name FROM account ORDER BY name")).scalars())
            note = c.execute(select(AuditEvent.reason).where(AuditEvent.action == "noted")).scalar_one()
    finally:
        restored.dispose()
    assert names == ["Naledi 0 Dube", "Naledi 1 Dube", "Naledi 2 Dube"] and note == "ünïcode ✓"


def test_restore_refuses_a_target_that_holds_data_unless_forced(engine, factory, now, tmp_path, target_url):
    _some_data(factory, now)
    file = tmp_path / "opsline.backup"
    backup(engine, file, now=now)
    restore(target_url, file, now=now)
    with pytest.raises(UnableToRestore) as exc:
        restore(target_url, file, now=now)
    assert exc.value.field == "database_url" and "--force" in exc.value.detail
    assert restore(target_url, file, now=now, force=True)["tables"]["account"] == 3


def test_a_backup_whose_audit_log_was_changed_is_refused_by_the_manifest_check(engine, factory, now, tmp_path, target_url):
    _some_data(factory, now)
    file = tmp_path / "opsline.backup"
    man = backup(engine, file, now=now)
    man["audit_digest"] = "0" * 64
    man["tables"]["account"] = 4
    manifest_path(file).write_text(json.dumps(man))
    with pytest.raises(UnableToRestore) as exc:
        restore(target_url, file, now=now)
    assert "table account: 4 rows in the backup, 3 restored" in exc.value.detail and "audit log differs" in exc.value.detail


def test_restore_names_the_problem_with_a_missing_manifest_or_the_wrong_kind_of_backup(engine, factory, now, tmp_path, target_url):
    file = tmp_path / "opsline.backup"
    backup(engine, file, now=now)
    other = "postgresql+psycopg://nobody@127.0.0.1:1/x" if engine.dialect.name == "sqlite" else f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(UnableToRestore, match="backup; the target is"):
        restore(other, file, now=now)
    manifest_path(file).unlink()
    with pytest.raises(UnableToRestore, match="manifest"):
        restore(target_url, file, now=now)
    with pytest.raises(UnableToRestore, match="does not exist"):
        restore(target_url, tmp_path / "nothing.backup", now=now)


def test_backup_never_overwrites_a_file_unless_forced(engine, now, tmp_path):
    file = tmp_path / "opsline.backup"
    file.write_bytes(b"precious")
    from opsline.db.backup import UnableToBackup

    with pytest.raises(UnableToBackup, match="already exists"):
        backup(engine, file, now=now)
    assert file.read_bytes() == b"precious"
    backup(engine, file, now=now, force=True)
    if engine.dialect.name == "sqlite":
        assert sqlite3.connect(file).execute("SELECT count(*) FROM audit_event").fetchone() is not None


def test_the_cli_backs_up_and_restores_with_a_clear_message(engine, factory, now, tmp_path, target_url, monkeypatch):
    from opsline.cli import app
    from opsline.config import get_settings

    _some_data(factory, now)
    file = tmp_path / "cli.backup"
    monkeypatch.setenv("OPSLINE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        made = CliRunner().invoke(app, ["backup", str(file)])
        again = CliRunner().invoke(app, ["backup", str(file)])
        monkeypatch.setenv("OPSLINE_DATABASE_URL", target_url)
        get_settings.cache_clear()
        back = CliRunner().invoke(app, ["restore", str(file)])
    finally:
        get_settings.cache_clear()
    assert made.exit_code == 0, made.output
    assert "backed up" in made.output and "audit events" in made.output
    said = "".join(again.output.split())  # the console wraps long paths anywhere, even inside a word
    assert again.exit_code == 2 and "cli.backupalreadyexists" in said
    assert back.exit_code == 0, back.output
    assert "restored and verified" in back.output
