"""The leads pipeline (issue 17): recorded with consent from a case or a contact, qualified, handed to a sales team or a
sales partner (by email through notifications), won with its order or lost with a reason; conversion by agent and team;
bad input refused naming the field with nothing changed — on SQLite and PostgreSQL."""

from __future__ import annotations

import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from opsline.cases import leads, service
from opsline.cases.models import SalesLead
from opsline.cases.schemas import CaseIn
from opsline.core.errors import TransitionNotAllowed
from opsline.core.events import Actor, AuditEvent
from opsline.customers.models import Memo
from opsline.notifications.models import Message

sys.path.insert(0, str(Path(__file__).parent))
from support_helpers import customer, order, sales_partner  # noqa: E402


def _case(session, now, actor, account_id):  # type: ignore[no-untyped-def]
    return service.open_case(session, data=CaseIn(account_id=account_id, category_code="billing_account", subject="Asked about faster fibre"), now=now, actor=actor)


def _state(session) -> tuple:  # type: ignore[no-untyped-def]
    return tuple(session.execute(select(func.count()).select_from(m)).scalar_one() for m in (SalesLead, Memo, Message, AuditEvent))


def test_a_lead_from_a_case_is_qualified_handed_to_a_sales_partner_by_email_and_won_with_its_order(session, now, actor):
    acc = customer(session, now, actor)
    c = _case(session, now, actor, acc)
    partner = sales_partner(session)
    lead = leads.record_lead(session, data=leads.LeadRecordIn(case_id=c.id, product_interest="1 Gbps fibre", value="899.00", consent_marketing=True,
                                                               consent_channel="call"), now=now, actor=actor)
    assert (lead.state, lead.account_id, lead.source, lead.value_minor, lead.currency, lead.consent_at) == ("new", acc, "case", 89900, "ZAR", now)
    assert lead.team_code is not None  # the case's queue
    assert leads.qualify(session, lead_id=lead.id, now=now, actor=actor) == ["win", "lose", "hand_over"]
    nxt = leads.hand_over(session, lead_id=lead.id, to_kind="partner", to_code=partner, now=now + timedelta(minutes=5), actor=actor)
    assert nxt == ["win", "lose"] and lead.state == "handed_over" and lead.handed_to == partner
    msg = session.get(Message, lead.handover_message_id)
    assert msg.to_addr == "leads@fibrepro.example" and msg.event == "lead.handed_over" and "1 Gbps fibre" in msg.body and "ZAR 899.00" in msg.body
    oid = order(session, now, acc)
    assert leads.record_outcome(session, lead_id=lead.id, outcome="won", order_id=oid, now=now + timedelta(days=3), actor=actor) == []
    assert (lead.state, lead.won_order_id, lead.closed_at) == ("won", oid, now + timedelta(days=3))
    trail = session.execute(select(AuditEvent.action).where(AuditEvent.entity_type == "lead", AuditEvent.entity_id == str(lead.id)).order_by(AuditEvent.id)).scalars().all()
    assert trail == ["recorded", "qualify", "hand_over", "win"]
    memos = session.execute(select(Memo.body).where(Memo.account_id == acc, Memo.category == "sales").order_by(Memo.id)).scalars().all()
    assert len(memos) == 3 and "handed over to sales partner" in memos[1] and f"won (order {oid})" in memos[2]


def test_a_lead_from_a_contact_goes_to_a_sales_team_and_is_lost_with_its_reason(session, now, actor):
    acc = customer(session, now, actor)
    lead = leads.record_lead(session, data=leads.LeadRecordIn(account_id=acc, product_interest="LTE backup", consent_marketing=True, consent_channel="web",
                                                               team_code="retentions"), now=now, actor=actor)
    assert lead.source == "contact" and lead.case_id is None and lead.contact_email == "lerato@example.co.za"
    leads.qualify(session, lead_id=lead.id, now=now, actor=actor)
    leads.hand_over(session, lead_id=lead.id, to_kind="team", to_code="retentions", now=now, actor=actor)
    assert lead.handover_message_id is None and lead.handed_to_kind == "team"
    leads.record_outcome(session, lead_id=lead.id, outcome="lost", reason="chose a competitor's price", now=now, actor=actor)
    assert (lead.state, lead.lost_reason) == ("lost", "chose a competitor's price")
    ev = session.execute(select(AuditEvent).where(AuditEvent.entity_type == "lead", AuditEvent.action == "lose")).scalar_one()
    assert ev.reason == "chose a competitor's price"


