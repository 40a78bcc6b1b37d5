"""Discontinuance for non-payment: a debtors person accepted a dunning discontinuance (or final-account) action, and
the account's live products go through the cancellation journey (FNO cease, equipment collection, final account)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import String, cast, select
from sqlalchemy.orm import Session

from opsline.cancellations import service
from opsline.cancellations.models import JOURNEY, OPEN_STATES, CancellationJourney, StepState
from opsline.core import events
from opsline.core.errors import Conflict
from opsline.core.events import Actor, AuditEvent
from opsline.inventory.models import Product

LINK = "dunning_link"  # the audit action naming the dunning action (reason = "DUN-n") a journey serves


class UnableToDiscontinue(Conflict):
    """The account has nothing the journey could end: no live product and no open or earlier non-payment journey."""

    title = "Unable to discontinue"
    type_slug = "unable-to-discontinue"


def _link(session: Session, j: CancellationJourney, *, dunning_ref: str, opened: bool, decided_by: str, now: datetime, actor: Actor) -> None:
    events.record(session, now=now, actor=actor, entity_type=JOURNEY.name, entity_id=j.id, account_id=j.account_id, action=LINK,
                  reason=dunning_ref, after={"reference": j.reference, "opened": opened, "decided_by": decided_by})
    if not opened:
        service._memo(session, j, f"linked to dunning {dunning_ref} (discontinuance accepted by {decided_by}); the journey already open goes on",
                      now=now, actor=actor)


def discontinue_for_non_payment(session: Session, *, account_id: int, dunning_ref: str, decided_by: str, now: datetime, tz: ZoneInfo,
                                actor: Actor) -> list[dict[str, Any]]:
    """Open a cancellation journey with reason `non_payment` for each live (active or suspended) product of the account
    and confirm it at once: retention is skipped by the non-payment policy (data: `cancellation_policy` row
    'non-payment'), and the effective date is the FNO's cut-off only — the supplier ending a contract for the
    customer's breach gives no CPA s14 customer notice (that notice is the consumer's to give), so
    `rules.preview(customer_notice=False)` decides; the early-termination fee is quoted as for any cancellation (capped
    for consumers). The delete order goes to the FNO through the orders/partners path, the equipment collection and the
    final account follow from the journey.

    A product that already has an open journey is linked to the dunning action, not given a second one. A journey whose
    retention step an operator's policy keeps open is left for the coordinator at the retention step. Each journey
    names the dunning action ("opened by dunning DUN-n"). When there is nothing live to end, the latest non-payment
    journey of the account is linked (a final-account step after the discontinuance).

    Returns [{"id", "reference", "state", "opened"}]. Raises UnableToDiscontinue (nothing to end or link) and what
    request_cancellation / confirm raise (the caller's transaction rolls back)."""
    products = session.execute(select(Product.id).where(Product.account_id == account_id, Product.state.in_(("active", "suspended")))
                               .order_by(Product.partner_code.is_(None), Product.id)).scalars().all()
    open_by_product = {int(pid): j for pid, j in session.execute(
        select(CancellationJourney.product_id, CancellationJourney).where(CancellationJourney.account_id == account_id,
                                                                          CancellationJourney.state.in_(OPEN_STATES))
        .order_by(CancellationJourney.id).with_for_update()).all()}
    out: list[dict[str, Any]] = []
    for pid, j in open_by_product.items():  # journeys already under way (also for products now pending termination)
        _link(session, j, dunning_ref=dunning_ref, opened=False, decided_by=decided_by, now=now, actor=actor)
        out.append({"id": j.id, "reference": j.reference, "state": j.state, "opened": False})
    for pid in products:
        if pid in open_by_product:
            continue
        j = service.request_cancellation(session, account_id=account_id, product_id=pid, reason_code="non_payment", requester="api",
                                         requester_name=f"opened by dunning {dunning_ref}, accepted by {decided_by}"[:120], channel="dunning",
                                         notes=f"opened by dunning {dunning_ref} (discontinuance for non-payment accepted by {decided_by})",
                                         now=now, tz=tz, actor=actor)
        if service.steps_of(session, j.id)["retention"].state != StepState.OPEN:
            service.confirm(session, journey_id=j.id, now=now, tz=tz, actor=actor)
        _link(session, j, dunning_ref=dunning_ref, opened=True, decided_by=decided_by, now=now, actor=actor)
        out.append({"id": j.id, "reference": j.reference, "state": j.state, "opened": True})
    if not out:
        last = session.execute(select(CancellationJourney).where(CancellationJourney.account_id == account_id, CancellationJourney.reason_code == "non_payment")
                               .order_by(CancellationJourney.id.desc()).limit(1)).scalar_one_or_none()
        if last is None:
            raise UnableToDiscontinue(f"account {account_id} has no active or suspended product to discontinue and no cancellation journey to link "
                                      f"to {dunning_ref}", field="action_id")
        _link(session, last, dunning_ref=dunning_ref, opened=False, decided_by=decided_by, now=now, actor=actor)
        out.append({"id": last.id, "reference": last.reference, "state": last.state, "opened": False})
    return out


def journeys_for_dunning(session: Session, *, account_id: int, dunning_ref: str) -> list[dict[str, Any]]:
    """The journeys linked to a dunning action (opened by it or already open), oldest first: [{"id", "reference", "state", "opened"}]."""
    rows = session.execute(select(CancellationJourney.id, CancellationJourney.reference, CancellationJourney.state, AuditEvent.after)
                           .join(AuditEvent, AuditEvent.entity_id == cast(CancellationJourney.id, String(60)))
                           .where(AuditEvent.entity_type == JOURNEY.name, AuditEvent.action == LINK, AuditEvent.reason == dunning_ref,
                                  AuditEvent.account_id == account_id, CancellationJourney.account_id == account_id)
                           .order_by(CancellationJourney.id)).all()
    return [{"id": r.id, "reference": r.reference, "state": r.state, "opened": bool((r.after or {}).get("opened"))} for r in rows]


def on_discontinuance_accepted(session: Session, payload: dict[str, Any], *, now: datetime, tz: ZoneInfo, actor: Actor) -> None:
    """The `dunning.discontinuance_accepted` subscriber (same transaction). The debtors person holds no cancellations
    permission: the journeys move as the system, named after the dunning action and the person who accepted it."""
    who = str(payload.get("decided_by") or actor.name)
    discontinue_for_non_payment(session, account_id=int(payload["account_id"]), dunning_ref=str(payload["reference"]), decided_by=who,
                                now=now, tz=tz, actor=Actor.system(f"dunning {payload['reference']} accepted by {who}"[:110]))
