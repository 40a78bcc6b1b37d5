"""Demo: dunning run day by day over the last three weeks (as the scheduler would have), each day's actions carried out
by the worker code, and a few holds, so the debtors desk shows reminders, letters of demand, suspensions, steps
waiting for a person and accounts left alone for disputes and suspense."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import text, update

from opsline.config import get_settings
from opsline.core.events import Actor
from opsline.core.jobs import Job
from opsline.core.localtime import local_date, zone
from opsline.db.session import make_sessionmaker
from opsline.debtors import actions, arrangements, holds, runs

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
    picks = _arrangement_accounts(factory, today=today, skip=set(overdue)) if history else []
    for back in range(days, -1 if ctx.accounts <= RUN_UP_TO_ACCOUNTS else days, -1):
        day = today - timedelta(days=back)
        at = ctx.now - timedelta(days=back)
        if picks and back == 10:  # a promise made ten days ago for four days later, not paid: the run breaks it
            _promise(factory, picks[0], day=day, at=at, due=day + timedelta(days=4))
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
    for k, acc in enumerate(picks[1:4]):  # promises due today and this week, on the desk
        _promise(factory, acc, day=today, at=ctx.now, due=today + timedelta(days=2 * k))
    if len(picks) > 4:  # a pay-off plan above the clerk's limit: waits for the manager
        _promise(factory, picks[4], day=today, at=ctx.now, due=today + timedelta(days=30), plan=True)
    ctx.counts.update({"dunning_runs": total["runs"], "dunning_actions": total["actions"]})
    with factory() as s:
        ctx.counts["arrangements"] = int(s.execute(text("SELECT COUNT(*) FROM arrangement")).scalar_one())


def _arrangement_accounts(factory: Any, *, today: Any, skip: set[int]) -> list[int]:
    """Five active accounts overdue three weeks ago and not held, for the demo's arrangements."""
    with factory() as s:
        pg = s.get_bind().dialect.name == "postgresql"
        d = today - timedelta(days=DAYS)
        rows = s.execute(text("SELECT l.account_id FROM ledger_entry l JOIN account a ON a.id = l.account_id WHERE l.amount_minor > 0 AND l.due_date < :d "
                              "AND a.status = 'active' GROUP BY l.account_id ORDER BY l.account_id DESC LIMIT 200"), {"d": d if pg else d.isoformat()}).scalars().all()
        out = []
        for acc in (int(r) for r in rows if int(r) not in skip):  # still owing today and ten days ago (a small demo: a few hundred reads)
            if all(arrangements.overdue_minor(s, account_id=acc, today=day, now=datetime.combine(day, time(7), tzinfo=timezone.utc)) > 0
                   for day in (today, today - timedelta(days=10))):
                out.append(acc)
            if len(out) == 5:
                break
    return out


def _promise(factory: Any, account_id: int, *, day: Any, at: Any, due: Any, plan: bool = False) -> None:
    """A promise to pay the overdue debt by `due` (or, with `plan`, the debt plus R10,000 in two instalments, above a clerk's limit)."""
    with factory.begin() as s:
        owed = arrangements.overdue_minor(s, account_id=account_id, today=day, now=at)
        if owed <= 0:
            return
        try:
            if plan:
                big = owed + 1_000_000
                arrangements.propose(s, account_id=account_id, kind="plan", amount_minor=big, today=day, now=at, actor=CLERK,
                                     instalments=[arrangements.InstalmentIn(due - timedelta(days=15), big // 2), arrangements.InstalmentIn(due, big - big // 2)],
                                     note="includes next months' service")
            else:
                arrangements.propose(s, account_id=account_id, kind="promise", today=day, now=at, actor=CLERK,
                                     instalments=[arrangements.InstalmentIn(due, owed)], note="promised on the phone")
        except arrangements.UnableToArrange:
            return
