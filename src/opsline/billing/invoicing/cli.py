"""CLI: `opsline import-usage FILE.csv` (progress bar, per-line error report naming line and field)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("import-usage")
    def import_usage_cmd(
        file: Annotated[Path, typer.Argument(help="CSV: external_id, msisdn or product_id, usage_type, started_at, quantity")],
        strict: Annotated[bool, typer.Option(help="Exit with status 1 when any row was rejected")] = False,
    ) -> None:
        """Import and rate a usage file; bad rows are reported by line and field and kept for correction."""
        from opsline.billing.invoicing.usage import import_usage
        from opsline.cli import _engine, console, fail, progress_bar, utc_now
        from opsline.core.errors import OpslineError
        from opsline.core.events import Actor
        from opsline.db.session import make_sessionmaker

        if not file.exists():
            fail(f"{file}: no such file")
        data = file.read_bytes()
        lines = max(0, data.count(b"\n") - 1)
        try:
            with progress_bar() as progress, make_sessionmaker(_engine()).begin() as s:
                task = progress.add_task(f"importing {file.name}", total=lines or None)
                res = import_usage(s, file=data, filename=file.name, now=utc_now(), actor=Actor.system("cli"),
                                   progress=lambda i: progress.update(task, completed=i))
                progress.update(task, completed=lines)
        except OpslineError as exc:
            fail(exc.detail)
            return
        for e in res.errors:
            console.print(f"[red]{file.name}:{e.line}[/red] field [bold]{e.field or '-'}[/bold]: {e.reason}")
        console.print(f"{res.total} rows · [green]{res.loaded} loaded and rated[/green] · [red]{res.rejected} rejected[/red] (kept for correction) · rated R {res.rated_amount_minor / 100:,.2f} excl. VAT")
        if strict and res.rejected:
            raise typer.Exit(1)
