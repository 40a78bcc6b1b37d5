"""Command line: serve, worker, migrate, demo, backup and restore, users and API clients. Areas add their commands below."""

from __future__ import annotations

import os
import socket
import sys
from datetime import datetime, timezone
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from opsline.config import get_settings

app = typer.Typer(help="Opsline: order-to-cash and customer operations for ISPs and telecom operators.", no_args_is_help=True, pretty_exceptions_enable=False)
user_app = typer.Typer(help="Staff users.", no_args_is_help=True)
client_app = typer.Typer(help="API clients (bearer tokens for systems).", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(client_app, name="api-client")
console = Console()
err = Console(stderr=True)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def progress_bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False)


def _engine():  # type: ignore[no-untyped-def]
    from opsline.db.session import make_engine

    return make_engine(get_settings().database_url)


def fail(message: str, code: int = 2) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema to the latest revision, seed reference data and start the periodic jobs.
    With OPSLINE_MIGRATION_DATABASE_URL it runs as that (owner) role, and with OPSLINE_APP_ROLE it re-applies that role's grants."""
    from opsline.core.localtime import zone
    from opsline.db.migrate import upgrade
    from opsline.db.session import make_engine, make_sessionmaker
    from opsline.seed import schedule_periodic, seed_reference

    settings = get_settings()
    engine = make_engine(settings.migration_database_url) if settings.migration_database_url else _engine()
    upgrade(engine)
    now = utc_now()
    with make_sessionmaker(engine).begin() as s:
        seed_reference(s, now=now)
        periodic = schedule_periodic(s, now=now, tz=zone(settings.timezone))
    console.print(f"periodic jobs scheduled: {', '.join(periodic) or 'none'}")
    if settings.app_role and engine.dialect.name == "postgresql":
        from opsline.db.roles import ensure_app_role

        with engine.begin() as conn:
            report = ensure_app_role(conn, role=settings.app_role)
        console.print(f"grants of {report.role} re-applied ({report.tables} tables; append-only: {', '.join(report.append_only)})")
    console.print(f"[green]database at head[/green] ({engine.url.render_as_string(hide_password=True)})")


@app.command()
def demo(
    accounts: Annotated[int, typer.Option(min=0, help="How many customer accounts to generate")] = 2000,
    reset: Annotated[bool, typer.Option(help="Delete the SQLite database file first")] = False,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data)")] = 20261123,
) -> None:
    """Migrate and load realistic demo data (South African ISP + B2B). Prints sign-in details."""
    settings = get_settings()
    url = settings.database_url
    if reset and url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
    from opsline.db.migrate import upgrade
    from opsline.demo import DEMO_PASSWORD, DEMO_USERS, run_demo

    engine = _engine()
    upgrade(engine)
    with progress_bar() as progress:
        counts = run_demo(engine, accounts=accounts, now=utc_now(), seed=seed, progress=progress)
    from opsline.core.localtime import zone
    from opsline.db.session import make_sessionmaker
    from opsline.seed import schedule_periodic

    with make_sessionmaker(engine).begin() as s:  # as `opsline migrate` does: the served demo runs its daily and monthly jobs
        schedule_periodic(s, now=utc_now(), tz=zone(settings.timezone))
    console.print("[green]demo data loaded:[/green] " + ", ".join(f"{k}={v:,}" for k, v in counts.items()))
    console.print(f"Sign in at http://127.0.0.1:8000 with any of these users, password [bold]{DEMO_PASSWORD}[/bold]:")
    for username, name, roles in DEMO_USERS:
        console.print(f"  {username:<11} {name:<24} {', '.join(roles)}")
    from opsline.portal.demo import credentials  # customer self-service logins made by the portal's demo step

    console.print("Customer self-service at http://127.0.0.1:8000/portal: " + "; ".join(f"{what} {email} / {pw}" for what, email, pw in credentials()))


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1, reload: bool = False) -> None:
    """Serve the web app and REST API (with an in-process job worker unless OPSLINE_WORKER_IN_PROCESS=false)."""
    import uvicorn

    uvicorn.run("opsline.web.app:create_app", factory=True, host=host, port=port, workers=workers, reload=reload, log_level="info")


