"""Partner operations: partners as data, outbound TMF641 service orders, delivery through adapters, partner callbacks,
and the queries behind the Partners desk, the account 360 panel and the orders area."""

from __future__ import annotations

import json
import secrets
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from opsline.core import domain_events, events, jobs, lifecycle
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.core.ids import reference
from opsline.customers import service as customers
from opsline.inventory.models import Product
from opsline.partners.adapters import Adapter, AdapterUnavailable, HttpAdapter, verify_signature
from opsline.partners.dates import add_business_days, local_date
from opsline.partners.errors import (
    InvalidCallbackSignature,
    PartnerNotFound,
    RetryNotAllowed,
    ServiceOrderNotFound,
    ServiceOrderTransitionNotAllowed,
    UnableToReadCallback,
    UnableToSubmitServiceOrder,
)
from opsline.partners.queries import (  # noqa: F401  (the read side, re-exported: other areas need only this module)
    account_partner_orders,
    desk_summary,
    get_service_order,
    home_cards,
    list_service_orders,
    recent_messages,
    service_orders_for_items,
    service_orders_for_product,
)
from opsline.partners.models import OPEN_SERVICE_ORDER_STATES, SERVICE_ORDER, AdapterKind, Partner, PartnerKind, PartnerMessage, PartnerServiceOrder, ServiceOrderState
from opsline.partners.simulator import SimulatorAdapter
from opsline.partners.tmf641 import build_cancel_service_order, build_service_order, parse_state_change

DELIVER_JOB = "partners.deliver"
CANCEL_JOB = "partners.cancel"  # a TMF641 cancelServiceOrder to the partner of an order it has and has not finished
ACTIONS = ("add", "modify", "delete")
S = ServiceOrderState

OPEN_STATES = OPEN_SERVICE_ORDER_STATES
SERVICE_STATES = ("suspended", "active")


# --- partners -------------------------------------------------------------------------------------

_PARTNER_FIELDS = (
    "code", "name", "kind", "active", "contact_email", "contact_phone", "escalation_name", "escalation_email", "escalation_phone",
    "activation_sla_days", "deactivation_sla_days", "fault_restore_hours", "currency", "monthly_line_cost_minor", "late_deactivation_cost_minor",
    "late_deactivation_period", "collection_fee_minor", "notice_cutoff_day", "notice_days", "notice_rule", "adapter", "base_url", "timeout_seconds",
    "simulator_mode", "simulator_outage", "simulator_reject_percent", "simulator_progress_seconds", "simulator_complete_seconds",
)


SERVICE_ORDER_CREATED = "partners.service_order_created"  # {"id"}: a new service order (TMF641 ServiceOrderCreateEvent)
SERVICE_ORDER_CHANGED = "partners.service_order_changed"  # {"id", "attributes"}: delivered to the partner (its reference)

def partner_dict(p: Partner) -> dict[str, Any]:
    d = {f: getattr(p, f) for f in _PARTNER_FIELDS}
    d["commission_percent"] = float(p.commission_percent or 0)
    d["has_webhook_secret"] = bool(p.webhook_secret)
    return d


def _partner(session: Session, code: str) -> Partner:
    p = session.get(Partner, code)
    if p is None:
        raise PartnerNotFound(f"unknown partner '{code}'", field="partner_code")
    return p


def get_partner(session: Session, *, code: str) -> dict[str, Any]:
    """A partner's settings (SLA targets, fees, notice rules, contacts, integration; never its secrets). Raises PartnerNotFound."""
    return partner_dict(_partner(session, code))


def list_partners(session: Session, *, kind: str | None = None) -> list[dict[str, Any]]:
    q = select(Partner).order_by(Partner.kind, Partner.name)
    if kind:
        q = q.where(Partner.kind == kind)
    return [partner_dict(p) for p in session.execute(q).scalars()]


