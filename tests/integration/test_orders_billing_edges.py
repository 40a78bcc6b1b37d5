"""The billing edges on the orders side (issue 9): terminations that cannot be right are refused and change nothing,
the early-termination fee (catalogue rule, consumer reasonable-penalty cap, waiver with a reason) is shown before and
charged on the final bill after, and an account's suspension and reconnection follow through to its products and FNO."""

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from opsline.billing.models import PendingCharge
from opsline.catalog import service as catalog
from opsline.core.errors import TransitionNotAllowed
from opsline.core.events import Actor, AuditEvent
from opsline.core.jobs import Job
from opsline.core.lifecycle import ActionNotPermitted, ReasonRequired
from opsline.core.localtime import zone
from opsline.customers import service as customers
from opsline.customers.schemas import AccountIn, SiteIn
from opsline.inventory import service as inventory
from opsline.inventory.models import Product
from opsline.orders import service
from opsline.orders.models import ProductOrder, ProductOrderItem
from opsline.orders.schemas import OrderIn, OrderItemIn, QuoteIn
from opsline.partners.models import PartnerServiceOrder

from partners_helpers import MovingClock, worker

TODAY = date(2026, 11, 23)
TZ = zone("Africa/Johannesburg")
FIBRE = "FIB-VU-100-100-24M"  # R919 pm, 24 months; consumers 25 % of the remaining months (at most 6), businesses all of them


def _account(session, now, actor, *, kind="retail", second_site=False):  # type: ignore[no-untyped-def]
    sites = [SiteIn(line1="12 Rivonia Road", city="Johannesburg", fno_coverage=["vumatel", "openserve"])]
    if second_site:
        sites.append(SiteIn(label="New home", line1="4 Kloof Street", city="Cape Town", fno_coverage=["vumatel"]))
    acc = customers.create_account(session, data=AccountIn(name="Thabo Nkosi" if kind == "retail" else "Nkosi Logistics (Pty) Ltd", kind=kind,
                                                           segment_code="consumer" if kind == "retail" else "sme",
                                                           party_kind="person" if kind == "retail" else "organisation", sites=sites), now=now, actor=actor)
    session.flush()
    return acc, [s["id"] for s in customers.account_360(session, account_id=acc.id)["sites"]]


def _items(session, order):  # type: ignore[no-untyped-def]
    return list(session.execute(select(ProductOrderItem).where(ProductOrderItem.order_id == order.id).order_by(ProductOrderItem.id)).scalars())


def _order(session, now, actor, acc, items, **kw):  # type: ignore[no-untyped-def]
    return service.place_order(session, data=OrderIn(account_id=acc.id, items=[OrderItemIn(**i) for i in items], **kw), now=now, tz=TZ, actor=actor)


def _complete(session, now, actor, item, when):  # type: ignore[no-untyped-def]
    service.on_partner_order_update(session, service_order_id=item.partner_service_order_id, order_item_id=item.id, state="completed",
                                    confirmed_date=when, reason=None, now=now, tz=TZ, actor=actor)


def _fibre(session, now, actor, acc, site, *, start=TODAY):  # type: ignore[no-untyped-def]
    order = _order(session, now, actor, acc, [{"offering_id": catalog.get_offering_by_code(session, code=FIBRE).id, "site_id": site}])
    (item,) = _items(session, order)
    _complete(session, now, actor, item, start)
    return session.get(Product, item.result_product_id)


def _counts(session):  # type: ignore[no-untyped-def]
    return tuple(session.execute(select(func.count()).select_from(m)).scalar_one() for m in (ProductOrder, ProductOrderItem, Product, PendingCharge, PartnerServiceOrder, AuditEvent))


def _refused(session, exc_type, fn):  # type: ignore[no-untyped-def]
    session.commit()
    before = _counts(session)
    with pytest.raises(exc_type) as exc:
        fn()
    session.rollback()
    assert _counts(session) == before
    return exc.value


# --- terminations that cannot be right -------------------------------------------------------------

