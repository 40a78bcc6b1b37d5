"""Outbound TMF641 cancelServiceOrder: an order the FNO already has and has not finished is cancelled by asking the partner
(a job, retried while it is down; the request validates against the official CancelServiceOrder_Create), once, audited;
the simulator accepts it and sends the cancelled state back; a completed order's cancellation is refused."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from conftest import TMF_SPECS
from sqlalchemy import func, select

from opsline.api.tmf_spec import resource_validator
from opsline.core.events import AuditEvent
from opsline.core.jobs import Job
from opsline.partners import service
from opsline.partners.adapters import AdapterUnavailable, HttpAdapter
from opsline.partners.models import Partner, PartnerMessage, PartnerServiceOrder
from opsline.partners.simulator import SimulatorAdapter
from opsline.partners.tmf641 import build_cancel_service_order

from partners_helpers import TZ, MovingClock, line, tune, worker

TMF641 = TMF_SPECS / "TMF641-ServiceOrdering-v4.0.0.swagger.json"


def _drain(session, w) -> int:  # type: ignore[no-untyped-def]
    session.commit()  # SQLite: release our write transaction so the worker can take its own
    n = w.drain()
    session.expire_all()
    return n


def _delivered(session, now, actor) -> int:  # type: ignore[no-untyped-def]
    tune(session, simulator_progress_seconds=10, simulator_complete_seconds=3600)
    account, site, product = line(session, now, actor)
    so_id = service.submit_service_order(session, partner_code="openserve", action="modify", account_id=account, product_id=product, site_id=site,
                                         requested_date=now.date() + timedelta(days=2), reason="speed upgrade", now=now, actor=actor, tz=TZ)
    service.deliver(session, service_order_id=so_id, now=now, tz=TZ)
    return so_id


def _trail(session, so_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    return list(session.execute(select(AuditEvent.action).where(AuditEvent.entity_type == "partner_service_order", AuditEvent.entity_id == str(so_id))
                                .order_by(AuditEvent.id)).scalars())


def test_a_delivered_open_order_is_cancelled_by_a_tmf641_cancel_request_the_simulator_accepts_once_and_audited(session, factory, now, actor):
    so_id = _delivered(session, now, actor)
    assert session.get(PartnerServiceOrder, so_id).delivered_at is not None
    first = service.request_partner_cancellation(session, service_order_id=so_id, now=now, actor=actor, reason="customer cancelled the upgrade")
    again = service.request_partner_cancellation(session, service_order_id=so_id, now=now, actor=actor, reason="customer cancelled the upgrade")
    assert first["outcome"] == "requested" and again["outcome"] == "already_requested"
    assert session.execute(select(func.count()).select_from(Job).where(Job.kind == service.CANCEL_JOB)).scalar_one() == 1
    assert session.get(PartnerServiceOrder, so_id).state == "acknowledged"  # nothing changes here until the partner says so

    clock = MovingClock(now + timedelta(seconds=1))
    w = worker(factory, clock)
    assert _drain(session, w) >= 1  # the cancelServiceOrder goes out
    sent = session.execute(select(PartnerMessage).where(PartnerMessage.service_order_id == so_id, PartnerMessage.kind.like("cancelServiceOrder.%"))
                           .order_by(PartnerMessage.id)).scalars().all()
    assert [(m.direction, m.kind) for m in sent] == [("out", "cancelServiceOrder.create"), ("in", "cancelServiceOrder.response")]
    assert resource_validator(TMF641, "CancelServiceOrder_Create")([sent[0].body]) == []
    so = session.get(PartnerServiceOrder, so_id)
    assert sent[0].body["serviceOrder"]["id"] == so.partner_ref and sent[0].body["cancellationReason"] == "customer cancelled the upgrade"
    assert sent[1].body["state"] == "acknowledged"

    clock.advance(seconds=30)
    _drain(session, w)  # the partner's cancelled state change
    assert session.get(PartnerServiceOrder, so_id).state == "cancelled"
    clock.advance(hours=2)
    _drain(session, w)  # its completion never comes: the partner stopped the work
    assert session.get(PartnerServiceOrder, so_id).state == "cancelled"
    assert service.send_cancellation(session, service_order_id=so_id, reason="x", now=clock(), tz=TZ) == {"skipped": "no such open service order"}
    trail = _trail(session, so_id)
    assert trail.count("cancellation_requested") == 1 and trail.count("cancellation_sent") == 1 and trail[-1] != "cancellation_sent"


def test_a_cancellation_is_not_asked_for_an_undelivered_or_ended_order_and_the_simulator_refuses_a_completed_one(session, factory, now, actor):
    tune(session)
    account, site, product = line(session, now, actor)
    undelivered = service.submit_service_order(session, partner_code="openserve", action="modify", account_id=account, product_id=product, site_id=site,
                                               requested_date=now.date() + timedelta(days=2), reason="speed upgrade", now=now, actor=actor, tz=TZ)
    with pytest.raises(service.ServiceOrderTransitionNotAllowed, match="cancel it here"):
        service.request_partner_cancellation(session, service_order_id=undelivered, now=now, actor=actor, reason="x")
    with pytest.raises(service.InvalidInput):
        service.request_partner_cancellation(session, service_order_id=undelivered, now=now, actor=actor, reason="  ")
    service.deliver(session, service_order_id=undelivered, now=now, tz=TZ)
    assert service.request_partner_cancellation(session, service_order_id=undelivered, now=now, actor=actor, reason="changed mind")["outcome"] == "requested"
    cancel_job = session.execute(select(Job).where(Job.kind == service.CANCEL_JOB)).scalar_one()
    cancel_job.run_at = now + timedelta(hours=1)  # the partner completes the order before the request reaches it
    clock = MovingClock(now + timedelta(minutes=5))
    w = worker(factory, clock)
    _drain(session, w)
    so = session.get(PartnerServiceOrder, undelivered)
    assert so.state == "completed"
    partner = session.get(Partner, "openserve")
    refused = SimulatorAdapter(session, partner=partner, now=clock(), tz=TZ).cancel(
        build_cancel_service_order(partner_ref=so.partner_ref, external_ref=so.external_ref, reason="changed mind", requested_at=clock()), external_ref=so.external_ref)
    assert not refused.accepted and refused.state == "rejected" and "completed" in (refused.reason or "")
    clock.advance(hours=2)
    _drain(session, w)  # the queued request finds the order ended and sends nothing
    assert not session.execute(select(PartnerMessage.id).where(PartnerMessage.service_order_id == so.id, PartnerMessage.kind.like("cancelServiceOrder.%"))).all()
    assert "cancellation_sent" not in _trail(session, so.id)
    with pytest.raises(service.ServiceOrderTransitionNotAllowed, match="completed"):
        service.request_partner_cancellation(session, service_order_id=so.id, now=clock(), actor=actor, reason="too late")


def test_a_withdrawn_order_that_the_partner_has_asks_the_partner_to_cancel_it(session, now, actor):
    so_id = _delivered(session, now, actor)
    assert service.withdraw_service_order(session, service_order_id=so_id, now=now, actor=actor, reason="product order cancelled") is False
    assert _trail(session, so_id)[-2:] == ["withdrawal_requested", "cancellation_requested"]
    assert session.execute(select(Job.payload).where(Job.idempotency_key == f"cancel:{session.get(PartnerServiceOrder, so_id).external_ref}")).scalar_one() == {
        "service_order_id": so_id, "reason": "product order cancelled"}


def test_the_http_adapter_posts_cancel_service_order_with_an_idempotency_key_and_retries_when_the_partner_is_down(now):
    seen: list[httpx.Request] = []

    def partner(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(503, json={"reason": "maintenance"})
        return httpx.Response(201, json={"id": "C-1", "state": "acknowledged", "serviceOrder": json.loads(request.content)["serviceOrder"]})

    adapter = HttpAdapter(base_url="https://fno.test/tmf-api/serviceOrdering/v4", auth_token="t", signing_secret="s", transport=httpx.MockTransport(partner))
    body = build_cancel_service_order(partner_ref="OPE-1", external_ref="OPS-SO-000001", reason="customer cancelled", requested_at=now)
    assert resource_validator(TMF641, "CancelServiceOrder_Create")([body]) == []
    with pytest.raises(AdapterUnavailable, match="503"):
        adapter.cancel(body, external_ref="OPS-SO-000001")
    result = adapter.cancel(body, external_ref="OPS-SO-000001")
    assert result.accepted and result.state == "acknowledged" and result.partner_ref == "C-1"
    assert [r.url.path for r in seen] == ["/tmf-api/serviceOrdering/v4/cancelServiceOrder"] * 2
    assert {r.headers["Idempotency-Key"] for r in seen} == {"cancel:OPS-SO-000001"} and all(r.headers["X-Opsline-Signature"].startswith("sha256=") for r in seen)


def test_the_partners_desk_cancel_button_asks_the_partner_for_a_delivered_order_and_says_so(factory, client_as, now, actor):
    with factory.begin() as s:
        so_id = _delivered(s, now, actor)
    c = client_as("admin")
    empty = c.post(f"/partners/orders/{so_id}/cancel", data={"reason": " "}, follow_redirects=False)
    assert empty.status_code == 303 and "error=" in empty.headers["location"] and "reason" in empty.headers["location"]
    with factory() as s:
        assert "cancellation_requested" not in _trail(s, so_id)  # nothing asked without a reason
    page = c.get(f"/partners/orders/{so_id}")
    assert page.status_code == 200 and f'action="/partners/orders/{so_id}/cancel"' in page.text
    r = c.post(f"/partners/orders/{so_id}/cancel", data={"reason": "customer cancelled the upgrade"}, follow_redirects=False)
    assert r.status_code == 303 and "cancelServiceOrder" in r.headers["location"].replace("+", " "), r.headers["location"]
    again = c.post(f"/partners/orders/{so_id}/cancel", data={"reason": "twice"}, follow_redirects=False)
    assert "already" in again.headers["location"]
    with factory() as s:
        assert _trail(s, so_id).count("cancellation_requested") == 1
        assert s.execute(select(func.count()).select_from(Job).where(Job.kind == service.CANCEL_JOB)).scalar_one() == 1