def desk_page(session: Session, *, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """The Partners desk: per-partner summary, stuck deliveries, late orders, recently ignored callbacks."""
    return {"summary": desk_summary(session, now=now, tz=tz), "stuck": list_service_orders(session, now=now, tz=tz, delivery="stuck", page_size=20),
            "late": list_service_orders(session, now=now, tz=tz, late=True, page_size=20), "ignored": recent_messages(session, outcome="ignored", limit=10)}


def orders_page(session: Session, *, now: datetime, tz: ZoneInfo, page: int = 1, **filters: Any) -> dict[str, Any]:
    """The service-order list with its filter choices (see list_service_orders for the filters)."""
    return {"result": list_service_orders(session, now=now, tz=tz, page=page, **filters), "partners": list_partners(session, kind="fno"),
            "deliveries": ["pending", "retrying", "dead", "stuck", "delivered"]}


def service_order_page(session: Session, *, service_order_id: int, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """One service order with its messages and its partner. Raises ServiceOrderNotFound."""
    o = get_service_order(session, service_order_id=service_order_id, now=now, tz=tz)
    return {"o": o, "partner": get_partner(session, code=o["partner_code"])}


def partner_page(session: Session, *, code: str, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """One partner: settings, its open orders, its summary line and its latest messages. Raises PartnerNotFound."""
    p = get_partner(session, code=code)
    return {"p": p, "open_orders": list_service_orders(session, now=now, tz=tz, partner_code=code, state="open", page_size=25),
            "summary": next((s for s in desk_summary(session, now=now, tz=tz)["partners"] if s["code"] == code), None),
            "messages": recent_messages(session, partner_code=code, limit=15)}


def set_simulator_outage(session: Session, *, code: str, outage: bool, now: datetime, actor: Actor, reason: str) -> dict[str, Any]:
    """Put a simulated partner into (or out of) outage mode. Raises PartnerNotFound, InvalidInput (not simulated / no reason)."""
    if not reason or not reason.strip():
        raise InvalidInput("a reason is required", field="reason")
    p = _partner(session, code)
    if p.adapter != AdapterKind.SIMULATOR:
        raise InvalidInput(f"{p.name} is not simulated; outage mode only applies to the built-in simulator", field="code")
    before = p.simulator_outage
    p.simulator_outage = outage
    events.record(session, now=now, actor=actor, entity_type="partner", entity_id=p.code, action="simulator_outage_on" if outage else "simulator_outage_off",
                  reason=reason, before={"simulator_outage": before}, after={"simulator_outage": outage})
    return partner_dict(p)


# --- service orders ------------------------------------------------------------------------------

def _site(session: Session, site_id: int | None, account_id: int) -> dict[str, Any] | None:
    if site_id is None:
        return None
    try:
        return customers.site_dict(customers.get_site(session, site_id=site_id, account_id=account_id))
    except NotFound as exc:
        raise UnableToSubmitServiceOrder(f"site {site_id} is not a site of account {account_id}", field="site_id") from exc


def submit_service_order(
    session: Session, *, partner_code: str, action: str, account_id: int, product_id: int, site_id: int | None, requested_date: date,
    reason: str, now: datetime, tz: ZoneInfo, actor: Actor, order_item_id: int | None = None, service_state: str | None = None,
) -> int:
    """Create an outbound service order (state acknowledged, delivery pending) and enqueue its delivery in the caller's
    transaction. Returns its id. `service_state` ('suspended' / 'active') makes a 'modify' that only suspends or resumes
    the line. Raises PartnerNotFound, UnableToSubmitServiceOrder (bad action or service state, partner not an FNO,
    inactive partner, unknown account or site)."""
    if action not in ACTIONS:
        raise UnableToSubmitServiceOrder(f"action must be one of {', '.join(ACTIONS)}, not '{action}'", field="action")
    if service_state is not None and (action != "modify" or service_state not in SERVICE_STATES):
        raise UnableToSubmitServiceOrder(f"a line state change ('{service_state}') is a modify order to 'suspended' or 'active'", field="service_state")
    partner = _partner(session, partner_code)
    if partner.kind != PartnerKind.FNO:
        raise UnableToSubmitServiceOrder(f"{partner.name} is a {partner.kind.replace('_', ' ')}, not a network operator; service orders go to FNOs", field="partner_code")
    if not partner.active:
        raise UnableToSubmitServiceOrder(f"{partner.name} is not active", field="partner_code")
    try:
        customers.get_account(session, account_id=account_id)
    except NotFound as exc:
        raise UnableToSubmitServiceOrder(f"account {account_id} not found", field="account_id") from exc
    _site(session, site_id, account_id)
    today = local_date(now, tz)
    sla = partner.deactivation_sla_days if action == "delete" else partner.activation_sla_days
    due = max(requested_date, add_business_days(today, sla, holiday_country=partner.holiday_country))
    so = PartnerServiceOrder(
        partner_code=partner.code, account_id=account_id, product_id=product_id, order_item_id=order_item_id, site_id=site_id, action=action,
        service_state=service_state,
        state=S.ACKNOWLEDGED.value, external_ref=f"pending-{secrets.token_hex(8)}", requested_date=requested_date, due_date=due,
        reason=reason, attempts=0, created_at=now, updated_at=now,
    )
    session.add(so)
    session.flush()
    so.external_ref = reference("OPS-SO-", so.id, width=6)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="partner_service_order", entity_id=so.id, account_id=account_id, action="submitted", reason=reason,
                  after={"partner": partner.code, "action": action, "service_state": service_state, "product_id": product_id,
                         "requested_date": requested_date.isoformat(), "external_ref": so.external_ref})
    jobs.enqueue(session, kind=DELIVER_JOB, payload={"service_order_id": so.id}, now=now, idempotency_key=so.external_ref, serial_key=f"product:{product_id}")
    domain_events.publish(session, SERVICE_ORDER_CREATED, {"id": so.id}, now=now, actor=actor)
    return so.id


def _next_sequence(session: Session, service_order_id: int | None) -> int:
    if service_order_id is None:
        return 0
    return int(session.execute(select(func.coalesce(func.max(PartnerMessage.sequence), 0)).where(PartnerMessage.service_order_id == service_order_id)).scalar_one()) + 1


def _log(session: Session, *, partner_code: str, so: PartnerServiceOrder | None, direction: str, kind: str, body: dict[str, Any], now: datetime,
         outcome: str = "applied", note: str | None = None) -> PartnerMessage:
    m = PartnerMessage(partner_code=partner_code, service_order_id=so.id if so else None, account_id=so.account_id if so else None, direction=direction,
                       at=now, kind=kind, outcome=outcome, note=note, body=json.loads(json.dumps(body, default=str)), sequence=_next_sequence(session, so.id if so else None))
    session.add(m)
    session.flush()
    return m


def transition(session: Session, *, so: PartnerServiceOrder, action: str, now: datetime, actor: Actor, reason: str | None = None,
               confirmed_date: date | None = None) -> list[str]:
    """Apply a lifecycle action to a service order (core/lifecycle SERVICE_ORDER): audit, and publish
    `partner_service_order.<state>` with the product, order item, action and confirmed date, so the areas that asked
    (orders, inventory) react. Returns the next allowed actions. Raises TransitionNotAllowed, ReasonRequired."""
    confirmed = confirmed_date or so.confirmed_date
    details = {"partner_code": so.partner_code, "product_id": so.product_id, "order_item_id": so.order_item_id, "order_action": so.action,
               "service_state": so.service_state, "external_ref": so.external_ref, "confirmed_date": confirmed.isoformat() if confirmed else None}
    nxt = lifecycle.transition(session, SERVICE_ORDER, so, action, now=now, actor=actor, reason=reason, details=details, label=f"service order {so.external_ref}")
    if confirmed_date is not None:
        so.confirmed_date = confirmed_date
    if reason:
        so.state_reason = reason
    so.updated_at = now
    return nxt


_ACTION_FOR_STATE = {S.HELD: "hold", S.IN_PROGRESS: "start", S.COMPLETED: "complete", S.FAILED: "fail", S.REJECTED: "reject", S.CANCELLED: "cancel"}


def _locked(session: Session, service_order_id: int) -> PartnerServiceOrder | None:
    return session.execute(select(PartnerServiceOrder).where(PartnerServiceOrder.id == service_order_id).with_for_update()).scalar_one_or_none()


def order_payload(session: Session, *, so: PartnerServiceOrder, tz: ZoneInfo | None = None) -> dict[str, Any]:
    """The TMF641 body we send for this order (dates as the start of that day in `tz`, the company's zone)."""
    site = _site(session, so.site_id, so.account_id) if so.site_id else None
    account = customers.get_account(session, account_id=so.account_id)
    line_ref = _line_ref(session, so.product_id)
    return build_service_order(external_ref=so.external_ref, partner_code=so.partner_code, action=so.action, requested_date=so.requested_date,
                               product_id=so.product_id, line_ref=line_ref, site=site, account_number=account.account_number, reason=so.reason, created_at=so.created_at,
                               service_state=so.service_state, tz=tz)


def _line_ref(session: Session, product_id: int) -> str | None:
    return session.execute(select(Product.partner_line_ref).where(Product.id == product_id)).scalar_one_or_none()


def adapter_for(session: Session, *, partner: Partner, now: datetime, tz: ZoneInfo, site: dict[str, Any] | None = None) -> Adapter:
    if partner.adapter == AdapterKind.HTTP:
        return HttpAdapter(base_url=partner.base_url or "", auth_token=partner.auth_token, timeout_seconds=partner.timeout_seconds, signing_secret=partner.webhook_secret)
    return SimulatorAdapter(session, partner=partner, now=now, tz=tz, coverage=list(site["fno_coverage"]) if site and site.get("fno_coverage") else None)


def _delivery_job(session: Session, external_ref: str) -> jobs.Job | None:
    return session.execute(select(jobs.Job).where(jobs.Job.idempotency_key == external_ref)).scalar_one_or_none()


def deliver(session: Session, *, service_order_id: int, now: datetime, tz: ZoneInfo, actor: Actor | None = None) -> dict[str, Any]:
    """Send one service order through its partner's adapter (the `partners.deliver` job). Safe to run again: an order
    already delivered, cancelled or answered is left alone. Raises AdapterUnavailable (the job retries with backoff)."""
    actor = actor or Actor.system("partners.deliver")
    so = _locked(session, service_order_id)
    if so is None:
        return {"skipped": "no such service order"}
    if so.delivered_at is not None or so.state != S.ACKNOWLEDGED:
        return {"skipped": f"already {'delivered' if so.delivered_at else so.state}"}
    partner = _partner(session, so.partner_code)
    payload = order_payload(session, so=so, tz=tz)
    site = _site(session, so.site_id, so.account_id) if so.site_id else None
    job = _delivery_job(session, so.external_ref)
    result = adapter_for(session, partner=partner, now=now, tz=tz, site=site).submit(payload)  # raises AdapterUnavailable: rolled back, retried
    so.attempts = job.attempts if job is not None else so.attempts + 1
    so.last_error = None
    so.delivered_at = now
    so.updated_at = now
    if result.partner_ref:
        so.partner_ref = result.partner_ref
    _log(session, partner_code=so.partner_code, so=so, direction="out", kind="serviceOrder.create", body=payload, now=now, outcome="sent")
    _log(session, partner_code=so.partner_code, so=so, direction="in", kind="serviceOrder.response", body=result.response or {"state": result.state}, now=now,
         note=result.reason)
    events.record(session, now=now, actor=actor, entity_type="partner_service_order", entity_id=so.id, account_id=so.account_id, action="delivered",
                  after={"partner_ref": so.partner_ref, "attempts": so.attempts, "accepted": result.accepted})
    domain_events.publish(session, SERVICE_ORDER_CHANGED, {"id": so.id, "attributes": sorted({"delivered_at"} | ({"partner_ref"} if result.partner_ref else set()))},
                          now=now, actor=actor)
    if not result.accepted:
        transition(session, so=so, action="reject", now=now, actor=actor, reason=result.reason or "rejected by partner")
    elif result.state in _ACTION_FOR_STATE and result.state != so.state:
        transition(session, so=so, action=_ACTION_FOR_STATE[S(result.state)], now=now, actor=actor, reason=result.reason)
    return {"service_order_id": so.id, "partner_ref": so.partner_ref, "state": so.state}


def apply_partner_event(session: Session, *, partner_code: str, event: dict[str, Any], now: datetime, tz: ZoneInfo, actor: Actor) -> dict[str, Any]:
    """Apply a TMF641 ServiceOrderStateChangeEvent from a partner (webhook or simulator). Every event is logged; unknown orders,
    duplicates and out-of-order states are logged as ignored and change nothing. Returns {"outcome": "applied" | "ignored" |
    "unknown", "detail", "service_order_id", "state"}. Raises UnableToReadCallback for a malformed event."""
    try:
        ev = parse_state_change(event)
    except ValueError as exc:
        raise UnableToReadCallback(str(exc), field="event") from exc
    conds = []
    if ev["partner_ref"]:
        conds.append(PartnerServiceOrder.partner_ref == ev["partner_ref"])
    if ev["external_ref"]:
        conds.append(PartnerServiceOrder.external_ref == ev["external_ref"])
    found = session.execute(select(PartnerServiceOrder.id).where(PartnerServiceOrder.partner_code == partner_code, or_(*conds)).order_by(PartnerServiceOrder.id).limit(1)).scalar_one_or_none()
    kind = str(event.get("eventType"))
    if found is None:
        detail = f"no service order with id {ev['partner_ref']!r} / externalId {ev['external_ref']!r} for {partner_code}"
        _log(session, partner_code=partner_code, so=None, direction="in", kind=kind, body=event, now=now, outcome="ignored", note=detail)
        return {"outcome": "unknown", "detail": detail, "service_order_id": None, "state": None, "external_ref": None}
    so = _locked(session, found)
    assert so is not None
    target = ev["state"]
    if target == so.state:
        note = f"duplicate: already {so.state}"
    elif target == S.ACKNOWLEDGED or SERVICE_ORDER.target(so.state, _ACTION_FOR_STATE[S(target)]) is None:
        note = f"out of order: {target} after {so.state}"
    else:
        note = None
    if note is not None:
        _log(session, partner_code=partner_code, so=so, direction="in", kind=kind, body=event, now=now, outcome="ignored", note=note)
        return {"outcome": "ignored", "detail": note, "service_order_id": so.id, "state": so.state, "external_ref": so.external_ref}
    if so.partner_ref is None and ev["partner_ref"]:
        so.partner_ref = ev["partner_ref"]
    if so.delivered_at is None:
        # The partner has the order although our delivery never saw an answer (e.g. a timeout after they received it).
        so.delivered_at = now
    _log(session, partner_code=partner_code, so=so, direction="in", kind=kind, body=event, now=now, outcome="applied", note=ev["reason"])
    confirmed = ev["completion_date"] if target == S.COMPLETED else None
    if target == S.COMPLETED and confirmed is None:
        confirmed = local_date(now, tz)
    transition(session, so=so, action=_ACTION_FOR_STATE[S(target)], now=now, actor=actor, reason=ev["reason"] or f"{target} by {partner_code}",
               confirmed_date=confirmed)
    return {"outcome": "applied", "detail": f"{so.external_ref} is now {so.state}", "service_order_id": so.id, "state": so.state, "external_ref": so.external_ref}


def receive_callback(session: Session, *, partner_code: str, raw_body: bytes, signature: str | None, authorization: str | None, now: datetime,
                     tz: ZoneInfo) -> dict[str, Any]:
    """A partner's webhook: check the signature (HMAC-SHA256 of the body with the partner's webhook secret, or the secret as a
    bearer token), then apply the event. Raises PartnerNotFound, InvalidCallbackSignature, UnableToReadCallback."""
    partner = _partner(session, partner_code)
    if not verify_signature(partner.webhook_secret, raw_body, signature=signature, authorization=authorization):
        raise InvalidCallbackSignature("the callback signature does not match this partner's webhook secret")
    try:
        event = json.loads(raw_body or b"null")
    except ValueError as exc:
        raise UnableToReadCallback("body is not valid JSON", field="body") from exc
    return apply_partner_event(session, partner_code=partner.code, event=event, now=now, tz=tz, actor=Actor.system(f"partner:{partner.code}"))


def simulate(session: Session, *, partner_code: str, event: dict[str, Any], now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """The `partners.simulate` job: the simulated partner sends one callback. Raises AdapterUnavailable in outage mode (retried)."""
    partner = _partner(session, partner_code)
    if partner.simulator_outage:
        raise AdapterUnavailable(f"{partner.name} (simulated) is in outage; callback delayed")
    return apply_partner_event(session, partner_code=partner.code, event=event, now=now, tz=tz, actor=Actor.system(f"simulator:{partner.code}"))


def cancel_service_order(session: Session, *, service_order_id: int, now: datetime, actor: Actor, reason: str) -> list[str]:
    """Cancel an order the partner has not yet received. Raises ServiceOrderNotFound, ReasonRequired,
    ServiceOrderTransitionNotAllowed (already delivered), TransitionNotAllowed (no longer open)."""
    so = _locked(session, service_order_id)
    if so is None:
        raise ServiceOrderNotFound(f"service order {service_order_id} not found")
    if so.delivered_at is not None:
        raise ServiceOrderTransitionNotAllowed(f"{so.external_ref} was already delivered to {so.partner_code}; ask the partner to cancel it")
    return transition(session, so=so, action="cancel", now=now, actor=actor, reason=reason)


def withdraw_service_order(session: Session, *, service_order_id: int, now: datetime, actor: Actor, reason: str) -> bool:
    """The order that asked for this service order was cancelled: cancel it when the partner has not received it yet
    (True); when it was delivered (or has already ended) record that the partner must be asked and leave it (False).
    Raises ServiceOrderNotFound, ReasonRequired."""
    so = _locked(session, service_order_id)
    if so is None:
        raise ServiceOrderNotFound(f"service order {service_order_id} not found")
    if so.delivered_at is None and SERVICE_ORDER.target(so.state, "cancel") is not None:
        transition(session, so=so, action="cancel", now=now, actor=actor, reason=reason)
        return True
    events.record(session, now=now, actor=actor, entity_type="partner_service_order", entity_id=so.id, account_id=so.account_id,
                  action="withdrawal_requested", reason=f"{reason}; {so.external_ref} is {so.state}"
                  + (f" and was delivered to {so.partner_code}: confirm the cancellation with the partner (asked by a TMF641 cancelServiceOrder)"
                     if so.delivered_at else ""))
    if so.delivered_at is not None and SERVICE_ORDER.target(so.state, "cancel") is not None:
        request_partner_cancellation(session, service_order_id=so.id, now=now, actor=actor, reason=reason)
    return False


def request_partner_cancellation(session: Session, *, service_order_id: int, now: datetime, actor: Actor, reason: str) -> dict[str, Any]:
    """Ask the partner to cancel a service order it has received and not finished: a TMF641 cancelServiceOrder, sent by the
    `partners.cancel` job (retried with backoff while the partner is down). The order is cancelled here when the partner says
    so (its ServiceOrderStateChangeEvent). Idempotent: asking again returns {"outcome": "already_requested"}; audited.
    Raises ServiceOrderNotFound, InvalidInput (no reason), ServiceOrderTransitionNotAllowed (not delivered yet: cancel it
    with cancel_service_order; or no longer open)."""
    if not (reason or "").strip():
        raise InvalidInput("a reason is required", field="reason")
    so = _locked(session, service_order_id)
    if so is None:
        raise ServiceOrderNotFound(f"service order {service_order_id} not found")
    if so.delivered_at is None:
        raise ServiceOrderTransitionNotAllowed(f"{so.external_ref} has not reached {so.partner_code}; cancel it here instead")
    if SERVICE_ORDER.target(so.state, "cancel") is None:
        raise ServiceOrderTransitionNotAllowed(f"{so.external_ref} is {so.state}; only an open order can be cancelled")
    key = f"cancel:{so.external_ref}"
    if _delivery_job(session, key) is not None:
        return {"outcome": "already_requested", "service_order_id": so.id}
    events.record(session, now=now, actor=actor, entity_type="partner_service_order", entity_id=so.id, account_id=so.account_id,
                  action="cancellation_requested", reason=reason, after={"partner": so.partner_code, "partner_ref": so.partner_ref, "state": so.state})
    jobs.enqueue(session, kind=CANCEL_JOB, payload={"service_order_id": so.id, "reason": reason}, now=now, idempotency_key=key,
                 serial_key=f"product:{so.product_id}")
    return {"outcome": "requested", "service_order_id": so.id}


def cancel_or_ask_partner(session: Session, *, service_order_id: int, now: datetime, actor: Actor, reason: str) -> str:
    """The desk's Cancel: an order the partner has not received is cancelled here ("cancelled"); one it has is cancelled by
    asking it ("requested", or "already_requested"). Raises what cancel_service_order and request_partner_cancellation raise."""
    so = session.get(PartnerServiceOrder, service_order_id)
    if so is not None and so.delivered_at is not None:
        return str(request_partner_cancellation(session, service_order_id=service_order_id, now=now, actor=actor, reason=reason)["outcome"])
    cancel_service_order(session, service_order_id=service_order_id, now=now, actor=actor, reason=reason)
    return "cancelled"


def send_cancellation(session: Session, *, service_order_id: int, reason: str, now: datetime, tz: ZoneInfo, actor: Actor | None = None) -> dict[str, Any]:
    """The `partners.cancel` job: POST the TMF641 cancelServiceOrder through the partner's adapter, log the request and the
    answer on the order, audit it. Safe to run again (sent once; an order that ended meanwhile is left alone). Raises
    AdapterUnavailable (rolled back; the job retries with backoff)."""
    actor = actor or Actor.system("partners.cancel")
    so = _locked(session, service_order_id)
    if so is None or SERVICE_ORDER.target(so.state, "cancel") is None:
        return {"skipped": "no such open service order"}
    sent = session.execute(select(PartnerMessage.id).where(PartnerMessage.service_order_id == so.id, PartnerMessage.kind == "cancelServiceOrder.create")).first()
    if sent is not None:
        return {"skipped": "cancellation already sent"}
    partner = _partner(session, so.partner_code)
    payload = build_cancel_service_order(partner_ref=so.partner_ref, external_ref=so.external_ref, reason=reason, requested_at=now)
    site = _site(session, so.site_id, so.account_id) if so.site_id else None
    result = adapter_for(session, partner=partner, now=now, tz=tz, site=site).cancel(payload, external_ref=so.external_ref)
    _log(session, partner_code=so.partner_code, so=so, direction="out", kind="cancelServiceOrder.create", body=payload, now=now, outcome="sent")
    _log(session, partner_code=so.partner_code, so=so, direction="in", kind="cancelServiceOrder.response", body=result.response or {"state": result.state},
         now=now, note=result.reason)
    events.record(session, now=now, actor=actor, entity_type="partner_service_order", entity_id=so.id, account_id=so.account_id,
                  action="cancellation_sent" if result.accepted else "cancellation_refused", reason=result.reason,
                  after={"accepted": result.accepted, "state": result.state, "request_id": result.partner_ref})
    so.updated_at = now
    return {"service_order_id": so.id, "accepted": result.accepted, "state": result.state}


def change_line_state(session: Session, *, product_id: int, service_state: str, now: datetime, tz: ZoneInfo, actor: Actor, reason: str) -> int | None:
    """Tell the product's FNO to suspend ('suspended') or resume ('active') the line: a TMF641 modify order delivered
    through the job table. Returns the service order id, or None when no FNO delivers the product (or the partner is
    switched off, which is recorded on the product's history). Raises UnableToSubmitServiceOrder."""
    product = session.get(Product, product_id)
    if product is None or not product.partner_code:
        return None
    partner = session.get(Partner, product.partner_code)
    if partner is None or partner.kind != PartnerKind.FNO:
        return None
    if not partner.active:
        # the suspension itself must not fail because the partner is switched off; the gap is on record for the desk
        events.record(session, now=now, actor=actor, entity_type="product", entity_id=product.id, account_id=product.account_id,
                      action="line_state_not_sent", reason=f"{partner.name} is not active; tell them the line is {service_state} another way",
                      after={"service_state": service_state, "partner_code": partner.code})
        return None
    return submit_service_order(session, partner_code=partner.code, action="modify", account_id=product.account_id, product_id=product.id,
                                site_id=product.site_id, requested_date=local_date(now, tz), reason=reason, now=now, tz=tz, actor=actor, service_state=service_state)


def retry_delivery(session: Session, *, service_order_id: int, now: datetime, actor: Actor, reason: str = "retry requested") -> None:
    """Re-queue a dead or retrying delivery to run now. Raises ServiceOrderNotFound, RetryNotAllowed (already delivered / not stuck)."""
    so = session.get(PartnerServiceOrder, service_order_id)
    if so is None:
        raise ServiceOrderNotFound(f"service order {service_order_id} not found")
    if so.delivered_at is not None or so.state != S.ACKNOWLEDGED:
        raise RetryNotAllowed(f"{so.external_ref} needs no delivery (it is {so.state}{', delivered' if so.delivered_at else ''})")
    job = _delivery_job(session, so.external_ref)
    if job is None:
        jobs.enqueue(session, kind=DELIVER_JOB, payload={"service_order_id": so.id}, now=now, idempotency_key=so.external_ref, serial_key=f"product:{so.product_id}")
        before = {"job": None}
    elif job.state == jobs.JobState.RUNNING:
        raise RetryNotAllowed(f"{so.external_ref} is being delivered right now")
    else:
        before = {"job_state": job.state, "job_attempts": job.attempts}
        session.execute(update(jobs.Job).where(jobs.Job.id == job.id).values(state=jobs.JobState.QUEUED.value, run_at=now, attempts=0, finished_at=None, lease_until=None, locked_by=None))
    so.updated_at = now
    events.record(session, now=now, actor=actor, entity_type="partner_service_order", entity_id=so.id, account_id=so.account_id, action="delivery_retried",
                  reason=reason, before=before, after={"job_state": "queued"})


def register_jobs(registry: jobs.Registry, *, tz: ZoneInfo) -> None:
    """The delivery and simulator jobs; `tz` is the operator's timezone, read where the worker starts."""

    @registry.register(DELIVER_JOB)
    def _deliver(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
        return deliver(session, service_order_id=int(payload["service_order_id"]), now=now, tz=tz)

    @registry.register(CANCEL_JOB)
    def _cancel(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
        return send_cancellation(session, service_order_id=int(payload["service_order_id"]), reason=str(payload["reason"]), now=now, tz=tz)

    @registry.register("partners.simulate")
    def _simulate(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
        return simulate(session, partner_code=str(payload["partner_code"]), event=dict(payload["event"]), now=now, tz=tz)