def test_terminating_a_product_twice_is_refused_and_nothing_changes(session, now, actor):
    acc, (site,) = _account(session, now, actor)
    product = _fibre(session, now, actor, acc, site)
    (item,) = _items(session, _order(session, now, actor, acc, [{"action": "delete", "product_id": product.id}], requested_start_date=date(2027, 1, 1)))
    _complete(session, now, actor, item, date(2027, 1, 1))
    assert product.state == "terminated" and product.end_date == date(2027, 1, 1)
    err = _refused(session, service.OrderNotAllowed, lambda: _order(session, now, actor, acc, [{"action": "delete", "product_id": product.id}]))
    assert "already terminated on 2027-01-01" in err.detail
    err = _refused(session, inventory.UnableToTerminateProduct,
                   lambda: inventory.transition_product(session, product=product, action="terminate", now=now, actor=actor, reason="again", effective_date=date(2027, 2, 1)))
    assert "already terminated" in err.detail
    assert session.get(Product, product.id).end_date == date(2027, 1, 1)


def test_a_termination_date_before_activation_is_refused_and_nothing_changes(session, now, actor):
    acc, (site,) = _account(session, now, actor)
    product = _fibre(session, now, actor, acc, site, start=TODAY + timedelta(days=20))  # the FNO activated the line later than ordered
    err = _refused(session, inventory.UnableToTerminateProduct,
                   lambda: _order(session, now, actor, acc, [{"action": "delete", "product_id": product.id}], requested_start_date=TODAY + timedelta(days=5)))
    assert "activated on 2026-12-13" in err.detail and err.field == "requested_start_date"
    err = _refused(session, inventory.UnableToTerminateProduct,
                   lambda: inventory.transition_product(session, product=product, action="terminate", now=now, actor=actor, reason="x", effective_date=TODAY))
    assert session.get(Product, product.id).state == "active" and session.get(Product, product.id).end_date is None


def test_relocating_to_the_site_the_product_is_already_at_is_refused(session, now, actor):
    acc, (home,) = _account(session, now, actor)
    product = _fibre(session, now, actor, acc, home)
    err = _refused(session, service.UnableToPlaceOrder, lambda: _order(session, now, actor, acc, [{"action": "modify", "product_id": product.id, "site_id": home}]))
    assert "already at site" in err.detail and err.field == "items[0].site_id"


def test_a_relocation_ends_the_old_line_the_day_the_new_one_starts(session, now, actor):
    acc, (home, new_home) = _account(session, now, actor, second_site=True)
    old = _fibre(session, now, actor, acc, home)
    (item,) = _items(session, _order(session, now, actor, acc, [{"action": "modify", "product_id": old.id, "site_id": new_home}]))
    _complete(session, now, actor, item, date(2027, 3, 1))
    new = session.get(Product, item.result_product_id)
    assert old.end_date == new.start_date == date(2027, 3, 1)
    ended = session.execute(select(AuditEvent).where(AuditEvent.entity_type == "product", AuditEvent.entity_id == str(old.id), AuditEvent.action == "terminate")).scalar_one()
    assert ended.after["end_date"] == "2027-03-01"  # billing credits the old line from this date and charges the new one from it


# --- early termination -----------------------------------------------------------------------------

def test_the_consumer_fee_follows_the_catalogue_rule_when_it_is_under_the_reasonable_penalty_cap(session, now, actor):
    acc, (site,) = _account(session, now, actor)
    product = _fibre(session, now, actor, acc, site)
    q = service.early_termination_quote(session, product_id=product.id, termination_date=date(2027, 1, 1))
    assert q["remaining_months"] == 23 and not q["juristic"]
    assert q["rule_fee"].minor == 91_900 * 6 // 4 == q["fee"].minor == q["charge"].minor  # 25 % of 6 months (the rule's limit)
    assert q["cap"].minor == 91_900 * 23 // 5 and not q["capped"]


