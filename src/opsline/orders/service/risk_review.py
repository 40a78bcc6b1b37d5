"""The orders desk's risk review: orders held by a risk flag or a referred credit check, released (then carried out)
or rejected by a second person."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.core.errors import Conflict, NotFound
from opsline.core.events import Actor
from opsline.customers.data_models import CreditCheck, HoldState, OrderRiskHold
from opsline.customers.models import Account
from opsline.orders.models import OrderState, ProductOrder
from opsline.orders.schemas import OrderIn
from opsline.orders.service.common import SYSTEM, order_transition
from opsline.orders.service.placing import carry_out_released
from opsline.orders.service.risk_hold import decide_transition


class HoldNotFound(NotFound):
    pass


class UnableToDecideHold(Conflict):
    title = "Unable to decide the risk hold"
    type_slug = "unable-to-decide-hold"


def get_hold(session: Session, *, hold_id: int) -> OrderRiskHold:
    h = session.get(OrderRiskHold, hold_id) if 0 < hold_id < 2**62 else None
    if h is None:
        raise HoldNotFound(f"risk hold {hold_id} not found")
    return h


def release(session: Session, *, hold_id: int, reason: str, now: datetime, tz: ZoneInfo, actor: Actor) -> ProductOrder:
    """Release a held order and carry it out. Raises HoldNotFound, FourEyesRequired (placed the order or set the flag),
    ReasonRequired, ActionNotPermitted, TransitionNotAllowed (decided already), UnableToDecideHold (the order is no
    longer waiting, e.g. cancelled), and what carrying out the order raises. Nothing is changed when it raises."""
    h = get_hold(session, hold_id=hold_id)
    order = session.get(ProductOrder, h.order_id)
    assert order is not None
    if order.state != OrderState.ACKNOWLEDGED.value and h.state == HoldState.PENDING.value:
        raise UnableToDecideHold(f"order {order.id} is {order.state}; only a waiting order can be released", field="hold_id")
    decide_transition(session, hold=h, action="release", reason=reason, now=now, actor=actor)
    order.state_reason = f"released from risk review by {actor.name}: {reason.strip()}"[:2000]
    carry_out_released(session, order=order, data=OrderIn.model_validate(h.order_in), now=now, tz=tz, actor=actor)
    session.flush()
    return order


def reject(session: Session, *, hold_id: int, reason: str, now: datetime, tz: ZoneInfo, actor: Actor) -> ProductOrder:
    """Reject a held order (the order is rejected with the reason; an order cancelled while it waited only has its hold
    closed). Raises HoldNotFound, FourEyesRequired, ReasonRequired, ActionNotPermitted, TransitionNotAllowed."""
    h = get_hold(session, hold_id=hold_id)
    order = session.get(ProductOrder, h.order_id)
    assert order is not None
    decide_transition(session, hold=h, action="reject", reason=reason, now=now, actor=actor)
    if order.state == OrderState.ACKNOWLEDGED.value:  # an order cancelled meanwhile only closes its hold
        order_transition(session, order=order, action="reject", now=now, tz=tz, actor=SYSTEM, reason=f"rejected in risk review by {actor.name}: {reason.strip()}"[:2000])
    session.flush()
    return order


def holds(session: Session, *, state: str = "pending", limit: int = 500) -> list[dict[str, Any]]:
    """Risk holds in a state with their order, account and credit check, oldest first (one query)."""
    q = (select(OrderRiskHold, Account.account_number, Account.name, ProductOrder.state, CreditCheck.outcome, CreditCheck.score,
                CreditCheck.order_value_minor, CreditCheck.currency)
         .join(Account, Account.id == OrderRiskHold.account_id).join(ProductOrder, ProductOrder.id == OrderRiskHold.order_id)
         .outerjoin(CreditCheck, CreditCheck.order_id == OrderRiskHold.order_id))
    if state:
        q = q.where(OrderRiskHold.state == state)
    rows = session.execute(q.order_by(OrderRiskHold.created_at, OrderRiskHold.id).limit(limit)).all()
    return [{"id": h.id, "order_id": h.order_id, "account_id": h.account_id, "account_number": num, "account_name": name, "order_state": ostate,
             "state": h.state, "reasons": list(h.reasons or []), "placed_by": h.placed_by, "created_at": h.created_at, "decided_by": h.decided_by,
             "decided_at": h.decided_at, "decision_reason": h.decision_reason, "credit_outcome": outcome, "credit_score": score,
             "order_value_minor": value, "currency": cur} for h, num, name, ostate, outcome, score, value, cur in rows]


def pending_count(session: Session) -> int:
    from sqlalchemy import func

    return int(session.execute(select(func.count(OrderRiskHold.id)).where(OrderRiskHold.state == HoldState.PENDING.value)).scalar_one())
