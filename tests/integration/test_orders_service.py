"""Product orders end to end: placement, partner confirmation, relocation without gap or overlap, cancellation,
equipment, and every refusal leaving nothing behind."""

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from opsline.catalog import service as catalog
from opsline.core.events import AuditEvent
from opsline.customers import service as customers
from opsline.customers.schemas import AccountIn, SiteIn
from opsline.inventory.models import Equipment, Product
from opsline.orders import service
from opsline.orders.models import ProductOrder, ProductOrderItem, Quote
from opsline.orders.schemas import OrderIn, OrderItemIn, QuoteIn
from opsline.core.errors import TransitionNotAllowed
from opsline.core.localtime import zone

TODAY = date(2026, 11, 23)
TZ = zone("Africa/Johannesburg")


def _account(session, now, actor, *, coverage=("vumatel", "openserve"), kind="retail", second_site=None):  # type: ignore[no-untyped-def]
    sites = [SiteIn(line1="12 Rivonia Road", city="Johannesburg", fno_coverage=list(coverage))]
    if second_site is not None:
        sites.append(SiteIn(label="New home", line1="4 Kloof Street", city="Cape Town", fno_coverage=list(second_site)))
    acc = customers.create_account(session, data=AccountIn(name="Thabo Nkosi", kind=kind, segment_code="consumer" if kind == "retail" else "sme", party_kind="person" if kind == "retail" else "organisation", sites=sites), now=now, actor=actor)
    session.flush()
    site_ids = [s["id"] for s in customers.account_360(session, account_id=acc.id)["sites"]]
    return acc, site_ids


def _offering(session, code):  # type: ignore[no-untyped-def]
    return catalog.get_offering_by_code(session, code=code)


def _order(session, now, actor, acc, items, **kw):  # type: ignore[no-untyped-def]
    return service.place_order(session, data=OrderIn(account_id=acc.id, items=[OrderItemIn(**i) for i in items], **kw), now=now, tz=TZ, actor=actor)


def _counts(session):  # type: ignore[no-untyped-def]
    return tuple(session.execute(select(func.count()).select_from(m)).scalar_one() for m in (ProductOrder, ProductOrderItem, Product, Equipment, Quote))


def _update(session, now, actor, item, state, when=None, reason=None):  # type: ignore[no-untyped-def]
    service.on_partner_order_update(session, service_order_id=item.partner_service_order_id, order_item_id=item.id, state=state,
                                    confirmed_date=when, reason=reason, now=now, tz=TZ, actor=actor)


def _complete(session, now, actor, item, when):  # type: ignore[no-untyped-def]
    _update(session, now, actor, item, "completed", when)


def _items(session, order):  # type: ignore[no-untyped-def]
    return list(session.execute(select(ProductOrderItem).where(ProductOrderItem.order_id == order.id).order_by(ProductOrderItem.id)).scalars())


def test_fibre_order_waits_for_the_fno_then_activates_on_the_confirmed_date_with_router_installed(session, now, actor):
    acc, (site,) = _account(session, now, actor)
    order = _order(session, now, actor, acc, [{"offering_id": _offering(session, "FIB-VU-100-100-24M").id, "site_id": site}])
    (item,) = _items(session, order)
    product = session.get(Product, item.result_product_id)
    assert order.state == "inProgress" and item.state == "inProgress" and item.partner_service_order_id
    assert product.state == "pendingActive" and product.start_date is None and product.partner_code == "vumatel"
    (router,) = session.execute(select(Equipment).where(Equipment.product_id == product.id)).scalars()
    assert router.state == "dispatched" and router.owner == "isp_loaned"
    _complete(session, now, actor, item, TODAY + timedelta(days=5))
    assert product.state == "active" and product.start_date == TODAY + timedelta(days=5)
    assert product.contract_end_date == date(2028, 11, 28) and product.partner_line_ref
    kinds = {e.kind: (e.state, e.owner) for e in session.execute(select(Equipment).where(Equipment.product_id == product.id)).scalars()}
    assert kinds == {"router": ("installed", "isp_loaned"), "ont": ("installed", "fno")}
    assert item.state == "completed" and order.state == "completed" and order.completion_date == TODAY
    acts = {e.action for e in session.execute(select(AuditEvent).where(AuditEvent.account_id == acc.id)).scalars()}
    assert {"placed", "activate", "complete", "dispatch", "install"} <= acts


def test_items_without_a_partner_complete_at_once_and_mobile_gets_a_number_and_sim(session, now, actor):
    acc, _ = _account(session, now, actor)
    order = _order(session, now, actor, acc, [{"offering_id": _offering(session, "MOB-SMART-L-24").id}, {"offering_id": _offering(session, "SVC-STATIC-IP").id}])
    assert order.state == "completed"
    products = list(session.execute(select(Product).where(Product.account_id == acc.id)).scalars())
    assert {p.state for p in products} == {"active"} and all(p.start_date == TODAY for p in products)
    mobile = next(p for p in products if p.msisdn)
    (sim,) = session.execute(select(Equipment).where(Equipment.product_id == mobile.id)).scalars()
    assert sim.kind == "sim" and sim.state == "installed"


