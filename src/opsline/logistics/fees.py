"""The unreturned-equipment fee: a daily run warns customers whose loaned device is nearly past its grace period and
charges the fee (per equipment model, data) through billing's queued charges once the grace period is over; the
warehouse receipt cancels or credits it back (service._settle_fees). Candidates are found in one set-based query."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from opsline.billing import service as billing
from opsline.core import domain_events, events, lifecycle
from opsline.core.events import Actor
from opsline.core.localtime import local_date
from opsline.core.money import Money
from opsline.inventory.models import Equipment, EquipmentEvent, EquipmentState, Product
from opsline.logistics.models import UNRETURNED_FEE, Collection, CollectionItem, EquipmentFeeRule, FeeState, UnreturnedFee
from opsline.notifications import service as notifications

ES = EquipmentState
UNRETURNED = (ES.AWAITING_RETURN.value, ES.LOST.value)


def _candidates(session: Session) -> list[Any]:
    """Loaned devices still out (awaiting return or lost) with a fee rule for their model, the dates they were due back
    from (their product's end date, the deactivation; else their last move to awaiting_return), and their fee row if any."""
    since = (select(EquipmentEvent.equipment_id, func.max(EquipmentEvent.at).label("since_at"))
             .where(EquipmentEvent.to_state == ES.AWAITING_RETURN.value).group_by(EquipmentEvent.equipment_id).subquery())
    q = (select(Equipment.id, Equipment.account_id, Equipment.model, Equipment.serial_number, since.c.since_at, Product.end_date, EquipmentFeeRule.fee_minor,
                EquipmentFeeRule.currency, EquipmentFeeRule.tax_rate_code, EquipmentFeeRule.grace_days, EquipmentFeeRule.warning_days,
                UnreturnedFee.id.label("fee_id"), UnreturnedFee.state.label("fee_state"), UnreturnedFee.due_date)
         .outerjoin(since, since.c.equipment_id == Equipment.id)
         .outerjoin(Product, Product.id == Equipment.product_id)
         .join(EquipmentFeeRule, (EquipmentFeeRule.model == Equipment.model) & EquipmentFeeRule.active.is_(True))
         .outerjoin(UnreturnedFee, UnreturnedFee.equipment_id == Equipment.id)
         .where(Equipment.state.in_(UNRETURNED), Equipment.owner == "isp_loaned", Equipment.account_id.is_not(None))
         .order_by(Equipment.id))
    return list(session.execute(q).all())


def _aware(at: datetime) -> datetime:
    from datetime import timezone

    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def _reference(session: Session, equipment_ids: list[int]) -> dict[int, tuple[int, str | None]]:
    """The latest collection (id, caller's reference) of each device."""
    out: dict[int, tuple[int, str | None]] = {}
    for eid, cid, ref in session.execute(select(CollectionItem.equipment_id, Collection.id, Collection.reference)
                                         .join(Collection, Collection.id == CollectionItem.collection_id)
                                         .where(CollectionItem.equipment_id.in_(equipment_ids)).order_by(Collection.id)).all():
        out[eid] = (cid, ref)
    return out


def run_fees(session: Session, *, now: datetime, tz: ZoneInfo, actor: Actor | None = None, warn_limit: int | None = None) -> dict[str, Any]:
    """Warn and charge for the local date of `now`: a device whose grace period ends within its rule's warning days gets
    a fee row (warned) and the customer a warning; a warned fee whose due date has come is charged once through
    billing.queue_charge (idempotent per device) and `equipment.unreturned_fee_charged` is published per account.
    The fee is never charged before the warning's full notice: a device first seen late is due `warning_days` after
    the warning. Safe to run again the same day (does nothing more). `warn_limit` caps the new warnings of one run (the
    demo's sample); None warns every device due. Returns counts."""
    actor = actor or Actor.system("logistics.fees")
    today = local_date(now, tz)
    rows = _candidates(session)
    warn_rows: list[dict[str, Any]] = []
    for r in rows:
        if r.fee_id is not None:
            continue
        if r.end_date is None and r.since_at is None:
            continue
        since = r.end_date if r.end_date is not None else local_date(_aware(r.since_at), tz)
        due = since + timedelta(days=int(r.grace_days))
        if today < due - timedelta(days=int(r.warning_days)):
            continue
        warn_rows.append({"equipment_id": r.id, "account_id": r.account_id, "model": r.model, "state": FeeState.WARNED.value, "since_date": since,
                          "due_date": max(due, today + timedelta(days=int(r.warning_days))), "amount_minor": int(r.fee_minor), "currency": r.currency,
                          "tax_rate_code": r.tax_rate_code, "warned_at": now, "_serial": r.serial_number})
        if warn_limit is not None and len(warn_rows) >= warn_limit:
            break
    if warn_rows:
        session.execute(insert(UnreturnedFee), [{k: v for k, v in w.items() if not k.startswith("_")} for w in warn_rows])
        made = dict(session.execute(select(UnreturnedFee.equipment_id, UnreturnedFee.id).where(
            UnreturnedFee.equipment_id.in_([w["equipment_id"] for w in warn_rows]))).all())
        session.execute(insert(events.AuditEvent), [
            {"occurred_at": now, "actor": actor.name, "entity_type": UNRETURNED_FEE.name, "entity_id": str(made[w["equipment_id"]]), "account_id": w["account_id"],
             "action": "warned", "reason": "loaned equipment not returned", "before": None,
             "after": {"equipment_id": w["equipment_id"], "due_date": w["due_date"].isoformat(), "amount_minor": w["amount_minor"], "currency": w["currency"]}}
            for w in warn_rows])
        by_acc: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for w in warn_rows:
            by_acc[w["account_id"]].append(w)
        # notifications has no bulk sender: one message per account (the candidates are one day's devices)
        for acc, ws in by_acc.items():
            total = sum(w["amount_minor"] for w in ws)
            notifications.send(session, event="equipment.unreturned_warning", account_id=acc, category="service", now=now, actor=actor, tz=tz,
                               context={"fee": {"devices": ", ".join(f"{w['model']} ({w['_serial']})" for w in ws),
                                                "amount": str(Money.from_minor(total, ws[0]["currency"])), "due_date": min(w["due_date"] for w in ws).isoformat()}},
                               idempotency_key=f"unreturned_warning:{acc}:{today.isoformat()}", on_opt_out="suppress")
    due_fees = list(session.execute(select(UnreturnedFee).join(Equipment, Equipment.id == UnreturnedFee.equipment_id).where(
        UnreturnedFee.state == FeeState.WARNED.value, UnreturnedFee.due_date <= today, Equipment.state.in_(UNRETURNED),
        Equipment.owner == "isp_loaned")).scalars())
    charged: dict[int, list[tuple[UnreturnedFee, int]]] = defaultdict(list)
    for f in due_fees:
        # billing offers one queued charge at a time; its idempotency key makes a repeat (or a concurrent run) harmless
        cid = billing.queue_charge(session, account_id=f.account_id, product_id=None, description=f"Unreturned equipment: {f.model}",
                                   amount=Money.from_minor(f.amount_minor, f.currency), tax_rate_code=f.tax_rate_code,
                                   reason=f"equipment {f.equipment_id} not returned within the grace period (due back from {f.since_date.isoformat()})",
                                   now=now, actor=actor, idempotency_key=f"unreturned_fee:{f.equipment_id}")
        charged[f.account_id].append((f, cid))
    if due_fees:
        changed = set(lifecycle.transition_many(session, UNRETURNED_FEE, UnreturnedFee, [f.id for f in due_fees], "charge", now=now, actor=actor,
                                                reason="grace period over"))
        session.execute(update(UnreturnedFee), [{"id": f.id, "charge_id": cid, "charged_at": now} for fs in charged.values() for f, cid in fs if f.id in changed])
        refs = _reference(session, [f.equipment_id for f in due_fees])
        for acc, fs in charged.items():
            eids = [f.equipment_id for f, _ in fs]
            col = refs.get(eids[0])
            domain_events.publish(session, "equipment.unreturned_fee_charged",
                                  {"account_id": acc, "equipment_ids": eids, "reference": col[1] if col else None, "collection_id": col[0] if col else None,
                                   "charge_ids": [cid for _, cid in fs], "amount_minor": sum(f.amount_minor for f, _ in fs), "currency": fs[0][0].currency},
                                  now=now, actor=actor)
    return {"date": today.isoformat(), "warned": len(warn_rows), "charged": len(due_fees)}


def fee_summary(session: Session) -> dict[str, Any]:
    """Counts and amounts per fee state (one query)."""
    rows = session.execute(select(UnreturnedFee.state, UnreturnedFee.currency, func.count(), func.coalesce(func.sum(UnreturnedFee.amount_minor), 0))
                           .group_by(UnreturnedFee.state, UnreturnedFee.currency)).all()
    out: dict[str, Any] = {s.value: {"count": 0, "amount_minor": 0} for s in FeeState}
    for state, _cur, n, amt in rows:
        out[state]["count"] += int(n)
        out[state]["amount_minor"] += int(amt)
    return out


def next_run_at(now: datetime, tz: ZoneInfo, *, hour: int = 6) -> datetime:
    d: date = local_date(now, tz) + timedelta(days=1)
    return datetime(d.year, d.month, d.day, hour, tzinfo=tz)
