"""Every TMF629 Customer, TMF666 BillingAccount, TMF621 TroubleTicket, TMF637 Product, TMF620 ProductOffering and
ProductOfferingPrice returned on a seeded demo database (lists, every page, and by id) validates against its official
v4 swagger definition: zero errors for every row, not one example."""

from __future__ import annotations

import json
import time
from collections import Counter
from functools import lru_cache
from typing import Any, Callable

import pytest
from conftest import NOW, TMF_SPECS
from fastapi.testclient import TestClient

from jsonschema import Draft4Validator
from opsline.demo import run_demo

KINDS = [
    # kind, list path, spec file, definition
    ("Customer", "/tmf-api/customerManagement/v4/customer", "TMF629-Customer", "Customer"),
    ("BillingAccount", "/tmf-api/accountManagement/v4/billingAccount", "TMF666-Account", "BillingAccount"),
    ("TroubleTicket", "/tmf-api/troubleTicket/v4/troubleTicket", "TMF621-TroubleTicket", "TroubleTicket"),
    ("Product", "/tmf-api/productInventory/v4/product", "TMF637-ProductInventory", "Product"),
    ("ProductOffering", "/tmf-api/productCatalogManagement/v4/productOffering", "TMF620-ProductCatalog", "ProductOffering"),
    ("ProductOfferingPrice", "/tmf-api/productCatalogManagement/v4/productOfferingPrice", "TMF620-ProductCatalog", "ProductOfferingPrice"),
]


@lru_cache(maxsize=None)
def _doc(name: str) -> dict[str, Any]:
    return json.loads(next(TMF_SPECS.glob(f"{name}-*.swagger.json")).read_text())


def validator(spec: str, definition: str) -> Callable[[Any], list[str]]:
    """The violations of one resource against its official definition, formats included (a date is not a date-time)."""
    v = Draft4Validator({"definitions": _doc(spec)["definitions"], "$ref": f"#/definitions/{definition}"}, format_checker=Draft4Validator.FORMAT_CHECKER)
    return lambda item: [f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in v.iter_errors(item)]


def schema_errors(client: TestClient, *, by_id: bool = True) -> tuple[Counter[str], Counter[str], list[str]]:
    """(errors per kind, rows checked per kind, a sample of messages) over every page of every list and every row by id."""
    errors: Counter[str] = Counter()
    rows: Counter[str] = Counter()
    sample: list[str] = []
    for kind, path, spec, definition in KINDS:
        check = validator(spec, definition)
        offset = 0
        while True:
            r = client.get(path, params={"offset": offset, "limit": 100})
            if r.status_code != 200:
                errors[kind] += 1
                sample.append(f"{kind} list: {r.status_code} {r.text[:200]}")
                break
            page = r.json()
            for item in page:
                found = check(item)
                if by_id:
                    one = client.get(f"{path}/{item['id']}")
                    found += check(one.json()) if one.status_code == 200 else [f"GET by id: {one.status_code}"]
                rows[kind] += 1
                errors[kind] += len(found)
                sample += [f"{kind} {item.get('id')}: {e}" for e in found[:3]]
            offset += len(page)
            if len(page) < 100:
                break
    return errors, rows, sample


@pytest.fixture
def demo(engine):  # type: ignore[no-untyped-def]
    return run_demo(engine, accounts=40, now=NOW)


def test_every_resource_of_a_seeded_demo_validates_against_its_official_schema(app, api_token, demo):
    c = TestClient(app)
    c.headers.update(api_token("admin"))
    t0 = time.monotonic()
    errors, rows, sample = schema_errors(c)
    print(f"\nchecked in {time.monotonic() - t0:.1f}s", "\nrows:", dict(rows), "\nerrors:", dict(errors), "\n" + "\n".join(sample[:60]))
    for kind, *_ in KINDS:
        assert rows[kind] > 0, f"the demo returned no {kind}"
    assert sum(errors.values()) == 0, "\n".join(sample[:40])


def test_offering_and_product_prices_are_references_that_resolve(app, api_token, demo):
    c = TestClient(app)
    c.headers.update(api_token("admin"))
    refs = [ref for o in c.get(KINDS[4][1], params={"limit": 400}).json() for ref in o.get("productOfferingPrice", [])]
    refs += [pp["productOfferingPrice"] for p in c.get(KINDS[3][1], params={"limit": 400}).json() for pp in p.get("productPrice", [])]
    assert len(refs) > 50
    check = validator("TMF620-ProductCatalog", "ProductOfferingPriceRef")
    for ref in refs:
        assert check(ref) == [] and set(ref) <= {"id", "href", "name", "@referredType"}, ref
        price = c.get(ref["href"])
        assert price.status_code == 200 and price.json()["id"] == ref["id"] and price.json()["name"] == ref["name"]
