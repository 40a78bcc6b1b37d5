"""How a collection reaches its courier: the courier adapters (HTTP, and the built-in courier simulator that behaves
like a real courier, as partners/simulator.py does for FNOs), the delivery job and the courier's updates (attempt
outcomes) applied to the booking.

The simulator accepts most bookings and refuses a deterministic few (partner.simulator_reject_percent), then reports
the attempt at the slot (realistic mode) or seconds later (demo mode) through the job table, with an outcome seeded by
the booking number and attempt (about 70% collected, 15% not home, 8% refused, 7% wrong address). In outage mode
delivery fails and the job retries with backoff, like the FNO simulator."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.core import events, jobs, lifecycle
from opsline.core.events import Actor
from opsline.logistics import service
from opsline.logistics.models import COLLECTION, Collection, CollectionState
from opsline.partners.adapters import AdapterResult, AdapterUnavailable, HttpAdapter
from opsline.partners.models import AdapterKind, Partner, SimulatorMode

COURIER_EVENT_JOB = "logistics.courier_event"
C = CollectionState


def _bucket(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 100


def courier_ref_for(courier_code: str, number: str) -> str:
    return f"{courier_code[:3].upper()}-{hashlib.sha256(f'{courier_code}:{number}'.encode()).hexdigest()[:10].upper()}"


def simulated_outcome(number: str, attempt_no: int) -> str:
    roll = _bucket(f"outcome:{number}:{attempt_no}")
    return "collected" if roll < 70 else "not_home" if roll < 85 else "refused" if roll < 93 else "wrong_address"


def booking_payload(c: Collection, items: list[dict[str, Any]]) -> dict[str, Any]:
    """What we send a courier: our number (their idempotency key), the window, the address, the contact and the parcels."""
    return {"externalId": c.number, "type": "collection", "windowStart": c.slot_start.isoformat(), "windowEnd": c.slot_end.isoformat(),
            "address": c.address, "contact": {"name": c.contact_name, "phone": c.contact_phone}, "reference": c.reference, "attempt": c.attempts + 1,
            "parcels": [{"serialNumber": i["serial_number"], "description": f"{i['kind']} {i['model']}"} for i in items]}


class CourierHttpAdapter(HttpAdapter):
    """A courier's booking API over HTTPS (POST /collections), with the same retry, idempotency and signing rules."""

    submit_path = "/collections"
    who = "courier"


class CourierSimulator:
    """An Adapter whose courier lives in our database; it schedules its own attempt report through the job table."""

    def __init__(self, session: Session, *, partner: Partner, now: datetime, tz: ZoneInfo) -> None:
        self.session, self.partner, self.now, self.tz = session, partner, now, tz

    def submit(self, order_payload: dict[str, Any]) -> AdapterResult:
        p = self.partner
        if p.simulator_outage:
            raise AdapterUnavailable(f"{p.name} API unavailable (simulated outage): HTTP 503 Service Unavailable")
        number = str(order_payload["externalId"])
        attempt = int(order_payload.get("attempt") or 1)
        ref = courier_ref_for(p.code, number)
        if _bucket(f"reject:{number}:{attempt}") < p.simulator_reject_percent:
            reason = "address outside our collection area"
            return AdapterResult(accepted=False, partner_ref=ref, state="rejected", reason=reason, response={"id": ref, "state": "rejected", "reason": reason})
        start = datetime.fromisoformat(str(order_payload["windowStart"]))
        if p.simulator_mode == SimulatorMode.REALISTIC:
            at = max(start + timedelta(minutes=45), self.now + timedelta(minutes=1))
        else:
            at = self.now + timedelta(seconds=max(1, p.simulator_complete_seconds))
        outcome = simulated_outcome(number, attempt)
        event = {"id": f"{ref}:{attempt}", "courierRef": ref, "externalId": number, "attempt": attempt, "outcome": outcome, "at": at.isoformat(),
                 "note": {"not_home": "nobody home, card left", "refused": "customer refused to hand over", "wrong_address": "address not found"}.get(outcome)}
        jobs.enqueue(self.session, kind=COURIER_EVENT_JOB, payload={"courier_code": p.code, "event": event}, now=self.now, run_at=at,
                     idempotency_key=f"courier:{number}:{attempt}", serial_key=f"courier:{number}", max_attempts=12)
        return AdapterResult(accepted=True, partner_ref=ref, state="acknowledged", response={"id": ref, "state": "acknowledged"})

    def status(self, partner_ref: str) -> AdapterResult:
        return AdapterResult(accepted=True, partner_ref=partner_ref)


