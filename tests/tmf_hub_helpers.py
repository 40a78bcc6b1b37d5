"""Shared by the TMF688 hub tests: a real HTTP listener, a worker on a controllable clock, and the fixtures
`receiver` (a listener, closed afterwards) and `api` (an admin API client on https://opsline.example), registered for
the whole suite by tests/conftest.py (`pytest_plugins`)."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import free_port
from fastapi.testclient import TestClient

from opsline.core.jobs import Worker
from opsline.jobs_registry import build_registry


class Receiver:
    """A real HTTP endpoint on a fixed port that records what it is sent; `down()` closes the port, `up()` reopens it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.server: ThreadingHTTPServer | None = None
        self.up()

    def up(self) -> None:
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
        self.server = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _worker(factory, at):  # type: ignore[no-untyped-def]
    """A worker whose clock is `clock["now"]` (returned beside it), so tests move time to let retries fall due."""
    clock = {"now": at}
    return Worker(factory, build_registry(), worker_id="hub-test", clock=lambda: clock["now"]), clock


@pytest.fixture
def receiver():  # type: ignore[no-untyped-def]
    r = Receiver()
    yield r
    if r.server is not None:
        r.down()


@pytest.fixture
def api(app, api_token):  # type: ignore[no-untyped-def]
    c = TestClient(app, base_url="https://opsline.example")
    c.headers.update(api_token("admin"))
    return c
