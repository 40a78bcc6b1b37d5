"""Benchmark: Opsline under concurrent load (issue 13 item 4). Locust, headless on loopback, against Opsline on
PostgreSQL served by 2 uvicorn web workers plus 1 job worker, with data from the demo generator:

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/load.py [--accounts 2000] [--users 60] [--seconds 60] [--web-workers 2] [--reuse]

Users (bench/_load_users.py): second-line agents signed in to the web app (work queue, case page, a note now and
then, with the session's CSRF token), a CRM placing TMF622 orders with Idempotency-Keys and reading them back, and
systems reading TMF678 customer bills. In the background, a bank statement of 2,000 lines paying demo invoices is
imported through `opsline import-statement` while the users run. Every answer is checked (status and content) before
it counts as a success; the run fails if any request failed, the statement import failed, or the orders placed are
not all in the database afterwards.

Mail goes to a real SMTP sink (aiosmtpd) the bench runs, as production has a mail server: without one, every
notification the demo and the load queue is retried with backoff by the job worker, which then spends the window on
connection refusals. Before the server starts, the job worker runs once (`opsline worker --burst`) so the demo's
backlog of due jobs (about 2,500 messages at 2,000 accounts) is sent first, as a worker running all along would have:
the window carries only the jobs the load itself creates. The database is then vacuumed and analysed, as autovacuum
keeps a production database (this machine's PostgreSQL has autovacuum off), and the run works on a copy of it
(CREATE DATABASE ... TEMPLATE), so every run with --reuse starts from the same data (the notes a run adds made the
next run's case pages heavier).

Users start at --spawn-rate a second; each agent signs in as it starts (argon2id, RFC 9106 parameters: about 0.3 s of
CPU on this machine, by design), so the ramp-up is a sign-in storm no desk would produce. Statistics are reset once
every user has started (`--reset-stats`) and the --seconds that follow are measured, with the statement import in them.

Prints req/s, p50/p95/p99 per endpoint and errors; then where the cores went in the window (web workers, job worker,
statement import, PostgreSQL, locust, and the machine's busy time from /proc/stat) and what a request of this mix costs
the whole machine in CPU, hence the most requests a second these cores can serve at this mix whatever the latency;
last line:
`load: 2 web workers, 60 users, 60 s: 212.4 req/s, p99 180 ms, 0 errors; target 200 req/s at p99 < 200 ms`.
Leaves out: static assets and browser rendering; TLS (loopback HTTP); the locust process shares the 2 cores with the
server, its worker and PostgreSQL, as a single-machine test must.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from benchdb import copy_database, drop_database  # noqa: E402
from web import NOW, api_token, prepare_database  # noqa: E402

from opsline.db.session import make_engine  # noqa: E402

PORT = 8103
TARGET_RPS, TARGET_P99_MS = 200.0, 200.0


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _samples(url: str, seed: int = 11) -> dict[str, str]:
    rng = random.Random(seed)
    engine = make_engine(url)
    with engine.connect() as c:
        cases = c.execute(text("SELECT id FROM support_case WHERE state IN ('acknowledged','inProgress','pending','held') ORDER BY id LIMIT 2000")).scalars().all()
        invoices = c.execute(text("SELECT id FROM invoice WHERE state IN ('sent','partiallyPaid','paid') ORDER BY id LIMIT 5000")).scalars().all()
        offerings = dict(c.execute(text("SELECT partner_code, id FROM product_offering WHERE kind = 'fibre' AND active AND partner_code IS NOT NULL "
                                        "AND customer_kind IN ('consumer','any') ORDER BY download_mbps")).all())
        sites = c.execute(text("SELECT s.id, s.account_id, s.fno_coverage FROM site s JOIN account a ON a.id = s.account_id "
                               "WHERE a.status = 'active' AND a.kind = 'retail' ORDER BY s.id LIMIT 3000")).all()
    engine.dispose()
    targets = []
    for sid, acc, cov in sites:
        fnos = [f for f in (cov or []) if f in offerings]
        if fnos:
            targets.append(f"{acc}:{sid}:{offerings[rng.choice(fnos)]}")
    if not (cases and invoices and targets):
        raise SystemExit(f"demo data lacks cases ({len(cases)}), invoices ({len(invoices)}) or orderable sites ({len(targets)})")
    rng.shuffle(targets)
    return {"OPSLINE_LOAD_CASES": ",".join(map(str, rng.sample(list(cases), min(500, len(cases))))),
            "OPSLINE_LOAD_INVOICES": ",".join(map(str, rng.sample(list(invoices), min(2000, len(invoices))))),
            "OPSLINE_LOAD_ORDER_TARGETS": ",".join(targets[:1000])}


def _statement(url: str, path: Path, lines: int = 2000) -> int:
    """A Standard Bank CSV paying the latest `lines` demo invoices by their numbers (what a clerk would upload; an
    invoice already paid becomes account credit, as it would)."""
    engine = make_engine(url)
    with engine.connect() as c:
        rows = c.execute(text("SELECT i.number, i.total_minor, a.name FROM invoice i JOIN account a ON a.id = i.account_id "
                              "WHERE i.number IS NOT NULL AND i.total_minor > 0 ORDER BY i.id DESC LIMIT :n"), {"n": lines}).all()
    engine.dispose()
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("Valutadatum;Credit;Debit;Reference;Counterparty;Counterparty Account\n")
        run = int(time.time()) % 100_000  # payer accounts differ per run, so a rerun with --reuse is a new statement, not a repeat
        for k, (number, total, name) in enumerate(rows):
            f.write(f"{NOW:%d.%m.%Y};{total // 100},{total % 100:02d};;{number};{name.upper()[:30]};6{run:05d}{k:05d}\n")
        credit = sum(r[1] for r in rows)
        f.write(f"Total;{credit // 100},{credit % 100:02d};0,00;;;\n")
    return len(rows)


def _wait_port(proc: subprocess.Popen[bytes], port: int, seconds: int = 90) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("the server exited during start-up") from None
            time.sleep(0.3)
    raise RuntimeError(f"the server did not start within {seconds} s")


class _MailSink:
    """aiosmtpd handler that accepts and counts every message (the mail server the notifications go to)."""

    def __init__(self) -> None:
        self.received = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.received += 1
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _drain(bin_dir: Path, env: dict[str, str]) -> int:
    """Run the due jobs the demo left (a worker running all along would have); returns how many ran."""
    ran = 0
    for _ in range(20):
        out = subprocess.run([str(bin_dir / "opsline"), "worker", "--burst"], env=env, capture_output=True, text=True, timeout=1800)
        if out.returncode != 0:
            raise SystemExit(f"draining the demo's due jobs failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        n = int(next((w for w in out.stdout.split() if w.isdigit()), "0"))
        ran += n
        if n < 10000:  # `worker --burst` stops at 10,000 jobs a call
            return ran
    return ran


def _vacuum(url: str) -> None:
    """VACUUM ANALYZE before the window, as autovacuum keeps a production database (this machine's PostgreSQL runs
    with autovacuum off: the demo load and earlier runs leave the job queue's index full of dead entries, and every
    claim of a job walked them)."""
    engine = make_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM (ANALYZE)"))
    engine.dispose()


class _Cpu:
    """CPU seconds (user + system, from /proc) of the processes in the test, by role, and of the whole machine
    (/proc/stat), so the run can say where the cores went and what this mix costs a request. A process that ends
    inside the window is still counted as long as it is not reaped (the statement import is read before it is
    waited for); PostgreSQL is every process named postgres (the whole cluster: the bench machine runs nothing else)."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, roles: dict[str, list[int]]) -> None:
        self.roles = roles

    @staticmethod
    def _stat(pid: int) -> tuple[str, int, float] | None:
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        name, rest = raw[raw.index("(") + 1:raw.rindex(")")], raw[raw.rindex(")") + 2:].split()
        return name, int(rest[1]), (int(rest[11]) + int(rest[12])) / _Cpu.TICK  # comm, ppid, utime + stime

    def snapshot(self) -> tuple[float, dict[str, float], float]:
        stats = {int(p.name): st for p in Path("/proc").iterdir() if p.name.isdigit() and (st := self._stat(int(p.name)))}
        children: dict[int, list[int]] = {}
        for pid, (_, ppid, _) in stats.items():
            children.setdefault(ppid, []).append(pid)

        def tree(pid: int) -> float:
            return (stats[pid][2] if pid in stats else 0.0) + sum(tree(c) for c in children.get(pid, []))

        used = {role: sum(tree(pid) for pid in pids) for role, pids in self.roles.items()}
        used["PostgreSQL"] = sum(cpu for name, _, cpu in stats.values() if name == "postgres")
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / self.TICK  # all but idle and iowait
        return time.perf_counter(), used, busy

    @staticmethod
    def report(a: tuple[float, dict[str, float], float], b: tuple[float, dict[str, float], float], rps: float, background: str) -> str:
        """Cores used by role and per request; the most requests a second the cores allow at this mix, counting the
        `background` role as fixed work beside the requests and everything else (PostgreSQL, the job worker's jobs) as
        the requests' cost."""
        seconds = b[0] - a[0]
        cores = {role: (b[1][role] - a[1].get(role, 0.0)) / seconds for role in b[1]}
        busy, n, rps = (b[2] - a[2]) / seconds, os.cpu_count() or 1, max(rps, 1 / seconds)  # at least one request in the window
        fixed = cores.get(background, 0.0)
        per = 1000 * (busy - fixed) / rps
        return (f"CPU in the window ({seconds:.0f} s, cores of {n}): " + ", ".join(f"{k} {v:.2f}" for k, v in cores.items()) + f"; machine busy {busy:.2f}\n"
                f"CPU per request: web {1000 * cores.get('web', 0.0) / rps:.1f} ms, whole machine less the {background} {per:.1f} ms; "
                f"at this mix {n} cores serve at most {1000 * (n - fixed) / per:.0f} req/s")


