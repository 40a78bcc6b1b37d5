"""The HTTP adapter against a real fake FNO on 127.0.0.1 (http.server in a thread): retries, idempotency, rejections, timeouts."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from opsline.core.jobs import Job
from opsline.partners import service
from opsline.partners.adapters import SIGNATURE_HEADER, AdapterUnavailable, HttpAdapter, verify_signature
from opsline.partners.models import PartnerMessage, PartnerServiceOrder

from partners_helpers import TZ, MovingClock, line, tune, worker


class FakeFNO:
    """A tiny TMF641 server: answers `fail_next` requests with 503, then accepts; a repeated externalId returns the same order."""

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0
        self.delay = 0.0
        self.reject_with: str | None = None
        fno = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fno.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(raw), "raw": raw})
                if fno.delay:
                    time.sleep(fno.delay)
                if fno.fail_next > 0:
                    fno.fail_next -= 1
                    return self._send(503, {"detail": "Service Unavailable"})
                body = json.loads(raw)
                if fno.reject_with:
                    return self._send(422, {"detail": fno.reject_with})
                ext = body["externalId"]
                if ext in fno.orders:
                    return self._send(200, fno.orders[ext])
                order = {"id": f"FNO-{len(fno.orders) + 1:04d}", "externalId": ext, "state": "acknowledged"}
                fno.orders[ext] = order
                return self._send(201, order)

            def do_GET(self) -> None:
                ref = self.path.rsplit("/", 1)[-1]
                found = next((o for o in fno.orders.values() if o["id"] == ref), None)
                return self._send(200, found) if found else self._send(404, {"detail": "no such order"})

        class QuietServer(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that timed out on purpose leaves a broken pipe behind

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tmf-api/serviceOrdering/v4"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fno():  # type: ignore[no-untyped-def]
    f = FakeFNO()
    yield f
    f.close()


def _use_http(session, fno: FakeFNO, code: str = "vumatel") -> None:  # type: ignore[no-untyped-def]
    tune(session, code, adapter="http", base_url=fno.url, auth_token="tok-123", webhook_secret="whsec-1", timeout_seconds=2)


def test_a_503_is_retried_by_the_job_system_and_the_next_attempt_delivers_once(session, factory, now, actor, fno):
    _use_http(session, fno)
    account, site, product = line(session, now, actor, partner="vumatel")
    so_id = service.submit_service_order(session, partner_code="vumatel", action="delete", account_id=account, product_id=product, site_id=site,
                                         requested_date=now.date() + timedelta(days=30), reason="customer cancelled", now=now, actor=actor, tz=TZ)
    session.commit()
    fno.fail_next = 1
    clock = MovingClock(now)
    w = worker(factory, clock)
    assert w.drain() == 1
    job = session.execute(select(Job).where(Job.kind == "partners.deliver")).scalar_one()
    assert job.state == "queued" and job.attempts == 1 and "HTTP 503" in job.last_error
    session.commit()
    clock.advance(seconds=3)
    assert w.drain() == 1
    session.expire_all()
    so = session.get(PartnerServiceOrder, so_id)
    assert so.partner_ref == "FNO-0001" and so.delivered_at is not None and so.attempts == 2 and so.state == "acknowledged"
    assert len(fno.requests) == 2 and len(fno.orders) == 1
    req = fno.requests[-1]
    assert req["path"] == "/tmf-api/serviceOrdering/v4/serviceOrder"
    assert req["headers"]["Authorization"] == "Bearer tok-123" and req["headers"]["Idempotency-Key"] == so.external_ref
    assert verify_signature("whsec-1", req["raw"], signature=req["headers"][SIGNATURE_HEADER])
    assert req["body"]["serviceOrderItem"][0]["action"] == "delete" and req["body"]["externalId"] == so.external_ref
    kinds = session.execute(select(PartnerMessage.kind).where(PartnerMessage.service_order_id == so_id).order_by(PartnerMessage.sequence)).scalars().all()
    assert kinds == ["serviceOrder.create", "serviceOrder.response"]


def test_submitting_the_same_order_twice_to_a_real_server_returns_the_order_it_already_has(fno):
    adapter = HttpAdapter(base_url=fno.url, auth_token=None, timeout_seconds=2)
    body = {"externalId": "OPS-SO-000777", "serviceOrderItem": [{"id": "1", "action": "add", "service": {}}]}
    first = adapter.submit(body)
    second = adapter.submit(body)
    assert first.accepted and first.partner_ref == second.partner_ref == "FNO-0001" and len(fno.orders) == 1
    assert adapter.status("FNO-0001").partner_ref == "FNO-0001"


def test_a_422_from_the_partner_is_a_rejection_with_its_reason(fno):
    fno.reject_with = "address not serviceable"
    result = HttpAdapter(base_url=fno.url, auth_token="t", timeout_seconds=2).submit({"externalId": "OPS-SO-000778"})
    assert not result.accepted and result.state == "rejected" and result.reason == "address not serviceable"


def test_a_slow_or_absent_partner_is_unavailable_so_the_job_retries(fno):
    fno.delay = 1.5
    with pytest.raises(AdapterUnavailable, match="unreachable"):
        HttpAdapter(base_url=fno.url, auth_token=None, timeout_seconds=0.3).submit({"externalId": "OPS-SO-000779"})
    fno.delay = 0
    closed = FakeFNO()
    url = closed.url
    closed.close()
    with pytest.raises(AdapterUnavailable, match="unreachable"):
        HttpAdapter(base_url=url, auth_token=None, timeout_seconds=0.5).submit({"externalId": "OPS-SO-000780"})


def test_a_partner_without_a_url_cannot_be_delivered_to_and_the_job_keeps_the_error(session, factory, now, actor):
    tune(session, "vumatel", adapter="http", base_url=None)
    account, site, product = line(session, now, actor, partner="vumatel")
    service.submit_service_order(session, partner_code="vumatel", action="modify", account_id=account, product_id=product, site_id=site,
                                 requested_date=now.date(), reason="upgrade", now=now, actor=actor, tz=TZ)
    session.commit()
    worker(factory, MovingClock(now)).drain()
    job = session.execute(select(Job).where(Job.kind == "partners.deliver")).scalar_one()
    assert job.state == "queued" and "no base_url" in job.last_error


def test_a_courier_booking_goes_to_the_couriers_collections_endpoint_signed_and_idempotent(fno):  # type: ignore[no-untyped-def]
    from opsline.logistics.courier import CourierHttpAdapter
    from opsline.partners.adapters import SIGNATURE_HEADER, AdapterUnavailable

    adapter = CourierHttpAdapter(base_url=fno.url, auth_token="tok-9", timeout_seconds=2, signing_secret="whsec-9")
    first = adapter.submit({"externalId": "COL-1", "parcels": []})
    again = adapter.submit({"externalId": "COL-1", "parcels": []})
    assert [r["path"] for r in fno.requests] == ["/tmf-api/serviceOrdering/v4/collections"] * 2
    assert fno.requests[0]["headers"]["Idempotency-Key"] == "COL-1" and fno.requests[0]["headers"][SIGNATURE_HEADER]
    assert fno.requests[0]["headers"]["Authorization"] == "Bearer tok-9"
    assert first.partner_ref == again.partner_ref == "FNO-0001"
    fno.close()
    with pytest.raises(AdapterUnavailable, match="^courier unreachable"):
        adapter.submit({"externalId": "COL-2", "parcels": []})