def test_conversion_by_agent_and_team_is_won_over_decided_with_the_value_won(session, now, actor):
    acc = customer(session, now, actor)
    thabo, zanele = Actor(name="thabo", roles=frozenset({"admin"})), Actor(name="zanele", roles=frozenset({"admin"}))

    def lead(who, team, value, outcome):  # type: ignore[no-untyped-def]
        ld = leads.record_lead(session, data=leads.LeadRecordIn(account_id=acc, product_interest="fibre", value=value, consent_marketing=True,
                                                                 consent_channel="call", team_code=team), now=now, actor=who)
        if outcome:
            leads.qualify(session, lead_id=ld.id, now=now, actor=who)
            if outcome == "won":
                leads.record_outcome(session, lead_id=ld.id, outcome="won", order_id=order(session, now, acc), now=now, actor=who)
            else:
                leads.record_outcome(session, lead_id=ld.id, outcome="lost", reason="no budget", now=now, actor=who)

    for args in [(thabo, "retentions", "500", "won"), (thabo, "retentions", "300", "won"), (thabo, "retentions", "100", "lost"), (thabo, "retentions", None, None),
                 (zanele, "escalations", "700", "lost"), (zanele, "retentions", "250", "won")]:
        lead(*args)
    conv = leads.conversion(session)
    agent = {r["who"]: r for r in conv["by_agent"]}
    assert (agent["thabo"]["leads"], agent["thabo"]["won"], agent["thabo"]["lost"], agent["thabo"]["open"]) == (4, 2, 1, 1)
    assert agent["thabo"]["conversion"] == Decimal("0.667") and agent["thabo"]["won_value"] == {"ZAR": Decimal("800.00")}
    assert agent["zanele"]["conversion"] == Decimal("0.500") and agent["zanele"]["won_value"] == {"ZAR": Decimal("250.00")}
    team = {r["who"]: r for r in conv["by_team"]}
    assert (team["retentions"]["won"], team["retentions"]["lost"], team["retentions"]["conversion"]) == (3, 1, Decimal("0.750"))
    assert (team["escalations"]["won"], team["escalations"]["conversion"]) == (0, Decimal("0.000"))
    board = {col["state"]: col["count"] for col in leads.board(session)}
    assert board == {"new": 1, "qualified": 0, "handed_over": 0, "won": 3, "lost": 2}
    assert leads.list_leads(session, state="won", agent="thabo")["total"] == 2
    assert conv == leads.conversion(session, since=now, until=now + timedelta(seconds=1))
    assert leads.conversion(session, since=now + timedelta(days=1))["by_agent"] == []


def test_a_lead_without_consent_to_marketing_contact_is_refused_naming_the_field_and_nothing_is_written(session, now, actor):
    acc = customer(session, now, actor)
    before = _state(session)
    with pytest.raises(leads.UnableToRecordLead) as e:
        leads.record_lead(session, data=leads.LeadRecordIn(account_id=acc, product_interest="fibre", consent_marketing=False), now=now, actor=actor)
    assert e.value.field == "consent_marketing" and "consent" in e.value.detail
    with pytest.raises(leads.UnableToRecordLead) as e:
        leads.record_lead(session, data=leads.LeadRecordIn(account_id=acc, product_interest="fibre", consent_marketing=True), now=now, actor=actor)
    assert e.value.field == "consent_channel"
    with pytest.raises(leads.UnableToRecordLead) as e:
        leads.record_lead(session, data=leads.LeadRecordIn(product_interest="fibre", consent_marketing=True, consent_channel="call"), now=now, actor=actor)
    assert e.value.field == "contact_phone"
    with pytest.raises(leads.UnableToRecordLead) as e:
        leads.record_lead(session, data=leads.LeadRecordIn(account_id=acc, product_interest="fibre", value="R lots", consent_marketing=True,
                                                           consent_channel="call"), now=now, actor=actor)
    assert e.value.field == "value"
    assert _state(session) == before


