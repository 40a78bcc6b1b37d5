"""Cancellation journey operations: request (staff, retention case, API), retention, confirmation with the effective
date and penalty, FNO deactivation through the orders/partners path, the checklist steps, withdrawal, closing and
escalation. Every function takes `session`, `now`, `tz` and `actor`, runs in the caller's transaction and changes
nothing when it raises."""

from __future__ import annotations

import secrets
from datetime import date, datetime, time, timedelta
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from opsline.cancellations.models import (JOURNEY, OPEN_STATES, REASONS, REQUESTERS, STEP, STEP_LABELS, STEPS, CancellationJourney,
                                          CancellationPolicy, CancellationStep, JourneyState, StepState)
from opsline.cancellations.rules import UnableToCancelProduct, UnableToRequestCancellation, check_cancellable, preview, resolve_policy
from opsline.catalog import service as catalog
from opsline.core import domain_events, events, jobs, lifecycle
from opsline.core.calendar.days import add_business_days
from opsline.core.errors import Conflict, InvalidInput, NotFound, OpslineError
from opsline.core.events import Actor
from opsline.core.ids import reference
from opsline.core.localtime import local_date
from opsline.core.money import Money
from opsline.customers import service as customers
from opsline.customers.models import Account
from opsline.customers.schemas import MemoIn
from opsline.inventory import service as inventory
from opsline.inventory.models import Equipment, EquipmentState, Product
from opsline.notifications import service as notifications
from opsline.orders import service as orders
from opsline.orders.models import ProductOrderItem
from opsline.orders.schemas import OrderIn, OrderItemIn
from opsline.partners import service as partners
from opsline.partners.models import PartnerServiceOrder

SYSTEM = Actor.system("cancellations")
J = JourneyState
DAY_END = time(17, 0)  # steps are due by the close of business on their due date


class JourneyNotFound(NotFound):
    pass


class UnableToRecordRetention(InvalidInput):
    title = "Unable to record retention"
    type_slug = "unable-to-record-retention"


class UnableToConfirmCancellation(Conflict):
    title = "Unable to confirm cancellation"
    type_slug = "unable-to-confirm-cancellation"


class WithdrawalNotAllowed(Conflict):
    title = "Withdrawal not allowed"
    type_slug = "withdrawal-not-allowed"


class JourneyNotClosable(Conflict):
    title = "Journey has open steps"
    type_slug = "journey-not-closable"


class UnableToRecordConfirmation(InvalidInput):
    title = "Unable to record the FNO confirmation"
    type_slug = "unable-to-record-fno-confirmation"


class UnableToChangeStep(Conflict):
    title = "Unable to change step"
    type_slug = "unable-to-change-step"


__all__ = ["JourneyNotClosable", "JourneyNotFound", "UnableToCancelProduct", "UnableToChangeStep", "UnableToConfirmCancellation",
           "UnableToRecordConfirmation", "UnableToRecordRetention", "UnableToRequestCancellation", "WithdrawalNotAllowed"]


def due_at(d: date, tz: ZoneInfo) -> datetime:
    """Close of business on local date `d`, as an aware datetime."""
    return datetime.combine(d, DAY_END, tzinfo=tz)


def get_journey(session: Session, *, journey_id: int, lock: bool = False) -> CancellationJourney:
    """Raises JourneyNotFound."""
    q = select(CancellationJourney).where(CancellationJourney.id == journey_id)
    j = session.execute(q.with_for_update() if lock else q).scalar_one_or_none()
    if j is None:
        raise JourneyNotFound(f"cancellation journey {journey_id} not found", field="journey_id")
    return j


def steps_of(session: Session, journey_id: int) -> dict[str, CancellationStep]:
    return {s.code: s for s in session.execute(select(CancellationStep).where(CancellationStep.journey_id == journey_id)
                                                .order_by(CancellationStep.position)).scalars()}


def _memo(session: Session, j: CancellationJourney, body: str, *, now: datetime, actor: Actor) -> None:
    customers.add_memo(session, account_id=j.account_id, data=MemoIn(category="cancellations", body=f"{j.reference}: {body}"[:4000]), now=now, actor=actor)


def _policy(session: Session, j: CancellationJourney) -> CancellationPolicy:
    seg = session.execute(select(Account.segment_code).where(Account.id == j.account_id)).scalar_one_or_none()
    return resolve_policy(session, reason_code=j.reason_code, segment_code=seg)


def _refresh(session: Session, j: CancellationJourney, steps: dict[str, CancellationStep] | None = None) -> None:
    """The board's columns: the first open step, the earliest open due time, at risk when any open step is."""
    session.flush()
    steps = steps or steps_of(session, j.id)
    open_steps = [s for s in steps.values() if s.state == StepState.OPEN]
    j.current_step = open_steps[0].code if open_steps and j.state in OPEN_STATES else None
    dues = [s.due_at for s in open_steps if s.due_at is not None]
    j.next_due_at = min(dues) if dues and j.state in OPEN_STATES else None
    j.at_risk = any(s.at_risk for s in open_steps) and j.state in OPEN_STATES


