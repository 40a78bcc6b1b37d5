"""Shared fixtures: a migrated database per test on SQLite and (when OPSLINE_TEST_POSTGRES_URL is set) PostgreSQL,
a fixed clock, an app client signed in as a given role, and a live server for browser tests."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from opsline.config import Settings
from opsline.core.events import Actor
from opsline.db.session import make_engine, make_sessionmaker
from opsline.seed import seed_reference

pytest_plugins = ["tmf_hub_helpers"]  # the TMF688 hub tests' listener and API client fixtures

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)  # Monday 09:00 in Johannesburg


def _tmf_dir() -> Path:
    """The official TM Forum v4 specs and samples (`../shared/tmf` beside the checkout): OPSLINE_TMF_DIR, else the
    first `shared/tmf` above this file, else /work/shared/tmf (a clone made elsewhere on this machine)."""
    env = os.environ.get("OPSLINE_TMF_DIR")
    candidates = ([Path(env)] if env else []) + [p / "shared" / "tmf" for p in Path(__file__).resolve().parents] + [Path("/work/shared/tmf")]
    return next((c for c in candidates if (c / "specs").is_dir()), candidates[-1])


TMF_DIR = _tmf_dir()
TMF_SPECS = TMF_DIR / "specs"
TMF_SAMPLES = TMF_DIR / "samples"
PG_URL = os.environ.get("OPSLINE_TEST_POSTGRES_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


def _worker_id(config: pytest.Config) -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("tmpl") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    with make_sessionmaker(engine).begin() as s:
        seed_reference(s, now=NOW)
    engine.dispose()
    return str(path)


@pytest.fixture(scope="session")
def pg_engine(request: pytest.FixtureRequest) -> Iterator[Engine | None]:
    if not PG_URL:
        yield None
        return
    url = make_url(PG_URL)
    dbname = f"{url.database}_{_worker_id(request.config)}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{dbname}"'))
    engine = make_engine(url.set(database=dbname).render_as_string(hide_password=False))
    create_schema(engine)
    yield engine
    engine.dispose()
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
    admin.dispose()


def create_schema(engine: Engine) -> None:
    """Tables straight from the models (fast; tests/integration/test_migrations.py checks the migrations match)."""
    import opsline.models  # noqa: F401
    from opsline.db.base import metadata

    metadata.create_all(engine)


def _truncate_all(engine: Engine) -> None:
    with engine.begin() as conn:
        tables = [r[0] for r in conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"))]
        conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path, sqlite_template: str, pg_engine: Engine | None) -> Iterator[Engine]:
    """A migrated, seeded, empty database; parametrised over SQLite and PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(sqlite_template, path)
        eng = make_engine(f"sqlite:///{path}")
        yield eng
        eng.dispose()
        return
    assert pg_engine is not None
    _truncate_all(pg_engine)
    with make_sessionmaker(pg_engine).begin() as s:
        seed_reference(s, now=NOW)
    yield pg_engine


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def session(factory: sessionmaker[Session]) -> Iterator[Session]:
    s = factory()
    try:
        yield s
    finally:
        s.rollback()
        s.close()


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def actor() -> Actor:
    return Actor(name="tester", roles=frozenset({"admin"}))


def test_settings(engine: Engine) -> Settings:
    return Settings(database_url=engine.url.render_as_string(hide_password=False), secret_key="test-secret-key-0123456789", worker_in_process=False)