def _orders(url: str) -> int:
    """Orders the load test placed (their externalId starts with "load-")."""
    engine = make_engine(url)
    with engine.connect() as c:
        n = int(c.execute(text("SELECT count(*) FROM product_order WHERE external_id LIKE 'load-%'")).scalar_one())
    engine.dispose()
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accounts", type=int, default=2000)
    ap.add_argument("--users", type=int, default=60)
    ap.add_argument("--spawn-rate", type=float, default=4, help="users started a second (agents sign in as they start)")
    ap.add_argument("--seconds", type=int, default=60, help="measured seconds, after every user has started")
    ap.add_argument("--web-workers", type=int, default=2)
    ap.add_argument("--reuse", action="store_true", help="reuse the database of an earlier run at this size")
    args = ap.parse_args()
    if importlib.util.find_spec("locust") is None:  # not imported here: locust patches this process with gevent, whose SIGCHLD handler reaps our children
        raise SystemExit("locust is not installed: .venv/bin/pip install -e '.[bench]'")

    work = Path(tempfile.mkdtemp(prefix="opsline-load-"))
    base = prepare_database("postgresql", args.accounts, args.reuse, str(work))
    bin_dir = Path(sys.executable).parent
    from aiosmtpd.controller import Controller

    sink = _MailSink()
    mail = Controller(sink, hostname="127.0.0.1", port=_free_port())
    mail.start()
    mail_env = dict(os.environ, OPSLINE_WORKER_IN_PROCESS="false", OPSLINE_LOG_LEVEL="WARNING", OPSLINE_SMTP_HOST="127.0.0.1", OPSLINE_SMTP_PORT=str(mail.port))
    t0 = time.perf_counter()
    drained = _drain(bin_dir, dict(mail_env, OPSLINE_DATABASE_URL=base))
    _log(f"ran {drained} due job(s) the demo left ({time.perf_counter() - t0:.0f} s; {sink.received} mails sent to the sink)")
    _vacuum(base)
    url = copy_database(base, "_run")  # every run starts from the same data: the orders and notes of a run go with its copy
    try:
        _run(args, work, url, bin_dir, dict(mail_env, OPSLINE_DATABASE_URL=url), sink)
    finally:
        mail.stop()
        drop_database(url)


