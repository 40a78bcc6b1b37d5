"""Logistics operations other areas call: courier slots, collection bookings (single, rebooked, bulk for a courier
run), attempts, warehouse receipt (which updates the equipment through inventory and credits an unreturned fee back),
and swaps of faulty devices. Domain events: collection.booked, collection.attempted, collection.collected,
equipment.received (payload: account_id, equipment_ids, reference, collection_id)."""

from __future__ import annotations

import secrets
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opsline.billing import service as billing
from opsline.catalog.models import ProductOffering
from opsline.core import domain_events, events, jobs, lifecycle
from opsline.core.calendar.days import is_business_day
from opsline.core.errors import NotFound
from opsline.core.events import Actor
from opsline.core.ids import reference as make_ref
from opsline.core.localtime import local_date
from opsline.core.money import Money
from opsline.customers import service as customers
from opsline.customers.schemas import MemoIn
from opsline.inventory import service as inventory
from opsline.inventory.models import Equipment, EquipmentState, Product
from opsline.logistics.errors import (
    CollectionNotFound,
    SlotFull,
    UnableToBookCollection,
    UnableToReceiveEquipment,
    UnableToRecordAttempt,
    UnableToSwapEquipment,
)
from opsline.logistics.models import (
    ATTEMPT_OUTCOMES,
    COLLECTION,
    CONDITIONS,
    OPEN_COLLECTION_STATES,
    UNRETURNED_FEE,
    Collection,
    CollectionAttempt,
    CollectionItem,
    CollectionState,
    CourierSlot,
    EquipmentSwap,
    FeeState,
    OntReturnRule,
    UnreturnedFee,
)
from opsline.notifications import service as notifications
from opsline.partners.models import Partner, PartnerKind

DELIVER_JOB = "logistics.deliver"
ES = EquipmentState
C = CollectionState
# a device can be collected while the customer still has it
RETURNABLE_STATES = (ES.DISPATCHED.value, ES.INSTALLED.value, ES.AWAITING_RETURN.value, ES.LOST.value)
# the slot is taken by every booking that is not cancelled or refused by the courier
SLOT_HOLDING_STATES = (C.BOOKED.value, C.CONFIRMED.value, C.FAILED.value, C.COLLECTED.value, C.RECEIVED.value)
EVENTS = ("collection.booked", "collection.attempted", "collection.collected", "equipment.received",
          "equipment.unreturned_fee_charged", "equipment.unreturned_fee_credited")


# --- slots ----------------------------------------------------------------------------------------

def _courier(session: Session, code: str | None) -> Partner:
    if code:
        p = session.get(Partner, code)
        if p is None or p.kind != PartnerKind.COURIER:
            raise UnableToBookCollection(f"'{code}' is not a courier", field="courier_code")
        if not p.active:
            raise UnableToBookCollection(f"{p.name} is not active", field="courier_code")
        return p
    p = session.execute(select(Partner).join(CourierSlot, CourierSlot.courier_code == Partner.code)
                        .where(Partner.kind == PartnerKind.COURIER.value, Partner.active.is_(True), CourierSlot.active.is_(True))
                        .order_by(Partner.code).limit(1)).scalar_one_or_none()
    if p is None:
        raise UnableToBookCollection("no active courier has collection slots", field="courier_code")
    return p


def _is_off_day(d: date, courier: Partner) -> bool:
    """A public holiday of the courier's country (weekend slots are data: a courier that works Saturdays has them)."""
    return not is_business_day(d, holiday_country=courier.holiday_country, weekend=())


def _local_dt(d: date, t: Any, tz: ZoneInfo) -> datetime:
    return datetime(d.year, d.month, d.day, t.hour, t.minute, tzinfo=tz)


def _booked_counts(session: Session, *, courier_code: str, start: datetime, end: datetime, exclude_id: int | None = None) -> dict[datetime, int]:
    q = (select(Collection.slot_start, func.count()).where(Collection.courier_code == courier_code, Collection.slot_start >= start,
                                                           Collection.slot_start < end, Collection.state.in_(SLOT_HOLDING_STATES))
         .group_by(Collection.slot_start))
    if exclude_id is not None:
        q = q.where(Collection.id != exclude_id)
    out: dict[datetime, int] = {}
    for at, n in session.execute(q).all():
        if at.tzinfo is None:
            at = at.replace(tzinfo=start.tzinfo)
        out[at.astimezone(start.tzinfo)] = int(n)
    return out


def slots(session: Session, *, courier_code: str, from_date: date, days: int, tz: ZoneInfo) -> list[dict[str, Any]]:
    """The courier's collection windows on local dates [from_date, from_date + days), public holidays left out, each with
    its capacity, how many are booked and how many are free: two queries whatever the range.
    Raises UnableToBookCollection (not a courier, inactive, days outside 1..62)."""
    if not 1 <= days <= 62:
        raise UnableToBookCollection("days must be between 1 and 62", field="days")
    courier = _courier(session, courier_code)
    rows = list(session.execute(select(CourierSlot).where(CourierSlot.courier_code == courier.code, CourierSlot.active.is_(True))
                                .order_by(CourierSlot.weekday, CourierSlot.start_time)).scalars())
    by_day: dict[int, list[CourierSlot]] = defaultdict(list)
    for r in rows:
        by_day[r.weekday].append(r)
    start = _local_dt(from_date, datetime.min.time(), tz).astimezone(ZoneInfo("UTC"))
    end = _local_dt(from_date + timedelta(days=days), datetime.min.time(), tz).astimezone(ZoneInfo("UTC"))
    booked = _booked_counts(session, courier_code=courier.code, start=start, end=end)
    out: list[dict[str, Any]] = []
    for i in range(days):
        d = from_date + timedelta(days=i)
        if _is_off_day(d, courier):
            continue
        for s in by_day.get(d.weekday(), []):
            st = _local_dt(d, s.start_time, tz).astimezone(ZoneInfo("UTC"))
            en = _local_dt(d, s.end_time, tz).astimezone(ZoneInfo("UTC"))
            n = booked.get(st, 0)
            out.append({"slot_id": s.id, "courier_code": courier.code, "courier_name": courier.name, "date": d, "start": st, "end": en,
                        "label": f"{d.isoformat()} {s.start_time:%H:%M}–{s.end_time:%H:%M}", "capacity": s.capacity, "booked": n,
                        "free": max(0, s.capacity - n)})
    return out


