"""TMF630 on the orders, cancellation, service-order, payment and bill lists: filters on documented (and nested) attributes
and `sort` done in the query, X-Total-Count / X-Result-Count on every list, DELETE of a product order refused with 409
(cancelProductOrder cancels it), PATCH as `application/merge-patch+json`."""

from __future__ import annotations

import pytest
import test_orders_tmf_schemas
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from opsline.orders.models import ProductOrder

ORDERS = "/tmf-api/productOrderingManagement/v4/productOrder"
CANCEL = "/tmf-api/productOrderingManagement/v4/cancelProductOrder"
QUOTES = "/tmf-api/quoteManagement/v4/quote"
SERVICE_ORDERS = "/tmf-api/serviceOrdering/v4/serviceOrder"
PAYMENTS = "/tmf-api/paymentManagement/v4/payment"
REFUNDS = "/tmf-api/paymentManagement/v4/refund"
BILLS = "/tmf-api/customerBillManagement/v4/customerBill"
RATES = "/tmf-api/customerBillManagement/v4/appliedCustomerBillingRate"
world = test_orders_tmf_schemas.world  # an account with a site, an order in progress, a quote, a delivered service order


@pytest.fixture
def c(app, api_token) -> TestClient:  # type: ignore[no-untyped-def]
    client = TestClient(app)
    client.headers.update(api_token("admin"))
    return client


