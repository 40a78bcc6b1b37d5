"""Change requests against a B2B contract: in scope (no charge) or out of scope (priced and turned into a quote),
approved by a second person, linked to the order that delivers them, and marked delivered when that order completes
(a reaction to `product_order.completed`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.b2b.models import CHANGE, SCOPES, B2BChangeRequest, B2BContract, ChangeState, ContractState
from opsline.core import events, lifecycle
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.core.money import Money
from opsline.orders import service as orders
from opsline.orders.schemas import OrderItemIn, QuoteIn

SYSTEM = Actor.system("b2b-change-tracking")


class UnableToChange(InvalidInput):
    title = "Unable to record the change request"
    type_slug = "b2b-change-invalid"


def _get(session: Session, change_id: int) -> B2BChangeRequest:
    cr = session.get(B2BChangeRequest, change_id)
    if cr is None:
        raise NotFound(f"change request {change_id} not found", field="change_id")
    return cr


def create(session: Session, *, contract_id: int, title: str, description: str | None, scope: str, impact: str, price: Money | None,
           now: datetime, actor: Actor) -> int:
    """Raise a change request. Raises NotFound (contract), UnableToChange naming the field: `scope` missing or unknown,
    `title` or `impact` empty, `price` missing for an out-of-scope change, given for an in-scope one, negative or in
    another currency, `contract_id` ended. Nothing is written when it raises."""
    c = session.get(B2BContract, contract_id)
    if c is None:
        raise NotFound(f"contract {contract_id} not found", field="contract_id")
    if c.state != ContractState.ACTIVE:
        raise UnableToChange(f"contract {c.reference} has ended", field="contract_id")
    if scope not in SCOPES:
        raise UnableToChange("say whether the change is in scope or out of scope of the contract" if not scope else
                             f"unknown scope '{scope}'; one of {', '.join(SCOPES)}", field="scope")
    if not (title or "").strip():
        raise UnableToChange("a change request needs a title", field="title")
    if not (impact or "").strip():
        raise UnableToChange("describe the impact (sites, services, downtime, risks)", field="impact")
    minor = 0
    if scope == "out_of_scope":
        if price is None or price.amount <= 0:
            raise UnableToChange("an out-of-scope change needs its price", field="price")
        if price.currency != c.currency:
            raise UnableToChange(f"the price is in {price.currency}; contract {c.reference} is in {c.currency}", field="price")
        minor = price.rounded().minor
    elif price is not None and price.amount != 0:
        raise UnableToChange("an in-scope change is delivered at no charge; leave the price empty or mark it out of scope", field="price")
    cr = B2BChangeRequest(contract_id=c.id, account_id=c.account_id, reference=f"tmp-{now.timestamp()}-{c.id}", title=title.strip()[:300],
                          description=(description or "").strip() or None, scope=scope, impact=impact.strip(), price_minor=minor, currency=c.currency,
                          state=ChangeState.SUBMITTED, created_at=now, created_by=actor.name)
    session.add(cr)
    session.flush()
    cr.reference = f"CR-{cr.id:06d}"
    events.record(session, now=now, actor=actor, entity_type="b2b_change_request", entity_id=cr.id, action="submitted", account_id=c.account_id,
                  after={"reference": cr.reference, "contract": c.reference, "scope": scope, "price_minor": minor})
    return int(cr.id)


def act(session: Session, *, change_id: int, action: str, reason: str | None, now: datetime, actor: Actor) -> list[str]:
    """approve (a second person), reject or withdraw (with a reason). Raises NotFound, TransitionNotAllowed,
    ActionNotPermitted, ReasonRequired, FourEyesRequired."""
    cr = _get(session, change_id)
    if action not in ("approve", "reject", "withdraw"):
        raise UnableToChange(f"'{action}' is not done here", field="action")
    out = lifecycle.transition(session, CHANGE, cr, action, now=now, actor=actor, reason=reason, label=f"change request {cr.reference}")
    if action in ("approve", "reject"):
        cr.decided_by = actor.name
    return out


def to_quote(session: Session, *, change_id: int, offering_id: int, site_id: int | None, now: datetime, tz: ZoneInfo, actor: Actor) -> int:
    """Turn an approved out-of-scope change into a quote for the customer (priced from the catalogue by orders).
    Returns the quote id. Raises UnableToChange (field `scope`: an in-scope change is not quoted), TransitionNotAllowed,
    and what orders.create_quote raises (e.g. an unknown offering, named)."""
    cr = _get(session, change_id)
    if cr.scope != "out_of_scope":
        raise UnableToChange(f"{cr.reference} is in scope: it is delivered without a quote", field="scope")
    if CHANGE.target(cr.state, "quote") is None:
        raise UnableToChange(f"{cr.reference} is {cr.state}; only an approved change is quoted", field="state")
    quote = orders.create_quote(session, data=QuoteIn(account_id=cr.account_id, description=f"{cr.reference}: {cr.title}",
                                                      items=[OrderItemIn(action="add", offering_id=offering_id, site_id=site_id)]),
                                now=now, tz=tz, actor=actor)
    cr.quote_id = quote.id
    lifecycle.transition(session, CHANGE, cr, "quote", now=now, actor=actor, label=f"change request {cr.reference}", details={"quote_id": quote.id})
    return int(quote.id)


def link_order(session: Session, *, change_id: int, order_id: int, now: datetime, actor: Actor) -> list[str]:
    """Link the order that delivers the change (an in-scope change once approved, an out-of-scope one once quoted).
    Raises NotFound (order), UnableToChange (field `order_id`: another customer's order), TransitionNotAllowed."""
    cr = _get(session, change_id)
    order = orders.get_order(session, order_id=order_id)
    if order.account_id != cr.account_id:
        raise UnableToChange(f"order {order_id} belongs to another customer", field="order_id")
    if cr.scope == "out_of_scope" and cr.state == ChangeState.APPROVED:
        raise UnableToChange(f"{cr.reference} is out of scope: turn it into a quote the customer accepts first", field="state")
    cr.order_id = order_id
    out = lifecycle.transition(session, CHANGE, cr, "start_delivery", now=now, actor=actor, label=f"change request {cr.reference}",
                               details={"order_id": order_id})
    if order.state == "completed":
        _deliver(session, cr, now=now)
    return out


def _deliver(session: Session, cr: B2BChangeRequest, *, now: datetime) -> None:
    lifecycle.transition(session, CHANGE, cr, "deliver", now=now, actor=SYSTEM, label=f"change request {cr.reference}")
    cr.delivered_at = now


def on_order_completed(session: Session, payload: dict[str, Any], *, now: datetime) -> int:
    """The delivering order completed: its change requests in delivery are delivered. Returns how many."""
    rows = session.execute(select(B2BChangeRequest).where(B2BChangeRequest.order_id == int(payload["id"]),
                                                          B2BChangeRequest.state == ChangeState.IN_DELIVERY)).scalars().all()
    for cr in rows:
        _deliver(session, cr, now=now)
    return len(rows)
