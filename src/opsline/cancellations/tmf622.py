"""TMF622 `cancelProductOrder`: the task resource that cancels a product order. An order opened by a TMF622 delete is
a cancellation journey: cancelling it withdraws the journey (refused after its cut-off). Otherwise the orders service
cancels the order; while a partner still holds a service order it received, the order waits in pendingCancellation
and the task stays inProgress until the partner lets go (`product_order.cancelled`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsline.api.idempotency import run_idempotent
from opsline.api.tmf import PAGE_LIMIT_MAX, Fields, Ref, Sort, TMFModel, dump, item_response, list_response, sort_clauses
from opsline.cancellations import service
from opsline.cancellations.models import CANCEL_ORDER_TASK, OPEN_STATES, CancellationJourney, CancelProductOrder
from opsline.core import events, lifecycle
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.orders import service as orders
from opsline.web.deps import DB, Now, Principal, Tz, require

BASE = "/tmf-api/productOrderingManagement/v4/cancelProductOrder"
ORDER_BASE = "/tmf-api/productOrderingManagement/v4/productOrder"
MAX_ID = 2**62
router = APIRouter(tags=["TMF622 Product Ordering"])


class CancelTaskNotFound(NotFound):
    pass


def _task_transition(session: Session, task: CancelProductOrder, action: str, *, now: datetime, reason: str | None = None) -> None:
    lifecycle.transition(session, CANCEL_ORDER_TASK, task, action, now=now, actor=service.SYSTEM, reason=reason, label=f"cancelProductOrder {task.id}")
    task.updated_at = now
    if task.state == "done":
        task.effective_cancellation_date = now


def cancel_order(session: Session, *, order_id: int, reason: str | None, requested_at: datetime | None, now: datetime, tz: ZoneInfo,
                 actor: Actor) -> CancelProductOrder:
    """Cancel a product order as a task. Raises OrderNotFound, WithdrawalNotAllowed (its journey is past the cut-off),
    OrderCancellationNotAllowed (an item already completed), TransitionNotAllowed (the order already ended); nothing
    is written when it raises."""
    order = orders.get_order(session, order_id=order_id)
    why = (reason or "").strip() or "cancelled through TMF622 cancelProductOrder"
    journey = session.execute(select(CancellationJourney.id).where(CancellationJourney.order_id == order.id,
                                                                   CancellationJourney.state.in_(OPEN_STATES))).scalar_one_or_none()
    if journey is not None:
        service.withdraw(session, journey_id=journey, reason=why, now=now, tz=tz, actor=actor)
        if order.state not in ("cancelled", "pendingCancellation"):  # a journey not yet confirmed has a held order left
            orders.order_action(session, order_id=order.id, action="cancel", now=now, tz=tz, actor=actor, reason=why)
    else:
        orders.order_action(session, order_id=order.id, action="cancel", now=now, tz=tz, actor=actor, reason=why)
    task = CancelProductOrder(product_order_id=order.id, account_id=order.account_id, journey_id=journey, state=CANCEL_ORDER_TASK.initial,
                              cancellation_reason=(reason or "").strip() or None, requested_cancellation_date=requested_at, created_by=actor.name,
                              created_at=now, updated_at=now)
    session.add(task)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type=CANCEL_ORDER_TASK.name, entity_id=task.id, account_id=order.account_id, action="created",
                  reason=task.cancellation_reason, after={"product_order_id": order.id, "journey_id": journey})
    session.refresh(order, ["state"])
    if order.state == "cancelled":
        _task_transition(session, task, "finish", now=now)
    else:
        _task_transition(session, task, "start", now=now, reason=f"order {order.id} is {order.state}: the partner still holds its service order")
    return task


def on_order_cancelled(session: Session, *, order_id: int, now: datetime) -> None:
    """The order's cancellation was confirmed: its waiting tasks are done."""
    for task in session.execute(select(CancelProductOrder).where(CancelProductOrder.product_order_id == order_id,
                                                                 CancelProductOrder.state == "inProgress").with_for_update()).scalars():
        _task_transition(session, task, "finish", now=now, reason="the partner confirmed the cancellation")


# --- the API --------------------------------------------------------------------------------------------------------

class OrderRefIn(Ref):
    """The order to cancel, by its numeric id."""

    id: str = Field(max_length=18, pattern=r"^[1-9][0-9]{0,17}$")


class CancelProductOrderCreate(TMFModel):
    """TMF622 CancelProductOrder_Create. The server's own attributes (id, href, state, effectiveCancellationDate, @type) may be
    sent back, as the spec's sample does, and are ignored; anything else we do not hold is refused with a 400 naming it."""

    # The schema lists what a client may send (no other attributes); the server-owned ones are still accepted and ignored.
    model_config = ConfigDict(populate_by_name=True, extra="allow", json_schema_extra={"additionalProperties": False})
    productOrder: OrderRefIn
    cancellationReason: str | None = Field(default=None, max_length=2000)
    requestedCancellationDate: datetime | None = None