def _move(session: Session, j: CancellationJourney, action: str, *, now: datetime, actor: Actor, reason: str | None = None,
          details: dict[str, Any] | None = None) -> None:
    lifecycle.transition(session, JOURNEY, j, action, now=now, actor=actor, reason=reason, details=details, label=f"journey {j.reference}")
    j.updated_at = now
    if reason:
        j.state_reason = reason


def _step(session: Session, j: CancellationJourney, step: CancellationStep, action: str, *, now: datetime, actor: Actor, note: str | None) -> None:
    lifecycle.transition(session, STEP, step, action, now=now, actor=actor, reason=note, account_id=j.account_id,
                         details={"journey_id": j.id, "reference": j.reference, "code": step.code}, label=f"{j.reference} step '{STEP_LABELS[step.code]}'")
    step.done_at, step.done_by, step.at_risk = now, actor.name, False
    if note:
        step.note = note


# --- request ---------------------------------------------------------------------------------------------------------

def request_cancellation(
    session: Session, *, account_id: int, product_id: int, reason_code: str, requester: str = "account_holder", verified: bool = False,
    requester_name: str | None = None, documents: str | None = None, requested_date: date | None = None, notes: str | None = None,
    channel: str = "staff", case_id: int | None = None, kind: str = "cancellation", new_site_id: int | None = None,
    order_item_id: int | None = None, retention_declined: str | None = None, now: datetime, tz: ZoneInfo, actor: Actor,
) -> CancellationJourney:
    """Open a journey for one product. Retention is skipped when the policy says so, for relocations and API orders, or
    when the customer already declined an offer (`retention_declined`, from a retention case).

    Raises InvalidInput naming the field (reason, requester, verification, estate documents, relocation site),
    ProductNotFound, UnableToCancelProduct (terminated, already ending, not live, another product's account, a journey
    already open), UnableToRequestCancellation (no policy)."""
    if reason_code not in REASONS:
        raise InvalidInput(f"reason must be one of {', '.join(REASONS)}", field="reason_code")
    if requester not in REQUESTERS:
        raise InvalidInput(f"requester must be one of {', '.join(REQUESTERS)}", field="requester")
    if requester == "account_holder" and not verified and channel not in ("api",):
        raise InvalidInput("verify the account holder's identity before opening a cancellation", field="verified")
    if requester == "deceased_estate" and not (documents or "").strip():
        raise InvalidInput("a deceased estate's cancellation needs its documents (death certificate, letter of executorship)", field="documents")
    if kind not in ("cancellation", "relocation"):
        raise InvalidInput("kind must be cancellation or relocation", field="kind")
    product = inventory.get_product(session, product_id=product_id)
    if product.account_id != account_id:
        raise UnableToCancelProduct(f"product {product_id} is not a product of account {account_id}", field="product_id")
    check_cancellable(product)
    if kind == "relocation":
        if new_site_id is None:
            raise InvalidInput("a relocation needs the new site", field="new_site_id")
        if new_site_id == product.site_id:
            raise InvalidInput("the new site is the product's current site", field="new_site_id")
        try:
            customers.get_site(session, site_id=new_site_id, account_id=account_id)
        except NotFound as exc:
            raise InvalidInput(f"site {new_site_id} is not a site of this account", field="new_site_id") from exc
    busy = session.execute(select(CancellationJourney.reference).where(CancellationJourney.product_id == product.id,
                                                                       CancellationJourney.state.in_(OPEN_STATES)).with_for_update()).scalar_one_or_none()
    if busy is not None:
        raise UnableToCancelProduct(f"product {product.id} already has an open journey {busy}", field="product_id", extra={"journey": busy})
    today = local_date(now, tz)
    seg = session.execute(select(Account.segment_code).where(Account.id == account_id)).scalar_one_or_none()
    pol = resolve_policy(session, reason_code=reason_code, segment_code=seg)
    j = CancellationJourney(
        reference=f"p-{secrets.token_hex(8)}", kind=kind, account_id=account_id, product_id=product.id,
        partner_code=product.partner_code, state=J.REQUESTED.value, reason_code=reason_code, requester=requester,
        requester_name=(requester_name or "").strip() or None, documents=(documents or "").strip() or None, channel=channel, case_id=case_id,
        notes=(notes or "").strip() or None, notice_date=today, requested_date=requested_date, new_site_id=new_site_id,
        order_item_id=order_item_id, juristic=orders.is_juristic(session, account_id=account_id), created_by=actor.name,
        created_at=now, updated_at=now)
    session.add(j)
    session.flush()
    j.reference = reference("CJ-", j.id, width=6)
    soon = due_at(add_business_days(today, 2, holiday_country=pol.holiday_country), tz)
    steps = {code: CancellationStep(journey_id=j.id, account_id=account_id, code=code, position=k, state=StepState.OPEN.value,
                                    owner=(product.partner_code or "fno") if owner == "fno" else owner,
                                    due_at=soon if code in ("retention", "notice", "customer_notified") else None)
             for k, (code, _, owner) in enumerate(STEPS, start=1)}
    session.add_all(steps.values())
    session.flush()
    events.record(session, now=now, actor=actor, entity_type=JOURNEY.name, entity_id=j.id, account_id=account_id, action="requested",
                  after={"reference": j.reference, "kind": kind, "product_id": product.id, "reason_code": reason_code, "requester": requester,
                         "channel": channel, "case_id": case_id, "order_item_id": order_item_id})
    domain_events.publish(session, "cancellation_journey.requested", {"id": j.id, "account_id": account_id, "action": "request", "from": None,
                                                                      "to": J.REQUESTED.value, "reason": reason_code}, now=now, actor=actor)
    skip_why = None
    if retention_declined:
        j.retention_outcome, j.retention_offer = "declined", retention_declined
        skip_why = f"declined on the retention case: {retention_declined}"
        _step(session, j, steps["retention"], "complete", now=now, actor=actor, note=skip_why)
    else:
        if kind == "relocation":
            skip_why = "relocation: the customer stays"
        elif channel == "api":
            skip_why = "ordered through the API"
        elif pol.skip_retention:
            skip_why = f"policy {pol.code}: no retention offer for {REASONS[reason_code].lower()}"
        if skip_why:
            j.retention_outcome = "skipped"
            _step(session, j, steps["retention"], "skip", now=now, actor=actor, note=skip_why)
    if kind == "relocation":
        _step(session, j, steps["equipment"], "skip", now=now, actor=actor, note="relocation: the router moves with the customer")
        _step(session, j, steps["final_account"], "skip", now=now, actor=actor,
              note="relocation: billing switches from the old line to the new one on the FNO's date (no gap; a partner's configured "
                   "overlap is billed on the old line)")
    who = REQUESTERS[requester] + (f" ({j.requester_name})" if j.requester_name else "")
    _memo(session, j, f"{kind} requested ({REASONS[reason_code]}) for product {product.id} by {who} via {channel}"
          + (f"; retention: {skip_why}" if skip_why else ""), now=now, actor=actor)
    _refresh(session, j, steps)
    return j


