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
from opsline.debtors import actions, arrangements, holds, runs, writeoffs

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
    _write_offs(factory, today=today, now=ctx.now, tz=tz)
    with factory() as s:
        ctx.counts["arrangements"] = int(s.execute(text("SELECT COUNT(*) FROM arrangement")).scalar_one())
        ctx.counts["write_offs"] = int(s.execute(text("SELECT COUNT(*) FROM write_off")).scalar_one())


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


SINGLE_WRITE_OFFS = [  # (reason, what the manager does: approve / reject / wait, or the clerk withdraws)
    ("Customer deceased; the estate is insolvent (letter from the executor)", "approve"),
    ("Sequestrated: trustee confirms no dividend for concurrent creditors", "approve"),
    ("Untraceable: tracing agent found no address or employer", "approve"),
    ("Business deregistered by CIPC; directors not liable", "wait"),
    ("Small balance after the final account; costs more to collect than it is worth", "wait"),
    ("Customer says the line was never installed; claim under review", "reject"),
    ("Proposed in error: the customer has a payment arrangement coming", "withdraw"),
]


def _write_offs(factory: Any, *, today: Any, now: datetime, tz: Any) -> None:
    """/debtors/writeoffs in every state: single proposals by the clerk three days ago (three approved and posted by the
    manager, two waiting, one rejected, one withdrawn) and a bulk batch of small old balances on closed accounts proposed by
    the clerk and approved by the manager (four eyes). A few service calls and one set-based batch at any demo size."""
    proposed_at = now - timedelta(days=3)
    on = local_date(proposed_at, tz)
    with factory() as s:
        pg = s.get_bind().dialect.name == "postgresql"
        since = today - timedelta(days=30)
        # the biggest balances owed for over 30 days, left alone by holds, arrangements and earlier write-offs (one aggregate)
        ids = s.execute(text("""SELECT le.account_id FROM ledger_entry le JOIN account a ON a.id = le.account_id
                                WHERE a.status IN ('active', 'suspended')
                                  AND NOT EXISTS (SELECT 1 FROM write_off w WHERE w.account_id = le.account_id)
                                  AND NOT EXISTS (SELECT 1 FROM arrangement g WHERE g.account_id = le.account_id AND g.state IN ('proposed', 'active'))
                                  AND NOT EXISTS (SELECT 1 FROM dunning_hold h WHERE h.account_id = le.account_id AND h.state = 'active')
                                  AND NOT EXISTS (SELECT 1 FROM billing_claim c WHERE c.account_id = le.account_id)
                                GROUP BY le.account_id
                                HAVING SUM(le.amount_minor) > 0 AND MIN(CASE WHEN le.amount_minor > 0 THEN le.due_date END) < :since
                                ORDER BY SUM(le.amount_minor) DESC, le.account_id LIMIT :n"""),
                        {"since": since if pg else since.isoformat(), "n": len(SINGLE_WRITE_OFFS)}).scalars().all()
    for k, (acc, (reason, then)) in enumerate(zip(ids, SINGLE_WRITE_OFFS)):
        with factory.begin() as s:
            try:
                wo = writeoffs.propose(s, account_id=int(acc), amount=None, reason=reason, today=on, now=proposed_at + timedelta(minutes=10 * k), actor=CLERK)
            except writeoffs.UnableToWriteOff:
                continue
            later = proposed_at + timedelta(days=1, minutes=10 * k)
            if then == "approve":
                writeoffs.approve(s, write_off_id=wo.id, now=later, actor=MANAGER)
            elif then == "reject":
                writeoffs.decide(s, write_off_id=wo.id, action="reject", reason="Not until the claim is decided; dunning stays on hold meanwhile",
                                 now=later, actor=MANAGER)
            elif then == "withdraw":
                writeoffs.decide(s, write_off_id=wo.id, action="cancel", reason="Customer called: arrangement instead", now=later, actor=CLERK)
    # the bulk batch: closed accounts with a small balance left (wider criteria when the demo has fewer than two)
    chosen = None
    for crit in (writeoffs.BulkCriteria(status="closed", max_balance_minor=50_000, min_days=30),
                 writeoffs.BulkCriteria(status="closed", max_balance_minor=None, min_days=30),
                 writeoffs.BulkCriteria(status="suspended", max_balance_minor=150_000, min_days=30),
                 writeoffs.BulkCriteria(status="suspended", max_balance_minor=None, min_days=45)):
        with factory() as s:
            n = writeoffs.dry_run(s, criteria=crit, today=on, now=proposed_at, sample=0)["count"]
        if n >= 2 or (n and chosen is None):
            chosen = crit
        if n >= 2:
            break
    for crit in [chosen] if chosen else []:
        with factory.begin() as s:
            cap = "" if crit.max_balance_minor is None else f" under R{crit.max_balance_minor // 100:,}"
            batch = writeoffs.propose_batch(s, criteria=crit, today=on, actor=CLERK,
                                            reason=f"Balances{cap} on {crit.status} accounts over {crit.min_days} days past due: uneconomic to collect further",
                                            now=proposed_at + timedelta(hours=2))
        with factory.begin() as s:
            writeoffs.approve_batch(s, batch_id=batch.id, now=proposed_at + timedelta(days=1, hours=2), actor=MANAGER)
