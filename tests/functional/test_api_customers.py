"""TMF629 Customer and TMF666 Billing Account over HTTP: shapes, idempotency keys, errors, OpenAPI."""

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from opsline.customers.models import Account


def _client(app, headers):  # type: ignore[no-untyped-def]
    c = TestClient(app)
    c.headers.update(headers)
    return c


BODY = {
    "name": "Mokoena Logistics (Pty) Ltd",
    "engagedParty": {"@referredType": "Organization"},
    "contactMedium": [
        {"mediumType": "email", "characteristic": {"emailAddress": "accounts@mokoena.co.za"}},
        {"mediumType": "phone", "characteristic": {"phoneNumber": "011 555 0101"}},
        {"mediumType": "postalAddress", "characteristic": {"street1": "4 Loveday Street", "city": "Johannesburg", "postCode": "2001"}},
    ],
    "characteristic": [{"name": "accountType", "value": "b2b"}, {"name": "segment", "value": "sme"}, {"name": "valueTier", "value": "high_value"}],
}


def test_a_system_creates_a_customer_and_reads_it_as_customer_and_billing_account(app, api_token):
    c = _client(app, api_token("billing_analyst"))
    r = c.post("/tmf-api/customerManagement/v4/customer", json=BODY)
    assert r.status_code == 201, r.text
    cust = r.json()
    assert r.headers["location"].endswith(cust["href"]) and r.headers["location"].startswith("http")  # absolute (TMF630)
    assert cust["engagedParty"]["@referredType"] == "Organization"
    assert {m["mediumType"] for m in cust["contactMedium"]} == {"email", "phone", "postalAddress"}
    got = c.get(cust["href"]).json()
    assert got["id"] == cust["id"]
    ba = c.get(cust["account"][0]["href"]).json()
    assert ba["accountType"] == "b2b" and ba["state"] == "active" and ba["@type"] == "BillingAccount"
    listed = c.get("/tmf-api/accountManagement/v4/billingAccount", params={"name": "Mokoena"})
    assert listed.headers["X-Result-Count"] == "1"


def test_repeating_an_idempotency_key_replays_the_first_answer_and_creates_once(app, api_token, factory):
    c = _client(app, api_token("admin") | {"Idempotency-Key": "crm-42"})
    first = c.post("/tmf-api/customerManagement/v4/customer", json=BODY)
    second = c.post("/tmf-api/customerManagement/v4/customer", json=BODY)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    other = c.post("/tmf-api/customerManagement/v4/customer", json=BODY | {"name": "Different"})
    assert other.status_code == 409 and other.headers["content-type"].startswith("application/problem+json")
    with factory() as s:
        assert s.execute(select(func.count()).select_from(Account)).scalar_one() == 1


def test_malformed_email_is_400_problem_json_naming_the_field_and_creates_nothing(app, api_token, factory):
    c = _client(app, api_token("admin"))
    bad = BODY | {"contactMedium": [{"mediumType": "email", "characteristic": {"emailAddress": "not-an-email"}}]}
    r = c.post("/tmf-api/customerManagement/v4/customer", json=bad)
    assert r.status_code == 400  # TMF630: validation failures are 400
    body = r.json()
    assert str(body["status"]) == "400" and "email" in body["detail"]
    with factory() as s:
        assert s.execute(select(func.count()).select_from(Account)).scalar_one() == 0


def test_unknown_customer_is_404_and_revoked_token_is_401(app, api_token):
    c = _client(app, api_token("admin"))
    assert c.get("/tmf-api/customerManagement/v4/customer/99999").status_code == 404
    assert _client(app, {"Authorization": "Bearer nope"}).get("/tmf-api/customerManagement/v4/customer").status_code == 401


def test_patch_with_a_stale_if_match_is_409(app, api_token):
    c = _client(app, api_token("admin"))
    cust = c.post("/tmf-api/customerManagement/v4/customer", json=BODY).json()
    ok = c.patch(cust["href"], json={"name": "Mokoena Freight"}, headers={"If-Match": "1"})
    assert ok.status_code == 200 and ok.json()["name"] == "Mokoena Freight"
    stale = c.patch(cust["href"], json={"name": "Lost Update"}, headers={"If-Match": "1"})
    assert stale.status_code == 409
    assert c.get(cust["href"]).json()["name"] == "Mokoena Freight"


def test_openapi_document_is_valid_openapi_3(app, api_token):
    from openapi_spec_validator import validate

    spec = TestClient(app).get("/openapi.json", headers=api_token("admin")).json()
    validate(spec)
    assert "/tmf-api/customerManagement/v4/customer" in spec["paths"]
    assert "/tmf-api/accountManagement/v4/billingAccount/{id}" in spec["paths"]
