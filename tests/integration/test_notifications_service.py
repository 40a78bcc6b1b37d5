"""Notifications service: rendering from stored templates, strict variables, opt-outs, caps and quiet hours,
approval with four eyes, and the account timeline entry with the message text."""

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from opsline.core.events import Actor, AuditEvent
from opsline.core.jobs import Job
from opsline.core.errors import InvalidInput
from opsline.core.lifecycle import ActionNotPermitted, FourEyesRequired, ReasonRequired
from opsline.core.localtime import zone
from opsline.customers import service as customers
from opsline.customers.schemas import AccountIn
from opsline.notifications import service
from opsline.notifications.models import Message, MessageState

TZ = zone("Africa/Johannesburg")


def _account(session, now, actor, **kw):  # type: ignore[no-untyped-def]
    data = {"name": "Thandi Nkosi", "email": "thandi@example.co.za", "phone": "082 555 1234", "billing_line1": "1 Main Road",
            "billing_city": "Johannesburg", "billing_postal_code": "2196"} | kw
    acc = customers.create_account(session, data=AccountIn(**data), now=now, actor=actor)
    session.flush()
    return acc


def _count(session, model) -> int:  # type: ignore[no-untyped-def]
    return session.execute(select(func.count()).select_from(model)).scalar_one()


def test_acknowledgement_is_rendered_from_the_stored_template_and_queued_with_a_delivery_job(session, now, actor):
    acc = _account(session, now, actor)
    mid = service.send(session, event="case.acknowledged", account_id=acc.id, context={"reference": "CS-000042", "summary": "No sync"},
                       now=now, actor=actor, subject_ref="case:42", tz=TZ)
    msg = session.get(Message, mid)
    assert msg.state == MessageState.QUEUED and msg.to_addr == "thandi@example.co.za"
    assert msg.subject == "We have received your complaint (CS-000042)"
    assert "Dear Thandi Nkosi" in msg.body and "CS-000042" in msg.body and "14 days" in msg.body
    job = session.execute(select(Job).where(Job.kind == "notifications.deliver")).scalar_one()
    assert job.payload == {"message_id": mid} and job.run_at == now


def test_a_template_referring_to_an_unknown_variable_is_a_clear_error_and_nothing_is_written(session, now, actor):
    acc = _account(session, now, actor)
    before = (_count(session, Message), _count(session, Job), _count(session, AuditEvent))
    with pytest.raises(service.TemplateRenderError) as err:
        service.send(session, event="case.acknowledged", account_id=acc.id, context={"summary": "no reference given"}, now=now, actor=actor)
    assert "'reference' is undefined" in err.value.detail and err.value.status == 422
    assert (_count(session, Message), _count(session, Job), _count(session, AuditEvent)) == before


def test_the_account_language_picks_the_template_and_an_unknown_language_falls_back_to_english(session, now, actor):
    acc = _account(session, now, actor)
    service.ensure_template(session, event="generic.notice", channel="email", language="af", subject="{{ subject }}",
                            body="Beste {{ account.name }},\n\n{{ body }}\n", now=now)
    service.set_language(session, account_id=acc.id, language="af", now=now, actor=actor)
    af = session.get(Message, service.send(session, event="generic.notice", account_id=acc.id, context={"subject": "S", "body": "B"},
                                           now=now, actor=actor))
    assert af.language == "af" and af.body.startswith("Beste Thandi Nkosi")
    service.set_language(session, account_id=acc.id, language="zu", now=now, actor=actor)
    en = session.get(Message, service.send(session, event="generic.notice", account_id=acc.id, context={"subject": "S", "body": "B"},
                                           now=now, actor=actor))
    assert en.language == "en" and en.body.startswith("Dear Thandi Nkosi")


def test_an_event_without_a_template_is_a_clear_error_and_nothing_is_written(session, now, actor):
    acc = _account(session, now, actor)
    with pytest.raises(service.NoTemplate) as err:
        service.send(session, event="no.such.event", account_id=acc.id, context={}, now=now, actor=actor)
    assert "no.such.event" in err.value.detail
    assert _count(session, Message) == 0


