"""Order entry shows the early-termination fee before a cancellation is confirmed; a waiver needs a reason; the fee
fragment serves the cancellation journey; desk home cards for orders and partners link to their lists."""

from datetime import date

from sqlalchemy import func, select

from opsline.catalog import service as catalog
from opsline.core.events import Actor
from opsline.core.localtime import zone
from opsline.customers import service as customers
from opsline.customers.schemas import AccountIn, SiteIn
from opsline.inventory.models import Product
from opsline.orders import service as orders
from opsline.orders.models import ProductOrder, ProductOrderItem
from opsline.orders import schemas as orders_schemas
from opsline.orders.schemas import OrderIn, OrderItemIn

TZ = zone("Africa/Johannesburg")


def _active_fibre(factory, now):  # type: ignore[no-untyped-def]
    actor = Actor.system("t")
    with factory.begin() as s:
        acc = customers.create_account(s, data=AccountIn(name="Naledi Khumalo", sites=[SiteIn(line1="7 Kingsway", city="Durban", fno_coverage=["vumatel"])]), now=now, actor=actor)
        s.flush()
        site = customers.account_360(s, account_id=acc.id)["sites"][0]["id"]
        order = orders.place_order(s, data=OrderIn(account_id=acc.id, items=[OrderItemIn(offering_id=catalog.get_offering_by_code(s, code="FIB-VU-100-100-24M").id, site_id=site)]),
                                   now=now, tz=TZ, actor=actor)
        item = s.execute(select(ProductOrderItem).where(ProductOrderItem.order_id == order.id)).scalar_one()
        orders.on_partner_order_update(s, service_order_id=item.partner_service_order_id, order_item_id=item.id, state="completed", confirmed_date=date(2026, 11, 23),
                                       reason=None, now=now, tz=TZ, actor=actor)
        return acc.id, item.result_product_id


def _deletes(factory) -> int:  # type: ignore[no-untyped-def]
    with factory() as s:
        return s.execute(select(func.count()).select_from(ProductOrderItem).where(ProductOrderItem.action == "delete")).scalar_one()


def test_cancelling_a_product_in_contract_shows_the_fee_first_and_places_the_order_only_when_confirmed(client_as, factory, now):
    acc, product = _active_fibre(factory, now)
    c = client_as("cancellations_coordinator")
    form = {"account_id": acc, "items-0-action": "delete", "items-0-product_id": product, "requested_start_date": "2027-01-01"}
    first = c.post("/orders/new", data=form, follow_redirects=False)
    assert first.status_code == 200 and "Before you confirm" in first.text and "1,378.50" in first.text and "23 month(s) left" in first.text
    assert _deletes(factory) == 0
    confirmed = c.post("/orders/new", data=form | {"confirm_fees": "1"}, follow_redirects=False)
    assert confirmed.status_code == 303, confirmed.text
    detail = c.get(confirmed.headers["location"])
    assert "Early-termination fee" in detail.text and "final bill" in detail.text
    with factory() as s:
        item = s.execute(select(ProductOrderItem).where(ProductOrderItem.action == "delete")).scalar_one()
        assert item.etf_minor == 137_850 and s.get(Product, product).state == "pendingTerminate"


def test_a_waiver_without_a_reason_is_shown_as_an_error_and_nothing_is_ordered(client_as, factory, now):
    acc, product = _active_fibre(factory, now)
    c = client_as("cancellations_coordinator")
    r = c.post("/orders/new", data={"account_id": acc, "items-0-action": "delete", "items-0-product_id": product, "items-0-waive": "1",
                                    "items-0-waiver_reason": "", "confirm_fees": "1"})
    assert r.status_code == 422 and "needs a reason" in r.text
    assert _deletes(factory) == 0


def test_the_fee_fragment_shows_the_fee_and_refuses_a_date_before_activation(client_as, factory, now):
    acc, product = _active_fibre(factory, now)
    c = client_as("cancellations_coordinator")
    ok = c.get(f"/orders/products/{product}/termination-fee?on=2028-10-01")
    assert ok.status_code == 200 and "367.60" in ok.text and "capped" in ok.text
    early = c.get(f"/orders/products/{product}/termination-fee?on=2026-11-01")
    assert early.status_code == 422 and "activated on 2026-11-23" in early.text
    assert c.get(f"/orders/products/{product}/termination-fee?on=soon").status_code == 422


