"""CLI commands for cases: the inbound SMTP listener and the Maildir importer."""

from __future__ import annotations

import os
import time
from typing import Annotated

import typer


def add_commands(app: typer.Typer) -> None:
    @app.command("mail-listener")
    def mail_listener(
        host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port (default: settings.inbound_smtp_port)")] = 0,
    ) -> None:
        """Receive customer email over SMTP and turn it into cases (threading replies by case reference)."""
        from opsline.cases.inbound import start_listener
        from opsline.cli import _engine, console, utc_now
        from opsline.config import get_settings
        from opsline.db.session import make_sessionmaker

        port = port or get_settings().inbound_smtp_port
        ctl = start_listener(make_sessionmaker(_engine()), host=host, port=port, clock=utc_now)
        console.print(f"[green]listening for inbound email on {host}:{port}[/green] (Ctrl-C to stop)")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            ctl.stop()

    @app.command("import-maildir")
    def import_maildir_cmd(path: Annotated[str, typer.Argument(help="Maildir folder (with cur/ new/ tmp/)")]) -> None:
        """Import every message of a Maildir as new cases or replies on existing ones (safe to re-run)."""
        from opsline.cases.inbound import import_maildir, maildir_size
        from opsline.cli import _engine, console, fail, progress_bar, utc_now
        from opsline.db.session import make_sessionmaker

        if not os.path.isdir(os.path.join(path, "cur")) and not os.path.isdir(os.path.join(path, "new")):
            fail(f"{path}: not a Maildir (no cur/ or new/ folder)")
        total = maildir_size(path)
        with progress_bar() as bar:
            task = bar.add_task("messages", total=total)
            counts = import_maildir(make_sessionmaker(_engine()), path=path, now=utc_now(), on_message=lambda: bar.advance(task))
        console.print(", ".join(f"{k}: {v}" for k, v in counts.items()))
        if counts["failed"]:
            raise typer.Exit(1)
