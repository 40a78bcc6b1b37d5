"""Write-off races on PostgreSQL: a single proposal and a bulk batch taking the same account at the same moment. The
partial unique index (one open write-off per account) decides; the loser gets a clean 409 or leaves the account out,
never a 500, and nothing is half-written."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from debtors_helpers import TODAY, at, debtor
from opsline.core.events import Actor
from opsline.debtors import writeoffs

CLERK = Actor(name="dawie", roles=frozenset({"debtors_clerk"}))
CLERK2 = Actor(name="lerato", roles=frozenset({"debtors_clerk"}))
NOW = at(TODAY)
CRIT = writeoffs.BulkCriteria(status="closed", max_balance_minor=100_000, min_days=90)


def _pg_only(engine) -> None:  # type: ignore[no-untyped-def]
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers (BEGIN IMMEDIATE); the race needs PostgreSQL")


def _two_closed_debtors(factory) -> tuple[dict, dict]:  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Closed One", amount=5000, overdue_days=200)
        b = debtor(s, name="Closed Two", amount=7000, overdue_days=200)
        s.execute(text("UPDATE account SET status = 'closed' WHERE id IN (:a, :b)"), {"a": a["id"], "b": b["id"]})
    return a, b


def _wait_until_blocked(engine, *, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Until some session waits for a row/index lock held by another (the second writer reached the unique index)."""
    end = time.monotonic() + timeout
    with engine.connect() as c:
        while time.monotonic() < end:
            if c.execute(text("SELECT COUNT(*) FROM pg_locks WHERE NOT granted")).scalar_one():
                return
            time.sleep(0.02)
    raise AssertionError("the second writer never waited for the first")


def _open_write_offs(factory) -> list[tuple[int, int | None, str]]:  # type: ignore[no-untyped-def]
    with factory() as s:
        return [tuple(r) for r in s.execute(text("SELECT account_id, batch_id, state FROM write_off ORDER BY account_id"))]


def test_a_batch_racing_a_single_proposal_leaves_that_account_out_instead_of_failing(engine, factory):  # type: ignore[no-untyped-def]
    _pg_only(engine)
    a, b = _two_closed_debtors(factory)
    single = factory()
    wo = writeoffs.propose(single, account_id=a["id"], amount=None, reason="estate insolvent", today=TODAY, now=NOW, actor=CLERK)
    outcome: list[object] = []

    def batch() -> None:
        try:
            with factory.begin() as s:
                bt = writeoffs.propose_batch(s, criteria=CRIT, reason="small closed balances", today=TODAY, now=NOW, actor=CLERK2)
                outcome.append((bt.id, bt.accounts, bt.amount_minor))
        except Exception as exc:  # noqa: BLE001  (the test reports whatever escaped)
            outcome.append(exc)

    th = threading.Thread(target=batch)
    th.start()
    _wait_until_blocked(engine)  # the batch read both accounts as candidates and waits at the index for the single's row
    single.commit()
    single.close()
    th.join(30)
    assert len(outcome) == 1 and not isinstance(outcome[0], Exception), outcome
    bid, accounts, amount = outcome[0]  # type: ignore[misc]
    assert (accounts, amount) == (1, 7000)
    assert _open_write_offs(factory) == [(a["id"], None, "proposed"), (b["id"], bid, "proposed")]
    with factory() as s:
        # the batch's audit events and memos are for its one account only; the single proposal's own once
        assert s.execute(text("SELECT COUNT(*) FROM audit_event WHERE entity_type = 'write_off' AND action = 'proposed'")).scalar_one() == 2
        assert s.execute(text("SELECT COUNT(*) FROM memo WHERE account_id = :a AND body LIKE '%batch%'"), {"a": a["id"]}).scalar_one() == 0
        assert s.execute(text("SELECT accounts, amount_minor FROM write_off_batch WHERE id = :b"), {"b": bid}).one() == (1, 7000)
        assert s.execute(text("SELECT COUNT(*) FROM write_off_vat WHERE write_off_id = :w"), {"w": wo.id}).scalar_one() == 1


def test_a_single_proposal_racing_a_batch_gets_a_clean_already_proposed_conflict(engine, factory):  # type: ignore[no-untyped-def]
    _pg_only(engine)
    a, b = _two_closed_debtors(factory)
    bulk = factory()
    bt = writeoffs.propose_batch(bulk, criteria=CRIT, reason="small closed balances", today=TODAY, now=NOW, actor=CLERK2)
    bid = bt.id
    outcome: list[object] = []

    def single() -> None:
        try:
            with factory.begin() as s:
                outcome.append(writeoffs.propose(s, account_id=a["id"], amount=None, reason="estate insolvent", today=TODAY, now=NOW, actor=CLERK).id)
        except Exception as exc:  # noqa: BLE001
            outcome.append(exc)

    th = threading.Thread(target=single)
    th.start()
    _wait_until_blocked(engine)
    bulk.commit()
    bulk.close()
    th.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], writeoffs.WriteOffAlreadyProposed), outcome
    err = outcome[0]
    assert err.status == 409 and err.field == "account" and err.problem()["title"] == "Write-off already proposed"  # type: ignore[union-attr]
    assert _open_write_offs(factory) == [(a["id"], bid, "proposed"), (b["id"], bid, "proposed")]
    with factory() as s:  # nothing of the refused proposal was written
        assert s.execute(text("SELECT COUNT(*) FROM memo WHERE account_id = :a AND body LIKE '%estate insolvent%'"), {"a": a["id"]}).scalar_one() == 0
        assert s.execute(text("SELECT COUNT(*) FROM audit_event WHERE entity_type = 'write_off'")).scalar_one() == 2


def test_many_single_proposals_and_a_batch_at_once_leave_one_open_write_off_per_account(engine, factory):  # type: ignore[no-untyped-def]
    _pg_only(engine)
    accounts = list(_two_closed_debtors(factory)) + list(_two_closed_debtors(factory))
    barrier = threading.Barrier(len(accounts) + 1)
    outcome: list[str] = []

    def single(acc: dict) -> None:
        barrier.wait()
        try:
            with factory.begin() as s:
                writeoffs.propose(s, account_id=acc["id"], amount=None, reason="estate insolvent", today=TODAY, now=NOW, actor=CLERK)
            outcome.append("single")
        except writeoffs.WriteOffAlreadyProposed:
            outcome.append("409")

    def batch() -> None:
        barrier.wait()
        try:
            with factory.begin() as s:
                outcome.append(f"batch:{writeoffs.propose_batch(s, criteria=CRIT, reason='small closed', today=TODAY, now=NOW, actor=CLERK2).accounts}")
        except writeoffs.UnableToWriteOff:  # every account taken by a single proposal first (409, or none left to take)
            outcome.append("batch:409")

    threads = [threading.Thread(target=single, args=(acc,)) for acc in accounts] + [threading.Thread(target=batch)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert len(outcome) == len(accounts) + 1, outcome
    rows = _open_write_offs(factory)
    assert sorted(r[0] for r in rows) == sorted(acc["id"] for acc in accounts)  # exactly one open write-off each
    in_batch = sum(1 for r in rows if r[1] is not None)
    assert outcome.count("single") == len(accounts) - in_batch and outcome.count("409") == in_batch
    batch_out = next(o for o in outcome if o.startswith("batch"))
    assert batch_out == (f"batch:{in_batch}" if in_batch else "batch:409")
