"""Trends for management (issue 17) on a hand-built set of cases: reasons and channels per week, repeat contacts, drivers
by product and region, FCR and SLA by queue and agent, sentiment recovered, the drill-down and the workbook — on SQLite
and PostgreSQL."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import update

from opsline.cases import service, trends
from opsline.cases.models import SupportCase
from opsline.cases.schemas import CaseIn
from opsline.core.errors import InvalidInput
from opsline.core.exports import export_sheets
from opsline.users.service import create_user
from opsline.core.events import Actor

sys.path.insert(0, str(Path(__file__).parent))
from support_helpers import customer  # noqa: E402

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)  # a Wednesday; this week starts Monday 23 November


def _case(session, actor, *, account_id, category, channel="call", opened, **fields):  # type: ignore[no-untyped-def]
    c = service.open_case(session, data=CaseIn(account_id=account_id, category_code=category, channel=channel, subject=f"{category} case"),
                          now=opened, actor=actor)
    if fields:
        session.execute(update(SupportCase).where(SupportCase.id == c.id).values(**fields))
    return c


@pytest.fixture
def built(session, actor):  # type: ignore[no-untyped-def]
    a = customer(session, NOW - timedelta(days=200), actor, name="Ayanda One")
    b = customer(session, NOW - timedelta(days=200), actor, name="Bongi Two", city="Cape Town")
    uid = create_user(session, username="zodwa", full_name="Zodwa", email="zodwa@opsline.test", password="password123", roles=["second_line_agent"],
                      now=NOW, actor=Actor.system("test")).id
    mon = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)
    # week 3 (this week): a spike of 3 network cases; week 2: 1 billing; week 0: 1 billing by email; 1 case before the window
    _case(session, actor, account_id=a, category="network_coverage", opened=mon, first_contact_resolution=True, sla_state="ok", sentiment_recovered=True,
          assignee_user_id=uid)
    _case(session, actor, account_id=a, category="network_coverage", opened=mon + timedelta(hours=5), first_contact_resolution=False,
          sla_state="breached", sla_breached_at=mon + timedelta(hours=9), sentiment_recovered=False, assignee_user_id=uid)
    _case(session, actor, account_id=b, category="network_coverage", opened=NOW - timedelta(minutes=1), sla_state="at_risk")
    _case(session, actor, account_id=b, category="billing_account", opened=mon - timedelta(days=6), first_contact_resolution=True, sentiment_recovered=True)
    _case(session, actor, account_id=a, category="billing_account", channel="email", opened=datetime(2026, 11, 2, 0, 1, tzinfo=timezone.utc))
    _case(session, actor, account_id=b, category="billing_account", opened=datetime(2026, 11, 1, 23, 59, tzinfo=timezone.utc))
    session.flush()
    return {"a": a, "b": b}


def test_the_trend_report_counts_a_hand_built_set_of_cases_exactly(session, built):
    r = trends.report(session, now=NOW, weeks=4)
    assert r["mondays"] == ["2026-11-02", "2026-11-09", "2026-11-16", "2026-11-23"]
    cats = {c["code"]: c["weeks"] for c in r["categories"]}
    assert cats == {"network_coverage": [0, 0, 0, 3], "billing_account": [1, 0, 1, 0]}
    assert r["totals"] == [1, 0, 1, 3] and r["categories"][0]["code"] == "network_coverage"
    assert {c["channel"]: c["weeks"] for c in r["channels"]} == {"call": [0, 0, 1, 3], "email": [1, 0, 0, 0]}
    assert r["repeat"] == {"accounts": 2, "repeaters": 2, "repeat_cases": 5, "share": 1.0,
                           "top": [{"account_id": built["a"], "cases": 3}, {"account_id": built["b"], "cases": 2}]}
    assert sum(x["cases"] for x in r["by_product"]) == 5 and sum(x["cases"] for x in r["by_region"]) == 5
    agent = {x["key"]: x for x in r["by_agent"]}
    assert (agent["zodwa"]["cases"], agent["zodwa"]["fcr"], agent["zodwa"]["fcr_decided"], agent["zodwa"]["fcr_rate"]) == (2, 1, 2, 0.5)
    assert (agent["zodwa"]["breached"], agent["zodwa"]["with_sla"], agent["zodwa"]["sla_met_rate"]) == (1, 2, 0.5)
    assert sum(x["cases"] for x in r["by_queue"]) == 5
    assert r["sentiment"] == {"recovered": [0, 0, 1, 1], "judged": [0, 0, 1, 2], "rate": round(2 / 3, 3)}
    assert r["chart"]["data"]["datasets"][0]["data"] == [0, 0, 0, 3]


def test_the_drill_down_lists_exactly_the_cases_behind_a_spike_and_the_workbook_has_every_table(session, built):
    d = trends.drill(session, now=NOW, weeks=4, week=3, category="network_coverage")
    assert len(d["rows"]) == 3 and {x["category_code"] for x in d["rows"]} == {"network_coverage"}
    assert len(trends.drill(session, now=NOW, weeks=4, channel="email")["rows"]) == 1
    assert len(trends.drill(session, now=NOW, weeks=4, week=0)["rows"]) == 1
    name, media, body = export_sheets("xlsx", name="trends", sheets=trends.sheets(trends.report(session, now=NOW, weeks=4)))
    assert name.endswith(".xlsx") and body[:2] == b"PK"
    with pytest.raises(InvalidInput) as e:
        trends.drill(session, now=NOW, weeks=4, week=4)
    assert e.value.field == "week"
    with pytest.raises(InvalidInput) as e:
        trends.report(session, now=NOW, weeks=0)
    assert e.value.field == "weeks"


def test_recording_sentiment_recovered_on_a_case_is_audited(session, built, actor):
    c = _case(session, actor, account_id=built["a"], category="complaint", opened=NOW)
    trends.set_sentiment(session, case_id=c.id, recovered=True, now=NOW, actor=actor)
    assert session.get(SupportCase, c.id).sentiment_recovered is True
    assert trends.report(session, now=NOW, weeks=1)["sentiment"]["recovered"] == [2]


def test_the_weekly_subscription_sends_each_address_last_weeks_report_with_the_workbook_once_per_week(session, built, actor):
    from sqlalchemy import func, select

    from opsline.cases import trends_mail
    from opsline.core.jobs import Job
    from opsline.notifications.models import Message, MessageAttachment

    sub = trends_mail.subscribe(session, email=" Boss@Opsline.example ", weeks=4, now=NOW, actor=actor)
    assert sub.email == "boss@opsline.example"
    assert session.execute(select(Job.run_at).where(Job.kind == "cases.trends_weekly")).scalar_one() == datetime(2026, 11, 30, 6, 0, tzinfo=timezone.utc)
    monday = datetime(2026, 11, 30, 6, 0, tzinfo=timezone.utc)
    assert trends_mail.send_weekly(session, now=monday) == 1
    assert trends_mail.send_weekly(session, now=monday + timedelta(hours=1)) == 0  # once per week
    msg = session.execute(select(Message).where(Message.event == "cases.trends_weekly")).scalar_one()
    assert msg.to_addr == "boss@opsline.example" and "week of 2026-11-23" in msg.subject and "Cases last week: 3" in msg.body
    assert "Network & coverage" in msg.body
    att = session.execute(select(MessageAttachment).where(MessageAttachment.message_id == msg.id)).scalar_one()
    assert att.filename.endswith(".xlsx") and att.data[:2] == b"PK"
    for bad, field in [(dict(email="not an address", weeks=4), "email"), (dict(email="a@b.c", weeks=0), "weeks")]:
        with pytest.raises(trends_mail.UnableToSubscribe) as e:
            trends_mail.subscribe(session, now=NOW, actor=actor, **bad)
        assert e.value.field == field
    trends_mail.unsubscribe(session, subscription_id=sub.id, now=NOW, actor=actor)
    assert trends_mail.subscriptions(session) == []
    assert session.execute(select(func.count()).select_from(Message)).scalar_one() >= 1