def open_from_case(session: Session, *, case_id: int, account_id: int | None, offer: str, now: datetime, tz: ZoneInfo, actor: Actor) -> int | None:
    """A retention offer was declined on a case: open the journey for the account's main live line (a partner line
    first), retention recorded as declined. Returns the journey id, or None when there is nothing to cancel (no
    account, no live product, or a journey already open for it)."""
    if account_id is None:
        return None
    rows = session.execute(select(Product.id, Product.partner_code, Product.state).where(Product.account_id == account_id, Product.state.in_(("active", "suspended")))
                           .order_by(Product.partner_code.is_(None), Product.id)).all()
    for pid, _, _ in rows:
        busy = session.execute(select(CancellationJourney.id).where(CancellationJourney.product_id == pid, CancellationJourney.state.in_(OPEN_STATES))).first()
        if busy is not None:
            continue
        try:
            with session.begin_nested():  # a journey that cannot open must not undo the case's own change
                j = request_cancellation(session, account_id=account_id, product_id=pid, reason_code="other", requester="account_holder", verified=True,
                                         channel="case", case_id=case_id, retention_declined=offer or "offer declined", now=now, tz=tz, actor=actor)
            return j.id
        except OpslineError as exc:
            events.record(session, now=now, actor=actor, entity_type=JOURNEY.name, entity_id=f"case:{case_id}", account_id=account_id,
                          action="not_opened", reason=str(exc), after={"product_id": pid})
            return None
    return None


# --- retention -------------------------------------------------------------------------------------------------------

def retention_offers(session: Session, *, product_id: int, on: date) -> list[dict[str, Any]]:
    """Catalogue offers for a customer who wants to leave: other offerings of the same kind and partner (upgrade when
    dearer, downgrade when cheaper). Discounts are offered as text (recorded with the outcome)."""
    product = inventory.get_product(session, product_id=product_id)
    current = catalog.get_offering(session, offering_id=product.offering_id)
    cur_price = catalog.price_summary(session, offering_id=current.id, on=on, include_router=False)["recurring_minor"]
    out = []
    for o in catalog.offering_choices(session, on=on):
        if o["id"] == current.id or o["kind"] != current.kind or o.get("partner_code") != current.partner_code:
            continue
        price = catalog.price_summary(session, offering_id=o["id"], on=on, include_router=False)
        out.append({"offering_id": o["id"], "code": o["code"], "name": o["name"], "recurring": Money.from_minor(price["recurring_minor"], price["currency"]),
                    "kind": "upgrade" if price["recurring_minor"] > cur_price else "downgrade"})
    return sorted(out, key=lambda x: (x["kind"], x["recurring"].amount))[:12]


