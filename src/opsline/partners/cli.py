"""`opsline partners ...`: desk summary, simulator outage switch, and re-queueing dead deliveries."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from opsline.config import get_settings
from opsline.core.errors import OpslineError
from opsline.core.events import Actor
from opsline.core.jobs import utc_now
from opsline.core.localtime import zone
from opsline.db.session import make_sessionmaker
from opsline.partners import service


def register(app: typer.Typer) -> None:
    # opsline.cli builds the app from every area's `cli` hook, so its helpers are taken from there at call time
    from opsline.cli import _engine, console, fail

    partners_app = typer.Typer(help="Wholesale partners: service orders, deliveries, the FNO simulator.", no_args_is_help=True)
    app.add_typer(partners_app, name="partners")

    @partners_app.command("status")
    def status() -> None:
        """Open, late and stuck service orders per partner."""
        with make_sessionmaker(_engine())() as s:
            summary = service.desk_summary(s, now=utc_now(), tz=zone(get_settings().timezone))
        t = Table("partner", "kind", "adapter", "open", "late", "stuck", "completed", "rejected")
        for p in summary["partners"]:
            t.add_row(p["code"], p["kind"], p["adapter"] + (" (outage)" if p["simulator_outage"] else ""), *(str(p[k]) for k in ("open", "late", "stuck", "completed", "rejected")))
        console.print(t)

    @partners_app.command("outage")
    def outage(code: str, state: Annotated[str, typer.Argument(help="on | off")], reason: Annotated[str, typer.Option(help="Why (kept in the audit log)")]) -> None:
        """Put a simulated partner into outage mode (deliveries and callbacks fail and retry) or take it out."""
        if state not in ("on", "off"):
            fail(f"state must be 'on' or 'off', not '{state}'")
        try:
            with make_sessionmaker(_engine()).begin() as s:
                service.set_simulator_outage(s, code=code, outage=state == "on", now=utc_now(), actor=Actor.system("cli"), reason=reason)
        except OpslineError as exc:
            fail(f"{exc.field + ': ' if exc.field else ''}{exc.detail}")
        console.print(f"[green]{code}: simulated outage {state}[/green]")

    @partners_app.command("retry-dead")
    def retry_dead(partner: Annotated[Optional[str], typer.Option(help="Only this partner's deliveries")] = None,
                   reason: Annotated[str, typer.Option(help="Why (kept in the audit log)")] = "dead deliveries re-queued from the CLI") -> None:
        """Re-queue every dead delivery (e.g. after a partner outage) to run now."""
        now = utc_now()
        tz = zone(get_settings().timezone)
        with make_sessionmaker(_engine()).begin() as s:
            n = 0
            while True:
                dead = service.list_service_orders(s, now=now, tz=tz, delivery="dead", partner_code=partner, page_size=500)["items"]
                if not dead:
                    break
                for o in dead:
                    service.retry_delivery(s, service_order_id=o["id"], now=now, actor=Actor.system("cli"), reason=reason)
                    n += 1
                s.flush()
        console.print(f"[green]re-queued {n} dead deliveries[/green]")
