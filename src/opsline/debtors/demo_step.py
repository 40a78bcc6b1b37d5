"""Demo: dunning run day by day over the last three weeks (as the scheduler would have), each day's actions carried out
by the worker code, and a few holds, so the debtors desk shows reminders, letters of demand, suspensions, steps
waiting for a person and accounts left alone for disputes and suspense."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import text, update

from opsline.config import get_settings
from opsline.core.events import Actor
from opsline.core.jobs import Job
from opsline.core.localtime import local_date, zone
from opsline.db.session import make_sessionmaker
from opsline.debtors import actions, holds, runs

DAYS = 22
# Above this many accounts the demo keeps to today's run and leaves its actions queued for the worker, as a live system
# would (carrying out three weeks of letters and messages inline would take the demo from minutes to hours).
HISTORY_UP_TO_ACCOUNTS = 5_000
# Above this, no run at all: the payments demo pays only the oldest 1,000,000 invoices, so a run would chase most accounts
# (`opsline dunning-run --date D --dry-run` shows what it would do).
RUN_UP_TO_ACCOUNTS = 100_000
CLERK = Actor(name="debtors", roles=frozenset({"debtors_clerk"}))
MANAGER = Actor(name="debtorsmgr", roles=frozenset({"debtors_manager"}))
HOLD_REASONS = ["Customer in hospital; family will pay by month-end", "Disputing installation date with the FNO; wait for the ticket",
                "Retrenched; applying for an arrangement next week"]


def run(ctx: Any) -> None:
    factory = make_sessionmaker(ctx.engine)
    tz = zone(get_settings().timezone)
    today = local_date(ctx.now, tz)
    with factory.begin() as s:
        overdue = s.execute(text("SELECT l.account_id FROM ledger_entry l JOIN account a ON a.id = l.account_id "
                                 "WHERE l.amount_minor > 0 AND l.due_date < :d AND a.status = 'active' GROUP BY l.account_id ORDER BY l.account_id LIMIT 3"),
                            {"d": (today - timedelta(days=DAYS)).isoformat() if s.get_bind().dialect.name == "sqlite" else today - timedelta(days=DAYS)}).scalars().all()
        for k, acc in enumerate(overdue):
            holds.place_hold(s, account_id=int(acc), reason=HOLD_REASONS[k % len(HOLD_REASONS)], valid_to=today + timedelta(days=3 + 4 * k),
                             valid_from=today - timedelta(days=DAYS), today=today - timedelta(days=DAYS), now=ctx.now - timedelta(days=DAYS), actor=CLERK)
    history = ctx.accounts <= HISTORY_UP_TO_ACCOUNTS
    days = DAYS if history else 0
    task = ctx.progress.add_task("dunning", total=days + 1)
    total = {"actions": 0, "runs": 0}
    for back in range(days, -1 if ctx.accounts <= RUN_UP_TO_ACCOUNTS else days, -1):
        day = today - timedelta(days=back)
        at = ctx.now - timedelta(days=back)
        with factory.begin() as s:
            res = runs.run_dunning(s, run_date=day, today=day, now=at, actor=MANAGER)
        if not res["already_run"] and history:
            with factory.begin() as s:
                actions.perform_actions(s, run_id=res["run_id"], now=at + timedelta(minutes=5))
                # the worker did these; their queued jobs are done
                s.execute(update(Job).where(Job.kind == runs.PERFORM_JOB, Job.state == "queued").values(state="done", finished_at=at + timedelta(minutes=5)))
        if not res["already_run"]:
            total["actions"] += res["actions"]
            total["runs"] += 1
        ctx.progress.advance(task)
    ctx.counts.update({"dunning_runs": total["runs"], "dunning_actions": total["actions"]})
