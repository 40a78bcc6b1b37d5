"""Outbound campaigns: a target list built set-based from a saved filter (contracts ending, a product being retired, a
network outage area), a script and offers; launching creates the work items (calls for agents, or emails through
notifications) with the marketing contact caps respected; outcomes per target and progress per campaign."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, bindparam, exists, func, insert, literal, select, update
from sqlalchemy.orm import Session

from opsline.cases.campaign_models import CAMPAIGN, Campaign, CampaignTarget
from opsline.cases.leads import LeadRecordIn, record_lead
from opsline.catalog.models import ProductOffering
from opsline.core import events, lifecycle
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.customers.models import Account, Site
from opsline.customers.schemas import MemoIn
from opsline.customers.service import add_memo
from opsline.inventory.models import Product
from opsline.notifications.contacts import rules_for
from opsline.notifications.models import CONTACT_STATES, ContactPreference, Message
from opsline.notifications.service import Outgoing, ensure_template, send_many

OFFER_EVENT = "campaign.offer"
OFFER_TEMPLATE = ("{{ campaign.name }}", "{{ campaign.script }}\n\nOur offers for you:\n{{ campaign.offers }}\n\n"
                  "Reply to this email or call us to take one up.")
WORKED = ("no_answer", "reached", "accepted", "declined")
AGENT_OUTCOMES = ("no_answer", "reached", "accepted", "declined")
LIVE_PRODUCT_STATES = ("active", "suspended")

class CampaignNotFound(NotFound):
    pass

class UnableToBuildCampaign(InvalidInput):
    title = "Unable to build the campaign"

class UnableToRecordCampaignOutcome(InvalidInput):
    title = "Unable to record the campaign outcome"

class CampaignIn(BaseModel):
    """A campaign and its saved filter: `contract_ending` (ends_from, ends_to: contracts ending in [from, to)),
    `product_retiring` (offering_code), `outage_area` (city, optional suburb)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=120)
    filter_kind: Literal["contract_ending", "product_retiring", "outage_area"]
    ends_from: date | None = None
    ends_to: date | None = None
    offering_code: str | None = Field(default=None, max_length=40)
    city: str | None = Field(default=None, max_length=100)
    suburb: str | None = Field(default=None, max_length=100)
    script: str = Field(min_length=1, max_length=20_000)
    offers: list[str] = Field(default_factory=list, max_length=20)
    channel: Literal["call", "email"] = "call"

def _params(data: CampaignIn) -> dict[str, Any]:
    if data.filter_kind == "contract_ending":
        if data.ends_from is None:
            raise UnableToBuildCampaign("give the first contract end date of the filter", field="ends_from")
        if data.ends_to is None or data.ends_to <= data.ends_from:
            raise UnableToBuildCampaign("give a last contract end date after the first", field="ends_to")
        return {"ends_from": data.ends_from.isoformat(), "ends_to": data.ends_to.isoformat()}
    if data.filter_kind == "product_retiring":
        if not data.offering_code:
            raise UnableToBuildCampaign("name the product being retired", field="offering_code")
        return {"offering_code": data.offering_code}
    if not data.city:
        raise UnableToBuildCampaign("name the town or city of the outage area", field="city")
    return {"city": data.city} | ({"suburb": data.suburb} if data.suburb else {})

def _campaign(session: Session, campaign_id: int, *, for_update: bool = False) -> Campaign:
    q = select(Campaign).where(Campaign.id == campaign_id)
    c = session.execute(q.with_for_update() if for_update else q).scalar_one_or_none() if 0 < campaign_id < 2**62 else None
    if c is None:
        raise CampaignNotFound(f"campaign {campaign_id} not found", field="campaign_id")
    return c