def test_the_consumer_fee_is_capped_by_the_reasonable_penalty_policy_near_the_contract_end(session, now, actor):
    acc, (site,) = _account(session, now, actor)
    product = _fibre(session, now, actor, acc, site)
    q = service.early_termination_quote(session, product_id=product.id, termination_date=date(2028, 10, 1))
    assert q["remaining_months"] == 2
    assert q["rule_fee"].minor == 45_950 and q["cap"].minor == 36_760 and q["capped"] and q["fee"].minor == 36_760
    assert "capped" in q["explanation"]


def test_a_juristic_person_pays_the_remaining_months_without_the_consumer_cap(session, now, actor):
    acc, (site,) = _account(session, now, actor, kind="b2b")
    product = _fibre(session, now, actor, acc, site)
    q = service.early_termination_quote(session, product_id=product.id, termination_date=date(2027, 1, 1))
    assert q["juristic"] and q["cap"] is None and q["fee"].minor == 91_900 * 23


def test_ending_on_or_after_the_contract_end_costs_nothing(session, now, actor):
    acc, (site,) = _account(session, now, actor)
    product = _fibre(session, now, actor, acc, site)
    q = service.early_termination_quote(session, product_id=product.id, termination_date=product.contract_end_date)
    assert q["fee"] is None and q["charge"] is None and "past the contract end" in q["explanation"]


def test_a_waiver_without_a_reason_is_refused_and_with_one_nothing_is_charged(session, now, actor):
    acc, (site,) = _account(session, now, actor)
    product = _fibre(session, now, actor, acc, site)
    with pytest.raises(service.WaiverReasonRequired):
        service.early_termination_quote(session, product_id=product.id, termination_date=date(2027, 1, 1), waive=True, waiver_reason="  ")
    err = _refused(session, service.WaiverReasonRequired, lambda: _order(session, now, actor, acc, [
        {"action": "delete", "product_id": product.id, "waive_early_termination_fee": True}], requested_start_date=date(2027, 1, 1)))
    assert err.field == "items[0].waiver_reason"
    q = service.early_termination_quote(session, product_id=product.id, termination_date=date(2027, 1, 1), waive=True, waiver_reason="network fault for 3 weeks")
    assert q["waived"] and q["fee"].minor == 137_850 and q["charge"] is None


def test_the_confirmed_fee_is_queued_for_the_final_bill_when_the_line_ends(session, now, actor):
    acc, (site,) = _account(session, now, actor)
    product = _fibre(session, now, actor, acc, site)
    order = _order(session, now, actor, acc, [{"action": "delete", "product_id": product.id}], requested_start_date=date(2027, 1, 1))
    (item,) = _items(session, order)
    assert (item.etf_minor, item.etf_currency, item.etf_waiver_reason) == (137_850, "ZAR", None)
    assert session.execute(select(func.count()).select_from(PendingCharge)).scalar_one() == 0  # nothing before the line ends
    _complete(session, now, actor, item, date(2027, 1, 31))
    (charge,) = session.execute(select(PendingCharge).where(PendingCharge.account_id == acc.id)).scalars()
    assert (charge.amount_minor, charge.currency, charge.product_id, charge.state) == (137_850, "ZAR", product.id, "pending")
    assert charge.idempotency_key == f"etf:order_item:{item.id}" and "Early termination fee" in charge.description


def test_a_waived_fee_is_recorded_with_its_reason_and_not_charged(session, now, actor):
    acc, (site,) = _account(session, now, actor)
    product = _fibre(session, now, actor, acc, site)
    order = _order(session, now, actor, acc, [{"action": "delete", "product_id": product.id, "waive_early_termination_fee": True,
                                               "waiver_reason": "retention: moving overseas"}], requested_start_date=date(2027, 1, 1))
    (item,) = _items(session, order)
    _complete(session, now, actor, item, date(2027, 1, 31))
    assert session.execute(select(func.count()).select_from(PendingCharge)).scalar_one() == 0
    waived = session.execute(select(AuditEvent).where(AuditEvent.action == "early_termination_fee_waived")).scalar_one()
    assert waived.reason == "retention: moving overseas" and waived.after["fee_minor"] == 137_850


# --- suspension and reconnection -------------------------------------------------------------------

