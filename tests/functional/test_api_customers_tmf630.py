"""TMF629/TMF666 lists follow TMF630 (fields, offset/limit, X-Total-Count/X-Result-Count) and conform to the official
v4 swagger documents; bad paging, filters and field lists are 422 problem+json."""


import pytest
from conftest import TMF_SPECS
from fastapi.testclient import TestClient

from opsline.api.tmf_spec import list_path, resource_validator

SPECS = TMF_SPECS
TMF629 = SPECS / "TMF629-Customer-v4.0.0.swagger.json"
TMF666 = SPECS / "TMF666-Account-v4.0.0.swagger.json"


def _client(app, headers):  # type: ignore[no-untyped-def]
    c = TestClient(app)
    c.headers.update(headers)
    return c


def _customer(name: str, email: str) -> dict:
    return {"name": name, "engagedParty": {"@referredType": "Organization"},
            "contactMedium": [{"mediumType": "email", "characteristic": {"emailAddress": email}},
                              {"mediumType": "postalAddress", "characteristic": {"street1": "4 Loveday Street", "city": "Johannesburg", "postCode": "2001"}}],
            "characteristic": [{"name": "accountType", "value": "b2b"}, {"name": "segment", "value": "sme"}]}


@pytest.fixture
def api(app, api_token):  # type: ignore[no-untyped-def]
    c = _client(app, api_token("admin"))
    for i in range(7):
        r = c.post(list_path(TMF629, "customer"), json=_customer(f"Mokoena Freight {i}", f"ap{i}@mokoena.co.za"))
        assert r.status_code == 201, r.text
    return c


def test_customer_and_billing_account_lists_conform_to_the_official_tmf_schemas(api):
    customers = api.get(list_path(TMF629, "customer"))
    assert customers.status_code == 200
    assert resource_validator(TMF629, "Customer")(customers.json()) == []
    accounts = api.get(list_path(TMF666, "billingAccount"))
    assert resource_validator(TMF666, "BillingAccount")(accounts.json()) == []
    one = api.get(customers.json()[0]["href"]).json()
    assert resource_validator(TMF629, "Customer")(one) == []
    assert resource_validator(TMF666, "BillingAccount")(api.get(one["account"][0]["href"]).json()) == []


def test_offset_and_limit_page_the_list_and_the_headers_count_page_and_total(api):
    first = api.get(list_path(TMF629, "customer"), params={"offset": 0, "limit": 3})
    second = api.get(list_path(TMF629, "customer"), params={"offset": 3, "limit": 3})
    last = api.get(list_path(TMF629, "customer"), params={"offset": 6, "limit": 3})
    assert [r.headers["X-Result-Count"] for r in (first, second, last)] == ["3", "3", "1"]
    assert {r.headers["X-Total-Count"] for r in (first, second, last)} == {"7"}
    ids = [c["id"] for r in (first, second, last) for c in r.json()]
    assert len(ids) == len(set(ids)) == 7
    beyond = api.get(list_path(TMF629, "customer"), params={"offset": 50, "limit": 3})
    assert beyond.json() == [] and beyond.headers["X-Total-Count"] == "7"


def test_fields_narrows_each_item_and_keeps_id_href_and_type(api):
    r = api.get(list_path(TMF629, "customer"), params={"fields": "name,contactMedium.mediumType", "limit": 2})
    items = r.json()
    assert len(items) == 2
    for item in items:
        assert set(item) == {"id", "href", "@type", "name", "contactMedium"}
        assert all(set(m) == {"mediumType"} for m in item["contactMedium"])
    assert resource_validator(TMF629, "Customer", partial=True)(items) == []
    one = api.get(items[0]["href"], params={"fields": "status"}).json()
    assert set(one) == {"id", "href", "@type", "status"}


def test_name_filter_finds_by_name_words_and_exactly_by_account_number(api):
    by_name = api.get(list_path(TMF666, "billingAccount"), params={"name": "mokoena freight 3"}).json()
    assert [a["description"] for a in by_name] == ["Mokoena Freight 3"]
    number = by_name[0]["name"]
    by_number = api.get(list_path(TMF666, "billingAccount"), params={"name": number})
    assert [a["name"] for a in by_number.json()] == [number] and by_number.headers["X-Total-Count"] == "1"
    suspended = api.get(list_path(TMF666, "billingAccount"), params={"state": "suspended"})
    assert suspended.json() == [] and suspended.headers["X-Total-Count"] == "0"


@pytest.mark.parametrize("params,field", [
    ({"limit": 0}, "limit"), ({"limit": 5000}, "limit"), ({"offset": -1}, "offset"),
    ({"state": "frozen"}, "state"), ({"fields": "name;drop table"}, "fields"),
])
def test_bad_paging_filters_and_fields_are_400_problem_json_naming_the_parameter(api, params, field):
    r = api.get(list_path(TMF666, "billingAccount"), params=params)
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
    assert field in r.json()["detail"]


def test_the_api_alias_answers_like_tmf_api(api):
    assert api.get("/api/customerManagement/v4/customer").json() == api.get(list_path(TMF629, "customer")).json()