def _target_query(session: Session, c: Campaign):  # type: ignore[no-untyped-def]
    """SELECT DISTINCT account_id of the accounts the saved filter finds (active accounts with a live product)."""
    p = c.filter_params or {}
    q = select(Product.account_id).join(Account, Account.id == Product.account_id).where(
        Product.state.in_(LIVE_PRODUCT_STATES), Account.status == "active")
    if c.filter_kind == "contract_ending":
        q = q.where(Product.contract_end_date >= date.fromisoformat(p["ends_from"]), Product.contract_end_date < date.fromisoformat(p["ends_to"]))
    elif c.filter_kind == "product_retiring":
        off = session.execute(select(ProductOffering.id).where(ProductOffering.code == p["offering_code"])).scalar_one_or_none()
        if off is None:
            raise UnableToBuildCampaign(f"unknown product '{p['offering_code']}'", field="offering_code")
        q = q.where(Product.offering_id == off)
    else:
        q = q.join(Site, Site.id == Product.site_id).where(func.lower(Site.city) == p["city"].lower())
        if p.get("suburb"):
            q = q.where(func.lower(Site.suburb) == p["suburb"].lower())
    return q.distinct()

def create_campaign(session: Session, *, data: CampaignIn, now: datetime, actor: Actor) -> Campaign:
    """Save a campaign (draft) with its filter, script and offers. Raises UnableToBuildCampaign (filter incomplete, unknown product)."""
    params = _params(data)
    offers = [o.strip() for o in data.offers if o and o.strip()]
    c = Campaign(name=data.name, filter_kind=data.filter_kind, filter_params=params, script=data.script, offers=offers, channel=data.channel,
                 state=CAMPAIGN.initial, target_count=0, created_by=actor.name, created_at=now, updated_at=now)
    _target_query(session, c)  # an unknown product is refused now, not at build time
    session.add(c)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="campaign", entity_id=c.id, action="created",
                  after={"name": c.name, "filter_kind": c.filter_kind, "filter": params, "channel": c.channel, "offers": offers})
    return c

def _capped_accounts(session: Session, *, channel: str, now: datetime):  # type: ignore[no-untyped-def]
    """Accounts at or over a marketing contact cap for `channel`: marketing messages plus campaign calls worked in each rule's period."""
    parts = []
    for r in rules_for(session, category="marketing", channel=channel):
        if not (r.max_contacts and r.period_days):
            continue
        since = now - timedelta(days=r.period_days)
        msgs = select(Message.account_id.label("account_id")).where(Message.category == "marketing", Message.state.in_(CONTACT_STATES),
                                                                    Message.run_at > since, Message.account_id.is_not(None))
        if r.channel:
            msgs = msgs.where(Message.channel == r.channel)
        calls = select(CampaignTarget.account_id.label("account_id")).join(Campaign, Campaign.id == CampaignTarget.campaign_id).where(
            CampaignTarget.outcome.in_(WORKED), CampaignTarget.outcome_at > since)
        if r.channel:
            calls = calls.where(Campaign.channel == r.channel)
        u = msgs.union_all(calls).subquery()
        parts.append(select(u.c.account_id).group_by(u.c.account_id).having(func.count() >= r.max_contacts))
    return parts

def build_targets(session: Session, *, campaign_id: int, now: datetime, actor: Actor) -> dict[str, int]:
    """Build the target list of a draft campaign from its saved filter in a few statements (INSERT ... SELECT), then mark
    the accounts that opted out of marketing on the channel and those at a marketing contact cap (kept, never contacted).
    Building again replaces the list. Returns the counts by outcome.
    Raises CampaignNotFound, UnableToBuildCampaign (not a draft; the filter finds nobody; nobody can be contacted under the
    opt-outs and contact caps: nothing is changed then)."""
    c = _campaign(session, campaign_id, for_update=True)
    if c.state != "draft":
        raise UnableToBuildCampaign(f"campaign {c.id} is {c.state}; targets are built while it is a draft", field="state")
    sp = session.begin_nested()
    session.execute(CampaignTarget.__table__.delete().where(CampaignTarget.campaign_id == c.id))
    src = _target_query(session, c).subquery()
    session.execute(insert(CampaignTarget.__table__).from_select(
        ["campaign_id", "account_id", "outcome", "created_at"],
        select(literal(c.id), src.c.account_id, literal("pending"), literal(now, type_=CampaignTarget.__table__.c.created_at.type))))
    n = sum(_counts(session, c.id).values())  # (rowcount of INSERT ... SELECT is not reported by every driver)
    if not n:
        sp.rollback()
        raise UnableToBuildCampaign(f"the filter of campaign '{c.name}' finds no customers; change the filter", field="filter",
                                    extra={"filter": c.filter_params})
    pending = and_(CampaignTarget.campaign_id == c.id, CampaignTarget.outcome == "pending")
    # an email campaign skips those who opted out of marketing email; a call campaign those who opted out of marketing at all
    opted = exists().where(ContactPreference.account_id == CampaignTarget.account_id, ContactPreference.category == "marketing",
                           ContactPreference.opted_out.is_(True))
    if c.channel == "email":
        opted = opted.where(ContactPreference.channel == "email")
    session.execute(update(CampaignTarget).where(pending, opted).values(outcome="opted_out"), execution_options={"synchronize_session": False})
    for capped in _capped_accounts(session, channel=c.channel, now=now):
        session.execute(update(CampaignTarget).where(pending, CampaignTarget.account_id.in_(capped)).values(outcome="capped"),
                        execution_options={"synchronize_session": False})
    counts = _counts(session, c.id)
    if not counts.get("pending"):
        sp.rollback()
        raise UnableToBuildCampaign(f"all {n} customers the filter finds opted out of marketing or are at their contact cap; nobody can be contacted",
                                    field="filter", extra={"found": n})
    sp.commit()
    c.target_count, c.updated_at = int(n), now
    events.record(session, now=now, actor=actor, entity_type="campaign", entity_id=c.id, action="targets_built", after=counts)
    return counts

