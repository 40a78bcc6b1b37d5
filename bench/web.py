"""Benchmark: page and API latency at N accounts, through real HTTP to a served app (uvicorn in a child process),
on SQLite and PostgreSQL, with data from the demo generator (`opsline demo`).

    .venv/bin/python bench/web.py [--accounts 100000] [--db sqlite,postgresql] [--requests 40] [--reuse]
                                  [--journeys 50000] [--only cancellations]

Measured, per endpoint, p50/p95/max of the whole request (server time plus loopback HTTP), signed in as admin (pages)
or with a bearer token (TMF APIs): account search by name and by account number, the account 360 page and each of
its HTMX panels, the cases work queue, the billing pages (runs, invoices), and every TMF list the app serves
(discovered from /openapi.json), and the cancellations desk: the board (unfiltered, breaching, one step, one FNO), the
day plan is on the board page, every report page (volumes, SLA with breaches by cause, breach drill-down, prevention
actions, leakage, equipment recovery) and the coordinator's home. `--journeys N` adds N open cancellation journeys
(with their six checklist steps each, done / open / late in a realistic mix, notices over the last year) over the
demo's accounts and products, set-based (two INSERT ... SELECT), so the desk can be timed at 50,000 open journeys
without a 50,000-account demo; products are reused when there are fewer than N (the pages read journeys and steps).
The running totals those pages read (cancellations/totals.py) are kept by triggers as the rows go in, so the insert
pays for them; what a single step change costs for its totals is not timed here (one statement-level trigger per
UPDATE; within the noise of a 2 ms single-step UPDATE on a loaded machine).
`--only TEXT` times only the endpoints whose label contains TEXT. Each answer must be 200 and non-empty (the searched account found, a list with
items) before its time counts. Leaves out: browser rendering and static assets; the in-process worker is off (run
`--with-worker` to measure pages while the worker drains the demo's jobs). Target: p95 < 100 ms for every endpoint.
Last line: `web: sqlite 100000 accounts: worst p95 61.2 ms (GET /tmf-api/...); target 100 ms; ratio 0.61`.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from statistics import median
from typing import Any, Callable

import httpx
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from opsline.core.events import Actor  # noqa: E402
from opsline.customers.models import Account  # noqa: E402
from opsline.db.migrate import upgrade  # noqa: E402
from opsline.db.session import make_engine, make_sessionmaker  # noqa: E402
from opsline.demo import DEMO_PASSWORD, run_demo  # noqa: E402
from opsline.users.service import create_api_client  # noqa: E402

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)
PORT = 8102
TARGET_MS = 100.0
TMF_LIST = re.compile(r"^/(tmf-api|api)/[A-Za-z]+/v4/[A-Za-z]+$")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def prepare_database(kind: str, accounts: int, reuse: bool, workdir: str) -> str:
    """Migrate and load the demo at `accounts`; returns the database URL (reused when asked and already loaded)."""
    if kind == "sqlite":
        path = os.path.join(workdir, f"bench_web_{accounts}.db")
        url = f"sqlite:///{path}"
        if reuse and os.path.exists(path):
            return url
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
    else:
        base = os.environ.get("OPSLINE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/opsline_bench_web_d2")
        u = make_url(base).set(database=f"{make_url(base).database}_{accounts}")
        url = u.render_as_string(hide_password=False)
        admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            exists = c.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": u.database}).first()
            if not (reuse and exists):
                c.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
                c.execute(text(f'CREATE DATABASE "{u.database}"'))
                exists = None
        admin.dispose()
        if exists:
            return url
    engine = make_engine(url)
    upgrade(engine)
    t0 = time.perf_counter()
    counts = run_demo(engine, accounts=accounts, now=NOW)
    _log(f"[{kind}] demo loaded in {time.perf_counter() - t0:.1f} s: {counts}")
    engine.dispose()
    return url


_STEP_ROWS = [("retention", 1, "cancellations_coordinator"), ("notice", 2, "cancellations_coordinator"), ("customer_notified", 3, "cancellations_coordinator"),
              ("fno_deactivation", 4, "fno"), ("equipment", 5, "logistics"), ("final_account", 6, "billing_analyst")]


def add_open_journeys(url: str, n: int) -> int:
    """N open cancellation journeys and their steps, set-based, as of NOW: the current step spread like a real desk
    (most waiting on the FNO or equipment), next due times from 5 days overdue to 25 days ahead, earlier steps done
    (one in twelve late), notices over the last 11 months. Idempotent: journeys already added (BENCH-*) are kept."""
    engine = make_engine(url)
    pg = engine.dialect.name == "postgresql"
    now = NOW if pg else NOW.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    today = NOW.date() if pg else NOW.date().isoformat()

    def hours(expr: str, base: str) -> str:
        # SQLite: the text the ORM stores for an instant (microseconds included), so comparisons with it stay exact
        return f"({base} + ({expr}) * interval '1 hour')" if pg else f"(strftime('%Y-%m-%d %H:%M:%f', {base}, ({expr}) || ' hours') || '000')"

    def days_before(expr: str) -> str:
        return f"(CAST(:today AS DATE) - ({expr}))" if pg else f"date(:today, '-' || ({expr}) || ' days')"

    steps = " UNION ALL ".join(f"SELECT '{c}' AS code, {p} AS pos, '{o}' AS owner" for c, p, o in _STEP_ROWS)
    cur = ("CASE WHEN n.i % 10 = 0 THEN 1 WHEN n.i % 10 = 1 THEN 2 WHEN n.i % 10 = 2 THEN 3 WHEN n.i % 10 < 6 THEN 4 WHEN n.i % 10 < 8 THEN 5 ELSE 6 END")
    with engine.begin() as c:
        have = c.execute(text("SELECT COUNT(*) FROM cancellation_journey WHERE reference LIKE 'BENCH-%'")).scalar_one()
        if have >= n:
            engine.dispose()
            return int(have)
        t0 = time.perf_counter()
        c.execute(text(f"""WITH RECURSIVE n(i) AS (SELECT CAST(:start AS INTEGER) UNION ALL SELECT i + 1 FROM n WHERE i < :n),
            pr AS (SELECT id, account_id, partner_code, ROW_NUMBER() OVER (ORDER BY id) - 1 AS rn FROM product),
            pc AS (SELECT COUNT(*) AS c FROM product),
            g AS (SELECT n.i, {cur} AS pos FROM n)
            INSERT INTO cancellation_journey (reference, kind, account_id, product_id, partner_code, state, reason_code, requester, channel, notice_date,
                effective_date, fno_due_date, juristic, cpa_applies, at_risk, next_due_at, current_step, created_by, created_at, updated_at, version)
            SELECT 'BENCH-' || g.i, 'cancellation', pr.account_id, pr.id, COALESCE(pr.partner_code, 'openserve'),
                CASE g.pos WHEN 1 THEN 'retention' WHEN 2 THEN 'confirmed' WHEN 3 THEN 'confirmed' WHEN 4 THEN 'deactivation_sent'
                           WHEN 5 THEN 'equipment_collection' ELSE 'final_billing' END,
                CASE g.i % 7 WHEN 0 THEN 'moving' WHEN 1 THEN 'price' WHEN 2 THEN 'service_quality' WHEN 3 THEN 'competitor' WHEN 4 THEN 'financial'
                             WHEN 5 THEN 'emigrating' ELSE 'other' END,
                'account_holder', 'staff', {days_before("(g.i * 31) % 330")}, {days_before("(g.i * 31) % 330 - 30")}, {days_before("(g.i * 31) % 330 - 30")},
                false, true, ((g.i * 7919) % 720 - 120) BETWEEN 0 AND 24, {hours("(g.i * 7919) % 720 - 120", ":now")},
                CASE g.pos WHEN 1 THEN 'retention' WHEN 2 THEN 'notice' WHEN 3 THEN 'customer_notified' WHEN 4 THEN 'fno_deactivation'
                           WHEN 5 THEN 'equipment' ELSE 'final_account' END,
                'bench', :now, :now, 1
            FROM g JOIN pc ON true JOIN pr ON pr.rn = g.i % pc.c"""), {"start": have + 1, "n": n, "now": now, "today": today})
        before = c.execute(text("SELECT MIN(id) - 1 FROM cancellation_journey WHERE reference LIKE 'BENCH-%'")).scalar_one() or 0
    if pg:  # the planner must know the new rows before the steps are joined to them
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("ANALYZE cancellation_journey"))
    with engine.begin() as c:
        cpos = ("CASE j.current_step WHEN 'retention' THEN 1 WHEN 'notice' THEN 2 WHEN 'customer_notified' THEN 3 WHEN 'fno_deactivation' THEN 4 "
                "WHEN 'equipment' THEN 5 ELSE 6 END")
        due = hours(f"(s.pos - {cpos}) * 48", "j.next_due_at")
        c.execute(text(f"""WITH s AS ({steps})
            INSERT INTO cancellation_step (journey_id, account_id, code, position, owner, state, due_at, at_risk, done_at, done_by, note)
            SELECT j.id, j.account_id, s.code, s.pos, s.owner, CASE WHEN s.pos < {cpos} THEN 'done' ELSE 'open' END, {due},
                   s.pos = {cpos} AND j.at_risk,
                   CASE WHEN s.pos < {cpos} THEN {hours(f"CASE WHEN (j.id + s.pos) % 12 = 0 THEN 5 ELSE -3 END + (s.pos - {cpos}) * 48", "j.next_due_at")} END,
                   CASE WHEN s.pos < {cpos} THEN 'bench' END, CASE WHEN s.pos < {cpos} THEN 'done (bench)' END
            FROM cancellation_journey j JOIN s ON true
            WHERE j.id > :before AND j.reference LIKE 'BENCH-%' AND NOT EXISTS (SELECT 1 FROM cancellation_step x WHERE x.journey_id = j.id)"""),
                  {"before": before})
        _log(f"added {n - have} open journeys and their steps in {time.perf_counter() - t0:.1f} s")
    # what autovacuum would have done by the time anyone looks: statistics and the visibility map of the new rows
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        for t in (("cancellation_journey", "cancellation_step") if pg else ("",)):
            c.execute(text(f"VACUUM ANALYZE {t}" if pg else "ANALYZE"))
    with engine.connect() as c:
        total = c.execute(text("SELECT COUNT(*) FROM cancellation_journey WHERE reference LIKE 'BENCH-%'")).scalar_one()
        steps_n = c.execute(text("SELECT COUNT(*) FROM cancellation_step s JOIN cancellation_journey j ON j.id = s.journey_id WHERE j.reference LIKE 'BENCH-%'")).scalar_one()
    engine.dispose()
    assert total == n and steps_n == 6 * n, f"expected {n} journeys and {6 * n} steps, found {total} and {steps_n}"
    return int(total)


def api_token(url: str) -> str:
    engine = make_engine(url)
    with make_sessionmaker(engine).begin() as s:
        _, token = create_api_client(s, name=f"bench-{int(time.time() * 1000)}", roles=["admin"], now=NOW, actor=Actor.system("bench"))
    engine.dispose()
    return token


def samples(url: str, n: int, seed: int = 7) -> dict[str, list[Any]]:
    """Accounts to search for and open: (name, account number, id), spread over the whole table."""
    engine = make_engine(url)
    rng = random.Random(seed)
    with engine.connect() as c:
        lo, hi = c.execute(select(func.min(Account.id), func.max(Account.id))).one()
        ids = sorted({rng.randint(lo, hi) for _ in range(n * 3)})
        rows = c.execute(select(Account.id, Account.name, Account.account_number).where(Account.id.in_(ids))).all()
    engine.dispose()
    rows = rows[:n]
    rng.shuffle(rows)
    return {"accounts": [(r.id, r.name, r.account_number) for r in rows]}


def start_server(url: str, with_worker: bool) -> subprocess.Popen[bytes]:
    env = dict(os.environ, OPSLINE_DATABASE_URL=url, OPSLINE_WORKER_IN_PROCESS="true" if with_worker else "false", OPSLINE_LOG_LEVEL="WARNING")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "opsline.web.app:create_app", "--factory", "--host", "127.0.0.1", "--port", str(PORT),
                             "--log-level", "warning", "--no-access-log"], env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", PORT), timeout=0.5):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("the server exited during start-up") from None
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("the server did not start within 60 s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


class Endpoint:
    def __init__(self, label: str, make_url: Callable[[int], str], check: Callable[[httpx.Response, int], None], client: str = "page") -> None:
        self.label, self.make_url, self.check, self.client = label, make_url, check, client


def _ok_html(marker: Callable[[int], str] | None = None) -> Callable[[httpx.Response, int], None]:
    def check(r: httpx.Response, i: int) -> None:
        assert r.status_code == 200, f"{r.request.url}: {r.status_code} {r.text[:300]}"
        assert len(r.text) > 200, f"{r.request.url}: empty page"
        if marker is not None:
            m = marker(i)
            assert m in r.text, f"{r.request.url}: {m!r} not in the answer"
    return check


def _ok_list(r: httpx.Response, i: int) -> None:
    assert r.status_code == 200, f"{r.request.url}: {r.status_code} {r.text[:300]}"
    body = r.json()
    assert isinstance(body, list) and body, f"{r.request.url}: empty list"


def endpoints(base: httpx.Client, api: httpx.Client, sample: dict[str, list[Any]]) -> list[Endpoint]:
    accs = sample["accounts"]
    pick = lambda i: accs[i % len(accs)]  # noqa: E731
    surname = lambda i: pick(i)[1].split()[-1] if len(pick(i)[1].split()) > 1 else pick(i)[1]  # noqa: E731
    eps = [
        Endpoint("GET /accounts?q=<full name>", lambda i: f"/accounts?q={pick(i)[1]}", _ok_html(lambda i: pick(i)[2])),
        Endpoint("GET /accounts?q=<account number>", lambda i: f"/accounts?q={pick(i)[2]}", _ok_html(lambda i: pick(i)[2])),
        Endpoint("GET /accounts?q=<surname>", lambda i: f"/accounts?q={surname(i)}", _ok_html()),
        Endpoint("GET /accounts (first page)", lambda i: "/accounts", _ok_html()),
        Endpoint("GET /accounts/{id} (account 360)", lambda i: f"/accounts/{pick(i)[0]}", _ok_html(lambda i: pick(i)[2])),
    ]
    page = base.get(f"/accounts/{pick(0)[0]}").text
    for key in sorted(set(re.findall(r"/accounts/\d+/panel/([\w-]+)", page))):
        eps.append(Endpoint(f"GET /accounts/{{id}}/panel/{key}", lambda i, k=key: f"/accounts/{pick(i)[0]}/panel/{k}",
                            lambda r, i: (r.status_code == 200) or _ok_html()(r, i)))
    for tab in ("mine", "team", "breaching", "all"):
        eps.append(Endpoint(f"GET /cases?tab={tab} (work queue)", lambda i, t=tab: f"/cases?tab={t}", _ok_html()))
    eps += [Endpoint("GET /billing/runs", lambda i: "/billing/runs", _ok_html()),
            Endpoint("GET /billing/invoices", lambda i: "/billing/invoices", _ok_html())]
    eps += cancellations_endpoints()
    spec = api.get("/openapi.json").json()
    for path, ops in sorted(spec["paths"].items()):
        if "get" in ops and TMF_LIST.match(path) and not path.endswith(("/hub", "/listener")):
            probe = api.get(path, params={"limit": 1})
            total = int(probe.headers.get("X-Total-Count", "1" if probe.status_code == 200 and probe.json() else "0"))
            if total == 0:
                print(f"  GET {path}: no items in the demo data; not timed", flush=True)
                continue
            pages = max(1, min(5, total // 50))  # spread over the first pages that exist
            eps.append(Endpoint(f"GET {path}", lambda i, p=path, n=pages: f"{p}?offset={(i % n) * 50}&limit=50", _ok_list, client="api"))
    eps.append(Endpoint("GET TMF629 customer?name=<account number>",
                        lambda i: f"/tmf-api/customerManagement/v4/customer?name={pick(i)[2]}", _ok_list, client="api"))
    return eps


def cancellations_endpoints() -> list[Endpoint]:
    """The cancellations desk: board and day plan (one page), its filters, every report page and the coordinator's home."""
    pages = [("board + day plan", "/cancellations", "Open journeys by step"), ("board breaching", "/cancellations?breaching=1", "Open journeys by step"),
             ("board step=fno_deactivation", "/cancellations?step=fno_deactivation", "Open journeys by step"),
             ("board partner=openserve page 3", "/cancellations?partner=openserve&page=3", "Open journeys by step"),
             ("reports (volumes)", "/cancellations/reports", "Cancellations by reason and month"),
             ("reports/sla (compliance, breaches by cause)", "/cancellations/reports/sla", "Breaches by cause"),
             ("reports/breaches (drill-down)", "/cancellations/reports/breaches?cause=waiting_on_fno", "SLA breaches"),
             ("reports/breaches (all causes, page 3)", "/cancellations/reports/breaches?page=3", "SLA breaches"),
             ("reports/breaches (not yet analysed)", "/cancellations/reports/breaches?cause=none", "SLA breaches"),
             ("board reason=price", "/cancellations?reason=price", "Open journeys by step"),
             ("prevention actions", "/cancellations/prevention", "Breach prevention actions"),
             ("reports/leakage", "/cancellations/reports/leakage", "Fees paid to FNOs"),
             ("reports/equipment", "/cancellations/reports/equipment", "Equipment recovery"),
             ("desk home (coordinator)", "/desk/cancellations_coordinator", "Open cancellation journeys")]
    return [Endpoint(f"GET cancellations {label}", lambda i, u=url: u, _ok_html(lambda i, m=marker: m)) for label, url, marker in pages]


