"""Bill runs: start (sharded into jobs), set-based shard computation, review, four-eyes approval, gapless finalise, rollback."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opsline.billing import charges, ledger
from opsline.billing.charges import STAGE, dialect_of
from opsline.billing.models import BILL_RUN, BillingCycle, BillRun, BillRunShard, BillRunState
from opsline.billing.periods import add_months
from opsline.billing.review_stats import analyze_run_tables, variance_stats
from opsline.billing.service import invoice_number_prefix, reserve_invoice_numbers, setting
from opsline.config import get_settings
from opsline.core import events, jobs, lifecycle
from opsline.core.errors import Conflict, NotFound, PermissionDenied, TransitionNotAllowed
from opsline.core.events import Actor
from opsline.users.roles import allowed

SHARD_JOB = "billing.shard"
RENDER_JOB = "invoicing.render_pdf"
EMAIL_JOB = "invoicing.email_invoice"

S = BillRunState
USER_ONLY_REAL = ("approve", "finalise")  # a dry run is only for review: never approved or finalised


class UnableToStartBillRun(Conflict):
    pass


class BillRunActionNotAllowed(TransitionNotAllowed):
    pass


def allowed_actions(run: BillRun, *, actor: Actor | None = None) -> list[str]:
    """User actions available from the run's state (dry runs are never approved or finalised)."""
    acts = BILL_RUN.allowed_actions(run.state, actor=actor)
    if run.dry_run:
        acts = [a for a in acts if a not in USER_ONLY_REAL]
    return acts


def transition(session: Session, run: BillRun, action: str, *, now: datetime, actor: Actor, reason: str | None = None) -> list[str]:
    """Apply `action` through the bill-run lifecycle; returns the actions allowed next. Raises BillRunActionNotAllowed
    (finalised, dry run, not allowed from this state) and the lifecycle's ActionNotPermitted / FourEyesRequired."""
    if run.state == S.FINALISED and action in BILL_RUN.actions():
        why = "already finalised" if action == "finalise" else "finalised; its invoices are issued and can only be corrected with credit notes"
        raise BillRunActionNotAllowed(f"bill run {run.id} is {why}", field="state")
    if run.dry_run and action in USER_ONLY_REAL:
        raise BillRunActionNotAllowed(f"cannot {action} bill run {run.id}: a dry run is only for review; roll it back and start a real run", field="state")
    try:
        lifecycle.transition(session, BILL_RUN, run, action, now=now, actor=actor, reason=reason)
    except TransitionNotAllowed as exc:
        raise BillRunActionNotAllowed(exc.detail, field="state", extra=exc.extra) from exc
    return allowed_actions(run, actor=actor)


def get_run(session: Session, *, bill_run_id: int, lock: bool = False) -> BillRun:
    q = select(BillRun).where(BillRun.id == bill_run_id)
    if lock and dialect_of(session).pg:
        q = q.with_for_update()
    run = session.execute(q).scalar_one_or_none()
    if run is None:
        raise NotFound(f"bill run {bill_run_id} not found")
    return run