class CancelProductOrderOut(TMFModel):
    id: str
    href: str
    state: str
    cancellationReason: str | None = None
    requestedCancellationDate: datetime | None = None
    effectiveCancellationDate: datetime | None = None
    productOrder: Ref
    type_: str = Field(default="CancelProductOrder", alias="@type")


def task_out(t: CancelProductOrder) -> CancelProductOrderOut:
    return CancelProductOrderOut(id=str(t.id), href=f"{BASE}/{t.id}", state=t.state, cancellationReason=t.cancellation_reason,
                                 requestedCancellationDate=t.requested_cancellation_date, effectiveCancellationDate=t.effective_cancellation_date,
                                 productOrder=Ref(id=str(t.product_order_id), href=f"{ORDER_BASE}/{t.product_order_id}", referred_type="ProductOrder"))


SERVER_OWNED = frozenset({"id", "href", "state", "effectiveCancellationDate", "@type", "@baseType", "@schemaLocation"})


def _order_id(body: CancelProductOrderCreate) -> int:
    unknown = sorted(set(body.model_extra or {}) - SERVER_OWNED)
    if unknown:
        raise InvalidInput(f"cancelProductOrder has no attribute '{unknown[0]}' (it takes productOrder, cancellationReason, requestedCancellationDate)",
                           field=unknown[0])
    raw = (body.productOrder.id or "").strip()
    if not raw.isdigit() or not 0 < int(raw) < MAX_ID:
        raise InvalidInput(f"productOrder.id '{raw}' is not an order id", field="productOrder.id")
    return int(raw)


@router.post(BASE, status_code=201, response_model=CancelProductOrderOut, response_model_by_alias=True, response_model_exclude_none=True)
def create_cancel_product_order(body: CancelProductOrderCreate, db: DB, now: Now, tz: Tz, principal: Annotated[Principal, Depends(require("orders.manage"))],
                                idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None) -> JSONResponse:
    """Cancel a product order (a journey opened by a TMF622 delete is withdrawn; refusals change nothing)."""

    def action() -> tuple[int, dict[str, Any]]:
        task = cancel_order(db, order_id=_order_id(body), reason=body.cancellationReason, requested_at=body.requestedCancellationDate, now=now, tz=tz,
                            actor=principal.actor)
        return 201, dump(task_out(task))

    status, payload, _ = run_idempotent(db, principal=principal.actor.name, key=idempotency_key, method="POST", path=BASE,
                                        body=body.model_dump(mode="json"), now=now, action=action)
    return JSONResponse(payload, status_code=status, headers={"Location": payload.get("href", "")})


@router.get(BASE, response_model=list[CancelProductOrderOut], response_model_by_alias=True, response_model_exclude_none=True)
def list_cancel_product_orders(db: DB, principal: Annotated[Principal, Depends(require("orders.view"))], fields: Fields = None, sort: Sort = None,
                               state: Annotated[str | None, Query(pattern="^(" + "|".join(CANCEL_ORDER_TASK.state_values()) + ")$")] = None,
                               order: Annotated[int | None, Query(alias="productOrder.id", ge=1, le=MAX_ID)] = None,
                               offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0, limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 50) -> JSONResponse:
    """Cancellation tasks, newest first. Filters (in SQL): state, productOrder.id; sort by id, state, requestedCancellationDate,
    effectiveCancellationDate."""
    conds = []
    if state:
        conds.append(CancelProductOrder.state == state)
    if order:
        conds.append(CancelProductOrder.product_order_id == order)
    total = db.execute(select(func.count()).select_from(CancelProductOrder).where(*conds)).scalar_one()
    order_by = sort_clauses(sort, {"id": CancelProductOrder.id, "state": CancelProductOrder.state, "requestedCancellationDate": CancelProductOrder.requested_cancellation_date,
                                   "effectiveCancellationDate": CancelProductOrder.effective_cancellation_date},
                            default=[CancelProductOrder.id.desc()], tiebreak=CancelProductOrder.id.desc())
    rows = db.execute(select(CancelProductOrder).where(*conds).order_by(*order_by).offset(offset).limit(limit)).scalars()
    return list_response((task_out(t) for t in rows), fields=fields, total=total)


@router.get(BASE + "/{id}", response_model=CancelProductOrderOut, response_model_by_alias=True, response_model_exclude_none=True)
def get_cancel_product_order(id: Annotated[int, Path(ge=1, le=MAX_ID)], db: DB, principal: Annotated[Principal, Depends(require("orders.view"))],
                             fields: Fields = None) -> JSONResponse:
    t = db.get(CancelProductOrder, id)
    if t is None:
        raise CancelTaskNotFound(f"cancelProductOrder {id} not found", field="id")
    return item_response(task_out(t), fields=fields)
