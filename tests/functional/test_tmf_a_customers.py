"""TMF629 Customer and TMF666 BillingAccount writes: the spec's sample customer keeps both contact media and its
Organization; what cannot be stored is refused naming it; filters and sort in SQL; DELETE only when nothing refers
to the customer; TMF666 POST/PATCH; merge-patch."""

from __future__ import annotations

import json

import pytest
from conftest import TMF_SAMPLES, TMF_SPECS
from fastapi.testclient import TestClient
from jsonschema import Draft4Validator

CUSTOMERS = "/tmf-api/customerManagement/v4/customer"
ACCOUNTS = "/tmf-api/accountManagement/v4/billingAccount"
# What Opsline has nowhere to keep: refused with a 400 naming it (never accepted and dropped).
NOT_STORED = ("status", "statusReason", "validFor", "account", "paymentMethod", "creditProfile", "agreement", "relatedParty", "characteristic")


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


def test_the_sample_customer_keeps_both_contact_media_and_is_an_organisation(client, factory):
    sample = _sample()
    body = {k: v for k, v in sample.items() if k not in NOT_STORED}
    for m in body["contactMedium"]:  # validFor, preferred and contactType of a medium have no column either
        m.pop("validFor"), m.pop("preferred"), m["characteristic"].pop("contactType")
    r = client.post(CUSTOMERS, json=body)
    assert r.status_code == 201, r.text
    c = r.json()
    assert _errors("TMF629-Customer", "Customer", c) == []
    assert c["id"] != sample["id"] and c["name"] == "Moon Football Club"
    assert c["engagedParty"]["@referredType"] == "Organization"
    media = {m["mediumType"]: m["characteristic"] for m in c["contactMedium"]}
    assert media["phone"] == {"phoneNumber": "+33109758351"}  # read in the address's country
    assert media["postalAddress"] | {"contactType": None} == {"street1": "15 Rue des Canards", "city": "Paris", "postCode": "75014", "country": "FR",
                                                              "contactType": None}
    with factory() as s:
        from opsline.customers.models import Account, Party
        acc = s.get(Account, int(c["id"]))
        assert s.get(Party, acc.party_id).kind == "organisation" and acc.billing_country == "FR"
    assert client.get(c["href"]).json() == c


@pytest.mark.parametrize("attribute", NOT_STORED)
def test_each_sample_attribute_opsline_cannot_keep_is_refused_naming_it(client, attribute):
    sample = _sample()
    r = client.post(CUSTOMERS, json={"name": "Moon Football Club", attribute: sample[attribute]})
    assert r.status_code == 400 and attribute in r.text, r.text


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
