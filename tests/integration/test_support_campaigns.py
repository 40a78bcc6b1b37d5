"""Outbound campaigns (issue 17): targets built set-based from a saved filter, opt-outs and marketing contact caps kept
out, calls worked by agents with outcomes and leads, emails through notifications, progress figures; an empty filter or a
list nobody may be contacted from is refused naming the field, nothing changed — on SQLite and PostgreSQL."""

from __future__ import annotations

import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from opsline.cases import campaigns
from opsline.cases.campaign_models import Campaign, CampaignTarget
from opsline.cases.models import SalesLead
from opsline.core.errors import TransitionNotAllowed
from opsline.core.lifecycle import ReasonRequired
from opsline.notifications.contacts import set_preference
from opsline.notifications.models import Message
from opsline.notifications.service import Outgoing, send_many

sys.path.insert(0, str(Path(__file__).parent))
from support_helpers import customer  # noqa: E402


def _ending(now, **kw):  # type: ignore[no-untyped-def]
    first = (now.date().replace(day=1) + timedelta(days=32)).replace(day=1)  # next month
    return campaigns.CampaignIn(**({"name": "Contracts ending next month", "filter_kind": "contract_ending", "ends_from": first,
                                    "ends_to": (first + timedelta(days=32)).replace(day=1), "script": "Your contract ends next month.",
                                    "offers": ["12 months at R499", "Free router upgrade"]} | kw))


def _targets(session, cid):  # type: ignore[no-untyped-def]
    return dict(session.execute(select(CampaignTarget.account_id, CampaignTarget.outcome).where(CampaignTarget.campaign_id == cid)).all())


def _population(session, now, actor):  # type: ignore[no-untyped-def]
    nxt = (now.date().replace(day=1) + timedelta(days=32)).replace(day=1)
    return {
        "ends_next_month": customer(session, now, actor, name="Ayanda One", contract_end=nxt + timedelta(days=10)),
        "ends_first_day": customer(session, now, actor, name="Bongi Two", contract_end=nxt),
        "ends_later": customer(session, now, actor, name="Chris Three", contract_end=nxt + timedelta(days=45)),
        "no_contract": customer(session, now, actor, name="Dineo Four", contract_end=None),
        "terminated": customer(session, now, actor, name="Eli Five", contract_end=nxt + timedelta(days=3), state="terminated"),
        "opted_out": customer(session, now, actor, name="Fikile Six", contract_end=nxt + timedelta(days=5)),
        "capped": customer(session, now, actor, name="Gugu Seven", contract_end=nxt + timedelta(days=6)),
    }


def test_a_contract_ending_campaign_targets_exactly_the_live_contracts_ending_in_the_range_and_keeps_opted_out_and_capped_apart(session, now, actor):
    ids = _population(session, now, actor)
    set_preference(session, account_id=ids["opted_out"], channel="email", category="marketing", opted_out=True, now=now, actor=actor)
    # the seeded cap is 2 marketing messages per 7 days: this customer already had two
    out = send_many(session, messages=[Outgoing(event="campaign.offer", account_id=ids["capped"], context={"campaign": {"name": "x", "script": "y", "offers": ""}},
                                                idempotency_key=f"earlier-{k}") for k in range(2)], now=now - timedelta(days=1), actor=actor, category="marketing")
    assert all(isinstance(m, int) for m in out)
    c = campaigns.create_campaign(session, data=_ending(now), now=now, actor=actor)
    counts = campaigns.build_targets(session, campaign_id=c.id, now=now, actor=actor)
    assert counts == {"pending": 2, "opted_out": 1, "capped": 1}
    t = _targets(session, c.id)
    assert t == {ids["ends_next_month"]: "pending", ids["ends_first_day"]: "pending", ids["opted_out"]: "opted_out", ids["capped"]: "capped"}
    assert c.target_count == 4
    # building again replaces the list (same answer, no duplicates)
    assert campaigns.build_targets(session, campaign_id=c.id, now=now, actor=actor) == counts


def test_a_campaign_whose_filter_finds_nobody_is_refused_naming_the_filter_and_nothing_is_written(session, now, actor):
    _population(session, now, actor)
    c = campaigns.create_campaign(session, data=_ending(now, ends_from=date(2031, 1, 1), ends_to=date(2031, 2, 1)), now=now, actor=actor)
    session.commit()
    with pytest.raises(campaigns.UnableToBuildCampaign) as e:
        campaigns.build_targets(session, campaign_id=c.id, now=now, actor=actor)
    assert e.value.field == "filter" and "finds no customers" in e.value.detail
    session.rollback()
    assert session.execute(select(func.count()).select_from(CampaignTarget)).scalar_one() == 0
    assert session.get(Campaign, c.id).state == "draft"
    with pytest.raises(campaigns.UnableToBuildCampaign) as e:
        campaigns.launch(session, campaign_id=c.id, now=now, actor=actor)
    assert e.value.field == "targets"
    for kw, field in [(dict(ends_from=None), "ends_from"), (dict(ends_to=date(2020, 1, 1)), "ends_to")]:
        with pytest.raises(campaigns.UnableToBuildCampaign) as e:
            campaigns.create_campaign(session, data=_ending(now, **kw), now=now, actor=actor)
        assert e.value.field == field
    with pytest.raises(campaigns.UnableToBuildCampaign) as e:
        campaigns.create_campaign(session, data=campaigns.CampaignIn(name="Retire", filter_kind="product_retiring", offering_code="NOPE", script="s"),
                                  now=now, actor=actor)
    assert e.value.field == "offering_code"
    assert session.execute(select(func.count()).select_from(Campaign)).scalar_one() == 1


