"""A TMF622 product order with a delete item opens a cancellation journey instead of ending the line the same day:
the item waits (held) until the journey's confirmation sends the FNO its delete for the effective date; a terminated
product is refused with nothing written."""

from __future__ import annotations

from datetime import date

from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from opsline.cancellations import service
from opsline.cancellations.models import CancellationJourney
from opsline.core.events import Actor
from opsline.core.localtime import zone
from opsline.inventory.models import Product
from opsline.orders.models import ProductOrder, ProductOrderItem
from opsline.partners.models import PartnerServiceOrder
from tests.conftest import NOW
from tests.functional.test_cancellations_pages import _line

ORDERS = "/tmf-api/productOrderingManagement/v4/productOrder"
TZ = zone("Africa/Johannesburg")
COORD = Actor(name="coord", roles=frozenset({"cancellations_coordinator"}))


def _delete(account_id: int, product_id: int) -> dict:
    return {"billingAccount": {"id": str(account_id)}, "productOrderItem": [{"id": "1", "action": "delete", "product": {"id": str(product_id)}}]}


def _client(app, headers):  # type: ignore[no-untyped-def]
    c = TestClient(app)
    c.headers.update(headers)
    return c


def test_a_tmf622_delete_opens_a_journey_and_the_fno_hears_only_when_it_is_confirmed(app, api_token, factory):
    acc, product = _line(factory)
    c = _client(app, api_token("billing_analyst"))
    r = c.post(ORDERS, json=_delete(acc, product))
    assert r.status_code == 201, r.text
    assert r.json()["productOrderItem"][0]["state"] == "held"
    with factory.begin() as s:
        j = s.execute(select(CancellationJourney).where(CancellationJourney.product_id == product)).scalar_one()
        assert j.channel == "api" and j.requester == "api" and j.retention_outcome == "skipped" and j.order_id == int(r.json()["id"])
        assert s.get(Product, product).state == "active"  # not ended today
        assert s.execute(select(func.count()).select_from(PartnerServiceOrder).where(PartnerServiceOrder.product_id == product,
                                                                                     PartnerServiceOrder.action == "delete")).scalar_one() == 0
        service.confirm(s, journey_id=j.id, now=NOW, tz=TZ, actor=COORD)
        so = s.get(PartnerServiceOrder, j.service_order_id)
        assert so.action == "delete" and so.requested_date == j.effective_date == date(2027, 1, 1)
        item = s.get(ProductOrderItem, j.order_item_id)
        assert item.state == "inProgress" and item.etf_minor and s.get(Product, product).state == "pendingTerminate"


def test_a_tmf622_delete_of_a_terminated_product_is_refused_and_nothing_is_written(app, api_token, factory):
    acc, product = _line(factory)
    with factory.begin() as s:
        s.execute(update(Product).where(Product.id == product).values(state="terminated", end_date=date(2026, 11, 1)))
        before = (s.execute(select(func.count()).select_from(ProductOrder)).scalar_one(), s.execute(select(func.count()).select_from(CancellationJourney)).scalar_one())
    r = _client(app, api_token("billing_analyst")).post(ORDERS, json=_delete(acc, product))
    assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith("application/problem+json")
    assert "terminated" in r.json()["detail"]
    with factory() as s:
        assert (s.execute(select(func.count()).select_from(ProductOrder)).scalar_one(), s.execute(select(func.count()).select_from(CancellationJourney)).scalar_one()) == before
