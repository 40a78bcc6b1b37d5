"""TMF637 Product: PATCH corrects the permitted characteristics (msisdn, partnerLineRef), audited, and refuses every
other attribute naming it; filters and sort in SQL; TMF620 prices resolve by id with filters and sort."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from opsline.catalog import service as catalog
from opsline.core.events import Actor, AuditEvent
from opsline.customers import service as customers
from opsline.customers.schemas import AccountIn, SiteIn
from opsline.inventory import service as inventory

PRODUCTS = "/tmf-api/productInventory/v4/product"
PRICES = "/tmf-api/productCatalogManagement/v4/productOfferingPrice"


@pytest.fixture
def world(factory, now):  # type: ignore[no-untyped-def]
    actor = Actor.system("test")
    with factory.begin() as s:
        ids = []
        for name, code in (("Lerato Mokoena", "FIB-VU-100-100-24M"), ("Sipho Dlamini", "FIB-VU-100-100-24M")):
            acc = customers.create_account(s, data=AccountIn(name=name, sites=[SiteIn(line1="5 Jan Smuts Avenue", city="Johannesburg")]), now=now, actor=actor)
            s.flush()
            site = customers.account_360(s, account_id=acc.id)["sites"][0]["id"]
            p = inventory.create_product(s, account_id=acc.id, offering=catalog.get_offering_by_code(s, code=code), site_id=site, order_id=None, now=now, actor=actor)
            s.flush()
            ids.append((acc.id, p.id))
        return ids


@pytest.fixture
def client(app, api_token):  # type: ignore[no-untyped-def]
    c = TestClient(app)
    c.headers.update(api_token("admin"))
    return c


def test_patch_corrects_permitted_characteristics_audited_and_refuses_the_rest(client, world, factory):
    (acc, pid), _ = world
    href = f"{PRODUCTS}/{pid}"
    r = client.patch(href, content=json.dumps({"productCharacteristic": [{"name": "partnerLineRef", "value": "VU-778812"},
                                                                        {"name": "msisdn", "value": "082 555 1234"}]}),
                     headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    chars = {c["name"]: c["value"] for c in r.json()["productCharacteristic"]}
    assert chars["partnerLineRef"] == "VU-778812" and chars["msisdn"] == "+27825551234"
    assert client.get(href).json() == r.json()
    with factory() as s:
        ev = s.execute(select(AuditEvent).where(AuditEvent.entity_type == "product", AuditEvent.action == "details_corrected")).scalar_one()
        assert ev.after == {"msisdn": "+27825551234", "partner_line_ref": "VU-778812"} and ev.account_id == acc
    for body, field in (({"name": "Faster fibre"}, "name"), ({"status": "terminated"}, "status"),
                        ({"productCharacteristic": [{"name": "contractMonths", "value": "1"}]}, "contractMonths"),
                        ({"productCharacteristic": [{"name": "msisdn", "value": "12"}]}, "msisdn")):
        r = client.patch(href, json=body)
        assert r.status_code == 400 and field in r.text, r.text
    assert client.patch(href, json={"productCharacteristic": [{"name": "msisdn", "value": "0825551235"}]}, headers={"If-Match": '"1"'}).status_code == 409
    assert client.patch(f"{PRODUCTS}/99999999", json={}).status_code == 404


def test_product_filters_and_sort_in_sql(client, world):
    (a1, p1), (a2, p2) = world
    r = client.get(PRODUCTS, params={"relatedParty.id": a2})
    assert [p["id"] for p in r.json()] == [str(p2)] and r.headers["X-Total-Count"] == "1"
    offering = client.get(f"{PRODUCTS}/{p1}").json()["productOffering"]["id"]
    assert r.headers["X-Result-Count"] == "1"
    assert [p["id"] for p in client.get(PRODUCTS, params={"productOffering.id": offering, "sort": "id"}).json()] == [str(p1), str(p2)]
    assert [p["id"] for p in client.get(PRODUCTS, params={"sort": "-id"}).json()] == [str(p2), str(p1)]
    assert client.get(PRODUCTS, params={"sort": "colour"}).status_code == 400


def test_prices_are_filtered_sorted_and_resolve_by_id(client, world):
    (_, p1), _ = world
    ref = client.get(f"{PRODUCTS}/{p1}").json()["productPrice"][0]["productOfferingPrice"]
    price = client.get(ref["href"]).json()
    assert price["id"] == ref["id"] and price["lifecycleStatus"] == "Active" and price["productOffering"]["@referredType"] == "ProductOffering"
    offering = price["productOffering"]["id"]
    listed = client.get(PRICES, params={"productOffering.id": offering, "priceType": "recurring", "sort": "-validFor.startDateTime"})
    assert listed.status_code == 200 and listed.json() and all(p["priceType"] == "recurring" for p in listed.json())
    starts = [p["validFor"]["startDateTime"] for p in listed.json()]
    assert starts == sorted(starts, reverse=True) and listed.headers["X-Total-Count"] == str(len(starts))
    assert client.get(PRICES, params={"priceType": "gift"}).status_code == 400
    assert client.get(f"{PRICES}/99999999").status_code == 404
