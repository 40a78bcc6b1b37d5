"""Benchmark: the whole `opsline demo` for N accounts (every area's demo step: customers, products, orders, partner
orders, bill runs, cases, invoicing, SLA, payments ... with their computation and ANALYZE between steps), against the
floor of loading exactly the rows it left behind with COPY from buffers serialised beforehand, in the same run.

    .venv/bin/python bench/demo_load.py --accounts 100000 --url postgresql+psycopg://postgres@127.0.0.1:5432/opsline_bench_demo
    .venv/bin/python bench/demo_load.py --accounts 2000 --steps users,customers,products,billing   # a subset of the steps

Ours: a fresh schema (from the models), then `run_demo` (seeds and every step), timed end to end.
Floor (PostgreSQL): every table's rows dumped with `COPY ... TO STDOUT` into memory (untimed), then, into a second
fresh database with the same schema (indexes, checks, foreign keys), one transaction of `COPY ... FROM STDIN` per table
in dependency order (timed). Asserted: the floor database holds the same row count in every table.
On SQLite (no COPY) the floor is `executemany` of the rows read back beforehand into Python tuples.

Last line: `demo_load: 412345 rows 61.0 s (6760 rows/s); COPY floor 9.1 s; ratio 6.70; postgresql`
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402

import opsline.models  # noqa: E402,F401  (every table)
from opsline.db.base import metadata  # noqa: E402
from opsline.demo import demo_steps, run_demo  # noqa: E402
from benchdb import drop_database, fresh_database  # noqa: E402

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)


fresh = fresh_database


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as c:
        return {t.name: int(c.execute(text(f'SELECT COUNT(*) FROM "{t.name}"')).scalar_one()) for t in metadata.sorted_tables}


def floor_pg(engine: Engine, url: str, rows: dict[str, int]) -> float:
    """Serialise every table with COPY TO (untimed), load a fresh copy of the schema with COPY FROM (timed)."""
    buffers: dict[str, bytes] = {}
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            for t in metadata.sorted_tables:
                if rows[t.name]:
                    with cur.copy(f'COPY "{t.name}" TO STDOUT') as cp:
                        buffers[t.name] = b"".join(bytes(chunk) for chunk in cp)
    finally:
        raw.close()
    target_url = make_url(url).set(database=f"{make_url(url).database}_floor").render_as_string(hide_password=False)
    target = fresh(target_url)
    with target.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("CHECKPOINT"))
    raw = target.raw_connection()
    try:
        t0 = time.perf_counter()
        with raw.cursor() as cur:
            for t in metadata.sorted_tables:
                if t.name in buffers:
                    with cur.copy(f'COPY "{t.name}" FROM STDIN') as cp:
                        cp.write(buffers[t.name])
        raw.commit()
        took = time.perf_counter() - t0
    finally:
        raw.close()
    assert counts(target) == rows, "the floor database does not hold the same rows"
    target.dispose()
    drop_database(target_url)
    return took


def floor_sqlite(engine: Engine, url: str, rows: dict[str, int]) -> float:
    """Read every table back into tuples (untimed), insert them into a fresh copy of the schema with executemany (timed)."""
    data: dict[str, tuple[list[str], list[tuple]]] = {}
    with engine.connect() as c:
        for t in metadata.sorted_tables:
            if rows[t.name]:
                cols = [col.name for col in t.columns]
                data[t.name] = (cols, [tuple(r) for r in c.exec_driver_sql(f'SELECT {", ".join(chr(34) + x + chr(34) for x in cols)} FROM "{t.name}"')])
    path = make_url(url).database + ".floor"
    target = fresh(f"sqlite:///{path}")
    raw = target.raw_connection()
    try:
        t0 = time.perf_counter()
        cur = raw.cursor()
        for name, (cols, vals) in data.items():
            cur.executemany(f'INSERT INTO "{name}" ({", ".join(chr(34) + x + chr(34) for x in cols)}) VALUES ({", ".join("?" for _ in cols)})', vals)
        raw.commit()
        took = time.perf_counter() - t0
    finally:
        raw.close()
    assert counts(target) == rows, "the floor database does not hold the same rows"
    target.dispose()
    os.remove(path)
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=2000)
    ap.add_argument("--url", default=os.environ.get("OPSLINE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/opsline_bench_demo"))
    ap.add_argument("--steps", default="", help="comma-separated demo steps (default: all of them)")
    args = ap.parse_args()
    steps = [s for s in args.steps.split(",") if s] or None
    engine = fresh(args.url)
    t0 = time.perf_counter()
    got = run_demo(engine, accounts=args.accounts, now=NOW, steps=steps)
    ours = time.perf_counter() - t0
    rows = counts(engine)
    total = sum(rows.values())
    assert rows.get("account", 0) >= args.accounts, rows.get("account")  # a few areas add their own sample accounts
    biggest = ", ".join(f"{k} {v:,}" for k, v in sorted(rows.items(), key=lambda kv: -kv[1])[:6])
    print(f"  demo ({', '.join(steps) if steps else 'all ' + str(len(demo_steps())) + ' steps'}): {args.accounts:,} accounts, "
          f"{total:,} rows in {ours:.1f} s; largest tables: {biggest}; demo counts: {len(got)} kinds", flush=True)
    dialect = engine.dialect.name
    fl = floor_pg(engine, args.url, rows) if dialect == "postgresql" else floor_sqlite(engine, args.url, rows)
    engine.dispose()
    print(f"  floor: the same {total:,} rows loaded into a fresh schema by {'COPY from pre-serialised buffers' if dialect == 'postgresql' else 'executemany of pre-read tuples'} "
          f"in {fl:.1f} s", flush=True)
    print(f"demo_load: {total} rows {ours:.1f} s ({total / ours:.0f} rows/s); COPY floor {fl:.1f} s; ratio {ours / fl:.2f}; {dialect}")


if __name__ == "__main__":
    main()
