"""`opsline dunning-run --date D [--dry-run]` with a progress bar: the dry run prints per step what would happen."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("dunning-run")
    def dunning_run_cmd(
        date_: Annotated[str, typer.Option("--date", help="The run date, YYYY-MM-DD (today or a missed day)")],
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Show per step what would happen; change nothing")] = False,
        user: Annotated[str, typer.Option(help="Recorded as the person who ran it")] = "cli",
    ) -> None:
        """Run dunning over every account for one date (a second run the same day does nothing)."""
        from opsline.cli import _engine, console, fail, progress_bar, utc_now
        from opsline.config import get_settings
        from opsline.core.errors import OpslineError
        from opsline.core.events import Actor
        from opsline.core.localtime import local_date, zone
        from opsline.core.money import Money
        from opsline.db.session import make_sessionmaker
        from opsline.debtors import runs

        now = utc_now()
        today = local_date(now, zone(get_settings().timezone))
        try:
            run_date = runs.parse_run_date(date_)
            with progress_bar() as progress, make_sessionmaker(_engine()).begin() as s:
                tasks: dict[str, object] = {}

                def tick(stage: str, done: int, total: int) -> None:
                    if stage not in tasks:
                        tasks[stage] = progress.add_task(f"dunning {stage}", total=total or None)
                    progress.update(tasks[stage], completed=done, total=total or None)

                if dry_run:
                    res = runs.dry_run(s, run_date=run_date, today=today, now=now, progress=tick)
                else:
                    res = runs.run_dunning(s, run_date=run_date, today=today, now=now, progress=tick,
                                           actor=Actor(name=user, roles=frozenset({"debtors_manager"})))
        except OpslineError as exc:
            fail(exc.detail)
            return
        cur = res.get("currency", "ZAR")
        if res.get("already_run") and not dry_run:
            console.print(f"[yellow]Dunning already ran for {run_date.isoformat()}: nothing done.[/yellow] ({res.get('actions', 0)} actions then)")
            return
        head = "Dry run (nothing changed)" if dry_run else f"Dunning run {run_date.isoformat()}"
        console.print(f"{head}: {res['accounts']:,} accounts, {res['overdue_accounts']:,} overdue ({Money.from_minor(res['overdue_minor'], cur)})"
                      + (f" · {res['missed_days']} missed days caught up" if res.get("missed_days") else ""))
        for st in res["steps"]:
            console.print(f"  {st['policy']} · {st['position']}. {st['name']} ({st['action']}{', by a person' if st['handled_by'] == 'person' else ''}): "
                          f"{st['count']:,} accounts, {Money.from_minor(st['amount_minor'], cur)}")
        for e in res["excluded"]:
            console.print(f"  [dim]left alone: {e['label']}: {e['count']:,} accounts, {Money.from_minor(e['amount_minor'], cur)}[/dim]")
        if dry_run and res.get("already_run"):
            console.print("[yellow]A run for this date already happened; running again would do nothing.[/yellow]")
        if not dry_run:
            console.print(f"[green]{res['actions']:,} actions written[/green], {res['jobs_queued']} worker jobs queued to send and suspend")