def start_bill_run(session: Session, *, cycle_date: date, now: datetime, actor: Actor, dry_run: bool = False, shards: int | None = None) -> BillRun:
    """Create a bill run for the period [cycle_date, cycle_date + 1 month) of accounts whose bill day is cycle_date's day,
    and enqueue its shard jobs. Raises UnableToStartBillRun (unknown bill day, a live run for the cycle exists or is finalised)."""
    if not allowed(actor.roles, "billing.run"):
        raise PermissionDenied("your role does not allow 'billing.run'")
    days = set(session.execute(select(BillingCycle.bill_day)).scalars())
    if cycle_date.day not in days:
        raise UnableToStartBillRun(f"{cycle_date.isoformat()} is not a bill day; bill days are {', '.join(str(d) for d in sorted(days))}", field="cycle_date")
    existing = session.execute(select(BillRun).where(BillRun.cycle_date == cycle_date, BillRun.state != S.ROLLED_BACK)).scalars().first()
    if existing is not None:
        if existing.state == S.FINALISED:
            raise UnableToStartBillRun(f"the {cycle_date.isoformat()} cycle is already finalised (bill run {existing.id}); correct it with credit notes", field="cycle_date")
        raise UnableToStartBillRun(f"bill run {existing.id} for {cycle_date.isoformat()} is {existing.state}; finish or roll it back first", field="cycle_date")
    n = max(1, min(64, shards or int(setting(session, "bill_run_shards", 8))))
    lo, hi = session.execute(text("SELECT MIN(id), MAX(id) FROM account WHERE bill_cycle_day = :d"), {"d": cycle_date.day}).one()
    lo = int(lo or 0)
    hi = int(hi or 0) + 1
    width = max(1, -(-(hi - lo) // n))
    ranges = [(lo + i * width, min(hi, lo + (i + 1) * width)) for i in range(n) if lo + i * width < hi] or [(0, 1)]
    run = BillRun(cycle_date=cycle_date, period_start=cycle_date, period_end=add_months(cycle_date, 1), state=S.DRAFT_RUNNING, dry_run=dry_run,
                  shard_count=len(ranges), shards_done=0, accounts_count=0, lines_count=0, subtotal_minor=0, tax_minor=0, total_minor=0,
                  currency=_run_currency(session, cycle_date.day), created_at=now, created_by=actor.name)
    session.add(run)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise UnableToStartBillRun(f"another bill run for {cycle_date.isoformat()} was just started", field="cycle_date") from exc
    for i, (a, b) in enumerate(ranges):
        session.add(BillRunShard(bill_run_id=run.id, shard_no=i, account_from=a, account_to=b, state="queued"))
        jobs.enqueue(session, kind=SHARD_JOB, payload={"bill_run_id": run.id, "shard_no": i}, now=now, idempotency_key=f"billrun:{run.id}:shard:{i}", priority=50)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="bill_run", entity_id=run.id, action="started",
                  after={"cycle_date": cycle_date.isoformat(), "dry_run": dry_run, "shards": len(ranges), "state": run.state})
    return run


def _run_currency(session: Session, day: int) -> str:
    """The currency most of the cycle's accounts are billed in (the run's totals are in it; accounts in another
    currency are billed in theirs and reported as such)."""
    cur = session.execute(text("SELECT currency FROM account WHERE bill_cycle_day = :d GROUP BY currency ORDER BY COUNT(*) DESC, currency LIMIT 1"),
                          {"d": day}).scalar()
    return str(cur or get_settings().currency)


def _clear_shard(session: Session, run_id: int, lo: int, hi: int) -> None:
    """Undo a shard's earlier draft (a re-run recomputes it from scratch, so nothing is ever duplicated)."""
    sel = "SELECT id FROM invoice WHERE bill_run_id = :run AND account_id >= :lo AND account_id < :hi AND state = 'draft'"
    p = {"run": run_id, "lo": lo, "hi": hi}
    session.execute(text(f"UPDATE usage_record SET invoice_id = NULL WHERE state = 'rated' AND invoice_id IN ({sel})"), p)
    session.execute(text(f"UPDATE pending_charge SET invoice_id = NULL WHERE state = 'pending' AND invoice_id IN ({sel})"), p)
    session.execute(text(f"DELETE FROM invoice_line WHERE invoice_id IN ({sel})"), p)
    session.execute(text("DELETE FROM invoice WHERE bill_run_id = :run AND account_id >= :lo AND account_id < :hi AND state = 'draft'"), p)


def _compute_range(session: Session, run: BillRun, *, lo: int, hi: int, now: datetime) -> tuple[int, int, int, int, int]:
    """Stage and write the draft invoices and lines of accounts [lo, hi) for `run`; returns (accounts, lines, subtotal, tax, total)."""
    dia = dialect_of(session)
    prev_start = add_months(run.period_start, -1)
    if dia.pg:
        session.execute(text("SET LOCAL work_mem = '64MB'"))  # the per-account aggregate and joins stay in memory
    charges.create_stage(session, dia)
    charges.stage_lines(session, lo=lo, hi=hi, bill_day=run.cycle_date.day, period_start=run.period_start, period_end=run.period_end,
                        prev_start=prev_start, charge_suspended=setting(session, "suspension_policy", "charge") != "no_charge", now=now)
    p = {"run": run.id, "ps": dia.bind_date(run.period_start), "pe": dia.bind_date(run.period_end), "now": dia.bind_ts(now)}
    session.execute(text(charges.invoices_from_stage_sql(dia)), p)
    session.execute(text(charges.lines_from_stage_sql(dia)), {"run": run.id, "ps": p["ps"], "lo": lo, "hi": hi})
    inv_of = "(SELECT i.id FROM invoice i WHERE i.account_id = {t}.account_id AND i.period_start = " + dia.d("ps") + " AND i.kind = 'cycle' AND i.bill_run_id = :run)"
    session.execute(text(f"UPDATE pending_charge SET invoice_id = {inv_of.format(t='pending_charge')} WHERE id IN (SELECT pending_charge_id FROM {STAGE} WHERE pending_charge_id IS NOT NULL)"),
                    {"run": run.id, "ps": p["ps"]})
    session.execute(text(
        f"UPDATE usage_record SET invoice_id = {inv_of.format(t='usage_record')} WHERE state = 'rated' AND invoice_id IS NULL AND rated_amount_minor IS NOT NULL "
        "AND started_at < :ps_ts AND account_id >= :lo AND account_id < :hi AND tax_rate_code IS NOT NULL "
        "AND EXISTS (SELECT 1 FROM account a WHERE a.id = usage_record.account_id AND a.bill_cycle_day = :day AND a.currency = usage_record.currency)"),
        {"run": run.id, "ps": p["ps"], "lo": lo, "hi": hi, "day": run.cycle_date.day,
         "ps_ts": dia.bind_ts(datetime.combine(run.period_start, datetime.min.time(), tzinfo=now.tzinfo))})
    tot = session.execute(text(
        f"SELECT COUNT(*) AS n, COUNT(DISTINCT account_id) AS a, COALESCE(SUM(amount_minor), 0) AS sub, "
        f"COALESCE(SUM(tax_minor), 0) AS tax FROM {STAGE}")).one()
    charges.drop_stage(session, dia)
    return (int(tot.a), int(tot.n), int(tot.sub), int(tot.tax), int(tot.sub) + int(tot.tax))


def run_shard(session: Session, *, bill_run_id: int, shard_no: int, now: datetime) -> dict[str, Any]:
    """Compute one shard's draft invoices and lines with set-based SQL. Idempotent: a re-run replaces the shard's draft.

    Does nothing (and says so) when the run is no longer computing its draft (rolled back, approved ...)."""
    dia = dialect_of(session)
    q = select(BillRun).where(BillRun.id == bill_run_id)
    if dia.pg:
        q = q.with_for_update(key_share=True, read=True)  # FOR KEY SHARE: shards run side by side, rollback/finalise wait for them
    run = session.execute(q).scalar_one_or_none()
    if run is None:
        raise NotFound(f"bill run {bill_run_id} not found")
    if run.state not in (S.DRAFT_RUNNING, S.DRAFT):
        return {"skipped": run.state}
    shard = session.execute(select(BillRunShard).where(BillRunShard.bill_run_id == bill_run_id, BillRunShard.shard_no == shard_no)).scalar_one()
    lo, hi = shard.account_from, shard.account_to
    was_done = shard.state == "done"
    old = (shard.accounts_count, shard.lines_count, shard.subtotal_minor, shard.tax_minor, shard.total_minor)
    if was_done:
        _clear_shard(session, run.id, lo, hi)
    new = _compute_range(session, run, lo=lo, hi=hi, now=now)
    session.execute(text(
        "UPDATE bill_run_shard SET state = 'done', accounts_count = :a, lines_count = :n, subtotal_minor = :s, tax_minor = :t, total_minor = :tt, finished_at = :now "
        "WHERE bill_run_id = :run AND shard_no = :no"),
        {"a": new[0], "n": new[1], "s": new[2], "t": new[3], "tt": new[4], "now": dia.bind_ts(now), "run": run.id, "no": shard_no})
    inc = 0 if was_done else 1
    # Increments, not recounts: concurrent shards serialise on this row and each adds its own figures.
    session.execute(text(
        "UPDATE bill_run SET shards_done = shards_done + :inc, accounts_count = accounts_count + :da, lines_count = lines_count + :dn, "
        "subtotal_minor = subtotal_minor + :ds, tax_minor = tax_minor + :dt, total_minor = total_minor + :dtt WHERE id = :run"),
        {"inc": inc, "da": new[0] - old[0], "dn": new[1] - old[1], "ds": new[2] - old[2], "dt": new[3] - old[3], "dtt": new[4] - old[4], "run": run.id})
    session.expire(run)
    run = session.get(BillRun, bill_run_id)
    assert run is not None
    if run.state == S.DRAFT_RUNNING and run.shards_done >= run.shard_count:
        # the review reads what the shards just wrote: fresh statistics first, then the one-pass variance count
        analyze_run_tables(session)
        run.flagged_count = variance_stats(session, bill_run_id=run.id, run=run)["flagged"]
        transition(session, run, "complete", now=now, actor=Actor.system("billrun"), reason=f"all {run.shard_count} shards computed")
    return {"bill_run_id": run.id, "shard_no": shard_no, "accounts": new[0], "lines": new[1]}


def recompute_account(session: Session, *, bill_run_id: int, account_id: int, now: datetime) -> bool:
    """Recompute one account's draft invoice in a computed draft run (e.g. after a final account settled some of its
    products), set-based like a shard, and move the shard's and run's totals by the difference. Returns False when the
    run holds no draft of the account. Raises BillRunActionNotAllowed when the run is not a computed draft (review,
    approved: the reviewed figures must not change under the reviewer)."""
    run = get_run(session, bill_run_id=bill_run_id, lock=True)
    if run.state != S.DRAFT:
        raise BillRunActionNotAllowed(f"bill run {run.id} is {run.state}; roll it back or finish it first", field="state")
    old = session.execute(text("SELECT COUNT(*) AS a, COALESCE(SUM(subtotal_minor), 0) AS sub, COALESCE(SUM(tax_minor), 0) AS tax, "
                               "(SELECT COUNT(*) FROM invoice_line l WHERE l.invoice_id IN (SELECT id FROM invoice WHERE bill_run_id = :run AND account_id = :a "
                               "AND state = 'draft')) AS n FROM invoice WHERE bill_run_id = :run AND account_id = :a AND state = 'draft'"),
                          {"run": run.id, "a": account_id}).one()
    if not old.a:
        return False
    shard = session.execute(select(BillRunShard).where(BillRunShard.bill_run_id == run.id, BillRunShard.account_from <= account_id,
                                                       BillRunShard.account_to > account_id)).scalar_one()
    _clear_shard(session, run.id, account_id, account_id + 1)
    new = _compute_range(session, run, lo=account_id, hi=account_id + 1, now=now)
    d = (new[0] - int(old.a), new[1] - int(old.n), new[2] - int(old.sub), new[3] - int(old.tax), new[4] - int(old.sub) - int(old.tax))
    for table, key in (("bill_run_shard", "id = :id"), ("bill_run", "id = :id")):
        session.execute(text(f"UPDATE {table} SET accounts_count = accounts_count + :da, lines_count = lines_count + :dn, subtotal_minor = subtotal_minor + :ds, "
                             f"tax_minor = tax_minor + :dt, total_minor = total_minor + :dtt WHERE {key}"),
                        {"da": d[0], "dn": d[1], "ds": d[2], "dt": d[3], "dtt": d[4], "id": shard.id if table == "bill_run_shard" else run.id})
    session.expire(run)
    events.record(session, now=now, actor=Actor.system("billrun"), entity_type="bill_run", entity_id=run.id, action="account_recomputed",
                  account_id=account_id, after={"account_id": account_id, "subtotal_delta_minor": d[2], "total_delta_minor": d[4]})
    return True


def shard_job(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Job handler for "billing.shard"."""
    return run_shard(session, bill_run_id=int(payload["bill_run_id"]), shard_no=int(payload["shard_no"]), now=now)


def open_review(session: Session, *, bill_run_id: int, now: datetime, actor: Actor) -> BillRun:
    """Move a computed draft into review. Raises BillRunActionNotAllowed."""
    run = get_run(session, bill_run_id=bill_run_id, lock=True)
    transition(session, run, "review", now=now, actor=actor)
    return run


def approve_bill_run(session: Session, *, bill_run_id: int, now: datetime, actor: Actor, reason: str | None = None) -> BillRun:
    """Approve a reviewed run (permission billing.approve; four-eyes: not by the person who started it).
    Raises ActionNotPermitted, FourEyesRequired, BillRunActionNotAllowed."""
    run = get_run(session, bill_run_id=bill_run_id, lock=True)
    transition(session, run, "approve", now=now, actor=actor, reason=reason)
    run.approved_at = now
    run.approved_by = actor.name
    return run


def finalise_bill_run(session: Session, *, bill_run_id: int, now: datetime, actor: Actor) -> BillRun:
    """Issue an approved run: gapless numbers (one statement), state new, due dates, ledger entries, PDF and e-mail jobs,
    usage and queued charges marked billed. Raises BillRunActionNotAllowed (not approved, already finalised)."""
    dia = dialect_of(session)
    run = get_run(session, bill_run_id=bill_run_id, lock=True)
    transition(session, run, "finalise", now=now, actor=actor)
    prefix = invoice_number_prefix(session, now=now)
    pending = int(session.execute(text("SELECT COUNT(*) FROM invoice WHERE bill_run_id = :run AND state = 'draft'"), {"run": run.id}).scalar_one())
    base = reserve_invoice_numbers(session, prefix=prefix, count=pending)
    issue = now.date()
    p = {"run": run.id, "base": base, "prefix": prefix + "-", "now": dia.bind_ts(now), "issue": dia.bind_date(issue)}
    res = session.execute(text(f"""
        UPDATE invoice SET number = :prefix || {dia.pad8(':base + x.rn - 1')}, state = 'new', issued_at = :now,
               due_date = {dia.add_days(dia.d('issue'), 'x.terms')}, version = invoice.version + 1
        FROM (SELECT i2.id AS iid, ROW_NUMBER() OVER (ORDER BY i2.account_id, i2.id) AS rn, a.payment_terms_days AS terms
              FROM invoice i2 JOIN account a ON a.id = i2.account_id WHERE i2.bill_run_id = :run AND i2.state = 'draft') x
        WHERE invoice.id = x.iid"""), p)
    count = res.rowcount or 0
    if count != pending:  # cannot happen while the run row is locked; refuse rather than leave a gap
        raise Conflict(f"bill run {run.id} changed while finalising ({count} of {pending} invoices numbered); try again")
    ledger.post_select(session, select_sql="""
        SELECT account_id, 'invoice' AS kind, 'invoice' AS ref_type, id AS ref_id, total_minor AS amount_minor, currency, :now AS posted_at, due_date,
               'Invoice ' || number AS description
        FROM invoice WHERE bill_run_id = :run""", params={"run": run.id, "now": p["now"]})
    for kind, prio in ((RENDER_JOB, 120), (EMAIL_JOB, 130)):
        session.execute(text(f"""
            INSERT INTO job (kind, payload, state, priority, run_at, created_at, attempts, max_attempts, idempotency_key, serial_key)
            SELECT CAST(:kind AS VARCHAR(80)), {dia.json_invoice('id')}, 'queued', :prio, :now, :now, 0, 8, CAST(:kind2 AS VARCHAR(80)) || ':' || CAST(id AS TEXT), 'invoice:' || CAST(id AS TEXT)
            FROM invoice WHERE bill_run_id = :run ORDER BY id"""), {"kind": kind, "kind2": kind, "prio": prio, "now": p["now"], "run": run.id})
    # one account-timeline event per issued invoice, written set-based like everything else here
    obj = "jsonb_build_object" if dia.pg else "json_object"
    session.execute(text(f"""
        INSERT INTO audit_event (occurred_at, actor, entity_type, entity_id, account_id, action, reason, after)
        SELECT :now, :actor, 'invoice', CAST(id AS TEXT), account_id, 'issued', 'bill run ' || CAST(bill_run_id AS TEXT),
               {obj}('number', number, 'total_minor', total_minor, 'currency', currency, 'due_date', CAST(due_date AS TEXT))
        FROM invoice WHERE bill_run_id = :run"""), {"now": p["now"], "actor": actor.name, "run": run.id})
    sel = "SELECT id FROM invoice WHERE bill_run_id = :run"
    session.execute(text(f"UPDATE usage_record SET state = 'billed' WHERE state = 'rated' AND invoice_id IN ({sel})"), {"run": run.id})
    session.execute(text(f"UPDATE pending_charge SET state = 'billed' WHERE state = 'pending' AND invoice_id IN ({sel})"), {"run": run.id})
    run.finalised_at = now
    events.record(session, now=now, actor=actor, entity_type="bill_run", entity_id=run.id, action="issued",
                  after={"invoices": count, "first_number": f"{prefix}-{base:08d}" if count else None, "last_number": f"{prefix}-{base + count - 1:08d}" if count else None})
    return run


def rollback_bill_run(session: Session, *, bill_run_id: int, now: datetime, actor: Actor, reason: str | None = None) -> BillRun:
    """Delete a draft run's invoices and lines (set-based), free its usage and queued charges. Raises BillRunActionNotAllowed after finalise."""
    run = get_run(session, bill_run_id=bill_run_id, lock=True)
    transition(session, run, "rollback", now=now, actor=actor, reason=reason)
    sel = "SELECT id FROM invoice WHERE bill_run_id = :run AND state = 'draft'"
    p = {"run": run.id}
    session.execute(text(f"UPDATE usage_record SET invoice_id = NULL WHERE state = 'rated' AND invoice_id IN ({sel})"), p)
    session.execute(text(f"UPDATE pending_charge SET invoice_id = NULL WHERE state = 'pending' AND invoice_id IN ({sel})"), p)
    session.execute(text(f"DELETE FROM invoice_line WHERE invoice_id IN ({sel})"), p)
    session.execute(text("DELETE FROM invoice WHERE bill_run_id = :run AND state = 'draft'"), p)
    return run


def act(session: Session, *, bill_run_id: int, action: str, now: datetime, actor: Actor, reason: str | None = None) -> BillRun:
    """The one entry point for a person's button on a bill run (review, approve, finalise, rollback).
    Raises BillRunActionNotAllowed (unknown action or not allowed now) and what the action itself raises."""
    handlers = {"review": open_review, "approve": approve_bill_run, "finalise": finalise_bill_run, "rollback": rollback_bill_run}
    fn = handlers.get(action)
    if fn is None:
        raise BillRunActionNotAllowed(f"'{action}' is not an action of a bill run", field="action")
    if action in ("approve", "rollback"):
        return fn(session, bill_run_id=bill_run_id, now=now, actor=actor, reason=reason)
    return fn(session, bill_run_id=bill_run_id, now=now, actor=actor)


# ---------------------------------------------------------------------------------------------- queries

def run_summary(run: BillRun) -> dict[str, Any]:
    return {
        "id": run.id, "cycle_date": run.cycle_date, "period_start": run.period_start, "period_end": run.period_end,
        "period_last_day": run.period_end - timedelta(days=1), "state": run.state, "dry_run": run.dry_run,
        "shard_count": run.shard_count, "shards_done": run.shards_done,
        "percent": int(100 * run.shards_done / run.shard_count) if run.shard_count else 100,
        "accounts_count": run.accounts_count, "lines_count": run.lines_count, "subtotal_minor": run.subtotal_minor, "tax_minor": run.tax_minor,
        "total_minor": run.total_minor, "currency": run.currency, "created_at": run.created_at, "created_by": run.created_by,
        "approved_at": run.approved_at, "approved_by": run.approved_by, "finalised_at": run.finalised_at, "error": run.error,
        "actions": allowed_actions(run), "running": run.state == S.DRAFT_RUNNING, "flagged_count": run.flagged_count,
    }


def list_runs(session: Session, *, limit: int = 50) -> list[dict[str, Any]]:
    runs = session.execute(select(BillRun).order_by(BillRun.cycle_date.desc(), BillRun.id.desc()).limit(limit)).scalars()
    return [run_summary(r) for r in runs]


def bill_run_detail(session: Session, *, bill_run_id: int) -> dict[str, Any]:
    return run_summary(get_run(session, bill_run_id=bill_run_id))


def invoice_count(session: Session, *, bill_run_id: int) -> int:
    from opsline.billing.models import Invoice

    return int(session.execute(select(func.count()).select_from(Invoice).where(Invoice.bill_run_id == bill_run_id)).scalar_one())


def drain_shards(factory: Any, *, now: datetime, worker_id: str = "billrun-local", threads: int = 1, on_shard: Any = None) -> int:
    """Run queued bill-run shard jobs through the job table in this process (the same path the workers take).
    `threads` > 1 claims shards in parallel (useful on PostgreSQL). Returns how many shard jobs ran."""
    import threading

    from opsline.jobs_registry import build_registry

    registry = build_registry()
    ran = [0]
    lock = threading.Lock()

    def loop(wid: str) -> None:
        while True:
            job = jobs.claim(factory, worker_id=wid, now=now, kinds=[SHARD_JOB])
            if job is None:
                return
            ok = jobs.run_claimed(factory, registry, job, worker_id=wid, now=now)
            with lock:
                ran[0] += 1
            if on_shard is not None:
                on_shard(job, ok)
            if not ok:
                return

    if threads <= 1:
        loop(worker_id)
    else:
        ts = [threading.Thread(target=loop, args=(f"{worker_id}-{i}",)) for i in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    return ran[0]


def _demo_discounts(ctx: Any, factory: Any, *, valid_from: date) -> None:
    """Demo discounts, as data: 10 % off one fibre offering for everyone, and a fixed monthly loyalty discount on
    about 3 % of accounts (set-based: one INSERT ... SELECT each, deterministic by account id)."""
    with factory.begin() as s:
        if s.execute(text("SELECT 1 FROM discount LIMIT 1")).first():
            return
        dia = dialect_of(s)
        off = s.execute(text("SELECT o.id, o.name FROM product_offering o WHERE o.kind = 'fibre' ORDER BY o.id LIMIT 1")).first()
        vf = dia.bind_date(valid_from)
        if off is not None:
            s.execute(text("INSERT INTO discount (account_id, offering_id, kind, value, valid_from, valid_to, description) "
                           "VALUES (NULL, :o, 'percent', 10, :vf, NULL, :d)"), {"o": off[0], "vf": vf, "d": f"Launch special: 10% off {off[1]}"})
        s.execute(text("INSERT INTO discount (account_id, offering_id, kind, value, valid_from, valid_to, description) "
                       "SELECT id, NULL, 'fixed', 50, :vf, NULL, 'Loyalty discount' FROM account WHERE id % 33 = 7"), {"vf": vf})
        ctx.counts["discounts"] = int(s.execute(text("SELECT COUNT(*) FROM discount")).scalar_one())


HISTORY_MONTHS = 3


def demo_bill_runs(ctx: Any) -> None:
    """Demo: finalised runs for each bill day of the last HISTORY_MONTHS months (so debts age into 30 and 60 days and
    the debtors desk has work) and a draft for this month's 1st, through the real services."""
    from datetime import timezone

    from opsline.db.session import make_sessionmaker

    factory = make_sessionmaker(ctx.engine)
    starter = Actor(name="billing", roles=frozenset({"billing_analyst"}))
    approver = Actor(name="debtorsmgr", roles=frozenset({"debtors_manager"}))
    this_month = ctx.now.date().replace(day=1)
    months = [add_months(this_month, -k) for k in range(HISTORY_MONTHS, 0, -1)]
    with factory() as s:
        days = sorted(set(s.execute(select(BillingCycle.bill_day)).scalars()))
    _demo_discounts(ctx, factory, valid_from=add_months(months[0], -1))
    finalised = 0
    for cycle in [m.replace(day=day) for m in months for day in days]:
        at = datetime.combine(cycle, datetime.min.time(), tzinfo=timezone.utc).replace(hour=4)
        with factory.begin() as s:
            if s.execute(select(BillRun.id).where(BillRun.cycle_date == cycle, BillRun.state != S.ROLLED_BACK)).first():
                continue
            rid = start_bill_run(s, cycle_date=cycle, now=at, actor=starter).id
        drain_shards(factory, now=at)
        with factory.begin() as s:
            open_review(s, bill_run_id=rid, now=at, actor=starter)
            approve_bill_run(s, bill_run_id=rid, now=at + timedelta(hours=2), actor=approver)
            finalise_bill_run(s, bill_run_id=rid, now=at + timedelta(hours=3), actor=approver)
            # Last month's invoices went out last month: no e-mails to demo customers now, and no burst of PDF renders
            # holding the demo database (the invoicing pages render a PDF on demand).
            for kind in (RENDER_JOB, EMAIL_JOB):
                s.execute(text(
                    "UPDATE job SET state = 'done', finished_at = :now, last_error = NULL WHERE state = 'queued' AND kind = :kind AND idempotency_key IN "
                    "(SELECT :kind2 || ':' || CAST(id AS TEXT) FROM invoice WHERE bill_run_id = :run)"),
                    {"now": dialect_of(s).bind_ts(ctx.now), "kind": kind, "kind2": kind, "run": rid})
            finalised += 1
    with factory.begin() as s:
        exists = s.execute(select(BillRun.id).where(BillRun.cycle_date == this_month, BillRun.state != S.ROLLED_BACK)).first()
    if not exists:
        from opsline.billing.demo_leaks import plant_late_activations  # demo-only module, kept out of the run's imports

        ctx.counts["late_activations"] = plant_late_activations(factory, cycle=this_month, now=ctx.now)
        with factory.begin() as s:
            start_bill_run(s, cycle_date=this_month, now=ctx.now, actor=starter)
    drain_shards(factory, now=ctx.now)
    with factory() as s:
        ctx.counts["bill_runs_finalised"] = finalised
        ctx.counts["invoices"] = int(s.execute(text("SELECT COUNT(*) FROM invoice")).scalar_one())
        ctx.counts["invoice_lines"] = int(s.execute(text("SELECT COUNT(*) FROM invoice_line")).scalar_one())