def _counts(session: Session, campaign_id: int) -> dict[str, int]:
    return {str(o): int(k) for o, k in session.execute(select(CampaignTarget.outcome, func.count(CampaignTarget.id))
                                                       .where(CampaignTarget.campaign_id == campaign_id).group_by(CampaignTarget.outcome)).all()}

def launch(session: Session, *, campaign_id: int, now: datetime, actor: Actor) -> list[str]:
    """Start a built campaign: a call campaign's pending targets become agents' work items; an email campaign sends each
    pending target the offer through notifications (category marketing: quiet hours and caps schedule it; opt-outs suppress).
    Raises CampaignNotFound, UnableToBuildCampaign (no targets built), TransitionNotAllowed, ActionNotPermitted."""
    c = _campaign(session, campaign_id, for_update=True)
    if c.state == "draft" and not _counts(session, c.id).get("pending"):
        raise UnableToBuildCampaign(f"build the target list of campaign '{c.name}' first", field="targets")
    nxt = lifecycle.transition(session, CAMPAIGN, c, "launch", now=now, actor=actor, label=f"campaign {c.name}")
    c.launched_at = c.updated_at = now
    if c.channel == "email":
        ids = [int(a) for (a,) in session.execute(select(CampaignTarget.account_id).where(
            CampaignTarget.campaign_id == c.id, CampaignTarget.outcome == "pending").order_by(CampaignTarget.id)).all()]
        ctx = {"campaign": {"name": c.name, "script": c.script, "offers": "\n".join(f"- {o}" for o in c.offers or [])}}
        out = send_many(session, messages=[Outgoing(event=OFFER_EVENT, account_id=a, context=ctx, subject_ref=f"campaign:{c.id}",
                                                    idempotency_key=f"campaign:{c.id}:{a}") for a in ids], now=now, actor=actor, category="marketing")
        rows = [{"campaign_id": c.id, "account_id": a, "message_id": m} for a, m in zip(ids, out) if isinstance(m, int) and m > 0]
        if rows:
            t = CampaignTarget.__table__

            session.execute(t.update().where(t.c.campaign_id == bindparam("cid"), t.c.account_id == bindparam("aid")).values(message_id=bindparam("mid")),
                            [{"cid": r["campaign_id"], "aid": r["account_id"], "mid": r["message_id"]} for r in rows])
    return nxt

def finish(session: Session, *, campaign_id: int, action: str, now: datetime, actor: Actor, reason: str | None = None) -> list[str]:
    """Complete or cancel a campaign. Raises CampaignNotFound, TransitionNotAllowed, ReasonRequired (cancel)."""
    c = _campaign(session, campaign_id, for_update=True)
    nxt = lifecycle.transition(session, CAMPAIGN, c, action, now=now, actor=actor, reason=reason, label=f"campaign {c.name}")
    c.updated_at = now
    return nxt

