"""Retention offers on "wants to cancel" cases and sales leads (lifecycle `models.LEAD`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from opsline.cases.models import LEAD, CaseCategory, RetentionOffer, SalesLead
from opsline.cases.schemas import LeadIn, NoteIn
from opsline.cases.service import common as cm
from opsline.cases.service.notes import add_link, write_note
from opsline.core import domain_events, events, lifecycle
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.events import Actor

LEAD_ACTION_FOR_STATE = {"qualified": "qualify", "won": "win", "lost": "lose"}


@cm.one_call
def record_retention(session: Session, *, case_id: int, offer: str, outcome: str, now: datetime, actor: Actor) -> RetentionOffer:
    """Record a retention offer and its outcome on a 'wants to cancel' case. A declined offer records the
    cancellation request and links the case to the cancellation journey.
    Raises CaseNotFound, RetentionNotAllowed (not a retention case, case finished), InvalidInput (no offer, bad outcome)."""
    c = cm.get_case(session, case_id=case_id, for_update=True)
    cat = session.get(CaseCategory, c.category_code)
    if cat is None or not cat.retention:
        raise cm.RetentionNotAllowed(f"case {c.reference} is a {c.category_code} case; retention offers are for cases of customers who want to cancel")
    if c.state not in cm.OPEN:
        raise cm.RetentionNotAllowed(f"case {c.reference} is {c.state}; reopen it first")
    if outcome not in ("offer_made", "accepted", "declined"):
        raise InvalidInput("outcome must be offer_made, accepted or declined", field="outcome")
    if not (offer or "").strip():
        raise InvalidInput("describe the offer", field="offer")
    row = RetentionOffer(case_id=c.id, account_id=c.account_id, offer=offer.strip(), outcome=outcome, at=now, by=actor.name)
    session.add(row)
    session.flush()
    cm.audit(session, c, now=now, actor=actor, action=f"retention_{outcome}", after={"offer": row.offer, "outcome": outcome})
    if outcome == "declined":
        add_link(session, case_id=c.id, target_type="cancellation", target_ref="requested", now=now, actor=actor,
                 note=f"Customer declined '{row.offer}' and wants to cancel; hand to the cancellation journey.",
                 data={"status": "requested", "requested_at": now.isoformat(), "account_id": c.account_id, "retention_offer_id": row.id})
        write_note(session, c, data=NoteIn(body=f"Retention offer declined ({row.offer}); cancellation requested.", visibility="internal"), now=now, actor=actor)
        if c.account_id is not None:
            events.record(session, now=now, actor=actor, entity_type="cancellation_request", entity_id=c.reference, account_id=c.account_id,
                          action="requested", after={"case": c.reference, "offer_declined": row.offer})
        cm.changed(session, c, now=now, actor=actor, what="note", clocks=False)  # an offer, a link and an internal note: no clock moves
        # the cancellations area opens the journey from this (same transaction: declined and opened together)
        domain_events.publish(session, "case.retention_declined", {"id": c.id, "account_id": c.account_id, "reference": c.reference,
                                                                   "offer": row.offer, "retention_offer_id": row.id}, now=now, actor=actor)
    return row


def create_lead(session: Session, *, case_id: int, data: LeadIn, now: datetime, actor: Actor) -> SalesLead:
    """Raises CaseNotFound."""
    c = cm.get_case(session, case_id=case_id, for_update=True)
    lead = SalesLead(case_id=c.id, account_id=c.account_id, product_interest=data.product_interest, notes=data.notes, state=LEAD.initial,
                     created_by=actor.name, created_at=now, updated_at=now)
    session.add(lead)
    session.flush()
    cm.audit(session, c, now=now, actor=actor, action="sales_lead", after={"lead_id": lead.id, "product_interest": data.product_interest})
    return lead


def lead_transition(session: Session, *, lead_id: int, action: str, now: datetime, actor: Actor, reason: str | None = None) -> list[str]:
    """Apply a lead lifecycle action (qualify, win, lose); returns the next actions.
    Raises NotFound, TransitionNotAllowed."""
    lead = session.get(SalesLead, lead_id)
    if lead is None:
        raise NotFound(f"lead {lead_id} not found")
    nxt = lifecycle.transition(session, LEAD, lead, action, now=now, actor=actor, reason=reason, label=f"lead {lead.id}")
    lead.updated_at = now
    return nxt


def set_lead_state(session: Session, *, lead_id: int, state: str, now: datetime, actor: Actor) -> SalesLead:
    """Move a lead to `state` (the action that leads there). Raises NotFound, TransitionNotAllowed."""
    lead = session.get(SalesLead, lead_id)
    if lead is None:
        raise NotFound(f"lead {lead_id} not found")
    action = LEAD_ACTION_FOR_STATE.get(state, f"become {state}")
    lifecycle.transition(session, LEAD, lead, action, now=now, actor=actor, label=f"lead {lead.id}")
    lead.updated_at = now
    return lead