def test_an_sms_to_an_account_that_opted_out_is_refused_and_nothing_is_sent(session, now, actor):
    acc = _account(session, now, actor)
    service.set_preference(session, account_id=acc.id, channel="sms", category="collections", opted_out=True, now=now, actor=actor,
                           reason="customer asked")
    before = (_count(session, Message), _count(session, Job))
    with pytest.raises(service.RecipientOptedOut) as err:
        service.send(session, event="generic.notice", account_id=acc.id, context={"subject": "x", "body": "Please pay"}, now=now,
                     actor=actor, channel="sms", category="collections")
    assert err.value.status == 409 and "opted out of collections messages by sms" in err.value.detail
    assert (_count(session, Message), _count(session, Job)) == before
    # the opt-out is per channel and category: an email about collections, and a service SMS, still go
    service.send(session, event="generic.notice", account_id=acc.id, context={"subject": "x", "body": "y"}, now=now, actor=actor,
                 channel="email", category="collections")
    sms = session.get(Message, service.send(session, event="generic.notice", account_id=acc.id, context={"subject": "x", "body": "Outage fixed"},
                                            now=now, actor=actor, channel="sms", category="service"))
    assert sms.to_addr == "+27825551234" and sms.body == "Outage fixed"
    prefs = service.preferences(session, account_id=acc.id)
    row = next(r for r in prefs["rows"] if r["category"] == "collections")
    assert row["channels"] == {"email": True, "sms": False}


def test_unknown_channel_or_category_is_refused(session, now, actor):
    acc = _account(session, now, actor)
    with pytest.raises(InvalidInput):
        service.send(session, event="generic.notice", account_id=acc.id, context={}, now=now, actor=actor, channel="fax")
    with pytest.raises(InvalidInput):
        service.set_preference(session, account_id=acc.id, channel="sms", category="gossip", opted_out=True, now=now, actor=actor)
    assert _count(session, Message) == 0


def test_an_account_without_an_address_gets_a_visible_suppressed_message_not_an_error(session, now, actor):
    acc = _account(session, now, actor, email=None)
    msg = session.get(Message, service.send(session, event="generic.notice", account_id=acc.id, context={"subject": "s", "body": "b"},
                                            now=now, actor=actor))
    assert msg.state == MessageState.SUPPRESSED and "no email address" in msg.last_error
    assert _count(session, Job) == 0


def test_a_repeated_idempotency_key_returns_the_first_message(session, now, actor):
    acc = _account(session, now, actor)
    kw = dict(event="case.acknowledged", account_id=acc.id, context={"reference": "CS-1", "summary": "s"}, now=now, actor=actor,
              idempotency_key="case:1:ack")
    first = service.send(session, **kw)
    assert service.send(session, **kw) == first
    assert _count(session, Message) == 1


def test_a_collections_message_in_quiet_hours_is_scheduled_for_08_00_operator_time(session, now, actor):
    acc = _account(session, now, actor)
    evening = datetime(2026, 11, 23, 19, 30, tzinfo=timezone.utc)  # 21:30 in Johannesburg
    mid = service.send(session, event="generic.notice", account_id=acc.id, context={"subject": "Arrears", "body": "Please pay"},
                       now=evening, actor=actor, category="collections", tz=TZ)
    msg = session.get(Message, mid)
    assert msg.state == MessageState.QUEUED
    assert msg.run_at == datetime(2026, 11, 24, 6, 0, tzinfo=timezone.utc)  # 08:00 next morning
    assert "quiet hours 20:00-08:00" in msg.schedule_note
    job = session.execute(select(Job).where(Job.kind == "notifications.deliver")).scalar_one()
    assert job.run_at == msg.run_at
    session.flush()
    entry = session.execute(select(AuditEvent).where(AuditEvent.entity_type == "message", AuditEvent.entity_id == str(mid))).scalar_one()
    assert entry.after["scheduled_for"] == "2026-11-24T06:00:00+00:00" and "quiet hours" in entry.after["schedule_note"]  # visible
    # a service message is not held by the collections rules
    svc = session.get(Message, service.send(session, event="generic.notice", account_id=acc.id, context={"subject": "s", "body": "b"},
                                            now=evening, actor=actor, tz=TZ))
    assert svc.run_at == evening and svc.schedule_note is None


