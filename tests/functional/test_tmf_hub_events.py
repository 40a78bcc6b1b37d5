"""TMF688 creates and attribute changes: each hub's listener receives the create event and an attribute-change event of
its resource, once each, in order, carrying the resource as the API's GET serves it (published by the owning services
as declared domain events, delivered through the job table by the worker)."""

import json
from datetime import timedelta

from conftest import NOW
from tmf_hub_helpers import _worker

from opsline.catalog import service as catalog
from opsline.core import domain_events
from opsline.core.events import Actor
from opsline.customers.schemas import AccountIn, AccountUpdate, SiteIn
from opsline.customers import service as customers
from opsline.payments import refunds
from opsline.core.money import Money
from opsline.tmfhub.catalogue import NOT_YET_PUBLISHED, RULES

T = "/tmf-api"
CUSTOMERS = f"{T}/customerManagement/v4/customer"
ORDERS = f"{T}/productOrderingManagement/v4/productOrder"
QUOTES = f"{T}/quoteManagement/v4/quote"
PAYMENTS = f"{T}/paymentManagement/v4/payment"
STAFF = Actor(name="desk", roles=frozenset({"admin"}))
HUBS = {  # api -> the event types its listener asks for
    "customerManagement": "CustomerCreateEvent,CustomerAttributeValueChangeEvent",
    "accountManagement": "BillingAccountAttributeValueChangeEvent",
    "productOrderingManagement": "ProductOrderCreateEvent,ProductOrderAttributeValueChangeEvent",
    "quoteManagement": "QuoteCreateEvent",
    "productInventory": "ProductCreateEvent,ProductAttributeValueChangeEvent",
    "serviceOrdering": "ServiceOrderCreateEvent,ServiceOrderAttributeValueChangeEvent",
    "paymentManagement": "PaymentCreateEvent,RefundCreateEvent",
}


def test_every_create_and_attribute_change_rule_names_a_declared_domain_event_and_its_hubs_event_type():
    declared = domain_events.declared_events()
    for rule in RULES:
        if "*" not in rule.domain_event:
            assert rule.domain_event in declared, rule.domain_event
    fixed = {rule.event_type(rule.domain_event, {"id": 1})[0] for rule in RULES if "*" not in rule.domain_event and rule.domain_event.split(".")[0] != "case"}
    assert {"ProductOrderCreateEvent", "ProductOrderAttributeValueChangeEvent", "QuoteCreateEvent", "CustomerCreateEvent",
            "CustomerAttributeValueChangeEvent", "BillingAccountAttributeValueChangeEvent", "ProductCreateEvent",
            "ProductAttributeValueChangeEvent", "ServiceOrderCreateEvent", "ServiceOrderAttributeValueChangeEvent",
            "PaymentCreateEvent", "RefundCreateEvent"} <= fixed
    assert not fixed & set(NOT_YET_PUBLISHED)


