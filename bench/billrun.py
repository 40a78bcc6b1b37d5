"""Benchmark: the bill run an analyst waits for (start, every shard through the job table, the review), on data from the
demo generator, against the floor of writing the same invoices and lines with the same parallelism, in the same run.

    .venv/bin/python bench/billrun.py --accounts 100000 --url sqlite:////tmp/bench_billrun.db
    .venv/bin/python bench/billrun.py --accounts 1000000 --url postgresql+psycopg://postgres@127.0.0.1:5432/opsline_bench --threads 2

Data: `opsline demo` for N accounts, the steps a bill run reads (about 1.2 products per account, orders, usage, discounts, finalised runs for
last month so catch-up, coverage corrections and the review's comparison all run), generated in a child process. The
demo's own draft for this month is rolled back; the timed run recomputes it.

Timed ("ours"): start_bill_run + all shard jobs (`--threads` workers claiming them through the job table) + the review
(totals, the explained variance of every account, exceptions). Asserted before any figure is printed: the run is a
draft, its line count matches invoice_line, every invoice's subtotal/VAT/total equal the sum of its lines, and the
run's totals equal the sum of its invoices.

Floor: INSERT ... SELECT of exactly the rows the run wrote (its invoices, then their lines) into empty tables shaped
like invoice and invoice_line (same indexes, checks and foreign key), split by account range over the same number of
threads. It leaves out everything but the writes: no rating, no review. SQLite has one writer, so it runs with one.

Last line: `billrun: 1195 lines 2.1 s (review 0.3 s); floor 0.4 s; ratio 5.2; threads 1; sqlite`
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import threading
import time
from datetime import date, datetime, timezone

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from sqlalchemy import text  # noqa: E402

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)
CYCLE = date(2026, 11, 1)  # the demo bills last month (finalised) and drafts this month's 1st: the run we time
DEFAULT_URL = "sqlite:////tmp/opsline_bench_billrun.db"
# the demo steps that make what a bill run reads (support cases, SLA, messages and payments add nothing it bills)
DEMO_STEPS = ("users", "customers", "products", "orders", "partner_orders", "billing", "invoicing")
INVOICE_COLS = ("account_id, bill_run_id, kind, period_start, period_end, number, state, currency, subtotal_minor, tax_minor, total_minor, "
                "issued_at, due_date, created_at, version")
LINE_COLS = ("invoice_id, account_id, product_id, offering_id, price_id, kind, description, period_start, period_end, quantity, "
             "unit_amount_minor, amount_minor, tax_rate_code, tax_minor, total_minor, currency, explanation, pending_charge_id, discount_id")


def generate(url: str, accounts: int) -> None:
    """Child process: a fresh database with the whole demo (so this process's memory measures the bill run only)."""
    from benchdb import fresh_database
    from opsline.demo import run_demo

    engine = fresh_database(url)
    t0 = time.perf_counter()
    counts = run_demo(engine, accounts=accounts, now=NOW, steps=list(DEMO_STEPS))
    print(f"  demo: {accounts} accounts, {counts.get('products', 0)} products, {counts.get('usage_rows', 0)} usage rows, "
          f"{counts.get('discounts', 0)} discounts, {counts.get('invoices', 0)} invoices in {time.perf_counter() - t0:.0f} s", flush=True)
    engine.dispose()


def prepare(factory, engine) -> None:  # type: ignore[no-untyped-def]
    """Roll back the demo's draft for the cycle (and any earlier bench run), drop floor tables, clear finished jobs."""
    from sqlalchemy import select

    from opsline.billing import billrun
    from opsline.billing.models import BillRun
    from opsline.core.events import Actor

    boss = Actor(name="bench-manager", roles=frozenset({"debtors_manager"}))
    with factory.begin() as s:
        for rid in s.execute(select(BillRun.id).where(BillRun.cycle_date == CYCLE, BillRun.state.not_in(("rolled_back", "finalised")))).scalars():
            billrun.rollback_bill_run(s, bill_run_id=rid, now=NOW, actor=boss, reason="benchmark re-runs it")
        s.execute(text("DELETE FROM job WHERE kind = 'billing.shard'"))
        s.execute(text("DROP TABLE IF EXISTS invoice_line_floor"))
        s.execute(text("DROP TABLE IF EXISTS invoice_floor"))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE"))
            c.execute(text("CHECKPOINT"))
    else:
        with engine.begin() as c:
            c.execute(text("ANALYZE"))


def check(engine, rid: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Assert the run's result; returns its counts."""
    with engine.connect() as c:
        run = c.execute(text("SELECT state, lines_count, accounts_count, subtotal_minor, tax_minor, total_minor FROM bill_run WHERE id = :r"), {"r": rid}).one()
        lines = c.execute(text("SELECT COUNT(*) FROM invoice_line l JOIN invoice i ON i.id = l.invoice_id WHERE i.bill_run_id = :r"), {"r": rid}).scalar_one()
        inv = c.execute(text("SELECT COUNT(*), COALESCE(SUM(subtotal_minor), 0), COALESCE(SUM(tax_minor), 0), COALESCE(SUM(total_minor), 0) "
                             "FROM invoice WHERE bill_run_id = :r"), {"r": rid}).one()
        bad = c.execute(text(
            "SELECT COUNT(*) FROM invoice i JOIN (SELECT invoice_id, SUM(amount_minor) AS a, SUM(tax_minor) AS t, SUM(total_minor) AS tt "
            "FROM invoice_line GROUP BY invoice_id) l ON l.invoice_id = i.id "
            "WHERE i.bill_run_id = :r AND (i.subtotal_minor <> l.a OR i.tax_minor <> l.t OR i.total_minor <> l.tt OR i.total_minor <> i.subtotal_minor + i.tax_minor)"),
            {"r": rid}).scalar_one()
        kinds = dict(c.execute(text("SELECT l.kind, COUNT(*) FROM invoice_line l JOIN invoice i ON i.id = l.invoice_id WHERE i.bill_run_id = :r "
                                    "GROUP BY l.kind"), {"r": rid}).all())
    assert run.state == "draft", run.state
    assert lines == run.lines_count > 0, (lines, run.lines_count)
    assert inv[0] == run.accounts_count, (inv[0], run.accounts_count)
    assert (inv[1], inv[2], inv[3]) == (run.subtotal_minor, run.tax_minor, run.total_minor)
    assert bad == 0, f"{bad} invoices whose totals are not the sum of their lines"
    assert kinds.get("recurring", 0) > 0
    return {"lines": int(lines), "invoices": int(inv[0]), **{f"kind_{k}": int(v) for k, v in kinds.items()}}


def floor(engine, rid: int, threads: int) -> float:  # type: ignore[no-untyped-def]
    """Write the run's invoices and lines again into tables shaped like theirs, split by account range over `threads`."""
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as c:
        if pg:
            c.execute(text("CREATE TABLE invoice_floor (LIKE invoice INCLUDING ALL)"))
            c.execute(text("CREATE TABLE invoice_line_floor (LIKE invoice_line INCLUDING ALL)"))
            c.execute(text("ALTER TABLE invoice_line_floor ADD FOREIGN KEY (invoice_id) REFERENCES invoice(id)"))
        else:  # the same DDL SQLite created for the real tables, renamed (same indexes and checks)
            for table in ("invoice", "invoice_line"):
                ddl = [r[0] for r in c.execute(text("SELECT sql FROM sqlite_master WHERE tbl_name = :t AND sql IS NOT NULL ORDER BY type DESC"), {"t": table})]
                for stmt in ddl:
                    c.execute(text(stmt.replace(f'"{table}"', f'"{table}_floor"').replace(f"TABLE {table} ", f"TABLE {table}_floor ")
                                   .replace(f" ON {table} ", f" ON {table}_floor ").replace("INDEX ", "INDEX floor_").replace("uq_", "floor_uq_")
                                   .replace("ix_", "floor_ix_")))
        lo, hi = c.execute(text("SELECT MIN(account_id), MAX(account_id) + 1 FROM invoice WHERE bill_run_id = :r"), {"r": rid}).one()
    if pg:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("CHECKPOINT"))
    n = threads if pg else 1
    width = -(-(hi - lo) // n)

    def part(a: int, b: int) -> None:
        with engine.begin() as c:
            c.execute(text(f"INSERT INTO invoice_floor ({INVOICE_COLS}) SELECT {INVOICE_COLS} FROM invoice WHERE bill_run_id = :r "
                           f"AND account_id >= :a AND account_id < :b"), {"r": rid, "a": a, "b": b})
            c.execute(text(f"INSERT INTO invoice_line_floor ({LINE_COLS}) SELECT {', '.join('l.' + c.strip() for c in LINE_COLS.split(','))} "
                           f"FROM invoice_line l JOIN invoice i ON i.id = l.invoice_id WHERE i.bill_run_id = :r AND i.account_id >= :a AND i.account_id < :b"),
                      {"r": rid, "a": a, "b": b})

    t0 = time.perf_counter()
    ts = [threading.Thread(target=part, args=(lo + k * width, min(hi, lo + (k + 1) * width))) for k in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.perf_counter() - t0
    with engine.begin() as c:
        copied = c.execute(text("SELECT COUNT(*) FROM invoice_line_floor")).scalar_one()
        c.execute(text("DROP TABLE invoice_line_floor"))
        c.execute(text("DROP TABLE invoice_floor"))
    assert copied > 0
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=2000)
    ap.add_argument("--url", default=os.environ.get("OPSLINE_BENCH_URL", DEFAULT_URL))
    ap.add_argument("--threads", type=int, default=1, help="workers sharing the run's shard jobs (and the floor's threads)")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--reuse", action="store_true", help="keep the generated data of a previous run (skips generation)")
    args = ap.parse_args()

    if not args.reuse:
        p = mp.get_context("spawn").Process(target=generate, args=(args.url, args.accounts))
        p.start()
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"data generation failed ({p.exitcode})")

    from opsline.billing import billrun, review
    from opsline.core.events import Actor
    from opsline.db.session import make_engine, make_sessionmaker

    engine = make_engine(args.url)
    factory = make_sessionmaker(engine)
    dialect = engine.dialect.name
    prepare(factory, engine)
    actor = Actor(name="bench", roles=frozenset({"billing_analyst"}))
    t0 = time.perf_counter()
    with factory.begin() as s:
        rid = billrun.start_bill_run(s, cycle_date=CYCLE, now=NOW, actor=actor, shards=args.shards).id
    billrun.drain_shards(factory, now=NOW, threads=args.threads)
    t_review = time.perf_counter()
    with factory() as s:
        rev = review.review(s, bill_run_id=rid, limit=100)
    ours = time.perf_counter() - t0
    t_review = time.perf_counter() - t_review
    counts = check(engine, rid)
    print(f"  bill run {rid}: {counts['invoices']} invoices, {counts['lines']} lines "
          f"({', '.join(f'{k[5:]} {v}' for k, v in sorted(counts.items()) if k.startswith('kind_'))}) in {ours:.2f} s; "
          f"review {t_review:.2f} s: {rev['diff_count']} compared, {rev['over_threshold_count']} over {rev['threshold']}%, "
          f"{rev['flagged_count']} unexplained", flush=True)
    for d in [d for d in rev["diff"] if d["flagged"]][:10]:
        print(f"    flagged {d['account_number']}: {d['flag_reason']}", flush=True)
    fl = floor(engine, rid, args.threads)
    threads = args.threads if dialect == "postgresql" else 1
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    engine.dispose()
    print(f"  floor: the same {counts['invoices']} invoices and {counts['lines']} lines written by INSERT ... SELECT on {threads} thread(s): {fl:.2f} s; "
          f"peak RSS {peak_mb:.0f} MB", flush=True)
    print(f"billrun: {counts['lines']} lines {ours:.1f} s (review {t_review:.1f} s); floor {fl:.1f} s; ratio {ours / fl:.1f}; threads {threads}; {dialect}")


if __name__ == "__main__":
    main()