def test_a_fourth_collections_contact_in_a_week_is_scheduled_when_the_cap_allows_it(session, now, actor):
    acc = _account(session, now, actor)
    ctx = {"subject": "Arrears", "body": "Please pay"}
    times = [now + timedelta(days=d) for d in (0, 1, 2)]  # Mon, Tue, Wed 09:00 local
    for t in times:
        m = session.get(Message, service.send(session, event="generic.notice", account_id=acc.id, context=ctx, now=t, actor=actor,
                                              category="collections", tz=TZ))
        assert m.run_at == t
    fourth = session.get(Message, service.send(session, event="generic.notice", account_id=acc.id, context=ctx, now=times[2] + timedelta(hours=1),
                                               actor=actor, category="collections", tz=TZ))
    assert fourth.state == MessageState.QUEUED  # scheduled, not dropped
    assert fourth.run_at == times[0] + timedelta(days=7)
    assert "contact cap 3 per 7 d" in fourth.schedule_note
    # another account is not affected by this account's contacts
    other = _account(session, now, actor, name="Other Person", email="other@example.co.za", phone="082 555 9999")
    o = session.get(Message, service.send(session, event="generic.notice", account_id=other.id, context=ctx, now=times[2], actor=actor,
                                          category="collections", tz=TZ))
    assert o.run_at == times[2]


def test_a_held_message_needs_a_second_person_with_the_approve_permission(session, now, actor):
    acc = _account(session, now, actor)
    writer = Actor(name="agent.smith", roles=frozenset({"service_manager"}))
    mid = service.send(session, event="generic.notice", account_id=acc.id, context={"subject": "Your complaint", "body": "Formal reply"},
                       now=now, actor=writer, needs_approval=True, subject_ref="case:7")
    msg = session.get(Message, mid)
    assert msg.state == MessageState.AWAITING_APPROVAL
    assert _count(session, Job) == 0  # nothing goes before sign-off
    with pytest.raises(FourEyesRequired):
        service.approve(session, message_id=mid, now=now, actor=writer, tz=TZ)
    assert msg.state == MessageState.AWAITING_APPROVAL and _count(session, Job) == 0
    clerk = Actor(name="clerk", roles=frozenset({"debtors_clerk"}))
    with pytest.raises(ActionNotPermitted):
        service.approve(session, message_id=mid, now=now, actor=clerk, tz=TZ)
    legal = Actor(name="legal.lee", roles=frozenset({"debtors_manager"}))
    later = now + timedelta(hours=2)
    service.approve(session, message_id=mid, now=later, actor=legal, tz=TZ)
    assert msg.state == MessageState.QUEUED and msg.decided_by == "legal.lee" and msg.run_at == later
    assert session.execute(select(Job.run_at).where(Job.kind == "notifications.deliver")).scalar_one() == later


def test_rejecting_a_held_message_needs_a_reason_and_it_is_never_sent(session, now, actor):
    acc = _account(session, now, actor)
    mid = service.send(session, event="generic.notice", account_id=acc.id, context={"subject": "s", "body": "b"}, now=now,
                       actor=Actor(name="writer", roles=frozenset({"second_line_agent"})), needs_approval=True, subject_ref="case:9")
    legal = Actor(name="legal", roles=frozenset({"service_manager"}))
    with pytest.raises(ReasonRequired):
        service.reject(session, message_id=mid, reason=" ", now=now, actor=legal)
    assert session.get(Message, mid).state == MessageState.AWAITING_APPROVAL
    service.reject(session, message_id=mid, reason="admits liability", now=now, actor=legal)
    assert session.get(Message, mid).state == MessageState.REJECTED and _count(session, Job) == 0
    session.flush()
    ev = session.execute(select(AuditEvent).where(AuditEvent.entity_type == "message", AuditEvent.action == "reject")).scalar_one()
    # the case the reply belongs to can react to `message.rejected`: the payload says what the message was about
    assert ev.reason == "admits liability" and ev.after["subject_ref"] == "case:9" and ev.after["state"] == "rejected"