def next_target(session: Session, *, campaign_id: int) -> dict[str, Any] | None:
    """The next pending call of a running campaign (oldest first), with the customer's name and phone."""
    r = session.execute(select(CampaignTarget.id, CampaignTarget.account_id, Account.account_number, Account.name, Account.phone)
                        .join(Account, Account.id == CampaignTarget.account_id)
                        .where(CampaignTarget.campaign_id == campaign_id, CampaignTarget.outcome.in_(("pending", "no_answer")))
                        .order_by((CampaignTarget.outcome == "no_answer"), CampaignTarget.id).limit(1)).one_or_none()
    return None if r is None else {"id": r.id, "account_id": r.account_id, "account_number": r.account_number, "name": r.name, "phone": r.phone}

def record_outcome(session: Session, *, target_id: int, outcome: str, now: datetime, actor: Actor, offer: str | None = None,
                   note: str | None = None, lead_interest: str | None = None) -> CampaignTarget:
    """Record what came of contacting a target: no answer, reached, accepted (one of the campaign's offers) or declined;
    with `lead_interest` the customer agreed on this call to hear from sales: a lead is recorded (consent by call).
    Raises NotFound, UnableToRecordCampaignOutcome (campaign not running, bad outcome, offer not one of the campaign's,
    a target not to be contacted), UnableToRecordLead."""
    t = session.execute(select(CampaignTarget).where(CampaignTarget.id == target_id).with_for_update()).scalar_one_or_none() \
        if 0 < target_id < 2**62 else None
    if t is None:
        raise NotFound(f"campaign target {target_id} not found", field="target_id")
    c = _campaign(session, t.campaign_id)
    if c.state != "running":
        raise UnableToRecordCampaignOutcome(f"campaign '{c.name}' is {c.state}; outcomes are recorded while it runs", field="state")
    if outcome not in AGENT_OUTCOMES:
        raise UnableToRecordCampaignOutcome(f"the outcome is one of {', '.join(AGENT_OUTCOMES)}", field="outcome")
    if t.outcome in ("capped", "opted_out"):
        raise UnableToRecordCampaignOutcome(f"this customer is {t.outcome.replace('_', ' ')} and is not to be contacted", field="target_id")
    offer = (offer or "").strip() or None
    if outcome == "accepted":
        if not offer or offer not in (c.offers or []):
            raise UnableToRecordCampaignOutcome("choose which of the campaign's offers was accepted", field="offer")
    before = {"outcome": t.outcome}
    lead_id = t.lead_id
    if lead_interest and lead_interest.strip() and lead_id is None:
        lead_id = record_lead(session, data=LeadRecordIn(account_id=t.account_id, product_interest=lead_interest.strip(), consent_marketing=True,
                                                         consent_channel="email" if c.channel == "email" else "call", campaign_id=c.id),
                              now=now, actor=actor).id
    t.outcome, t.offer, t.note, t.agent, t.outcome_at, t.lead_id = outcome, offer, (note or "").strip() or None, actor.name, now, lead_id
    events.record(session, now=now, actor=actor, entity_type="campaign_target", entity_id=t.id, account_id=t.account_id, action=outcome,
                  before=before, after={"campaign": c.id, "offer": offer, "lead_id": lead_id})
    if outcome != "no_answer":
        add_memo(session, account_id=t.account_id, data=MemoIn(category="sales", body=f"Campaign '{c.name}': {outcome.replace('_', ' ')}"
                 + (f" ({offer})" if offer else "") + (f". {t.note}" if t.note else ".")), now=now, actor=actor)
    session.flush()
    return t

