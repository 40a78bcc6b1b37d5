"""Benchmark: a dunning run over N demo accounts on PostgreSQL, through the real service (opsline.debtors.runs.run_dunning):
ageing from the ledger, each account's next step from its policy and where it stands, the exclusions (open claims, payment
proposals, suspense naming the account, holds), the actions, the accounts' positions, the audit events (account timeline)
and the worker jobs, committed. The data: the demo's customers (segments, value tiers, statuses), a ledger with the demo's
spread of balances (three monthly invoices by segment price; most paid, some partly, some not at all; older arrears for a
few), open claims on 1 % of debtors, payment proposals and suspense naming 0.5 %, holds on 0.2 %, and 60 % of debtors
already part-way through dunning (as after daily runs).

Baseline: a competent per-account run in the same process on a sample (the account's ledger by index, FIFO ageing in
Python, one indexed lookup per exclusion, the policy steps cached, one INSERT of the action and one of its audit event),
rolled back; its decisions must agree with ours on the sample.

Then the worker: the run's `debtors.perform_actions` jobs carried out as the worker does (one job of 200 actions per
transaction, committed; `--worker-jobs 0` every job): reminders and warnings queued through notifications, letter PDFs
rendered and attached, suspensions through the account lifecycle, states, notes and memos. Its baseline carries out the
next jobs one action at a time (a savepoint, notifications.send, one WeasyPrint render, one transition and memo each:
the worker as it was), rolled back. The whole run is the run plus carrying out every queued action (measured with
`--worker-jobs 0`, else extrapolated at the measured rate and said so).

    .venv/bin/python bench/dunning.py [--accounts 100000] [--naive 2000] [--url postgresql+psycopg://...] [--reuse]
                                      [--worker-jobs 10] [--baseline-jobs 2]

Last line: `dunning: 1,000,000 accounts 14.0 s (71,000 accounts/s, ...); evaluation ...; naive ...; ratio ...; worker N actions/s
(one-by-one M); whole run T s`
Leaves out: delivery of the messages (SMTP / SMS gateway: the notifications worker, after the run) and the reactions to a
suspension in other areas (partner orders: their own jobs).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date, datetime, timedelta, timezone

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402
from sqlalchemy import text  # noqa: E402

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)
TODAY = date(2026, 11, 23)
DEFAULT_URL = os.environ.get("OPSLINE_BENCH_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/opsline_bench_dunning")
PRICES = {"consumer": [39900, 59900, 79900, 99900, 129900], "sme": [149900, 299900, 499900], "enterprise": [999900, 2499900],
          "wholesale": [4999900, 9999900]}


def generate(url: str, accounts: int) -> None:
    from benchdb import fresh_database

    from opsline.db.bulk import copy_rows, reset_sequence
    from opsline.demo import run_demo

    engine = fresh_database(url)
    t0 = time.perf_counter()
    run_demo(engine, accounts=accounts, now=NOW, steps=["customers"])
    print(f"  {accounts:,} demo accounts in {time.perf_counter() - t0:.1f} s", flush=True)
    rng = np.random.default_rng(11)
    t0 = time.perf_counter()
    with engine.begin() as c:
        acc = c.execute(text("SELECT id, segment_code FROM account ORDER BY id")).all()
        ids = np.array([a.id for a in acc], dtype=np.int64)
        n = len(ids)
        amount = np.array([PRICES.get(a.segment_code, PRICES["consumer"])[k % len(PRICES.get(a.segment_code, PRICES["consumer"]))]
                           for k, a in enumerate(acc)], dtype=np.int64)
        behaviour = rng.random(n)  # < .72 pays in full, < .82 pays part, else pays nothing this month
        months_behind = np.where(rng.random(n) < 0.92, 0, rng.integers(1, 5, n))  # older arrears for 8 %
        rows = []
        lid = 1
        for k in range(n):
            a, amt = int(ids[k]), int(amount[k])
            for m, due in enumerate((date(2026, 9, 30), date(2026, 10, 31), date(2026, 11, 30))):
                posted = datetime(2026, 9 + m, 1, 4, 0, tzinfo=timezone.utc)
                rows.append((lid, a, "invoice", "invoice", lid, amt, "ZAR", posted, due, "Invoice"))
                lid += 1
            owed_months = 2 - 0  # Sep and Oct are due before today; Nov is not
            paid = amt * max(0, owed_months - int(months_behind[k]))
            if behaviour[k] >= 0.82:
                paid = max(0, paid - amt)
            elif behaviour[k] >= 0.72:
                paid = max(0, paid - amt // 2)
            if months_behind[k]:  # earlier arrears brought forward from the previous system
                rows.append((lid, a, "adjustment", "opening_balance", lid, amt * int(months_behind[k]), "ZAR",
                             datetime(2026, 6, 1, 4, 0, tzinfo=timezone.utc), date(2026, 6, 30) - timedelta(days=30 * int(months_behind[k])), "Brought forward"))
                lid += 1
            if paid:
                rows.append((lid, a, "payment", "payment", lid, -paid, "ZAR", datetime(2026, 11, 3, 9, 0, tzinfo=timezone.utc), None, "Payment"))
                lid += 1
        copy_rows(c, "ledger_entry", ("id", "account_id", "kind", "ref_type", "ref_id", "amount_minor", "currency", "posted_at", "due_date", "description"), rows)
        reset_sequence(c, "ledger_entry")
        c.execute(text("ANALYZE ledger_entry"))
        debtors = np.array(c.execute(text("SELECT account_id FROM ledger_entry GROUP BY account_id HAVING SUM(CASE WHEN due_date < :d OR due_date IS NULL THEN amount_minor ELSE 0 END) > 0 ORDER BY account_id"),
                                     {"d": TODAY}).scalars().all(), dtype=np.int64)
        pick = lambda frac: debtors[rng.random(len(debtors)) < frac]  # noqa: E731
        # open claims (need an invoice row each)
        claim_acc = pick(0.01)
        inv_rows = [(int(a), date(2026, 10, 1), date(2026, 11, 1), f"INV-B-{int(a):09d}", "sent", "ZAR", 50000, 7500, 57500, NOW, date(2026, 10, 31), NOW, 1, "cycle")
                    for a in claim_acc]
        copy_rows(c, "invoice", ("account_id", "period_start", "period_end", "number", "state", "currency", "subtotal_minor", "tax_minor", "total_minor",
                                 "issued_at", "due_date", "created_at", "version", "kind"), inv_rows)
        c.execute(text("""INSERT INTO billing_claim (account_id, invoice_id, state, reason, channel, currency, disputed_minor, raised_at, raised_by, due_date, version)
                          SELECT account_id, id, 'submitted', 'charged for a line I cancelled', 'phone', 'ZAR', 20000, :now, 'agent', :due, 1
                          FROM invoice WHERE number LIKE 'INV-B-%'"""), {"now": NOW, "due": TODAY + timedelta(days=10)})
        # payment proposals and suspense items naming the account
        prop_acc, susp_acc = pick(0.003), pick(0.002)
        pay = []
        for k, a in enumerate(prop_acc):
            pay.append((f"bench-prop-{k}", int(a), "statement", "eft", "proposed", 59900, "ZAR", TODAY, "PAYER", "", "thanks", NOW, "bench"))
        num = dict(c.execute(text("SELECT id, account_number FROM account WHERE id = ANY(:ids)"), {"ids": [int(a) for a in susp_acc]}).all())
        for k, a in enumerate(susp_acc):
            pay.append((f"bench-susp-{k}", None, "statement", "eft", "suspense", 30000, "ZAR", TODAY, "MRS X", "", f"acc {num[int(a)]}", NOW, "bench"))
        copy_rows(c, "payment", ("external_id", "account_id", "source", "method", "state", "amount_minor", "currency", "received_on", "payer_name",
                                 "payer_account", "reference", "created_at", "created_by"), pay)
        c.execute(text("""INSERT INTO payment_allocation (payment_id, account_id, amount_minor, currency, state, rule_code, score, evidence, created_at, created_by)
                          SELECT id, account_id, amount_minor, currency, 'proposed', 'payer-name', 60, '{}', :now, 'bench' FROM payment
                          WHERE external_id LIKE 'bench-prop-%'"""), {"now": NOW})
        c.execute(text("""INSERT INTO suspense_item (payment_id, amount_minor, currency, owner, opened_at, opened_reason)
                          SELECT id, amount_minor, currency, 'debtors', :now, 'no match' FROM payment WHERE external_id LIKE 'bench-susp-%'"""), {"now": NOW})
        hold_acc = pick(0.002)
        copy_rows(c, "dunning_hold", ("account_id", "state", "reason", "valid_from", "valid_to", "created_at", "created_by"),
                  [(int(a), "active", "bench hold", TODAY - timedelta(days=3), TODAY + timedelta(days=9), NOW, "bench") for a in hold_acc])
        # 60 % of debtors already part-way through dunning (positions 1-4 of their policy; some still in the notice period)
        part = pick(0.6)
        st = c.execute(text("""SELECT a.id, s.id AS step_id, s.policy_id, s.position FROM account a
                               JOIN dunning_policy p ON p.code = 'default' JOIN dunning_step s ON s.policy_id = p.id
                               WHERE a.id = ANY(:ids) AND s.position = 1 + (a.id % 4)"""), {"ids": [int(a) for a in part]}).all()
        copy_rows(c, "dunning_account", ("account_id", "policy_id", "position", "step_id", "last_step_on", "next_step_from"),
                  [(r.id, r.policy_id, r.position, r.step_id, TODAY - timedelta(days=5), TODAY - timedelta(days=int(r.id % 7) - 3)) for r in st])
        c.execute(text("ANALYZE"))
    print(f"  ledger {len(rows):,} entries, {len(debtors):,} debtors, {len(claim_acc)} claims, {len(prop_acc)} proposals, {len(susp_acc)} suspense, "
          f"{len(hold_acc)} holds, {len(st):,} part-way; {time.perf_counter() - t0:.1f} s", flush=True)


def naive(session, sample: list[int]) -> dict[int, tuple[int, int]]:  # type: ignore[no-untyped-def]
    """Per account, the way one would without set-based SQL: returns account -> (policy id, position) decided."""
    from opsline.debtors import policies
    from opsline.debtors.exclusions import SUSPENSE_NAMED, _suspense_named

    pmap = {(s, t): p for s, t, p in policies.policy_map(session)}
    steps: dict[int, list] = {}
    for r in session.execute(text("SELECT policy_id, position, id, min_days_overdue, min_balance_minor, notice_days, action, handled_by FROM dunning_step ORDER BY policy_id, position")).all():
        steps.setdefault(r.policy_id, []).append(r)
    _suspense_named(session)
    named = set(session.execute(text(f"SELECT a.id FROM {SUSPENSE_NAMED} n JOIN account a ON a.account_number = n.account_number")).scalars())
    out: dict[int, tuple[int, int]] = {}
    for acc in sample:
        a = session.execute(text("SELECT segment_code, value_tier_code, status, currency FROM account WHERE id = :a"), {"a": acc}).one()
        if a.status not in ("active", "suspended"):
            continue
        led = session.execute(text("SELECT id, amount_minor, COALESCE(due_date, CAST(posted_at AS DATE)) AS due FROM ledger_entry "
                                   "WHERE account_id = :a AND posted_at < :now"), {"a": acc, "now": NOW}).all()
        paid = -sum(r.amount_minor for r in led if r.amount_minor < 0)
        debits = sorted((r for r in led if r.amount_minor > 0), key=lambda r: (r.due, r.id))
        overdue = sum(r.amount_minor for r in debits if r.due < TODAY) - paid
        if overdue <= 0:
            continue
        cum, oldest = 0, None
        for r in debits:
            cum += r.amount_minor
            if cum > paid:
                oldest = r.due
                break
        days = (TODAY - oldest).days
        pid = pmap.get((a.segment_code, a.value_tier_code))
        if pid is None:
            continue
        da = session.execute(text("SELECT position, next_step_from FROM dunning_account WHERE account_id = :a"), {"a": acc}).first()
        if da is not None and da.next_step_from > TODAY:
            continue
        cur = da.position if da else 0
        step = next((s for s in steps[pid] if s.position > cur and s.min_days_overdue <= days and s.min_balance_minor <= overdue), None)
        if step is None:
            continue
        if session.execute(text("SELECT 1 FROM billing_claim WHERE account_id = :a AND state IN ('submitted','inReview') LIMIT 1"), {"a": acc}).first():
            continue
        if session.execute(text("SELECT 1 FROM payment_allocation WHERE account_id = :a AND state = 'proposed' LIMIT 1"), {"a": acc}).first() or acc in named:
            continue
        if session.execute(text("SELECT 1 FROM dunning_hold WHERE account_id = :a AND state = 'active' AND valid_from <= :d AND valid_to > :d LIMIT 1"),
                           {"a": acc, "d": TODAY}).first():
            continue
        session.execute(text("INSERT INTO dunning_action (run_id, run_date, account_id, policy_id, step_id, position, action, handled_by, state, days_overdue, "
                             "overdue_minor, balance_minor, currency, created_at) VALUES (:r, :d, :a, :p, :s, :pos, :act, :h, 'queued', :days, :o, :o, :c, :now)"),
                        {"r": 0, "d": TODAY, "a": acc, "p": pid, "s": step.id, "pos": step.position, "act": step.action, "h": step.handled_by, "days": days,
                         "o": overdue, "c": a.currency, "now": NOW})
        session.execute(text("INSERT INTO audit_event (occurred_at, actor, entity_type, entity_id, account_id, action) VALUES (:now, 'bench', 'dunning_action', 'x', :a, :act)"),
                        {"now": NOW, "a": acc, "act": step.action})
        out[acc] = (pid, step.position)
    return out


def worker_one_by_one(session, *, run_id: int, from_id: int, to_id: int, now: datetime) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Baseline for the worker: each queued action on its own, as a competent per-action worker does it (and as ours did
    before it batched): a savepoint, one notifications.send, the letter rendered by itself (WeasyPrint), one lifecycle
    transition and one memo through the services."""
    from sqlalchemy import select

    from opsline.billing.invoicing.documents import company_profile
    from opsline.core import lifecycle
    from opsline.core.errors import OpslineError
    from opsline.customers import service as customers
    from opsline.customers.models import Account
    from opsline.customers.schemas import MemoIn
    from opsline.debtors.actions import LABELS, SYSTEM, _context, render_letter
    from opsline.debtors.models import DUNNING_ACTION, DunningAction, DunningLetter, DunningStep, StepAction
    from opsline.notifications import service as notifications

    todo = list(session.execute(select(DunningAction).where(DunningAction.run_id == run_id, DunningAction.state == "queued",
                                                            DunningAction.id >= from_id, DunningAction.id <= to_id).order_by(DunningAction.id)).scalars())
    steps = {st.id: st for st in session.execute(select(DunningStep)).scalars()}
    company = company_profile(session)
    out: dict[str, int] = {}
    for a in todo:
        step = steps[a.step_id]
        ctx = _context(a, step, company)
        move = "perform"
        try:
            with session.begin_nested():
                send = lambda ch, att=None: notifications.send(session, event=step.template_event or "dunning.reminder", account_id=a.account_id,  # noqa: E731
                                                               context=ctx, now=now, actor=SYSTEM, channel=ch, category="collections",
                                                               subject_ref=f"dunning_action:{a.id}", attachments=att,
                                                               idempotency_key=f"dunning-action:{a.id}:{ch}", on_opt_out="suppress")
                if a.action in ("reminder_email", "reminder_sms", "suspension_warning"):
                    a.message_id = send("sms" if a.action == "reminder_sms" else "email")
                elif a.action == "letter_of_demand":
                    pdf = render_letter(session, action=a, step=step)
                    letter = DunningLetter(action_id=a.id, account_id=a.account_id, content=pdf, size_bytes=len(pdf), rendered_at=now)
                    session.add(letter)
                    session.flush()
                    a.message_id = send("email", [notifications.Attachment(filename=f"letter-of-demand-DUN-{a.id}.pdf", content_type="application/pdf",
                                                                           ref=("dunning_letter", "content", letter.id))])
                elif a.action == "suspend":
                    if session.execute(select(Account.status).where(Account.id == a.account_id)).scalar_one() != "active":
                        move = "skip"
                    else:
                        customers.transition_account(session, account_id=a.account_id, action="suspend", now=now, actor=SYSTEM, reason="dunning")
                        a.message_id = send("email")
                else:
                    move = "skip"
                session.flush()
        except OpslineError:
            move = "fail"
        memo = f"Dunning: {LABELS.get(StepAction(a.action), a.action)} ({move})"
        a.note, a.done_at = memo, now
        lifecycle.transition(session, DUNNING_ACTION, a, move, now=now, actor=SYSTEM, reason=memo if move != "perform" else None)
        customers.add_memo(session, account_id=a.account_id, data=MemoIn(category="debtors", body=memo), now=now, actor=SYSTEM)
        out[move] = out.get(move, 0) + 1
    session.flush()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--naive", type=int, default=2000)
    ap.add_argument("--url", default=DEFAULT_URL)
    ap.add_argument("--reuse", action="store_true", help="skip generating (the database must hold a generated, un-run book)")
    ap.add_argument("--worker-jobs", type=int, default=10, help="worker jobs (200 actions each) carried out and timed after the run, committed "
                    "one job per transaction as the worker does; 0 = every job of the run")
    ap.add_argument("--baseline-jobs", type=int, default=2, help="jobs the one-by-one worker baseline carries out (rolled back)")
    args = ap.parse_args()
    from opsline.core.events import Actor
    from opsline.db.session import make_engine, make_sessionmaker
    from opsline.debtors import actions, runs

    if not args.reuse:
        generate(args.url, args.accounts)
    # what a live web or worker process has loaded once at start (every area, for the domain events a run publishes;
    # WeasyPrint for the letters), so neither timing below pays a one-off import of a few seconds
    from opsline.areas import load_areas

    load_areas()
    import weasyprint  # noqa: F401
    engine = make_engine(args.url)
    factory = make_sessionmaker(engine)
    with factory() as s:
        n = s.execute(text("SELECT COUNT(*) FROM account")).scalar_one()
        sample = list(s.execute(text("SELECT id FROM account ORDER BY md5(CAST(id AS TEXT)) LIMIT :k"), {"k": args.naive}).scalars())
    # baseline on a sample, rolled back
    with factory() as s:
        s.execute(text("ALTER TABLE dunning_action DROP CONSTRAINT IF EXISTS fk_dunning_action_run_id_dunning_run"))  # rolled back with the rest
        t0 = time.perf_counter()
        decided = naive(s, sample)
        t_naive = time.perf_counter() - t0
        s.rollback()
    naive_rate = len(sample) / t_naive
    # evaluation alone (the dry run: ageing, next steps, exclusions, per-step summary)
    with factory() as s:
        t0 = time.perf_counter()
        preview = runs.dry_run(s, run_date=TODAY, today=TODAY, now=NOW)
        t_eval = time.perf_counter() - t0
        s.rollback()
    # the whole run, committed
    t0 = time.perf_counter()
    with factory.begin() as s:
        res = runs.run_dunning(s, run_date=TODAY, today=TODAY, now=NOW, actor=Actor(name="bench", roles=frozenset({"debtors_manager"})))
    t_run = time.perf_counter() - t0
    with factory() as s:
        got = {int(a): (int(p), int(pos)) for a, p, pos in s.execute(text("SELECT account_id, policy_id, position FROM dunning_action WHERE run_id = :r AND account_id = ANY(:ids)"),
                                                                       {"r": res["run_id"], "ids": sample}).all()}
        written = s.execute(text("SELECT COUNT(*) FROM dunning_action WHERE run_id = :r"), {"r": res["run_id"]}).scalar_one()
        audit = s.execute(text("SELECT COUNT(*) FROM audit_event WHERE entity_type = 'dunning_action'")).scalar_one()
        jobs_n = s.execute(text("SELECT COUNT(*) FROM job WHERE kind = :k"), {"k": runs.PERFORM_JOB}).scalar_one()
        queued = s.execute(text("SELECT COUNT(*) FROM dunning_action WHERE run_id = :r AND state = 'queued'"), {"r": res["run_id"]}).scalar_one()
    assert got == decided, f"ours and the baseline disagree on {len(set(got.items()) ^ set(decided.items()))} of {len(sample)} sample accounts"
    assert written == res["actions"] == preview["actions"] > 0 and audit == written
    assert jobs_n == -(-queued // runs.CHUNK)
    assert sum(e["count"] for e in res["excluded"]) > 0 and {e["code"] for e in res["excluded"]} == {"in_dispute", "unallocated_money", "on_hold"}
    again = time.perf_counter()
    with factory.begin() as s:
        assert runs.run_dunning(s, run_date=TODAY, today=TODAY, now=NOW, actor=Actor(name="bench"))["already_run"]
    t_again = time.perf_counter() - again
    # the worker: the run's jobs carried out as the worker does (one job per transaction, committed); the baseline, one
    # action at a time, on the jobs after those (rolled back), so both see the same mix of reminders, letters and suspensions
    with factory() as s:
        job_rows = [j for j in s.execute(text("SELECT payload FROM job WHERE kind = :k ORDER BY id"), {"k": runs.PERFORM_JOB}).scalars()]
    take = job_rows if args.worker_jobs == 0 else job_rows[:args.worker_jobs]
    t0 = time.perf_counter()
    done: dict[str, int] = {}
    for payload in take:
        with factory.begin() as s:
            for k, v in actions.perform_job(s, payload, NOW).items():
                done[k] = done.get(k, 0) + v
    t_worker = time.perf_counter() - t0
    n_done = sum(done.values())
    with factory() as s:
        lo, hi = take[0]["from_id"], take[-1]["to_id"]
        left = s.execute(text("SELECT COUNT(*) FROM dunning_action WHERE run_id = :r AND state = 'queued' AND id BETWEEN :a AND :b"),
                         {"r": res["run_id"], "a": lo, "b": hi}).scalar_one()
        mix = dict(s.execute(text("SELECT action, COUNT(*) FROM dunning_action WHERE run_id = :r AND id BETWEEN :a AND :b "
                                  "AND state IN ('done', 'skipped', 'failed') GROUP BY action"),
                             {"r": res["run_id"], "a": lo, "b": hi}).all())
        letters = s.execute(text("SELECT COUNT(*) FROM dunning_letter l JOIN dunning_action a ON a.id = l.action_id WHERE a.run_id = :r"),
                            {"r": res["run_id"]}).scalar_one()
        msgs = s.execute(text("SELECT COUNT(*) FROM message WHERE subject_ref LIKE 'dunning_action:%'")).scalar_one()
        memos = s.execute(text("SELECT COUNT(*) FROM memo WHERE author = 'system:dunning'")).scalar_one()
    assert left == 0 and n_done == sum(mix.values()) and done.get("fail", 0) == 0, (left, done, mix)
    assert memos == n_done and letters == mix.get("letter_of_demand", 0) and msgs >= mix.get("reminder_email", 0) + mix.get("reminder_sms", 0)
    rate = n_done / t_worker
    rest = job_rows[len(take):len(take) + args.baseline_jobs] or job_rows[:args.baseline_jobs]
    t_base, n_base = 0.0, 0
    if rest and rest[0] not in take:
        with factory() as s:
            t0 = time.perf_counter()
            for payload in rest:
                n_base += sum(worker_one_by_one(s, run_id=res["run_id"], from_id=payload["from_id"], to_id=payload["to_id"], now=NOW).values())
            t_base = time.perf_counter() - t0
            s.rollback()
    base_rate = n_base / t_base if t_base else 0.0
    whole = t_run + (t_worker if args.worker_jobs == 0 else queued / rate)
    for st in res["steps"]:
        print(f"  {st['policy']:>10} {st['position']}. {st['name']:<40} {st['count']:>8,}")
    print("  excluded: " + ", ".join(f"{e['code']} {e['count']:,}" for e in res["excluded"]))
    print(f"  second run the same day {t_again * 1000:.0f} ms")
    print(f"  actions carried out: {n_done:,} of {queued:,} queued ({', '.join(f'{k} {v:,}' for k, v in sorted(mix.items()))}; {letters:,} letter PDFs) "
          f"in {t_worker:.1f} s = {rate:,.0f} actions/s ({len(take)} jobs, one worker, committed); "
          + (f"one-by-one baseline {n_base} actions {base_rate:,.1f} actions/s, ratio {rate / base_rate:,.1f}" if base_rate else "no baseline (no jobs left)"))
    print(f"  whole run (evaluated, actions written, carried out, messages queued): {whole:,.1f} s"
          + ("" if args.worker_jobs == 0 else f" (carrying out extrapolated from {n_done:,} of {queued:,} actions at {rate:,.0f}/s; one worker)"))
    print(f"dunning: {n:,} accounts {t_run:.1f} s ({n / t_run:,.0f} accounts/s, {written:,} actions, {jobs_n} jobs); "
          f"evaluation {t_eval:.1f} s ({n / t_eval:,.0f} accounts/s); naive {naive_rate:,.0f} accounts/s; ratio {(n / t_run) / naive_rate:,.0f}; "
          f"worker {rate:,.0f} actions/s (one-by-one {base_rate:,.1f}); whole run {whole:,.1f} s")


if __name__ == "__main__":
    main()
