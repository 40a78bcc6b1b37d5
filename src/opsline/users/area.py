"""Users area wiring (staff users and API clients; pages live in web/auth.py), and the database role the application
connects as (`opsline db-roles`, db/roles.py)."""

from typing import Annotated

from opsline.areas import Area
from opsline.users import models  # noqa: F401  (tables)


def _cli(app) -> None:  # type: ignore[no-untyped-def]
    import os

    import typer

    @app.command("db-roles")
    def db_roles(
        app_role: Annotated[str, typer.Option("--app-role", help="The role the web app and workers connect as (created if missing)")],
        password_env: Annotated[str, typer.Option("--password-env", help="Environment variable holding the role's password (never on the command line)")] = "",
    ) -> None:
        """Create or update the application's PostgreSQL role and its grants (rows only: no DDL, no TRUNCATE, no UPDATE or
        DELETE on append-only tables), as the owner: OPSLINE_MIGRATION_DATABASE_URL, else OPSLINE_DATABASE_URL. Safe to re-run."""
        from rich.console import Console

        from opsline.config import get_settings
        from opsline.db.roles import UnableToSetUpRole, ensure_app_role
        from opsline.db.session import make_engine

        err = Console(stderr=True)
        password = None
        if password_env:
            password = os.environ.get(password_env)
            if not password:
                err.print(f"[red]error:[/red] --password-env {password_env}: that environment variable is not set or empty")
                raise typer.Exit(2)
        settings = get_settings()
        engine = make_engine(settings.migration_database_url or settings.database_url)
        try:
            with engine.begin() as conn:
                report = ensure_app_role(conn, role=app_role, password=password)
        except UnableToSetUpRole as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
        finally:
            engine.dispose()
        Console().print(f"[green]role {report.role} {'created' if report.created else 'updated'}[/green]: rows on {report.tables} tables; "
                        f"append-only (no UPDATE/DELETE): {', '.join(report.append_only) or '(none)'}; no DDL, no TRUNCATE")


    user_group = next((g.typer_instance for g in app.registered_groups if g.name == "user"), None)
    if user_group is not None:
        @user_group.command("password")
        def user_password(username: str) -> None:
            """Set a user's password (prompted) and sign them out everywhere."""
            from datetime import datetime, timezone

            from rich.console import Console

            from opsline.config import get_settings
            from opsline.core.errors import OpslineError
            from opsline.core.events import Actor
            from opsline.db.session import make_engine, make_sessionmaker
            from opsline.users.service import change_password

            password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
            engine = make_engine(get_settings().database_url)
            try:
                with make_sessionmaker(engine).begin() as s:
                    ended = change_password(s, username=username, password=password, now=datetime.now(timezone.utc), actor=Actor.system("cli"))
            except OpslineError as exc:
                Console(stderr=True).print(f"[red]error:[/red] {exc.field + ': ' if exc.field else ''}{exc.detail}")
                raise typer.Exit(2) from exc
            finally:
                engine.dispose()
            Console().print(f"[green]password changed[/green]; {ended} live session(s) ended")


AREA = Area(name="users", order=5, cli=_cli)