def test_handing_a_lead_to_an_inactive_partner_is_refused_and_the_lead_stays_qualified_with_no_message(session, now, actor):
    acc = customer(session, now, actor)
    sales_partner(session, code="oldco", active=False)
    sales_partner(session, code="nomail", email=None)
    lead = leads.record_lead(session, data=leads.LeadRecordIn(account_id=acc, product_interest="fibre", consent_marketing=True, consent_channel="call"),
                             now=now, actor=actor)
    leads.qualify(session, lead_id=lead.id, now=now, actor=actor)
    session.commit()
    before = _state(session)
    for kind, code, words in [("partner", "oldco", "inactive"), ("partner", "nomail", "no contact email"), ("partner", "nobody", "unknown partner"),
                              ("team", "nosuchteam", "unknown sales team"), ("shop", "retentions", "sales team or a sales partner")]:
        with pytest.raises(leads.UnableToHandOverLead, match=words) as e:
            leads.hand_over(session, lead_id=lead.id, to_kind=kind, to_code=code, now=now, actor=actor)
        assert e.value.field == ("to_kind" if kind == "shop" else "to_code")
        session.rollback()
    session.refresh(lead)
    assert lead.state == "qualified" and lead.handed_to is None and _state(session) == before


def test_an_outcome_needs_the_order_of_the_same_account_or_a_reason_and_a_closed_lead_cannot_change(session, now, actor):
    acc = customer(session, now, actor)
    other = customer(session, now, actor, name="Sipho Mokoena")
    lead = leads.record_lead(session, data=leads.LeadRecordIn(account_id=acc, product_interest="fibre", consent_marketing=True, consent_channel="call"),
                             now=now, actor=actor)
    leads.qualify(session, lead_id=lead.id, now=now, actor=actor)
    session.commit()
    before = _state(session)
    foreign = order(session, now, other)
    session.commit()
    cases = [dict(outcome="won"), dict(outcome="won", order_id=987654), dict(outcome="won", order_id=foreign), dict(outcome="lost", reason="  "),
             dict(outcome="maybe")]
    for kw in cases:
        with pytest.raises(leads.UnableToRecordOutcome) as e:
            leads.record_outcome(session, lead_id=lead.id, now=now, actor=actor, **kw)
        assert e.value.field == ("reason" if kw["outcome"] == "lost" else "outcome" if kw["outcome"] == "maybe" else "order_id")
        session.rollback()
    session.refresh(lead)
    assert lead.state == "qualified" and _state(session)[0:2] == before[0:2]
    leads.record_outcome(session, lead_id=lead.id, outcome="lost", reason="moved abroad", now=now, actor=actor)
    with pytest.raises(TransitionNotAllowed, match="final"):
        leads.record_outcome(session, lead_id=lead.id, outcome="won", order_id=order(session, now, acc), now=now, actor=actor)
    with pytest.raises(leads.LeadNotFound):
        leads.qualify(session, lead_id=987654321, now=now, actor=actor)


def test_a_lead_to_an_http_partner_is_posted_by_a_job_with_its_idempotency_key_and_the_answer_is_on_its_trail(session, now, actor):
    import httpx

    from opsline.cases import lead_delivery
    from opsline.core.jobs import Job

    acc = customer(session, now, actor)
    code = sales_partner(session, code="crmco", email=None, base_url="https://crm.example/api")
    lead = leads.record_lead(session, data=leads.LeadRecordIn(account_id=acc, product_interest="Business fibre", value="1500", consent_marketing=True,
                                                               consent_channel="call"), now=now, actor=actor)
    leads.qualify(session, lead_id=lead.id, now=now, actor=actor)
    leads.hand_over(session, lead_id=lead.id, to_kind="partner", to_code=code, now=now, actor=actor)
    job = session.execute(select(Job).where(Job.kind == lead_delivery.KIND)).scalar_one()
    assert job.payload == {"lead_id": lead.id, "partner_code": code} and lead.handover_message_id is None
    seen: list[httpx.Request] = []
    answers = iter([httpx.Response(503), httpx.Response(201, json={"id": "CRM-77"})])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(answers)

    with pytest.raises(lead_delivery.LeadDeliveryFailed, match="503"):
        lead_delivery.deliver(session, lead_id=lead.id, partner_code=code, now=now, transport=httpx.MockTransport(handler))
    out = lead_delivery.deliver(session, lead_id=lead.id, partner_code=code, now=now, transport=httpx.MockTransport(handler))
    assert out == {"status": 201, "partner_ref": "CRM-77"}
    assert str(seen[0].url) == "https://crm.example/api/leads" and seen[0].headers["Idempotency-Key"] == f"lead-{lead.id}"
    assert seen[0].headers["Authorization"] == "Bearer tok-123" and b'"productInterest":"Business fibre"' in seen[0].content
    ev = session.execute(select(AuditEvent).where(AuditEvent.entity_type == "lead", AuditEvent.action == "handover_delivered")).scalar_one()
    assert ev.after["partner_ref"] == "CRM-77"
