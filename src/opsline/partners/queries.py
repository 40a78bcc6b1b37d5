"""Read-side of the partners area: service-order lists with delivery (job) state, the desk summary, the account panel."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from opsline.core.jobs import Job, JobState
from opsline.customers.models import Account
from opsline.partners.dates import local_date
from opsline.partners.errors import ServiceOrderNotFound
from opsline.partners.models import OPEN_SERVICE_ORDER_STATES, Partner, PartnerMessage, PartnerServiceOrder

OPEN_STATES = OPEN_SERVICE_ORDER_STATES
DELIVERY_FILTERS = ("pending", "retrying", "dead", "stuck", "delivered")


def _delivery_state(delivered_at: datetime | None, job_state: str | None, job_attempts: int | None) -> str:
    if delivered_at is not None:
        return "delivered"
    if job_state is None:
        return "not queued"
    if job_state == JobState.DEAD:
        return "dead"
    if job_state == JobState.RUNNING:
        return "sending"
    if job_state == JobState.QUEUED:
        return "retrying" if (job_attempts or 0) > 0 else "pending"
    return "not sent"


def _base_query():  # type: ignore[no-untyped-def]
    return (
        select(PartnerServiceOrder, Partner.name.label("partner_name"), Job.state.label("job_state"), Job.attempts.label("job_attempts"),
               Job.last_error.label("job_error"), Job.run_at.label("job_run_at"), Job.id.label("job_id"),
               Account.account_number.label("account_number"), Account.name.label("account_name"))
        .join(Partner, Partner.code == PartnerServiceOrder.partner_code)
        .join(Account, Account.id == PartnerServiceOrder.account_id)
        .outerjoin(Job, Job.idempotency_key == PartnerServiceOrder.external_ref)
    )


def _row_dict(row: Any, today: date | None = None) -> dict[str, Any]:
    so: PartnerServiceOrder = row[0]
    delivery = _delivery_state(so.delivered_at, row.job_state, row.job_attempts)
    open_ = so.state in OPEN_STATES
    last_error = so.last_error or (row.job_error if delivery != "delivered" else None)
    return {
        "id": so.id, "external_ref": so.external_ref, "partner_ref": so.partner_ref, "partner_code": so.partner_code, "partner_name": row.partner_name,
        "account_id": so.account_id, "account_number": row.account_number, "account_name": row.account_name, "product_id": so.product_id, "order_item_id": so.order_item_id, "site_id": so.site_id, "action": so.action,
        "state": so.state, "state_reason": so.state_reason, "reason": so.reason, "requested_date": so.requested_date, "due_date": so.due_date,
        "confirmed_date": so.confirmed_date, "attempts": max(so.attempts or 0, row.job_attempts or 0) if delivery != "delivered" else so.attempts,
        "last_error": last_error, "delivered_at": so.delivered_at, "created_at": so.created_at, "updated_at": so.updated_at,
        "delivery": delivery, "job_id": row.job_id, "job_state": row.job_state, "next_attempt_at": row.job_run_at if delivery == "retrying" else None,
        "open": open_, "late": bool(open_ and today is not None and so.due_date < today),
        "can_retry": so.delivered_at is None and so.state == "acknowledged" and delivery in ("dead", "retrying", "not queued"),
        # undelivered: cancelled here; delivered and open: the partner is asked (TMF641 cancelServiceOrder)
        "can_cancel": (so.delivered_at is None and so.state == "acknowledged") or (so.delivered_at is not None and bool(open_)),
        "messages": [],
    }


def _attach_messages(session: Session, orders: list[dict[str, Any]], *, limit_per_order: int | None = None) -> list[dict[str, Any]]:
    ids = [o["id"] for o in orders]
    if not ids:
        return orders
    rows = session.execute(select(PartnerMessage).where(PartnerMessage.service_order_id.in_(ids)).order_by(PartnerMessage.service_order_id, PartnerMessage.sequence, PartnerMessage.id)).scalars()
    by: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for m in rows:
        by[m.service_order_id].append(message_dict(m))  # type: ignore[index]
    for o in orders:
        msgs = by.get(o["id"], [])
        o["messages"] = msgs[-limit_per_order:] if limit_per_order else msgs
    return orders


def message_dict(m: PartnerMessage) -> dict[str, Any]:
    return {"id": m.id, "service_order_id": m.service_order_id, "account_id": m.account_id, "partner_code": m.partner_code, "direction": m.direction,
            "at": m.at, "kind": m.kind, "outcome": m.outcome, "note": m.note, "body": m.body, "sequence": m.sequence}


def service_orders_for_product(session: Session, *, product_id: int, now: datetime, tz: ZoneInfo) -> list[dict[str, Any]]:
    """Every service order for one installed product, oldest first, with its messages."""
    rows = session.execute(_base_query().where(PartnerServiceOrder.product_id == product_id).order_by(PartnerServiceOrder.id)).all()
    today = local_date(now, tz)
    return _attach_messages(session, [_row_dict(r, today) for r in rows])


def service_orders_for_items(session: Session, *, order_item_ids: list[int], now: datetime, tz: ZoneInfo) -> list[dict[str, Any]]:
    """Every service order raised for these product-order items, oldest first, with its messages."""
    if not order_item_ids:
        return []
    rows = session.execute(_base_query().where(PartnerServiceOrder.order_item_id.in_(order_item_ids)).order_by(PartnerServiceOrder.id)).all()
    today = local_date(now, tz)
    return _attach_messages(session, [_row_dict(r, today) for r in rows])


def get_service_order(session: Session, *, service_order_id: int, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """One order with all its messages. Raises ServiceOrderNotFound."""
    row = session.execute(_base_query().where(PartnerServiceOrder.id == service_order_id)).first()
    if row is None:
        raise ServiceOrderNotFound(f"service order {service_order_id} not found")
    return _attach_messages(session, [_row_dict(row, local_date(now, tz))])[0]


def list_service_orders(
    session: Session, *, now: datetime, tz: ZoneInfo, state: str | None = None, partner_code: str | None = None, late: bool = False, delivery: str | None = None,
    account_id: int | None = None, q: str | None = None, page: int = 1, page_size: int = 50, offset: int | None = None,
    with_messages: bool = False, order_by: list[Any] | None = None,
) -> dict[str, Any]:
    """Service orders, newest first, filtered by state ('open' for any open state), partner, late vs SLA, delivery state;
    a page by number, or from an `offset` (TMF630). `with_messages`: each with its messages (one more query for the page)."""
    page = max(1, page)
    page_size = max(1, min(page_size, 1000))
    start = offset if offset is not None else (page - 1) * page_size
    today = local_date(now, tz)
    conds = []
    if state == "open":
        conds.append(PartnerServiceOrder.state.in_(OPEN_STATES))
    elif state:
        conds.append(PartnerServiceOrder.state == state)
    if partner_code:
        conds.append(PartnerServiceOrder.partner_code == partner_code)
    if late:
        conds += [PartnerServiceOrder.state.in_(OPEN_STATES), PartnerServiceOrder.due_date < today]
    if account_id:
        conds.append(PartnerServiceOrder.account_id == account_id)
    if q:
        term = q.strip()
        conds.append(or_(PartnerServiceOrder.external_ref == term.upper(), PartnerServiceOrder.partner_ref == term))
    undelivered = and_(PartnerServiceOrder.delivered_at.is_(None), PartnerServiceOrder.state == "acknowledged")
    if delivery == "delivered":
        conds.append(PartnerServiceOrder.delivered_at.is_not(None))
    elif delivery == "pending":
        conds += [undelivered, Job.state == JobState.QUEUED.value, Job.attempts == 0]
    elif delivery == "retrying":
        conds += [undelivered, Job.state == JobState.QUEUED.value, Job.attempts > 0]
    elif delivery == "dead":
        conds += [undelivered, Job.state == JobState.DEAD.value]
    elif delivery == "stuck":
        conds += [undelivered, or_(Job.state == JobState.DEAD.value, and_(Job.state == JobState.QUEUED.value, Job.attempts > 0))]
    # count and page on the service-order table alone (the job table only when a delivery filter needs it), then join
    # the page's rows: a count over the four-way join was the slowest list at 100,000 accounts
    ids = select(PartnerServiceOrder.id).where(*conds)
    if delivery in ("pending", "retrying", "dead", "stuck"):
        ids = ids.join(Job, Job.idempotency_key == PartnerServiceOrder.external_ref)
    total = session.execute(select(func.count()).select_from(ids.subquery())).scalar_one()
    page_ids = list(session.execute(ids.order_by(*(order_by or [PartnerServiceOrder.id.desc()])).offset(start).limit(page_size)).scalars())
    rows = session.execute(_base_query().where(PartnerServiceOrder.id.in_(page_ids))).all() if page_ids else []
    rank = {so_id: n for n, so_id in enumerate(page_ids)}
    rows.sort(key=lambda r: rank[r[0].id])  # the page's order (`order_by`) from the id query
    items = [_row_dict(r, today) for r in rows]
    if with_messages:
        _attach_messages(session, items)
    return {"items": items, "total": total, "page": page, "page_size": page_size, "pages": max(1, -(-total // page_size))}


def desk_summary(session: Session, *, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """Per partner: open, late (past SLA due date), stuck deliveries, completed and rejected in the last 30 days. One query each."""
    today = local_date(now, tz)
    is_open = PartnerServiceOrder.state.in_(OPEN_STATES)
    counts = session.execute(
        select(
            PartnerServiceOrder.partner_code,
            func.sum(case((is_open, 1), else_=0)).label("open"),
            func.sum(case((and_(is_open, PartnerServiceOrder.due_date < today), 1), else_=0)).label("late"),
            func.sum(case((PartnerServiceOrder.state == "completed", 1), else_=0)).label("completed"),
            func.sum(case((PartnerServiceOrder.state == "rejected", 1), else_=0)).label("rejected"),
            func.count().label("total"),
        ).group_by(PartnerServiceOrder.partner_code)
    ).all()
    stuck = dict(session.execute(
        select(PartnerServiceOrder.partner_code, func.count())
        .join(Job, Job.idempotency_key == PartnerServiceOrder.external_ref)
        .where(PartnerServiceOrder.delivered_at.is_(None), PartnerServiceOrder.state == "acknowledged",
               or_(Job.state == JobState.DEAD.value, and_(Job.state == JobState.QUEUED.value, Job.attempts > 0)))
        .group_by(PartnerServiceOrder.partner_code)
    ).all())
    by = {r.partner_code: r for r in counts}
    partners = []
    fno_first = sorted(session.execute(select(Partner)).scalars(), key=lambda p: (p.kind != "fno", p.kind, p.name))
    for p in fno_first:
        r = by.get(p.code)
        partners.append({
            "code": p.code, "name": p.name, "kind": p.kind, "adapter": p.adapter, "simulator_outage": p.simulator_outage, "active": p.active,
            "activation_sla_days": p.activation_sla_days, "deactivation_sla_days": p.deactivation_sla_days,
            "open": int(r.open or 0) if r else 0, "late": int(r.late or 0) if r else 0, "completed": int(r.completed or 0) if r else 0,
            "rejected": int(r.rejected or 0) if r else 0, "total": int(r.total or 0) if r else 0, "stuck": int(stuck.get(p.code, 0)),
        })
    totals = {k: sum(p[k] for p in partners) for k in ("open", "late", "stuck", "completed", "rejected", "total")}
    return {"partners": partners, "totals": totals}


def account_partner_orders(session: Session, *, account_id: int, now: datetime, tz: ZoneInfo, limit: int = 20) -> dict[str, Any]:
    """The account 360 'Partner orders' panel: the account's latest service orders and their recent messages."""
    rows = session.execute(_base_query().where(PartnerServiceOrder.account_id == account_id).order_by(PartnerServiceOrder.id.desc()).limit(limit)).all()
    orders = _attach_messages(session, [_row_dict(r, local_date(now, tz)) for r in rows], limit_per_order=6)
    return {"orders": orders, "open_count": sum(1 for o in orders if o["open"])}