def adapter_for(session: Session, *, partner: Partner, now: datetime, tz: ZoneInfo) -> Any:
    if partner.adapter == AdapterKind.HTTP:
        return CourierHttpAdapter(base_url=partner.base_url or "", auth_token=partner.auth_token, timeout_seconds=partner.timeout_seconds,
                                  signing_secret=partner.webhook_secret)
    return CourierSimulator(session, partner=partner, now=now, tz=tz)


def deliver(session: Session, *, collection_id: int, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """Send one booking to its courier (the `logistics.deliver` job). Safe to repeat: a booking already delivered or no
    longer waiting is left alone. Raises AdapterUnavailable (the job retries with backoff)."""
    system = Actor.system("logistics.deliver")
    c = session.execute(select(Collection).where(Collection.id == collection_id).with_for_update()).scalar_one_or_none()
    if c is None:
        return {"skipped": "no such collection"}
    if c.delivered_at is not None or c.state != C.BOOKED.value:
        return {"skipped": f"already {'delivered' if c.delivered_at else c.state}"}
    partner = session.get(Partner, c.courier_code)
    items = service._items(session, [c.id])[c.id]
    try:
        result = adapter_for(session, partner=partner, now=now, tz=tz).submit(booking_payload(c, items))
    except AdapterUnavailable as exc:
        c.last_error = str(exc)[:500]
        raise
    c.delivered_at, c.courier_ref, c.updated_at, c.last_error = now, result.partner_ref, now, None
    events.record(session, now=now, actor=system, entity_type=COLLECTION.name, entity_id=c.id, account_id=c.account_id, action="delivered",
                  after={"courier_ref": result.partner_ref, "accepted": result.accepted})
    if result.accepted:
        lifecycle.transition(session, COLLECTION, c, "confirm", now=now, actor=system, details={"number": c.number, "courier_ref": result.partner_ref},
                             label=f"collection {c.number}")
    else:
        lifecycle.transition(session, COLLECTION, c, "reject", now=now, actor=system, reason=result.reason or "refused by the courier",
                             details={"number": c.number}, label=f"collection {c.number}")
        c.state_reason = result.reason
    return {"collection": c.number, "accepted": result.accepted}


def deliver_job(session: Session, payload: dict[str, Any], now: datetime, *, tz: ZoneInfo) -> dict[str, Any]:
    ids = payload.get("collection_ids") or [payload["collection_id"]]
    out = [deliver(session, collection_id=int(i), now=now, tz=tz) for i in ids]
    return {"delivered": sum(1 for o in out if o.get("accepted") is not None)}


def apply_courier_event(session: Session, *, courier_code: str, event: dict[str, Any], now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """A courier's update about an attempt (from its webhook or the simulator): recorded as the attempt, unless it is
    for another courier's booking, an attempt already recorded, or a booking no longer waiting (then ignored, audited)."""
    system = Actor.system(f"courier:{courier_code}")
    c = session.execute(select(Collection).where(Collection.number == str(event.get("externalId")))).scalar_one_or_none()
    why = None
    if c is None or c.courier_code != courier_code:
        why = "unknown booking for this courier"
    elif int(event.get("attempt") or 0) != c.attempts + 1:
        why = f"attempt {event.get('attempt')} is not the next one ({c.attempts + 1})"
    elif c.state not in (C.BOOKED.value, C.CONFIRMED.value):
        why = f"the booking is {c.state}"
    if why:
        events.record(session, now=now, actor=system, entity_type=COLLECTION.name, entity_id=c.id if c else str(event.get("externalId")),
                      account_id=c.account_id if c else None, action="courier_update_ignored", reason=why, after={"event": event})
        return {"ignored": why}
    service.record_attempt(session, collection_id=c.id, outcome=str(event["outcome"]), note=event.get("note"), now=now, actor=system, tz=tz, source="courier")
    return {"collection": c.number, "outcome": event["outcome"]}