def record_retention(session: Session, *, journey_id: int, offer: str, outcome: str, offering_id: int | None = None, now: datetime, tz: ZoneInfo,
                     actor: Actor) -> CancellationJourney:
    """Record a retention offer and its outcome. 'accepted' with a catalogue offering places the change order through
    the orders service and ends the journey as retained; 'declined' completes the retention step (the journey can be
    confirmed); 'offer_made' keeps it in retention.
    Raises JourneyNotFound, UnableToRecordRetention (bad outcome, no offer, retention already decided), TransitionNotAllowed,
    and what orders.place_order raises for the change order."""
    j = get_journey(session, journey_id=journey_id, lock=True)
    if outcome not in ("offer_made", "accepted", "declined"):
        raise UnableToRecordRetention("outcome must be offer_made, accepted or declined", field="outcome")
    offer = (offer or "").strip()
    if offering_id is not None and not offer:
        offer = catalog.get_offering(session, offering_id=offering_id).name
    if not offer:
        raise UnableToRecordRetention("describe the offer (or pick one from the catalogue)", field="offer")
    steps = steps_of(session, j.id)
    if steps["retention"].state != StepState.OPEN:
        raise UnableToRecordRetention(f"retention on {j.reference} is already {steps['retention'].state}", field="outcome")
    if j.state == J.REQUESTED:
        _move(session, j, "start_retention", now=now, actor=actor)
    j.retention_offer = offer
    if outcome == "offer_made":
        events.record(session, now=now, actor=actor, entity_type=JOURNEY.name, entity_id=j.id, account_id=j.account_id, action="retention_offer_made",
                      after={"offer": offer, "offering_id": offering_id})
    elif outcome == "declined":
        j.retention_outcome = "declined"
        _step(session, j, steps["retention"], "complete", now=now, actor=actor, note=f"declined: {offer}")
    else:
        j.retention_outcome = "accepted"
        if offering_id is not None:
            order = orders.place_order(session, data=OrderIn(account_id=j.account_id, channel="retention", description=f"retention offer on {j.reference}",
                                                             items=[OrderItemIn(action="modify", product_id=j.product_id, offering_id=offering_id)]),
                                       now=now, tz=tz, actor=actor)
            j.retention_order_id = order.id
        _step(session, j, steps["retention"], "complete", now=now, actor=actor, note=f"accepted: {offer}")
        for code in ("notice", "customer_notified", "fno_deactivation", "equipment", "final_account"):
            _step(session, j, steps[code], "skip", now=now, actor=actor, note="customer retained")
        _move(session, j, "retain", now=now, actor=actor, details={"offer": offer, "order_id": j.retention_order_id})
        j.closed_at = now
    _memo(session, j, f"retention offer '{offer}': {outcome.replace('_', ' ')}", now=now, actor=actor)
    _refresh(session, j, steps)
    return j


# --- confirmation ----------------------------------------------------------------------------------------------------

def journey_preview(session: Session, *, journey_id: int, requested_date: date | None = None, waive: bool = False,
                    waiver_reason: str | None = None) -> dict[str, Any]:
    """The effective date, rules and penalty for confirming this journey (nothing written). Raises like rules.preview."""
    j = get_journey(session, journey_id=journey_id)
    pol = _policy(session, j)
    # non-payment is the supplier ending the contract for breach: no customer notice, the FNO's cut-off decides
    p = preview(session, product_id=j.product_id, notice_date=j.notice_date, requested_date=requested_date or j.requested_date,
                holiday_country=pol.holiday_country, waive=waive, waiver_reason=waiver_reason, customer_notice=j.reason_code != "non_payment")
    if j.kind == "relocation":
        p["fee"] = {**p["fee"], "charge": None, "fee": None, "explanation": "relocation: no early-termination fee (the contract moves with the customer)"}
    p["withdraw_until"] = p["effective_date"] - timedelta(days=pol.withdraw_days_before)
    return p