def test_suspending_the_account_suspends_its_products_and_sends_the_fno_a_suspend_order(session, factory, now, actor):
    acc, (site,) = _account(session, now, actor)
    fibre = _fibre(session, now, actor, acc, site)
    static = _order(session, now, actor, acc, [{"offering_id": catalog.get_offering_by_code(session, code="SVC-STATIC-IP").id}])
    static_product = session.get(Product, _items(session, static)[0].result_product_id)
    customers.transition_account(session, account_id=acc.id, action="suspend", now=now, actor=actor, reason="arrears over 60 days")
    assert fibre.state == static_product.state == "suspended" and "arrears over 60 days" in fibre.state_reason
    (so,) = session.execute(select(PartnerServiceOrder).where(PartnerServiceOrder.service_state.is_not(None))).scalars()
    assert (so.partner_code, so.action, so.service_state, so.product_id, so.order_item_id) == ("vumatel", "modify", "suspended", fibre.id, None)
    assert session.execute(select(Job).where(Job.idempotency_key == so.external_ref)).scalar_one().kind == "partners.deliver"
    # the FNO confirms the suspension: no order item is touched and nothing is logged as ignored
    clock = MovingClock(now)
    session.commit()
    w = worker(factory, clock)
    w.drain()
    clock.advance(minutes=5)
    w.drain()
    session.expire_all()
    assert session.get(PartnerServiceOrder, so.id).state == "completed"
    ignored = session.execute(select(AuditEvent).where(AuditEvent.action == "partner_update_ignored")).scalars().all()
    assert [e for e in ignored if e.after["service_order_id"] == so.id] == []
    assert session.get(Product, fibre.id).state == "suspended"


def test_reconnecting_the_account_resumes_its_products_and_sends_the_fno_a_resume_order(session, now, actor):
    acc, (site,) = _account(session, now, actor)
    fibre = _fibre(session, now, actor, acc, site)
    customers.transition_account(session, account_id=acc.id, action="suspend", now=now, actor=actor, reason="arrears")
    customers.transition_account(session, account_id=acc.id, action="reconnect", now=now, actor=actor, reason="paid in full")
    assert fibre.state == "active"
    orders = session.execute(select(PartnerServiceOrder.service_state).where(PartnerServiceOrder.product_id == fibre.id, PartnerServiceOrder.service_state.is_not(None))
                             .order_by(PartnerServiceOrder.id)).scalars().all()
    assert orders == ["suspended", "active"]


def test_the_suspend_order_body_asks_the_partner_to_disable_the_line(session, now, actor):
    from opsline.partners import service as partners

    acc, (site,) = _account(session, now, actor)
    fibre = _fibre(session, now, actor, acc, site)
    customers.transition_account(session, account_id=acc.id, action="suspend", now=now, actor=actor, reason="arrears")
    so = session.execute(select(PartnerServiceOrder).where(PartnerServiceOrder.service_state == "suspended")).scalar_one()
    body = partners.order_payload(session, so=so)
    svc = body["serviceOrderItem"][0]["service"]
    assert body["serviceOrderItem"][0]["action"] == "modify" and svc["state"] == "inactive" and svc["isServiceEnabled"] is False
    assert svc["id"] == fibre.partner_line_ref


def test_a_line_state_order_needs_modify_and_a_known_state(session, now, actor):
    from opsline.partners import service as partners

    acc, (site,) = _account(session, now, actor)
    fibre = _fibre(session, now, actor, acc, site)
    for kw in ({"action": "delete", "service_state": "suspended"}, {"action": "modify", "service_state": "paused"}):
        err = _refused(session, partners.UnableToSubmitServiceOrder, lambda kw=kw: partners.submit_service_order(
            session, partner_code="vumatel", account_id=acc.id, product_id=fibre.id, site_id=site, requested_date=TODAY, reason="x", now=now, actor=actor, **kw, tz=TZ))
        assert err.field == "service_state"


# --- the order and quote lifecycles -----------------------------------------------------------------