def test_every_message_is_on_the_account_timeline_with_its_rendered_text(session, now, actor):
    from opsline.core import events

    acc = _account(session, now, actor)
    mid = service.send(session, event="case.acknowledged", account_id=acc.id, context={"reference": "CS-000777", "summary": "Router dead"},
                       now=now, actor=actor)
    session.flush()
    entry = next(e for e in events.account_timeline(session, account_id=acc.id) if e["entity_type"] == "message")
    assert entry["entity_id"] == str(mid) and entry["action"] == "queue"
    assert entry["after"]["subject"] == "We have received your complaint (CS-000777)"
    assert "Router dead" in entry["after"]["body"] and entry["after"]["to"] == "thandi@example.co.za"


def test_home_cards_count_messages_awaiting_approval_and_failures(session, now, actor):
    from opsline.notifications.delivery import deliver_message
    from opsline.notifications.channels import DeliveryFailed
    from opsline.notifications.queries import home_cards

    class Down:
        def send(self, *, to: str, body: str, reference: str) -> str:
            raise DeliveryFailed("down")

    acc = _account(session, now, actor)
    writer = Actor(name="w", roles=frozenset({"second_line_agent"}))
    service.send(session, event="generic.notice", account_id=acc.id, context={"subject": "a", "body": "b"}, now=now - timedelta(hours=30),
                 actor=writer, needs_approval=True)
    bad = service.send(session, event="generic.notice", account_id=acc.id, context={"subject": "", "body": "b"}, now=now, actor=actor, channel="sms")
    deliver_message(session, message_id=bad, now=now, gateway=Down(), max_attempts=1)
    cards = {c.title: c for c in home_cards(session, now=now, actor=actor, tz=TZ)}
    waiting = cards["Messages awaiting approval"]
    assert waiting.count == 1 and waiting.hint == "oldest 1 d 6 h" and waiting.href == "/notifications/approvals"
    assert set(waiting.desks) == {"service_manager", "debtors_manager"}
    failed = cards["Failed and undeliverable messages"]
    assert failed.count == 1 and failed.tone == "danger" and failed.desks == ("admin",) and failed.hint.startswith("1 failed")
    assert failed.href == "/notifications/messages?state=problem" and failed.chart["type"] == "bar"


def test_an_edited_template_must_render_with_its_sample_and_a_stale_edit_is_refused(session, now, actor):
    from opsline.core.errors import StaleVersion
    from opsline.notifications.models import MessageTemplate

    tpl = session.execute(select(MessageTemplate).where(MessageTemplate.event == "case.acknowledged", MessageTemplate.channel == "sms")).scalar_one()
    with pytest.raises(service.TemplateRenderError):
        service.update_template(session, template_id=tpl.id, subject="", body="Ref {{ referense }}", sample_context=None, version=1, now=now, actor=actor)
    with pytest.raises(service.TemplateRenderError):
        service.update_template(session, template_id=tpl.id, subject="", body="Ref {{ reference ", sample_context=None, version=1, now=now, actor=actor)
    assert tpl.version == 1 and "{{ reference }}" in tpl.body
    service.update_template(session, template_id=tpl.id, subject="", body="Ref {{ reference }} logged.", sample_context=None, version=1, now=now, actor=actor)
    assert tpl.version == 2
    with pytest.raises(StaleVersion):
        service.update_template(session, template_id=tpl.id, subject="", body="x", sample_context=None, version=1, now=now, actor=actor)
    assert service.preview(session, template_id=tpl.id)["body"] == "Ref CS-000123 logged."


def test_templates_cannot_reach_python_internals(session, now, actor):
    service.ensure_template(session, event="test.evil", channel="sms", language="en", subject="",
                            body="{{ account.__class__.__mro__[1].__subclasses__() }}", now=now)
    acc = _account(session, now, actor)
    with pytest.raises(service.TemplateRenderError):
        service.send(session, event="test.evil", account_id=acc.id, context={}, now=now, actor=actor, channel="sms")


