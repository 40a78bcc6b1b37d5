"""Benchmark: a draft bill run over N accounts with one active subscription each (N invoice lines) on PostgreSQL,
against the floor of a plain INSERT ... SELECT of the same number of rows into a table shaped like invoice_line,
measured in the same run.

    .venv/bin/python bench/billrun.py [--accounts 1000000] [--url postgresql+psycopg://...] [--threads 2] [--shards 8] [--reuse]

Data: the demo generator's customers step and the inventory demo step (run in a child process so this process's
peak RSS measures the bill run only); when that step does not give exactly one active subscription per account,
the bench writes the product rows itself with copy_rows. Every account is put on the 1st-of-month cycle.

Last line: `billrun: 1000000 lines 6.1 s; floor 2.4 s; ratio 2.5; peak RSS 180 MB`
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import time
from datetime import date, datetime, timezone

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)
CYCLE = date(2026, 12, 1)
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/opsline_bench"


def generate(url: str, accounts: int) -> None:
    """Child process: fresh database, schema, demo customers (+ inventory step), then one active product per account."""
    import opsline.models  # noqa: F401
    from opsline.db.base import metadata
    from opsline.db.bulk import copy_rows, reset_sequence
    from opsline.db.session import make_engine
    from opsline.demo import run_demo

    u = make_url(url)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{u.database}"'))
    admin.dispose()
    engine = make_engine(url)
    metadata.create_all(engine)
    t0 = time.perf_counter()
    run_demo(engine, accounts=accounts, now=NOW, steps=["customers", "products"])
    print(f"  generated {accounts} accounts in {time.perf_counter() - t0:.1f} s", flush=True)
    with engine.begin() as c:
        active = c.execute(text("SELECT COUNT(*), COUNT(DISTINCT account_id) FROM product WHERE state = 'active'")).one()
        if not (active[0] == active[1] == accounts):
            print(f"  inventory demo step gave {active[0]} active products on {active[1]} accounts; writing one per account", flush=True)
            c.execute(text("TRUNCATE product CASCADE"))
            offers = [r[0] for r in c.execute(text(
                "SELECT o.id FROM product_offering o JOIN price p ON p.offering_id = o.id AND p.kind = 'recurring' AND p.currency = 'ZAR' "
                "AND p.valid_from <= :d AND (p.valid_to IS NULL OR p.valid_to > :d) WHERE o.kind IN ('fibre','mobile') ORDER BY o.id"), {"d": CYCLE})]
            cols = ("id", "account_id", "offering_id", "site_id", "state", "start_date", "contract_months", "created_at", "updated_at", "version")
            ids = [r[0] for r in c.execute(text("SELECT id FROM account ORDER BY id"))]

            def rows():  # type: ignore[no-untyped-def]
                for k, aid in enumerate(ids):
                    yield (k + 1, aid, offers[aid % len(offers)], None, "active", date(2025, 1 + aid % 12, 1 + aid % 28), 0, NOW, NOW, 1)

            copy_rows(c, "product", cols, rows())
            reset_sequence(c, "product")
        c.execute(text("UPDATE account SET bill_cycle_day = 1"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM ANALYZE"))
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--url", default=os.environ.get("OPSLINE_BENCH_POSTGRES_URL", DEFAULT_URL))
    ap.add_argument("--threads", type=int, default=2, help="workers sharing the run's shard jobs")
    ap.add_argument("--shards", type=int, default=16)
    ap.add_argument("--reuse", action="store_true", help="keep the generated data of a previous run (skips generation)")
    ap.add_argument("--keep", action="store_true", help="do not drop the database at the end")
    args = ap.parse_args()
    n = args.accounts

    if not args.reuse:
        p = mp.get_context("spawn").Process(target=generate, args=(args.url, n))
        p.start()
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"data generation failed ({p.exitcode})")

    from opsline.billing import billrun
    from opsline.core.events import Actor
    from opsline.db.session import make_engine, make_sessionmaker

    engine = make_engine(args.url)
    factory = make_sessionmaker(engine)
    with engine.begin() as c:  # a clean slate for --reuse
        c.execute(text("DELETE FROM job"))
        c.execute(text("DROP TABLE IF EXISTS invoice_line_floor"))
        c.execute(text("TRUNCATE invoice_line, invoice, bill_run_shard, bill_run CASCADE"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("CHECKPOINT"))

    actor = Actor(name="bench", roles=frozenset({"billing_analyst"}))
    t0 = time.perf_counter()
    with factory.begin() as s:
        rid = billrun.start_bill_run(s, cycle_date=CYCLE, now=NOW, actor=actor, shards=args.shards).id
    billrun.drain_shards(factory, now=NOW, threads=args.threads)
    ours = time.perf_counter() - t0
    with factory() as s:
        run = billrun.get_run(s, bill_run_id=rid)
        lines, state, invoices = run.lines_count, run.state, billrun.invoice_count(s, bill_run_id=rid)
    print(f"  bill run {rid}: {state}, {invoices} invoices, {lines} lines in {ours:.1f} s ({lines / ours:,.0f} lines/s)", flush=True)

    # floor: the same rows (same columns and values, copied as they are) into a table shaped like invoice_line:
    # "identical" has invoice_line's indexes, checks and its foreign key to invoice; "bare" has no foreign key.
    cols = ("invoice_id, account_id, product_id, offering_id, price_id, kind, description, period_start, period_end, quantity, "
            "unit_amount_minor, amount_minor, tax_rate_code, tax_minor, total_minor, currency, explanation")
    floors = {}
    for name, fk in (("bare", False), ("identical", True)):
        with engine.begin() as c:
            c.execute(text("DROP TABLE IF EXISTS invoice_line_floor"))
            c.execute(text("CREATE TABLE invoice_line_floor (LIKE invoice_line INCLUDING ALL)"))
            if fk:
                c.execute(text("ALTER TABLE invoice_line_floor ADD FOREIGN KEY (invoice_id) REFERENCES invoice(id)"))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("CHECKPOINT"))
        t0 = time.perf_counter()
        with engine.begin() as c:
            floor_rows = c.execute(text(f"INSERT INTO invoice_line_floor ({cols}) SELECT {cols} FROM invoice_line")).rowcount
        floors[name] = time.perf_counter() - t0
        print(f"  floor ({name} table): {floor_rows} rows in {floors[name]:.1f} s ({floor_rows / floors[name]:,.0f} rows/s); ratio {ours / floors[name]:.1f}", flush=True)
    floor = floors["identical"]
    with engine.begin() as c:
        c.execute(text("DROP TABLE invoice_line_floor"))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    engine.dispose()
    if not args.keep and not args.reuse:
        u = make_url(args.url)
        admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
        admin.dispose()
    print(f"billrun: {lines} lines {ours:.1f} s; floor {floor:.1f} s; ratio {ours / floor:.1f}; peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
