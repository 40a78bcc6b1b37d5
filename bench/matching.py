"""Benchmark: N statement lines against M open invoices on PostgreSQL, generated with realistic payment behaviour and a known
truth (opsline.payments.behaviour: debit orders, references in many spellings, short, late, combined, typos, known payer
accounts, no reference, a relative's account, unknown deposits, bank charges), imported end to end through the real service:
parse a bank CSV (the 'fnb' mapping) and a debit-order result file, store each bank transaction once, match, allocate, post the
ledger, commit. Baseline: a competent per-line matcher in the same process (indexed lookups per line, the same rules except the
amount and name rules, which would each need a table scan per line, so the baseline is favoured), on a sample, rolled back.

    .venv/bin/python bench/matching.py [--lines 100000] [--invoices 1000000] [--naive 2000] [--url postgresql+psycopg://...] [--reuse]

Last line (100,000 lines × 1,000,000 invoices, fresh database, PostgreSQL 15, 2 shared cores at load average ~2.5–2.8):
`matching: 98963 lines 23.0 s (4,296 lines/s); auto-matched 93.3%; precision 99.98%; naive 662 lines/s; ratio 6`
Leaves out: the desk's review step (proposals wait for a person by design), PDF/e-mail work (none here).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date, datetime, timezone

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import numpy as np  # noqa: E402
from sqlalchemy import text  # noqa: E402

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)
DEFAULT_URL = os.environ.get("OPSLINE_BENCH_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/opsline_bench_matching")
CONSUMER_PRICES = [39900, 49900, 59900, 69900, 79900, 89900, 99900, 129900, 149900]


def generate(url: str, invoices: int) -> None:
    """Fresh database, schema, reference data, invoices // 2 demo customers, two issued invoices each (Oct and Nov), and a
    payment history for 60 % of them (the payer bank accounts the payer-account rule learns from)."""
    from benchdb import fresh_database
    from opsline.db.bulk import copy_rows, reset_sequence
    from opsline.demo import run_demo
    from opsline.payments.behaviour import payer_account

    engine = fresh_database(url)
    accounts = invoices // 2
    t0 = time.perf_counter()
    run_demo(engine, accounts=accounts, now=NOW, steps=["customers"])
    print(f"  {accounts:,} demo accounts in {time.perf_counter() - t0:.1f} s", flush=True)
    rng = np.random.default_rng(7)
    with engine.begin() as c:
        acc = c.execute(text("SELECT id, segment_code FROM account ORDER BY id")).all()
        t0 = time.perf_counter()

        def rows():  # type: ignore[no-untyped-def]
            price = rng.choice(np.array(CONSUMER_PRICES), len(acc))
            biz = rng.integers(150000, 2500000, len(acc))
            n = 0
            for k, (aid, seg) in enumerate(acc):
                amount = int(price[k]) if seg == "consumer" else int(biz[k])
                for ps, pe, due in ((date(2026, 10, 1), date(2026, 11, 1), date(2026, 10, 31)), (date(2026, 11, 1), date(2026, 12, 1), date(2026, 11, 30))):
                    n += 1
                    issued = datetime(ps.year, ps.month, 1, 6, tzinfo=timezone.utc)
                    net = round(amount / 1.15)
                    yield (n, aid, None, "cycle", ps, pe, f"INV-2026-{n:08d}", "new", "ZAR", net, amount - net, amount, issued, due, issued, 1)

        cols = ("id", "account_id", "bill_run_id", "kind", "period_start", "period_end", "number", "state", "currency", "subtotal_minor", "tax_minor",
                "total_minor", "issued_at", "due_date", "created_at", "version")
        copy_rows(c, "invoice", cols, rows())
        reset_sequence(c, "invoice")
        known = [(aid, payer_account(aid), date(2026, 9, 1)) for aid, _ in acc if rng.random() < 0.6]
        copy_rows(c, "payment_known_payer", ("account_id", "payer_account", "first_seen_on"), known)
        print(f"  {len(acc) * 2:,} invoices, {len(known):,} known payer accounts in {time.perf_counter() - t0:.1f} s", flush=True)
    with engine.connect() as c:
        c.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    engine.dispose()


def pick(engine, lines: int, seed: int):  # type: ignore[no-untyped-def]
    from opsline.payments.behaviour import OpenInvoice

    rng = np.random.default_rng(seed)
    with engine.connect() as c:
        top = c.execute(text("SELECT MAX(id) FROM invoice")).scalar_one()
        ids = sorted(set(int(x) for x in rng.choice(np.arange(1, top + 1), size=min(top, int(lines * 1.02)), replace=False)))
        c.execute(text("CREATE TEMP TABLE bench_ids (id BIGINT PRIMARY KEY)"))
        from opsline.db.bulk import copy_rows

        copy_rows(c, "bench_ids", ("id",), ((i,) for i in ids))
        rows = c.execute(text("""SELECT i.id, i.account_id, a.account_number, a.name, i.number, i.total_minor, i.due_date, a.segment_code
                                 FROM invoice i JOIN bench_ids b ON b.id = i.id JOIN account a ON a.id = i.account_id ORDER BY i.account_id, i.due_date""")).all()
    return [OpenInvoice(r[0], r[1], r[2], r[3], r[4], int(r[5]), r[6], r[7]) for r in rows], rng


def naive(engine, lines, limit: int) -> float:  # type: ignore[no-untyped-def]
    """Per line: token lookups by index, then the account's open invoices, then one INSERT per row written. Rolled back."""
    from opsline.payments.tokens import account_tokens, invoice_tokens

    sample = [ln for ln in lines if ln.channel == "eft" and ln.amount_minor > 0][:limit]
    with engine.connect() as c:
        tx = c.begin()
        f = c.execute(text("""INSERT INTO statement_file (filename, sha256, format, bank, bank_account, currency, lines_count, new_lines_count, matched_count,
                              proposed_count, suspense_count, imported_at, imported_by) VALUES ('naive', 'naive', 'csv', '', 'naive', 'ZAR', 0, 0, 0, 0, 0, :now, 'bench')
                              RETURNING id"""), {"now": NOW}).scalar_one()
        t0 = time.perf_counter()
        for n, ln in enumerate(sample):
            acc = inv = None
            for tok in invoice_tokens(ln.reference):
                r = c.execute(text("SELECT id, account_id FROM invoice WHERE number = :n"), {"n": tok}).first()
                if r:
                    inv, acc = r
                    break
            if acc is None:
                valid, repaired = account_tokens(ln.reference)
                for tok in valid:
                    acc = c.execute(text("SELECT id FROM account WHERE account_number = :n"), {"n": tok}).scalar()
                    if acc:
                        break
            if acc is None and ln.payer_account:
                r = c.execute(text("SELECT MIN(account_id), COUNT(DISTINCT account_id) FROM payment_known_payer WHERE payer_account = :p"),
                              {"p": ln.payer_account}).first()
                acc = r[0] if r and r[1] == 1 else None
            line_id = c.execute(text("""INSERT INTO statement_line (statement_file_id, line_no, bank_account, bank_reference, value_date, amount_minor, currency,
                                        payer_name, payer_account, reference) VALUES (:f, :n, 'naive', :r, :d, :a, 'ZAR', :pn, :pa, :ref) RETURNING id"""),
                                {"f": f, "n": n, "r": ln.bank_reference, "d": ln.value_date, "a": ln.amount_minor, "pn": ln.payer_name, "pa": ln.payer_account,
                                 "ref": ln.reference}).scalar_one()
            pid = c.execute(text("""INSERT INTO payment (account_id, statement_line_id, source, method, state, amount_minor, currency, received_on, payer_name,
                                    payer_account, reference, created_at, created_by) VALUES (:acc, :l, 'statement', 'eft', :st, :a, 'ZAR', :d, :pn, :pa, :ref,
                                    :now, 'bench') RETURNING id"""),
                            {"acc": acc, "l": line_id, "st": "allocated" if acc else "suspense", "a": ln.amount_minor, "d": ln.value_date, "pn": ln.payer_name,
                             "pa": ln.payer_account, "ref": ln.reference, "now": NOW}).scalar_one()
            if acc is None:
                continue
            left = ln.amount_minor
            opens = c.execute(text("""SELECT i.id, i.total_minor - COALESCE((SELECT SUM(x.amount_minor) FROM payment_allocation x WHERE x.invoice_id = i.id
                                      AND x.state IN ('allocated','proposed')), 0) FROM invoice i WHERE i.account_id = :a ORDER BY i.due_date, i.id"""),
                              {"a": acc}).all()
            if inv:
                opens.sort(key=lambda o: o[0] != inv)
            for inv_id, open_minor in [*opens, (None, 10**15)]:
                take = min(left, open_minor)
                if take <= 0:
                    continue
                aid = c.execute(text("""INSERT INTO payment_allocation (payment_id, account_id, invoice_id, amount_minor, currency, state, rule_code, score,
                                        evidence, created_at, created_by) VALUES (:p, :acc, :i, :a, 'ZAR', 'allocated', 'naive', 99, '{}', :now, 'bench')
                                        RETURNING id"""), {"p": pid, "acc": acc, "i": inv_id, "a": take, "now": NOW}).scalar_one()
                c.execute(text("""INSERT INTO ledger_entry (account_id, kind, ref_type, ref_id, amount_minor, currency, posted_at, description)
                                  VALUES (:acc, 'payment', 'allocation', :id, :a, 'ZAR', :now, 'naive')"""), {"acc": acc, "id": aid, "a": -take, "now": NOW})
                left -= take
                if left <= 0:
                    break
        elapsed = time.perf_counter() - t0
        tx.rollback()
    return len(sample) / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--invoices", type=int, default=1_000_000)
    ap.add_argument("--naive", type=int, default=2_000)
    ap.add_argument("--url", default=DEFAULT_URL)
    ap.add_argument("--reuse", action="store_true", help="keep the generated database (invoices, accounts) from a previous run")
    ap.add_argument("--skip-settled-subscribers", action="store_true",
                    help="publish payments.invoice(s)_settled but do not run their subscribers (billing moves the invoices to paid); "
                         "their cost is then left out of the figure, and the last line says so")
    args = ap.parse_args()

    import opsline.models  # noqa: F401  (every table, so foreign keys resolve)
    from opsline.core.events import Actor
    from opsline.db.session import make_engine, make_sessionmaker
    from opsline.payments import behaviour, imports

    if not args.reuse:
        generate(args.url, args.invoices)
    engine = make_engine(args.url)
    with engine.begin() as c:  # a reused database: forget the previous run's payments
        c.execute(text("TRUNCATE statement_file, statement_line, payment, payment_allocation, suspense_item, payment_refund, debit_order_result "
                       "RESTART IDENTITY CASCADE"))
        c.execute(text("DELETE FROM ledger_entry WHERE kind = 'payment'"))
        # payer accounts the previous run learned (the generated history is dated 2026-09-01) would make a re-run easier
        c.execute(text("DELETE FROM payment_known_payer WHERE first_seen_on > :d"), {"d": date(2026, 9, 1)})
        c.execute(text("UPDATE invoice SET state = 'new' WHERE state <> 'new'"))
        open_invoices = c.execute(text("SELECT COUNT(*) FROM invoice WHERE number IS NOT NULL")).scalar_one()
    if args.reuse:  # the reset left dead rows behind: a re-run starts from tables as tidy as a fresh one (untimed)
        with engine.connect() as c:
            c.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE invoice, ledger_entry, payment_known_payer"))
    invoices, rng = pick(engine, args.lines, seed=11)
    day = date(2026, 11, 20)
    lines = behaviour.behave(invoices, rng=rng, day=day, noise=max(2, len(invoices) // 500))
    eft = [ln for ln in lines if ln.channel != "debit_order"]
    dos = [ln for ln in lines if ln.channel == "debit_order"]
    files = [("fnb-bench.csv", behaviour.fnb_csv(eft, opening_minor=10**9), "csv", "fnb"), ("debit-orders-bench.csv", behaviour.debit_results(dos), None, None)]
    truth = {ln.bank_reference: (ln.truth_account, ln.truth_invoice) for ln in eft}
    truth.update({f"DO:{ln.collection_ref}": (ln.truth_account, ln.truth_invoice) for ln in dos})
    behaviours = {ln.bank_reference: ln.behaviour for ln in eft} | {f"DO:{ln.collection_ref}": ln.behaviour for ln in dos}
    n_lines = len(eft) + len(dos)
    print(f"  {n_lines:,} lines ({len(eft):,} bank CSV, {len(dos):,} debit-order results) against {open_invoices:,} open invoices", flush=True)

    naive_rate = naive(engine, lines, args.naive)
    print(f"  naive per-line matcher: {naive_rate:,.0f} lines/s on {args.naive:,} lines", flush=True)

    # time what the same-transaction subscribers of payments.invoice_settled (billing moving each invoice to paid) take
    from opsline.core import domain_events

    SETTLED_EVENTS = ("payments.invoice_settled", "payments.invoices_settled")  # one invoice / one batch (set-based)
    spent = {"settled": 0.0, "n": 0}
    deliver = domain_events._deliver

    def timed_deliver(session, ev):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        if not (args.skip_settled_subscribers and ev.name in SETTLED_EVENTS):
            deliver(session, ev)
        if ev.name in SETTLED_EVENTS:
            spent["settled"] += time.perf_counter() - t
            spent["n"] += 1

    domain_events._deliver = timed_deliver
    factory = make_sessionmaker(engine)
    clerk = Actor(name="bench", roles=frozenset({"debtors_clerk"}))
    t0 = time.perf_counter()
    results = []
    for name, data, fmt, mapping in files:
        t1 = time.perf_counter()
        with factory.begin() as s:
            results.append(imports.import_statement(s, data=data, filename=name, fmt=fmt, mapping_name=mapping, now=NOW, actor=clerk))
        print(f"  {name}: {results[-1]['lines']:,} lines in {time.perf_counter() - t1:.1f} s; {results[-1]['by_rule']}", flush=True)
    elapsed = time.perf_counter() - t0
    print(f"  of which {spent['settled']:.1f} s in the subscribers of {spent['n']:,} payments.invoice(s)_settled events (billing: invoices → paid)")

    with engine.connect() as c:
        rows = c.execute(text("""SELECT p.id, p.state, COALESCE(l.bank_reference, p.external_id) AS key, x.account_id, x.invoice_id, x.rule_code
                                 FROM payment p LEFT JOIN statement_line l ON l.id = p.statement_line_id
                                 LEFT JOIN payment_allocation x ON x.payment_id = p.id AND x.state = 'allocated'""")).all()
        ledger = c.execute(text("SELECT COALESCE(SUM(amount_minor), 0) FROM ledger_entry WHERE kind = 'payment'")).scalar_one()
        # an invoice named by one payment may already have been paid by an earlier one of the same account (oldest first): right too
        settled = {r[0] for r in c.execute(text("""SELECT i.id FROM invoice i JOIN payment_allocation x ON x.invoice_id = i.id AND x.state = 'allocated'
                                                   GROUP BY i.id, i.total_minor HAVING SUM(x.amount_minor) >= i.total_minor"""))}
        alloc_sum = c.execute(text("SELECT COALESCE(SUM(amount_minor), 0) FROM payment_allocation WHERE state = 'allocated'")).scalar_one()
    assert -ledger == alloc_sum, "ledger payments must equal allocations"
    pays: dict[int, dict] = {}
    for pid, state, key, acc, inv, rule in rows:
        p = pays.setdefault(pid, {"state": state, "key": key, "accounts": set(), "invoices": set(), "rule": rule})
        if acc:
            p["accounts"].add(acc)
            p["invoices"].add(inv)
    payments = len(pays)
    assert payments == sum(r["payments"] for r in results)
    auto = [p for p in pays.values() if p["state"] == "allocated"]
    right = 0
    wrong: dict[str, int] = {}
    for p in auto:
        t_acc, t_inv = truth.get(p["key"], (None, None))
        if t_acc is not None and p["accounts"] == {t_acc} and (t_inv is None or t_inv in p["invoices"] or t_inv in settled):
            right += 1
        else:
            k = f"{p['rule']}/{behaviours.get(p['key'], '?')}"
            wrong[k] = wrong.get(k, 0) + 1
    rate = len(auto) / payments
    precision = right / len(auto) if auto else 0.0
    ours = n_lines / elapsed
    print(f"  payments {payments:,}: {len(auto):,} allocated automatically, {sum(r['proposed'] for r in results):,} proposed, "
          f"{sum(r['suspense'] for r in results):,} to suspense; {len(auto) - right} wrong automatic allocations {wrong}")
    own = n_lines / max(elapsed - spent["settled"], 1e-9)
    print(f"  without the settled subscribers: {elapsed - spent['settled']:.1f} s ({own:,.0f} lines/s; ratio {own / naive_rate:.0f})"
          + (" [subscribers skipped by --skip-settled-subscribers]" if args.skip_settled_subscribers else ""))
    print(f"matching: {n_lines} lines {elapsed:.1f} s ({ours:,.0f} lines/s); auto-matched {rate:.1%}; precision {precision:.2%}; "
          f"naive {naive_rate:,.0f} lines/s; ratio {ours / naive_rate:.0f}" + ("; settled subscribers skipped" if args.skip_settled_subscribers else ""))


if __name__ == "__main__":
    main()
