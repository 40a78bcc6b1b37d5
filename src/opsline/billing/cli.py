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
        from sqlalchemy import select

        from opsline.billing import billrun
        from opsline.billing.models import BillRun
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
        try:
            with factory.begin() as s:
                starter = _actor_for(s, started_by) if started_by else Actor.system("cli")
                existing = s.execute(select(BillRun).where(BillRun.cycle_date == cycle_date, BillRun.state != "rolled_back")).scalars().first()
                if existing is not None and (approve_as or finalise) and existing.state in ("draft_running", "draft", "review", "approved"):
                    rid = existing.id
                    console.print(f"continuing bill run {rid} ({existing.state})")
                else:
                    rid = billrun.start_bill_run(s, cycle_date=cycle_date, now=now, actor=starter, dry_run=dry_run).id
                shard_count = s.get(BillRun, rid).shard_count
            with progress_bar() as progress:
                task = progress.add_task(f"bill run {rid}", total=shard_count)
                with factory() as s:
                    progress.update(task, completed=s.get(BillRun, rid).shards_done)
                billrun.drain_shards(factory, now=now, threads=threads, on_shard=lambda job, ok: progress.advance(task, 1))
            with factory() as s:
                run = billrun.bill_run_detail(s, bill_run_id=rid)
                if run["state"] == "draft_running":
                    fail(f"bill run {rid} has shards that did not finish; see /jobs (the worker retries them)")
                rev = billrun.review(s, bill_run_id=rid, limit=10)
            cur = run["currency"]
            console.print(f"[bold]bill run {rid}[/bold] {run['period_start']} – {run['period_last_day']}: [bold]{run['state']}[/bold]; "
                          f"{run['accounts_count']:,} accounts, {run['lines_count']:,} lines; excl. VAT {Money.from_minor(run['subtotal_minor'], cur)}, "
                          f"VAT {Money.from_minor(run['tax_minor'], cur)}, total {Money.from_minor(run['total_minor'], cur)}")
            t = Table(title="By offering")
            for c in ("Offering", "Kind", "Lines", "Total"):
                t.add_column(c, justify="right" if c in ("Lines", "Total") else "left")
            for r in rev["by_offering"][:15]:
                t.add_row(str(r["name"]), r["kind"], f"{r['lines']:,}", str(Money.from_minor(int(r["total"]), r["currency"])))
            console.print(t)
            ex = rev["exceptions"]
            console.print(f"review: {rev['diff_count']:,} accounts compared with last period, {rev['flagged_count']:,} over {rev['threshold']}% variance, "
                          f"{rev['new_accounts']:,} new, {rev['dropped_accounts']:,} dropped; exceptions: {ex['currency_mismatch_count']} currency mismatches, "
                          f"{ex['no_lines_count']} active accounts without lines, {ex['negative_count']} negative invoices")
            if approve_as:
                with factory.begin() as s:
                    approver = _actor_for(s, approve_as)
                    run_obj = billrun.get_run(s, bill_run_id=rid)
                    if run_obj.state == "draft":
                        billrun.open_review(s, bill_run_id=rid, now=now, actor=approver)
                    billrun.approve_bill_run(s, bill_run_id=rid, now=now, actor=approver)
                console.print(f"[green]approved by {approve_as}[/green]")
            if finalise:
                with factory.begin() as s:
                    actor = _actor_for(s, approve_as) if approve_as else starter
                    billrun.finalise_bill_run(s, bill_run_id=rid, now=now, actor=actor)
                    n = billrun.invoice_count(s, bill_run_id=rid)
                console.print(f"[green]finalised: {n:,} invoices issued[/green]")
        except OpslineError as exc:
            fail(f"{exc.field + ': ' if exc.field else ''}{exc.detail}")