def _run(args: argparse.Namespace, work: Path, url: str, bin_dir: Path, env: dict[str, str], sink: _MailSink) -> None:
    env_ids = _samples(url)
    token = api_token(url)
    statement = work / "statement.csv"
    n_lines = _statement(url, statement)
    orders_before = _orders(url)
    mail_before = sink.received
    server_log = (work / "server.log").open("wb")
    server = subprocess.Popen([str(bin_dir / "uvicorn"), "opsline.web.app:create_app", "--factory", "--host", "127.0.0.1", "--port", str(PORT),
                               "--workers", str(args.web_workers), "--log-level", "warning", "--no-access-log"], env=env,
                              stdout=server_log, stderr=subprocess.STDOUT)
    worker = subprocess.Popen([str(bin_dir / "opsline"), "worker"], env=env, stdout=subprocess.DEVNULL)
    importer: subprocess.Popen[bytes] | None = None
    try:
        _wait_port(server, PORT)
        _log(f"server up ({args.web_workers} web workers, 1 job worker); {args.users} users for {args.seconds} s; statement of {n_lines} lines in the background")
        prefix = work / "locust"
        ramp = int(args.users / args.spawn_rate) + 1
        loc = subprocess.Popen([str(bin_dir / "locust"), "-f", str(HERE / "_load_users.py"), "--headless", "-u", str(args.users), "-r", str(args.spawn_rate),
                                "-t", f"{ramp + args.seconds}s", "--reset-stats", "--host", f"http://127.0.0.1:{PORT}", "--csv", str(prefix),
                                "--only-summary", "--loglevel", "WARNING"],
                               env=dict(os.environ, **env_ids, OPSLINE_LOAD_TOKEN=token), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(ramp)  # the statement import runs inside the measured window
        orders_at_reset = _orders(url)
        _log(f"all {args.users} users started ({ramp} s; statistics reset); measuring {args.seconds} s")
        importer = subprocess.Popen([str(bin_dir / "opsline"), "import-statement", str(statement), "--format", "csv", "--mapping", "standard-bank"],
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        cpu = _Cpu({"web": [server.pid], "job worker": [worker.pid], "statement import": [importer.pid], "locust": [loc.pid]})
        cpu_start = cpu.snapshot()
        time.sleep(max(1, args.seconds - 2))  # the window's end, less locust's stop; the import is not reaped before this
        cpu_end = cpu.snapshot()
        loc_out, loc_err = loc.communicate(timeout=ramp + args.seconds + 300)
        imported = importer.wait(timeout=600)
        import_out = importer.stdout.read().decode() if importer.stdout else ""
    finally:
        for p in (importer, worker, server):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
    stats_file = Path(f"{prefix}_stats.csv")
    if not stats_file.exists():
        raise SystemExit(f"locust produced no statistics:\n{loc_out[-3000:]}\n{loc_err[-3000:]}")
    rows = list(csv.DictReader(stats_file.open()))
    total = next(r for r in rows if r["Name"] == "Aggregated")
    print(f"{'endpoint':44} {'requests':>9} {'fails':>6} {'req/s':>7} {'p50':>6} {'p95':>6} {'p99':>6}")
    for r in rows:
        print(f"{r['Name'][:44]:44} {int(r['Request Count']):9d} {int(r['Failure Count']):6d} {float(r['Requests/s']):7.1f} "
              f"{r['50%']:>6} {r['95%']:>6} {r['99%']:>6}")
    failures = list(csv.DictReader(Path(f"{prefix}_failures.csv").open())) if Path(f"{prefix}_failures.csv").exists() else []
    for f in failures[:10]:
        print(f"  failure: {f.get('Name')}: {f.get('Error')} x{f.get('Occurrences')}")
    if failures:
        print(f"server log ({work / 'server.log'}), last lines:\n" + "\n".join((work / "server.log").read_text(errors="replace").splitlines()[-60:]))
    placed = sum(int(r["Request Count"]) - int(r["Failure Count"]) for r in rows if r["Name"] == "POST TMF622 productOrder")
    in_db = _orders(url) - orders_at_reset
    errors = int(total["Failure Count"])
    rps, p99 = float(total["Requests/s"]), float(total["99%"])
    print(_Cpu.report(cpu_start, cpu_end, rps, "statement import"))
    print(f"mail sink: {sink.received - mail_before} message(s) during the run")
    print(f"statement import: exit {imported}; {import_out.strip().splitlines()[-1] if import_out.strip() else ''}")
    assert imported == 0, f"the background statement import failed:\n{import_out[-2000:]}"
    # every 201 of the measured window is in the database (each was also read back), give or take one a user for the
    # requests in flight when the statistics were reset and when locust stopped its users
    assert placed - args.users <= in_db <= placed + args.users, f"{placed} orders answered 201 in the window but {in_db} are in the database"
    assert orders_before <= orders_at_reset
    assert int(total["Request Count"]) > 0
    print(f"load: {args.web_workers} web workers, {args.users} users, {args.seconds} s: {rps:.1f} req/s, p99 {p99:.0f} ms, {errors} errors; "
          f"target {TARGET_RPS:.0f} req/s at p99 < {TARGET_P99_MS:.0f} ms")
    if errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
