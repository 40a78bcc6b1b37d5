"""Outbound partner service orders: submission, delivery through the simulator, callbacks, outages, retries, rejections."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, update

from opsline.core.events import Actor, AuditEvent
from opsline.core.jobs import Job
from opsline.inventory.models import Product
from opsline.orders import service as orders
from opsline.orders.models import ProductOrderItem
from opsline.orders.schemas import OrderIn, OrderItemIn
from opsline.partners import service
from opsline.partners.models import PartnerMessage, PartnerServiceOrder
from opsline.partners.tmf641 import state_change_event

from partners_helpers import TZ, MovingClock, customer, line, offering_id, tune, worker


def _item_ids(session, order) -> list[int]:  # type: ignore[no-untyped-def]
    return list(session.execute(select(ProductOrderItem.id).where(ProductOrderItem.order_id == order.id)).scalars())


PARTNER = Actor.system("partner:openserve")


def _count(session, model, *where) -> int:  # type: ignore[no-untyped-def]
    return session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def _drain(session, w) -> int:  # type: ignore[no-untyped-def]
    session.commit()  # SQLite: release our write transaction so the worker can take its own
    n = w.drain()
    session.expire_all()
    return n


def _submit(session, now, actor, product, account, site, **kw):  # type: ignore[no-untyped-def]
    args = dict(partner_code="openserve", action="modify", account_id=account, product_id=product, site_id=site, requested_date=now.date() + timedelta(days=2),
                reason="speed upgrade", now=now, actor=actor) | kw
    return service.submit_service_order(session, **args, tz=TZ)


def test_an_order_placed_with_an_fno_is_delivered_progressed_and_completed_by_the_simulator_activating_the_product(session, factory, now, actor):
    tune(session)
    account_id, site_id = customer(session, now, actor)
    order = orders.place_order(session, data=OrderIn(account_id=account_id, items=[OrderItemIn(action="add", offering_id=offering_id(session), site_id=site_id)]), now=now, tz=TZ, actor=actor)
    session.commit()
    sos = service.service_orders_for_items(session, order_item_ids=_item_ids(session, order), now=now, tz=TZ)
    assert len(sos) == 1 and sos[0]["state"] == "acknowledged" and sos[0]["external_ref"].startswith("OPS-SO-")
    product_id = sos[0]["product_id"]
    clock = MovingClock(now)
    w = worker(factory, clock)
    assert _drain(session, w) == 1  # the delivery
    session.expire_all()
    so = service.service_orders_for_product(session, product_id=product_id, now=now, tz=TZ)[0]
    assert so["delivery"] == "delivered" and so["partner_ref"].startswith("OPE-") and so["attempts"] == 1
    assert [m["kind"] for m in so["messages"]] == ["serviceOrder.create", "serviceOrder.response"]
    assert so["messages"][0]["body"]["serviceOrderItem"][0]["action"] == "add"
    clock.advance(seconds=11)
    assert _drain(session, w) == 1
    session.expire_all()
    assert service.service_orders_for_product(session, product_id=product_id, now=now, tz=TZ)[0]["state"] == "inProgress"
    item = session.execute(select(ProductOrderItem).where(ProductOrderItem.order_id == order.id)).scalar_one()
    assert item.state == "inProgress"
    clock.advance(seconds=30)
    assert _drain(session, w) == 1
    session.expire_all()
    so = service.service_orders_for_product(session, product_id=product_id, now=now, tz=TZ)[0]
    assert so["state"] == "completed" and so["confirmed_date"] == date(2026, 11, 23)
    assert session.get(Product, product_id).state == "active"
    assert session.get(ProductOrderItem, item.id).state == "completed"
    actions = session.execute(select(AuditEvent.action).where(AuditEvent.entity_type == "partner_service_order", AuditEvent.entity_id == str(so["id"])).order_by(AuditEvent.id)).scalars().all()
    assert actions == ["submitted", "delivered", "start", "complete"]
    assert _drain(session, w) == 0


def test_a_rejected_order_fails_the_order_item_with_the_partners_reason(session, factory, now, actor):
    tune(session, simulator_reject_percent=100)
    account_id, site_id = customer(session, now, actor)
    order = orders.place_order(session, data=OrderIn(account_id=account_id, items=[OrderItemIn(action="add", offering_id=offering_id(session), site_id=site_id)]), now=now, tz=TZ, actor=actor)
    session.commit()
    _drain(session, worker(factory, MovingClock(now)))
    session.expire_all()
    so = service.service_orders_for_items(session, order_item_ids=_item_ids(session, order), now=now, tz=TZ)[0]
    assert so["state"] == "rejected" and so["state_reason"]
    item = session.execute(select(ProductOrderItem).where(ProductOrderItem.order_id == order.id)).scalar_one()
    assert item.state in ("failed", "rejected")
    assert _count(session, Job, Job.kind == "partners.simulate") == 0


def test_a_site_outside_the_partners_footprint_is_rejected_as_not_serviceable(session, factory, now, actor):
    tune(session)
    account, site, product = line(session, now, actor, coverage=("vumatel",))
    so_id = _submit(session, now, actor, product, account, site, action="add")
    session.commit()
    _drain(session, worker(factory, MovingClock(now)))
    session.expire_all()
    so = session.get(PartnerServiceOrder, so_id)
    assert so.state == "rejected" and "not serviceable" in so.state_reason


def test_during_an_outage_delivery_retries_with_backoff_and_nothing_is_lost(session, factory, now, actor):
    tune(session, simulator_outage=True)
    account, site, product = line(session, now, actor)
    so_id = _submit(session, now, actor, product, account, site)
    session.commit()
    clock = MovingClock(now)
    w = worker(factory, clock)
    assert _drain(session, w) == 1
    job = session.execute(select(Job).where(Job.kind == "partners.deliver")).scalar_one()
    assert job.state == "queued" and job.attempts == 1 and "outage" in job.last_error and job.run_at == now + timedelta(seconds=2)
    assert _drain(session, w) == 0  # not due yet
    clock.advance(seconds=3)
    assert _drain(session, w) == 1
    session.expire_all()
    job = session.get(Job, job.id)
    assert job.attempts == 2 and job.run_at == clock.at + timedelta(seconds=4)
    listed = service.list_service_orders(session, now=clock.at, delivery="retrying", tz=TZ)
    assert [o["id"] for o in listed["items"]] == [so_id] and listed["items"][0]["attempts"] == 2 and "outage" in listed["items"][0]["last_error"]
    assert service.desk_summary(session, now=clock.at, tz=TZ)["totals"]["stuck"] == 1
    tune(session)
    session.commit()
    clock.advance(seconds=5)
    assert _drain(session, w) == 1
    session.expire_all()
    so = session.get(PartnerServiceOrder, so_id)
    assert so.delivered_at == clock.at and so.attempts == 3 and so.partner_ref
    assert session.get(Job, job.id).state == "done"


def test_simulated_callbacks_wait_out_an_outage_and_arrive_afterwards(session, factory, now, actor):
    tune(session)
    account, site, product = line(session, now, actor)
    so_id = _submit(session, now, actor, product, account, site)
    session.commit()
    clock = MovingClock(now)
    w = worker(factory, clock)
    _drain(session, w)
    tune(session, simulator_outage=True)
    session.commit()
    clock.advance(seconds=40)
    _drain(session, w)
    session.expire_all()
    assert session.get(PartnerServiceOrder, so_id).state == "acknowledged"
    tune(session)
    session.commit()
    clock.advance(minutes=5)
    _drain(session, w)
    session.expire_all()
    assert session.get(PartnerServiceOrder, so_id).state == "completed"


def test_delivering_the_same_order_again_changes_nothing(session, factory, now, actor):
    tune(session)
    account, site, product = line(session, now, actor)
    so_id = _submit(session, now, actor, product, account, site)
    session.commit()
    first = service.deliver(session, service_order_id=so_id, now=now, tz=TZ)
    session.commit()
    msgs = _count(session, PartnerMessage)
    sims = _count(session, Job, Job.kind == "partners.simulate")
    again = service.deliver(session, service_order_id=so_id, now=now + timedelta(seconds=1), tz=TZ)
    session.commit()
    assert "skipped" in again and first["partner_ref"] == session.get(PartnerServiceOrder, so_id).partner_ref
    assert _count(session, PartnerMessage) == msgs and _count(session, Job, Job.kind == "partners.simulate") == sims == 2
    # and the delivery job (idempotency key = external reference) runs as a no-op
    assert _drain(session, worker(factory, MovingClock(now))) == 1
    session.expire_all()
    assert _count(session, PartnerMessage) == msgs


def test_duplicate_out_of_order_and_unknown_callbacks_are_ignored_and_logged(session, factory, now, actor):
    tune(session)
    account, site, product = line(session, now, actor)
    so_id = _submit(session, now, actor, product, account, site)
    session.commit()
    clock = MovingClock(now)
    w = worker(factory, clock)
    _drain(session, w)
    clock.advance(minutes=2)
    _drain(session, w)
    session.expire_all()
    so = session.get(PartnerServiceOrder, so_id)
    assert so.state == "completed"
    confirmed = so.confirmed_date
    events_before = _count(session, AuditEvent)
    late_progress = state_change_event(partner_ref=so.partner_ref, external_ref=so.external_ref, state="inProgress")
    res = service.apply_partner_event(session, partner_code="openserve", event=late_progress, now=clock.at, actor=PARTNER, tz=TZ)
    assert res["outcome"] == "ignored" and "out of order" in res["detail"]
    dup = state_change_event(partner_ref=so.partner_ref, external_ref=so.external_ref, state="completed", completion_date=date(2027, 1, 1))
    res = service.apply_partner_event(session, partner_code="openserve", event=dup, now=clock.at, actor=PARTNER, tz=TZ)
    assert res["outcome"] == "ignored" and "duplicate" in res["detail"]
    unknown = state_change_event(partner_ref="OPE-NOPE", external_ref="OPS-SO-999999", state="completed")
    res = service.apply_partner_event(session, partner_code="openserve", event=unknown, now=clock.at, actor=PARTNER, tz=TZ)
    assert res["outcome"] == "unknown" and res["service_order_id"] is None
    session.commit()
    so = session.get(PartnerServiceOrder, so_id)
    assert so.state == "completed" and so.confirmed_date == confirmed
    assert _count(session, AuditEvent) == events_before
    ignored = session.execute(select(PartnerMessage).where(PartnerMessage.outcome == "ignored").order_by(PartnerMessage.id)).scalars().all()
    assert [(m.service_order_id, m.note.split(":")[0]) for m in ignored] == [(so_id, "out of order"), (so_id, "duplicate"), (None, "no service order with id 'OPE-NOPE' / externalId 'OPS-SO-999999' for openserve")]


def test_a_malformed_event_is_refused_with_what_is_wrong_and_nothing_is_logged(session, now, actor):
    with pytest.raises(service.UnableToReadCallback, match="state must be one of"):
        service.apply_partner_event(session, partner_code="openserve", event={"eventType": "ServiceOrderStateChangeEvent", "event": {"serviceOrder": {"id": "X", "state": "done"}}}, now=now, actor=actor, tz=TZ)
    assert _count(session, PartnerMessage) == 0


@pytest.mark.parametrize(("kw", "error", "message"), [
    ({"partner_code": "telkomx"}, service.PartnerNotFound, "unknown partner 'telkomx'"),
    ({"action": "suspend"}, service.UnableToSubmitServiceOrder, "action must be one of add, modify, delete"),
    ({"partner_code": "courierguy"}, service.UnableToSubmitServiceOrder, "not a network operator"),
    ({"account_id": 987654}, service.UnableToSubmitServiceOrder, "account 987654 not found"),
])
def test_bad_submissions_are_refused_with_a_clear_error_and_nothing_is_created(session, now, actor, kw, error, message):
    account, site, product = line(session, now, actor)
    with pytest.raises(error, match=message):
        _submit(session, now, actor, product, account, site, **kw)
    assert _count(session, PartnerServiceOrder) == 0 and _count(session, Job) == 0


def test_a_dead_delivery_can_be_retried_now_and_the_retry_is_audited(session, factory, now, actor):
    tune(session, simulator_outage=True)
    account, site, product = line(session, now, actor)
    so_id = _submit(session, now, actor, product, account, site)
    session.execute(update(Job).values(max_attempts=1))
    session.commit()
    clock = MovingClock(now)
    _drain(session, worker(factory, clock))
    session.expire_all()
    dead = service.list_service_orders(session, now=now, delivery="dead", tz=TZ)["items"]
    assert [o["id"] for o in dead] == [so_id] and dead[0]["can_retry"]
    tune(session)
    service.retry_delivery(session, service_order_id=so_id, now=now, actor=actor, reason="Openserve API back up")
    session.commit()
    assert _drain(session, worker(factory, clock)) == 1
    session.expire_all()
    assert session.get(PartnerServiceOrder, so_id).delivered_at is not None
    ev = session.execute(select(AuditEvent).where(AuditEvent.action == "delivery_retried")).scalar_one()
    assert ev.account_id == account and ev.before["job_state"] == "dead" and ev.reason == "Openserve API back up"
    with pytest.raises(service.RetryNotAllowed, match="needs no delivery"):
        service.retry_delivery(session, service_order_id=so_id, now=now, actor=actor)


def test_late_orders_are_those_still_open_past_the_partners_sla(session, now, actor):
    account, site, product = line(session, now, actor)
    so_id = _submit(session, now, actor, product, account, site, requested_date=now.date())
    session.flush()
    so = session.get(PartnerServiceOrder, so_id)
    assert so.due_date == date(2026, 12, 2)  # 7 business days for Openserve
    assert service.list_service_orders(session, now=now, late=True, tz=TZ)["total"] == 0
    later = now + timedelta(days=10)
    assert [o["id"] for o in service.list_service_orders(session, now=later, late=True, tz=TZ)["items"]] == [so_id]
    summary = {p["code"]: p for p in service.desk_summary(session, now=later, tz=TZ)["partners"]}
    assert summary["openserve"]["open"] == 1 and summary["openserve"]["late"] == 1 and summary["vumatel"]["open"] == 0
    panel = service.account_partner_orders(session, account_id=account, now=later, tz=TZ)
    assert panel["open_count"] == 1 and panel["orders"][0]["late"]


def test_an_undelivered_order_can_be_cancelled_but_a_delivered_one_cannot(session, now, actor):
    tune(session)
    account, site, product = line(session, now, actor)
    a = _submit(session, now, actor, product, account, site)
    b = _submit(session, now, actor, product, account, site, action="delete")
    service.deliver(session, service_order_id=b, now=now, tz=TZ)
    assert service.cancel_service_order(session, service_order_id=a, now=now, actor=actor, reason="customer changed mind") == []
    with pytest.raises(service.ServiceOrderTransitionNotAllowed, match="already delivered"):
        service.cancel_service_order(session, service_order_id=b, now=now, actor=actor, reason="x")
    assert service.deliver(session, service_order_id=a, now=now, tz=TZ)["skipped"] == "already cancelled"


def test_get_partner_returns_sla_fees_and_notice_rules_but_no_secrets(session):
    p = service.get_partner(session, code="vumatel")
    assert p["kind"] == "fno" and p["notice_days"] == 30 and p["monthly_line_cost_minor"] > 0 and p["adapter"] == "simulator"
    assert "webhook_secret" not in p and "auth_token" not in p and p["has_webhook_secret"]
    with pytest.raises(service.PartnerNotFound):
        service.get_partner(session, code="nope")


def test_two_workers_draining_together_deliver_and_complete_each_order_exactly_once(session, factory, now, actor):
    import threading

    tune(session)
    ids = []
    for k in range(4):
        account, site, product = line(session, now, actor)
        ids.append(_submit(session, now, actor, product, account, site, reason=f"upgrade {k}"))
    session.commit()
    clock = MovingClock(now + timedelta(minutes=5))
    workers = [worker(factory, clock, name=f"w{i}") for i in range(2)]
    for _ in range(3):  # delivery, then the two callbacks (each callback is due only after the delivery ran)
        threads = [threading.Thread(target=w.drain) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        clock.advance(minutes=5)
    session.expire_all()
    for so_id in ids:
        so = session.get(PartnerServiceOrder, so_id)
        assert so.state == "completed"
        kinds = session.execute(select(PartnerMessage.kind, PartnerMessage.outcome).where(PartnerMessage.service_order_id == so_id).order_by(PartnerMessage.sequence)).all()
        assert [tuple(k) for k in kinds] == [("serviceOrder.create", "sent"), ("serviceOrder.response", "applied"),
                                             ("ServiceOrderStateChangeEvent", "applied"), ("ServiceOrderStateChangeEvent", "applied")]
    assert _count(session, Job, Job.state != "done") == 0


def test_in_realistic_mode_the_simulator_confirms_after_the_partners_sla_in_business_days(session, factory, now, actor):
    tune(session, simulator_mode="realistic")
    account, site, product = line(session, now, actor)
    so_id = _submit(session, now, actor, product, account, site, requested_date=now.date())
    session.commit()
    clock = MovingClock(now)
    w = worker(factory, clock)
    assert _drain(session, w) == 1
    run_ats = session.execute(select(Job.run_at).where(Job.kind == "partners.simulate").order_by(Job.run_at)).scalars().all()
    assert [r.isoformat() for r in run_ats] == ["2026-11-24T08:00:00+00:00", "2026-12-02T09:00:00+00:00"]  # 10:00 next business day; 11:00 after 7 business days (SAST)
    clock.advance(days=3)
    assert _drain(session, w) == 1
    assert session.get(PartnerServiceOrder, so_id).state == "inProgress"
    clock.at = run_ats[1]
    assert _drain(session, w) == 1
    so = session.get(PartnerServiceOrder, so_id)
    assert so.state == "completed" and so.confirmed_date == date(2026, 12, 2) and so.confirmed_date <= so.due_date