def confirm(session: Session, *, journey_id: int, requested_date: date | None = None, waive: bool = False, waiver_reason: str | None = None,
            now: datetime, tz: ZoneInfo, actor: Actor) -> CancellationJourney:
    """The customer agreed to the date and amounts shown: store them, place the delete (or relocation) order for the
    effective date, which sends the FNO its service order through the partners service, and tell the customer.

    Raises JourneyNotFound, UnableToConfirmCancellation (retention still open), TransitionNotAllowed, ActionNotPermitted,
    what the preview raises (UnableToCancelProduct, UnableToRequestCancellation, WaiverReasonRequired) and what
    orders.place_order raises."""
    j = get_journey(session, journey_id=journey_id, lock=True)
    steps = steps_of(session, j.id)
    if j.state in OPEN_STATES and steps["retention"].state == StepState.OPEN:
        raise UnableToConfirmCancellation(f"{j.reference}: record the retention outcome first (or skip it with a reason)", field="retention")
    p = journey_preview(session, journey_id=j.id, requested_date=requested_date, waive=waive, waiver_reason=waiver_reason)
    _move(session, j, "confirm", now=now, actor=actor, details={"effective_date": p["effective_date"].isoformat()})
    fee = p["fee"]
    j.effective_date, j.cpa_applies, j.juristic, j.date_explanation = p["effective_date"], p["cpa_applies"], p["juristic"], p["explanation"]
    j.requested_date = requested_date or j.requested_date
    if fee.get("fee") is not None:
        j.etf_minor, j.etf_currency = fee["fee"].minor, fee["fee"].currency
        j.etf_waiver_reason = fee.get("waiver_reason")
    _step(session, j, steps["notice"], "complete", now=now, actor=actor, note=p["explanation"])
    if j.channel == "api" and j.order_item_id is not None:
        # the TMF622 delete that opened this journey waited (held) for these dates: start it now
        orders.start_held_termination(session, order_item_id=j.order_item_id, on=j.effective_date, waiver_reason=waiver_reason if waive else None,
                                      now=now, tz=tz, actor=actor)
        oi = session.get(ProductOrderItem, j.order_item_id)
        assert oi is not None
        order_id = oi.order_id
    else:
        if j.kind == "relocation":
            item = OrderItemIn(action="modify", product_id=j.product_id, site_id=j.new_site_id)
        else:
            item = OrderItemIn(action="delete", product_id=j.product_id, waive_early_termination_fee=bool(waive), waiver_reason=waiver_reason)
        order = orders.place_order(session, data=OrderIn(account_id=j.account_id, requested_start_date=j.effective_date, channel="cancellations",
                                                         description=f"{j.kind} journey {j.reference}", items=[item]), now=now, tz=tz, actor=actor)
        oi = session.execute(select(ProductOrderItem).where(ProductOrderItem.order_id == order.id)).scalar_one()
        order_id = order.id
    j.order_id, j.order_item_id, j.service_order_id = order_id, oi.id, oi.partner_service_order_id
    if oi.partner_service_order_id is not None:
        so = session.get(PartnerServiceOrder, oi.partner_service_order_id)
        assert so is not None
        j.fno_due_date = so.due_date
        steps["fno_deactivation"].due_at = due_at(so.due_date, tz)
        steps["fno_deactivation"].owner = so.partner_code
        _move(session, j, "send_deactivation", now=now, actor=SYSTEM, details={"service_order": so.external_ref, "requested_date": so.requested_date.isoformat()})
    else:
        _step(session, j, steps["fno_deactivation"], "skip", now=now, actor=SYSTEM, note="no FNO line: the product ends on the effective date")
        _after_deactivation(session, j, steps, on=j.effective_date, now=now, tz=tz, actor=SYSTEM)
    _notify_confirmed(session, j, steps, fee=fee, p=p, now=now, tz=tz, actor=actor)
    _memo(session, j, f"confirmed: service ends {p['last_day'].isoformat()} (effective {j.effective_date.isoformat()}); "
          f"early-termination fee {fee['fee'] if fee.get('fee') is not None else 'none'}{' (waived: ' + (waiver_reason or '') + ')' if waive else ''}; "
          f"order {order_id}", now=now, actor=actor)
    _refresh(session, j, steps)
    return j


def on_order_item_held(session: Session, *, order_item_id: int, now: datetime, tz: ZoneInfo, actor: Actor) -> int | None:
    """A TMF622 order's delete item waits for its journey: open it (channel api, retention skipped) linked to the item
    and its order. Returns the journey id, or None for an item that is not a delete. Raises what request_cancellation
    raises (the API order is refused with it: e.g. a journey already open for the product)."""
    item = session.get(ProductOrderItem, order_item_id)
    if item is None or item.action != "delete" or item.product_id is None:
        return None
    j = request_cancellation(session, account_id=item.account_id, product_id=item.product_id, reason_code="other", requester="api", channel="api",
                             order_item_id=item.id, notes=f"TMF622 product order {item.order_id}", now=now, tz=tz, actor=actor)
    j.order_id = item.order_id
    return j.id


def _notify_confirmed(session: Session, j: CancellationJourney, steps: dict[str, CancellationStep], *, fee: dict[str, Any], p: dict[str, Any],
                      now: datetime, tz: ZoneInfo, actor: Actor) -> None:
    acc = customers.get_account(session, account_id=j.account_id)
    ctx = {"account": {"id": acc.id, "name": acc.name, "account_number": acc.account_number}, "reference": j.reference,
           "last_day": p["last_day"].strftime("%d %b %Y"), "effective_date": j.effective_date.strftime("%d %b %Y") if j.effective_date else "",
           "fee": str(fee["charge"]) if fee.get("charge") is not None else "none",
           "fee_note": fee.get("explanation") or "", "kind": j.kind,
           "withdraw_until": p["withdraw_until"].strftime("%d %b %Y")}
    msg_id = notifications.send(session, event="cancellation.confirmed", account_id=j.account_id, context=ctx, now=now, actor=actor,
                                category="service", subject_ref=j.reference, idempotency_key=f"cancellation:{j.id}:confirmed", tz=tz,
                                on_opt_out="suppress")
    _step(session, j, steps["customer_notified"], "complete", now=now, actor=actor, note=f"confirmation sent (message {msg_id})")


def _equipment_to_collect(session: Session, product_id: int) -> list[int]:
    return list(session.execute(select(Equipment.id).where(Equipment.product_id == product_id, Equipment.owner == "isp_loaned",
                                                           Equipment.state.in_((EquipmentState.INSTALLED, EquipmentState.DISPATCHED,
                                                                                EquipmentState.AWAITING_RETURN)))).scalars())


