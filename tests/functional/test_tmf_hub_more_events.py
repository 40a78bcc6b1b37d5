"""TMF688 events that came last: payments written set-based by a statement import (PaymentCreateEvent each), a quote's
attribute changes (QuoteAttributeValueChangeEvent), the product order's create event carrying its items, TMF620 offering
events from the /admin editor, and TMF676's absolute paymentItem hrefs. Each through a real listener registered on the
API's /hub and the worker: received once, in order, with the resource as the API serves it."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from conftest import NOW
from fastapi.testclient import TestClient
from payments_helpers import account_with_invoices, mt940
from sqlalchemy import func, select
from tmf_hub_helpers import _worker

from opsline.catalog import service as catalog
from opsline.catalog.models import ProductOffering
from opsline.core.events import Actor, AuditEvent
from opsline.core.jobs import Job
from opsline.customers import service as customers
from opsline.customers.schemas import SiteIn
from opsline.orders.models import Quote
from opsline.payments import imports
from opsline.payments.models import Payment
from opsline.tmfhub.models import HubDelivery

T = "/tmf-api"
BASE = "https://opsline.example"
PAYMENTS = f"{T}/paymentManagement/v4/payment"
QUOTES = f"{T}/quoteManagement/v4/quote"
ORDERS = f"{T}/productOrderingManagement/v4/productOrder"
OFFERINGS = f"{T}/productCatalogManagement/v4/productOffering"
CLERK = Actor(name="clerk", roles=frozenset({"debtors_clerk"}))
STAFF = Actor(name="desk", roles=frozenset({"admin"}))
MERGE = {"Content-Type": "application/merge-patch+json"}


def _listen(api, receiver, hub: str, event_types: str) -> None:  # type: ignore[no-untyped-def]
    r = api.post(f"{T}/{hub}/v4/hub", json={"callback": receiver.url(f"/{hub}"), "query": f"eventType={event_types}"})
    assert r.status_code == 201, r.text


def _deliver(factory, at=NOW + timedelta(minutes=5)) -> None:  # type: ignore[no-untyped-def]
    """Run the worker until nothing is left to do (the hub's deliveries, and what a partner simulator does meanwhile)."""
    worker, clock = _worker(factory, at)
    for _ in range(10):
        if not worker.drain():
            clock["now"] += timedelta(minutes=1)
            if not worker.drain():
                return


def _received(receiver) -> list[dict]:  # type: ignore[no-untyped-def]
    return [json.loads(raw) for _, raw in receiver.received]


def _path_only(resource: dict) -> dict:
    """The API's answer with its absolute hrefs made path-only, as an event rendered outside a request carries them."""
    return json.loads(json.dumps(resource).replace(BASE, ""))


def _customer_with_site(api, factory, name: str) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    r = api.post(f"{T}/customerManagement/v4/customer", json={"name": name, "engagedParty": {"@referredType": "Organization"},
                                                             "contactMedium": [{"mediumType": "email", "characteristic": {"emailAddress": "ap@example.co.za"}}]})
    assert r.status_code == 201, r.text
    acc = int(r.json()["id"])
    with factory.begin() as s:
        site = customers.add_site(s, account_id=acc, data=SiteIn(line1="5 Jan Smuts Avenue", city="Johannesburg", fno_coverage=["vumatel"]), now=NOW, actor=STAFF).id
        offering = catalog.get_offering_by_code(s, code="FIB-VU-200-200").id
    return acc, site, offering


# --- 1. payments written set-based by a statement import ---------------------------------------------------------

def _statement(factory) -> bytes:  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        thabo = account_with_invoices(s, now=NOW, name="Thabo Nkosi", amounts=[59900, 59900])
        lerato = account_with_invoices(s, now=NOW, name="Lerato Mokoena", amounts=[79900])
    return mt940(lines=[
        ("261120", 59900, "B001", f"/NAME/T NKOSI/ACCT/62000011111/REMI/{thabo['invoice_numbers'][0]}"),
        ("261120", 79900, "B002", f"/NAME/L MOKOENA/REMI/ACC {lerato['number']}"),
        ("261121", 5000, "B003", "/NAME/UNKNOWN PERSON/REMI/thanks"),
        ("261122", -1500, "B004", "Bank charges"),
    ])


def test_a_statement_imports_payments_set_based_and_the_hub_sends_a_create_event_for_each_once_in_order(api, factory, receiver):
    _listen(api, receiver, "paymentManagement", "PaymentCreateEvent")
    data = _statement(factory)
    with factory.begin() as s:
        res = imports.import_statement(s, data=data, filename="fnb-20261123.sta", now=NOW, actor=CLERK)
    assert res["payments"] == 3
    with factory() as s:
        ids = [str(i) for i in s.execute(select(Payment.id).order_by(Payment.id)).scalars()]
    assert len(ids) == 3
    _deliver(factory)

    got = _received(receiver)
    assert [(b["eventType"], b["event"]["payment"]["id"]) for b in got] == [("PaymentCreateEvent", i) for i in ids]
    assert len({b["eventId"] for b in got}) == 3
    for body in got:  # complete: state, account and the allocations the import made
        assert body["event"]["payment"] == _path_only(api.get(f"{PAYMENTS}/{body['event']['payment']['id']}").json())
    assert {b["event"]["payment"]["status"] for b in got} == {"done", "pending"}
    assert any(b["event"]["payment"]["paymentItem"] for b in got)


def test_a_debit_order_result_file_sends_a_create_event_for_each_paid_collection_once(api, factory, receiver):
    with factory.begin() as s:
        t = account_with_invoices(s, now=NOW, name="Debit Order Holdings", amounts=[59900, 59900])
    _listen(api, receiver, "paymentManagement", "PaymentCreateEvent")
    head = "collection_ref,account_number,invoice_number,amount,action_date,status,reason_code\n"
    data = (head + f"DO-1,{t['number']},{t['invoice_numbers'][0]},599.00,2026-11-20,paid,\n"
            + f"DO-2,{t['number']},{t['invoice_numbers'][1]},599.00,2026-11-21,paid,\n").encode()
    with factory.begin() as s:
        assert imports.import_statement(s, data=data, filename="do-results-1.csv", now=NOW, actor=CLERK)["paid"] == 2
    with factory.begin() as s:  # a later file repeating a collection pays it once, and announces it once
        again = imports.import_statement(s, data=(head + f"DO-1,{t['number']},{t['invoice_numbers'][0]},599.00,2026-11-20,paid,\n").encode(),
                                         filename="do-results-2.csv", now=NOW, actor=CLERK)
        assert again.get("paid", 0) == 0
    with factory() as s:
        ids = [str(i) for i in s.execute(select(Payment.id).order_by(Payment.id)).scalars()]
    _deliver(factory)
    got = _received(receiver)
    assert len(ids) == 2 and [b["event"]["payment"]["id"] for b in got] == ids
    assert [b["event"]["payment"]["paymentItem"][0]["item"]["id"] for b in got] == [str(i) for i in t["invoices"]]
    assert all(b["event"]["payment"] == _path_only(api.get(f"{PAYMENTS}/{b['event']['payment']['id']}").json()) for b in got)


def test_without_a_payment_listener_a_statement_import_writes_no_delivery_and_no_job(api, factory):
    data = _statement(factory)
    with factory.begin() as s:
        jobs_before = s.execute(select(func.count()).select_from(Job)).scalar_one()
        imports.import_statement(s, data=data, filename="fnb-20261123.sta", now=NOW, actor=CLERK)
    with factory() as s:
        assert s.execute(select(func.count()).select_from(HubDelivery)).scalar_one() == 0
        assert s.execute(select(func.count()).select_from(Job).where(Job.kind == "tmfhub.deliver")).scalar_one() == 0
        assert s.execute(select(func.count()).select_from(Job)).scalar_one() >= jobs_before


# --- 2. a quote's attributes ---------------------------------------------------------------------------------------

def test_a_quote_patched_publishes_an_attribute_change_once_and_a_refused_or_empty_patch_publishes_nothing(api, factory, receiver):
    acc, site, offering = _customer_with_site(api, factory, "Quote Patch (Pty) Ltd")
    _listen(api, receiver, "quoteManagement", "QuoteCreateEvent,QuoteAttributeValueChangeEvent,QuoteStateChangeEvent")
    r = api.post(QUOTES, json={"billingAccount": {"id": str(acc)}, "quoteItem": [{"id": "1", "action": "add", "productOffering": {"id": str(offering)},
                                                                                    "product": {"place": [{"id": str(site)}]}}]})
    assert r.status_code == 201, r.text
    quote = r.json()
    href = quote["href"]

    r = api.patch(href, content=json.dumps({"description": "Head office line, 24 months", "validFor": {"endDateTime": "2026-12-31T00:00:00+02:00"}}),
                  headers=MERGE)
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["description"] == "Head office line, 24 months" and patched["validFor"]["endDateTime"].startswith("2026-12-31")
    same = api.patch(href, content=json.dumps({"description": "Head office line, 24 months"}), headers=MERGE)  # nothing changes
    assert same.status_code == 200 and same.json() == patched
    assert api.patch(href, content=b"{}", headers=MERGE).status_code == 400
    bad = api.patch(href, content=json.dumps({"validFor": {"endDateTime": "next Tuesday"}}), headers=MERGE)
    assert bad.status_code == 400 and "validFor" in bad.json()["field"], bad.text
    assert api.patch(href, content=json.dumps({"stateReason": "only a reason"}), headers=MERGE).status_code == 400
    accepted = api.patch(href, content=json.dumps({"state": "accepted"}), headers=MERGE)
    assert accepted.status_code == 200, accepted.text
    closed = api.patch(href, content=json.dumps({"description": "too late"}), headers=MERGE)
    assert closed.status_code == 409, closed.text
    with factory() as s:
        q = s.get(Quote, int(quote["id"]))
        assert q.description == "Head office line, 24 months"
        trail = s.execute(select(AuditEvent.action, AuditEvent.after).where(AuditEvent.entity_type == "quote", AuditEvent.entity_id == quote["id"])
                          .order_by(AuditEvent.id)).all()
    assert [a for a, _ in trail if a == "changed"] == ["changed"]
    assert next(after for a, after in trail if a == "changed") == {"description": "Head office line, 24 months", "valid_until": "2026-12-31"}
    _deliver(factory)

    got = _received(receiver)
    assert [b["eventType"] for b in got] == ["QuoteCreateEvent", "QuoteAttributeValueChangeEvent", "QuoteStateChangeEvent",
                                             "QuoteAttributeValueChangeEvent"]
    assert all(b["event"]["quote"]["id"] == quote["id"] for b in got) and len({b["eventId"] for b in got}) == 4
    assert got[1]["event"]["quote"]["description"] == "Head office line, 24 months" and got[1]["event"]["quote"]["state"] == "inProgress"
    assert got[0]["event"]["quote"].get("description") is None  # each event keeps the quote as it was then
    assert got[-1]["event"]["quote"]["productOrder"][0]["id"] == api.get(href).json()["productOrder"][0]["id"]
    assert got[-1]["event"]["quote"] == api.get(href).json()


# --- 3. the product order's create event carries its items ------------------------------------------------------------

def test_the_product_order_create_event_carries_the_order_with_its_items_and_comes_before_its_other_events(api, factory, receiver):
    acc, site, offering = _customer_with_site(api, factory, "Order Items Logistics")
    _listen(api, receiver, "productOrderingManagement",
            "ProductOrderCreateEvent,ProductOrderStateChangeEvent,ProductOrderAttributeValueChangeEvent")
    r = api.post(ORDERS, json={"billingAccount": {"id": str(acc)},
                               "productOrderItem": [{"id": "1", "action": "add", "productOffering": {"id": str(offering)}, "product": {"place": [{"id": str(site)}]}}]})
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["productOrderItem"]
    _deliver(factory)

    got = _received(receiver)
    assert got[0]["eventType"] == "ProductOrderCreateEvent" and [b["eventType"] for b in got].count("ProductOrderCreateEvent") == 1
    created = got[0]["event"]["productOrder"]
    assert created["id"] == order["id"]
    assert created["productOrderItem"] == order["productOrderItem"]  # the items placed in the same transaction
    assert created["productOrderItem"][0]["product"]["href"].endswith(order["productOrderItem"][0]["product"]["id"])
    assert all(b["event"]["productOrder"]["id"] == order["id"] for b in got) and len({b["eventId"] for b in got}) == len(got)
    assert len(got) >= 2  # and the changes that followed, after it
    assert got[-1]["event"]["productOrder"] == api.get(order["href"]).json()


# --- 4. TMF676 paymentItem.item.href ------------------------------------------------------------------------------

def test_a_payment_names_the_customer_bill_it_pays_with_an_absolute_href(api, factory):
    with factory.begin() as s:
        acc = account_with_invoices(s, now=NOW, name="Absolute Href Trading", amounts=[59900])
    r = api.post(PAYMENTS, json={"correlatorId": "href-1", "account": {"id": str(acc["id"])}, "totalAmount": {"unit": "ZAR", "value": 599.0},
                                 "paymentMethod": {"name": "EFT", "@type": "BankAccountTransfer"},
                                 "paymentItem": [{"item": {"id": str(acc["invoices"][0]), "@referredType": "CustomerBill"}}]})
    assert r.status_code == 201, r.text
    bill = f"{BASE}{T}/customerBillManagement/v4/customerBill/{acc['invoices'][0]}"
    for answer in (r.json(), api.get(r.json()["href"]).json(), api.get(PAYMENTS, params={"account.id": str(acc["id"])}).json()[0]):
        assert [i["item"]["href"] for i in answer["paymentItem"]] == [bill]
    assert api.get(bill).status_code == 200


# --- 5. TMF620 offerings edited at /admin -------------------------------------------------------------------------

def _admin_form(c: TestClient, url: str) -> str:
    m = re.search(r'name="csrftoken"[^>]*value="([^"]+)"', c.get(url).text)
    assert m, f"no csrftoken on {url}"
    return m.group(1)


def test_an_offering_created_and_edited_at_admin_sends_the_tmf620_create_attribute_and_state_events_in_order(api, client_as, factory, receiver):
    _listen(api, receiver, "productCatalogManagement",
            "ProductOfferingCreateEvent,ProductOfferingAttributeValueChangeEvent,ProductOfferingStateChangeEvent")
    c = client_as("admin")
    tok = _admin_form(c, "/admin/product-offering/create")
    assert 'name="created_at"' not in c.get("/admin/product-offering/create").text  # stamped when saved
    fields = {"code": "FIB-TEST-100", "name": "Fibre 100/100 test", "kind": "fibre", "download_mbps": "100", "upload_mbps": "100",
              "contract_months": "0", "active": "on", "customer_kind": "any", "csrftoken": tok}
    made = c.post("/admin/product-offering/create", data=fields, follow_redirects=False)
    assert made.status_code == 303, made.text[:2000]
    with factory() as s:
        oid = s.execute(select(ProductOffering.id).where(ProductOffering.code == "FIB-TEST-100")).scalar_one()
    renamed = c.post(f"/admin/product-offering/edit?pk={oid}", data={**fields, "name": "Fibre 100/100 Home"}, follow_redirects=False)
    assert renamed.status_code == 303, renamed.text[:2000]
    untouched = c.post(f"/admin/product-offering/edit?pk={oid}", data={**fields, "name": "Fibre 100/100 Home"}, follow_redirects=False)
    assert untouched.status_code == 303
    retired = {k: v for k, v in fields.items() if k != "active"} | {"name": "Fibre 100/100 Home"}
    assert c.post(f"/admin/product-offering/edit?pk={oid}", data=retired, follow_redirects=False).status_code == 303
    _deliver(factory)

    got = _received(receiver)
    assert [b["eventType"] for b in got] == ["ProductOfferingCreateEvent", "ProductOfferingAttributeValueChangeEvent", "ProductOfferingStateChangeEvent",
                                             "ProductOfferingAttributeValueChangeEvent"]  # retiring also makes it not sellable
    assert all(b["event"]["productOffering"]["id"] == str(oid) for b in got) and len({b["eventId"] for b in got}) == 4
    assert got[0]["event"]["productOffering"]["name"] == "Fibre 100/100 test" and got[0]["event"]["productOffering"]["lifecycleStatus"] == "Launched"
    assert got[1]["event"]["productOffering"]["name"] == "Fibre 100/100 Home"
    assert got[-1]["event"]["productOffering"] == api.get(f"{OFFERINGS}/{oid}").json()
    assert got[-1]["event"]["productOffering"]["lifecycleStatus"] == "Retired"
