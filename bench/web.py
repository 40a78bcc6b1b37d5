"""Benchmark: page and API latency at N accounts, through real HTTP to a served app (uvicorn in a child process),
on SQLite and PostgreSQL, with data from the demo generator (`opsline demo`).

    .venv/bin/python bench/web.py [--accounts 100000] [--db sqlite,postgresql] [--requests 40] [--reuse]

Measured, per endpoint, p50/p95/max of the whole request (server time plus loopback HTTP), signed in as admin (pages)
or with a bearer token (TMF APIs): account search by name and by account number, the account 360 page and each of
its HTMX panels, the cases work queue, the billing pages (runs, invoices), and every TMF list the app serves
(discovered from /openapi.json). Each answer must be 200 and non-empty (the searched account found, a list with
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


def measure(kind: str, url: str, accounts: int, requests: int, with_worker: bool) -> tuple[float, str]:
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
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "opsline-bench-web"))
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    results = []
    for kind in [k.strip() for k in args.db.split(",") if k.strip()]:
        url = prepare_database(kind, args.accounts, args.reuse, args.workdir)
        worst, label = measure(kind, url, args.accounts, args.requests, args.with_worker)
        results.append((kind, worst, label))
    for kind, worst, label in results:
        print(f"web: {kind} {args.accounts} accounts: worst p95 {worst:.1f} ms ({label}); target {TARGET_MS:.0f} ms; ratio {worst / TARGET_MS:.2f}")


if __name__ == "__main__":
    main()
