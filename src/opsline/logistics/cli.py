"""CLI: `opsline logistics-daily` (warnings, fees, FNO claims, clean-up checks for today; schedules the daily job) and
`opsline courier-run` (book one courier run for every device awaiting return)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("logistics-daily")
    def logistics_daily() -> None:
        """Run today's unreturned-equipment warnings and fees, FNO claims and clean-up checks, and schedule the daily job."""
        from opsline.cli import _engine, console
        from opsline.config import get_settings
        from opsline.core.jobs import utc_now
        from opsline.core.localtime import zone
        from opsline.db.session import make_sessionmaker
        from opsline.logistics import daily

        tz = zone(get_settings().timezone)
        now = utc_now()
        with make_sessionmaker(_engine()).begin() as s:
            out = daily.run_daily(s, now=now, tz=tz)
            at = daily.schedule(s, now=now, tz=tz)
        console.print(f"fees: {out['fees']}; claims proposed: {out['claims']['proposed']}; checks: {out['checks']}; next run {at.isoformat()}")

    @app.command("courier-run")
    def courier_run(courier: Annotated[str, typer.Option(help="courier partner code")], slot: Annotated[str, typer.Option(help="slot start, ISO with offset, e.g. 2026-12-02T08:00+02:00")],
                    city: Annotated[str, typer.Option(help="only devices at sites in this city")] = "",
                    dry_run: Annotated[bool, typer.Option(help="count only")] = False) -> None:
        """Book one courier run: every device awaiting return with no collection, up to the slot's free capacity."""
        from opsline.cli import _engine, console, fail
        from opsline.config import get_settings
        from opsline.core.errors import OpslineError
        from opsline.core.events import Actor
        from opsline.core.jobs import utc_now
        from opsline.core.localtime import zone
        from opsline.db.session import make_sessionmaker
        from opsline.logistics import service

        tz = zone(get_settings().timezone)
        try:
            start = datetime.fromisoformat(slot)
        except ValueError:
            fail(f"--slot: '{slot}' is not an ISO date and time")
            return
        if start.tzinfo is None:
            start = start.replace(tzinfo=tz)
        try:
            with make_sessionmaker(_engine()).begin() as s:
                out = service.book_courier_run(s, courier_code=courier, slot_start=start, now=utc_now(), actor=Actor.system("cli"), tz=tz,
                                               city=city or None, dry_run=dry_run)
        except OpslineError as exc:
            fail(f"--{(exc.field or 'slot').replace('_start', '').replace('courier_code', 'courier')}: {exc.detail}")
            return
        console.print(f"{'would book' if dry_run else 'booked'} {out['accounts']} collections, {out['equipment']} devices (free capacity {out['free']})")