def _check_slot(session: Session, *, courier: Partner, slot_start: datetime, now: datetime, tz: ZoneInfo, exclude_id: int | None = None,
                lock: bool = True, needed: int = 1) -> tuple[CourierSlot, datetime]:
    """The courier slot that starts at `slot_start` (locked), and its end. Raises UnableToBookCollection (naive, in the
    past, not one of the courier's windows, a public holiday), SlotFull."""
    if not isinstance(slot_start, datetime) or slot_start.tzinfo is None:
        raise UnableToBookCollection("slot_start must be a date and time with its timezone", field="slot_start")
    if slot_start <= now:
        raise UnableToBookCollection(f"the slot {slot_start.astimezone(tz):%Y-%m-%d %H:%M} is in the past", field="slot_start")
    local = slot_start.astimezone(tz)
    q = select(CourierSlot).where(CourierSlot.courier_code == courier.code, CourierSlot.weekday == local.weekday(),
                                  CourierSlot.start_time == local.time().replace(second=0, microsecond=0), CourierSlot.active.is_(True))
    slot = session.execute(q.with_for_update() if lock else q).scalar_one_or_none()
    if slot is None or local.second or local.microsecond or _is_off_day(local.date(), courier):
        windows = session.execute(select(CourierSlot.weekday, CourierSlot.start_time).where(
            CourierSlot.courier_code == courier.code, CourierSlot.active.is_(True)).order_by(CourierSlot.weekday, CourierSlot.start_time)).all()
        names = ", ".join(f"{'Mon Tue Wed Thu Fri Sat Sun'.split()[w]} {t:%H:%M}" for w, t in windows) or "none"
        raise UnableToBookCollection(f"{local:%a %Y-%m-%d %H:%M} is not one of {courier.name}'s collection slots ({names})",
                                     field="slot_start", extra={"slots": names})
    taken = _booked_counts(session, courier_code=courier.code, start=slot_start, end=slot_start + timedelta(seconds=1), exclude_id=exclude_id)
    n = sum(taken.values())
    if n + needed > slot.capacity:
        raise SlotFull(f"{courier.name}'s slot {local:%Y-%m-%d %H:%M} is full ({n} of {slot.capacity} booked)", field="slot_start",
                       extra={"capacity": slot.capacity, "booked": n})
    end = _local_dt(local.date(), slot.end_time, tz).astimezone(slot_start.tzinfo)
    return slot, end


# --- equipment eligibility ------------------------------------------------------------------------

def _ont_collectors(session: Session) -> set[str]:
    return set(session.execute(select(OntReturnRule.partner_code).where(OntReturnRule.collect_ont.is_(True))).scalars())


def _returnable(session: Session, *, account_id: int, equipment_ids: list[int], exclude_collection: int | None = None) -> list[Equipment]:
    """The devices, each on loan to the account (an ISP-loaned router, or an ONT of an FNO that wants it back) and not
    already in an open collection. Raises UnableToBookCollection naming equipment_ids."""
    ids = sorted({int(i) for i in equipment_ids})
    if not ids:
        raise UnableToBookCollection("choose at least one device to collect", field="equipment_ids")
    rows = {e.id: e for e in session.execute(select(Equipment).where(Equipment.id.in_(ids))).scalars()}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise UnableToBookCollection(f"equipment {', '.join(map(str, missing))} not found", field="equipment_ids")
    partners = dict(session.execute(select(Product.id, Product.partner_code).where(
        Product.id.in_([e.product_id for e in rows.values() if e.product_id]))).all())
    collectors = _ont_collectors(session)
    for e in rows.values():
        if e.account_id != account_id:
            raise UnableToBookCollection(f"{e.kind} {e.serial_number} is not with account {account_id}", field="equipment_ids")
        loaned = e.owner == "isp_loaned" or (e.owner == "fno" and e.kind == "ont" and partners.get(e.product_id) in collectors)
        if not loaned:
            why = "the FNO leaves its ONT on the wall" if e.owner == "fno" else "the customer owns it"
            raise UnableToBookCollection(f"{e.kind} {e.serial_number} is not on loan ({why})", field="equipment_ids")
        if e.state not in RETURNABLE_STATES:
            raise UnableToBookCollection(f"{e.kind} {e.serial_number} is {e.state.replace('_', ' ')}, not with the customer", field="equipment_ids")
    q = (select(CollectionItem.equipment_id, Collection.number).join(Collection, Collection.id == CollectionItem.collection_id)
         .where(CollectionItem.equipment_id.in_(ids), Collection.state.in_(OPEN_COLLECTION_STATES)))
    if exclude_collection is not None:
        q = q.where(Collection.id != exclude_collection)
    busy = session.execute(q).first()
    if busy is not None:
        raise UnableToBookCollection(f"{rows[busy[0]].serial_number} is already in collection {busy[1]}", field="equipment_ids")
    return [rows[i] for i in ids]