class Clock:
    """A controllable clock for the app under test."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def app(engine: Engine, clock: Clock):  # type: ignore[no-untyped-def]
    from opsline.web.app import create_app

    return create_app(settings=test_settings(engine), engine=engine, clock=clock, start_worker=False)


@pytest.fixture
def make_user(factory: sessionmaker[Session]) -> Callable[..., str]:
    """Create a staff user with the given roles; returns the username (password 'password123')."""
    from opsline.users.service import create_user

    counter = iter(range(1, 10_000))

    def make(*roles: str, username: str | None = None) -> str:
        name = username or f"user{next(counter)}"
        with factory.begin() as s:
            create_user(s, username=name, full_name=name.title(), email=f"{name}@example.test", password="password123", roles=list(roles) or ["admin"], now=NOW, actor=Actor.system("test"))
        return name

    return make


@pytest.fixture
def client_as(app, make_user):  # type: ignore[no-untyped-def]
    """`client_as("debtors_clerk")` → a TestClient signed in with that role, CSRF header set."""
    from fastapi.testclient import TestClient

    clients = []

    def make(*roles: str):  # type: ignore[no-untyped-def]
        username = make_user(*roles)
        c = TestClient(app, raise_server_exceptions=True)
        c.__enter__()
        clients.append(c)
        r = post_login(c, username)
        assert r.status_code == 303, r.text
        c.headers["X-CSRF-Token"] = csrf_of(c)
        c.username = username  # type: ignore[attr-defined]
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def post_login(client, username: str, password: str = "password123", **fields: str):  # type: ignore[no-untyped-def]
    """Sign in through the form as a browser does: open it (which sets its CSRF cookie) and post it with that token."""
    client.get("/login")
    token = client.cookies.get("opsline_signin", path="/login") or ""
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token, **fields}, follow_redirects=False)


def csrf_of(client) -> str:  # type: ignore[no-untyped-def]
    """Read the CSRF token the server put in the signed session cookie (via a page that embeds it)."""
    import re

    page = client.get("/jobs")
    m = re.search(r'"X-CSRF-Token": "([^"]+)"', page.text)
    assert m, "no CSRF token on page"
    return m.group(1)


@pytest.fixture
def api_token(factory: sessionmaker[Session]) -> Callable[..., dict[str, str]]:
    """`api_token("admin")` → headers with a bearer token for a new API client with those roles."""
    from opsline.users.service import create_api_client

    counter = iter(range(1, 10_000))

    def make(*roles: str) -> dict[str, str]:
        with factory.begin() as s:
            _, tok = create_api_client(s, name=f"system{next(counter)}", roles=list(roles) or ["admin"], now=NOW, actor=Actor.system("test"))
        return {"Authorization": f"Bearer {tok}"}

    return make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory, sqlite_template: str) -> str:
    """A SQLite database with the 60-account demo, built once per test process and copied for each browser test
    (building it for every test took about a tenth of the suite's time)."""
    from opsline.demo import run_demo

    path = tmp_path_factory.mktemp("demo") / "demo.db"
    shutil.copy(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    run_demo(engine, accounts=60, now=NOW)
    engine.dispose()
    raw = sqlite3.connect(path, isolation_level=None)  # everything into the main file, so a plain copy carries it all
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()
    return str(path)


@pytest.fixture
def live_server(tmp_path, demo_template: str):  # type: ignore[no-untyped-def]
    """The real app on a real port (uvicorn in a thread) over a fresh SQLite database with demo data."""
    import uvicorn

    from opsline.web.app import create_app

    path = tmp_path / "live.db"
    shutil.copy(demo_template, path)
    engine = make_engine(f"sqlite:///{path}")
    settings = Settings(database_url=f"sqlite:///{path}", secret_key="test-secret-key-0123456789", worker_in_process=True)
    app = create_app(settings=settings, engine=engine, start_worker=True)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 15
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "live server did not start"
    yield {"url": f"http://127.0.0.1:{port}", "engine": engine}
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser():  # type: ignore[no-untyped-def]
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; `make test` installs it with apt-get")
        pytest.skip(f"{CHROMIUM} not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


@pytest.fixture
def page(browser, live_server):  # type: ignore[no-untyped-def]
    ctx = browser.new_context(base_url=live_server["url"])
    pg = ctx.new_page()
    pg.set_default_timeout(10_000)
    yield pg
    ctx.close()


def sign_in(page, username: str, password: str = "opsline-demo") -> None:  # type: ignore[no-untyped-def]
    page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def run_schemathesis(app, headers: dict[str, str], path_regex: str, *, max_examples: int = 15) -> int:  # type: ignore[no-untyped-def]
    """Call every operation under `path_regex` with generated data from our /openapi.json;
    assert no 5xx and that successful bodies match their documented schema. Returns the operation count."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance

    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=headers)
    operations = [r.ok() for r in schema.include(path_regex=path_regex).get_all_operations()]
    assert operations, f"no operations match {path_regex}"
    for operation in operations:

        @settings(max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
        @given(case=operation.as_strategy())
        def check(case):  # type: ignore[no-untyped-def]
            response = case.call(headers=headers)
            projected = bool((case.query or {}).get("fields"))  # a TMF630 `fields` projection leaves out required attributes by design
            case.validate_response(response, checks=[not_a_server_error] + ([response_schema_conformance] if response.status_code < 400 and not projected else []))

        check()
    return len(operations)
