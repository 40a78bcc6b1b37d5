"""TMF622 cancelProductOrder: a task that cancels a product order; pendingCancellation (task inProgress) while the FNO
still holds the service order it received, done when the FNO lets go; an order opened by a TMF622 delete withdraws its
journey; bad input (unknown order, an order already completed) is a problem+json and writes nothing."""

from __future__ import annotations

import json

import jsonschema
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from opsline.cancellations.models import CancellationJourney, CancelProductOrder
from opsline.catalog import service as catalog
from opsline.core.events import Actor
from opsline.core.localtime import zone
from opsline.customers import service as customers
from opsline.customers.schemas import AccountIn, SiteIn
from opsline.orders.models import ProductOrder, ProductOrderItem
from opsline.partners import service as partners
from opsline.partners.models import Partner, PartnerServiceOrder
from tests.conftest import NOW, TMF_SPECS
from tests.functional.test_cancellations_api import _delete
from tests.functional.test_cancellations_pages import _line

CANCEL = "/tmf-api/productOrderingManagement/v4/cancelProductOrder"
ORDERS = "/tmf-api/productOrderingManagement/v4/productOrder"
TZ = zone("Africa/Johannesburg")


def _schema():  # type: ignore[no-untyped-def]
    spec = json.loads((TMF_SPECS / "TMF622-ProductOrder-v4.0.0.swagger.json").read_text())
    return {**spec["definitions"]["CancelProductOrder"], "definitions": spec["definitions"]}


def _client(app, headers):  # type: ignore[no-untyped-def]
    c = TestClient(app)
    c.headers.update(headers)
    return c


def _new_fibre_order(factory) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    from opsline.orders import service as orders
    from opsline.orders.schemas import OrderIn, OrderItemIn

    with factory.begin() as s:
        s.execute(Partner.__table__.update().where(Partner.code == "openserve").values(simulator_reject_percent=0, simulator_outage=False))
        acc = customers.create_account(s, data=AccountIn(name="Sipho Dube", sites=[SiteIn(line1="1 Main Road", city="Johannesburg", fno_coverage=["openserve"])]),
                                       now=NOW, actor=Actor.system("test"))
        s.flush()
        site = customers.account_360(s, account_id=acc.id)["sites"][0]["id"]
        order = orders.place_order(s, data=OrderIn(account_id=acc.id, items=[OrderItemIn(offering_id=catalog.get_offering_by_code(s, code="FIB-OS-100-100-24M").id,
                                                                                        site_id=site)]), now=NOW, tz=TZ, actor=Actor.system("test"))
        so = s.execute(select(ProductOrderItem.partner_service_order_id).where(ProductOrderItem.order_id == order.id)).scalar_one()
        return order.id, so


def test_an_order_the_fno_has_not_received_is_cancelled_at_once_and_the_task_is_done(app, api_token, factory):
    order_id, _ = _new_fibre_order(factory)
    r = _client(app, api_token("billing_analyst")).post(CANCEL, json={"productOrder": {"id": str(order_id)}, "cancellationReason": "customer changed plans"})
    assert r.status_code == 201, r.text
    jsonschema.validate(r.json(), _schema())
    assert r.json()["state"] == "done" and r.json()["effectiveCancellationDate"]
    with factory() as s:
        assert s.get(ProductOrder, order_id).state == "cancelled"


def test_while_the_fno_holds_the_order_it_is_pending_cancellation_until_the_fno_lets_go(app, api_token, factory):
    order_id, so_id = _new_fibre_order(factory)
    with factory.begin() as s:
        partners.deliver(s, service_order_id=so_id, now=NOW, tz=TZ)  # the FNO received it
    c = _client(app, api_token("billing_analyst"))
    r = c.post(CANCEL, json={"productOrder": {"id": str(order_id)}})
    assert r.status_code == 201 and r.json()["state"] == "inProgress"
    with factory() as s:
        assert s.get(ProductOrder, order_id).state == "pendingCancellation"
        ref = s.get(PartnerServiceOrder, so_id).external_ref
    with factory.begin() as s:
        partners.apply_partner_event(s, partner_code="openserve", event={"eventType": "ServiceOrderStateChangeEvent", "event": {"serviceOrder": {
            "externalId": ref, "state": "cancelled", "stateChangeReason": "cancelled on request"}}}, now=NOW, tz=TZ, actor=Actor.system("partner:openserve"))
    task = c.get(f"{CANCEL}/{r.json()['id']}").json()
    jsonschema.validate(task, _schema())
    assert task["state"] == "done"
    with factory() as s:
        assert s.get(ProductOrder, order_id).state == "cancelled"


def test_cancelling_a_tmf622_delete_withdraws_its_journey(app, api_token, factory):
    acc, product = _line(factory)
    c = _client(app, api_token("admin"))
    order = c.post(ORDERS, json=_delete(acc, product)).json()
    r = c.post(CANCEL, json={"productOrder": {"id": order["id"]}, "cancellationReason": "sent in error"})
    assert r.status_code == 201 and r.json()["state"] == "done", r.text
    with factory() as s:
        j = s.execute(select(CancellationJourney).where(CancellationJourney.product_id == product)).scalar_one()
        assert j.state == "withdrawn" and s.get(ProductOrder, int(order["id"])).state == "cancelled"


def test_an_unknown_or_completed_order_is_refused_and_nothing_is_written(app, api_token, factory):
    c = _client(app, api_token("billing_analyst"))
    r = c.post(CANCEL, json={"productOrder": {"id": "987654"}})
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    acc, product = _line(factory)  # its order completed when the FNO activated the line
    with factory() as s:
        done = s.execute(select(ProductOrderItem.order_id).where(ProductOrderItem.result_product_id == product)).scalar_one()
    r = c.post(CANCEL, json={"productOrder": {"id": str(done)}})
    assert r.status_code == 409 and "completed" in r.json()["detail"]
    r = c.post(CANCEL, json={"productOrder": {"id": "abc"}})
    assert r.status_code == 400 and r.json()["field"] == "productOrder.id"
    with factory() as s:
        assert s.execute(select(func.count()).select_from(CancelProductOrder)).scalar_one() == 0
