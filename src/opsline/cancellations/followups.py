"""The journey's equipment and final-account steps through the areas that own them: the courier collection is booked
with logistics (its slots, its customer message, its attempts and warehouse receipt), the final invoice or credit is
issued by billing's final account; their events (`collection.booked`, `collection.attempted`, `equipment.received`,
`equipment.unreturned_fee_charged`, `billing.final_account_issued`) move the journey's checklist."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.billing import final_account
from opsline.cancellations.models import STEP_LABELS, CancellationJourney, JourneyState, StepState
from opsline.cancellations.service import (SYSTEM, UnableToChangeStep, _equipment_to_collect, _memo, _move, _refresh, _step, get_journey,
                                           steps_of)
from opsline.core import events
from opsline.core.events import Actor
from opsline.customers import service as customers
from opsline.customers.models import Site
from opsline.inventory.models import Product
from opsline.logistics import service as logistics
from opsline.partners.models import Partner

J = JourneyState


def collection_form(session: Session, *, journey_id: int, now: datetime, tz: ZoneInfo, days: int = 10) -> dict[str, Any]:
    """What the booking form offers: the couriers, the next `days` of free slots of the first courier, the address of
    the product's site and the account's contact. Raises JourneyNotFound."""
    j = get_journey(session, journey_id=journey_id)
    couriers = [c for (c,) in session.execute(select(Partner.code).where(Partner.kind == "courier", Partner.active.is_(True)).order_by(Partner.code))]
    free: list[dict[str, Any]] = []
    if couriers:
        try:
            free = [s for s in logistics.slots(session, courier_code=couriers[0], from_date=logistics.local_today(now, tz) + timedelta(days=1),
                                               days=days, tz=tz) if s["free"] > 0]
        except Exception:  # noqa: BLE001  (a courier without slots: the form says so, the page still renders)
            free = []
    acc = customers.get_account(session, account_id=j.account_id)
    site = session.execute(select(Site.line1, Site.suburb, Site.city).join(Product, Product.site_id == Site.id).where(Product.id == j.product_id)).first()
    address = ", ".join(x for x in (site or ()) if x) if site else ""
    return {"couriers": couriers, "slots": [{"start": s["start"].isoformat(), "label": s["label"], "free": s["free"], "courier": s["courier_code"]} for s in free],
            "address": address, "contact_name": acc.name, "contact_phone": acc.phone or "", "equipment_ids": _equipment_to_collect(session, j.product_id)}


def book_collection(session: Session, *, journey_id: int, slot_start: datetime, address: str, contact_name: str, contact_phone: str,
                    courier_code: str | None, now: datetime, tz: ZoneInfo, actor: Actor) -> dict[str, Any]:
    """Book the courier for the journey's loaned equipment (idempotent per journey and slot).
    Raises JourneyNotFound, UnableToChangeStep (not collecting equipment, nothing to collect), and what
    logistics.book_collection raises (a slot in the past or outside the courier's windows, a full slot, ...)."""
    j = get_journey(session, journey_id=journey_id, lock=True)
    if j.state != J.EQUIPMENT_COLLECTION:
        raise UnableToChangeStep(f"{j.reference} is {j.state.replace('_', ' ')}, not collecting equipment", field="state")
    ids = _equipment_to_collect(session, j.product_id)
    if not ids:
        raise UnableToChangeStep(f"{j.reference} has no loaned equipment left to collect", field="equipment_ids")
    c = logistics.book_collection(session, account_id=j.account_id, equipment_ids=ids, slot_start=slot_start, address=address, contact_name=contact_name,
                                  contact_phone=contact_phone, reference=j.reference, idempotency_key=f"{j.reference}:collection:{slot_start.isoformat()}",
                                  now=now, actor=actor, tz=tz, courier_code=courier_code)
    return c


def _journeys_for(session: Session, *, account_id: int | None, reference: str | None, states: tuple[str, ...]) -> list[CancellationJourney]:
    q = select(CancellationJourney).where(CancellationJourney.state.in_(states))
    if reference:
        rows = list(session.execute(q.where(CancellationJourney.reference == reference).with_for_update()).scalars())
        if rows:
            return rows
    if account_id is None:
        return []
    return list(session.execute(q.where(CancellationJourney.account_id == int(account_id)).order_by(CancellationJourney.id).with_for_update()).scalars())


def _note(session: Session, j: CancellationJourney, code: str, note: str, *, now: datetime, actor: Actor, at_risk: bool | None = None) -> None:
    steps = steps_of(session, j.id)
    s = steps[code]
    if s.state != StepState.OPEN:
        return
    s.note = note[:2000]
    if at_risk is not None:
        s.at_risk = at_risk
    events.record(session, now=now, actor=actor, entity_type="cancellation_step", entity_id=s.id, account_id=j.account_id, action="noted", reason=note[:500],
                  after={"journey_id": j.id, "code": code, "at_risk": s.at_risk})
    _refresh(session, j, steps)


def on_collection_booked(session: Session, payload: dict[str, Any], *, now: datetime, actor: Actor) -> None:
    for j in _journeys_for(session, account_id=payload.get("account_id"), reference=payload.get("reference"), states=(J.EQUIPMENT_COLLECTION,)):
        _note(session, j, "equipment", f"collection {payload.get('number')} booked with {payload.get('courier_code')} for {payload.get('slot_start', '')[:16]}",
              now=now, actor=actor, at_risk=False)


def on_collection_attempted(session: Session, payload: dict[str, Any], *, now: datetime, actor: Actor) -> None:
    outcome = str(payload.get("outcome") or "")
    for j in _journeys_for(session, account_id=payload.get("account_id"), reference=payload.get("reference"), states=(J.EQUIPMENT_COLLECTION,)):
        failed = outcome != "collected"
        _note(session, j, "equipment", f"collection {payload.get('number')} attempt {payload.get('attempt_no')}: {outcome.replace('_', ' ')}"
              + (" — rebook" if failed else " — on its way to the warehouse"), now=now, actor=actor, at_risk=failed)


def _equipment_done(session: Session, j: CancellationJourney, note: str, *, now: datetime, tz: ZoneInfo, actor: Actor) -> None:
    steps = steps_of(session, j.id)
    if steps["equipment"].state != StepState.OPEN:
        return
    _step(session, j, steps["equipment"], "complete", now=now, actor=actor, note=note)
    if j.state == J.EQUIPMENT_COLLECTION:
        _move(session, j, "bill_final", now=now, actor=actor)
    _memo(session, j, f"step '{STEP_LABELS['equipment']}' done: {note}", now=now, actor=actor)
    _refresh(session, j, steps)


def on_equipment_received(session: Session, payload: dict[str, Any], *, now: datetime, tz: ZoneInfo, actor: Actor) -> None:
    """Equipment arrived at the warehouse: a journey whose product has no loaned equipment left out is done collecting."""
    for j in _journeys_for(session, account_id=payload.get("account_id"), reference=payload.get("reference"), states=(J.EQUIPMENT_COLLECTION,)):
        if not _equipment_to_collect(session, j.product_id):
            _equipment_done(session, j, f"received at the warehouse ({payload.get('condition') or 'checked'})", now=now, tz=tz, actor=actor)


def on_unreturned_fee_charged(session: Session, payload: dict[str, Any], *, now: datetime, tz: ZoneInfo, actor: Actor) -> None:
    """The grace period ended and the fee was charged: nothing more to chase on the journey (credited if it arrives later)."""
    amount = payload.get("amount_minor")
    for j in _journeys_for(session, account_id=payload.get("account_id"), reference=payload.get("reference"), states=(J.EQUIPMENT_COLLECTION,)):
        _equipment_done(session, j, f"not returned: unreturned-equipment fee charged ({amount} minor {payload.get('currency')}); credited if it arrives",
                        now=now, tz=tz, actor=actor)


def final_account_quote(session: Session, *, journey_id: int, now: datetime) -> dict[str, Any] | None:
    """Billing's final-account preview for the journey's product (None before the FNO confirmed, or once billed)."""
    j = get_journey(session, journey_id=journey_id)
    product = session.get(Product, j.product_id)
    if product is None or product.end_date is None or j.state not in (J.FINAL_BILLING, J.EQUIPMENT_COLLECTION, J.DEACTIVATION_CONFIRMED):
        return None
    try:
        return final_account.quote(session, account_id=j.account_id, product_ids=[j.product_id], end_date=product.end_date, now=now,
                                   waive_etf_reason=j.etf_waiver_reason)
    except final_account.AlreadyFinalBilled:
        return None


def issue_final_account(session: Session, *, journey_id: int, now: datetime, tz: ZoneInfo, actor: Actor) -> dict[str, Any]:
    """Issue the final invoice or credit note for the journey's product to the FNO's confirmed date (idempotent per
    journey); the final-account step completes with its number.
    Raises JourneyNotFound, UnableToChangeStep (FNO not confirmed yet, step not open), and what final_account.issue raises."""
    j = get_journey(session, journey_id=journey_id, lock=True)
    steps = steps_of(session, j.id)
    product = session.get(Product, j.product_id)
    if j.state not in (J.FINAL_BILLING, J.EQUIPMENT_COLLECTION, J.DEACTIVATION_CONFIRMED) or product is None or product.end_date is None:
        raise UnableToChangeStep(f"{j.reference}: the final account waits for the FNO's confirmed date", field="state")
    if steps["final_account"].state != StepState.OPEN:
        raise UnableToChangeStep(f"{j.reference}: the final account step is already {steps['final_account'].state}", field="final_account")
    res = final_account.issue(session, account_id=j.account_id, product_ids=[j.product_id], end_date=product.end_date,
                              reason=f"{j.kind} {j.reference}: line ceased {product.end_date.isoformat()}", idempotency_key=f"{j.reference}:final-account",
                              now=now, actor=actor, waive_etf_reason=j.etf_waiver_reason)
    on_final_account_issued(session, {"product_ids": res["product_ids"], "number": res["number"], "reference": res["reference"],
                                      "amount_minor": res["total_minor"], "currency": res["currency"]}, now=now, actor=actor)
    return res


def on_final_account_issued(session: Session, payload: dict[str, Any], *, now: datetime, actor: Actor) -> None:
    ids = [int(i) for i in payload.get("product_ids") or []]
    if not ids:
        return
    rows = list(session.execute(select(CancellationJourney).where(CancellationJourney.product_id.in_(ids),
                                                                   CancellationJourney.state.in_((J.FINAL_BILLING, J.EQUIPMENT_COLLECTION,
                                                                                                  J.DEACTIVATION_CONFIRMED))).with_for_update()).scalars())
    for j in rows:
        steps = steps_of(session, j.id)
        if steps["final_account"].state != StepState.OPEN:
            continue
        total = payload.get("amount_minor")
        doc = payload.get("number") or payload.get("reference")
        note = f"final account {payload.get('reference')} issued" + (f": {doc}" if doc else "") + (f", total {total} minor {payload.get('currency')}" if total is not None else "")
        _step(session, j, steps["final_account"], "complete", now=now, actor=actor, note=note)
        _memo(session, j, note, now=now, actor=actor)
        _refresh(session, j, steps)


def today(now: datetime, tz: ZoneInfo) -> date:
    return logistics.local_today(now, tz)


__all__ = ["SYSTEM", "book_collection", "collection_form", "final_account_quote", "issue_final_account", "on_collection_attempted",
           "on_collection_booked", "on_equipment_received", "on_final_account_issued", "on_unreturned_fee_charged"]
