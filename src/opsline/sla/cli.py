"""SLA CLI commands: recalculate clocks and run one warning/breach scan."""

from __future__ import annotations

from typing import Any


def add_commands(app: Any) -> None:
    import typer

    @app.command("sla-recalculate")
    def sla_recalculate(all_cases: bool = typer.Option(False, "--all", help="Include resolved and closed cases"), reason: str = typer.Option("manual recalculation")) -> None:
        """Recompute every open case's SLA clocks from its history."""
        from opsline.config import Settings
        from opsline.core.events import Actor
        from opsline.core.jobs import utc_now
        from opsline.db.session import make_engine, make_sessionmaker
        from opsline.sla import service

        engine = make_engine(Settings().database_url)
        with make_sessionmaker(engine).begin() as s:
            counts = service.recalculate(s, case_ids=None, now=utc_now(), reason=reason, actor=Actor.system("cli"), include_closed=all_cases)
        typer.echo(" ".join(f"{k}={v}" for k, v in counts.items()))

    @app.command("sla-scan")
    def sla_scan() -> None:
        """Run one SLA scan (warnings, escalations, breaches) and schedule the periodic scan job."""
        from opsline.config import Settings
        from opsline.core.jobs import utc_now
        from opsline.db.session import make_engine, make_sessionmaker
        from opsline.sla import service

        engine = make_engine(Settings().database_url)
        now = utc_now()
        with make_sessionmaker(engine).begin() as s:
            counts = service.scan(s, now=now)
            service.schedule_scan(s, now=now)
        typer.echo(" ".join(f"{k}={v}" for k, v in counts.items()))
