"""Retention joined up: a retention outcome with its reason; an accepted offer that changes the customer's plan places
the change (modify) order in the same action; a declined one opens the cancellation journey (the cancellations area
reacts to `case.retention_declined`, published by `service.record_retention`); retention rate by reason and by agent."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case as sa_case, func, select
from sqlalchemy.orm import Session

from opsline.cases.models import RetentionOffer
from opsline.cases.service import common as cm
from opsline.cases.service.notes import add_link
from opsline.cases.service.sales import record_retention
from opsline.core import events
from opsline.core.errors import InvalidInput
from opsline.core.events import Actor
from opsline.orders.schemas import OrderIn, OrderItemIn
from opsline.orders.service import place_order

# why customers want to leave (the same codes as the cancellation journey's reasons)
REASONS = {"moving": "Moving", "price": "Price", "service_quality": "Service quality", "competitor": "Competitor", "financial": "Financial",
           "emigrating": "Emigrating", "other": "Other"}


class UnableToRecordRetention(InvalidInput):
    title = "Unable to record the retention outcome"


def record(session: Session, *, case_id: int, offer: str, outcome: str, reason_code: str, now: datetime, tz: ZoneInfo, actor: Actor,
           product_id: int | None = None, offering_id: int | None = None) -> RetentionOffer:
    """Record a retention outcome with the customer's reason. An accepted offer with a product and a new offering places the
    change order (modify) for the case's account and links it to the case, in the same transaction: the order and the
    outcome are recorded together or not at all. Raises UnableToRecordRetention (unknown reason; a product without an
    offering or the other way round; a change on a declined offer), RetentionNotAllowed, CaseNotFound, and what
    orders.place_order raises (product of another account, offering not available ...)."""
    if reason_code not in REASONS:
        raise UnableToRecordRetention(f"choose the customer's reason ({', '.join(REASONS)})", field="reason_code")
    if (product_id is None) != (offering_id is None):
        raise UnableToRecordRetention("a plan change needs both the product to change and the new offering",
                                      field="offering_id" if offering_id is None else "product_id")
    if product_id is not None and outcome != "accepted":
        raise UnableToRecordRetention("a plan change is placed only when the customer accepts the offer", field="outcome")
    row = record_retention(session, case_id=case_id, offer=offer, outcome=outcome, now=now, actor=actor)
    row.reason_code = reason_code
    if product_id is not None and offering_id is not None:
        c = cm.get_case(session, case_id=case_id)
        if c.account_id is None:
            raise UnableToRecordRetention("the case has no account to change", field="product_id")
        order = place_order(session, data=OrderIn(account_id=c.account_id, channel="retention", description=f"Retention: {row.offer} (case {c.reference})",
                                                  items=[OrderItemIn(action="modify", product_id=product_id, offering_id=offering_id)]),
                            now=now, tz=tz, actor=actor)
        row.change_order_id = order.id
        add_link(session, case_id=c.id, target_type="order", target_ref=str(order.id), now=now, actor=actor,
                 note=f"Change order placed: customer accepted '{row.offer}'.")
        events.record(session, now=now, actor=actor, entity_type="case", entity_id=c.id, account_id=c.account_id, action="retention_change_order",
                      after={"reference": c.reference, "order_id": order.id, "product_id": product_id, "offering_id": offering_id})
    session.flush()
    return row


def report(session: Session, *, since: datetime | None = None, until: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
    """Retention rate = accepted / (accepted + declined) of decided offers, by reason and by agent (who recorded the
    outcome), with the change orders placed, for outcomes recorded in [since, until)."""
    accepted = func.sum(sa_case((RetentionOffer.outcome == "accepted", 1), else_=0))
    declined = func.sum(sa_case((RetentionOffer.outcome == "declined", 1), else_=0))
    orders = func.sum(sa_case((RetentionOffer.change_order_id.is_not(None), 1), else_=0))
    out: dict[str, list[dict[str, Any]]] = {}
    for key, col in (("by_reason", RetentionOffer.reason_code), ("by_agent", RetentionOffer.by)):
        q = select(col, accepted, declined, orders).where(RetentionOffer.outcome.in_(("accepted", "declined"))).group_by(col)
        if since is not None:
            q = q.where(RetentionOffer.at >= since)
        if until is not None:
            q = q.where(RetentionOffer.at < until)
        rows = []
        for k, a, d, o in session.execute(q).all():
            a, d = int(a or 0), int(d or 0)
            label = (REASONS.get(k, k) if key == "by_reason" else k) if k else "(not recorded)"
            rows.append({"key": k or "", "label": label, "accepted": a, "declined": d, "decided": a + d, "change_orders": int(o or 0),
                         "rate": round(a / (a + d), 3) if a + d else None})
        out[key] = sorted(rows, key=lambda r: (-r["decided"], r["label"]))
    return out
