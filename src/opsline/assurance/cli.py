"""`opsline import-partner-invoice FILE --partner CODE --period YYYY-MM`: import an FNO's monthly invoice and reconcile it."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("import-partner-invoice")
    def import_cmd(file: Path = typer.Argument(..., help="the FNO's CSV: line id, period (YYYY-MM), amount per line"),
                   partner: str = typer.Option(..., "--partner", help="the FNO's partner code, e.g. openserve"),
                   period: str = typer.Option(..., "--period", help="the month billed, YYYY-MM")) -> None:
        """Import an FNO's monthly invoice and reconcile it against our inventory (any bad line: nothing is imported)."""
        from opsline.assurance import service
        from opsline.cli import _engine, console, utc_now
        from opsline.core.errors import OpslineError
        from opsline.core.events import Actor
        from opsline.core.money import Money
        from opsline.db.session import make_sessionmaker

        if not file.is_file():
            console.print(f"[red]{file}: no such file[/red]")
            raise typer.Exit(2)
        try:
            with make_sessionmaker(_engine()).begin() as s:
                r = service.import_invoice(s, partner_code=partner, period=period, file_name=file.name, data=file.read_bytes(), now=utc_now(),
                                           actor=Actor.system("cli:import-partner-invoice"))
        except OpslineError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        console.print(f"Imported {r['partner_name']} {r['period']:%Y-%m}: {r['lines']} lines, {Money.from_minor(r['total_minor'], r['currency'])}; "
                      f"{r['findings']} finding(s), leakage {Money.from_minor(r['leakage_minor'], r['currency'])} (invoice {r['id']})")
