"""Courier collections: booking into a courier's slots, bad input refused with nothing changed, attempts and
rebooking, warehouse receipt through inventory, bulk courier runs, swaps of faulty devices and the courier simulator."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from opsline.core.domain_events import DomainEvent
from opsline.core.errors import TransitionNotAllowed
from opsline.core.events import Actor, AuditEvent
from opsline.core.jobs import Job
from opsline.inventory.models import Equipment, EquipmentEvent
from opsline.logistics import service
from opsline.logistics.errors import SlotFull, UnableToBookCollection, UnableToReceiveEquipment, UnableToRecordAttempt
from opsline.logistics.models import Collection, CollectionAttempt, CourierSlot, EquipmentSwap
from opsline.notifications.models import Message

from logistics_helpers import TZ, equipment_state, loaned_router, next_weekday_slot
from partners_helpers import MovingClock, worker


def _count(session, model, *where) -> int:  # type: ignore[no-untyped-def]
    return session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def _book(session, now, actor, account_id, ids, **kw):  # type: ignore[no-untyped-def]
    args = dict(account_id=account_id, equipment_ids=ids, slot_start=next_weekday_slot(now), address="7 Jan Smuts Avenue, Rosebank",
                contact_name="Lerato Dlamini", contact_phone="082 555 0101", reference="CXL-000001", courier_code="courierguy",
                idempotency_key=f"k-{account_id}-{ids}", now=now, actor=actor, tz=TZ) | kw
    return service.book_collection(session, **args)


def _snapshot(session):  # type: ignore[no-untyped-def]
    return (_count(session, Collection), _count(session, AuditEvent), _count(session, Job), _count(session, Message))


def test_a_booking_holds_the_slot_tells_the_customer_and_the_courier_and_publishes_collection_booked(session, now, actor, monkeypatch):
    seen: list[DomainEvent] = []
    from opsline.core import domain_events

    real = domain_events.publish
    monkeypatch.setattr(domain_events, "publish", lambda s, name, payload, **kw: (seen.append(name), real(s, name, payload, **kw))[1])
    account_id, _p, router = loaned_router(session, now, actor)
    c = _book(session, now, actor, account_id, [router.id])
    assert c["state"] == "booked" and c["number"].startswith("COL-") and c["equipment_ids"] == [router.id] and c["reference"] == "CXL-000001"
    assert "collection.booked" in seen
    assert _count(session, Message, Message.account_id == account_id, Message.event == "collection.booked") == 1
    assert _count(session, Job, Job.kind == service.DELIVER_JOB) == 1
    slot = next(s for s in service.slots(session, courier_code="courierguy", from_date=(now + timedelta(days=1)).astimezone(TZ).date(), days=1, tz=TZ)
                if s["start"] == c["slot_start"])
    assert slot["booked"] == 1 and slot["free"] == slot["capacity"] - 1
    # the same key again replays the first booking
    again = _book(session, now, actor, account_id, [router.id])
    assert again["id"] == c["id"] and _count(session, Collection) == 1


@pytest.mark.parametrize("case", ["past", "outside", "holiday", "naive", "not_on_loan", "other_account", "no_address", "not_courier", "already_booked"])
def test_a_bad_booking_is_refused_naming_the_field_and_nothing_changes(session, now, actor, case):
    account_id, _p, router = loaned_router(session, now, actor)
    other_account, _p2, other_router = loaned_router(session, now, actor)
    kw: dict = {}
    field = "slot_start"
    if case == "past":
        kw["slot_start"] = next_weekday_slot(now, days=-1)
    elif case == "outside":
        kw["slot_start"] = next_weekday_slot(now, hour=19)
    elif case == "holiday":
        kw["slot_start"] = next_weekday_slot(now.replace(month=12, day=16), days=0)  # Day of Reconciliation (a Wednesday)
    elif case == "naive":
        kw["slot_start"] = next_weekday_slot(now).replace(tzinfo=None)
    elif case == "not_on_loan":
        router.owner = "customer_owned"
        field = "equipment_ids"
    elif case == "other_account":
        kw["equipment_ids"] = [other_router.id]
        field = "equipment_ids"
    elif case == "no_address":
        kw["address"] = "  "
        field = "address"
    elif case == "not_courier":
        kw["courier_code"] = "openserve"
        field = "courier_code"
    elif case == "already_booked":
        _book(session, now, actor, account_id, [router.id], idempotency_key="first")
        kw["idempotency_key"] = "second"
        field = "equipment_ids"
    session.flush()
    before = _snapshot(session)
    with pytest.raises(UnableToBookCollection) as exc:
        _book(session, now, actor, account_id, [router.id], **kw)
    assert exc.value.field == field, exc.value.detail
    assert _snapshot(session) == before


def test_a_full_slot_is_refused_and_nothing_changes(session, now, actor):
    slot = next_weekday_slot(now)
    session.execute(CourierSlot.__table__.update().where(CourierSlot.courier_code == "courierguy").values(capacity=1))
    a1, _p, r1 = loaned_router(session, now, actor)
    a2, _p, r2 = loaned_router(session, now, actor)
    _book(session, now, actor, a1, [r1.id], slot_start=slot)
    before = _snapshot(session)
    with pytest.raises(SlotFull) as exc:
        _book(session, now, actor, a2, [r2.id], slot_start=slot)
    assert exc.value.field == "slot_start" and "full" in exc.value.detail
    assert _snapshot(session) == before


def test_a_failed_attempt_is_rebooked_then_collected_and_received_at_the_warehouse(session, now, actor):
    account_id, _p, router = loaned_router(session, now, actor)
    c = _book(session, now, actor, account_id, [router.id])
    failed = service.record_attempt(session, collection_id=c["id"], outcome="not_home", note="card left", now=now, actor=actor, tz=TZ,
                                    rebook_slot_start=next_weekday_slot(now, days=2, hour=12))
    assert failed["state"] == "booked" and failed["attempts"] == 1 and failed["slot_start"] == next_weekday_slot(now, days=2, hour=12)
    done = service.record_attempt(session, collection_id=c["id"], outcome="collected", now=now, actor=actor, tz=TZ)
    assert done["state"] == "collected" and done["attempts"] == 2
    assert [a.outcome for a in session.execute(select(CollectionAttempt).order_by(CollectionAttempt.attempt_no)).scalars()] == ["not_home", "collected"]
    out = service.receive_at_warehouse(session, equipment_ids=[router.id], condition="good", collection_id=c["id"], now=now, actor=actor, tz=TZ)
    assert out["collections"] == [c["id"]]
    assert equipment_state(session, router.id) == "returned"
    assert service.get_collection(session, collection_id=c["id"])["state"] == "received"
    history = session.execute(select(EquipmentEvent.to_state).where(EquipmentEvent.equipment_id == router.id).order_by(EquipmentEvent.id)).scalars().all()
    assert history[-1] == "returned" and "awaiting_return" in history


def test_an_attempt_on_a_closed_booking_and_a_second_receipt_are_refused_and_change_nothing(session, now, actor):
    account_id, _p, router = loaned_router(session, now, actor)
    c = _book(session, now, actor, account_id, [router.id])
    service.record_attempt(session, collection_id=c["id"], outcome="collected", now=now, actor=actor, tz=TZ)
    service.receive_at_warehouse(session, equipment_ids=[router.id], condition="faulty", collection_id=c["id"], now=now, actor=actor, tz=TZ)
    session.flush()
    before = _snapshot(session) + (_count(session, CollectionAttempt), _count(session, EquipmentEvent))
    with pytest.raises(TransitionNotAllowed):
        service.record_attempt(session, collection_id=c["id"], outcome="refused", now=now, actor=actor, tz=TZ)
    with pytest.raises(UnableToReceiveEquipment) as exc:
        service.receive_at_warehouse(session, equipment_ids=[router.id], condition="good", now=now, actor=actor, tz=TZ)
    assert exc.value.field == "equipment_ids" and "already received" in exc.value.detail
    with pytest.raises(UnableToRecordAttempt) as exc2:
        service.record_attempt(session, collection_id=c["id"], outcome="lost_in_space", now=now, actor=actor, tz=TZ)
    assert exc2.value.field == "outcome"
    assert _snapshot(session) + (_count(session, CollectionAttempt), _count(session, EquipmentEvent)) == before


def test_a_courier_run_books_every_device_awaiting_return_in_one_slot(session, now, actor):
    routers = [loaned_router(session, now, actor) for _ in range(3)]
    loaned_router(session, now, actor, awaiting=False)  # still in use: not collected
    dry = service.book_courier_run(session, courier_code="courierguy", slot_start=next_weekday_slot(now), now=now, actor=actor, tz=TZ, dry_run=True)
    assert dry["accounts"] == 3 and _count(session, Collection) == 0
    out = service.book_courier_run(session, courier_code="courierguy", slot_start=next_weekday_slot(now), now=now, actor=actor, tz=TZ)
    assert out["booked"] == 3 and out["equipment"] == 3
    numbers = session.execute(select(Collection.number).order_by(Collection.id)).scalars().all()
    assert all(n.startswith("COL-") for n in numbers)
    again = service.book_courier_run(session, courier_code="courierguy", slot_start=next_weekday_slot(now), now=now, actor=actor, tz=TZ)
    assert again["booked"] == 0
    assert {r[2].id for r in routers} == set(session.execute(select(Equipment.id).join_from(Equipment, Collection, Collection.account_id == Equipment.account_id)).scalars())


def test_a_faulty_router_is_swapped_new_one_shipped_old_one_collected_with_history_kept(session, now, actor):
    account_id, product_id, router = loaned_router(session, now, actor, awaiting=False)
    sw = service.swap_faulty_equipment(session, equipment_id=router.id, reason="Wi-Fi drops every hour", slot_start=next_weekday_slot(now),
                                       address="7 Jan Smuts Avenue", contact_name="Lerato", contact_phone="082 555 0101", idempotency_key="swap-1",
                                       now=now, actor=actor, tz=TZ)
    assert sw["old_equipment_id"] == router.id and sw["new_serial"] and sw["collection_number"].startswith("COL-")
    assert equipment_state(session, sw["new_equipment_id"]) == "dispatched"
    assert session.get(Equipment, sw["new_equipment_id"]).product_id == product_id
    service.record_attempt(session, collection_id=sw["collection_id"], outcome="collected", now=now, actor=actor, tz=TZ)
    service.receive_at_warehouse(session, equipment_ids=[router.id], condition="faulty", now=now, actor=actor, tz=TZ)
    assert equipment_state(session, router.id) == "returned"
    assert _count(session, EquipmentSwap) == 1
    assert service.swap_faulty_equipment(session, equipment_id=router.id, reason="x", slot_start=next_weekday_slot(now), address="a", contact_name="b",
                                         contact_phone="c", idempotency_key="swap-1", now=now, actor=actor, tz=TZ)["id"] == sw["id"]


def test_the_courier_simulator_confirms_a_booking_and_reports_the_attempt_through_the_job_table(session, factory, now, actor):
    from opsline.partners.models import Partner

    session.execute(Partner.__table__.update().where(Partner.code == "courierguy").values(simulator_reject_percent=0, simulator_complete_seconds=30))
    account_id, _p, router = loaned_router(session, now, actor)
    c = _book(session, now, actor, account_id, [router.id])
    session.commit()
    clock = MovingClock(now)
    w = worker(factory, clock)
    w.drain()
    session.expire_all()
    got = service.get_collection(session, collection_id=c["id"])
    assert got["state"] == "confirmed" and got["courier_ref"].startswith("COU-")
    clock.advance(seconds=31)
    session.commit()  # SQLite: release our write transaction so the worker can take its own
    w.drain()
    session.expire_all()
    got = service.get_collection(session, collection_id=c["id"])
    from opsline.logistics.courier import simulated_outcome

    expected = simulated_outcome(got["number"], 1)
    assert got["attempts"] == 1
    assert got["state"] == ("collected" if expected == "collected" else "failed")
    attempt = session.execute(select(CollectionAttempt).where(CollectionAttempt.collection_id == c["id"])).scalar_one()
    assert attempt.outcome == expected and attempt.source == "courier" and attempt.recorded_by == "system:courier:courierguy"


def test_a_courier_update_for_an_attempt_already_recorded_is_ignored(session, now, actor):
    from opsline.logistics import courier

    account_id, _p, router = loaned_router(session, now, actor)
    c = _book(session, now, actor, account_id, [router.id])
    service.record_attempt(session, collection_id=c["id"], outcome="collected", now=now, actor=actor, tz=TZ)
    out = courier.apply_courier_event(session, courier_code="courierguy", event={"externalId": c["number"], "attempt": 1, "outcome": "not_home"}, now=now, tz=TZ)
    assert "ignored" in out
    assert service.get_collection(session, collection_id=c["id"])["state"] == "collected"
    assert Actor.system("x").is_system


def test_two_concurrent_bookings_with_the_same_key_make_one_collection(factory, now, actor):
    import threading

    with factory.begin() as s:
        account_id, _p, router = loaned_router(s, now, actor)
        rid = router.id
    results: list = []
    errors: list = []
    barrier = threading.Barrier(2)

    def book() -> None:
        try:
            with factory.begin() as s:
                barrier.wait(timeout=10)
                results.append(_book(s, now, actor, account_id, [rid], idempotency_key="same-key")["id"])
        except Exception as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=book) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert len(results) == 2 and results[0] == results[1]
    with factory() as s:
        assert _count(s, Collection) == 1