def measure(kind: str, url: str, accounts: int, requests: int, with_worker: bool, only: str = "") -> tuple[float, str]:
    token = api_token(url)
    sample = samples(url, max(requests, 20))
    proc = start_server(url, with_worker)
    rows: list[tuple[str, int, float, float, float]] = []
    try:
        base = httpx.Client(base_url=f"http://127.0.0.1:{PORT}", timeout=60)
        base.get("/login")  # the sign-in form's CSRF cookie
        r = base.post("/login", data={"username": "admin", "password": DEMO_PASSWORD, "next": "/", "csrf_token": base.cookies.get("opsline_signin") or ""},
                      follow_redirects=False)
        assert r.status_code == 303, f"sign-in failed: {r.status_code} {r.text[:300]}"
        api = httpx.Client(base_url=f"http://127.0.0.1:{PORT}", timeout=60, headers={"Authorization": f"Bearer {token}"})
        for ep in endpoints(base, api, sample):
            if only and only not in ep.label:
                continue
            client = api if ep.client == "api" else base
            for i in range(2):  # warm the server's caches and the database pages once
                client.get(ep.make_url(i))
            times = []
            for i in range(requests):
                t0 = time.perf_counter()
                resp = client.get(ep.make_url(i))
                times.append((time.perf_counter() - t0) * 1000)
                ep.check(resp, i)
            times.sort()
            p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
            rows.append((ep.label, len(times), median(times), p95, times[-1]))
            print(f"  [{kind}] {ep.label:<62} p50 {median(times):7.1f} ms  p95 {p95:7.1f} ms  max {times[-1]:7.1f} ms", flush=True)
    finally:
        stop_server(proc)
    worst = max(rows, key=lambda r: r[3])
    slow = [r for r in rows if r[3] >= TARGET_MS]
    if slow:
        print(f"  [{kind}] over the {TARGET_MS:.0f} ms p95 target: " + "; ".join(f"{r[0]} {r[3]:.0f} ms" for r in slow), flush=True)
    return worst[3], worst[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--reuse", action="store_true", help="reuse an already loaded database of the same size")
    ap.add_argument("--with-worker", action="store_true", help="run the in-process worker while measuring")
    ap.add_argument("--journeys", type=int, default=0, help="add this many open cancellation journeys (set-based) before measuring")
    ap.add_argument("--only", default="", help="time only the endpoints whose label contains this text (e.g. cancellations)")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "opsline-bench-web"))
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    results = []
    for kind in [k.strip() for k in args.db.split(",") if k.strip()]:
        url = prepare_database(kind, args.accounts, args.reuse, args.workdir)
        if args.journeys:
            add_open_journeys(url, args.journeys)
        worst, label = measure(kind, url, args.accounts, args.requests, args.with_worker, args.only)
        results.append((kind, worst, label))
    for kind, worst, label in results:
        extra = f" + {args.journeys} open journeys" if args.journeys else ""
        print(f"web: {kind} {args.accounts} accounts{extra}: worst p95 {worst:.1f} ms ({label}); target {TARGET_MS:.0f} ms; ratio {worst / TARGET_MS:.2f}")


if __name__ == "__main__":
    main()
