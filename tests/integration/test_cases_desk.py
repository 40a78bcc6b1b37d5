"""Cases on the shared pieces: lead lifecycle, messages through notifications (Legal/Brand hold, ICASA acknowledgement),
the work queue order from the SLA summary, the SLA summary service and its bad input, and the desk home cards."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from opsline.cases import home, queries, service
from opsline.cases.models import SupportCase
from opsline.cases.schemas import CaseIn, LeadIn, NoteIn
from opsline.core.errors import InvalidInput, TransitionNotAllowed
from opsline.core.events import Actor, AuditEvent
from opsline.customers.models import Account, Party
from opsline.notifications.models import Message


def _account(session, now, *, tier="standard", email="thabo@example.test") -> int:
    p = Party(kind="person", name="Thabo Nkosi", created_at=now)
    session.add(p)
    session.flush()
    a = Account(account_number=f"30{p.id:08d}", party_id=p.id, name="Thabo Nkosi", kind="retail", status="active", segment_code="consumer",
                value_tier_code=tier, currency="ZAR", email=email, created_at=now, updated_at=now)
    session.add(a)
    session.flush()
    return a.id


def _open(session, now, actor, **kw) -> SupportCase:
    data = {"category_code": "billing_account", "subject": "Double debit order in October", "channel": "call", "contact_email": "thabo@example.test"} | kw
    return service.open_case(session, data=CaseIn(**data), now=now, actor=actor)


def test_a_lead_moves_through_its_declared_lifecycle_and_refuses_other_moves(session, now, actor):
    c = _open(session, now, actor)
    lead = service.create_lead(session, case_id=c.id, data=LeadIn(product_interest="500 Mbps fibre"), now=now, actor=actor)
    assert service.lead_transition(session, lead_id=lead.id, action="qualify", now=now, actor=actor) == ["win", "lose", "hand_over"]
    with pytest.raises(TransitionNotAllowed, match="cannot qualify lead"):
        service.lead_transition(session, lead_id=lead.id, action="qualify", now=now, actor=actor)
    service.lead_transition(session, lead_id=lead.id, action="win", now=now, actor=actor)
    assert lead.state == "won"
    with pytest.raises(TransitionNotAllowed, match="final"):
        service.set_lead_state(session, lead_id=lead.id, state="lost", now=now, actor=actor)
    assert lead.state == "won"
    audit = session.execute(select(AuditEvent.action).where(AuditEvent.entity_type == "lead").order_by(AuditEvent.id)).scalars().all()
    assert audit == ["qualify", "win"]


@pytest.mark.parametrize("flag", ["litigation_risk", "brand_risk", "contractual_dispute"])
def test_a_note_to_the_customer_on_a_flagged_case_waits_for_legal_sign_off(session, now, actor, flag):
    c = _open(session, now, actor, **{flag: True})
    service.add_note(session, case_id=c.id, data=NoteIn(body="We admit nothing.", visibility="customer"), now=now, actor=actor)
    msg = session.execute(select(Message).where(Message.subject_ref == c.reference, Message.event == "case.note_to_customer")).scalar_one()
    assert msg.needs_approval and msg.state == "awaiting_approval" and "We admit nothing." in msg.body
    assert c.first_response_at is None  # held, so the customer has not been answered yet


def test_a_note_to_the_customer_on_an_ordinary_case_goes_out_at_once_and_is_on_the_timeline(session, now, actor):
    acc = _account(session, now)
    c = _open(session, now, actor, account_id=acc)
    service.add_note(session, case_id=c.id, data=NoteIn(body="Refund approved.", visibility="customer"), now=now, actor=actor)
    msg = session.execute(select(Message).where(Message.subject_ref == c.reference)).scalar_one()
    assert (msg.state, msg.needs_approval, msg.account_id, msg.subject) == ("queued", False, acc, f"[{c.reference}] {c.subject}")
    timeline = session.execute(select(AuditEvent.after).where(AuditEvent.entity_type == "message", AuditEvent.account_id == acc)).scalars().all()
    assert any("Refund approved." in (a or {}).get("body", "") for a in timeline)


def test_a_complaint_is_acknowledged_with_its_reference_when_opened(session, now, actor):
    c = _open(session, now, actor, category_code="complaint", subject="Technician missed two appointments")
    ack = session.execute(select(Message).where(Message.subject_ref == c.reference)).scalar_one()
    assert ack.event == "case.complaint_acknowledged" and c.reference in ack.subject and c.reference in ack.body and "14 days" in ack.body
    assert ack.created_at <= c.opened_at + timedelta(hours=48)
    other = _open(session, now, actor)
    assert session.execute(select(func.count()).select_from(Message).where(Message.subject_ref == other.reference)).scalar_one() == 0


def _summary(session, now, cid, state, *, due_h=None, breached_h=None, risk=None):
    service.record_sla(session, rows=[{"id": cid, "sla_state": state, "sla_due_at": None if due_h is None else now + timedelta(hours=due_h),
                                       "sla_breached_at": None if breached_h is None else now - timedelta(hours=breached_h), "sla_risk": risk}], now=now)


def test_the_work_queue_puts_breached_then_at_risk_then_priority_value_tier_and_due(session, now, actor):
    vip = _account(session, now, tier="vip")
    p2_ok = _open(session, now, actor, priority=2, subject="P2 litigation, on track", litigation_risk=True)
    p3_at_risk = _open(session, now, actor, subject="P3 at risk")
    p3_breached = _open(session, now, actor, subject="P3 breached")
    p3_vip = _open(session, now, actor, account_id=vip, subject="VIP, on track")  # the VIP rule makes it P2
    p3_later = _open(session, now, actor, subject="P3 due later")
    p3_sooner = _open(session, now, actor, subject="P3 due sooner")
    _summary(session, now, p2_ok.id, "ok", due_h=5, risk=0.0)
    _summary(session, now, p3_at_risk.id, "at_risk", due_h=1, risk=0.8)
    _summary(session, now, p3_breached.id, "breached", breached_h=27)
    _summary(session, now, p3_vip.id, "ok", due_h=9, risk=0.1)
    _summary(session, now, p3_later.id, "ok", due_h=8, risk=0.1)
    _summary(session, now, p3_sooner.id, "ok", due_h=2, risk=0.1)
    res = queries.work_queue(session, now=now, user_id=None, tab="all")
    order = [r["subject"] for r in res["items"]]
    assert order[:2] == ["P3 breached", "P3 at risk"]
    assert order.index("P2 litigation, on track") < order.index("P3 due sooner") < order.index("P3 due later")
    assert order.index("VIP, on track") < order.index("P3 due sooner")  # P2 by the VIP rule
    first = res["items"][0]
    assert first["breached"] and first["overdue"] == "1 d 3 h" and first["risk"] == 0.0
    breaching = queries.work_queue(session, now=now, user_id=None, tab="breaching")
    assert [r["subject"] for r in breaching["items"]] == ["P3 breached", "P3 at risk"] and breaching["total"] == 2


@pytest.mark.parametrize("row, message", [
    ({"sla_state": "late"}, "unknown SLA state"),
    ({"sla_state": "ok", "sla_risk": 1.5}, "between 0 and 1"),
])
def test_a_bad_sla_summary_is_refused_and_changes_nothing(session, now, actor, row, message):
    c = _open(session, now, actor)
    session.commit()
    with pytest.raises(InvalidInput, match=message):
        service.record_sla(session, rows=[{"id": c.id} | row], now=now)
    session.rollback()
    assert session.get(SupportCase, c.id).sla_state == c.sla_state


def test_desk_home_cards_show_my_oldest_case_breaches_risk_and_a_chart(session, now, actor):
    me = Actor(name="agent", user_id=None, roles=frozenset({"second_line_agent"}))
    old = _open(session, now - timedelta(days=4), actor, subject="Old")
    _open(session, now, actor, subject="New")
    _summary(session, now, old.id, "breached", breached_h=5)
    cards = {c.title: c for c in home.home(session, now=now, actor=me, tz="UTC")}
    assert cards["Breached, still open"].count == 1 and cards["Breached, still open"].href == "/cases?tab=breaching"
    assert cards["Breached, still open"].hint == "longest overdue 5 h 0 m"
    assert cards["At risk of breaching"].count == 0
    chart = cards["Open cases by age"].chart
    assert chart["type"] == "bar" and sum(chart["data"]["datasets"][0]["data"]) == 2 and chart["data"]["datasets"][0]["data"] == [1, 0, 1, 0, 0]
    assert all(set(c.desks) <= {"second_line_agent", "service_manager"} for c in cards.values())


def test_cases_with_a_message_held_for_sign_off_are_counted_and_listed(session, now, actor):
    held = _open(session, now - timedelta(hours=3), actor, subject="Disputed contract term", contractual_dispute=True)
    _open(session, now, actor, subject="Ordinary")
    service.add_note(session, case_id=held.id, data=NoteIn(body="Our position is ...", visibility="customer"), now=now - timedelta(hours=2), actor=actor)
    me = Actor(name="agent", user_id=None, roles=frozenset({"second_line_agent"}))
    card = {c.title: c for c in home.home(session, now=now, actor=me, tz="UTC")}["Awaiting Legal/Brand sign-off"]
    assert (card.count, card.href, card.hint) == (1, "/cases?tab=all&signoff=1", "oldest held 2 h 0 m")
    listed = queries.work_queue(session, now=now, user_id=None, tab="all", signoff=True)
    assert [r["subject"] for r in listed["items"]] == ["Disputed contract term"]


def test_my_open_cases_can_be_listed_oldest_first(session, now, actor):
    newer = _open(session, now - timedelta(hours=1), actor, subject="Newer")
    _open(session, now - timedelta(days=2), actor, subject="Older")
    _summary(session, now, newer.id, "breached", breached_h=1)
    assert [r["subject"] for r in queries.work_queue(session, now=now, user_id=None, tab="all")["items"]] == ["Newer", "Older"]
    assert [r["subject"] for r in queries.work_queue(session, now=now, user_id=None, tab="all", sort="oldest")["items"]] == ["Older", "Newer"]
