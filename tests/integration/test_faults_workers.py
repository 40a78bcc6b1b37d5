"""Faults on PostgreSQL (issue 13, item 3): a job runner in its own process is killed with SIGKILL in the middle of a bill
run shard and of a dunning run's actions (its transaction open, rows written but not committed), and a statement import
CLI is killed mid-import; then a new worker (or a second import) finishes the work: nothing lost, nothing doubled, totals
checked. The dead worker's job is reclaimed as soon as its short lease runs out (its heartbeat died with it), in seconds.

The kill point is made deterministic with a lock the test holds on a table the work writes late: the victim blocks there
(seen in pg_stat_activity), is killed, and the lock is released. Partner 500s/timeouts and SMTP down are covered by
test_partners_http_adapter.py and test_notifications_delivery.py; the simulated-clock lease cases by test_jobs.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from conftest import NOW
from opsline.core.jobs import Worker
from opsline.db.session import make_sessionmaker
from opsline.jobs_registry import build_registry

LEASE = timedelta(seconds=3)
VENV_BIN = Path(sys.executable).parent

RUNNER = """
import sys
from datetime import timedelta
from opsline.core.jobs import Worker
from opsline.db.session import make_engine, make_sessionmaker
from opsline.jobs_registry import build_registry
Worker(make_sessionmaker(make_engine(sys.argv[1])), build_registry(), worker_id="doomed", lease=timedelta(seconds=float(sys.argv[2])),
       poll_seconds=0.2).run_forever()
"""


@pytest.fixture
def pg(engine: Engine) -> Engine:
    if engine.dialect.name != "postgresql":
        pytest.skip("killing a worker mid-transaction and reclaiming its lease is exercised on PostgreSQL")
    return engine


def _url(engine: Engine, app_name: str) -> str:
    return make_url(engine.url.render_as_string(hide_password=False)).update_query_dict({"application_name": app_name}).render_as_string(hide_password=False)


def _wait_blocked(engine: Engine, app_name: str, proc: subprocess.Popen[bytes], seconds: float = 90) -> None:
    """Until the victim's database session waits on the test's lock (it has done its earlier writes by then)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the victim ended on its own (rc {proc.returncode}): {proc.stderr.read().decode() if proc.stderr else ''}"
        with engine.connect() as c:
            if c.execute(text("SELECT 1 FROM pg_stat_activity WHERE application_name = :a AND wait_event_type = 'Lock'"), {"a": app_name}).first():
                return
        time.sleep(0.2)
    raise AssertionError("the victim never reached the lock")


def _kill(proc: subprocess.Popen[bytes]) -> datetime:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    return datetime.now(timezone.utc)


def _start_runner(engine: Engine) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", RUNNER, _url(engine, "doomed_worker"), str(LEASE.total_seconds())], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL)


def _kill_runner_at_lock(engine: Engine, lock_sql: str) -> datetime:
    """Start a job runner process, let it block on the lock `lock_sql` takes, SIGKILL it, release the lock."""
    holder = engine.connect()
    holder.execute(text(lock_sql))
    proc = _start_runner(engine)
    try:
        _wait_blocked(engine, "doomed_worker", proc)
        killed_at = _kill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        holder.rollback()
        holder.close()
    return killed_at


def _reclaim(engine: Engine, killed_at: datetime, kinds: tuple[str, ...]) -> float:
    """The dead worker's job: still marked running by it, its lease ending within LEASE of the kill; a new worker takes it
    over as soon as the lease runs out and runs everything due. Returns the seconds from the kill to the reclaim."""
    with engine.connect() as c:
        held = c.execute(text("SELECT id, lease_until FROM job WHERE state = 'running' AND locked_by = 'doomed' AND kind = ANY(:k)"),
                         {"k": list(kinds)}).all()
    assert len(held) == 1, held
    job_id, until = held[0]
    assert until - killed_at <= LEASE + timedelta(seconds=1), "the lease outlived the worker by more than one lease"
    w = Worker(make_sessionmaker(engine), build_registry(), worker_id="rescuer", lease=LEASE)
    deadline = time.monotonic() + LEASE.total_seconds() + 30
    reclaimed = None
    while time.monotonic() < deadline:
        ran = w.run_once()
        with engine.connect() as c:
            locked_by, state = c.execute(text("SELECT locked_by, state FROM job WHERE id = :i"), {"i": job_id}).one()
        if locked_by == "rescuer" and reclaimed is None:
            reclaimed = (datetime.now(timezone.utc) - killed_at).total_seconds()
        if state == "done":
            break
        if not ran:
            time.sleep(0.1)
    assert reclaimed is not None, "the dead worker's job was never reclaimed"
    while w.run_once():  # the rest of the work the job's kind queued (other shards, other parts)
        pass
    with engine.connect() as c:
        state, attempts = c.execute(text("SELECT state, attempts FROM job WHERE id = :i"), {"i": job_id}).one()
        assert state == "done" and attempts == 2
        assert c.execute(text("SELECT count(*) FROM job WHERE kind = ANY(:k) AND state <> 'done'"), {"k": list(kinds)}).scalar_one() == 0
    return reclaimed


