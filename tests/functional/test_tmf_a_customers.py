"""TMF629 Customer and TMF666 BillingAccount writes: the spec's sample customer posts as it is and comes back with
everything it sent (what the account has no column for is kept and returned; our columns win where we hold the value),
a PATCH of kept attributes records a new kept set, bad values are refused naming them; filters and sort in SQL; DELETE
only when nothing refers to the customer; TMF666 POST/PATCH; merge-patch."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from conftest import TMF_SAMPLES, TMF_SPECS
from fastapi.testclient import TestClient
from jsonschema import Draft4Validator
from sqlalchemy import func, select


CUSTOMERS = "/tmf-api/customerManagement/v4/customer"
ACCOUNTS = "/tmf-api/accountManagement/v4/billingAccount"
# What Opsline has no column for: kept (opsline.api.tmf_attributes) and returned as sent.
KEPT = ("statusReason", "account", "paymentMethod", "creditProfile", "agreement", "relatedParty")


def _errors(spec: str, definition: str, body: dict) -> list[str]:
    doc = json.loads(next(TMF_SPECS.glob(f"{spec}-*.swagger.json")).read_text())
    v = Draft4Validator({"$ref": f"#/definitions/{definition}", "definitions": doc["definitions"]}, format_checker=Draft4Validator.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(body)]


@pytest.fixture
def client(app, api_token):  # type: ignore[no-untyped-def]
    c = TestClient(app)
    c.headers.update(api_token("admin"))
    return c


def _sample() -> dict:
    return json.loads((TMF_SAMPLES / "TMF629-Customer.example.json").read_text())


def _instant(value: Any) -> Any:
    """The same JSON with every date-time as an instant (the answer writes 2018-06-12T00:00:00.000Z as ...00Z)."""
    if isinstance(value, dict):
        return {k: _instant(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_instant(v) for v in value]
    if isinstance(value, str) and len(value) >= 20 and value[10:11] == "T":
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value


def _count_accounts(factory) -> int:  # type: ignore[no-untyped-def]
    from opsline.customers.models import Account
    with factory() as s:
        return s.execute(select(func.count()).select_from(Account)).scalar_one()


def test_the_sample_customer_posts_as_it_is_and_comes_back_with_everything_it_sent(client, factory):
    sample = _sample()
    r = client.post(CUSTOMERS, json=sample)  # unmodified: its id, href and engagedParty.id are Opsline's to assign
    assert r.status_code == 201, r.text
    c = r.json()
    assert _errors("TMF629-Customer", "Customer", c) == []
    assert c["id"] != sample["id"] and c["name"] == "Moon Football Club" and c["engagedParty"]["@referredType"] == "Organization"
    for attribute in KEPT:
        kept = c[attribute][1:] if attribute == "account" else c[attribute]  # our billing account comes first
        assert _instant(kept) == _instant(sample[attribute]), attribute
    assert c["account"][0] == {"id": c["id"], "href": f"{ACCOUNTS}/{c['id']}", "name": c["account"][0]["name"], "@referredType": "BillingAccount"}
    assert c["status"] == "Approved"  # the client's label, shown while the account is active
    assert {"name": "fidelityProgram", "value": "premium", "valueType": "string"} in c["characteristic"]
    assert {"name": "accountType", "value": "retail"} in c["characteristic"]
    # validFor: the end as sent; the start is when Opsline created the account (our value wins)
    assert _instant(c["validFor"]["endDateTime"]) == _instant(sample["validFor"]["endDateTime"])
    assert _instant(c["validFor"]["startDateTime"]) != _instant(sample["validFor"]["startDateTime"])
    media = {m["mediumType"]: m for m in c["contactMedium"]}
    assert media["phone"]["characteristic"] == {"phoneNumber": "+33109758351", "contactType": "homePhone"}  # read in the address's country
    assert media["postalAddress"]["characteristic"] == {"street1": "15 Rue des Canards", "city": "Paris", "postCode": "75014", "country": "FR",
                                                        "contactType": "homeAddress"}
    assert media["phone"]["preferred"] is True and media["postalAddress"]["preferred"] is False
    assert all(_instant(m["validFor"]) == _instant(sample["contactMedium"][0]["validFor"]) for m in media.values())
    with factory() as s:
        from opsline.core.events import AuditEvent
        from opsline.customers.models import Account, Party
        acc = s.get(Account, int(c["id"]))
        assert s.get(Party, acc.party_id).kind == "organisation" and acc.billing_country == "FR" and acc.status == "active"
        trail = s.execute(select(AuditEvent.action).where(AuditEvent.account_id == acc.id, AuditEvent.entity_type == "customer")).scalars().all()
        assert trail == ["tmf_attributes_received"]
    assert client.get(c["href"]).json() == c
    listed = client.get(CUSTOMERS, params={"engagedParty.id": c["engagedParty"]["id"]}).json()
    assert listed == [c]


def test_a_patch_of_kept_attributes_records_a_new_kept_set_and_our_status_wins_once_the_account_moves(client, factory):
    c = client.post(CUSTOMERS, json=_sample()).json()
    patch = {"statusReason": "Re-checked", "agreement": None, "engagedParty": {"id": c["engagedParty"]["id"], "@referredType": "Organization"},
             "creditProfile": [{"creditProfileDate": "2026-11-30T10:00:00+02:00", "creditScore": 7, "validFor": {"startDateTime": "2026-12-01T00:00:00Z"}}],
             "characteristic": [{"name": "fidelityProgram", "value": "gold"}, {"name": "billCycleDay", "value": 15}],
             "contactMedium": [{"mediumType": "TelephoneNumber", "preferred": False, "characteristic": {"phoneNumber": "+33 1 09 75 83 52"}}]}
    r = client.patch(c["href"], content=json.dumps(patch), headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert _errors("TMF629-Customer", "Customer", got) == []
    assert got["statusReason"] == "Re-checked" and "agreement" not in got and got["status"] == "Approved"
    assert got["creditProfile"] == [{"creditProfileDate": "2026-11-30T10:00:00+02:00", "creditScore": 7, "validFor": {"startDateTime": "2026-12-01T00:00:00Z"}}]
    assert [ch for ch in got["characteristic"] if ch["name"] in ("fidelityProgram", "billCycleDay")] == [
        {"name": "billCycleDay", "value": 15}, {"name": "fidelityProgram", "value": "gold"}]
    media = {m["mediumType"]: m for m in got["contactMedium"]}
    assert media["phone"] == {"mediumType": "phone", "preferred": False, "characteristic": {"phoneNumber": "+33109758352"}}  # its extras replaced
    assert media["postalAddress"]["characteristic"]["contactType"] == "homeAddress"  # the other medium's kept as they were
    assert got["paymentMethod"] == c["paymentMethod"] and got["relatedParty"] == c["relatedParty"]  # not sent: unchanged
    assert client.get(c["href"]).json() == got
    with factory() as s:
        from opsline.core.events import AuditEvent
        sets = s.execute(select(AuditEvent.after).where(AuditEvent.entity_type == "customer", AuditEvent.entity_id == c["id"])
                         .order_by(AuditEvent.id)).scalars().all()
        assert len(sets) == 2 and "agreement" in sets[0]["attributes"] and "agreement" not in sets[1]["attributes"]
    before = client.get(c["href"]).json()
    r = client.patch(c["href"], json={"status": "closed"})
    assert r.status_code == 400 and r.json()["field"] == "status", r.text
    r = client.patch(c["href"], json={"engagedParty": {"id": "500", "@referredType": "Organization"}})
    assert r.status_code == 400 and r.json()["field"] == "engagedParty.id", r.text
    assert client.get(c["href"]).json() == before
    with factory.begin() as s:
        from opsline.core.events import Actor
        from opsline.customers import service
        service.transition_account(s, account_id=int(c["id"]), action="suspend", now=datetime.fromisoformat("2026-12-01T12:00:00+00:00"),
                                   actor=Actor.system("test"), reason="unpaid")
    assert client.get(c["href"]).json()["status"] == "suspended"  # the account's lifecycle wins over the client's label
    assert client.patch(c["href"], json={"status": "suspended", "statusReason": None}).json()["status"] == "suspended"
    r = client.get(c["href"]).json()
    assert "statusReason" not in r and client.get(CUSTOMERS, params={"status": "suspended", "engagedParty.id": c["engagedParty"]["id"]}).json() == [r]


@pytest.mark.parametrize("attribute,value,field", [
    ("creditProfile", [{"creditScore": 5, "validFor": {}}], "creditProfileDate"),
    ("relatedParty", [{"id": "2777", "name": "John Doe"}], "@referredType"),
    ("validFor", {"startDateTime": "2018-06-12"}, "startDateTime"),
    ("validFor", {"startDateTime": "2018-06-12T00:00:00"}, "startDateTime"),  # no offset: not an instant
    ("account", [{"id": "8251"}], "name"),
    ("characteristic", [{"name": "fidelityProgram"}], "value"),
    ("status", "closed", "status"),
    ("contactMedium", [{"mediumType": "phone", "characteristic": {"phoneNumber": "+27825551234", "faxNumber": "+27215551234"}}], "faxNumber"),
    ("colour", "blue", "colour"),
])
def test_values_opsline_cannot_keep_as_the_spec_says_are_refused_naming_them_and_nothing_is_created(client, factory, attribute, value, field):
    before = _count_accounts(factory)
    r = client.post(CUSTOMERS, json={"name": "Moon Football Club", attribute: value})
    assert r.status_code == 400 and field in r.text, r.text
    assert _count_accounts(factory) == before


@pytest.mark.parametrize("medium,field", [({"mediumType": "pigeon", "characteristic": {}}, "mediumType"),
                                          ({"mediumType": "email", "characteristic": {"emailAddress": "a@b.co", "city": "Paris"}}, "city"),
                                          ({"mediumType": "phone", "characteristic": {"phoneNumber": "123"}}, "phoneNumber")])
def test_bad_contact_media_are_refused_naming_the_attribute(client, medium, field):
    r = client.post(CUSTOMERS, json={"name": "X", "contactMedium": [medium]})
    assert r.status_code == 400 and field in r.text, r.text


def _make(client, name: str, org: bool = False) -> dict:
    r = client.post(CUSTOMERS, json={"name": name, "engagedParty": {"@referredType": "Organization" if org else "Individual"},
                                     "contactMedium": [{"mediumType": "email", "characteristic": {"emailAddress": f"{name.split()[0].lower()}@example.com"}}]})
    assert r.status_code == 201, r.text
    return r.json()


def test_filters_sort_and_merge_patch(client):
    a, b, c = _make(client, "Anele Zulu"), _make(client, "Bongani Nkosi"), _make(client, "Craig Botha", org=True)
    names = [x["name"] for x in client.get(CUSTOMERS, params={"sort": "-name"}).json()]
    assert names == ["Craig Botha", "Bongani Nkosi", "Anele Zulu"]
    r = client.get(CUSTOMERS, params={"engagedParty.id": b["engagedParty"]["id"]})
    assert [x["id"] for x in r.json()] == [b["id"]] and r.headers["X-Total-Count"] == "1" and r.headers["X-Result-Count"] == "1"
    assert client.get(CUSTOMERS, params={"sort": "colour"}).status_code == 400
    r = client.patch(a["href"], content=json.dumps({"name": "Anele Zulu-Dlamini", "contactMedium": [{"mediumType": "TelephoneNumber",
                                                                                                      "characteristic": {"phoneNumber": "082 555 1234"}}]}),
                     headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["name"] == "Anele Zulu-Dlamini" and {m["mediumType"] for m in got["contactMedium"]} == {"email", "phone"}
    assert client.patch(a["href"], json={"status": "closed"}).status_code == 400
    assert [x["id"] for x in client.get(ACCOUNTS, params={"relatedParty.id": c["id"]}).json()] == [c["id"]]
    assert [x["description"] for x in client.get(ACCOUNTS, params={"sort": "description", "limit": 2}).json()] == ["Anele Zulu-Dlamini", "Bongani Nkosi"]


def test_tmf666_billing_accounts_are_created_and_patched(client):
    r = client.post(ACCOUNTS, json={"name": "Head office", "accountType": "b2b", "@type": "BillingAccount",
                                    "relatedParty": [{"name": "Mokoena Freight (Pty) Ltd", "role": "owner", "@referredType": "Organization"}],
                                    "contact": [{"contactMedium": [{"mediumType": "email", "characteristic": {"emailAddress": "ap@mokoena.co.za"}}]}],
                                    "characteristic": [{"name": "paymentTermsDays", "value": 60}]}, headers={"Idempotency-Key": "ba-1"})
    assert r.status_code == 201, r.text
    ba = r.json()
    assert _errors("TMF666-Account", "BillingAccount", ba) == []
    assert ba["accountType"] == "b2b" and ba["description"] == "Mokoena Freight (Pty) Ltd" and ba["paymentPlan"][0]["paymentFrequency"] == "60 days"
    assert r.headers["Location"].endswith(ba["href"])
    again = client.post(ACCOUNTS, json={"name": "Head office", "accountType": "b2b", "@type": "BillingAccount",
                                        "relatedParty": [{"name": "Mokoena Freight (Pty) Ltd", "role": "owner", "@referredType": "Organization"}],
                                        "contact": [{"contactMedium": [{"mediumType": "email", "characteristic": {"emailAddress": "ap@mokoena.co.za"}}]}],
                                        "characteristic": [{"name": "paymentTermsDays", "value": 60}]}, headers={"Idempotency-Key": "ba-1"})
    assert again.json()["id"] == ba["id"]
    customer = client.get(f"{CUSTOMERS}/{ba['id']}").json()
    assert customer["engagedParty"]["@referredType"] == "Organization"
    r = client.patch(ba["href"], content=json.dumps({"characteristic": [{"name": "billCycleDay", "value": 15}], "description": "Mokoena Freight"}),
                     headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    assert r.json()["billStructure"]["cycleSpecification"]["billingDateShift"] == 15 and r.json()["description"] == "Mokoena Freight"
    assert _errors("TMF666-Account", "BillingAccount", r.json()) == []
    r = client.patch(ba["href"], json={"characteristic": [{"name": "accountType", "value": "retail"}]})
    assert r.status_code == 400 and "kind" in r.text
    r = client.patch(ba["href"], json={"paymentStatus": "paid"})
    assert r.status_code == 400 and "paymentStatus" in r.text


def test_delete_closes_a_customer_nothing_refers_to_and_refuses_one_with_business(client):
    fresh = _make(client, "Mistake Entry")
    r = client.delete(fresh["href"])
    assert r.status_code == 204, r.text
    assert client.get(fresh["href"]).json()["status"] == "closed"
    busy = _make(client, "Thabo Busy")
    t = client.post("/tmf-api/troubleTicket/v4/troubleTicket", json={"description": "No internet", "severity": "major", "ticketType": "device_technical",
                                                                     "relatedParty": [{"id": busy["id"], "role": "customer"}]})
    assert t.status_code == 201, t.text
    r = client.delete(busy["href"])
    assert r.status_code == 409 and "support case" in r.json()["detail"], r.text
    assert client.get(busy["href"]).json()["status"] == "active"
    assert client.delete(f"{CUSTOMERS}/99999999").status_code == 404
