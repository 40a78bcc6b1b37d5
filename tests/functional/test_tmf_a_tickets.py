"""TMF621: the spec's own sample ticket and a spec-minimal ticket are accepted; nothing sent is dropped (stored and
shown back, or refused naming the attribute); filters and sort run in SQL; PATCH takes merge-patch; DELETE says why not."""

from __future__ import annotations

import json

import pytest
from conftest import TMF_SAMPLES, TMF_SPECS
from fastapi.testclient import TestClient
from jsonschema import Draft4Validator

BASE = "/tmf-api/troubleTicket/v4/troubleTicket"
SPEC = json.loads((TMF_SPECS / "TMF621-TroubleTicket-v4.0.0.swagger.json").read_text())


def _errors(ticket: dict) -> list[str]:
    v = Draft4Validator({"$ref": "#/definitions/TroubleTicket", "definitions": SPEC["definitions"]}, format_checker=Draft4Validator.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(ticket)]


@pytest.fixture
def client(app, api_token):  # type: ignore[no-untyped-def]
    c = TestClient(app)
    c.headers.update(api_token("admin"))
    return c


@pytest.fixture
def customer(client) -> str:  # type: ignore[no-untyped-def]
    r = client.post("/tmf-api/customerManagement/v4/customer", json={"name": "Jack Smith", "contactMedium": [
        {"mediumType": "email", "characteristic": {"emailAddress": "jack@example.com"}}]})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_the_official_sample_ticket_is_accepted_and_everything_sent_is_shown_back(client, customer):
    sample = json.loads((TMF_SAMPLES / "TMF621-TroubleTicket.example.json").read_text())
    # Only ids adjusted to seeded data: the customer, and the ticket type (a case category: the sample's 'Bill Dispute' is not one of ours).
    sample["relatedParty"][1]["id"] = customer
    sample["ticketType"] = "billing_account"
    r = client.post(BASE, json=sample)
    assert r.status_code == 201, r.text
    t = r.json()
    assert _errors(t) == []
    assert t["id"] != sample["id"] and r.headers["Location"].endswith(f"{BASE}/{t['id']}")
    assert client.get(f"{BASE}/{t['id']}").json() == t
    # as sent
    assert t["name"] == sample["name"] and t["description"] == sample["description"].strip()  # surrounding blanks trimmed
    assert t["severity"] == "Urgent" and t["priority"] == "2"  # severity kept as sent; 'High' priority is our 2
    assert t["externalId"] == "213-9909" and t["attachment"] == sample["attachment"]
    assert t["expectedResolutionDate"].startswith("2019-06-10T07:34:45.968") and t["requestedResolutionDate"].startswith("2019-05-31T07:34:45.968")
    assert t["troubleTicketRelationship"] == sample["troubleTicketRelationship"]
    assert t["@schemaLocation"] == sample["@schemaLocation"] and t["channel"] == sample["channel"]
    assert t["status"] == "pending" and t["statusChangeReason"] == sample["statusChangeReason"]
    assert [s["status"] for s in t["statusChange"]] == ["acknowledged", "pending"]
    member = next(p for p in t["relatedParty"] if p["role"] == "member")
    assert member == sample["relatedParty"][0]
    assert next(p for p in t["relatedParty"] if p["role"] == "customer")["id"] == customer
    bill = next(e for e in t["relatedEntity"] if e["@referredType"] == "CustomerBill")
    assert (bill["id"], bill["name"], bill["role"], bill["href"]) == ("3472", "March 2019 Bill", "disputedBill", sample["relatedEntity"][0]["href"])
    assert [(n["author"], n["text"]) for n in t["note"]] == [("Jack Smith", sample["note"][0]["text"])]
    # assigned by us, not taken from the body
    assert not t["creationDate"].startswith("2019")


def test_a_spec_minimal_ticket_gets_sensible_defaults_and_keeps_its_severity(client):
    r = client.post(BASE, json={"description": "Router reboots every hour\nsince the storm", "severity": "minor", "ticketType": "device_technical"})
    assert r.status_code == 201, r.text
    t = r.json()
    assert _errors(t) == []
    assert t["name"] == "Router reboots every hour" and t["severity"] == "minor" and t["status"] == "acknowledged"
    assert t["channel"]["id"] == "web"
    # a severity the rules outrank is still shown as sent (the priority is ours: fraud is always priority 1)
    f = client.post(BASE, json={"description": "Someone ported my number", "severity": "low", "ticketType": "fraud"}).json()
    assert f["severity"] == "low" and f["priority"] == "1"
    # by category name too
    assert client.post(BASE, json={"description": "x", "severity": "minor", "ticketType": "Sales enquiry"}).json()["ticketType"] == "sales"


@pytest.mark.parametrize("extra,field", [({"unknownThing": 1}, "unknownThing"), ({"note": [{"text": "a", "mood": "angry"}]}, "mood"),
                                         ({"channel": {"name": "web", "colour": "red"}}, "colour"), ({"ticketType": "nonsense"}, "ticketType")])
def test_an_attribute_that_is_not_stored_is_refused_naming_it(client, extra, field):
    before = client.get(BASE).headers["X-Total-Count"]
    r = client.post(BASE, json={"description": "d", "severity": "minor", "ticketType": "device_technical"} | extra)
    assert r.status_code == 400 and field in r.text, r.text
    assert client.get(BASE).headers["X-Total-Count"] == before


def test_filters_and_sort_and_merge_patch_and_delete(client, customer):
    made = [client.post(BASE, json={"name": n, "description": n, "severity": s, "ticketType": "device_technical",
                                    "relatedParty": [{"id": customer, "role": "customer", "@referredType": "Customer"}] if i % 2 else []}).json()
            for i, (n, s) in enumerate([("Alpha fault", "minor"), ("Beta fault", "major"), ("Gamma outage", "low")])]
    r = client.get(BASE, params={"relatedParty.id": customer})
    assert [t["id"] for t in r.json()] == [made[1]["id"]] and r.headers["X-Total-Count"] == "1" and r.headers["X-Result-Count"] == "1"
    assert [t["name"] for t in client.get(BASE, params={"name": "fault", "sort": "name"}).json()] == ["Alpha fault", "Beta fault"]
    assert [t["name"] for t in client.get(BASE, params={"sort": "-name", "limit": 2}).json()] == ["Gamma outage", "Beta fault"]
    assert [t["id"] for t in client.get(BASE, params={"sort": "creationDate,id", "status": "acknowledged"}).json()] == [m["id"] for m in made]
    assert client.get(BASE, params={"sort": "colour"}).status_code == 400
    page = client.get(BASE, params={"limit": 1, "offset": 1, "fields": "name"})
    assert page.headers["X-Total-Count"] == "3" and page.headers["X-Result-Count"] == "1" and set(page.json()[0]) <= {"id", "href", "@type", "name"}

    t = made[0]
    r = client.patch(f"{BASE}/{t['id']}", content=json.dumps({"severity": "Blocking", "note": [{"text": "customer called back"}]}),
                     headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    assert r.json()["severity"] == "Blocking" and r.json()["note"][-1]["text"] == "customer called back" and _errors(r.json()) == []
    assert client.get(f"{BASE}/{t['id']}").json()["severity"] == "Blocking"
    r = client.patch(f"{BASE}/{t['id']}", json={"name": "renamed"})
    assert r.status_code == 400 and "name" in r.text

    r = client.delete(f"{BASE}/{t['id']}")
    assert r.status_code == 409 and "PATCH status=cancelled" in r.text
    assert client.get(f"{BASE}/{t['id']}").status_code == 200
    assert client.delete(f"{BASE}/99999999").status_code == 404
