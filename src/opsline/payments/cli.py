"""`opsline import-statement FILE [--format csv|mt940|camt053|debit_result] [--mapping NAME]` with a progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("import-statement")
    def import_statement_cmd(
        file: Annotated[Path, typer.Argument(help="A bank statement (CSV, MT940, camt.053) or a debit-order result file")],
        format: Annotated[str | None, typer.Option("--format", help="csv, mt940, camt053 or debit_result (detected when left out)")] = None,
        mapping: Annotated[str | None, typer.Option("--mapping", help="The bank's saved CSV mapping (for --format csv)")] = None,
        user: Annotated[str, typer.Option(help="Recorded as the importer")] = "cli",
    ) -> None:
        """Import a statement: the whole file or nothing, each bank transaction once, then match and allocate."""
        from opsline.cli import _engine, console, fail, progress_bar, utc_now
        from opsline.core.errors import OpslineError
        from opsline.core.events import Actor
        from opsline.db.session import make_sessionmaker
        from opsline.payments.imports import import_statement

        if not file.exists():
            fail(f"{file}: no such file")
        data = file.read_bytes()
        try:
            with progress_bar() as progress, make_sessionmaker(_engine()).begin() as s:
                tasks: dict[str, object] = {}

                def tick(stage: str, done: int, total: int) -> None:
                    if stage not in tasks:
                        tasks[stage] = progress.add_task(f"{stage} {file.name}", total=total or None)
                    progress.update(tasks[stage], completed=done, total=total or None)

                res = import_statement(s, data=data, filename=file.name, fmt=format, mapping_name=mapping, now=utc_now(),
                                       actor=Actor(name=user, roles=frozenset({"debtors_clerk"})), progress=tick)
        except OpslineError as exc:
            fail(exc.detail)
            return
        console.print(f"{res['filename']} ({res['format']}): {res['lines']} lines, {res['duplicates']} already posted · "
                      f"[green]{res['allocated']} allocated[/green] · [yellow]{res['proposed']} proposed[/yellow] · [red]{res['suspense']} to suspense[/red]")
        for rule, n in res["by_rule"].items():
            console.print(f"  {rule}: {n}")
        if "unpaid" in res:
            console.print(f"  debit orders: {res['paid']} paid, {res['unpaid']} unpaid, {res['invoices_reopened']} invoices re-opened, "
                          f"{res['fees_charged']} returned-debit fees charged")
