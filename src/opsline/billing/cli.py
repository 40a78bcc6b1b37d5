"""`opsline billrun`: run a bill run's shards in-process through the job table, print totals and the review, approve, finalise."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Optional

import typer


def _actor_for(session: Any, username: str) -> Any:
    from sqlalchemy import select

    from opsline.core.events import Actor
    from opsline.users.models import User

    user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if user is None or not user.active:
        from opsline.cli import fail

        fail(f"--approve-as: no active user '{username}'")
    return Actor(name=user.username, user_id=user.id, roles=frozenset(user.roles or []))


def register(app: typer.Typer) -> None:
    @app.command("billrun")
    def billrun_cmd(
        cycle: Annotated[str, typer.Option("--cycle", help="Cycle date, e.g. 2026-12-01 (the first day billed in advance)")],
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Draft only: never approved or issued")] = False,
        approve_as: Annotated[Optional[str], typer.Option("--approve-as", help="Approve as this user (not the one who started the run)")] = None,
        finalise: Annotated[bool, typer.Option("--finalise", help="Issue the approved run: numbers, ledger, PDFs and e-mails")] = False,
        started_by: Annotated[str, typer.Option("--as", help="Who starts the run (a user name); default: the CLI system user")] = "",
        threads: Annotated[int, typer.Option(min=1, max=16, help="Shard workers in this process")] = 1,
    ) -> None:
        """Run the bill run for a cycle: compute drafts (sharded jobs, drained here), print totals and the review; optionally approve and finalise."""
        from rich.table import Table

        from opsline.billing import cycle as billing_cycle
        from opsline.cli import _engine, console, fail, progress_bar, utc_now
        from opsline.core.errors import OpslineError
        from opsline.core.events import Actor
        from opsline.core.money import Money
        from opsline.db.session import make_sessionmaker

        try:
            cycle_date = date.fromisoformat(cycle)
        except ValueError:
            fail(f"--cycle: '{cycle}' is not a date (YYYY-MM-DD)")
            return
        factory = make_sessionmaker(_engine())
        now = utc_now()
        with factory() as s:
            starter = _actor_for(s, started_by) if started_by else Actor.system("cli")
            approver = _actor_for(s, approve_as) if approve_as else None
        try:
            with progress_bar() as progress:
                task: list[Any] = []

                def started(rid: int, shards: int, done: int) -> None:
                    task.append(progress.add_task(f"bill run {rid}", total=shards, completed=done))

                res = billing_cycle.run_cycle(factory, cycle_date=cycle_date, now=now, starter=starter, dry_run=dry_run, approver=approver, finalise=finalise,
                                      threads=threads, on_start=started, on_shard=lambda job, ok: progress.advance(task[0], 1))
            run, rev = res.run, res.review
            if res.continued:
                console.print(f"continued bill run {res.bill_run_id}")
            cur = run["currency"]
            console.print(f"[bold]bill run {res.bill_run_id}[/bold] {run['period_start']} – {run['period_last_day']}: [bold]{run['state']}[/bold]; "
                          f"{run['accounts_count']:,} accounts, {run['lines_count']:,} lines; excl. VAT {Money.from_minor(run['subtotal_minor'], cur)}, "
                          f"VAT {Money.from_minor(run['tax_minor'], cur)}, total {Money.from_minor(run['total_minor'], cur)}")
            t = Table(title="By offering")
            for c in ("Offering", "Kind", "Lines", "Total"):
                t.add_column(c, justify="right" if c in ("Lines", "Total") else "left")
            for r in rev["by_offering"][:15]:
                t.add_row(str(r["name"]), r["kind"], f"{r['lines']:,}", str(Money.from_minor(int(r["total"]), r["currency"])))
            console.print(t)
            ex = rev["exceptions"]
            console.print(f"review: {rev['diff_count']:,} accounts compared with last period, {rev['over_threshold_count']:,} over {rev['threshold']}% variance, "
                          f"{rev['flagged_count']:,} flagged as unexplained, {rev['new_accounts']:,} new, {rev['dropped_accounts']:,} dropped; "
                          f"exceptions: {ex['currency_mismatch_count']} currency mismatches, {ex['no_lines_count']} active accounts without lines, "
                          f"{ex['negative_count']} negative invoices")
            for d in [d for d in rev["diff"] if d["flagged"]]:
                console.print(f"  flagged {d['account_number']} {d['name']}: {d['flag_reason']}")
            if res.approved_by:
                console.print(f"[green]approved by {res.approved_by}[/green]")
            if res.invoices_issued is not None:
                console.print(f"[green]finalised: {res.invoices_issued:,} invoices issued[/green]")
        except OpslineError as exc:
            fail(f"{exc.field + ': ' if exc.field else ''}{exc.detail}")
