"""`opsline cancellations-escalate`: flag cancellation steps at risk and tell the coordinators' manager (also a job)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("cancellations-escalate")
    def escalate_cmd() -> None:
        """Flag open cancellation steps due within the at-risk window (or overdue), send the manager one digest, and
        schedule the hourly escalation job."""
        from opsline.cancellations import service
        from opsline.cli import _engine, console, utc_now
        from opsline.config import get_settings
        from opsline.core.localtime import zone
        from opsline.db.session import make_sessionmaker

        with make_sessionmaker(_engine()).begin() as s:
            now = utc_now()
            res = service.escalate(s, now=now, tz=zone(get_settings().timezone))
            at = service.schedule_escalation(s, now=now)
        console.print(f"{res['flagged']} step(s) on {res['journeys']} journey(s) flagged at risk"
                      + (f"; manager told (message {res['message_id']})" if res["message_id"] else "") + f"; next run {at.isoformat()}")
