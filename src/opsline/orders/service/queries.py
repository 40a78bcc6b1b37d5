"""Read side of the orders area: order lists with items (one query per section), order detail with the partner's
messages, the orders desk, the order-entry form, and the cards for desk home pages."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsline.catalog import service as catalog
from opsline.catalog.models import ProductOffering
from opsline.core import events
from opsline.core.events import Actor
from opsline.customers import service as customers
from opsline.customers.models import Account, Site
from opsline.inventory import service as inventory
from opsline.orders.models import OPEN_ORDER_STATES, ORDER, OrderState, ProductOrder, ProductOrderItem, Quote
from opsline.orders.service.actions import get_order
from opsline.orders.service.common import local_date
from opsline.orders.service.quotes import OPEN_QUOTE_STATES, list_quotes
from opsline.partners import service as partners


def order_dict(o: ProductOrder, *, now: datetime | None = None, tz: ZoneInfo | None = None, actor: Actor | None = None) -> dict[str, Any]:
    return {
        "id": o.id, "account_id": o.account_id, "external_id": o.external_id, "state": o.state, "requested_start_date": o.requested_start_date,
        "requested_completion_date": o.requested_completion_date, "completion_date": o.completion_date, "channel": o.channel, "priority": o.priority,
        "quote_id": o.quote_id, "description": o.description, "state_reason": o.state_reason, "created_at": o.created_at, "updated_at": o.updated_at,
        "version": o.version, "allowed_actions": ORDER.allowed_actions(o.state, actor=actor), "buttons": ORDER.buttons(o.state, actor=actor),
        "age_days": (local_date(now, tz) - local_date(o.created_at, tz)).days if now and tz else None,
    }


def items_of(session: Session, *, order_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """The items of many orders in one query."""
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in order_ids}
    if not order_ids:
        return out
    rows = session.execute(
        select(ProductOrderItem, ProductOffering.code, ProductOffering.name, ProductOffering.partner_code, Site.line1, Site.city)
        .join(ProductOffering, ProductOffering.id == ProductOrderItem.offering_id).outerjoin(Site, Site.id == ProductOrderItem.site_id)
        .where(ProductOrderItem.order_id.in_(order_ids)).order_by(ProductOrderItem.id)
    ).all()
    for it, code, name, partner, line1, city in rows:
        out[it.order_id].append({
            "id": it.id, "order_id": it.order_id, "action": it.action, "offering_id": it.offering_id, "offering_code": code, "offering_name": name, "partner_code": partner,
            "product_id": it.product_id, "site_id": it.site_id, "site_address": ", ".join(x for x in (line1, city) if x) or None, "state": it.state, "quantity": it.quantity,
            "result_product_id": it.result_product_id, "partner_service_order_id": it.partner_service_order_id, "state_reason": it.state_reason, "completion_date": it.completion_date,
            "etf_minor": it.etf_minor, "etf_currency": it.etf_currency, "etf_waiver_reason": it.etf_waiver_reason,
        })
    return out


def order_record(session: Session, *, order_id: int, now: datetime, tz: ZoneInfo, actor: Actor | None = None) -> dict[str, Any]:
    """The order with its items: what the TMF622 resource shows (two queries). Raises OrderNotFound."""
    o = get_order(session, order_id=order_id)
    return order_dict(o, now=now, tz=tz, actor=actor) | {"items": items_of(session, order_ids=[o.id])[o.id]}


def order_detail(session: Session, *, order_id: int, now: datetime, tz: ZoneInfo, actor: Actor | None = None) -> dict[str, Any]:
    """The order page's record: the order with items, account, the partner service orders raised for it (with
    messages) and its history. Raises OrderNotFound."""
    d = order_record(session, order_id=order_id, now=now, tz=tz, actor=actor)
    items = d["items"]
    acc = session.get(Account, d["account_id"])
    d["account"] = {"id": acc.id, "account_number": acc.account_number, "name": acc.name, "status": acc.status} if acc else None
    d["service_orders"] = partners.service_orders_for_items(session, order_item_ids=[i["id"] for i in items], now=now, tz=tz)
    d["history"] = events.history(session, entity_type="product_order", entity_id=d["id"])
    return d


def list_orders(
    session: Session, *, now: datetime, tz: ZoneInfo, state: str | None = None, account_id: int | None = None, open_only: bool = False,
    older_than_days: int | None = None, q: str | None = None, offset: int = 0, limit: int = 50, actor: Actor | None = None,
) -> list[dict[str, Any]]:
    """Orders newest first with their account and items (two queries whatever the page size); filters by state,
    account, openness and age."""
    return order_list(session, now=now, tz=tz, state=state, account_id=account_id, open_only=open_only, older_than_days=older_than_days, q=q,
                      offset=offset, limit=limit, actor=actor, with_total=False)["items"]


def order_list(
    session: Session, *, now: datetime, tz: ZoneInfo, state: str | None = None, account_id: int | None = None, open_only: bool = False,
    older_than_days: int | None = None, q: str | None = None, offset: int = 0, limit: int = 50, actor: Actor | None = None, with_total: bool = True,
    external_id: str | None = None, created_after: datetime | None = None, created_before: datetime | None = None, order_by: list[Any] | None = None,
) -> dict[str, Any]:
    """A page of orders (see list_orders) and, for TMF630 paging, how many match in all: {"items", "total"}. TMF filters:
    `external_id` (exact), `created_after` / `created_before` (exclusive); `order_by`: ORDER BY clauses (default newest first)."""
    query = select(ProductOrder, Account.account_number, Account.name).join(Account, Account.id == ProductOrder.account_id)
    if state:
        query = query.where(ProductOrder.state == state)
    if open_only:
        query = query.where(ProductOrder.state.in_([s.value for s in OPEN_ORDER_STATES]))
    if account_id is not None:
        query = query.where(ProductOrder.account_id == account_id)
    if older_than_days:
        query = query.where(ProductOrder.created_at < now - timedelta(days=older_than_days))
    if external_id is not None:
        query = query.where(ProductOrder.external_id == external_id)
    if created_after is not None:
        query = query.where(ProductOrder.created_at > created_after)
    if created_before is not None:
        query = query.where(ProductOrder.created_at < created_before)
    if q:
        term = q.strip()
        query = query.where((Account.account_number == term) | (ProductOrder.external_id == term) | func.lower(Account.name).like(f"%{term.lower()}%"))
    rows = session.execute(query.order_by(*(order_by or [ProductOrder.id.desc()])).offset(offset).limit(limit)).all()
    items = items_of(session, order_ids=[r[0].id for r in rows])
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one() if with_total else None
    return {"items": [order_dict(o, now=now, tz=tz, actor=actor) | {"account_number": num, "account_name": name, "items": items[o.id]} for o, num, name in rows],
            "total": total}


def order_counts(session: Session) -> dict[str, int]:
    return {s: n for s, n in session.execute(select(ProductOrder.state, func.count()).group_by(ProductOrder.state))}


def orders_desk(session: Session, *, now: datetime, tz: ZoneInfo, actor: Actor | None, state: str | None = None, q: str | None = None,
                open_only: bool = False, older_than_days: int | None = None, account_id: int | None = None, page: int = 1, page_size: int = 50,
                quotes_expiring_days: int | None = None) -> dict[str, Any]:
    """Everything the orders desk shows: a page of orders, counts by state, the latest quotes (or those expiring
    within `quotes_expiring_days`)."""
    page = max(1, page)
    today = local_date(now, tz)
    if quotes_expiring_days is not None:
        quotes = list_quotes(session, expiring_between=(today, today + timedelta(days=quotes_expiring_days)), limit=100)
    else:
        quotes = list_quotes(session, limit=10)
    rows = list_orders(session, now=now, tz=tz, state=state, open_only=open_only, older_than_days=older_than_days, q=q, account_id=account_id,
                       offset=(page - 1) * page_size, limit=page_size + 1, actor=actor)
    return {"orders": rows[:page_size], "has_next": len(rows) > page_size, "page": page, "counts": order_counts(session),
            "states": [s.value for s in OrderState], "quotes": quotes, "quotes_expiring_days": quotes_expiring_days}


def order_form(session: Session, *, account_id: int | None, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """What the order-entry form offers: sellable offerings today and, for an account, its sites and changeable
    products. Raises NotFound (unknown account)."""
    out: dict[str, Any] = {"offerings": catalog.offering_choices(session, on=local_date(now, tz)), "account": None, "sites": [], "products": []}
    if account_id:
        data = customers.account_360(session, account_id=account_id, memo_limit=0, timeline_limit=0)
        out |= {"account": data["account"], "sites": data["sites"], "products": inventory.active_products_of(session, account_id=account_id)}
    return out


def home_summary(session: Session, *, now: datetime, tz: ZoneInfo, expiring_days: int = 7) -> dict[str, Any]:
    """Open orders by state with the oldest, and quotes expiring soon: one grouped query each."""
    today = local_date(now, tz)
    open_rows = session.execute(
        select(ProductOrder.state, func.count(), func.min(ProductOrder.created_at))
        .where(ProductOrder.state.in_([s.value for s in OPEN_ORDER_STATES])).group_by(ProductOrder.state)
    ).all()
    by_state = {s: (int(n), oldest) for s, n, oldest in open_rows}
    expiring = session.execute(
        select(func.count(), func.min(Quote.valid_until)).where(
            Quote.state.in_(OPEN_QUOTE_STATES),
            Quote.valid_until.is_not(None), Quote.valid_until >= today, Quote.valid_until <= today + timedelta(days=expiring_days))
    ).one()
    stale_cut = now - timedelta(days=14)
    stale = session.execute(select(func.count()).where(ProductOrder.state.in_([s.value for s in OPEN_ORDER_STATES]),
                                                        ProductOrder.created_at < stale_cut)).scalar_one()
    return {"by_state": by_state, "quotes_expiring": int(expiring[0] or 0), "first_expiry": expiring[1], "stale_open": int(stale), "expiring_days": expiring_days}