def _after_deactivation(session: Session, j: CancellationJourney, steps: dict[str, CancellationStep], *, on: date, now: datetime, tz: ZoneInfo,
                        actor: Actor) -> None:
    """The line is (or will be) dead on `on`: set the equipment and final-account due dates and move the journey on."""
    pol = _policy(session, j)
    j.fno_confirmed_date = on
    _move(session, j, "confirm_deactivation", now=now, actor=actor, details={"confirmed_date": on.isoformat()})
    if steps["final_account"].state == StepState.OPEN:
        steps["final_account"].due_at = due_at(add_business_days(max(on, local_date(now, tz)), pol.final_account_business_days,
                                                                 holiday_country=pol.holiday_country), tz)
    if steps["equipment"].state == StepState.OPEN:
        if _equipment_to_collect(session, j.product_id):
            steps["equipment"].due_at = due_at(on + timedelta(days=pol.equipment_grace_days), tz)
            _move(session, j, "collect_equipment", now=now, actor=actor)
        else:
            _step(session, j, steps["equipment"], "skip", now=now, actor=actor, note="no loaned equipment to collect")
    if j.state == J.DEACTIVATION_CONFIRMED and j.kind == "cancellation":
        _move(session, j, "bill_final", now=now, actor=actor)


# --- the FNO ---------------------------------------------------------------------------------------------------------

def on_service_order_event(session: Session, *, service_order_id: int, state: str, confirmed_date: date | None, reason: str | None,
                           now: datetime, tz: ZoneInfo, actor: Actor) -> None:
    """A partner service order changed state. Only the journey that sent it reacts: 'completed' confirms the FNO step
    with the partner's date; 'failed'/'rejected'/'cancelled' put the step at risk with the partner's reason."""
    j = session.execute(select(CancellationJourney).where(CancellationJourney.service_order_id == service_order_id)
                        .with_for_update()).scalar_one_or_none()
    if j is None or j.state not in (J.DEACTIVATION_SENT, J.CONFIRMED):
        return
    steps = steps_of(session, j.id)
    step = steps["fno_deactivation"]
    if state == "completed":
        on = confirmed_date or local_date(now, tz)
        _step(session, j, step, "complete", now=now, actor=actor, note=f"confirmed by {j.partner_code}: line ceased {on.isoformat()}")
        _after_deactivation(session, j, steps, on=on, now=now, tz=tz, actor=actor)
        _memo(session, j, f"{j.partner_code} confirmed the deactivation on {on.isoformat()}", now=now, actor=actor)
    elif state in ("failed", "rejected", "cancelled"):
        step.at_risk = True
        step.note = f"{j.partner_code} {state}: {reason or 'no reason given'} — resend or escalate to the FNO"
        j.state_reason = step.note
        events.record(session, now=now, actor=actor, entity_type=JOURNEY.name, entity_id=j.id, account_id=j.account_id, action="fno_" + state,
                      reason=reason, after={"service_order_id": service_order_id})
    _refresh(session, j, steps)


def record_fno_confirmation(session: Session, *, journey_id: int, line_ref: str, confirmed_date: date, now: datetime, tz: ZoneInfo,
                            actor: Actor) -> CancellationJourney:
    """The FNO confirmed by e-mail or on its portal: apply it as the partner's completion of our service order (the
    product ends on that date through the orders area, and the journey follows). `line_ref` must name this journey's line
    (the FNO line reference, or our/their service-order reference).
    Raises JourneyNotFound, UnableToRecordConfirmation (another line, no order sent, a date before the notice)."""
    j = get_journey(session, journey_id=journey_id, lock=True)
    if j.state != J.DEACTIVATION_SENT or j.service_order_id is None:
        raise UnableToRecordConfirmation(f"{j.reference} has no deactivation waiting for the FNO (it is {j.state})", field="line_ref")
    so = session.get(PartnerServiceOrder, j.service_order_id)
    product = session.get(Product, j.product_id)
    assert so is not None and product is not None
    ref = (line_ref or "").strip()
    mine = {r for r in (product.partner_line_ref, so.external_ref, so.partner_ref) if r}
    if ref not in mine:
        raise UnableToRecordConfirmation(f"'{ref}' is not this journey's line: {j.reference} cancels line {product.partner_line_ref or '—'} "
                                         f"(service order {so.external_ref})", field="line_ref", extra={"expected": sorted(mine)})
    if confirmed_date < j.notice_date:
        raise UnableToRecordConfirmation(f"the confirmation date {confirmed_date.isoformat()} is before the notice {j.notice_date.isoformat()}",
                                         field="confirmed_date")
    event = {"eventType": "ServiceOrderStateChangeEvent",
             "event": {"serviceOrder": {"externalId": so.external_ref, "state": "completed", "completionDate": confirmed_date.isoformat(),
                                        "stateChangeReason": f"confirmation recorded by {actor.name}"}}}
    # the partner's answer, taken down by a person: applied as the partner's (system) event, the person named in the reason
    res = partners.apply_partner_event(session, partner_code=so.partner_code, event=event, now=now, tz=tz, actor=Actor.system(f"partner:{so.partner_code}"))
    if res["outcome"] != "applied":
        raise UnableToRecordConfirmation(f"the FNO order could not take the confirmation: {res['detail']}", field="line_ref")
    session.flush()  # the journey (same object) moved on through the partner event's subscriber
    return j


# --- steps, withdrawal, closing --------------------------------------------------------------------------------------

MANUAL_STEPS = ("equipment", "final_account", "customer_notified", "retention")