def test_order_and_partner_home_cards_count_the_work_waiting_and_link_to_it(factory, now):
    from opsline.orders.area import AREA as ORDERS
    from opsline.partners.area import AREA as PARTNERS

    _active_fibre(factory, now)
    with factory.begin() as s:
        acc = customers.create_account(s, data=AccountIn(name="Open Order", sites=[SiteIn(line1="1 Main", city="Durban", fno_coverage=["vumatel"])]), now=now, actor=Actor.system("t"))
        s.flush()
        site = customers.account_360(s, account_id=acc.id)["sites"][0]["id"]
        orders.place_order(s, data=OrderIn(account_id=acc.id, items=[OrderItemIn(offering_id=catalog.get_offering_by_code(s, code="FIB-VU-50-25").id, site_id=site)]),
                           now=now, tz=TZ, actor=Actor.system("t"))
    with factory() as s:
        cards = {c.title: c for c in ORDERS.home(s, now=now, actor=Actor.system("t"), tz=TZ)}
        assert cards["Open orders"].count == 1 and cards["Open orders"].href == "/orders?open=1" and cards["Open orders"].chart["data"]["labels"] == ["inProgress"]
        assert "billing_analyst" in cards["Open orders"].desks and cards["Orders open over 14 days"].count == 0
        pcards = {c.title: c for c in PARTNERS.home(s, now=now, actor=Actor.system("t"), tz=TZ)}
        assert pcards["Partner deliveries stuck"].count == 0 and pcards["Partner deliveries stuck"].href == "/partners/orders?delivery=stuck"
        assert "service_manager" in pcards["Partner orders past SLA"].desks
        assert s.execute(select(func.count()).select_from(ProductOrder)).scalar_one() == 2


def test_quotes_expiring_soon_are_counted_on_the_home_card_and_listed_behind_it(client_as, factory, now):
    from datetime import timedelta

    from opsline.orders.area import AREA as ORDERS

    actor = Actor.system("t")
    with factory.begin() as s:
        acc = customers.create_account(s, data=AccountIn(name="Quote Soon", sites=[SiteIn(line1="1 Main", city="Durban", fno_coverage=["vumatel"])]), now=now, actor=actor)
        s.flush()
        site = customers.account_360(s, account_id=acc.id)["sites"][0]["id"]
        off = catalog.get_offering_by_code(s, code="FIB-VU-50-25").id
        for days, ref in ((3, "SOON-1"), (30, "LATER-1")):
            orders.create_quote(s, data=orders_schemas.QuoteIn(account_id=acc.id, external_id=ref, valid_until=date(2026, 11, 23) + timedelta(days=days),
                                                               items=[OrderItemIn(offering_id=off, site_id=site)]), now=now, tz=TZ, actor=actor)
    with factory() as s:
        card = next(c for c in ORDERS.home(s, now=now, actor=actor, tz=TZ) if c.title.startswith("Quotes expiring"))
    assert card.count == 1 and card.hint == "first on 2026-11-26" and card.href == "/orders?quotes_expiring=7#quotes"
    page = client_as("billing_analyst").get(card.href)
    assert page.status_code == 200 and "expiring within 7 days" in page.text and "Q1<" in page.text and "Q2<" not in page.text


def test_loaned_equipment_awaiting_return_is_a_home_card_with_the_list_behind_it(client_as, factory, now):
    from opsline.inventory.area import AREA as INVENTORY

    acc, product = _active_fibre(factory, now)
    with factory.begin() as s:
        orders.place_order(s, data=OrderIn(account_id=acc, requested_start_date=date(2027, 1, 1), items=[OrderItemIn(action="delete", product_id=product)]),
                           now=now, tz=TZ, actor=Actor.system("t"))
        item = s.execute(select(ProductOrderItem).where(ProductOrderItem.action == "delete")).scalar_one()
        orders.on_partner_order_update(s, service_order_id=item.partner_service_order_id, order_item_id=item.id, state="completed", confirmed_date=date(2027, 1, 1),
                                       reason=None, now=now, tz=TZ, actor=Actor.system("t"))
    with factory() as s:
        (card,) = INVENTORY.home(s, now=now, actor=Actor.system("t"), tz=TZ)
    assert card.count == 1 and card.desks == ("cancellations_coordinator",)
    page = client_as("cancellations_coordinator").get(card.href)
    assert page.status_code == 200 and "awaiting return" in page.text and "AXR" in page.text and "ONT" not in page.text.split("<tbody>")[1]
