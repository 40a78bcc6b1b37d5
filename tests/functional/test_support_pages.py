"""The leads and campaign pages over HTTP (issue 17): a lead recorded on a case with consent, handed over and won from
its page; bad input shown naming the field with nothing changed; a campaign created, built, launched and worked; who
may see and do what."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from opsline.cases import service
from opsline.cases.campaign_models import Campaign, CampaignTarget
from opsline.cases.models import SalesLead
from opsline.cases.schemas import CaseIn
from opsline.core.events import Actor

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from support_helpers import customer, order, sales_partner  # noqa: E402

ACTOR = Actor(name="tester", roles=frozenset({"admin"}))


@pytest.fixture
def data(factory, now):  # type: ignore[no-untyped-def]
    nxt = (now.date().replace(day=1) + timedelta(days=32)).replace(day=1)
    with factory.begin() as s:
        acc = customer(s, now, ACTOR, contract_end=nxt + timedelta(days=4))
        customer(s, now, ACTOR, name="Bongi Two", contract_end=nxt + timedelta(days=9))
        case = service.open_case(s, data=CaseIn(account_id=acc, category_code="sales", subject="Wants faster fibre"), now=now, actor=ACTOR)
        sales_partner(s)
        sales_partner(s, code="oldco", active=False)
        return {"account_id": acc, "case_id": case.id, "order_id": order(s, now, acc), "ends_from": nxt.isoformat(),
                "ends_to": (nxt + timedelta(days=32)).replace(day=1).isoformat()}


def _count(factory, model) -> int:  # type: ignore[no-untyped-def]
    with factory() as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def test_an_agent_records_a_lead_on_a_case_hands_it_to_a_partner_and_it_is_won_with_its_order(client_as, factory, data):
    c = client_as("second_line_agent")
    page = c.get(f"/cases/{data['case_id']}")
    assert page.status_code == 200 and 'action="/cases/leads/new"' in page.text and "agreed to hear from sales" in page.text
    r = c.post("/cases/leads/new", data={"case_id": data["case_id"], "product_interest": "1 Gbps fibre", "value": "899", "consent_marketing": "on",
                                         "consent_channel": "call"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    assert c.post(f"{url}/qualify", follow_redirects=False).status_code == 303
    assert c.post(f"{url}/hand-over", data={"to_kind": "partner", "to_code": "fibrepro"}, follow_redirects=False).status_code == 303
    r = c.post(f"{url}/outcome", data={"outcome": "won", "order_id": str(data["order_id"])}, follow_redirects=False)
    assert r.status_code == 303
    page = c.get(url)
    assert "won" in page.text and f"/orders/{data['order_id']}" in page.text and "fibrepro" in page.text and "hand_over" in page.text
    assert "Won" in c.get("/cases/leads/board").text and "100.0%" in c.get("/cases/leads/conversion").text
    assert "1 Gbps fibre" in c.get("/cases/leads?state=won").text


def test_a_lead_without_consent_or_to_an_inactive_partner_is_shown_as_an_error_naming_the_field_and_nothing_changes(client_as, factory, data):
    c = client_as("second_line_agent")
    r = c.post("/cases/leads/new", data={"case_id": data["case_id"], "product_interest": "1 Gbps fibre", "consent_channel": "call"})
    assert r.status_code == 422 and "consent_marketing" in r.text and "1 Gbps fibre" in r.text
    assert _count(factory, SalesLead) == 0
    r = c.post("/cases/leads/new", data={"case_id": "x", "product_interest": "fibre", "consent_marketing": "on", "consent_channel": "call"})
    assert r.status_code == 422 and "case_id" in r.text
    r = c.post("/cases/leads/new", data={"case_id": data["case_id"], "product_interest": "fibre", "consent_marketing": "on", "consent_channel": "call"},
               follow_redirects=False)
    url = r.headers["location"]
    c.post(f"{url}/qualify")
    r = c.post(f"{url}/hand-over", data={"to_kind": "partner", "to_code": "oldco"})
    assert r.status_code == 422 and "to_code" in r.text and "inactive" in r.text
    r = c.post(f"{url}/outcome", data={"outcome": "won", "order_id": "abc"})
    assert r.status_code == 422 and "order_id" in r.text
    with factory() as s:
        assert s.execute(select(SalesLead.state, SalesLead.handed_to)).one() == ("qualified", None)
    assert c.get("/cases/leads/987654321").status_code == 404
    assert c.post("/cases/leads/987654321/qualify").status_code == 404


def test_a_manager_runs_a_campaign_to_customers_whose_contracts_end_next_month_and_an_agent_records_outcomes(client_as, factory, data):
    m = client_as("service_manager")
    r = m.post("/cases/campaigns/new", data={"name": "Renewals", "filter_kind": "contract_ending", "ends_from": data["ends_from"], "ends_to": data["ends_to"],
                                             "channel": "call", "script": "Your contract ends next month.", "offers": "12 months at R499\nFree router"},
               follow_redirects=False)
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    assert m.post(f"{url}/build", follow_redirects=False).status_code == 303
    assert m.post(f"{url}/transition", data={"action": "launch"}, follow_redirects=False).status_code == 303
    agent = client_as("second_line_agent")
    page = agent.get(url)
    assert page.status_code == 200 and "Next call" in page.text and "Launch" not in page.text
    with factory() as s:
        tid = s.execute(select(CampaignTarget.id).order_by(CampaignTarget.id)).scalars().first()
    r = agent.post(f"{url}/targets/{tid}/outcome", data={"outcome": "accepted", "offer": "Free router", "lead_interest": "Add TV"}, follow_redirects=False)
    assert r.status_code == 303
    r = agent.post(f"{url}/targets/{tid}/outcome", data={"outcome": "accepted", "offer": "Half price"})
    assert r.status_code == 422 and "offer" in r.text
    page = m.get(url)
    assert "Reached" in page.text and "#" in page.text and "Free router" in page.text
    assert "Renewals" in m.get("/cases/campaigns").text
    assert agent.post(f"{url}/transition", data={"action": "complete"}).status_code == 403


def test_a_campaign_with_an_empty_filter_is_shown_as_an_error_naming_the_field_and_nothing_is_built(client_as, factory, data):
    m = client_as("service_manager")
    r = m.post("/cases/campaigns/new", data={"name": "Nobody", "filter_kind": "outage_area", "city": "Atlantis", "script": "s"}, follow_redirects=False)
    url = r.headers["location"]
    r = m.post(f"{url}/build")
    assert r.status_code == 422 and "filter" in r.text and "finds no customers" in r.text
    assert _count(factory, CampaignTarget) == 0
    r = m.post("/cases/campaigns/new", data={"name": "Half", "filter_kind": "contract_ending", "script": "s"})
    assert r.status_code == 422 and "ends_from" in r.text and _count(factory, Campaign) == 1


@pytest.mark.parametrize("role,can_lead,can_campaign", [("second_line_agent", True, False), ("service_manager", True, True),
                                                        ("billing_analyst", False, False), ("debtors_clerk", False, False)])
def test_every_support_role_sees_the_lead_and_campaign_pages_and_only_its_own_actions(client_as, data, role, can_lead, can_campaign):
    c = client_as(role)
    for path in ("/cases/leads", "/cases/leads/board", "/cases/leads/conversion", "/cases/campaigns"):
        assert c.get(path).status_code == 200, path
    assert c.get("/cases/leads/new").status_code == (200 if can_lead else 403)
    assert c.get("/cases/campaigns/new").status_code == (200 if can_campaign else 403)
    assert ("New lead" in c.get("/cases/leads").text) is can_lead
    assert ("New campaign" in c.get("/cases/campaigns").text) is can_campaign


def test_the_service_manager_opens_trends_drills_into_a_week_downloads_the_workbook_and_agents_may_not(client_as, data):
    m = client_as("service_manager")
    page = m.get("/cases/trends?weeks=8")
    assert page.status_code == 200 and "data-chart=" in page.text and "<script>" not in page.text
    assert "/cases/trends/cases?weeks=8&week=7" in page.text, page.text[page.text.find("All</th>"):][:600]
    drill = m.get("/cases/trends/cases?weeks=8&week=7")
    assert drill.status_code == 200 and "Wants faster fibre" in drill.text
    x = m.get("/cases/trends/export?weeks=8&format=xlsx")
    assert x.status_code == 200 and x.content[:2] == b"PK" and "attachment" in x.headers["content-disposition"]
    assert m.get("/cases/trends?weeks=500").status_code == 422
    assert m.get("/cases/trends/cases?weeks=8&week=9").status_code == 422
    assert client_as("second_line_agent").get("/cases/trends").status_code == 403


def test_an_agent_records_sentiment_recovered_on_a_case(client_as, factory, data):
    from opsline.cases.models import SupportCase

    c = client_as("second_line_agent")
    assert c.post(f"/cases/{data['case_id']}/sentiment", data={"recovered": "yes"}, follow_redirects=False).status_code == 303
    with factory() as s:
        assert s.get(SupportCase, data["case_id"]).sentiment_recovered is True
    assert "the customer left satisfied" in c.get(f"/cases/{data['case_id']}").text
    assert c.post(f"/cases/{data['case_id']}/sentiment", data={"recovered": "maybe"}).status_code == 422


def test_the_service_manager_subscribes_to_the_weekly_trends_email_and_a_bad_address_is_named(client_as):
    m = client_as("service_manager")
    assert m.post("/cases/trends/subscriptions", data={"email": "boss@opsline.example", "weeks": "8"}, follow_redirects=False).status_code == 303
    assert "boss@opsline.example (8 weeks" in m.get("/cases/trends").text
    r = m.post("/cases/trends/subscriptions", data={"email": "boss", "weeks": "8"})
    assert r.status_code == 422 and "<strong>email</strong>" in r.text


def test_an_agent_records_an_accepted_retention_plan_change_from_the_case_page_and_sees_the_rates(client_as, factory, now):
    from opsline.cases.models import RetentionOffer
    from support_helpers import offering

    with factory.begin() as s:
        acc = customer(s, now, ACTOR, offering_id=offering(s, code="MOB-SMART-L-24")[0])
        from opsline.inventory.models import Product

        pid = s.execute(select(Product.id).where(Product.account_id == acc)).scalar_one()
        case = service.open_case(s, data=CaseIn(account_id=acc, category_code="retentions", subject="Wants to cancel"), now=now, actor=ACTOR)
        cid, cheaper = case.id, offering(s, code="MOB-DATA-10GB")[0]
    c = client_as("second_line_agent")
    assert 'action="/cases/%d/retention/outcome"' % cid in c.get(f"/cases/{cid}").text
    r = c.post(f"/cases/{cid}/retention/outcome", data={"offer": "10 GB at R199", "outcome": "accepted", "reason_code": "nope"})
    assert r.status_code == 422 and "reason_code" in r.text
    r = c.post(f"/cases/{cid}/retention/outcome", data={"offer": "10 GB at R199", "outcome": "accepted", "reason_code": "price",
                                                        "product_id": str(pid), "offering_id": str(cheaper)}, follow_redirects=False)
    assert r.status_code == 303
    with factory() as s:
        assert s.execute(select(RetentionOffer.change_order_id)).scalar_one() is not None
    page = c.get("/cases/retention")
    assert page.status_code == 200 and "Price" in page.text and "100.0%" in page.text


def test_an_agent_raises_a_brand_incident_from_a_flagged_case_and_the_manager_closes_it_only_with_a_summary(client_as, factory, now, make_user):
    owner = make_user("service_manager", username="sarah")
    with factory.begin() as s:
        cid = service.open_case(s, data=CaseIn(category_code="complaint", subject="Viral post", brand_risk=True), now=now, actor=ACTOR).id
    agent = client_as("second_line_agent")
    assert "Raise brand incident" in agent.get(f"/cases/{cid}").text
    r = agent.post(f"/cases/{cid}/incident", data={"title": "Viral post", "owner": "ghost", "stakeholders": "pr@opsline.example"})
    assert r.status_code == 422 and "owner" in r.text
    r = agent.post(f"/cases/{cid}/incident", data={"title": "Viral post", "owner": owner, "stakeholders": "pr@opsline.example", "severity": "1"},
                   follow_redirects=False)
    assert r.status_code == 303
    url = r.headers["location"]
    assert agent.post(f"{url}/update", data={"body": "Called the customer"}, follow_redirects=False).status_code == 303
    assert agent.post(f"{url}/transition", data={"action": "close", "summary": "x"}).status_code == 403
    m = client_as("service_manager")
    r = m.post(f"{url}/transition", data={"action": "close", "summary": ""})
    assert r.status_code == 422 and "<strong>summary</strong>" in r.text
    assert m.post(f"{url}/transition", data={"action": "close", "summary": "Apology published"}, follow_redirects=False).status_code == 303
    page = m.get(url)
    assert "Apology published" in page.text and "closed" in page.text and "Called the customer" in page.text
    assert "Viral post" in m.get("/cases/incidents").text
    assert m.get("/cases/incidents/987654321").status_code == 404


def test_the_agent_desk_home_shows_leads_to_hand_over_calls_waiting_and_open_brand_incidents(client_as, factory, data, now):
    from opsline.cases import leads

    with factory.begin() as s:
        ld = leads.record_lead(s, data=leads.LeadRecordIn(case_id=data["case_id"], product_interest="fibre", consent_marketing=True, consent_channel="call"),
                               now=now, actor=ACTOR)
        leads.qualify(s, lead_id=ld.id, now=now, actor=ACTOR)
    page = client_as("second_line_agent").get("/desk")
    assert page.status_code == 200
    for title in ("Leads to hand over to sales", "Campaign calls waiting", "Open brand incidents"):
        assert title in page.text
    assert "/cases/leads?state=qualified" in page.text