def _order(c: TestClient, world: dict, external_id: str) -> dict:  # type: ignore[type-arg]
    body = {"externalId": external_id, "billingAccount": {"id": str(world["account"])},
            "productOrderItem": [{"id": "1", "action": "add", "productOffering": {"id": str(world["offering"])},
                                  "product": {"place": [{"id": str(world["site"]), "role": "installationAddress"}]}}]}
    r = c.post(ORDERS, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_product_orders_filter_by_nested_attributes_and_dates_and_sort_in_the_query(c, world, clock):
    from datetime import timedelta

    first = world["order"]
    clock.at = clock.at + timedelta(hours=3)
    second = _order(c, world, "CRM-2")
    everything = c.get(ORDERS)
    assert everything.headers["X-Total-Count"] == "2" and everything.headers["X-Result-Count"] == "2"
    assert [o["id"] for o in everything.json()] == [second["id"], str(first)]  # newest first
    assert [o["id"] for o in c.get(ORDERS, params={"sort": "orderDate"}).json()] == [str(first), second["id"]]
    assert [o["id"] for o in c.get(ORDERS, params={"sort": "-orderDate"}).json()] == [second["id"], str(first)]
    later = c.get(ORDERS, params={"orderDate.gt": (clock.at - timedelta(hours=1)).isoformat()})
    assert [o["id"] for o in later.json()] == [second["id"]] and later.headers["X-Total-Count"] == "1"
    assert [o["id"] for o in c.get(ORDERS, params={"orderDate.lt": (clock.at - timedelta(hours=1)).isoformat()}).json()] == [str(first)]
    assert len(c.get(ORDERS, params={"relatedParty.id": world["account"]}).json()) == 2
    assert c.get(ORDERS, params={"relatedParty.id": world["account"] + 1000}).json() == []
    assert [o["id"] for o in c.get(ORDERS, params={"billingAccount.id": world["account"], "externalId": "CRM-2"}).json()] == [second["id"]]
    assert c.get(ORDERS, params={"state": "completed"}).headers["X-Total-Count"] == "0"
    page = c.get(ORDERS, params={"limit": 1, "offset": 1, "sort": "id"})
    assert [o["id"] for o in page.json()] == [second["id"]] and page.headers["X-Total-Count"] == "2" and page.headers["X-Result-Count"] == "1"
    bad = c.get(ORDERS, params={"sort": "colour"})
    assert bad.status_code == 400 and "colour" in bad.text
    assert c.get(ORDERS, params={"orderDate.gt": "yesterday"}).status_code == 400


def test_a_product_order_is_never_deleted_and_stays_readable(c, world, factory):
    r = c.delete(f"{ORDERS}/{world['order']}")
    assert r.status_code == 409 and "cancelProductOrder" in r.json()["detail"]
    assert c.get(f"{ORDERS}/{world['order']}").status_code == 200
    assert c.delete(f"{ORDERS}/999999").status_code == 404
    with factory() as s:
        assert s.execute(select(func.count()).select_from(ProductOrder)).scalar_one() == 1


def test_a_product_order_is_held_and_resumed_by_merge_patch(c, world):
    held = c.patch(f"{ORDERS}/{world['order']}", content='{"state": "held", "stateReason": "customer away"}',
                   headers={"Content-Type": "application/merge-patch+json"})
    assert held.status_code == 200, held.text
    assert held.json()["state"] == "held"
    resumed = c.patch(f"{ORDERS}/{world['order']}", content='{"state": "inProgress"}', headers={"Content-Type": "application/merge-patch+json"})
    assert resumed.status_code == 200 and resumed.json()["state"] == "inProgress"


def test_cancel_product_orders_filter_by_order_and_state(c, world):
    other = _order(c, world, "CRM-3")
    for oid in (str(world["order"]), other["id"]):
        assert c.post(CANCEL, json={"productOrder": {"id": oid}, "cancellationReason": "duplicate"}).status_code == 201
    mine = c.get(CANCEL, params={"productOrder.id": other["id"]})
    assert [t["productOrder"]["id"] for t in mine.json()] == [other["id"]] and mine.headers["X-Total-Count"] == "1"
    states = {t["state"] for t in c.get(CANCEL).json()}
    for state in states:
        only = c.get(CANCEL, params={"state": state}).json()
        assert only and {t["state"] for t in only} == {state}
    assert [t["id"] for t in c.get(CANCEL, params={"sort": "id"}).json()] == sorted((t["id"] for t in c.get(CANCEL).json()), key=int)


def test_payments_filter_by_account_status_and_date_and_sort_by_amount(c, world):
    for corr, value in (("p1", 100), ("p2", 250)):
        r = c.post(PAYMENTS, json={"correlatorId": corr, "account": {"id": str(world["account"])}, "totalAmount": {"unit": "ZAR", "value": value},
                                   "paymentMethod": {"name": "EFT", "@type": "BankAccountTransfer"}, "paymentDate": "2026-11-20T10:30:00+02:00"})
        assert r.status_code == 201, r.text
        assert r.json()["paymentDate"] == "2026-11-20T10:30:00+02:00"
    listed = c.get(PAYMENTS, params={"account.id": world["account"], "sort": "-totalAmount.value"})
    assert [p["totalAmount"]["value"] for p in listed.json()] == [250.0, 100.0] and listed.headers["X-Total-Count"] == "2"
    assert c.get(PAYMENTS, params={"account.id": world["account"] + 1000}).headers["X-Total-Count"] == "0"
    status = listed.json()[0]["status"]
    assert {p["status"] for p in c.get(PAYMENTS, params={"status": status}).json()} == {status}
    assert c.get(PAYMENTS, params={"paymentDate.gt": "2026-11-20"}).json() == []
    assert len(c.get(PAYMENTS, params={"paymentDate.gt": "2026-11-19", "paymentDate.lt": "2026-11-21"}).json()) == 2
    assert [p["correlatorId"] for p in c.get(PAYMENTS, params={"correlatorId": "p1"}).json()] == ["p1"]


@pytest.mark.parametrize("path", [ORDERS, CANCEL, QUOTES, SERVICE_ORDERS, PAYMENTS, REFUNDS, BILLS, RATES])
def test_every_list_answers_with_total_and_result_counts(c, world, path):
    r = c.get(path, params={"limit": 1})
    assert r.status_code == 200, r.text
    assert int(r.headers["X-Result-Count"]) == len(r.json()) <= 1
    assert int(r.headers["X-Total-Count"]) >= len(r.json())
