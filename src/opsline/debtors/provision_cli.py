"""`opsline provision --month YYYY-MM [--xlsx FILE]` (IFRS 9 provision of a month end, with a progress bar while month-end
snapshots are taken), `opsline provision-history FILE` (import the prior system's month-end ageing), `opsline
provision-adjust` (the forward-looking adjustment) and `opsline provision-snapshot` (retake a month end's ageing)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def _print(rep: dict[str, Any]) -> None:
    from opsline.cli import console
    from opsline.core.money import Money
    from opsline.debtors.provision import BUCKET_LABELS

    inp = rep["inputs"]
    console.print(f"Provision {rep['month']} (run #{rep['seq']}, {rep['created_by']}): roll rates over {rep['lookback']} months; "
                  f"{inp.get('ledger_months', 0)} month ends from the ledger, {inp.get('imported_months', 0)} from imported history")
    for seg, a in inp.get("adjustments", {}).items():
        console.print(f"  forward-looking adjustment ({seg}): {a['pct']} % from {a['valid_from']} — {a['reason']}")
    for ln in rep["lines"]:
        cur = ln["currency"]
        console.print(f"  {ln['segment_name'][:12]:<12} {BUCKET_LABELS[ln['bucket']]:<11} {Money.from_minor(ln['balance_minor'], cur)!s:>16} "
                      f"x {ln['loss_rate'] * 100:7.3f} % x (1 {'+' if ln['adjustment_pct'] >= 0 else '-'} {abs(ln['adjustment_pct']).normalize()} %) "
                      f"= {Money.from_minor(ln['provision_minor'], cur)!s:>14}", soft_wrap=True)
    for cur, t in rep["totals"].items():
        move = t["movement_minor"]
        console.print(f"[bold]{cur}: open debt {Money.from_minor(t['balance_minor'], cur)}, provision {Money.from_minor(t['provision_minor'], cur)}"
                      f" ({t['coverage_pct']} %); last month {Money.from_minor(t['previous_minor'], cur)}; "
                      f"{'charge' if move >= 0 else 'release'} {Money.from_minor(abs(move), cur)}[/bold]", soft_wrap=True)


def register(app: typer.Typer) -> None:
    @app.command("provision")
    def provision_cmd(
        month: Annotated[str, typer.Option("--month", help="The month end, YYYY-MM (a month that has ended)")],
        xlsx: Annotated[Path | None, typer.Option("--xlsx", help="Also write finance's workbook to this file")] = None,
        rerun_reason: Annotated[str, typer.Option("--rerun-reason", help="Calculate a month again (supersedes its run); say why")] = "",
        lookback: Annotated[int, typer.Option(help="Months of roll rates to average (12 to 36)")] = 12,
        user: Annotated[str, typer.Option(help="Recorded as the person who ran it")] = "cli",
    ) -> None:
        """IFRS 9 bad-debt provision of a month end (a month already run shows its stored figures; --rerun-reason runs it again)."""
        from opsline.cli import _engine, console, fail, progress_bar, utc_now
        from opsline.config import get_settings
        from opsline.core.errors import OpslineError
        from opsline.core.events import Actor
        from opsline.core.exports import export_sheets
        from opsline.core.localtime import zone
        from opsline.db.session import make_sessionmaker
        from opsline.debtors import provision

        now = utc_now()
        tz = zone(get_settings().timezone)
        try:
            m = provision.parse_month(month)
            with progress_bar() as progress, make_sessionmaker(_engine()).begin() as s:
                task = progress.add_task("month-end snapshots", total=None)

                def tick(done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

                rep = provision.run_provision(s, month=m, now=now, tz=tz, lookback=lookback, reason=rerun_reason or None, progress=tick,
                                              actor=Actor(name=user, roles=frozenset({"debtors_manager"})))
        except OpslineError as exc:
            fail(f"{exc.detail} (field: {exc.field})" if exc.field else exc.detail)
            return
        if rep.get("replayed"):
            console.print(f"[yellow]{rep['month']} was already run ({rep['created_at']:%Y-%m-%d %H:%M} UTC by {rep['created_by']}): "
                          "its stored figures follow; --rerun-reason calculates it again.[/yellow]")
        _print(rep)
        if xlsx is not None:
            _, _, body = export_sheets("xlsx", name=f"provision-{rep['month']}", sheets=provision.workbook_sheets(rep))
            xlsx.write_bytes(body)
            console.print(f"[green]workbook written:[/green] {xlsx}")

    @app.command("provision-history")
    def history_cmd(
        file: Annotated[Path, typer.Argument(help="CSV or xlsx: month, segment, bucket, balance[, rolled, stayed, currency]")],
        user: Annotated[str, typer.Option(help="Recorded as the person who imported it")] = "cli",
    ) -> None:
        """Import month-end ageing history from the prior billing system (every line valid, or nothing is imported)."""
        from opsline.cli import _engine, console, fail, utc_now
        from opsline.config import DEFAULT_CURRENCY, get_settings
        from opsline.core.errors import OpslineError
        from opsline.core.events import Actor
        from opsline.core.localtime import zone
        from opsline.db.session import make_sessionmaker
        from opsline.debtors import provision

        if not file.is_file():
            fail(f"{file}: no such file (field: file)")
            return
        try:
            with make_sessionmaker(_engine()).begin() as s:
                res = provision.import_history(s, data=file.read_bytes(), filename=file.name, now=utc_now(), tz=zone(get_settings().timezone),
                                               actor=Actor(name=user, roles=frozenset({"debtors_manager"})), default_currency=DEFAULT_CURRENCY)
        except OpslineError as exc:
            errors = exc.extra.get("errors") if exc.extra else None
            if errors:
                for e in errors:
                    console.print(f"[red]{e['file']} line {e['line']}, {e['field']}: {e['message']}[/red]")
                fail(f"nothing imported: {len(errors)} bad line(s)")
            else:
                fail(f"{exc.detail} (field: {exc.field})" if exc.field else exc.detail)
            return
        console.print(f"[green]imported {res['lines']} lines[/green]: {res['months']} month ends, {res['first']} to {res['last']}")

    @app.command("provision-adjust")
    def adjust_cmd(
        month: Annotated[str, typer.Option("--month", help="In effect from this month, YYYY-MM")],
        pct: Annotated[str, typer.Option("--pct", help="Percent added to the loss rates, e.g. 5 or -2.5")],
        reason: Annotated[str, typer.Option("--reason", help="Why (required; audited)")] = "",
        segment: Annotated[str, typer.Option("--segment", help="One segment's code; all segments when left out")] = "",
        user: Annotated[str, typer.Option(help="Recorded as the person who entered it")] = "cli",
    ) -> None:
        """Enter the forward-looking adjustment to the loss rates (from a month on, for one segment or all)."""
        from opsline.cli import _engine, console, fail, utc_now
        from opsline.config import get_settings
        from opsline.core.errors import OpslineError
        from opsline.core.events import Actor
        from opsline.core.localtime import zone
        from opsline.db.session import make_sessionmaker
        from opsline.debtors import provision

        try:
            m = provision.parse_month(month)
            p = provision.parse_pct(pct)
            with make_sessionmaker(_engine()).begin() as s:
                provision.set_adjustment(s, month=m, segment_code=segment, pct=p, reason=reason, now=utc_now(), tz=zone(get_settings().timezone),
                                         actor=Actor(name=user, roles=frozenset({"debtors_manager"})))
        except OpslineError as exc:
            fail(f"{exc.detail} (field: {exc.field})" if exc.field else exc.detail)
            return
        console.print(f"[green]adjustment {p} % for {segment or 'all segments'} from {month}[/green]")

    @app.command("provision-snapshot")
    def snapshot_cmd(month: Annotated[str, typer.Option("--month", help="The month end, YYYY-MM")]) -> None:
        """Take a month end's ledger ageing again (per account and per segment); stored runs keep their figures."""
        from opsline.cli import _engine, console, fail, utc_now
        from opsline.config import get_settings
        from opsline.core.errors import OpslineError
        from opsline.core.localtime import zone
        from opsline.core.money import Money
        from opsline.config import DEFAULT_CURRENCY
        from opsline.db.session import make_sessionmaker
        from opsline.debtors import provision

        try:
            m = provision.parse_month(month)
            with make_sessionmaker(_engine()).begin() as s:
                res = provision.take_snapshot(s, month=m, now=utc_now(), tz=zone(get_settings().timezone))
        except OpslineError as exc:
            fail(f"{exc.detail} (field: {exc.field})" if exc.field else exc.detail)
            return
        console.print(f"{res['month']}: {res['accounts']:,} accounts owing {Money.from_minor(res['balance_minor'], DEFAULT_CURRENCY)}")
