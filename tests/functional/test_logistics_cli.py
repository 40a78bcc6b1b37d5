"""`opsline courier-run` and `opsline logistics-daily` from the command line: counts, the field named on bad input,
nothing booked by a dry run, the daily job scheduled once."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from conftest import NOW
from opsline.core.events import Actor
from opsline.core.jobs import Job, utc_now
from opsline.logistics.models import Collection

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from logistics_helpers import TZ, loaned_router, slot_at  # noqa: E402


def _weekday_slot_after(days: int = 2):  # type: ignore[no-untyped-def]
    at = utc_now() + timedelta(days=days)
    while at.astimezone(TZ).weekday() >= 5:
        at += timedelta(days=1)
    return slot_at(at)


def test_the_cli_books_a_courier_run_names_a_bad_slot_and_schedules_the_daily_job(engine, factory, monkeypatch):  # type: ignore[no-untyped-def]
    from opsline.cli import app
    from opsline.config import get_settings

    with factory.begin() as s:
        loaned_router(s, NOW, Actor(name="tester", roles=frozenset({"admin"})))
    monkeypatch.setenv("OPSLINE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    slot = _weekday_slot_after().isoformat()
    try:
        dry = CliRunner().invoke(app, ["courier-run", "--courier", "courierguy", "--slot", slot, "--dry-run"])
        bad = CliRunner().invoke(app, ["courier-run", "--courier", "courierguy", "--slot", slot.replace("T08:00", "T19:00")])
        real = CliRunner().invoke(app, ["courier-run", "--courier", "courierguy", "--slot", slot])
        daily = CliRunner().invoke(app, ["logistics-daily"])
        daily2 = CliRunner().invoke(app, ["logistics-daily"])
    finally:
        get_settings.cache_clear()
    assert dry.exit_code == 0 and "would book 1 collections, 1 devices" in dry.output, dry.output
    assert bad.exit_code == 2 and "--slot" in bad.output and "not one of The Courier Guy's collection" in " ".join(bad.output.split())
    assert real.exit_code == 0 and "booked 1 collections" in real.output
    assert daily.exit_code == 0 and "next run" in daily.output, daily.output
    assert daily2.exit_code == 0
    with factory() as s:
        assert s.execute(select(func.count()).select_from(Collection)).scalar_one() == 1
        assert s.execute(select(func.count()).select_from(Job).where(Job.kind == "logistics.daily")).scalar_one() == 1