def recent_messages(session: Session, *, partner_code: str | None = None, outcome: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    q = select(PartnerMessage)
    if partner_code:
        q = q.where(PartnerMessage.partner_code == partner_code)
    if outcome:
        q = q.where(PartnerMessage.outcome == outcome)
    return [message_dict(m) for m in session.execute(q.order_by(PartnerMessage.id.desc()).limit(limit)).scalars()]


def home_cards(session: Session, *, now: datetime, tz: ZoneInfo) -> list[dict[str, Any]]:
    """The partner work waiting, for desk home pages: deliveries stuck (retrying or dead) and open orders past the
    partner's SLA, with the oldest and a per-partner chart. One query for deliveries, one for lateness."""
    today = local_date(now, tz)
    undelivered = and_(PartnerServiceOrder.delivered_at.is_(None), PartnerServiceOrder.state == "acknowledged")
    stuck = session.execute(
        select(func.sum(case((Job.state == JobState.DEAD.value, 1), else_=0)).label("dead"),
               func.sum(case((and_(Job.state == JobState.QUEUED.value, Job.attempts > 0), 1), else_=0)).label("retrying"),
               func.min(PartnerServiceOrder.created_at).label("oldest"))
        .join(Job, Job.idempotency_key == PartnerServiceOrder.external_ref)
        .where(undelivered, or_(Job.state == JobState.DEAD.value, and_(Job.state == JobState.QUEUED.value, Job.attempts > 0)))
    ).one()
    late_rows = session.execute(
        select(PartnerServiceOrder.partner_code, func.count(), func.min(PartnerServiceOrder.due_date))
        .where(PartnerServiceOrder.state.in_(OPEN_STATES), PartnerServiceOrder.due_date < today)
        .group_by(PartnerServiceOrder.partner_code).order_by(PartnerServiceOrder.partner_code)
    ).all()
    dead, retrying = int(stuck.dead or 0), int(stuck.retrying or 0)
    late = sum(int(n) for _, n, _ in late_rows)
    oldest_due = min((d for _, _, d in late_rows), default=None)
    return [
        {"key": "stuck", "title": "Partner deliveries stuck", "count": dead + retrying, "dead": dead, "retrying": retrying,
         "oldest_at": stuck.oldest, "href": "/partners/orders?delivery=stuck"},
        {"key": "late", "title": "Partner orders past SLA", "count": late, "oldest_due": oldest_due, "href": "/partners/orders?state=open&late=1",
         "by_partner": [(code, int(n)) for code, n, _ in late_rows]},
    ]