def complete_step(session: Session, *, journey_id: int, code: str, note: str, now: datetime, tz: ZoneInfo, actor: Actor,
                  skip: bool = False) -> CancellationJourney:
    """Mark a step done (or not needed, `skip`) by hand, with a note saying how (e.g. "router received at the warehouse",
    "final invoice INV-123 issued"). The FNO step is done by the FNO's confirmation, the notice step by confirming.
    Raises JourneyNotFound, InvalidInput (unknown step, no note), UnableToChangeStep (not a manual step, already done,
    journey finished), TransitionNotAllowed."""
    j = get_journey(session, journey_id=journey_id, lock=True)
    if code not in STEP_LABELS:
        raise InvalidInput(f"unknown step '{code}'", field="code")
    if code not in MANUAL_STEPS:
        raise UnableToChangeStep(f"'{STEP_LABELS[code]}' is done by {'the FNO confirmation' if code == 'fno_deactivation' else 'confirming the cancellation'}",
                                 field="code")
    if j.state not in OPEN_STATES:
        raise UnableToChangeStep(f"{j.reference} is {j.state}", field="code")
    if not (note or "").strip():
        raise InvalidInput("say how the step was done", field="note")
    steps = steps_of(session, j.id)
    step = steps[code]
    if step.state != StepState.OPEN:
        raise UnableToChangeStep(f"'{STEP_LABELS[code]}' on {j.reference} is already {step.state}", field="code")
    if code == "retention":
        j.retention_outcome = "skipped"
        skip = True
    _step(session, j, step, "skip" if skip else "complete", now=now, actor=actor, note=note.strip())
    if code == "equipment" and j.state == J.EQUIPMENT_COLLECTION:
        _move(session, j, "bill_final", now=now, actor=actor)
    _memo(session, j, f"step '{STEP_LABELS[code]}' {'not needed' if skip else 'done'}: {note.strip()}", now=now, actor=actor)
    _refresh(session, j, steps)
    return j


def withdraw(session: Session, *, journey_id: int, reason: str, now: datetime, tz: ZoneInfo, actor: Actor) -> CancellationJourney:
    """The customer changed their mind. Allowed until the policy's N days before the effective date; the delete order is
    cancelled (the FNO order withdrawn) and the product stays active.
    Raises JourneyNotFound, ReasonRequired, WithdrawalNotAllowed (past the cut-off, or the FNO already confirmed),
    TransitionNotAllowed."""
    j = get_journey(session, journey_id=journey_id, lock=True)
    if not (reason or "").strip():
        from opsline.core.lifecycle import ReasonRequired

        raise ReasonRequired(f"a reason is required to withdraw {j.reference}", field="reason")
    today = local_date(now, tz)
    if j.effective_date is not None and j.state in OPEN_STATES:
        pol = _policy(session, j)
        last = j.effective_date - timedelta(days=pol.withdraw_days_before)
        if today > last:
            raise WithdrawalNotAllowed(f"{j.reference} can no longer be withdrawn: the cut-off was {last.isoformat()} "
                                       f"({pol.withdraw_days_before} days before it takes effect on {j.effective_date.isoformat()})",
                                       field="effective_date", extra={"withdraw_until": last.isoformat()})
    if j.state in (J.DEACTIVATION_CONFIRMED, J.EQUIPMENT_COLLECTION, J.FINAL_BILLING):
        raise WithdrawalNotAllowed(f"{j.reference}: the FNO already ceased the line; place a new order instead", field="state")
    _move(session, j, "withdraw", now=now, actor=actor, reason=reason.strip())
    if j.order_id is not None:
        orders.order_action(session, order_id=j.order_id, action="cancel", now=now, tz=tz, actor=actor, reason=f"{j.reference} withdrawn: {reason.strip()}")
    steps = steps_of(session, j.id)
    for s in steps.values():
        if s.state == StepState.OPEN:
            _step(session, j, s, "skip", now=now, actor=actor, note="journey withdrawn")
    j.closed_at = now
    _memo(session, j, f"withdrawn: {reason.strip()}", now=now, actor=actor)
    _refresh(session, j, steps)
    return j


def close(session: Session, *, journey_id: int, now: datetime, actor: Actor) -> CancellationJourney:
    """Close a journey whose every step is done or not needed.
    Raises JourneyNotFound, JourneyNotClosable (naming the open steps), TransitionNotAllowed."""
    j = get_journey(session, journey_id=journey_id, lock=True)
    steps = steps_of(session, j.id)
    open_steps = [STEP_LABELS[s.code] for s in steps.values() if s.state == StepState.OPEN]
    if open_steps and j.state in OPEN_STATES:
        raise JourneyNotClosable(f"{j.reference} cannot close: open step{'s' if len(open_steps) > 1 else ''} {', '.join(open_steps)}", field="steps",
                                 extra={"open_steps": open_steps})
    _move(session, j, "close", now=now, actor=actor)
    j.closed_at = now
    _memo(session, j, "journey closed", now=now, actor=actor)
    _refresh(session, j, steps)
    return j


def close_many(session: Session, *, journey_ids: Iterable[int], now: datetime, actor: Actor) -> dict[str, Any]:
    """Bulk close: every journey that can close does; the others are listed with why (nothing changes for them)."""
    closed, refused = [], []
    for jid in sorted({int(i) for i in journey_ids}):
        try:
            with session.begin_nested():
                closed.append(close(session, journey_id=jid, now=now, actor=actor).reference)
        except (JourneyNotClosable, JourneyNotFound, Conflict) as exc:
            refused.append(str(exc))
    return {"closed": closed, "refused": refused}


