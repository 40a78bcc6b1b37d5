"""Benchmark: bulk-load N demo customers (party + account + site + contact rows) on PostgreSQL with the demo
generator, against the floor of a plain COPY of the very same rows measured in the same run.

    .venv/bin/python bench/demo_load.py [--accounts 1000000] [--url postgresql+psycopg://...]

Last line: `demo_load: 4000000 rows 31.2 s (128205 rows/s); COPY floor 22.0 s; ratio 1.42`
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone

import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from opsline.customers import models as cm  # noqa: E402
from opsline.db.base import metadata  # noqa: E402
from opsline.db.bulk import copy_rows  # noqa: E402
from opsline.db.session import make_engine  # noqa: E402
from opsline.demo import ACCOUNT_COLS, CONTACT_COLS, PARTY_COLS, SITE_COLS, DemoContext, _NoProgress, generate_customers, load_customers  # noqa: E402
from opsline.seed import seed_customers  # noqa: E402
from opsline.db.session import make_sessionmaker  # noqa: E402

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)
TABLES = ("contact", "site", "account", "party")


def fresh_database(url: str):  # type: ignore[no-untyped-def]
    u = make_url(url)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{u.database}"'))
    admin.dispose()
    engine = make_engine(url)
    metadata.create_all(engine, tables=[t.__table__ for t in (cm.Segment, cm.ValueTier, cm.Party, cm.Account, cm.Site, cm.Contact)])
    with make_sessionmaker(engine).begin() as s:
        seed_customers(s, now=NOW)
    return engine


def truncate(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as c:
        c.execute(text("TRUNCATE " + ", ".join(TABLES) + " RESTART IDENTITY CASCADE"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--url", default=os.environ.get("OPSLINE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/opsline_bench_demo"))
    ap.add_argument("--chunk", type=int, default=50_000)
    args = ap.parse_args()
    engine = fresh_database(args.url)
    n = args.accounts
    rows_total = 4 * n

    # ours: the demo generator's customers step (generation + COPY), exactly as `opsline demo` runs it
    ctx = DemoContext(engine=engine, now=NOW, rng=np.random.default_rng(1), accounts=n, progress=_NoProgress())
    t0 = time.perf_counter()
    load_customers(ctx, chunk=args.chunk)
    ours = time.perf_counter() - t0

    # floor: COPY of the same rows, generated beforehand (untimed), chunk by chunk
    truncate(engine)
    rng = np.random.default_rng(1)
    floor = 0.0
    done = 0
    while done < n:
        k = min(args.chunk, n - done)
        cols = generate_customers(rng, start_id=1 + done, n=k, now=NOW)
        t0 = time.perf_counter()
        with engine.begin() as conn:
            copy_rows(conn, "party", PARTY_COLS, cols.rows_party)
            copy_rows(conn, "account", ACCOUNT_COLS, cols.rows_account)
            copy_rows(conn, "site", SITE_COLS, cols.rows_site)
            copy_rows(conn, "contact", CONTACT_COLS, cols.rows_contact)
        floor += time.perf_counter() - t0
        done += k
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM account")).scalar_one() == n
    engine.dispose()
    print(f"generator: {n} accounts, {rows_total} rows in {ours:.1f} s; COPY of the same rows {floor:.1f} s")
    print(f"demo_load: {rows_total} rows {ours:.1f} s ({rows_total / ours:.0f} rows/s); COPY floor {floor:.1f} s; ratio {ours / floor:.2f}")


if __name__ == "__main__":
    main()
