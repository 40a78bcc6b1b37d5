"""TMF688-style hubs: a listener registered on an API's /hub receives each matching event once, signed, in order per
resource, through the job table, also after its receiver was down for a while (the worker retries with backoff), and
the staff pages show each listener's delivery log."""

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from conftest import NOW, TMF_SPECS, csrf_of, post_login
from fastapi.testclient import TestClient
from tmf_hub_helpers import _worker

from opsline.api.tmf_spec import resource_validator
from opsline.core.events import Actor
from opsline.customers import service as customers
from opsline.tmfhub import service as hub

CUSTOMERS = "/tmf-api/customerManagement/v4/customer"
CUSTOMER_HUB = "/tmf-api/customerManagement/v4/hub"
ACCOUNT_HUB = "/tmf-api/accountManagement/v4/hub"
TMF629 = TMF_SPECS / "TMF629-Customer-v4.0.0.swagger.json"
STAFF = Actor(name="desk", roles=frozenset({"admin"}))


def _customer(api, name: str) -> int:  # type: ignore[no-untyped-def]
    r = api.post(CUSTOMERS, json={"name": name, "engagedParty": {"@referredType": "Organization"},
                                  "contactMedium": [{"mediumType": "email", "characteristic": {"emailAddress": "ap@example.co.za"}}],
                                  "characteristic": [{"name": "accountType", "value": "b2b"}]})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _move(factory, account_id: int, action: str, at) -> None:  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        customers.transition_account(s, account_id=account_id, action=action, now=at, actor=STAFF, reason=f"{action} for the hub test")


def _verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("x-hub-signature-256", ""), expected)


def test_a_listener_gets_each_matching_event_once_signed_and_in_order_even_after_its_receiver_was_down(api, factory, receiver):
    acc = _customer(api, "Sithole Transport")
    reg = api.post(CUSTOMER_HUB, json={"callback": receiver.url("/customers"), "query": "eventType=CustomerStateChangeEvent"})
    assert reg.status_code == 201, reg.text
    listener = reg.json()
    assert reg.headers["Location"] == f"https://opsline.example{CUSTOMER_HUB}/{listener['id']}" and listener["secret"]
    assert "secret" not in api.get(f"{CUSTOMER_HUB}/{listener['id']}").json()
    only_suspensions = api.post(ACCOUNT_HUB, json={"callback": receiver.url("/accounts"), "query": "state=suspended"}).json()

    t = NOW + timedelta(minutes=5)
    _move(factory, acc, "suspend", t)
    _move(factory, acc, "reconnect", t + timedelta(minutes=1))
    worker, clock = _worker(factory, t + timedelta(minutes=2))
    assert worker.drain() == 3  # two customer events, one account event (the reconnection does not match state=suspended)
    first = [(h, json.loads(b)) for h, b in receiver.received]
    assert [(b["eventType"], b["event"]["customer"]["status"]) for h, b in first if "customer" in b["event"]] == [
        ("CustomerStateChangeEvent", "suspended"), ("CustomerStateChangeEvent", "active")]
    assert [b["event"]["billingAccount"]["state"] for h, b in first if "billingAccount" in b["event"]] == ["suspended"]
    for headers, raw in receiver.received:
        secret = listener["secret"] if "customer" in json.loads(raw)["event"] else only_suspensions["secret"]
        assert _verify(secret, headers, raw)
    assert resource_validator(TMF629, "Customer", partial=True)([b["event"]["customer"] for h, b in first if "customer" in b["event"]]) == []

    # The receiver goes down; two more changes wait, retried with backoff, the later one behind the earlier one.
    receiver.down()
    _move(factory, acc, "suspend", t + timedelta(minutes=10))
    _move(factory, acc, "reconnect", t + timedelta(minutes=11))
    clock["now"] = t + timedelta(minutes=12)
    worker.drain()
    for step in range(4):
        clock["now"] += timedelta(minutes=30)
        worker.drain()
    with factory() as s:
        log = hub.delivery_log(s, listener_id=int(listener["id"]))["deliveries"]
    waiting = [d for d in log if d["state"] == "pending"]
    assert len(waiting) == 2 and max(d["attempts"] for d in waiting) >= 3 and all(d["next_attempt_at"] for d in waiting)
    assert any("ConnectError" in d["error"] or "refused" in d["error"].lower() for d in waiting)

    receiver.up()
    clock["now"] += timedelta(hours=2)
    worker.drain()
    customer_events = [json.loads(b) for h, b in receiver.received if "customer" in json.loads(b)["event"]]
    assert [e["event"]["customer"]["status"] for e in customer_events] == ["suspended", "active", "suspended", "active"]
    assert len({e["eventId"] for e in customer_events}) == 4  # each once
    account_events = [json.loads(b) for h, b in receiver.received if "billingAccount" in json.loads(b)["event"]]
    assert [e["event"]["billingAccount"]["state"] for e in account_events] == ["suspended", "suspended"]
    with factory() as s:
        assert {d["state"] for d in hub.delivery_log(s, listener_id=int(listener["id"]))["deliveries"]} == {"delivered"}