def _active_fibre(session, now, actor, acc, site, code="FIB-VU-100-100-24M"):  # type: ignore[no-untyped-def]
    order = _order(session, now, actor, acc, [{"offering_id": _offering(session, code).id, "site_id": site}])
    (item,) = _items(session, order)
    _complete(session, now, actor, item, TODAY)
    return session.get(Product, item.result_product_id)


def test_relocation_ends_the_old_product_the_day_the_new_one_starts(session, now, actor):
    acc, (home, new_home) = _account(session, now, actor, second_site=("vumatel", "octotel"))
    old = _active_fibre(session, now, actor, acc, home)
    order = _order(session, now, actor, acc, [{"action": "modify", "product_id": old.id, "site_id": new_home}], requested_start_date=TODAY + timedelta(days=3))
    (item,) = _items(session, order)
    new = session.get(Product, item.result_product_id)
    assert new.replaces_product_id == old.id and new.state == "pendingActive" and old.state == "active"
    cutover = TODAY + timedelta(days=10)
    _complete(session, now, actor, item, cutover)
    assert old.state == "terminated" and old.end_date == cutover
    assert new.state == "active" and new.start_date == cutover == old.end_date
    assert new.contract_end_date == old.contract_end_date  # moving house does not restart the contract
    router = session.execute(select(Equipment).where(Equipment.account_id == acc.id, Equipment.kind == "router")).scalar_one()
    assert router.product_id == new.id and router.state == "installed"
    assert order.state == "completed"


def test_termination_ends_on_the_fno_date_and_the_loaned_router_is_awaited(session, now, actor):
    acc, (site,) = _account(session, now, actor)
    product = _active_fibre(session, now, actor, acc, site)
    order = _order(session, now, actor, acc, [{"action": "delete", "product_id": product.id}])
    (item,) = _items(session, order)
    assert product.state == "pendingTerminate"
    _complete(session, now, actor, item, date(2026, 12, 31))
    assert product.state == "terminated" and product.end_date == date(2026, 12, 31)
    states = {e.kind: e.state for e in session.execute(select(Equipment).where(Equipment.product_id == product.id)).scalars()}
    assert states == {"router": "awaiting_return", "ont": "returned"}


def test_a_rejected_partner_order_fails_the_item_with_the_reason_and_the_product_never_starts(session, now, actor):
    acc, (site,) = _account(session, now, actor)
    order = _order(session, now, actor, acc, [{"offering_id": _offering(session, "FIB-VU-50-25").id, "site_id": site}, {"offering_id": _offering(session, "SVC-STATIC-IP").id}])
    first, second = _items(session, order)
    _update(session, now, actor, first, "rejected", reason="no capacity at the node")
    product = session.get(Product, first.result_product_id)
    assert first.state == "failed" and "no capacity at the node" in first.state_reason
    assert product.state == "terminated" and product.start_date is None and "no capacity" in product.state_reason
    assert second.state == "completed" and order.state == "partial"


def test_cancelling_an_order_in_progress_abandons_the_prepared_product(session, now, actor):
    acc, (site,) = _account(session, now, actor)
    order = _order(session, now, actor, acc, [{"offering_id": _offering(session, "FIB-OS-200-200").id, "site_id": site}])
    (item,) = _items(session, order)
    actions = service.order_action(session, order_id=order.id, action="cancel", now=now, tz=TZ, actor=actor, reason="customer changed mind")
    assert order.state == "cancelled" and actions == [] and item.state == "cancelled"
    assert session.get(Product, item.result_product_id).state == "terminated"
    trail = [e.after["state"] for e in session.execute(select(AuditEvent).where(AuditEvent.entity_type == "product_order", AuditEvent.entity_id == str(order.id)).order_by(AuditEvent.id)).scalars()]
    assert trail[-2:] == ["assessingCancellation", "cancelled"]
    # a late confirmation from the FNO changes nothing
    _complete(session, now, actor, item, TODAY)
    assert session.get(Product, item.result_product_id).state == "terminated"


def test_a_completed_order_cannot_be_cancelled(session, now, actor):
    acc, _ = _account(session, now, actor)
    order = _order(session, now, actor, acc, [{"offering_id": _offering(session, "SVC-STATIC-IP").id}])
    with pytest.raises(TransitionNotAllowed):
        service.order_action(session, order_id=order.id, action="cancel", now=now, tz=TZ, actor=actor, reason="x")
    assert order.state == "completed"


def _refused(session, now, actor, exc_type, fn):  # type: ignore[no-untyped-def]
    session.commit()
    before = _counts(session)
    with pytest.raises(exc_type) as exc:
        fn()
    session.rollback()
    assert _counts(session) == before
    return exc.value


def test_unknown_offering_is_refused_and_nothing_changes(session, now, actor):
    acc, (site,) = _account(session, now, actor)
    err = _refused(session, now, actor, catalog.OfferingNotFound, lambda: _order(session, now, actor, acc, [{"offering_id": 999999, "site_id": site}]))
    assert "999999" in err.detail


