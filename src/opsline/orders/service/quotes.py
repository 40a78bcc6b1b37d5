"""Quotes (TMF648): priced from the catalog with VAT; accepting one places the product order."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsline.catalog import service as catalog
from opsline.catalog.models import ProductOffering
from opsline.core import domain_events, events, lifecycle
from opsline.core.events import Actor
from opsline.customers.models import Account
from opsline.orders.models import QUOTE, ItemAction, Quote, QuoteItem, QuoteState
from opsline.orders.schemas import OrderIn, OrderItemIn, QuoteIn
from opsline.orders.service.common import local_date
from opsline.orders.service.errors import DuplicateOrderReference, QuoteExpired, QuoteNotEditable, QuoteNotFound, UnableToChangeQuote
from opsline.orders.service.placing import place_order
from opsline.orders.service.validation import check_account, validate_items


QUOTE_CREATED = "orders.quote_created"  # {"id"}: a new quote (TMF648 QuoteCreateEvent)
QUOTE_CHANGED = "orders.quote_changed"  # {"id", "attributes"}: a quote changed other than its state (TMF648 QuoteAttributeValueChangeEvent)

def create_quote(session: Session, *, data: QuoteIn, now: datetime, tz: ZoneInfo, actor: Actor) -> Quote:
    """Price the items from the catalog on the requested start date (recurring per month and once-off, with VAT).
    Raises UnableToPlaceOrder, OrderNotAllowed, DuplicateOrderReference, catalog.OfferingNotFound, catalog.PriceNotValid, catalog.UnknownTaxRate."""
    acc = check_account(session, data.account_id)
    start = data.requested_start_date or local_date(now, tz)
    if data.external_id and session.execute(select(Quote.id).where(Quote.account_id == acc.id, Quote.external_id == data.external_id)).first():
        raise DuplicateOrderReference(f"quote reference '{data.external_id}' was already used on this account", field="external_id")
    items = validate_items(session, account_id=acc.id, items=data.items, on=start, for_quote=True)
    quote = Quote(account_id=acc.id, external_id=data.external_id, state=QuoteState.IN_PROGRESS.value, description=data.description, currency=acc.currency,
                  requested_start_date=start, valid_until=data.valid_until, created_at=now, updated_at=now)
    session.add(quote)
    session.flush()
    for it in items:
        s = catalog.price_summary(session, offering_id=it.offering.id, on=start, quantity=it.data.quantity, include_router=it.offering.contract_months == 0)
        if it.data.action == ItemAction.MODIFY and not it.relocation:
            s = s | {"one_off_minor": 0, "one_off_tax_minor": 0}
        if it.data.action == ItemAction.DELETE:
            s = s | {"recurring_minor": 0, "recurring_tax_minor": 0, "one_off_minor": 0, "one_off_tax_minor": 0}
        session.add(QuoteItem(quote_id=quote.id, account_id=acc.id, action=it.data.action, offering_id=it.offering.id, product_id=it.product.id if it.product else None,
                              site_id=it.site_id, quantity=it.data.quantity, currency=s["currency"], recurring_minor=s["recurring_minor"], recurring_tax_minor=s["recurring_tax_minor"],
                              one_off_minor=s["one_off_minor"], one_off_tax_minor=s["one_off_tax_minor"]))
        quote.recurring_total_minor += s["recurring_minor"]
        quote.recurring_tax_minor += s["recurring_tax_minor"]
        quote.one_off_total_minor += s["one_off_minor"]
        quote.one_off_tax_minor += s["one_off_tax_minor"]
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="quote", entity_id=quote.id, account_id=acc.id, action="created",
                  after={"recurring_total_minor": quote.recurring_total_minor, "one_off_total_minor": quote.one_off_total_minor, "currency": quote.currency})
    domain_events.publish(session, QUOTE_CREATED, {"id": quote.id}, now=now, actor=actor)
    return quote


def get_quote(session: Session, *, quote_id: int) -> Quote:
    """Raises QuoteNotFound."""
    q = session.get(Quote, quote_id) if 0 < quote_id < 2**62 else None
    if q is None:
        raise QuoteNotFound(f"quote {quote_id} not found")
    return q


def quote_action(session: Session, *, quote_id: int, action: str, now: datetime, tz: ZoneInfo, actor: Actor, reason: str | None = None) -> Quote:
    """approve / submit / reject / cancel / accept a quote (lifecycle QUOTE). Accepting places a product order from its
    items (on the later of the quote's requested start and today); if the order cannot be placed nothing changes.
    Raises QuoteNotFound, TransitionNotAllowed, QuoteExpired, ActionNotPermitted, and whatever place_order raises."""
    quote = get_quote(session, quote_id=quote_id)
    today = local_date(now, tz)
    if action == "accept" and QUOTE.target(quote.state, action) is not None and quote.valid_until and today > quote.valid_until:
        raise QuoteExpired(f"quote {quote.id} expired on {quote.valid_until.isoformat()}", field="state")
    if action == "accept" and QUOTE.target(quote.state, action) is not None:
        qitems = session.execute(select(QuoteItem).where(QuoteItem.quote_id == quote.id).order_by(QuoteItem.id)).scalars()
        start = max(quote.requested_start_date or today, today)
        order = place_order(session, data=OrderIn(account_id=quote.account_id, requested_start_date=start, channel="quote", description=quote.description,
                                                  items=[OrderItemIn(action=i.action, offering_id=i.offering_id, product_id=i.product_id, site_id=i.site_id, quantity=i.quantity) for i in qitems]),
                            now=now, tz=tz, actor=actor, quote_id=quote.id)
        quote.product_order_id = order.id
    lifecycle.transition(session, QUOTE, quote, action, now=now, actor=actor, reason=reason, details={"product_order_id": quote.product_order_id})
    if reason:
        quote.state_reason = reason
    quote.updated_at = now
    if action == "accept":  # the quote now names the order it placed
        domain_events.publish(session, QUOTE_CHANGED, {"id": quote.id, "attributes": ["productOrder"]}, now=now, actor=actor)
    return quote


# our column -> the TMF648 attribute it shows as
EDITABLE = {"description": "description", "external_id": "externalId", "valid_until": "validFor"}


def update_quote(session: Session, *, quote_id: int, changes: dict[str, Any], now: datetime, actor: Actor) -> Quote:
    """Change an open quote's (in progress, pending, approved) description, external reference or last valid day (`changes`:
    any of description, external_id, valid_until; None clears; a day already past expires the quote). Audited, and published
    as orders.quote_changed with the TMF names of what changed; nothing is written when nothing changed. Raises
    QuoteNotFound, QuoteNotEditable (accepted, rejected or cancelled), UnableToChangeQuote (unknown attribute),
    DuplicateOrderReference."""
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise UnableToChangeQuote(f"{', '.join(unknown)} cannot be changed on a quote", field=unknown[0])
    quote = get_quote(session, quote_id=quote_id)
    if quote.state not in OPEN_QUOTE_STATES:
        raise QuoteNotEditable(f"quote {quote.id} is {quote.state}; only an open quote can be changed", field="state")
    if changes.get("external_id") and changes["external_id"] != quote.external_id and session.execute(
            select(Quote.id).where(Quote.account_id == quote.account_id, Quote.external_id == changes["external_id"])).first():
        raise DuplicateOrderReference(f"quote reference '{changes['external_id']}' was already used on this account", field="externalId")
    before = {k: getattr(quote, k) for k in changes}
    changed = {k: v for k, v in changes.items() if before[k] != v}
    if not changed:
        return quote
    for k, v in changed.items():
        setattr(quote, k, v)
    quote.updated_at = now
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="quote", entity_id=quote.id, account_id=quote.account_id, action="changed",
                  before={k: _plain(before[k]) for k in changed}, after={k: _plain(v) for k, v in changed.items()})
    domain_events.publish(session, QUOTE_CHANGED, {"id": quote.id, "attributes": sorted(EDITABLE[k] for k in changed)}, now=now, actor=actor)
    return quote


def _plain(v: Any) -> Any:
    return v.isoformat() if isinstance(v, date) else v


def _quote_dicts(session: Session, quotes: list[Quote], actor: Actor | None = None) -> list[dict[str, Any]]:
    """Quotes with account and items: one query for accounts, one for items, whatever the count."""
    ids = [q.id for q in quotes]
    accounts = {a.id: a for a in session.execute(select(Account).where(Account.id.in_({q.account_id for q in quotes}))).scalars()} if quotes else {}
    items: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        for i, code, name in session.execute(select(QuoteItem, ProductOffering.code, ProductOffering.name).join(ProductOffering, ProductOffering.id == QuoteItem.offering_id)
                                             .where(QuoteItem.quote_id.in_(ids)).order_by(QuoteItem.id)).all():
            items[i.quote_id].append({"id": i.id, "action": i.action, "offering_id": i.offering_id, "offering_code": code, "offering_name": name, "product_id": i.product_id,
                                      "site_id": i.site_id, "quantity": i.quantity, "currency": i.currency, "recurring_minor": i.recurring_minor,
                                      "recurring_tax_minor": i.recurring_tax_minor, "one_off_minor": i.one_off_minor, "one_off_tax_minor": i.one_off_tax_minor})
    out = []
    for q in quotes:
        acc = accounts.get(q.account_id)
        out.append({
            "id": q.id, "account_id": q.account_id, "account_number": acc.account_number if acc else None, "account_name": acc.name if acc else None,
            "external_id": q.external_id, "state": q.state, "description": q.description, "currency": q.currency,
            "requested_start_date": q.requested_start_date, "valid_until": q.valid_until, "recurring_total_minor": q.recurring_total_minor,
            "recurring_tax_minor": q.recurring_tax_minor, "one_off_total_minor": q.one_off_total_minor, "one_off_tax_minor": q.one_off_tax_minor,
            "recurring_incl_minor": q.recurring_total_minor + q.recurring_tax_minor, "one_off_incl_minor": q.one_off_total_minor + q.one_off_tax_minor,
            "product_order_id": q.product_order_id, "state_reason": q.state_reason, "created_at": q.created_at, "updated_at": q.updated_at, "version": q.version,
            "allowed_actions": QUOTE.allowed_actions(q.state, actor=actor), "buttons": QUOTE.buttons(q.state, actor=actor), "items": items[q.id],
        })
    return out


def quote_detail(session: Session, *, quote_id: int, actor: Actor | None = None) -> dict[str, Any]:
    """Raises QuoteNotFound."""
    return _quote_dicts(session, [get_quote(session, quote_id=quote_id)], actor)[0]


OPEN_QUOTE_STATES = (QuoteState.IN_PROGRESS.value, QuoteState.PENDING.value, QuoteState.APPROVED.value)


def list_quotes(session: Session, *, account_id: int | None = None, state: str | None = None, expiring_between: tuple[date, date] | None = None,
                offset: int = 0, limit: int = 50, order_by: list[Any] | None = None) -> list[dict[str, Any]]:
    """Quotes newest first (or by `order_by`, ORDER BY clauses), or (with `expiring_between`) the open quotes whose validity ends in that window, soonest
    first. Three queries whatever the page size."""
    q = select(Quote)
    if account_id is not None:
        q = q.where(Quote.account_id == account_id)
    if state:
        q = q.where(Quote.state == state)
    if expiring_between is not None:
        q = q.where(Quote.state.in_(OPEN_QUOTE_STATES), Quote.valid_until.between(*expiring_between)).order_by(Quote.valid_until, Quote.id)
    else:
        q = q.order_by(*(order_by or [Quote.id.desc()]))
    return _quote_dicts(session, list(session.execute(q.offset(offset).limit(limit)).scalars()))


def quote_list(session: Session, *, account_id: int | None = None, state: str | None = None, offset: int = 0, limit: int = 50,
               order_by: list[Any] | None = None) -> dict[str, Any]:
    """A page of quotes and how many match in all (TMF630): {"items", "total"}."""
    q = select(func.count()).select_from(Quote)
    if account_id is not None:
        q = q.where(Quote.account_id == account_id)
    if state:
        q = q.where(Quote.state == state)
    return {"items": list_quotes(session, account_id=account_id, state=state, offset=offset, limit=limit, order_by=order_by),
            "total": session.execute(q).scalar_one()}