def test_a_target_list_where_everyone_is_at_the_contact_cap_is_refused_and_nothing_is_written(session, now, actor):
    nxt = (now.date().replace(day=1) + timedelta(days=32)).replace(day=1)
    acc = customer(session, now, actor, contract_end=nxt + timedelta(days=2))
    send_many(session, messages=[Outgoing(event="campaign.offer", account_id=acc, context={"campaign": {"name": "x", "script": "y", "offers": ""}},
                                          idempotency_key=f"e{k}") for k in range(2)], now=now - timedelta(hours=1), actor=actor, category="marketing")
    c = campaigns.create_campaign(session, data=_ending(now, channel="email"), now=now, actor=actor)
    session.commit()
    with pytest.raises(campaigns.UnableToBuildCampaign, match="contact cap") as e:
        campaigns.build_targets(session, campaign_id=c.id, now=now, actor=actor)
    assert e.value.field == "filter"
    session.rollback()
    assert session.execute(select(func.count()).select_from(CampaignTarget)).scalar_one() == 0


def test_agents_work_a_call_campaign_and_its_progress_counts_reached_accepted_declined_and_leads(session, now, actor):
    ids = [customer(session, now, actor, name=f"Person {k}", city="Durban" if k < 4 else "Cape Town", suburb="Umhlanga") for k in range(6)]
    c = campaigns.create_campaign(session, data=campaigns.CampaignIn(name="Umhlanga outage follow-up", filter_kind="outage_area", city="durban",
                                                                     suburb="UMHLANGA", script="Sorry about Tuesday's outage.",
                                                                     offers=["One month free"]), now=now, actor=actor)
    assert campaigns.build_targets(session, campaign_id=c.id, now=now, actor=actor) == {"pending": 4}
    with pytest.raises(ReasonRequired):
        campaigns.finish(session, campaign_id=c.id, action="cancel", now=now, actor=actor)
    assert campaigns.launch(session, campaign_id=c.id, now=now, actor=actor) == ["complete", "cancel"]
    with pytest.raises(campaigns.UnableToBuildCampaign, match="draft"):
        campaigns.build_targets(session, campaign_id=c.id, now=now, actor=actor)
    first = campaigns.next_target(session, campaign_id=c.id)
    assert first["account_id"] == ids[0]
    campaigns.record_outcome(session, target_id=first["id"], outcome="accepted", offer="One month free", now=now, actor=actor,
                             lead_interest="Upgrade to 200 Mbps")
    second = campaigns.next_target(session, campaign_id=c.id)
    campaigns.record_outcome(session, target_id=second["id"], outcome="no_answer", now=now, actor=actor)
    third = campaigns.next_target(session, campaign_id=c.id)
    assert third["id"] != second["id"]  # an unanswered call goes to the back
    campaigns.record_outcome(session, target_id=third["id"], outcome="declined", note="happy as is", now=now, actor=actor)
    fourth = campaigns.next_target(session, campaign_id=c.id)
    campaigns.record_outcome(session, target_id=fourth["id"], outcome="reached", now=now, actor=actor)
    p = campaigns.progress(session, campaign_id=c.id)
    assert (p["total"], p["worked"], p["reached"], p["accepted"], p["declined"], p["leads"], p["acceptance"], p["done_percent"]) == \
        (4, 4, 3, 1, 1, 1, 0.333, 100)
    lead = session.execute(select(SalesLead).where(SalesLead.campaign_id == c.id)).scalar_one()
    assert (lead.source, lead.account_id, lead.consent_channel, lead.state) == ("campaign", ids[0], "call", "new")
    with pytest.raises(campaigns.UnableToRecordCampaignOutcome) as e:
        campaigns.record_outcome(session, target_id=fourth["id"], outcome="accepted", offer="Half price forever", now=now, actor=actor)
    assert e.value.field == "offer"
    with pytest.raises(campaigns.UnableToRecordCampaignOutcome) as e:
        campaigns.record_outcome(session, target_id=fourth["id"], outcome="sold", now=now, actor=actor)
    assert e.value.field == "outcome"
    assert campaigns.finish(session, campaign_id=c.id, action="complete", now=now, actor=actor) == []
    with pytest.raises(campaigns.UnableToRecordCampaignOutcome) as e:
        campaigns.record_outcome(session, target_id=fourth["id"], outcome="declined", now=now, actor=actor)
    assert e.value.field == "state"
    with pytest.raises(TransitionNotAllowed):
        campaigns.launch(session, campaign_id=c.id, now=now, actor=actor)


def test_an_email_campaign_sends_each_contactable_target_the_offer_as_marketing_through_notifications(session, now, actor):
    nxt = (now.date().replace(day=1) + timedelta(days=32)).replace(day=1)
    a = customer(session, now, actor, name="Ayanda One", contract_end=nxt + timedelta(days=1))
    b = customer(session, now, actor, name="Bongi Two", contract_end=nxt + timedelta(days=2))
    c = campaigns.create_campaign(session, data=_ending(now, channel="email"), now=now, actor=actor)
    campaigns.build_targets(session, campaign_id=c.id, now=now, actor=actor)
    campaigns.launch(session, campaign_id=c.id, now=now, actor=actor)
    rows = session.execute(select(CampaignTarget.account_id, Message.category, Message.event, Message.to_addr, Message.body)
                           .join(Message, Message.id == CampaignTarget.message_id).where(CampaignTarget.campaign_id == c.id)
                           .order_by(CampaignTarget.account_id)).all()
    assert [(r.account_id, r.category, r.event) for r in rows] == [(a, "marketing", "campaign.offer"), (b, "marketing", "campaign.offer")]
    assert "12 months at R499" in rows[0].body and rows[0].to_addr == "ayanda@example.co.za"
