"""`opsline agency-recoveries FILE --agency CODE`: import a collection agency's recovery file (all lines checked first; a
bad line names file, line and field and nothing is imported; the same file twice imports once)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def register(app: Any) -> None:
    @app.command("agency-recoveries")
    def agency_recoveries_cmd(
        file: Annotated[Path, typer.Argument(help="The agency's recovery file (CSV or xlsx, in the layout of its terms)")],
        agency: Annotated[str, typer.Option("--agency", help="The agency's partner code, e.g. collectco or mbd")],
        user: Annotated[str, typer.Option(help="Recorded as the importer")] = "cli",
    ) -> None:
        """Import a collection agency's recovery file: payments on debt still on the books, bad-debt recoveries on
        written-off debt, commission per recovery; placements fully recovered close as paid."""
        from opsline.cli import _engine, console, fail, utc_now
        from opsline.config import get_settings
        from opsline.core.errors import OpslineError
        from opsline.core.events import Actor
        from opsline.core.localtime import local_date, zone
        from opsline.core.money import Money
        from opsline.db.session import make_sessionmaker
        from opsline.debtors.agencies_recoveries import import_recoveries

        if not file.is_file():
            fail(f"{file}: no such file")
            return
        now = utc_now()
        try:
            with make_sessionmaker(_engine()).begin() as s:
                res = import_recoveries(s, agency=agency, data=file.read_bytes(), filename=file.name, today=local_date(now, zone(get_settings().timezone)),
                                        now=now, actor=Actor(name=user, roles=frozenset({"debtors_clerk"})))
        except OpslineError as exc:
            fail(exc.detail)
            return
        cur = res["currency"]
        console.print(f"{res['filename']} ({res['agency_name']}): {res['lines']} lines · [green]{res['posted']} recoveries posted[/green] "
                      f"({Money.from_minor(res['amount_minor'], cur)}, commission {Money.from_minor(res['commission_minor'], cur)})"
                      + (f" · {res['already_imported']} receipts imported before, left alone" if res["already_imported"] else "")
                      + (f" · {res['closed_paid']} placements fully recovered" if res["closed_paid"] else ""))