def progress(session: Session, *, campaign_id: int) -> dict[str, Any]:
    """Targets by outcome, reached (spoken to: reached + accepted + declined), acceptance rate of those reached, leads."""
    counts = _counts(session, campaign_id)
    total = sum(counts.values())
    reached = sum(counts.get(k, 0) for k in ("reached", "accepted", "declined"))
    leads = int(session.execute(select(func.count(CampaignTarget.id)).where(CampaignTarget.campaign_id == campaign_id,
                                                                             CampaignTarget.lead_id.is_not(None))).scalar_one())
    contactable = total - counts.get("capped", 0) - counts.get("opted_out", 0)
    worked = sum(counts.get(k, 0) for k in WORKED)
    return {"counts": counts, "total": total, "contactable": contactable, "worked": worked, "reached": reached,
            "accepted": counts.get("accepted", 0), "declined": counts.get("declined", 0), "leads": leads,
            "acceptance": round(counts.get("accepted", 0) / reached, 3) if reached else None,
            "done_percent": round(100 * worked / contactable) if contactable else 0}

def list_campaigns(session: Session) -> list[dict[str, Any]]:
    cs = session.execute(select(Campaign).order_by(Campaign.id.desc()).limit(200)).scalars().all()
    by: dict[int, dict[str, int]] = {}
    if cs:
        for cid, o, k in session.execute(select(CampaignTarget.campaign_id, CampaignTarget.outcome, func.count(CampaignTarget.id))
                                         .where(CampaignTarget.campaign_id.in_([c.id for c in cs])).group_by(CampaignTarget.campaign_id, CampaignTarget.outcome)):
            by.setdefault(int(cid), {})[str(o)] = int(k)
    out = []
    for c in cs:
        k = by.get(c.id, {})
        out.append({"id": c.id, "name": c.name, "state": c.state, "channel": c.channel, "filter_kind": c.filter_kind, "filter": c.filter_params,
                    "targets": sum(k.values()), "reached": sum(k.get(x, 0) for x in ("reached", "accepted", "declined")),
                    "accepted": k.get("accepted", 0), "declined": k.get("declined", 0), "pending": k.get("pending", 0), "created_at": c.created_at})
    return out

def campaign_detail(session: Session, *, campaign_id: int, actor: Actor, page: int = 1, per_page: int = 50) -> dict[str, Any]:
    """A campaign, its progress, next call, and a page of targets. Raises CampaignNotFound."""
    c = _campaign(session, campaign_id)
    page = max(1, page)
    targets = [{"id": r.id, "account_id": r.account_id, "account_number": r.account_number, "name": r.name, "outcome": r.outcome, "offer": r.offer,
                "agent": r.agent, "outcome_at": r.outcome_at, "lead_id": r.lead_id, "message_id": r.message_id}
               for r in session.execute(select(CampaignTarget.id, CampaignTarget.account_id, Account.account_number, Account.name, CampaignTarget.outcome,
                                               CampaignTarget.offer, CampaignTarget.agent, CampaignTarget.outcome_at, CampaignTarget.lead_id,
                                               CampaignTarget.message_id).join(Account, Account.id == CampaignTarget.account_id)
                                        .where(CampaignTarget.campaign_id == c.id).order_by(CampaignTarget.id)
                                        .limit(per_page).offset((page - 1) * per_page)).all()]
    return {"campaign": {"id": c.id, "name": c.name, "state": c.state, "channel": c.channel, "filter_kind": c.filter_kind, "filter": c.filter_params,
                         "script": c.script, "offers": list(c.offers or []), "created_by": c.created_by, "created_at": c.created_at,
                         "launched_at": c.launched_at},
            "actions": CAMPAIGN.allowed_actions(c.state, actor=actor), "progress": progress(session, campaign_id=c.id),
            "next": next_target(session, campaign_id=c.id) if c.state == "running" and c.channel == "call" else None,
            "targets": targets, "page": page}

def seed_templates(session: Session, *, now: datetime) -> None:
    sample = {"campaign": {"name": "Your contract ends soon", "script": "Your fibre contract ends next month.", "offers": "- 12 months at R499"}}
    ensure_template(session, event=OFFER_EVENT, channel="email", language="en", subject=OFFER_TEMPLATE[0], body=OFFER_TEMPLATE[1], now=now,
                    description="Cases: an outbound campaign's offer", sample_context=sample)



def target_in(session: Session, *, campaign_id: int, target_id: int) -> bool:
    """True when the target belongs to the campaign."""
    if not (0 < target_id < 2**62):
        return False
    return session.execute(select(CampaignTarget.id).where(CampaignTarget.id == target_id, CampaignTarget.campaign_id == campaign_id)).first() is not None
