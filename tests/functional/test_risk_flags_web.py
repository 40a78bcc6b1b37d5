"""Risk over HTTP: a flag set with a reason shows as a banner on the account, case and order pages; the order placed on
the flagged account waits on the risk review page; neither the person who placed it nor the one who set the flag can
release it; a second reviewer does and the order goes ahead."""

from __future__ import annotations

from sqlalchemy import select

from opsline.core.events import Actor
from opsline.customers.data_models import OrderRiskHold
from opsline.orders.models import ProductOrder


def _account(factory, now):  # type: ignore[no-untyped-def]
    from opsline.customers import service
    from opsline.customers.schemas import AccountIn, SiteIn

    with factory.begin() as s:
        acc = service.create_account(s, data=AccountIn(name="Sizwe Mokoena", email="sizwe@example.co.za", phone="+27834440000",
                                                       sites=[SiteIn(line1="9 Long Street", city="Cape Town", fno_coverage=["vumatel"])]),
                                     now=now, actor=Actor(name="seed"))
        s.flush()
        site = service.account_360(s, account_id=acc.id)["sites"][0]["id"]
        return acc.id, site


def _place(factory, now, acc, site, placer):  # type: ignore[no-untyped-def]
    from opsline.catalog import service as catalog
    from opsline.core.localtime import zone
    from opsline.orders import service as orders
    from opsline.orders.schemas import OrderIn, OrderItemIn

    with factory.begin() as s:
        off = catalog.get_offering_by_code(s, code="FIB-VU-100-100-24M")
        return orders.place_order(s, data=OrderIn(account_id=acc, items=[OrderItemIn(offering_id=off.id, site_id=site)]), now=now,
                                  tz=zone("Africa/Johannesburg"), actor=Actor(name=placer, roles=frozenset({"billing_analyst"}))).id


def test_a_flag_shows_everywhere_and_its_held_order_needs_a_second_reviewer(client_as, factory, now):
    acc, site = _account(factory, now)
    manager, placer, reviewer = client_as("service_manager"), client_as("billing_analyst"), client_as("billing_analyst")
    no_reason = manager.post(f"/accounts/{acc}/risk-flags", data={"kind": "fraud", "reason": ""}, headers={"accept": "application/json"})
    assert no_reason.status_code == 422 and "reason" in no_reason.json()["detail"]
    bad_date = manager.post(f"/accounts/{acc}/risk-flags", data={"kind": "fraud", "reason": "x", "expires_on": "soon"}, headers={"accept": "application/json"})
    assert bad_date.status_code == 422
    ok = manager.post(f"/accounts/{acc}/risk-flags", data={"kind": "fraud", "reason": "SIM swap reported by the bank"}, follow_redirects=False)
    assert ok.status_code == 303
    banner = placer.get(f"/accounts/{acc}/risk-banner")
    assert "is flagged" in banner.text and "SIM swap reported by the bank" in banner.text
    assert f"/accounts/{acc}/risk-banner" in placer.get(f"/accounts/{acc}").text
    assert "Clear" in manager.get(f"/accounts/{acc}/panel/risk").text
    order_id = _place(factory, now, acc, site, placer.username)
    assert f"/accounts/{acc}/risk-banner?order_id={order_id}" in placer.get(f"/orders/{order_id}").text
    order_banner = placer.get(f"/accounts/{acc}/risk-banner?order_id={order_id}")
    assert "Risk review: pending" in order_banner.text
    page = reviewer.get("/risk/holds")
    assert page.status_code == 200 and f"/orders/{order_id}" in page.text
    with factory() as s:
        hold_id = s.execute(select(OrderRiskHold.id)).scalar_one()
    own = placer.post(f"/risk/holds/{hold_id}/release", data={"reason": "fine"}, headers={"accept": "application/json"})
    assert own.status_code == 403 and "second person" in own.json()["detail"]
    setter = manager.post(f"/risk/holds/{hold_id}/release", data={"reason": "fine"}, headers={"accept": "application/json"})
    assert setter.status_code == 403 and "you set the risk flag" in setter.json()["detail"]
    assert client_as("second_line_agent").post(f"/risk/holds/{hold_id}/release", data={"reason": "x"}, headers={"accept": "application/json"}).status_code == 403
    with factory() as s:
        assert s.get(ProductOrder, order_id).state == "acknowledged"
    done = reviewer.post(f"/risk/holds/{hold_id}/release", data={"reason": "customer came in with ID"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/orders/{order_id}"
    with factory() as s:
        assert s.get(ProductOrder, order_id).state == "inProgress" and s.get(OrderRiskHold, hold_id).decided_by == reviewer.username
    assert "released" in reviewer.get("/risk/holds?state=released").text
    assert "Sizwe Mokoena" in manager.get("/risk/flags").text