def test_price_not_valid_on_the_requested_date_is_refused(session, now, actor):
    acc, (site,) = _account(session, now, actor)
    from opsline.catalog.models import Price

    off = _offering(session, "FIB-VU-25-25")
    for p in session.execute(select(Price).where(Price.offering_id == off.id, Price.kind == "recurring")).scalars():
        p.valid_to = date(2027, 1, 1) if p.valid_to is None else p.valid_to
    err = _refused(session, now, actor, catalog.PriceNotValid, lambda: _order(session, now, actor, acc, [{"offering_id": off.id, "site_id": site}], requested_start_date=date(2027, 2, 1)))
    assert "2027-02-01" in err.detail


def test_relocation_to_a_site_the_fno_does_not_cover_is_refused(session, now, actor):
    acc, (home, elsewhere) = _account(session, now, actor, second_site=("octotel",))
    product = _active_fibre(session, now, actor, acc, home)
    err = _refused(session, now, actor, service.UnableToPlaceOrder, lambda: _order(session, now, actor, acc, [{"action": "modify", "product_id": product.id, "site_id": elsewhere}]))
    assert "vumatel does not cover" in err.detail and err.field == "items[0].site_id"
    assert session.get(Product, product.id).state == "active"


@pytest.mark.parametrize("status", ["suspended", "closed"])
def test_orders_for_a_suspended_or_closed_account_are_refused(session, now, actor, status):
    acc, (site,) = _account(session, now, actor)
    if status == "suspended":
        customers.transition_account(session, account_id=acc.id, action="suspend", now=now, actor=actor, reason="arrears")
    else:
        customers.transition_account(session, account_id=acc.id, action="close", now=now, actor=actor, reason="left")
    err = _refused(session, now, actor, service.OrderNotAllowed, lambda: _order(session, now, actor, acc, [{"offering_id": _offering(session, "SVC-STATIC-IP").id}]))
    assert status in err.detail


def test_duplicate_external_reference_is_refused(session, now, actor):
    acc, _ = _account(session, now, actor)
    _order(session, now, actor, acc, [{"offering_id": _offering(session, "SVC-STATIC-IP").id}], external_id="PO-7781")
    err = _refused(session, now, actor, service.DuplicateOrderReference, lambda: _order(session, now, actor, acc, [{"offering_id": _offering(session, "SVC-STATIC-IP").id}], external_id="PO-7781"))
    assert "PO-7781" in err.detail


def test_a_product_with_an_open_order_cannot_be_ordered_again(session, now, actor):
    acc, (site,) = _account(session, now, actor)
    product = _active_fibre(session, now, actor, acc, site)
    _order(session, now, actor, acc, [{"action": "delete", "product_id": product.id}])
    _refused(session, now, actor, service.OrderNotAllowed, lambda: _order(session, now, actor, acc, [{"action": "delete", "product_id": product.id}]))


def test_a_quote_prices_items_with_vat_and_accepting_it_places_the_order(session, now, actor):
    acc, (site,) = _account(session, now, actor)
    quote = service.create_quote(session, data=QuoteIn(account_id=acc.id, items=[OrderItemIn(offering_id=_offering(session, "FIB-OS-100-100").id, site_id=site)]), now=now, tz=TZ, actor=actor)
    # R899 pm; installation R1999 + activation R0 + router R1499 once-off; VAT 15 %
    assert (quote.recurring_total_minor, quote.recurring_tax_minor) == (89_900, 13_485)
    assert (quote.one_off_total_minor, quote.one_off_tax_minor) == (349_800, 52_470)
    service.quote_action(session, quote_id=quote.id, action="approve", now=now, tz=TZ, actor=actor)
    service.quote_action(session, quote_id=quote.id, action="accept", now=now, tz=TZ, actor=actor)
    order = session.get(ProductOrder, quote.product_order_id)
    assert quote.state == "accepted" and order.quote_id == quote.id and order.state == "inProgress"
    with pytest.raises(TransitionNotAllowed):
        service.quote_action(session, quote_id=quote.id, action="accept", now=now, tz=TZ, actor=actor)


def test_early_termination_is_a_reasonable_share_for_consumers_and_the_remainder_for_businesses(session, now, actor):
    off = _offering(session, "FIB-VU-100-100-24M")
    consumer = catalog.early_termination_charge(session, offering_id=off.id, juristic=False, termination_date=date(2027, 1, 1), contract_end_date=date(2028, 1, 1), on=TODAY)
    business = catalog.early_termination_charge(session, offering_id=off.id, juristic=True, termination_date=date(2027, 1, 1), contract_end_date=date(2028, 1, 1), on=TODAY)
    assert consumer.minor == 91_900 * 6 // 4  # 25 % of the remaining months, capped at 6 months
    assert business.minor == 91_900 * 12
    assert catalog.early_termination_charge(session, offering_id=off.id, juristic=False, termination_date=date(2028, 2, 1), contract_end_date=date(2028, 1, 1), on=TODAY) is None