def test_hub_listeners_are_listed_read_and_deleted_and_a_deleted_listener_gets_nothing_more(api, factory, receiver):
    acc = _customer(api, "Pillay Motors")
    one = api.post(CUSTOMER_HUB, json={"callback": receiver.url("/a")}).json()
    two = api.post(CUSTOMER_HUB, json={"callback": receiver.url("/b"), "query": "eventType=CustomerStateChangeEvent,CustomerCreateEvent"}).json()
    listed = api.get(CUSTOMER_HUB, params={"limit": 1})
    assert listed.headers["X-Total-Count"] == "2" and listed.headers["X-Result-Count"] == "1" and listed.json()[0]["id"] == one["id"]
    assert api.get(ACCOUNT_HUB).json() == []  # each API has its own hub
    assert api.delete(f"{CUSTOMER_HUB}/{one['id']}").status_code == 204
    assert api.get(f"{CUSTOMER_HUB}/{one['id']}").status_code == 404
    assert api.delete(f"{CUSTOMER_HUB}/{one['id']}").status_code == 404
    assert api.get(f"{ACCOUNT_HUB}/{two['id']}").status_code == 404  # registered on another hub

    _move(factory, acc, "suspend", NOW + timedelta(minutes=1))
    worker, _ = _worker(factory, NOW + timedelta(minutes=2))
    worker.drain()
    assert [h["x-opsline-event-id"] for h, _ in receiver.received] == [json.loads(b)["eventId"] for _, b in receiver.received]
    assert len(receiver.received) == 1 and json.loads(receiver.received[0][1])["eventType"] == "CustomerStateChangeEvent"


@pytest.mark.parametrize("body,field", [
    ({"callback": "not a url"}, "callback"),
    ({"callback": "ftp://example.test/x"}, "callback"),
    ({"callback": "https://example.test/x", "query": "eventType=ProductOrderStateChangeEvent"}, "query"),
    ({"callback": "https://example.test/x", "query": "state="}, "query"),
    ({"callback": "https://example.test/x", "colour": "red"}, "colour"),
    ({}, "callback"),
])
def test_a_bad_registration_is_a_400_naming_the_field_and_registers_nothing(api, body, field):
    r = api.post(CUSTOMER_HUB, json=body)
    assert r.status_code == 400 and r.json()["field"] == field and r.json()["code"] and r.json()["reason"], r.text
    assert api.get(CUSTOMER_HUB).json() == []


def test_dead_deliveries_show_on_the_admin_home_and_the_listener_page_and_a_retry_delivers_them_in_order(app, api, factory, make_user, receiver):
    acc = _customer(api, "Botha Engineering")
    listener = api.post(CUSTOMER_HUB, json={"callback": receiver.url("/c")}).json()
    receiver.down()
    t = NOW + timedelta(minutes=1)
    _move(factory, acc, "suspend", t)
    _move(factory, acc, "reconnect", t + timedelta(seconds=30))
    worker, clock = _worker(factory, t + timedelta(minutes=1))
    for _ in range(hub.MAX_ATTEMPTS * 2 + 2):
        clock["now"] += timedelta(hours=2)
        worker.drain()
    with factory() as s:
        assert [d["state"] for d in hub.delivery_log(s, listener_id=int(listener["id"]))["deliveries"]] == ["dead", "dead"]
        assert hub.dead_count(s) == 2

    staff = TestClient(app)
    staff.__enter__()
    try:
        assert post_login(staff, make_user("admin")).status_code == 303
        staff.headers["X-CSRF-Token"] = csrf_of(staff)
        home = staff.get("/")
        assert "Dead TMF event deliveries" in home.text
        page = staff.get(f"/tmf-hub/{listener['id']}")
        assert page.status_code == 200 and page.text.count(">dead<") == 2 and "CustomerStateChangeEvent" in page.text
        assert receiver.url("/c") in staff.get("/tmf-hub").text
        receiver.up()
        r = staff.post(f"/tmf-hub/{listener['id']}/retry", follow_redirects=False)
        assert r.status_code == 303 and "2+dead+deliveries" in r.headers["location"]
    finally:
        staff.__exit__(None, None, None)
    clock["now"] += timedelta(minutes=1)
    worker.drain()
    assert [json.loads(b)["event"]["customer"]["status"] for _, b in receiver.received] == ["suspended", "active"]
    with factory() as s:
        assert hub.dead_count(s) == 0


def test_every_event_rule_names_a_hub_and_a_resource_whose_api_serves_it_by_id():
    from opsline.tmfhub import render
    from opsline.tmfhub.catalogue import BY_NAME, RULES

    for rule in RULES:
        assert rule.api in BY_NAME and render.has_renderer(rule.api, rule.resource), rule
        for name, payload in ((rule.domain_event.replace("*", "active"), {"id": 1, "from": "pending"}), (rule.domain_event.replace("*", "x"), {"id": 1})):
            assert set(rule.event_type(name, payload)) <= set(BY_NAME[rule.api].event_types), (rule, name)