@app.command()
def worker(burst: Annotated[bool, typer.Option(help="Run due jobs then exit")] = False) -> None:
    """Run a job worker (run several, on several machines, against PostgreSQL)."""
    from opsline.core.jobs import Worker
    from opsline.db.session import make_sessionmaker
    from opsline.jobs_registry import build_registry

    w = Worker(make_sessionmaker(_engine()), build_registry(), worker_id=f"{socket.gethostname()}-{os.getpid()}")
    if burst:
        n = w.drain()
        console.print(f"ran {n} job(s)")
        return
    console.print(f"worker {w.worker_id} running; Ctrl-C to stop")
    try:
        w.run_forever()
    except KeyboardInterrupt:
        w.stop()


@app.command()
def backup(file: Annotated[str, typer.Argument(help="Backup file to write (SQLite copy or pg_dump custom format)")],
           force: Annotated[bool, typer.Option(help="Overwrite an existing file")] = False) -> None:
    """Back up the database while it runs (SQLite online backup API; PostgreSQL pg_dump from one snapshot), with a
    manifest of row counts and the audit log's digest beside it."""
    from pathlib import Path

    from opsline.core.errors import OpslineError
    from opsline.db.backup import backup as do_backup
    from opsline.db.backup import manifest_path

    engine = _engine()
    try:
        with progress_bar() as bar:
            task = bar.add_task("backup", total=None)
            man = do_backup(engine, Path(file), now=utc_now(), force=force, progress=lambda done, total: bar.update(task, completed=done, total=total))
    except OpslineError as exc:
        fail(exc.detail)
    console.print(f"[green]backed up[/green] {sum(man['tables'].values()):,} rows in {len(man['tables'])} tables, "
                  f"{man['audit_events']:,} audit events, to {file} ({man['size_bytes']:,} bytes); manifest {manifest_path(Path(file)).name}")


@app.command()
def restore(file: Annotated[str, typer.Argument(help="Backup file written by `opsline backup` (its manifest beside it)")],
            force: Annotated[bool, typer.Option(help="Replace a database that already holds data")] = False) -> None:
    """Restore a backup into the configured database and check every table's row count and the audit log against
    the backup's manifest."""
    from pathlib import Path

    from opsline.core.errors import OpslineError
    from opsline.db.backup import restore as do_restore

    try:
        found = do_restore(get_settings().database_url, Path(file), now=utc_now(), force=force)
    except OpslineError as exc:
        fail(exc.detail if file in exc.detail else f"{file}: {exc.detail}")
    console.print(f"[green]restored and verified[/green] {sum(found['tables'].values()):,} rows in {len(found['tables'])} tables, "
                  f"{found['audit_events']:,} audit events identical to the backup")


@user_app.command("create")
def user_create(
    username: str,
    roles: Annotated[str, typer.Option(help="Comma-separated roles, e.g. debtors_clerk,second_line_agent")],
    full_name: Annotated[Optional[str], typer.Option()] = None,
    email: Annotated[Optional[str], typer.Option()] = None,
    password: Annotated[Optional[str], typer.Option(help="Prompted when omitted")] = None,
) -> None:
    """Create a staff user."""
    from opsline.core.errors import OpslineError
    from opsline.core.events import Actor
    from opsline.db.session import make_sessionmaker
    from opsline.users.service import create_user

    if password is None:
        if not sys.stdin.isatty():
            fail("--password is required when not run interactively")
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with make_sessionmaker(_engine()).begin() as s:
            create_user(s, username=username, full_name=full_name or username, email=email or f"{username}@localhost", password=password or "",
                        roles=[r.strip() for r in roles.split(",") if r.strip()], now=utc_now(), actor=Actor.system("cli"))
    except OpslineError as exc:
        fail(f"{exc.field + ': ' if exc.field else ''}{exc.detail}")
    console.print(f"[green]created user {username}[/green]")


@client_app.command("create")
def client_create(name: str, roles: Annotated[str, typer.Option(help="Comma-separated roles")] = "admin") -> None:
    """Create an API client and print its bearer token (shown once)."""
    from opsline.core.errors import OpslineError
    from opsline.core.events import Actor
    from opsline.db.session import make_sessionmaker
    from opsline.users.service import create_api_client

    try:
        with make_sessionmaker(_engine()).begin() as s:
            _, token = create_api_client(s, name=name, roles=[r.strip() for r in roles.split(",")], now=utc_now(), actor=Actor.system("cli"))
    except OpslineError as exc:
        fail(exc.detail)
    console.print(f"token for {name}: [bold]{token}[/bold]")


def _add_area_commands() -> None:
    from opsline.areas import load_areas

    for area in load_areas():
        if area.cli is not None:
            area.cli(app)


_add_area_commands()


if __name__ == "__main__":
    app()