def test_holding_an_order_needs_a_reason_and_the_manage_permission_and_completion_is_the_systems(session, now, actor):
    acc, (site,) = _account(session, now, actor)
    order = _order(session, now, actor, acc, [{"offering_id": catalog.get_offering_by_code(session, code=FIBRE).id, "site_id": site}])
    _refused(session, ReasonRequired, lambda: service.order_action(session, order_id=order.id, action="hold", now=now, tz=TZ, actor=actor, reason=" "))
    agent = Actor(name="agent", roles=frozenset({"second_line_agent"}))
    _refused(session, ActionNotPermitted, lambda: service.order_action(session, order_id=order.id, action="hold", now=now, tz=TZ, actor=agent, reason="waiting"))
    _refused(session, TransitionNotAllowed, lambda: service.order_action(session, order_id=order.id, action="complete", now=now, tz=TZ, actor=actor, reason="x"))
    assert service.order_action(session, order_id=order.id, action="hold", now=now, tz=TZ, actor=actor, reason="customer away") == ["resume", "cancel"]


def test_cancelling_an_order_whose_partner_order_was_delivered_records_that_the_partner_must_be_asked(session, now, actor):
    from opsline.partners import service as partners

    acc, (site,) = _account(session, now, actor)
    order = _order(session, now, actor, acc, [{"offering_id": catalog.get_offering_by_code(session, code=FIBRE).id, "site_id": site}])
    (item,) = _items(session, order)
    partners.deliver(session, service_order_id=item.partner_service_order_id, now=now, tz=TZ)
    service.order_action(session, order_id=order.id, action="cancel", now=now, tz=TZ, actor=actor, reason="customer changed mind")
    # the FNO already holds the service order: the order waits in pendingCancellation until the partner finishes it (TMF622)
    assert order.state == "pendingCancellation" and item.state == "cancelled", (order.state, item.state)
    so = session.get(PartnerServiceOrder, item.partner_service_order_id)
    assert so.state != "cancelled"
    asked = session.execute(select(AuditEvent).where(AuditEvent.action == "withdrawal_requested")).scalar_one()
    assert "confirm the cancellation with the partner" in asked.reason


def test_an_expired_quote_cannot_be_accepted_and_nothing_is_ordered(session, now, actor):
    acc, (site,) = _account(session, now, actor)
    quote = service.create_quote(session, data=QuoteIn(account_id=acc.id, valid_until=TODAY - timedelta(days=1),
                                                       items=[OrderItemIn(offering_id=catalog.get_offering_by_code(session, code=FIBRE).id, site_id=site)]),
                                 now=now, tz=TZ, actor=actor)
    err = _refused(session, service.QuoteExpired, lambda: service.quote_action(session, quote_id=quote.id, action="accept", now=now, tz=TZ, actor=actor))
    assert "expired on 2026-11-22" in err.detail
    assert session.get(type(quote), quote.id).state == "inProgress"


def test_activating_or_terminating_a_product_needs_its_date(session, now, actor):
    from opsline.core.errors import InvalidInput

    acc, (site,) = _account(session, now, actor)
    product = _fibre(session, now, actor, acc, site)
    err = _refused(session, InvalidInput, lambda: inventory.transition_product(session, product=product, action="terminate", now=now, actor=actor, reason="x"))
    assert err.field == "effective_date" and session.get(Product, product.id).state == "active"


def test_suspension_still_happens_when_the_fno_is_switched_off_and_the_gap_is_on_record(session, now, actor):
    from sqlalchemy import update

    from opsline.partners.models import Partner

    acc, (site,) = _account(session, now, actor)
    fibre = _fibre(session, now, actor, acc, site)
    session.execute(update(Partner).where(Partner.code == "vumatel").values(active=False))
    customers.transition_account(session, account_id=acc.id, action="suspend", now=now, actor=actor, reason="arrears")
    assert fibre.state == "suspended"
    assert session.execute(select(func.count()).select_from(PartnerServiceOrder).where(PartnerServiceOrder.service_state.is_not(None))).scalar_one() == 0
    gap = session.execute(select(AuditEvent).where(AuditEvent.action == "line_state_not_sent")).scalar_one()
    assert gap.entity_id == str(fibre.id) and "not active" in gap.reason