# --- escalation ------------------------------------------------------------------------------------------------------

def escalate(session: Session, *, now: datetime, tz: ZoneInfo, actor: Actor = SYSTEM) -> dict[str, Any]:
    """Flag open steps due within the policy's at-risk window (or overdue) as at risk, audit each, mark their journeys,
    and send the coordinators' manager one digest. Set-based; a second run flags nothing new.
    Returns {"flagged": n, "journeys": m, "message_id": id | None}."""
    pol = session.execute(select(CancellationPolicy).where(CancellationPolicy.reason_code.is_(None), CancellationPolicy.segment_code.is_(None))).scalar_one_or_none()
    hours = pol.at_risk_hours if pol else 24
    horizon = now + timedelta(hours=hours)
    pg = session.get_bind().dialect.name == "postgresql"
    from opsline.db.base import sqlite_utc

    ts = (lambda d: d) if pg else sqlite_utc  # noqa: E731
    open_j = ", ".join(f"'{s}'" for s in OPEN_STATES)
    session.flush()
    rows = session.execute(text(f"""SELECT s.id, s.journey_id, s.account_id, s.code, j.reference FROM cancellation_step s
                                     JOIN cancellation_journey j ON j.id = s.journey_id
                                     WHERE s.state = 'open' AND s.at_risk = :f AND s.due_at IS NOT NULL AND s.due_at <= :h AND j.state IN ({open_j})
                                     ORDER BY s.due_at, s.id"""), {"h": ts(horizon), "f": False}).all()
    if not rows:
        return {"flagged": 0, "journeys": 0, "message_id": None}
    session.execute(text("DROP TABLE IF EXISTS cj_risk"))
    session.execute(text("CREATE TEMP TABLE cj_risk (id BIGINT PRIMARY KEY, journey_id BIGINT)"))
    from opsline.db.bulk import copy_rows

    copy_rows(session.connection(), "cj_risk", ("id", "journey_id"), ((r.id, r.journey_id) for r in rows))
    session.execute(text("UPDATE cancellation_step SET at_risk = :t, escalated_at = :now WHERE id IN (SELECT id FROM cj_risk)"), {"t": True, "now": ts(now)})
    session.execute(text("UPDATE cancellation_journey SET at_risk = :t WHERE id IN (SELECT journey_id FROM cj_risk)"), {"t": True})
    as_json = "jsonb_build_object" if pg else "json_object"
    session.execute(text(f"""INSERT INTO audit_event (occurred_at, actor, entity_type, entity_id, account_id, action, reason, "before", "after")
                             SELECT :now, :actor, 'cancellation_step', CAST(s.id AS VARCHAR(60)), s.account_id, 'at_risk', :why,
                                    {as_json}('at_risk', :f), {as_json}('at_risk', :t, 'code', s.code, 'due_at', CAST(s.due_at AS VARCHAR(40)))
                             FROM cancellation_step s JOIN cj_risk r ON r.id = s.id ORDER BY s.id"""),
                    {"now": ts(now), "actor": actor.name, "why": f"due within {hours} h or overdue", "t": True, "f": False})
    session.execute(text("DROP TABLE cj_risk"))
    for obj in list(session.identity_map.values()):
        if isinstance(obj, (CancellationStep, CancellationJourney)):
            session.expire(obj)
    journeys = sorted({r.reference for r in rows})
    message_id = None
    if pol is not None and pol.escalation_email:
        body = (f"{len(rows)} cancellation step(s) on {len(journeys)} journey(s) are at risk of missing their due time "
                f"(due within {hours} h or overdue): " + ", ".join(f"{r.reference} {STEP_LABELS[r.code]}" for r in rows[:20])
                + (" …" if len(rows) > 20 else "") + ". See /cancellations?breaching=1.")
        message_id = notifications.send(session, event="cancellation.step_at_risk", account_id=None, to=pol.escalation_email,
                                        context={"count": len(rows), "journeys": len(journeys), "body": body}, now=now, actor=actor,
                                        category="service", idempotency_key=f"cancellation:escalation:{now.isoformat()}", tz=tz)
    domain_events.publish(session, "cancellation.steps_at_risk", {"ids": sorted({r.journey_id for r in rows}), "count": len(rows)}, now=now, actor=actor)
    return {"flagged": len(rows), "journeys": len(journeys), "message_id": message_id}


ESCALATE_JOB = "cancellations.escalate"


def schedule_escalation(session: Session, *, now: datetime) -> datetime:
    """Enqueue the next escalation run at the next full hour (one job per hour however many workers or starts ask)."""
    at = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    jobs.enqueue(session, kind=ESCALATE_JOB, payload={}, now=now, run_at=at, idempotency_key=f"{ESCALATE_JOB}:{at:%Y%m%d%H}", priority=400)
    return at


def escalation_job(session: Session, payload: dict[str, Any], now: datetime, *, tz: ZoneInfo) -> dict[str, Any]:
    """The hourly job: flag and escalate steps at risk, then schedule the next run."""
    out = escalate(session, now=now, tz=tz)
    schedule_escalation(session, now=now)
    return out
