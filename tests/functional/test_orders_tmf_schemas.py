"""Every TMF resource the orders, inventory, catalog and partners APIs return validates against the official v4
swagger definitions in ../shared/tmf/specs (with `$ref`s resolved into `definitions`); the official TMF622 sample
order is accepted (ids adjusted to seeded data)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jsonschema
import pytest
from conftest import TMF_SAMPLES, TMF_SPECS
from fastapi.testclient import TestClient

from opsline.catalog import service as catalog
from opsline.core.events import Actor
from opsline.core.localtime import zone
from opsline.customers import service as customers
from opsline.customers.schemas import AccountIn, SiteIn
from opsline.orders import service as orders
from opsline.orders.schemas import OrderIn, OrderItemIn, QuoteIn
from opsline.partners import service as partners

SPECS, SAMPLES = TMF_SPECS, TMF_SAMPLES
TZ = zone("Africa/Johannesburg")


@lru_cache(maxsize=None)
def _spec(name: str) -> dict[str, Any]:
    return json.loads(next(SPECS.glob(f"{name}-*.swagger.json")).read_text())


def _validate(spec: str, definition: str, body: dict[str, Any]) -> None:
    doc = _spec(spec)
    schema = {"$ref": f"#/definitions/{definition}", "definitions": doc["definitions"]}
    jsonschema.Draft4Validator(schema).validate(body)


@pytest.fixture
def world(factory, now):  # type: ignore[no-untyped-def]
    """An account with an active fibre line, an order in progress, a quote and a delivered service order."""
    actor = Actor.system("test")
    with factory.begin() as s:
        acc = customers.create_account(s, data=AccountIn(name="Lerato Mokoena", sites=[SiteIn(line1="5 Jan Smuts Avenue", city="Johannesburg", fno_coverage=["vumatel"])]),
                                       now=now, actor=actor)
        s.flush()
        site = customers.account_360(s, account_id=acc.id)["sites"][0]["id"]
        offering = catalog.get_offering_by_code(s, code="FIB-VU-100-100-24M").id
        order = orders.place_order(s, data=OrderIn(account_id=acc.id, items=[OrderItemIn(offering_id=offering, site_id=site)]), now=now, tz=TZ, actor=actor)
        s.flush()
        item = orders.order_detail(s, order_id=order.id, now=now, tz=TZ)["items"][0]
        partners.deliver(s, service_order_id=item["partner_service_order_id"], now=now, tz=TZ)
        quote = orders.create_quote(s, data=QuoteIn(account_id=acc.id, items=[OrderItemIn(offering_id=offering, site_id=site)]), now=now, tz=TZ, actor=actor)
        s.flush()
        return {"account": acc.id, "site": site, "offering": offering, "order": order.id, "quote": quote.id, "product": item["result_product_id"],
                "service_order": item["partner_service_order_id"]}


@pytest.mark.parametrize("path,spec,definition", [
    ("/tmf-api/productOrderingManagement/v4/productOrder/{order}", "TMF622-ProductOrder", "ProductOrder"),
    ("/tmf-api/quoteManagement/v4/quote/{quote}", "TMF648-Quote", "Quote"),
    ("/tmf-api/productInventory/v4/product/{product}", "TMF637-ProductInventory", "Product"),
    ("/tmf-api/productCatalogManagement/v4/productOffering/{offering}", "TMF620-ProductCatalog", "ProductOffering"),
    ("/tmf-api/serviceOrdering/v4/serviceOrder/{service_order}", "TMF641-ServiceOrdering", "ServiceOrder"),
])
def test_each_resource_and_its_list_validate_against_the_official_schema(app, api_token, world, path, spec, definition):
    c = TestClient(app)
    c.headers.update(api_token("admin"))
    r = c.get(path.format(**world))
    assert r.status_code == 200, r.text
    _validate(spec, definition, r.json())
    listed = c.get(path.rsplit("/", 1)[0])
    assert listed.status_code == 200 and listed.json()
    for body in listed.json():
        _validate(spec, definition, body)


def test_the_official_tmf622_sample_order_is_accepted_with_seeded_ids(app, api_token, world):
    sample = json.loads((SAMPLES / "TMF622-ProductOrder.example.json").read_text())
    keep = {k: v for k, v in sample.items() if k in ("externalId", "description", "priority", "requestedStartDate", "requestedCompletionDate", "note")}
    item = {"id": "1", "action": "add", "quantity": 1, "productOffering": {"id": str(world["offering"])}, "product": {"place": [{"id": str(world["site"]), "role": "installationAddress"}]}}
    body = keep | {"billingAccount": {"id": str(world["account"])}, "productOrderItem": [item]}
    body.pop("requestedStartDate", None)
    body.pop("requestedCompletionDate", None)
    c = TestClient(app)
    c.headers.update(api_token("admin"))
    r = c.post("/tmf-api/productOrderingManagement/v4/productOrder", json=body)
    assert r.status_code in (201, 409), r.text  # 409 only if the sample's externalId were already used
    _validate("TMF622-ProductOrder", "ProductOrder", r.json()) if r.status_code == 201 else None


def test_the_api_alias_answers_as_the_tmf_api_paths(app, api_token, world):
    c = TestClient(app)
    c.headers.update(api_token("admin"))
    for path in ("/tmf-api/productOrderingManagement/v4/productOrder", "/tmf-api/quoteManagement/v4/quote", "/tmf-api/serviceOrdering/v4/serviceOrder"):
        alias = c.get(path.replace("/tmf-api/", "/api/", 1))
        assert alias.status_code == 200 and alias.json() == c.get(path).json() != []


@pytest.mark.parametrize("path,field", [
    ("/tmf-api/productOrderingManagement/v4/productOrder", "state"), ("/tmf-api/quoteManagement/v4/quote", "state"),
    ("/tmf-api/productInventory/v4/product", "status"), ("/tmf-api/productCatalogManagement/v4/productOffering", "name"),
    ("/tmf-api/serviceOrdering/v4/serviceOrder", "state"),
])
def test_every_list_pages_with_total_and_result_counts_and_honours_fields(app, api_token, world, path, field):
    c = TestClient(app)
    c.headers.update(api_token("admin"))
    full = c.get(path)
    total = int(full.headers["X-Total-Count"])
    assert total >= 1 and int(full.headers["X-Result-Count"]) == len(full.json()) == min(total, 100)
    narrowed = c.get(path, params={"fields": field, "limit": 1, "offset": 0})
    (one,) = narrowed.json()
    assert set(one) <= {"id", "href", "@type", field} and field in one
    assert narrowed.headers["X-Total-Count"] == str(total) and narrowed.headers["X-Result-Count"] == "1"
    assert c.get(path, params={"offset": total}).json() == []
