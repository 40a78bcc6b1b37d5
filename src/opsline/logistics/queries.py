"""Read side of logistics: the collections board (today's runs per courier, attempts, awaiting receipt, overdue returns,
value outstanding, recovery rate by month), the collection list and detail, and the home-card counts. One query per
page section."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from opsline.core.localtime import local_date
from opsline.core.money import Money
from opsline.customers.models import Account
from opsline.inventory.models import Equipment, EquipmentState
from opsline.logistics import fees, service
from opsline.logistics.models import COLLECTION, OPEN_COLLECTION_STATES, Collection, CollectionAttempt, CollectionItem, EquipmentFeeRule, UnreturnedFee
from opsline.partners.models import Partner

ES = EquipmentState
UTC = ZoneInfo("UTC")


def _day_bounds(d: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime(d.year, d.month, d.day, tzinfo=tz).astimezone(UTC)
    return start, start + timedelta(days=1)


def board(session: Session, *, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    today = local_date(now, tz)
    start, _ = _day_bounds(today, tz)
    end = _day_bounds(today + timedelta(days=6), tz)[1]  # today's runs and the coming week's
    runs = [{"courier_code": c, "courier_name": n, "slot_start": s.astimezone(tz) if s.tzinfo else s.replace(tzinfo=UTC).astimezone(tz), "state": st, "count": int(k)}
            for c, n, s, st, k in session.execute(
                select(Collection.courier_code, Partner.name, Collection.slot_start, Collection.state, func.count())
                .join(Partner, Partner.code == Collection.courier_code)
                .where(Collection.slot_start >= start, Collection.slot_start < end)
                .group_by(Collection.courier_code, Partner.name, Collection.slot_start, Collection.state)
                .order_by(Collection.slot_start, Collection.courier_code)).all()]
    grouped: dict[tuple[str, datetime], dict[str, Any]] = {}
    for r in runs:
        g = grouped.setdefault((r["courier_code"], r["slot_start"]), {"courier_code": r["courier_code"], "courier_name": r["courier_name"],
                                                                      "slot": r["slot_start"].strftime("%a %d %b %H:%M"), "day": r["slot_start"].date(),
                                                                      "total": 0, "by_state": {}})
        g["total"] += r["count"]
        g["by_state"][r["state"]] = r["count"]
    attempts = dict(session.execute(select(CollectionAttempt.outcome, func.count()).where(CollectionAttempt.recorded_at >= start,
                                                                                          CollectionAttempt.recorded_at < _day_bounds(today, tz)[1])
                                    .group_by(CollectionAttempt.outcome)).all())
    by_state = dict(session.execute(select(Collection.state, func.count()).group_by(Collection.state)).all())
    awaiting = _awaiting_receipt(session, limit=15)
    out_value = session.execute(select(func.count(), func.coalesce(func.sum(EquipmentFeeRule.fee_minor), 0), func.min(EquipmentFeeRule.currency))
                                .select_from(Equipment).join(EquipmentFeeRule, EquipmentFeeRule.model == Equipment.model)
                                .where(Equipment.state.in_([ES.AWAITING_RETURN.value, ES.LOST.value]), Equipment.owner == "isp_loaned")).one()
    currency = out_value[2] or "ZAR"
    return {"today": today, "runs": list(grouped.values()), "attempts": {o: int(attempts.get(o, 0)) for o in ("collected", "not_home", "refused", "wrong_address")},
            "by_state": {s: int(by_state.get(s, 0)) for s in COLLECTION.state_values()}, "awaiting_receipt": awaiting,
            "outstanding": {"devices": int(out_value[0]), "value": Money.from_minor(int(out_value[1]), currency)},
            "fees": fees.fee_summary(session), "currency": currency, "overdue": overdue_returns(session, today=today, limit=15),
            "recovery": recovery_chart(session, today=today, tz=tz), "without_booking": int(session.execute(
                select(func.count()).select_from(service.awaiting_without_booking(session).subquery())).scalar_one())}


def _awaiting_receipt(session: Session, *, limit: int) -> list[dict[str, Any]]:
    rows = session.execute(select(Collection.id, Collection.number, Collection.courier_code, Collection.updated_at, Account.account_number, Account.name)
                           .join(Account, Account.id == Collection.account_id).where(Collection.state == "collected")
                           .order_by(Collection.updated_at).limit(limit)).all()
    return [dict(r._mapping) for r in rows]


def overdue_returns(session: Session, *, today: date, limit: int = 50) -> list[dict[str, Any]]:
    """Devices whose unreturned fee is warned (due soon) or charged, due date first."""
    rows = session.execute(select(UnreturnedFee.id, UnreturnedFee.equipment_id, UnreturnedFee.state, UnreturnedFee.due_date, UnreturnedFee.amount_minor,
                                  UnreturnedFee.currency, UnreturnedFee.account_id, Account.account_number, Equipment.serial_number, Equipment.model)
                           .join(Account, Account.id == UnreturnedFee.account_id).join(Equipment, Equipment.id == UnreturnedFee.equipment_id)
                           .where(UnreturnedFee.state.in_(["warned", "charged"])).order_by(UnreturnedFee.due_date, UnreturnedFee.id).limit(limit)).all()
    return [dict(r._mapping) | {"amount": Money.from_minor(r.amount_minor, r.currency), "overdue": r.due_date <= today} for r in rows]


def recovery_chart(session: Session, *, today: date, tz: ZoneInfo, months: int = 6) -> dict[str, Any]:
    """Loaned devices due back per month (their product's end) and how many of them came back: the recovery rate."""
    pg = session.get_bind().dialect.name == "postgresql"
    month = "to_char(p.end_date, 'YYYY-MM')" if pg else "strftime('%Y-%m', p.end_date)"
    first = date(today.year, today.month, 1)
    for _ in range(months - 1):
        first = date(first.year - (first.month == 1), (first.month - 2) % 12 + 1, 1)
    # a loaned device is due back when its product ends (the deactivation)
    rows = session.execute(text(f"""SELECT {month} AS m, COUNT(*) AS due, SUM(CASE WHEN e.state IN ('returned', 'in_stock') THEN 1 ELSE 0 END) AS back
        FROM equipment e JOIN product p ON p.id = e.product_id
        WHERE e.owner = 'isp_loaned' AND p.end_date >= :first AND p.end_date <= :today
          AND e.state IN ('awaiting_return', 'lost', 'returned', 'in_stock', 'written_off')
        GROUP BY {month} ORDER BY 1"""), {"first": first if pg else first.isoformat(), "today": today if pg else today.isoformat()}).all()
    labels = [r.m for r in rows]
    due = [int(r.due) for r in rows]
    back = [int(r.back or 0) for r in rows]
    rate = [round(100 * b / d, 1) if d else 0 for b, d in zip(back, due)]
    total_due, total_back = sum(due), sum(back)
    chart = {"type": "bar", "data": {"labels": labels, "datasets": [
        {"type": "bar", "label": "Due back", "data": due, "yAxisID": "y"},
        {"type": "bar", "label": "Returned", "data": back, "yAxisID": "y"},
        {"type": "line", "label": "Recovery rate %", "data": rate, "yAxisID": "y1"}]},
        "options": {"scales": {"y": {"beginAtZero": True, "position": "left"}, "y1": {"beginAtZero": True, "max": 100, "position": "right"}}}}
    return {"chart": chart if labels else None, "rate": round(100 * total_back / total_due, 1) if total_due else None, "due": total_due, "back": total_back}


def list_collections(session: Session, *, state: str | None = None, courier_code: str | None = None, on: date | None = None, tz: ZoneInfo,
                     q: str | None = None, page: int = 1, page_size: int = 50) -> dict[str, Any]:
    query = (select(Collection, Account.account_number, Account.name.label("account_name"), Partner.name.label("courier_name"))
             .join(Account, Account.id == Collection.account_id).join(Partner, Partner.code == Collection.courier_code))
    if state == "open":
        query = query.where(Collection.state.in_(OPEN_COLLECTION_STATES))
    elif state:
        query = query.where(Collection.state == state)
    if courier_code:
        query = query.where(Collection.courier_code == courier_code)
    if on:
        s, e = _day_bounds(on, tz)
        query = query.where(Collection.slot_start >= s, Collection.slot_start < e)
    if q:
        term = q.strip()
        query = query.where((Collection.number == term.upper()) | (Collection.reference == term) | (Account.account_number == term))
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    page = max(1, page)
    rows = session.execute(query.order_by(Collection.slot_start.desc(), Collection.id.desc()).offset((page - 1) * page_size).limit(page_size)).all()
    items = service._items(session, [r[0].id for r in rows])
    return {"items": [service.collection_dict(r[0], items[r[0].id]) | {"account_number": r.account_number, "account_name": r.account_name,
                                                                       "courier_name": r.courier_name} for r in rows],
            "total": int(total), "page": page, "pages": max(1, -(-int(total) // page_size))}


def collection_page(session: Session, *, collection_id: int, actor: Any) -> dict[str, Any]:
    c = service.get_collection(session, collection_id=collection_id, actor=actor)
    acc = session.execute(select(Account.account_number, Account.name).where(Account.id == c["account_id"])).one()
    attempts = [dict(r._mapping) for r in session.execute(select(CollectionAttempt.attempt_no, CollectionAttempt.slot_start, CollectionAttempt.outcome,
                                                                 CollectionAttempt.note, CollectionAttempt.source, CollectionAttempt.recorded_at,
                                                                 CollectionAttempt.recorded_by)
                                                          .where(CollectionAttempt.collection_id == collection_id).order_by(CollectionAttempt.attempt_no)).all()]
    return {"c": c, "account_number": acc[0], "account_name": acc[1], "attempts": attempts,
            "buttons": COLLECTION.buttons(c["state"], actor=actor)}


def home_counts(session: Session, *, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    today = local_date(now, tz)
    start, end = _day_bounds(today, tz)
    today_n = session.execute(select(func.count()).where(Collection.slot_start >= start, Collection.slot_start < end,
                                                         Collection.state.in_(["booked", "confirmed"]))).scalar_one()
    failed = session.execute(select(func.count()).where(Collection.state.in_(["failed", "rejected"]))).scalar_one()
    receipt = session.execute(select(func.count()).where(Collection.state == "collected")).scalar_one()
    no_booking = session.execute(select(func.count()).select_from(service.awaiting_without_booking(session).subquery())).scalar_one()
    warned = session.execute(select(func.count()).where(UnreturnedFee.state == "warned")).scalar_one()
    return {"today": int(today_n), "failed": int(failed), "receipt": int(receipt), "no_booking": int(no_booking), "warned": int(warned)}


def account_equipment_for_booking(session: Session, *, account_id: int) -> list[dict[str, Any]]:
    """The account's devices a collection may take (on loan, with the customer, not already being collected)."""
    busy = select(CollectionItem.equipment_id).join(Collection, Collection.id == CollectionItem.collection_id).where(Collection.state.in_(OPEN_COLLECTION_STATES))
    rows = session.execute(select(Equipment).where(Equipment.account_id == account_id, Equipment.state.in_(service.RETURNABLE_STATES),
                                                   Equipment.owner.in_(["isp_loaned", "fno"]), Equipment.id.not_in(busy)).order_by(Equipment.id)).scalars()
    return [{"id": e.id, "kind": e.kind, "model": e.model, "serial_number": e.serial_number, "owner": e.owner, "state": e.state} for e in rows]


def account_panel(session: Session, *, account_id: int, now: datetime) -> dict[str, Any]:
    """Account 360 'Collections' panel: the account's collections (newest first) and unreturned-equipment fees."""
    cols = list(session.execute(select(Collection).where(Collection.account_id == account_id).order_by(Collection.id.desc()).limit(20)).scalars())
    items = service._items(session, [c.id for c in cols])
    fee_rows = session.execute(select(UnreturnedFee, Equipment.serial_number).join(Equipment, Equipment.id == UnreturnedFee.equipment_id)
                               .where(UnreturnedFee.account_id == account_id).order_by(UnreturnedFee.id.desc()).limit(20)).all()
    return {"collections": [service.collection_dict(c, items[c.id]) for c in cols], "account_id": account_id,
            "fees": [{"serial_number": sn, "model": f.model, "state": f.state, "due_date": f.due_date, "amount": Money.from_minor(f.amount_minor, f.currency)}
                     for f, sn in fee_rows]}