def test_each_hub_receives_the_create_and_an_attribute_change_of_its_resource_once_in_order_as_the_api_serves_it(api, factory, receiver):
    listeners = {}
    for name, types in HUBS.items():
        r = api.post(f"{T}/{name}/v4/hub", json={"callback": receiver.url(f"/{name}"), "query": f"eventType={types}"})
        assert r.status_code == 201, r.text
        listeners[name] = r.json()

    # TMF629: a customer is created, then renamed
    r = api.post(CUSTOMERS, json={"name": "Naidoo Logistics", "engagedParty": {"@referredType": "Organization"},
                                  "contactMedium": [{"mediumType": "email", "characteristic": {"emailAddress": "ap@naidoo.example"}}]})
    assert r.status_code == 201, r.text
    acc = int(r.json()["id"])
    r = api.patch(f"{CUSTOMERS}/{acc}", content=b'{"name": "Naidoo Logistics Group"}', headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    customer_now = r.json()
    with factory.begin() as s:
        site = customers.add_site(s, account_id=acc, data=SiteIn(line1="5 Jan Smuts Avenue", city="Johannesburg", fno_coverage=["vumatel"]), now=NOW, actor=STAFF).id
        offering = catalog.get_offering_by_code(s, code="FIB-VU-200-200").id

    # TMF622/637/641: an order for a fibre line creates the order, its product and the partner's service order
    r = api.post(ORDERS, json={"billingAccount": {"id": str(acc)},
                               "productOrderItem": [{"id": "1", "action": "add", "productOffering": {"id": str(offering)}, "product": {"place": [{"id": str(site)}]}}]})
    assert r.status_code == 201, r.text
    order = r.json()
    product_href = order["productOrderItem"][0]["product"]["href"]
    product_id = product_href.rsplit("/", 1)[-1]
    r = api.patch(product_href, content=json.dumps({"productCharacteristic": [{"name": "partnerLineRef", "value": "VU-778812"}]}),
                  headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    product_now = r.json()

    # TMF648 and TMF676
    r = api.post(QUOTES, json={"billingAccount": {"id": str(acc)}, "quoteItem": [{"id": "1", "action": "add", "productOffering": {"id": str(offering)},
                                                                                      "product": {"place": [{"id": str(site)}]}}]})
    assert r.status_code == 201, r.text
    quote = r.json()
    r = api.post(PAYMENTS, json={"correlatorId": "hub-1", "account": {"id": str(acc)}, "totalAmount": {"unit": "ZAR", "value": 250.0},
                                 "paymentMethod": {"name": "EFT", "@type": "BankAccountTransfer"}, "paymentDate": "2026-11-20T10:30:00+02:00"})
    assert r.status_code == 201, r.text
    payment = r.json()
    with factory.begin() as s:
        refund = refunds.request_refund(s, amount=Money.of("50.00", "ZAR"), reason="overpaid", now=NOW, actor=STAFF, account_id=acc,
                                        payee_name="Naidoo Logistics", payee_account="62000011111")

    worker, clock = _worker(factory, NOW + timedelta(minutes=5))
    worker.drain()  # the hub deliveries, and the partner delivery (which changes the service order: delivered, its reference)
    clock["now"] += timedelta(minutes=1)
    worker.drain()

    got: dict[str, list[dict]] = {}
    for headers, raw in receiver.received:
        body = json.loads(raw)
        got.setdefault(body["domain"], []).append(body)
    seen = {name: [(b["eventType"], next(iter(b["event"].values()))["id"]) for b in bodies] for name, bodies in got.items()}
    assert seen["customerManagement"] == [("CustomerCreateEvent", str(acc)), ("CustomerAttributeValueChangeEvent", str(acc))]
    assert seen["accountManagement"] == [("BillingAccountAttributeValueChangeEvent", str(acc))]
    # its item went inProgress when placed and again changed when the partner took the service order: two attribute changes
    assert seen["productOrderingManagement"] == [("ProductOrderCreateEvent", order["id"])] + [("ProductOrderAttributeValueChangeEvent", order["id"])] * 2
    assert seen["productInventory"] == [("ProductCreateEvent", product_id), ("ProductAttributeValueChangeEvent", product_id)]
    so_id = seen["serviceOrdering"][0][1]
    assert seen["serviceOrdering"] == [("ServiceOrderCreateEvent", so_id), ("ServiceOrderAttributeValueChangeEvent", so_id)]
    assert seen["quoteManagement"] == [("QuoteCreateEvent", quote["id"])]
    assert seen["paymentManagement"] == [("PaymentCreateEvent", payment["id"]), ("RefundCreateEvent", str(refund["refund_id"]))]
    assert len({b["eventId"] for bodies in got.values() for b in bodies}) == len(receiver.received)  # each once

    # the resource in the event is what the API's GET answers (the latest change is what the API serves now)
    assert got["customerManagement"][-1]["event"]["customer"] == customer_now == api.get(f"{CUSTOMERS}/{acc}").json()
    assert got["customerManagement"][-1]["event"]["customer"]["name"] == "Naidoo Logistics Group"
    assert got["customerManagement"][0]["event"]["customer"]["name"] == "Naidoo Logistics"
    assert got["productInventory"][-1]["event"]["product"] == product_now
    assert got["quoteManagement"][0]["event"]["quote"]["id"] == quote["id"] and got["quoteManagement"][0]["event"]["quote"]["href"] == quote["href"]
    so = api.get(f"{T}/serviceOrdering/v4/serviceOrder/{so_id}").json()
    assert got["serviceOrdering"][-1]["event"]["serviceOrder"]["externalId"] == so["externalId"]
    assert got["paymentManagement"][0]["event"]["payment"]["totalAmount"] == payment["totalAmount"]


def test_the_domain_events_carry_the_id_and_the_names_of_the_changed_attributes(factory):
    with factory.begin() as s:
        with domain_events.collect(s):
            acc = customers.create_account(s, data=AccountIn(name="Dlamini Holdings"), now=NOW, actor=STAFF)
            customers.update_account(s, account_id=acc.id, data=AccountUpdate(version=acc.version, email="ap@dlamini.example", phone="0115550000"),
                                     now=NOW, actor=STAFF)
            pending = dict(s.info["_domain_events_pending"])
    assert pending[("customers.account_created", str(acc.id))].payload == {"id": acc.id}
    assert pending[("customers.account_changed", str(acc.id))].payload == {"id": acc.id, "attributes": ["email", "phone"]}
    with factory.begin() as s:
        with domain_events.collect(s):
            customers.update_account(s, account_id=acc.id, data=AccountUpdate(version=customers.get_account(s, account_id=acc.id).version, email="ap@dlamini.example"),
                                     now=NOW, actor=STAFF)
            assert s.info["_domain_events_pending"] == {}  # nothing changed: nothing published