# --- bill run --------------------------------------------------------------------------------------------------------------
def test_a_worker_killed_mid_bill_run_shard_is_replaced_and_every_account_gets_exactly_one_invoice(pg, factory):  # type: ignore[no-untyped-def]
    from test_billing_runs import DEC, STARTER, make_account, make_offering, make_product

    from opsline.billing import billrun

    with factory.begin() as s:
        accounts = [make_account(s, NOW) for _ in range(12)]
        off = make_offering(s, monthly_minor=20000)
        for a in accounts:
            make_product(s, NOW, account_id=a, offering_id=off, start=date(2026, 1, 1))
        rid = billrun.start_bill_run(s, cycle_date=DEC, now=NOW, actor=STARTER, shards=2).id
    # the shard computes its invoices, then waits to mark itself done: killed there, its invoices never commit
    killed_at = _kill_runner_at_lock(pg, "SELECT 1 FROM bill_run_shard WHERE shard_no = 0 FOR UPDATE")
    seconds = _reclaim(pg, killed_at, ("billing.shard",))
    assert seconds <= LEASE.total_seconds() + 5
    with pg.connect() as c:
        per_account = dict(c.execute(text("SELECT account_id, count(*) FROM invoice WHERE bill_run_id = :r GROUP BY account_id"), {"r": rid}).all())
        run = c.execute(text("SELECT state, shards_done, shard_count, accounts_count, total_minor FROM bill_run WHERE id = :r"), {"r": rid}).one()
        total = c.execute(text("SELECT COALESCE(SUM(total_minor), 0) FROM invoice WHERE bill_run_id = :r"), {"r": rid}).scalar_one()
    assert per_account == {a: 1 for a in accounts}
    assert run.shards_done == run.shard_count == 2 and run.accounts_count == 12 and run.total_minor == total == 12 * 23000
    assert run.state == "draft"


# --- dunning run -----------------------------------------------------------------------------------------------------------
def test_a_worker_killed_mid_dunning_run_is_replaced_and_each_action_is_carried_out_once(pg, factory):  # type: ignore[no-untyped-def]
    from test_debtors_worker import _book, _run

    _book(factory, reminders=6, letters=2, suspensions=2)
    res = _run(factory)
    # the actions' messages are queued, then the memos written: killed while waiting to write the memos
    killed_at = _kill_runner_at_lock(pg, "LOCK TABLE memo IN SHARE ROW EXCLUSIVE MODE")
    _reclaim(pg, killed_at, ("debtors.perform_actions",))
    with pg.connect() as c:
        actions = c.execute(text("SELECT count(*), count(*) FILTER (WHERE state = 'done') FROM dunning_action WHERE run_id = :r"), {"r": res["run_id"]}).one()
        assert actions == (10, 10)
        assert c.execute(text("SELECT count(*) FROM message")).scalar_one() == 10
        assert c.execute(text("SELECT count(*), count(DISTINCT account_id) FROM memo")).one() == (10, 10)
        assert c.execute(text("SELECT count(*) FROM dunning_letter")).scalar_one() == 2
        assert c.execute(text("SELECT count(*) FROM audit_event WHERE entity_type = 'account' AND action = 'suspend'")).scalar_one() == 2


# --- statement import ------------------------------------------------------------------------------------------------------
def test_a_statement_import_killed_midway_posts_nothing_and_the_rerun_posts_every_line_once(pg, factory, tmp_path):  # type: ignore[no-untyped-def]
    from payments_helpers import account_with_invoices, assert_ledger_balances, counts

    with factory.begin() as s:
        book = [account_with_invoices(s, now=NOW, name=f"Payer {k} Nkosi", amounts=[59900 + k]) for k in range(8)]
    head = "FNB statement\nAccount 62012345678\nDate,Amount,Balance,Description,Payer,Payer Account,Reference Number\n"
    bal, rows = 1_000_000, []
    for k, b in enumerate(book):
        bal += 59900 + k
        rows.append(f"2026/11/20,{(59900 + k) / 100:.2f},{bal / 100:.2f},{b['invoice_numbers'][0]},{b['name'].upper()},10{k},R{k}")
    path = tmp_path / "fnb-2026-11-20.csv"
    path.write_text(head + "\n".join(rows) + "\n")
    with factory() as s:
        before = counts(s)
    cmd = [str(VENV_BIN / "opsline"), "import-statement", str(path), "--format", "csv", "--mapping", "fnb"]
    env = {**os.environ, "OPSLINE_DATABASE_URL": _url(pg, "doomed_import"), "OPSLINE_SECRET_KEY": "test-secret-key-0123456789"}
    holder = pg.connect()
    holder.execute(text("LOCK TABLE payment IN SHARE ROW EXCLUSIVE MODE"))  # the file and its lines are written before the payments
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_blocked(pg, "doomed_import", proc)
        with pg.connect() as c:  # the victim has written rows (uncommitted): its session holds row locks of its own
            assert c.execute(text("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE a.application_name = 'doomed_import' "
                                  "AND l.locktype = 'relation' AND l.mode = 'RowExclusiveLock'")).scalar_one() >= 1
        _kill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        holder.rollback()
        holder.close()
    time.sleep(0.5)
    with factory() as s:
        assert counts(s) == before  # nothing of the killed import is left
    done = subprocess.run(cmd, env={**env, "OPSLINE_DATABASE_URL": _url(pg, "second_import")}, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    again = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
    assert again.returncode != 0 and b"already imported" in again.stdout + again.stderr
    with factory() as s:
        after = counts(s)
        assert after["statement_file"] == before["statement_file"] + 1
        assert after["statement_line"] == before["statement_line"] + 8
        assert after["payment"] == before["payment"] + 8
        per_invoice = dict(s.execute(text("SELECT invoice_id, SUM(amount_minor) FROM payment_allocation WHERE state = 'allocated' GROUP BY invoice_id")).all())
        assert per_invoice == {b["invoices"][0]: 59900 + k for k, b in enumerate(book)}
        assert_ledger_balances(s)
