"""Brand emergencies (issue 17): a case flagged brand risk raises an incident with an owner and stakeholders (told by
email at each step), more cases linked, a timeline, closed only with a summary; bad input refused naming the field with
nothing changed — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from opsline.cases import incidents, service
from opsline.cases.campaign_models import BrandIncident, BrandIncidentCase
from opsline.cases.schemas import CaseIn
from opsline.core.errors import TransitionNotAllowed
from opsline.core.events import Actor
from opsline.core.lifecycle import ActionNotPermitted, ReasonRequired
from opsline.notifications.models import Message
from opsline.users.service import create_user


def _case(session, now, actor, *, brand=True, subject="Viral video of technician"):  # type: ignore[no-untyped-def]
    return service.open_case(session, data=CaseIn(category_code="complaint", subject=subject, brand_risk=brand), now=now, actor=actor)


@pytest.fixture
def owner(session, now):  # type: ignore[no-untyped-def]
    return create_user(session, username="sarah", full_name="Sarah", email="sarah@opsline.test", password="password123", roles=["service_manager"],
                       now=now, actor=Actor.system("test")).username


def _counts(session):  # type: ignore[no-untyped-def]
    return tuple(session.execute(select(func.count()).select_from(m)).scalar_one() for m in (BrandIncident, BrandIncidentCase, Message))


def test_a_brand_incident_is_raised_from_a_flagged_case_worked_with_stakeholders_told_and_closed_with_a_summary(session, now, actor, owner):
    c = _case(session, now, actor)
    inc = incidents.raise_incident(session, case_id=c.id, title="Viral technician video", owner=owner, stakeholders="PR@opsline.example; ceo@opsline.example",
                                   severity=1, now=now, actor=actor)
    assert inc.reference == f"BI{inc.id:06d}" and inc.state == "open" and inc.stakeholders == ["pr@opsline.example", "ceo@opsline.example"]
    other = _case(session, now, actor, brand=False, subject="Same technician, other customer")
    incidents.link_case(session, incident_id=inc.id, case_reference=other.reference.lower(), now=now, actor=actor)
    incidents.add_update(session, incident_id=inc.id, body="Technician suspended; customer called back.", now=now + timedelta(hours=1), actor=actor)
    assert incidents.transition(session, incident_id=inc.id, action="contain", now=now + timedelta(hours=2), actor=actor) == ["close", "reopen"]
    incidents.transition(session, incident_id=inc.id, action="close", summary="Apology published; retraining booked.", now=now + timedelta(days=1), actor=actor)
    assert (inc.state, inc.summary, inc.closed_at) == ("closed", "Apology published; retraining booked.", now + timedelta(days=1))
    msgs = session.execute(select(Message.to_addr, Message.subject).where(Message.event == "brand_incident.update").order_by(Message.id)).all()
    assert len(msgs) == 8 and {m.to_addr for m in msgs} == {"pr@opsline.example", "ceo@opsline.example"}  # raised, update, contained, closed x 2
    assert msgs[-1].subject.endswith("closed")
    d = incidents.detail(session, incident_id=inc.id, actor=actor)
    assert [x["reference"] for x in d["cases"]] == [c.reference, other.reference]
    assert [e["action"] for e in d["timeline"] if e["action"] != "stakeholders_notified"] == ["raised", "case_linked", "update", "contain", "close"]
    assert d["actions"] == [] and incidents.list_incidents(session)[0]["cases"] == 2


def test_closing_an_incident_without_a_summary_or_by_an_agent_is_refused_and_it_stays_open(session, now, actor, owner):
    c = _case(session, now, actor)
    inc = incidents.raise_incident(session, case_id=c.id, title="Outage tweets", owner=owner, stakeholders=["pr@opsline.example"], now=now, actor=actor)
    session.commit()
    before = _counts(session)
    with pytest.raises(incidents.UnableToChangeIncident) as e:
        incidents.transition(session, incident_id=inc.id, action="close", summary="   ", now=now, actor=actor)
    assert e.value.field == "summary"
    session.rollback()
    agent = Actor(name="agent", roles=frozenset({"second_line_agent"}))
    with pytest.raises(ActionNotPermitted):
        incidents.transition(session, incident_id=inc.id, action="close", summary="done", now=now, actor=agent)
    session.rollback()
    session.refresh(inc)
    assert inc.state == "open" and inc.summary is None and _counts(session) == before
    incidents.transition(session, incident_id=inc.id, action="contain", now=now, actor=agent)
    with pytest.raises(ReasonRequired):
        incidents.transition(session, incident_id=inc.id, action="reopen", now=now, actor=actor)
    incidents.transition(session, incident_id=inc.id, action="close", summary="Resolved", now=now, actor=actor)
    with pytest.raises(TransitionNotAllowed):
        incidents.transition(session, incident_id=inc.id, action="contain", now=now, actor=actor)
    with pytest.raises(incidents.UnableToChangeIncident) as e:
        incidents.add_update(session, incident_id=inc.id, body="late", now=now, actor=actor)
    assert e.value.field == "state"


def test_raising_an_incident_needs_a_flagged_case_a_title_an_active_owner_and_stakeholders(session, now, actor, owner):
    flagged, plain = _case(session, now, actor), _case(session, now, actor, brand=False)
    session.commit()
    before = _counts(session)
    for kw, field in [(dict(case_id=plain.id), "case_id"), (dict(title=" "), "title"), (dict(owner="nobody"), "owner"), (dict(stakeholders=""), "stakeholders"),
                      (dict(stakeholders="not-an-address"), "stakeholders"), (dict(severity=7), "severity")]:
        args = dict(case_id=flagged.id, title="T", owner=owner, stakeholders="pr@opsline.example", severity=2) | kw
        with pytest.raises(incidents.UnableToRaiseIncident) as e:
            incidents.raise_incident(session, now=now, actor=actor, **args)
        assert e.value.field == field
        session.rollback()
    assert _counts(session) == before
    incidents.raise_incident(session, case_id=flagged.id, title="T", owner=owner, stakeholders="pr@opsline.example", now=now, actor=actor)
    with pytest.raises(incidents.UnableToRaiseIncident, match="already in open brand incident"):
        incidents.raise_incident(session, case_id=flagged.id, title="T2", owner=owner, stakeholders="pr@opsline.example", now=now, actor=actor)