# --- bookings -------------------------------------------------------------------------------------

def _items(session: Session, collection_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    ids = list(collection_ids)
    if not ids:
        return out
    for it, e in session.execute(select(CollectionItem, Equipment).join(Equipment, Equipment.id == CollectionItem.equipment_id)
                                 .where(CollectionItem.collection_id.in_(ids)).order_by(CollectionItem.id)).all():
        out[it.collection_id].append({"equipment_id": e.id, "kind": e.kind, "model": e.model, "serial_number": e.serial_number, "owner": e.owner,
                                      "state": e.state, "received_at": it.received_at, "condition": it.condition})
    return out


def collection_dict(c: Collection, items: list[dict[str, Any]] | None = None, *, actor: Actor | None = None) -> dict[str, Any]:
    return {"id": c.id, "number": c.number, "account_id": c.account_id, "courier_code": c.courier_code, "state": c.state, "purpose": c.purpose,
            "slot_start": c.slot_start, "slot_end": c.slot_end, "address": c.address, "contact_name": c.contact_name, "contact_phone": c.contact_phone,
            "reference": c.reference, "courier_ref": c.courier_ref, "attempts": c.attempts, "delivered_at": c.delivered_at, "last_error": c.last_error,
            "state_reason": c.state_reason, "created_at": c.created_at, "created_by": c.created_by, "updated_at": c.updated_at,
            "equipment_ids": [i["equipment_id"] for i in items or []], "items": items or [],
            "allowed_actions": COLLECTION.allowed_actions(c.state, actor=actor)}


def get_collection(session: Session, *, collection_id: int, actor: Actor | None = None) -> dict[str, Any]:
    """One collection with its items. Raises CollectionNotFound."""
    c = _get(session, collection_id)
    return collection_dict(c, _items(session, [c.id])[c.id], actor=actor)


def _get(session: Session, collection_id: int, *, lock: bool = False) -> Collection:
    if not 0 < int(collection_id) < 2**62:
        raise CollectionNotFound(f"collection {collection_id} not found", field="collection_id")
    q = select(Collection).where(Collection.id == collection_id)
    c = session.execute(q.with_for_update() if lock else q).scalar_one_or_none()
    if c is None:
        raise CollectionNotFound(f"collection {collection_id} not found", field="collection_id")
    return c


def _payload(c: Collection, equipment_ids: list[int], **extra: Any) -> dict[str, Any]:
    return {"id": c.id, "collection_id": c.id, "number": c.number, "account_id": c.account_id, "equipment_ids": list(equipment_ids),
            "reference": c.reference, "courier_code": c.courier_code, "slot_start": c.slot_start.isoformat()} | extra


def _memo(session: Session, *, account_id: int, body: str, now: datetime, actor: Actor) -> None:
    customers.add_memo(session, account_id=account_id, data=MemoIn(category="cancellations", body=body[:10_000]), now=now, actor=actor)


def _notify_booked(session: Session, c: Collection, items: list[dict[str, Any]], *, now: datetime, actor: Actor, tz: ZoneInfo) -> None:
    local = c.slot_start.astimezone(tz)
    end = c.slot_end.astimezone(tz)
    notifications.send(session, event="collection.booked", account_id=c.account_id, category="service", now=now, actor=actor, tz=tz,
                       context={"collection": {"number": c.number, "date": local.strftime("%A %d %B %Y"), "window": f"{local:%H:%M}–{end:%H:%M}",
                                               "address": c.address, "contact_name": c.contact_name,
                                               "devices": ", ".join(f"{i['model']} ({i['serial_number']})" for i in items)}},
                       subject_ref=c.number, idempotency_key=f"collection.booked:{c.number}:{c.attempts}:{c.slot_start.isoformat()}",
                       on_opt_out="suppress")


def _enqueue_delivery(session: Session, c: Collection, *, now: datetime) -> None:
    jobs.enqueue(session, kind=DELIVER_JOB, payload={"collection_id": c.id}, now=now,
                 idempotency_key=f"{DELIVER_JOB}:{c.number}:{c.slot_start.isoformat()}", serial_key=f"collection:{c.id}")


def _text(value: str | None, field: str, what: str, max_len: int) -> str:
    v = (value or "").strip()
    if not v:
        raise UnableToBookCollection(f"{what} is required", field=field)
    if len(v) > max_len:
        raise UnableToBookCollection(f"{what} is longer than {max_len} characters", field=field)
    return v


def book_collection(
    session: Session, *, account_id: int, equipment_ids: list[int], slot_start: datetime, address: str, contact_name: str, contact_phone: str,
    reference: str | None, idempotency_key: str, now: datetime, actor: Actor, tz: ZoneInfo, courier_code: str | None = None, purpose: str = "return",
) -> dict[str, Any]:
    """Book a courier collection of the account's loaned equipment in one of the courier's slots, in the caller's
    transaction: the booking (state booked), its items, an audit event and an account memo, the customer's
    'collection booked' message, `collection.booked`, and the delivery to the courier through the job table.
    Idempotent by `idempotency_key`: a repeat (also a concurrent one) returns the first booking and changes nothing.
    Raises UnableToBookCollection (no key/address/contact, not a courier, a slot in the past or outside the courier's
    windows, equipment not on loan to the account or already being collected, unknown account), SlotFull.
    Nothing is changed when it raises."""
    key = (idempotency_key or "").strip()
    if not key or len(key) > 200:
        raise UnableToBookCollection("an idempotency key (up to 200 characters) is required", field="idempotency_key")
    existing = session.execute(select(Collection).where(Collection.idempotency_key == key)).scalar_one_or_none()
    if existing is not None:
        return collection_dict(existing, _items(session, [existing.id])[existing.id], actor=actor)
    if purpose not in ("return", "swap"):
        raise UnableToBookCollection("purpose must be return or swap", field="purpose")
    try:
        customers.get_account(session, account_id=account_id)
    except NotFound as exc:
        raise UnableToBookCollection(f"account {account_id} not found", field="account_id") from exc
    address = _text(address, "address", "the collection address", 300)
    contact_name = _text(contact_name, "contact_name", "a contact name", 120)
    contact_phone = _text(contact_phone, "contact_phone", "a contact phone number", 30)
    if reference is not None and len(reference) > 60:
        raise UnableToBookCollection("the reference is longer than 60 characters", field="reference")
    courier = _courier(session, courier_code)
    units = _returnable(session, account_id=account_id, equipment_ids=equipment_ids)
    slot, slot_end = _check_slot(session, courier=courier, slot_start=slot_start, now=now, tz=tz)
    c = Collection(number=f"pending-{secrets.token_hex(6)}", account_id=account_id, courier_code=courier.code, slot_id=slot.id, state=C.BOOKED.value,
                   purpose=purpose, slot_start=slot_start, slot_end=slot_end, address=address, contact_name=contact_name, contact_phone=contact_phone,
                   reference=(reference or "").strip() or None, idempotency_key=key, attempts=0, created_at=now, created_by=actor.name, updated_at=now)
    try:
        with session.begin_nested():
            session.add(c)
            session.flush()
    except IntegrityError:
        # a concurrent repeat with the same key got there first: replay its answer
        first = session.execute(select(Collection).where(Collection.idempotency_key == key)).scalar_one_or_none()
        if first is None:
            raise
        return collection_dict(first, _items(session, [first.id])[first.id], actor=actor)
    c.number = make_ref("COL-", c.id, width=6)
    session.add_all([CollectionItem(collection_id=c.id, equipment_id=e.id, account_id=account_id) for e in units])
    session.flush()
    items = _items(session, [c.id])[c.id]
    ids = [e.id for e in units]
    events.record(session, now=now, actor=actor, entity_type=COLLECTION.name, entity_id=c.id, account_id=account_id, action="booked",
                  after={"number": c.number, "courier": courier.code, "slot_start": slot_start.isoformat(), "equipment_ids": ids,
                         "reference": c.reference, "purpose": purpose})
    local = slot_start.astimezone(tz)
    _memo(session, account_id=account_id, now=now, actor=actor,
          body=f"Collection {c.number} booked with {courier.name} for {local:%Y-%m-%d %H:%M}: "
               + ", ".join(f"{i['model']} {i['serial_number']}" for i in items) + (f" (ref {c.reference})" if c.reference else ""))
    _notify_booked(session, c, items, now=now, actor=actor, tz=tz)
    domain_events.publish(session, "collection.booked", _payload(c, ids, purpose=purpose), now=now, actor=actor)
    _enqueue_delivery(session, c, now=now)
    return collection_dict(c, items, actor=actor)


def rebook_collection(session: Session, *, collection_id: int, slot_start: datetime, now: datetime, actor: Actor, tz: ZoneInfo,
                      address: str | None = None, contact_name: str | None = None, contact_phone: str | None = None,
                      reason: str | None = None) -> dict[str, Any]:
    """Move a failed (or courier-rejected) collection to a new slot of the same courier (optionally a corrected address
    or contact), tell the customer and the courier again. Raises CollectionNotFound, TransitionNotAllowed (not failed
    or rejected), UnableToBookCollection / SlotFull for the new slot or details. Nothing is changed when it raises."""
    c = _get(session, collection_id, lock=True)
    if COLLECTION.target(c.state, "rebook") is None:
        lifecycle.transition(session, COLLECTION, c, "rebook", now=now, actor=actor, reason=reason)  # raises the lifecycle's own error
    courier = _courier(session, c.courier_code)
    new_address = _text(address, "address", "the collection address", 300) if address is not None else c.address
    new_name = _text(contact_name, "contact_name", "a contact name", 120) if contact_name is not None else c.contact_name
    new_phone = _text(contact_phone, "contact_phone", "a contact phone number", 30) if contact_phone is not None else c.contact_phone
    slot, slot_end = _check_slot(session, courier=courier, slot_start=slot_start, now=now, tz=tz, exclude_id=c.id)
    before = {"slot_start": c.slot_start.isoformat(), "address": c.address}
    lifecycle.transition(session, COLLECTION, c, "rebook", now=now, actor=actor, reason=reason or "rebooked",
                         details={"number": c.number, "slot_start": slot_start.isoformat(), "before": before}, label=f"collection {c.number}")
    c.slot_id, c.slot_start, c.slot_end = slot.id, slot_start, slot_end
    c.address, c.contact_name, c.contact_phone = new_address, new_name, new_phone
    c.delivered_at, c.courier_ref, c.last_error, c.updated_at = None, None, None, now
    items = _items(session, [c.id])[c.id]
    _memo(session, account_id=c.account_id, now=now, actor=actor, body=f"Collection {c.number} rebooked for {slot_start.astimezone(tz):%Y-%m-%d %H:%M}"
          + (f": {reason}" if reason else ""))
    _notify_booked(session, c, items, now=now, actor=actor, tz=tz)
    domain_events.publish(session, "collection.booked", _payload(c, [i["equipment_id"] for i in items], purpose=c.purpose, rebooked=True), now=now, actor=actor)
    _enqueue_delivery(session, c, now=now)
    return collection_dict(c, items, actor=actor)


def record_attempt(session: Session, *, collection_id: int, outcome: str, now: datetime, actor: Actor, tz: ZoneInfo, note: str | None = None,
                   rebook_slot_start: datetime | None = None, source: str = "staff") -> dict[str, Any]:
    """Record the courier's attempt: 'collected' moves the booking to collected (`collection.collected`); 'not_home',
    'refused' or 'wrong_address' to failed, optionally rebooked at once into `rebook_slot_start`. Publishes
    `collection.attempted` with the outcome; audit, attempt history and an account memo.
    Raises UnableToRecordAttempt (unknown outcome or source), CollectionNotFound, TransitionNotAllowed (a closed,
    received or cancelled booking), and what rebook_collection raises. Nothing is changed when it raises."""
    if outcome not in ATTEMPT_OUTCOMES:
        raise UnableToRecordAttempt(f"outcome must be one of {', '.join(ATTEMPT_OUTCOMES)}, not '{outcome}'", field="outcome")
    if source not in ("staff", "courier"):
        raise UnableToRecordAttempt("source must be staff or courier", field="source")
    c = _get(session, collection_id, lock=True)
    action = "collect" if outcome == "collected" else "fail"
    why = outcome.replace("_", " ") + (f": {note.strip()}" if note and note.strip() else "")
    items = _items(session, [c.id])[c.id]
    ids = [i["equipment_id"] for i in items]
    with session.begin_nested():
        lifecycle.transition(session, COLLECTION, c, action, now=now, actor=actor, reason=why,
                             details={"number": c.number, "outcome": outcome, "attempt_no": c.attempts + 1}, label=f"collection {c.number}")
        c.attempts += 1
        c.state_reason, c.updated_at = why, now
        session.add(CollectionAttempt(collection_id=c.id, account_id=c.account_id, attempt_no=c.attempts, slot_start=c.slot_start, outcome=outcome,
                                      note=(note or "").strip() or None, source=source, recorded_at=now, recorded_by=actor.name))
        session.flush()
        _memo(session, account_id=c.account_id, now=now, actor=actor, body=f"Collection {c.number} attempt {c.attempts}: {why}")
        domain_events.publish(session, "collection.attempted", _payload(c, ids, outcome=outcome, attempt_no=c.attempts), now=now, actor=actor)
        if outcome == "collected":
            domain_events.publish(session, "collection.collected", _payload(c, ids), now=now, actor=actor)
        if rebook_slot_start is not None and outcome != "collected":
            return rebook_collection(session, collection_id=c.id, slot_start=rebook_slot_start, now=now, actor=actor, tz=tz, reason=f"after {why}")
    return collection_dict(c, _items(session, [c.id])[c.id], actor=actor)


def cancel_collection(session: Session, *, collection_id: int, reason: str, now: datetime, actor: Actor) -> dict[str, Any]:
    """Cancel an open booking (before the courier has the equipment). Raises CollectionNotFound, ReasonRequired, TransitionNotAllowed."""
    c = _get(session, collection_id, lock=True)
    lifecycle.transition(session, COLLECTION, c, "cancel", now=now, actor=actor, reason=reason, details={"number": c.number}, label=f"collection {c.number}")
    c.state_reason, c.updated_at = reason, now
    _memo(session, account_id=c.account_id, now=now, actor=actor, body=f"Collection {c.number} cancelled: {reason}")
    return collection_dict(c, _items(session, [c.id])[c.id], actor=actor)


# --- warehouse ------------------------------------------------------------------------------------

def receive_at_warehouse(session: Session, *, equipment_ids: list[int], condition: str, now: datetime, actor: Actor, tz: ZoneInfo,
                         collection_id: int | None = None, note: str | None = None) -> dict[str, Any]:
    """The warehouse received these devices: each goes to 'returned' through inventory (a destroyed one is then written
    off), its collection item is marked, a collection whose every item arrived becomes 'received' (one still waiting for
    the courier is cancelled: the device came another way), an unreturned-equipment fee is cancelled (warned) or credited
    back with a negative queued charge (charged), and `equipment.received` is published per account.
    Raises UnableToReceiveEquipment (unknown condition, no devices, unknown device, a device already received or not
    with a customer, a device not in `collection_id`, a collection the courier has not collected), CollectionNotFound.
    Nothing is changed when it raises."""
    if condition not in CONDITIONS:
        raise UnableToReceiveEquipment(f"condition must be one of {', '.join(CONDITIONS)}, not '{condition}'", field="condition")
    ids = sorted({int(i) for i in equipment_ids or []})
    if not ids:
        raise UnableToReceiveEquipment("choose at least one device", field="equipment_ids")
    units = {e.id: e for e in session.execute(select(Equipment).where(Equipment.id.in_(ids)).with_for_update()).scalars()}
    for i in ids:
        e = units.get(i)
        if e is None:
            raise UnableToReceiveEquipment(f"equipment {i} not found", field="equipment_ids")
        if e.state not in RETURNABLE_STATES:
            raise UnableToReceiveEquipment(f"{e.kind} {e.serial_number} is {e.state.replace('_', ' ')}: it was already received or is not with a customer",
                                           field="equipment_ids")
    open_items = session.execute(select(CollectionItem, Collection).join(Collection, Collection.id == CollectionItem.collection_id)
                                 .where(CollectionItem.equipment_id.in_(ids), Collection.state.in_(OPEN_COLLECTION_STATES))).all()
    if collection_id is not None:
        col = _get(session, collection_id, lock=True)
        inside = {it.equipment_id for it, c in open_items if c.id == col.id}
        stray = [units[i].serial_number for i in ids if i not in inside]
        if stray:
            raise UnableToReceiveEquipment(f"{', '.join(stray)} not in collection {col.number}", field="equipment_ids")
        if col.state != C.COLLECTED.value:
            raise UnableToReceiveEquipment(f"collection {col.number} is {col.state}; the courier has not collected it", field="collection_id")
    reason = f"received at the warehouse ({condition})" + (f": {note.strip()}" if note and note.strip() else "")
    with session.begin_nested():
        for i in ids:
            inventory.transition_equipment(session, equipment=units[i], action="receive", now=now, actor=actor, reason=reason)
            if condition == "destroyed":
                inventory.transition_equipment(session, equipment=units[i], action="write_off", now=now, actor=actor, reason=reason)
        touched: dict[int, Collection] = {}
        for it, c in open_items:
            it.received_at, it.condition = now, condition
            touched[c.id] = c
        session.flush()
        if touched:
            waiting = dict(session.execute(select(CollectionItem.collection_id, func.count()).where(
                CollectionItem.collection_id.in_(list(touched)), CollectionItem.received_at.is_(None)).group_by(CollectionItem.collection_id)).all())
            for cid, c in touched.items():
                if waiting.get(cid):
                    continue
                if c.state == C.COLLECTED.value:
                    lifecycle.transition(session, COLLECTION, c, "receive", now=now, actor=actor, reason=reason, details={"number": c.number},
                                         label=f"collection {c.number}")
                else:
                    lifecycle.transition(session, COLLECTION, c, "cancel", now=now, actor=Actor.system("logistics"),
                                         reason="the equipment arrived at the warehouse another way", details={"number": c.number},
                                         label=f"collection {c.number}")
                c.updated_at = now
        credited = _settle_fees(session, equipment_ids=ids, now=now, actor=actor)
        by_account: dict[int, list[int]] = defaultdict(list)
        for i in ids:
            by_account[int(units[i].account_id or 0)].append(i)
        col_of = {it.equipment_id: c for it, c in open_items}
        for acc, eids in by_account.items():
            c = col_of.get(eids[0])
            if acc:
                serials = ", ".join(units[i].serial_number for i in eids)
                _memo(session, account_id=acc, now=now, actor=actor, body=f"Equipment received at the warehouse ({condition}): {serials}"
                      + (f" (collection {c.number})" if c else ""))
            domain_events.publish(session, "equipment.received", {"account_id": acc or None, "equipment_ids": eids, "reference": c.reference if c else None,
                                                                  "collection_id": c.id if c else None, "condition": condition}, now=now, actor=actor)
    return {"equipment_ids": ids, "condition": condition, "collections": sorted(touched), "fees_credited": credited}


def _settle_fees(session: Session, *, equipment_ids: list[int], now: datetime, actor: Actor) -> list[int]:
    """A device arrived: a warned fee is cancelled, a charged one credited back. Returns the credited fee ids."""
    fees = list(session.execute(select(UnreturnedFee).where(UnreturnedFee.equipment_id.in_(equipment_ids),
                                                            UnreturnedFee.state.in_([FeeState.WARNED.value, FeeState.CHARGED.value]))).scalars())
    system = Actor.system("logistics.fees")
    credited = []
    for f in fees:
        if f.state == FeeState.WARNED.value:
            lifecycle.transition(session, UNRETURNED_FEE, f, "cancel", now=now, actor=system, reason="the device arrived before the fee")
            continue
        cid = billing.queue_charge(session, account_id=f.account_id, product_id=None, description=f"Credit: unreturned {f.model} returned",
                                   amount=-Money.from_minor(f.amount_minor, f.currency), tax_rate_code=f.tax_rate_code,
                                   reason=f"equipment {f.equipment_id} arrived after the unreturned-equipment fee", now=now, actor=actor,
                                   idempotency_key=f"unreturned_fee_credit:{f.equipment_id}")
        lifecycle.transition(session, UNRETURNED_FEE, f, "credit", now=now, actor=system, reason="the device arrived after the fee",
                             details={"credit_charge_id": cid})
        f.credit_charge_id, f.credited_at = cid, now
        credited.append(f.id)
        col = session.execute(select(Collection).join(CollectionItem, CollectionItem.collection_id == Collection.id)
                              .where(CollectionItem.equipment_id == f.equipment_id).order_by(Collection.id.desc()).limit(1)).scalar_one_or_none()
        domain_events.publish(session, "equipment.unreturned_fee_credited",
                              {"account_id": f.account_id, "equipment_ids": [f.equipment_id], "reference": col.reference if col else None,
                               "collection_id": col.id if col else None, "fee_id": f.id, "charge_id": cid, "amount_minor": -f.amount_minor,
                               "currency": f.currency}, now=now, actor=actor)
    return credited


# --- swaps of faulty equipment --------------------------------------------------------------------

def swap_faulty_equipment(session: Session, *, equipment_id: int, reason: str, slot_start: datetime, address: str, contact_name: str,
                          contact_phone: str, idempotency_key: str, now: datetime, actor: Actor, tz: ZoneInfo, courier_code: str | None = None,
                          reference: str | None = None) -> dict[str, Any]:
    """A faulty loaned device is swapped: a new unit of the same equipment offering is dispatched to the product
    (inventory), the faulty one is booked for collection (purpose 'swap') and the swap recorded; both devices keep their
    history. Idempotent by `idempotency_key`. Raises UnableToSwapEquipment (no reason, device not installed, already
    swapped, no equipment offering), and what book_collection raises. Nothing is changed when it raises."""
    replay = session.execute(select(EquipmentSwap).join(Collection, Collection.id == EquipmentSwap.collection_id)
                             .where(Collection.idempotency_key == (idempotency_key or "").strip())).scalar_one_or_none()
    if replay is not None:
        return swap_dict(session, replay)
    if not (reason or "").strip():
        raise UnableToSwapEquipment("a reason (the fault) is required", field="reason")
    try:
        old = inventory.get_equipment(session, equipment_id=equipment_id)
    except NotFound as exc:
        raise UnableToSwapEquipment(f"equipment {equipment_id} not found", field="equipment_id") from exc
    if old.state not in (ES.INSTALLED.value, ES.DISPATCHED.value) or old.account_id is None:
        raise UnableToSwapEquipment(f"{old.kind} {old.serial_number} is {old.state.replace('_', ' ')}; only a device with a customer is swapped",
                                    field="equipment_id")
    if session.execute(select(EquipmentSwap.id).where(EquipmentSwap.old_equipment_id == old.id)).first() is not None:
        raise UnableToSwapEquipment(f"{old.serial_number} was already swapped", field="equipment_id")
    offering = session.get(ProductOffering, old.offering_id) if old.offering_id else None
    if offering is None:
        raise UnableToSwapEquipment(f"{old.serial_number} has no equipment offering to ship a replacement from", field="equipment_id")
    with session.begin_nested():
        col = book_collection(session, account_id=old.account_id, equipment_ids=[old.id], slot_start=slot_start, address=address,
                              contact_name=contact_name, contact_phone=contact_phone, reference=reference, courier_code=courier_code,
                              idempotency_key=idempotency_key, now=now, actor=actor, tz=tz, purpose="swap")
        new = inventory.assign_equipment(session, account_id=old.account_id, product_id=old.product_id, equipment_offering=offering,
                                         owner=old.owner, now=now, actor=actor)
        sw = EquipmentSwap(account_id=old.account_id, product_id=old.product_id, old_equipment_id=old.id, new_equipment_id=new.id,
                           collection_id=col["id"], reason=reason.strip(), created_at=now, created_by=actor.name)
        session.add(sw)
        session.flush()
        events.record(session, now=now, actor=actor, entity_type="equipment", entity_id=old.id, account_id=old.account_id, action="swapped",
                      reason=reason.strip(), after={"new_equipment_id": new.id, "new_serial": new.serial_number, "collection": col["number"]})
        _memo(session, account_id=old.account_id, now=now, actor=actor,
              body=f"Faulty {old.model} {old.serial_number} swapped for {new.serial_number}; old unit collected by {col['number']}: {reason.strip()}")
    return swap_dict(session, sw)


def swap_dict(session: Session, sw: EquipmentSwap) -> dict[str, Any]:
    serials = dict(session.execute(select(Equipment.id, Equipment.serial_number).where(Equipment.id.in_([sw.old_equipment_id, sw.new_equipment_id]))).all())
    c = session.get(Collection, sw.collection_id)
    return {"id": sw.id, "account_id": sw.account_id, "product_id": sw.product_id, "old_equipment_id": sw.old_equipment_id,
            "old_serial": serials.get(sw.old_equipment_id), "new_equipment_id": sw.new_equipment_id, "new_serial": serials.get(sw.new_equipment_id),
            "collection_id": sw.collection_id, "collection_number": c.number if c else None, "reason": sw.reason, "created_at": sw.created_at}


# --- bulk booking for a courier run ---------------------------------------------------------------

def awaiting_without_booking(session: Session, *, limit: int | None = None, city: str | None = None):  # type: ignore[no-untyped-def]
    """Select of (equipment id, account id) for loaned equipment awaiting return that no open collection holds."""
    from opsline.customers.models import Site

    open_items = (select(CollectionItem.equipment_id).join(Collection, Collection.id == CollectionItem.collection_id)
                  .where(Collection.state.in_(OPEN_COLLECTION_STATES)))
    q = (select(Equipment.id, Equipment.account_id).where(Equipment.state == ES.AWAITING_RETURN.value, Equipment.owner == "isp_loaned",
                                                          Equipment.account_id.is_not(None), Equipment.id.not_in(open_items)))
    if city:
        q = q.join(Product, Product.id == Equipment.product_id).join(Site, Site.id == Product.site_id).where(func.lower(Site.city) == city.strip().lower())
    q = q.order_by(Equipment.updated_at, Equipment.id)
    return q.limit(limit) if limit else q


def book_courier_run(session: Session, *, courier_code: str, slot_start: datetime, now: datetime, actor: Actor, tz: ZoneInfo,
                     city: str | None = None, dry_run: bool = False) -> dict[str, Any]:
    """Book one courier run: every account with loaned equipment awaiting return and no collection booked (optionally in
    one city), oldest first, up to the slot's free capacity, in a few set-based statements (bookings, items, audit,
    one delivery job for the run, one notification job for the run, one `collection.booked` per booking).
    Returns {"booked", "accounts", "equipment", "collection_ids"}; with `dry_run` nothing is written.
    Raises UnableToBookCollection (not a courier, bad slot), SlotFull (no capacity left)."""
    from opsline.customers.models import Account, Site

    courier = _courier(session, courier_code)
    slot, slot_end = _check_slot(session, courier=courier, slot_start=slot_start, now=now, tz=tz, needed=1)
    free = slot.capacity - sum(_booked_counts(session, courier_code=courier.code, start=slot_start, end=slot_start + timedelta(seconds=1)).values())
    # oldest first; a few devices per account at most, so four rows per free place is plenty
    pairs = session.execute(awaiting_without_booking(session, city=city, limit=max(free, 0) * 4 + 10)).all()
    accounts: list[int] = []
    eq_by_acc: dict[int, list[int]] = defaultdict(list)
    for eid, acc in pairs:
        if acc not in eq_by_acc:
            if len(accounts) >= free:
                continue
            accounts.append(acc)
        eq_by_acc[acc].append(eid)
    if dry_run or not accounts:
        return {"booked": 0, "accounts": len(accounts), "equipment": sum(len(eq_by_acc[a]) for a in accounts), "collection_ids": [],
                "free": free, "dry_run": dry_run}
    # address: the site of the device's product, else the billing address; contact: the account holder
    first_eq = {a: eq_by_acc[a][0] for a in accounts}
    info = {r.id: r for r in session.execute(select(Account.id, Account.name, Account.phone, Account.billing_line1, Account.billing_suburb,
                                                    Account.billing_city).where(Account.id.in_(accounts))).all()}
    site_rows = {r.account_id: r for r in session.execute(select(Equipment.account_id, Site.line1, Site.suburb, Site.city).select_from(Equipment)
                                                          .join(Product, Product.id == Equipment.product_id).join(Site, Site.id == Product.site_id)
                                                          .where(Equipment.id.in_(list(first_eq.values())))).all()}
    run_key = f"run:{courier.code}:{slot_start.isoformat()}:{secrets.token_hex(4)}"
    rows = []
    for a in accounts:
        i = info[a]
        s = site_rows.get(a)
        addr = ", ".join(x for x in ((s.line1, s.suburb, s.city) if s else (i.billing_line1, i.billing_suburb, i.billing_city)) if x) or "address on file"
        rows.append({"number": f"pending-{secrets.token_hex(6)}", "account_id": a, "courier_code": courier.code, "slot_id": slot.id, "state": C.BOOKED.value,
                     "purpose": "return", "slot_start": slot_start, "slot_end": slot_end, "address": addr[:300], "contact_name": (i.name or "account holder")[:120],
                     "contact_phone": (i.phone or "-")[:30], "reference": f"run {slot_start.astimezone(tz):%Y-%m-%d %H:%M}",
                     "idempotency_key": f"{run_key}:{a}", "attempts": 0, "created_at": now, "created_by": actor.name, "updated_at": now})
    session.execute(insert(Collection), rows)
    made = session.execute(select(Collection.id, Collection.account_id).where(Collection.idempotency_key.like(f"{run_key}:%"))).all()
    ids_by_acc = {acc: cid for cid, acc in made}
    session.execute(update(Collection), [{"id": cid, "number": make_ref("COL-", cid, width=6)} for cid in ids_by_acc.values()])
    session.execute(insert(CollectionItem), [{"collection_id": ids_by_acc[a], "equipment_id": e, "account_id": a} for a in accounts for e in eq_by_acc[a]])
    session.execute(insert(events.AuditEvent), [
        {"occurred_at": now, "actor": actor.name, "entity_type": COLLECTION.name, "entity_id": str(ids_by_acc[a]), "account_id": a, "action": "booked",
         "reason": f"courier run {courier.code}", "before": None,
         "after": {"courier": courier.code, "slot_start": slot_start.isoformat(), "equipment_ids": eq_by_acc[a], "bulk": True}} for a in accounts])
    cids = sorted(ids_by_acc.values())
    jobs.enqueue(session, kind=DELIVER_JOB, payload={"collection_ids": cids}, now=now, idempotency_key=f"{DELIVER_JOB}:{run_key}")
    jobs.enqueue(session, kind=NOTIFY_JOB, payload={"collection_ids": cids}, now=now, idempotency_key=f"{NOTIFY_JOB}:{run_key}")
    numbers = dict(session.execute(select(Collection.id, Collection.number).where(Collection.id.in_(cids))).all())
    for a in accounts:
        cid = ids_by_acc[a]
        domain_events.publish(session, "collection.booked", {"id": cid, "collection_id": cid, "number": numbers[cid], "account_id": a,
                                                             "equipment_ids": eq_by_acc[a], "reference": rows[0]["reference"], "courier_code": courier.code,
                                                             "slot_start": slot_start.isoformat(), "purpose": "return", "bulk": True}, now=now, actor=actor)
    return {"booked": len(cids), "accounts": len(accounts), "equipment": sum(len(eq_by_acc[a]) for a in accounts), "collection_ids": cids,
            "free": free, "dry_run": False}


NOTIFY_JOB = "logistics.notify_booked"


def notify_booked_job(session: Session, *, collection_ids: list[int], now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """The customers' 'collection booked' messages for a courier run (the worker's side; idempotent per booking)."""
    actor = Actor.system("logistics")
    cols = list(session.execute(select(Collection).where(Collection.id.in_(collection_ids)).order_by(Collection.id)).scalars())
    items = _items(session, [c.id for c in cols])
    for c in cols:
        _notify_booked(session, c, items[c.id], now=now, actor=actor, tz=tz)
    return {"sent": len(cols)}


def local_today(now: datetime, tz: ZoneInfo) -> date:
    return local_date(now, tz)
