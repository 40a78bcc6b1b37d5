"""Partners over HTTP: the webhook callback (signatures, unknown/duplicate/out-of-order events), desk pages, retry, TMF641 API."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from opsline.core.events import Actor, AuditEvent
from opsline.core.jobs import Job
from opsline.partners import service
from opsline.partners.adapters import SIGNATURE_HEADER, sign
from opsline.partners.models import Partner, PartnerMessage, PartnerServiceOrder
from opsline.partners.tmf641 import state_change_event

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from partners_helpers import TZ, line, tune  # noqa: E402

ACTOR = Actor(name="tester", roles=frozenset({"admin"}))
SECRET = "whsec-test-123"


@pytest.fixture
def delivered(factory, now):  # type: ignore[no-untyped-def]
    """A delivered Openserve order (simulator) and a second, undelivered one whose delivery is dead."""
    with factory.begin() as s:
        tune(s, webhook_secret=SECRET)
        account, site, product = line(s, now, ACTOR)
        so_id = service.submit_service_order(s, partner_code="openserve", action="modify", account_id=account, product_id=product, site_id=site,
                                             requested_date=now.date() + timedelta(days=1), reason="speed upgrade", now=now, actor=ACTOR, tz=TZ)
        service.deliver(s, service_order_id=so_id, now=now, tz=TZ)
        stuck_id = service.submit_service_order(s, partner_code="openserve", action="delete", account_id=account, product_id=product, site_id=site,
                                                requested_date=now.date() + timedelta(days=40), reason="customer cancelled", now=now, actor=ACTOR, tz=TZ)
        s.execute(update(Job).where(Job.idempotency_key == s.get(PartnerServiceOrder, stuck_id).external_ref)
                  .values(state="dead", attempts=8, last_error="AdapterUnavailable: partner answered HTTP 503"))
        so = s.get(PartnerServiceOrder, so_id)
        return {"id": so_id, "partner_ref": so.partner_ref, "external_ref": so.external_ref, "account_id": account, "stuck_id": stuck_id}


def _post(client, event, *, secret: str = SECRET, partner: str = "openserve"):  # type: ignore[no-untyped-def]
    body = json.dumps(event).encode()
    return client.post(f"/api/partners/callback/{partner}", content=body, headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body)})


def _messages(factory, **where) -> list:  # type: ignore[no-untyped-def]
    with factory() as s:
        return [(m.service_order_id, m.outcome, m.note) for m in s.execute(select(PartnerMessage).filter_by(**where).order_by(PartnerMessage.id)).scalars()]


def test_a_signed_callback_moves_the_order_on_and_a_replay_is_ignored_and_logged(app, factory, delivered):
    client = TestClient(app)
    ev = state_change_event(partner_ref=delivered["partner_ref"], external_ref=delivered["external_ref"], state="inProgress")
    r = _post(client, ev)
    assert r.status_code == 200 and r.json() == {"outcome": "applied", "detail": f"{delivered['external_ref']} is now inProgress", "externalId": delivered["external_ref"], "state": "inProgress"}
    r = _post(client, ev)
    assert r.status_code == 202 and r.json()["outcome"] == "ignored" and "duplicate" in r.json()["detail"]
    done = state_change_event(partner_ref=delivered["partner_ref"], external_ref=None, state="completed", completion_date=(delivered and None))
    assert _post(client, done).json()["state"] == "completed"
    r = _post(client, ev)
    assert r.status_code == 202 and "out of order: inProgress after completed" in r.json()["detail"]
    assert [o for _, o, _ in _messages(factory, direction="in", kind="ServiceOrderStateChangeEvent")] == ["applied", "ignored", "applied", "ignored"]
    with factory() as s:
        assert s.get(PartnerServiceOrder, delivered["id"]).state == "completed"


def test_a_callback_with_a_bad_signature_is_refused_and_changes_nothing(app, factory, delivered):
    client = TestClient(app)
    ev = state_change_event(partner_ref=delivered["partner_ref"], external_ref=delivered["external_ref"], state="completed")
    r = _post(client, ev, secret="wrong")
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json") and "signature" in r.json()["detail"]
    r = client.post("/api/partners/callback/openserve", json=ev)
    assert r.status_code == 401
    with factory() as s:
        assert s.get(PartnerServiceOrder, delivered["id"]).state == "acknowledged"
    assert _messages(factory, direction="in", kind="ServiceOrderStateChangeEvent") == []


def test_a_callback_for_an_unknown_order_is_a_404_problem_and_is_logged_as_ignored(app, factory, delivered):
    r = _post(TestClient(app), state_change_event(partner_ref="OPE-UNKNOWN", external_ref="OPS-SO-424242", state="completed"))
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    assert "OPE-UNKNOWN" in r.json()["detail"]
    assert _messages(factory, kind="ServiceOrderStateChangeEvent") == [(None, "ignored", r.json()["detail"])]


def test_a_bearer_secret_is_accepted_and_a_malformed_event_or_unknown_partner_is_refused(app, factory, delivered):
    client = TestClient(app)
    ev = state_change_event(partner_ref=delivered["partner_ref"], external_ref=None, state="held", reason="wayleave pending")
    assert client.post("/api/partners/callback/openserve", json=ev, headers={"Authorization": f"Bearer {SECRET}"}).json()["state"] == "held"
    bad = json.dumps({"eventType": "ServiceOrderStateChangeEvent", "event": {"serviceOrder": {"id": "x", "state": "nearly"}}}).encode()
    r = client.post("/api/partners/callback/openserve", content=bad, headers={SIGNATURE_HEADER: sign(SECRET, bad)})
    assert r.status_code == 422 and "state must be one of" in r.json()["detail"]
    r = client.post("/api/partners/callback/nobody", content=bad, headers={SIGNATURE_HEADER: sign(SECRET, bad)})
    assert r.status_code == 404


def test_the_partners_desk_shows_open_late_and_stuck_work(client_as, delivered):
    c = client_as("second_line_agent")
    r = c.get("/partners")
    assert r.status_code == 200
    assert "Openserve" in r.text and "Stuck deliveries" in r.text and "AdapterUnavailable" in r.text
    r = c.get("/partners/orders?delivery=stuck")
    assert r.status_code == 200 and "dead" in r.text and "HTTP 503" in r.text
    r = c.get("/partners/orders?partner=openserve&state=open", headers={"HX-Request": "true", "HX-Target": "order-rows"})
    assert r.status_code == 200 and "<table" in r.text and "<html" not in r.text
    r = c.get(f"/partners/orders/{delivered['id']}")
    assert r.status_code == 200 and delivered["external_ref"] in r.text and "serviceOrder.create" in r.text and "Retry delivery now" not in r.text
    r = c.get("/partners/openserve")
    assert r.status_code == 200 and "7 business days" in r.text and "R" in r.text and "by day 15" in r.text
    r = c.get(f"/accounts/{delivered['account_id']}/panel/partner_orders")
    assert r.status_code == 200 and delivered["external_ref"] in r.text


def test_a_coordinator_can_retry_a_dead_delivery_and_an_agent_cannot(client_as, factory, delivered):
    agent = client_as("second_line_agent")
    assert agent.post(f"/partners/orders/{delivered['stuck_id']}/retry", data={}).status_code == 403
    coord = client_as("cancellations_coordinator")
    page = coord.get(f"/partners/orders/{delivered['stuck_id']}")
    assert "Retry delivery now" in page.text
    r = coord.post(f"/partners/orders/{delivered['stuck_id']}/retry", data={}, follow_redirects=True)
    assert r.status_code == 200 and "Delivery queued to run now" in r.text
    with factory() as s:
        ext = s.get(PartnerServiceOrder, delivered["stuck_id"]).external_ref
        assert s.execute(select(Job.state).where(Job.idempotency_key == ext)).scalar_one() == "queued"
        assert s.execute(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "delivery_retried")).scalar_one() == 1
    r = coord.post(f"/partners/orders/{delivered['id']}/retry", data={}, follow_redirects=True)
    assert "needs no delivery" in r.text


def test_a_simulated_outage_needs_a_reason_and_is_audited(client_as, factory, delivered):
    coord = client_as("cancellations_coordinator")
    r = coord.post("/partners/openserve/outage", data={"outage": "on", "reason": ""}, follow_redirects=True)
    assert "a reason is required" in r.text
    with factory() as s:
        assert not s.get(Partner, "openserve").simulator_outage
    r = coord.post("/partners/openserve/outage", data={"outage": "on", "reason": "demo of an FNO outage"}, follow_redirects=True)
    assert "simulated outage" in r.text
    with factory() as s:
        assert s.get(Partner, "openserve").simulator_outage


def test_the_tmf641_api_lists_and_shows_our_outbound_orders(app, api_token, delivered):
    client = TestClient(app)
    h = api_token("second_line_agent")
    r = client.get("/tmf-api/serviceOrdering/v4/serviceOrder?partner=openserve", headers=h)
    assert r.status_code == 200 and r.headers["X-Result-Count"] == "2"
    ids = [o["externalId"] for o in r.json()]
    assert delivered["external_ref"] in ids
    r = client.get(f"/tmf-api/serviceOrdering/v4/serviceOrder/{delivered['id']}", headers=h)
    body = r.json()
    assert r.status_code == 200 and body["@type"] == "ServiceOrder" and body["state"] == "acknowledged" and body["serviceOrderItem"][0]["action"] == "modify"
    assert {c["name"]: c["value"] for c in body["characteristic"]}["deliveryState"] == "delivered" and len(body["note"]) == 2
    assert client.get("/tmf-api/serviceOrdering/v4/serviceOrder/999999", headers=h).status_code == 404
    assert client.get("/tmf-api/serviceOrdering/v4/serviceOrder").status_code == 401