def test_an_operator_tunes_a_cap_and_bad_rule_values_are_refused(session, now, actor):
    from opsline.notifications.models import ContactRule

    rule = session.execute(select(ContactRule).where(ContactRule.code == "collections-weekly-cap")).scalar_one()
    for bad in (dict(max_contacts=2, period_days=None, quiet_from=None, quiet_to=None),
                dict(max_contacts=0, period_days=7, quiet_from=None, quiet_to=None),
                dict(max_contacts=2, period_days=7, quiet_from="25:00", quiet_to="08:00"),
                dict(max_contacts=2, period_days=7, quiet_from="8", quiet_to="09:00"),
                dict(max_contacts=2, period_days=7, quiet_from="20:00", quiet_to=None),
                dict(max_contacts=None, period_days=None, quiet_from=None, quiet_to=None)):
        with pytest.raises(InvalidInput):
            service.update_rule(session, rule_id=rule.id, active=True, now=now, actor=actor, **bad)
        assert (rule.max_contacts, rule.period_days, rule.quiet_from) == (3, 7, None)
    service.update_rule(session, rule_id=rule.id, max_contacts=1, period_days=7, quiet_from=None, quiet_to=None, active=True, now=now, actor=actor)
    acc = _account(session, now, actor)
    ctx = {"subject": "Arrears", "body": "Please pay"}
    service.send(session, event="generic.notice", account_id=acc.id, context=ctx, now=now, actor=actor, category="collections", tz=TZ)
    second = session.get(Message, service.send(session, event="generic.notice", account_id=acc.id, context=ctx, now=now + timedelta(hours=1),
                                               actor=actor, category="collections", tz=TZ))
    assert second.run_at == now + timedelta(days=7)
    edit = session.execute(select(AuditEvent).where(AuditEvent.entity_type == "contact_rule")).scalar_one()
    assert edit.before == {"max_contacts": 3} and edit.after == {"max_contacts": 1}


def test_a_translation_starts_as_a_copy_and_a_second_copy_for_the_same_language_is_refused(session, now, actor):
    from opsline.core.errors import Conflict
    from opsline.notifications.models import MessageTemplate

    tpl = session.execute(select(MessageTemplate).where(MessageTemplate.event == "case.acknowledged", MessageTemplate.channel == "email")).scalar_one()
    new_id = service.add_language(session, template_id=tpl.id, language="AF", now=now, actor=actor)
    new = session.get(MessageTemplate, new_id)
    assert (new.language, new.body, new.version) == ("af", tpl.body, 1)
    with pytest.raises(Conflict):
        service.add_language(session, template_id=tpl.id, language="af", now=now, actor=actor)
    with pytest.raises(InvalidInput):
        service.add_language(session, template_id=tpl.id, language="a1", now=now, actor=actor)


def test_a_batch_sender_may_ask_for_a_suppressed_record_instead_of_the_opt_out_error(session, now, actor):
    acc = _account(session, now, actor)
    service.set_preference(session, account_id=acc.id, channel="email", category="collections", opted_out=True, now=now, actor=actor)
    mid = service.send(session, event="generic.notice", account_id=acc.id, context={"subject": "Arrears", "body": "Please pay"}, now=now,
                       actor=actor, category="collections", on_opt_out="suppress")
    msg = session.get(Message, mid)
    assert msg.state == MessageState.SUPPRESSED and "opted out of collections messages by email" in msg.last_error
    assert _count(session, Job) == 0
    session.flush()
    entry = session.execute(select(AuditEvent).where(AuditEvent.entity_type == "message", AuditEvent.entity_id == str(mid))).scalar_one()
    assert entry.action == "suppress" and "opted out" in entry.after["why"]


def test_previewing_a_message_shows_text_schedule_and_opt_out_and_writes_nothing(session, now, actor):
    acc = _account(session, now, actor)
    service.set_preference(session, account_id=acc.id, channel="sms", category="collections", opted_out=True, now=now, actor=actor)
    session.flush()
    before = (_count(session, Message), _count(session, Job), _count(session, AuditEvent))
    evening = datetime(2026, 11, 23, 19, 0, tzinfo=timezone.utc)
    pv = service.preview_message(session, event="generic.notice", account_id=acc.id, context={"subject": "", "body": "Please pay"},
                                 now=evening, channel="sms", category="collections", tz=TZ)
    assert pv["body"] == "Please pay" and pv["to"] == "+27825551234" and pv["opted_out"] is True
    assert pv["run_at"] == datetime(2026, 11, 24, 6, 0, tzinfo=timezone.utc) and "quiet hours" in pv["schedule_note"]
    with pytest.raises(service.TemplateRenderError):
        service.preview_message(session, event="case.acknowledged", account_id=acc.id, context={}, now=now)
    assert (_count(session, Message), _count(session, Job), _count(session, AuditEvent)) == before
