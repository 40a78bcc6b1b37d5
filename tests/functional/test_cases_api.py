"""TMF621 Trouble Ticket API over cases, and the Support desk pages."""

from __future__ import annotations

import json

import jsonschema
from conftest import run_schemathesis, TMF_SPECS

BASE = "/tmf-api/troubleTicket/v4/troubleTicket"
SPEC = TMF_SPECS / "TMF621-TroubleTicket-v4.0.0.swagger.json"


def _conforms(ticket: dict) -> None:
    """The body validates against the official TMF621 v4 TroubleTicket definition."""
    spec = json.loads(SPEC.read_text())
    jsonschema.validate(ticket, {"$ref": "#/definitions/TroubleTicket", "definitions": spec["definitions"]})


def _account(client, headers) -> str:
    r = client.post("/tmf-api/customerManagement/v4/customer", headers=headers, json={
        "name": "Zanele Khumalo", "contactMedium": [{"mediumType": "email", "characteristic": {"emailAddress": "zanele@gmail.com"}}]})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_a_trouble_ticket_is_created_once_per_idempotency_key_and_reads_back_in_tmf_shape(app, api_token):
    from fastapi.testclient import TestClient

    h = api_token("admin")
    with TestClient(app) as client:
        acc = _account(client, h)
        body = {"name": "Slow speeds in the evening", "description": "Drops to 2 Mbps after 19:00", "ticketType": "network_coverage", "severity": "major",
                "channel": {"name": "web"}, "relatedEntity": [{"id": acc, "@referredType": "BillingAccount"}, {"id": "INV-2026-001", "@referredType": "CustomerBill"}],
                "relatedParty": [{"id": acc, "role": "customer"}], "note": [{"text": "Customer tested on cable too"}]}
        r1 = client.post(BASE, json=body, headers=h | {"Idempotency-Key": "tt-1"})
        r2 = client.post(BASE, json=body, headers=h | {"Idempotency-Key": "tt-1"})
        assert r1.status_code == 201 and r2.json() == r1.json()
        t = r1.json()
        _conforms(t)
        assert t["status"] == "acknowledged" and t["severity"] == "major" and t["priority"] == "2" and t["ticketType"] == "network_coverage"
        assert {e["@referredType"] for e in t["relatedEntity"]} == {"BillingAccount", "CustomerBill"}
        assert t["note"][0]["text"] == "Customer tested on cable too" and t["statusChange"][0]["status"] == "acknowledged"
        listed = client.get(BASE, headers=h, params={"relatedParty.id": acc})
        assert len(listed.json()) == 1 and listed.headers["X-Total-Count"] == "1"
        for item in listed.json():
            _conforms(item)
        r = client.patch(f"{BASE}/{t['id']}", headers=h, json={"status": "held", "statusChangeReason": "FNO fault", "heldBy": "vumatel"})
        assert r.status_code == 200 and r.json()["status"] == "held"
        r = client.patch(f"{BASE}/{t['id']}", headers=h, json={"status": "resolved", "statusChangeReason": "FNO replaced splitter", "note": [{"text": "done"}]})
        got = r.json()
        _conforms(got)
        assert got["status"] == "resolved" and [s["status"] for s in got["statusChange"]] == ["acknowledged", "held", "resolved"]
        assert client.get(BASE, headers=h, params={"status": "resolved"}).json()[0]["id"] == t["id"]


def test_bad_ticket_requests_answer_problem_json_and_change_nothing(app, api_token):
    from fastapi.testclient import TestClient

    h = api_token("admin")
    with TestClient(app) as client:
        r = client.post(BASE, headers=h, json={"name": "x", "ticketType": "nonsense"})
        assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json") and "nonsense" in r.json()["detail"]
        t = client.post(BASE, headers=h, json={"name": "Router", "ticketType": "device_technical"}).json()
        r = client.patch(f"{BASE}/{t['id']}", headers=h, json={"status": "closed"})
        assert r.status_code == 409 and "cannot close" in r.json()["detail"]
        r = client.patch(f"{BASE}/{t['id']}", headers=h, json={"status": "pending"})
        assert r.status_code == 400 and r.json()["field"] == "reason"
        again = client.get(f"{BASE}/{t['id']}", headers=h).json()
        assert again["status"] == "acknowledged" and len(again["statusChange"]) == 1
        assert client.get(f"{BASE}/999999", headers=h).status_code == 404
        assert client.get("/api/troubleTicket/v4/troubleTicket", headers=h).json() == client.get(BASE, headers=h).json()  # /api is the documented alias
        r = client.patch(f"{BASE}/{t['id']}", headers=h, json={"priority": "1", "status": "pending"})
        assert r.status_code == 400 and r.json()["field"] == "reason"
        assert client.get(f"{BASE}/{t['id']}", headers=h).json()["priority"] == t["priority"]  # all or nothing
        r = client.patch(f"{BASE}/{t['id']}", headers=h, json={"queue": "nowhere", "statusChangeReason": "x"})
        assert r.status_code == 400 and "unknown queue" in r.json()["detail"]


def test_trouble_ticket_endpoints_conform_to_their_openapi_schema(app, api_token):
    assert run_schemathesis(app, api_token("admin"), r"^/tmf-api/troubleTicket/v4/troubleTicket", max_examples=8) == 5  # list, get, post, patch, delete


def test_a_ticket_page_costs_the_same_few_queries_whatever_its_size(app, api_token, engine):
    from fastapi.testclient import TestClient
    from sqlalchemy import event

    h = api_token("admin")
    counted: list[str] = []

    def count(conn, cursor, statement, *a):  # type: ignore[no-untyped-def]
        counted.append(statement)

    with TestClient(app) as client:
        acc = _account(client, h)
        for i in range(12):
            body = {"name": f"Fault {i}", "ticketType": "network_coverage", "relatedParty": [{"id": acc, "role": "customer"}], "note": [{"text": "n"}]}
            assert client.post(BASE, headers=h, json=body).status_code == 201
        sizes = {}
        event.listen(engine, "before_cursor_execute", count)
        try:
            for limit in (2, 12):
                counted.clear()
                assert len(client.get(BASE, headers=h, params={"limit": limit}).json()) == limit
                sizes[limit] = len(counted)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert sizes[2] == sizes[12], sizes


def test_an_agent_opens_a_case_works_it_and_sees_it_in_the_work_queue(client_as):
    c = client_as("second_line_agent")
    r = c.post("/cases/new", data={"category_code": "billing_account", "subject": "Debit order twice", "channel": "call", "contact_email": "a@example.test"},
               follow_redirects=False)
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    page = c.get(url)
    assert page.status_code == 200 and "Debit order twice" in page.text and "Wait for customer" in page.text
    r = c.post(url + "/transition", data={"action": "pend", "reason": ""})
    assert r.status_code == 422 and "reason is required" in r.text
    assert 'id="case-state">acknowledged' in r.text
    c.post(url + "/notes", data={"body": "Checked bank file", "visibility": "internal"})
    c.post(url + "/transition", data={"action": "start"})
    page = c.get(url)
    assert "Checked bank file" in page.text and 'id="case-state">inProgress' in page.text
    wq = c.get("/cases?tab=all")
    assert wq.status_code == 200 and "Debit order twice" in wq.text
    assert c.get("/cases?tab=breaching").status_code == 200
    assert c.get("/cases/reports/fcr").status_code == 200
    r = c.post("/cases/new", data={"category_code": "nonsense", "subject": "x"})
    assert r.status_code == 422 and "unknown category" in r.text
