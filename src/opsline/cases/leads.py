"""The leads pipeline: a lead recorded from a case or a contact (product interest, value, consent), handed over to a
sales team (a queue) or a sales partner (email through notifications), its outcome (won with the order, lost with a
reason), the list, the board by state and conversion by agent and team. State moves through `models.LEAD`."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import case as sa_case, func, select
from sqlalchemy.orm import Session

from opsline.notifications import service as notifications
from opsline.cases.lead_delivery import enqueue_delivery
from opsline.cases.models import LEAD, LeadState, Queue, SalesLead, SupportCase
from opsline.cases.service import common as cm
from opsline.core import events, lifecycle
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.core.money import Money
from opsline.customers.models import Account
from opsline.customers.schemas import MemoIn
from opsline.customers.service import add_memo
from opsline.orders.service import get_order
from opsline.partners.service import get_partner

HANDOVER_EVENT = "lead.handed_over"
HANDOVER_TEMPLATE = ("Sales lead {{ lead.id }}: {{ lead.product_interest }}",
                     "A customer would like to hear from you.\n\nInterested in: {{ lead.product_interest }}\nExpected value: {{ lead.value }}\n"
                     "Customer: {{ lead.customer }}\nContact: {{ lead.contact }}\nConsent to marketing contact given by {{ lead.consent_channel }} "
                     "on {{ lead.consent_at }}.\n\n{{ lead.notes }}\n\nPlease report the outcome (won with the order, or lost with a reason) "
                     "quoting lead {{ lead.id }}.")
BOARD_LIMIT = 50


class LeadNotFound(NotFound):
    pass


class UnableToRecordLead(InvalidInput):
    title = "Unable to record the lead"


class UnableToHandOverLead(InvalidInput):
    title = "Unable to hand over the lead"


class UnableToRecordOutcome(InvalidInput):
    title = "Unable to record the outcome"


class LeadRecordIn(BaseModel):
    """A lead from a case (`case_id`) or from a contact with a customer (`account_id`) or a prospect (contact details)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    case_id: int | None = None
    account_id: int | None = None
    product_interest: str = Field(min_length=1, max_length=200)
    value: str | None = Field(default=None, max_length=20)  # expected monthly value, e.g. "499.00"
    currency: str | None = Field(default=None, min_length=3, max_length=3)
    consent_marketing: bool = False
    consent_channel: Literal["call", "email", "sms", "web"] | None = None
    contact_name: str | None = Field(default=None, max_length=200)
    contact_phone: str | None = Field(default=None, max_length=30)
    contact_email: str | None = Field(default=None, max_length=200)
    notes: str | None = Field(default=None, max_length=5000)
    team_code: str | None = Field(default=None, max_length=40)
    campaign_id: int | None = None

    @field_validator("contact_email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v and ("@" not in v or " " in v):
            raise ValueError("not an email address")
        return v or None


def _lead(session: Session, lead_id: int, *, for_update: bool = False) -> SalesLead:
    q = select(SalesLead).where(SalesLead.id == lead_id)
    lead = session.execute(q.with_for_update() if for_update else q).scalar_one_or_none() if 0 < lead_id < 2**62 else None
    if lead is None:
        raise LeadNotFound(f"lead {lead_id} not found", field="lead_id")
    return lead


def _money(value: str | None, currency: str | None) -> tuple[int | None, str | None]:
    if value in (None, ""):
        return None, None
    if not currency:
        raise UnableToRecordLead("give the currency of the expected value", field="currency")
    try:
        amount = Decimal(str(value).replace(" ", "").replace(",", ""))
    except InvalidOperation:
        raise UnableToRecordLead(f"'{value}' is not an amount", field="value") from None
    if amount < 0 or not amount.is_finite():
        raise UnableToRecordLead("the expected value cannot be negative", field="value")
    return Money.of(amount, currency.upper()).rounded().minor, currency.upper()


def record_lead(session: Session, *, data: LeadRecordIn, now: datetime, actor: Actor) -> SalesLead:
    """Record a lead from a case or a contact. The customer must have agreed to be contacted about it (POPIA direct
    marketing): consent and the channel it was given on are stored with the lead. A memo goes on the account.
    Raises UnableToRecordLead (no consent, neither case nor customer/contact, bad value or team), CaseNotFound, NotFound."""
    if not data.consent_marketing:
        raise UnableToRecordLead("the customer has not agreed to be contacted by sales; record consent to marketing contact first",
                                 field="consent_marketing")
    if not data.consent_channel:
        raise UnableToRecordLead("say how the customer gave consent (call, email, sms or web)", field="consent_channel")
    c: SupportCase | None = None
    account_id = data.account_id
    team = data.team_code
    if data.case_id is not None:
        c = cm.get_case(session, case_id=data.case_id, for_update=True)
        if account_id is not None and c.account_id is not None and account_id != c.account_id:
            raise UnableToRecordLead(f"case {c.reference} belongs to another account", field="account_id")
        account_id = c.account_id
        if team is None:
            team = session.execute(select(Queue.code).where(Queue.id == c.queue_id)).scalar_one_or_none()
    acc = None
    if account_id is not None:
        acc = session.get(Account, account_id)
        if acc is None:
            raise UnableToRecordLead(f"account {account_id} not found", field="account_id")
    if c is None and acc is None and not (data.contact_phone or data.contact_email):
        raise UnableToRecordLead("a lead needs a case, a customer account or a phone number or email address to reach the prospect", field="contact_phone")
    if team is not None and session.execute(select(Queue.id).where(Queue.code == team)).scalar_one_or_none() is None:
        raise UnableToRecordLead(f"unknown team '{team}'", field="team_code")
    minor, cur = _money(data.value, data.currency or (acc.currency if acc is not None else None))
    lead = SalesLead(case_id=c.id if c else None, account_id=account_id, product_interest=data.product_interest, notes=data.notes,
                     state=LEAD.initial, created_by=actor.name, created_at=now, updated_at=now,
                     source="campaign" if data.campaign_id else ("case" if c else "contact"),
                     contact_name=data.contact_name or (acc.name if acc is not None else None),
                     contact_phone=data.contact_phone or (c.contact_phone if c else None) or (acc.phone if acc is not None else None),
                     contact_email=data.contact_email or (c.contact_email if c else None) or (acc.email if acc is not None else None),
                     value_minor=minor, currency=cur, consent_marketing=True, consent_channel=data.consent_channel, consent_at=now,
                     team_code=team, campaign_id=data.campaign_id)
    session.add(lead)
    session.flush()
    after = {"lead_id": lead.id, "product_interest": lead.product_interest, "value_minor": minor, "currency": cur,
             "consent_channel": data.consent_channel, "source": lead.source}
    events.record(session, now=now, actor=actor, entity_type="lead", entity_id=lead.id, account_id=account_id, action="recorded", after=after)
    if c is not None:
        cm.audit(session, c, now=now, actor=actor, action="sales_lead", after=after)
    if account_id is not None:
        add_memo(session, account_id=account_id, data=MemoIn(category="sales", body=f"Sales lead {lead.id}: {lead.product_interest} "
                 f"(consent to marketing contact by {data.consent_channel})."), now=now, actor=actor)
    return lead


def qualify(session: Session, *, lead_id: int, now: datetime, actor: Actor) -> list[str]:
    """Raises LeadNotFound, TransitionNotAllowed."""
    lead = _lead(session, lead_id, for_update=True)
    nxt = lifecycle.transition(session, LEAD, lead, "qualify", now=now, actor=actor, label=f"lead {lead.id}")
    lead.updated_at = now
    return nxt


def hand_over(session: Session, *, lead_id: int, to_kind: str, to_code: str, now: datetime, actor: Actor) -> list[str]:
    """Hand a qualified lead to a sales team (an active queue) or a sales partner: an active partner whose integration is
    HTTP gets the lead posted to `<base_url>/leads` by a job (cases/lead_delivery.py); any other needs a contact email and
    gets the lead by email through notifications, on the message log. Returns the next actions.
    Raises LeadNotFound, UnableToHandOverLead (unknown or inactive team/partner, partner without email), TransitionNotAllowed."""
    lead = _lead(session, lead_id, for_update=True)
    to_code = (to_code or "").strip()
    if to_kind not in ("team", "partner"):
        raise UnableToHandOverLead("hand over to a sales team or a sales partner", field="to_kind")
    if not to_code:
        raise UnableToHandOverLead(f"choose the {'team' if to_kind == 'team' else 'partner'}", field="to_code")
    partner: dict[str, Any] | None = None
    if to_kind == "team":
        q = session.execute(select(Queue.code, Queue.active).where(Queue.code == to_code)).one_or_none()
        if q is None:
            raise UnableToHandOverLead(f"unknown sales team '{to_code}'", field="to_code")
        if not q.active:
            raise UnableToHandOverLead(f"sales team '{to_code}' is inactive", field="to_code")
    else:
        try:
            partner = get_partner(session, code=to_code)
        except NotFound:
            raise UnableToHandOverLead(f"unknown partner '{to_code}'", field="to_code") from None
        if not partner["active"]:
            raise UnableToHandOverLead(f"partner '{partner['name']}' is inactive; leads go only to active partners", field="to_code")
        if partner.get("adapter") == "http":
            if not partner.get("base_url"):
                raise UnableToHandOverLead(f"partner '{partner['name']}' has an HTTP integration without a base URL", field="to_code")
        elif not partner.get("contact_email"):
            raise UnableToHandOverLead(f"partner '{partner['name']}' has no contact email to send the lead to", field="to_code")
    nxt = lifecycle.transition(session, LEAD, lead, "hand_over", now=now, actor=actor, label=f"lead {lead.id}",
                               details={"to_kind": to_kind, "to": to_code})
    lead.handed_to_kind, lead.handed_to, lead.handed_at, lead.updated_at = to_kind, to_code, now, now
    if partner is not None and partner.get("adapter") == "http":
        enqueue_delivery(session, lead_id=lead.id, partner_code=to_code, now=now)
    elif partner is not None:
        value = Money.from_minor(lead.value_minor, lead.currency).amount if lead.value_minor is not None and lead.currency else None
        ctx = {"lead": {"id": lead.id, "product_interest": lead.product_interest, "value": f"{lead.currency} {value}" if value is not None else "not given",
                        "customer": lead.contact_name or "", "contact": " / ".join(x for x in (lead.contact_phone, lead.contact_email) if x),
                        "consent_channel": lead.consent_channel or "", "consent_at": lead.consent_at.date().isoformat() if lead.consent_at else "",
                        "notes": lead.notes or ""}}
        lead.handover_message_id = notifications.send(session, event=HANDOVER_EVENT, account_id=None, to=partner["contact_email"], context=ctx,
                                                      now=now, actor=actor, category="service", idempotency_key=f"lead-handover:{lead.id}")
    if lead.account_id is not None:
        who = f"sales team {to_code}" if to_kind == "team" else f"sales partner {partner['name'] if partner else to_code}"
        add_memo(session, account_id=lead.account_id, data=MemoIn(category="sales", body=f"Sales lead {lead.id} handed over to {who}."), now=now, actor=actor)
    return nxt


def record_outcome(session: Session, *, lead_id: int, outcome: str, now: datetime, actor: Actor, order_id: int | None = None,
                   reason: str | None = None) -> list[str]:
    """Record how a lead ended: won (with the product order it became, of the lead's account) or lost (with a reason).
    Raises LeadNotFound, UnableToRecordOutcome (bad outcome, no order / order of another account, no reason), TransitionNotAllowed."""
    lead = _lead(session, lead_id, for_update=True)
    details: dict[str, Any] = {}
    if outcome == "won":
        if order_id is None:
            raise UnableToRecordOutcome("a won lead needs the order it became", field="order_id")
        try:
            order = get_order(session, order_id=order_id)
        except NotFound:
            raise UnableToRecordOutcome(f"order {order_id} not found", field="order_id") from None
        if lead.account_id is not None and order.account_id != lead.account_id:
            raise UnableToRecordOutcome(f"order {order_id} is for another account", field="order_id")
        details = {"order_id": order_id}
        nxt = lifecycle.transition(session, LEAD, lead, "win", now=now, actor=actor, label=f"lead {lead.id}", details=details)
        lead.won_order_id = order_id
    elif outcome == "lost":
        if not (reason or "").strip():
            raise UnableToRecordOutcome("say why the lead was lost", field="reason")
        nxt = lifecycle.transition(session, LEAD, lead, "lose", now=now, actor=actor, label=f"lead {lead.id}", reason=reason)
        lead.lost_reason = reason.strip()  # type: ignore[union-attr]
    else:
        raise UnableToRecordOutcome("the outcome is won or lost", field="outcome")
    lead.closed_at = lead.updated_at = now
    if lead.account_id is not None:
        text = f"won (order {order_id})" if outcome == "won" else f"lost: {lead.lost_reason}"
        add_memo(session, account_id=lead.account_id, data=MemoIn(category="sales", body=f"Sales lead {lead.id} {text}."), now=now, actor=actor)
    return nxt


# --- reading ---------------------------------------------------------------------------------------------------------

def _row(r: Any) -> dict[str, Any]:
    value = Money.from_minor(int(r.value_minor), r.currency).amount if r.value_minor is not None and r.currency else None
    return {"id": r.id, "case_id": r.case_id, "case_reference": r.reference, "account_id": r.account_id, "account_number": r.account_number,
            "customer": r.contact_name, "product_interest": r.product_interest, "value": value, "currency": r.currency, "state": r.state,
            "source": r.source, "agent": r.created_by, "team": r.team_code, "handed_to_kind": r.handed_to_kind, "handed_to": r.handed_to,
            "won_order_id": r.won_order_id, "lost_reason": r.lost_reason, "created_at": r.created_at, "updated_at": r.updated_at}


def _base():  # type: ignore[no-untyped-def]
    return (select(SalesLead.id, SalesLead.case_id, SupportCase.reference, SalesLead.account_id, Account.account_number, SalesLead.contact_name,
                   SalesLead.product_interest, SalesLead.value_minor, SalesLead.currency, SalesLead.state, SalesLead.source, SalesLead.created_by,
                   SalesLead.team_code, SalesLead.handed_to_kind, SalesLead.handed_to, SalesLead.won_order_id, SalesLead.lost_reason,
                   SalesLead.created_at, SalesLead.updated_at)
            .outerjoin(SupportCase, SupportCase.id == SalesLead.case_id).outerjoin(Account, Account.id == SalesLead.account_id))


def list_leads(session: Session, *, state: str | None = None, agent: str | None = None, team: str | None = None, page: int = 1,
               per_page: int = 50) -> dict[str, Any]:
    """A page of leads, newest first, filtered by state, agent and team. Raises InvalidInput (unknown state)."""
    if state and state not in LEAD.state_values():
        raise InvalidInput(f"unknown lead state '{state}'", field="state")
    q = _base()
    cq = select(func.count(SalesLead.id))
    for col, v in ((SalesLead.state, state), (SalesLead.created_by, agent), (SalesLead.team_code, team)):
        if v:
            q, cq = q.where(col == v), cq.where(col == v)
    page = max(1, page)
    rows = session.execute(q.order_by(SalesLead.id.desc()).limit(per_page).offset((page - 1) * per_page)).all()
    return {"rows": [_row(r) for r in rows], "total": int(session.execute(cq).scalar_one()), "page": page, "per_page": per_page}


def board(session: Session) -> list[dict[str, Any]]:
    """The board: one column per state with its count and its most recently changed leads (up to BOARD_LIMIT)."""
    counts = dict(session.execute(select(SalesLead.state, func.count(SalesLead.id)).group_by(SalesLead.state)).all())
    cols = []
    for st in LEAD.state_values():
        rows = session.execute(_base().where(SalesLead.state == st).order_by(SalesLead.updated_at.desc(), SalesLead.id.desc()).limit(BOARD_LIMIT)).all()
        cols.append({"state": st, "label": st.replace("_", " ").capitalize(), "count": int(counts.get(st, 0)), "leads": [_row(r) for r in rows]})
    return cols


def lead_detail(session: Session, *, lead_id: int, actor: Actor) -> dict[str, Any]:
    """One lead with its actions and audit trail. Raises LeadNotFound."""
    lead = _lead(session, lead_id)
    r = session.execute(_base().where(SalesLead.id == lead.id)).one()
    d = _row(r) | {"notes": lead.notes, "contact_phone": lead.contact_phone, "contact_email": lead.contact_email,
                   "consent_channel": lead.consent_channel, "consent_at": lead.consent_at, "handed_at": lead.handed_at,
                   "handover_message_id": lead.handover_message_id, "closed_at": lead.closed_at, "campaign_id": lead.campaign_id}
    actions = LEAD.allowed_actions(lead.state, actor=actor)
    trail = [{"at": e.occurred_at, "actor": e.actor, "action": e.action, "reason": e.reason, "after": e.after} for e in session.execute(
        select(events.AuditEvent).where(events.AuditEvent.entity_type == "lead", events.AuditEvent.entity_id == str(lead.id))
        .order_by(events.AuditEvent.id)).scalars()]
    return {"lead": d, "actions": actions, "trail": trail}


def conversion(session: Session, *, since: datetime | None = None, until: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
    """Conversion by agent (who recorded the lead) and by team: leads, open, won, lost, conversion = won / (won + lost),
    and the value won per currency (minor units), for leads recorded in [since, until)."""
    won = sa_case((SalesLead.state == LeadState.WON.value, 1), else_=0)
    lost = sa_case((SalesLead.state == LeadState.LOST.value, 1), else_=0)
    won_value = sa_case((SalesLead.state == LeadState.WON.value, func.coalesce(SalesLead.value_minor, 0)), else_=0)
    out: dict[str, list[dict[str, Any]]] = {}
    for key, col in (("by_agent", SalesLead.created_by), ("by_team", SalesLead.team_code)):
        q = select(col, func.count(SalesLead.id), func.sum(won), func.sum(lost), SalesLead.currency, func.sum(won_value)).group_by(col, SalesLead.currency)
        if since is not None:
            q = q.where(SalesLead.created_at >= since)
        if until is not None:
            q = q.where(SalesLead.created_at < until)
        merged: dict[str, dict[str, Any]] = {}
        for who, n, w, lo, cur, val in session.execute(q).all():
            who = "(none)" if who is None else str(who)
            m = merged.setdefault(who, {"who": who, "leads": 0, "won": 0, "lost": 0, "won_value": {}})
            m["leads"] += int(n)
            m["won"] += int(w or 0)
            m["lost"] += int(lo or 0)
            if cur and int(val or 0):
                m["won_value"][cur] = m["won_value"].get(cur, 0) + int(val)
        rows = []
        for m in merged.values():
            decided = m["won"] + m["lost"]
            m["open"] = m["leads"] - decided
            m["conversion"] = (Decimal(m["won"]) / decided).quantize(Decimal("0.001")) if decided else None
            m["won_value"] = {c: Money.from_minor(v, c).amount for c, v in sorted(m["won_value"].items())}
            rows.append(m)
        out[key] = sorted(rows, key=lambda m: (-m["leads"], m["who"]))
    return out


def seed_templates(session: Session, *, now: datetime) -> None:
    """The hand-over email to a sales partner (idempotent; operators edit it in the notifications desk)."""
    sample = {"lead": {"id": 42, "product_interest": "500 Mbps fibre", "value": "ZAR 899.00", "customer": "Thabo Nkosi",
                       "contact": "0821234567 / thabo@example.test", "consent_channel": "call", "consent_at": "2026-11-02", "notes": ""}}
    notifications.ensure_template(session, event=HANDOVER_EVENT, channel="email", language="en", subject=HANDOVER_TEMPLATE[0],
                                  body=HANDOVER_TEMPLATE[1], now=now, description="Cases: a sales lead handed to a sales partner",
                                  sample_context=sample)
