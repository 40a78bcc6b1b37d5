"""Notification pages over HTTP: templates (edit with CSRF, refused unknown variable, preview), the approvals queue
with four eyes, message detail, the account panel with preferences, and permissions on every route."""

from __future__ import annotations

import json

from sqlalchemy import select

from opsline.core.events import Actor
from opsline.customers import service as customers
from opsline.customers.schemas import AccountIn
from opsline.notifications import service
from opsline.notifications.models import ContactPreference, Message, MessageState, MessageTemplate


def _account(factory, now, actor) -> int:  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        acc = customers.create_account(s, data=AccountIn(name="Lerato Molefe", email="lerato@example.co.za", phone="082 111 2222",
                                                          billing_line1="5 Long Street", billing_city="Cape Town",
                                                          billing_postal_code="8001"), now=now, actor=actor)
        s.flush()
        return acc.id


def _template_id(factory, event="case.acknowledged", channel="email") -> int:  # type: ignore[no-untyped-def]
    with factory() as s:
        return s.execute(select(MessageTemplate.id).where(MessageTemplate.event == event, MessageTemplate.channel == channel,
                                                          MessageTemplate.language == "en")).scalar_one()


def test_the_template_list_shows_the_seeded_icasa_acknowledgement(client_as):
    c = client_as("second_line_agent")
    r = c.get("/notifications/templates")
    assert r.status_code == 200 and "case.acknowledged" in r.text and "ICASA" in r.text


def test_a_service_manager_edits_a_template_and_the_preview_shows_the_sample(client_as, factory):
    tid = _template_id(factory)
    c = client_as("service_manager")
    page = c.get(f"/notifications/templates/{tid}")
    assert page.status_code == 200 and "We have received your complaint (CS-000123)" in page.text  # preview with the sample
    r = c.post(f"/notifications/templates/{tid}", data={"subject": "Complaint {{ reference }} received", "body": "Hi {{ account.name }}, ref {{ reference }}.",
                                                       "sample_context": json.dumps({"reference": "CS-1", "account": {"name": "A"}}), "version": "1"},
               follow_redirects=False)
    assert r.status_code == 303
    with factory() as s:
        t = s.get(MessageTemplate, tid)
        assert t.version == 2 and t.subject == "Complaint {{ reference }} received" and t.updated_by == c.username
    pv = c.post(f"/notifications/templates/{tid}/preview", data={"subject": "S {{ reference }}", "body": "B {{ reference }}",
                                                                 "sample_context": '{"reference": "CS-9"}'})
    assert pv.status_code == 200 and "S CS-9" in pv.text and "B CS-9" in pv.text


def test_saving_a_template_with_an_unknown_variable_is_refused_and_nothing_changes(client_as, factory):
    tid = _template_id(factory)
    c = client_as("service_manager")
    r = c.post(f"/notifications/templates/{tid}", data={"subject": "Ref {{ reference }}", "body": "Dear {{ customer_name }}",
                                                       "sample_context": '{"reference": "CS-1"}', "version": "1"})
    assert r.status_code == 422 and "&#39;customer_name&#39; is undefined" in r.text
    pv = c.post(f"/notifications/templates/{tid}/preview", data={"subject": "", "body": "{{ nope }}", "sample_context": "{}"})
    assert "is undefined" in pv.text
    with factory() as s:
        assert s.get(MessageTemplate, tid).version == 1


def test_editing_a_template_without_the_csrf_token_or_the_permission_is_refused(client_as, factory):
    tid = _template_id(factory)
    agent = client_as("second_line_agent")
    r = agent.post(f"/notifications/templates/{tid}", data={"subject": "x", "body": "y", "sample_context": "{}", "version": "1"})
    assert r.status_code == 403
    mgr = client_as("service_manager")
    del mgr.headers["X-CSRF-Token"]
    r = mgr.post(f"/notifications/templates/{tid}", data={"subject": "x", "body": "y", "sample_context": "{}", "version": "1"})
    assert r.status_code == 403
    with factory() as s:
        assert s.get(MessageTemplate, tid).version == 1


def test_the_approvals_queue_lets_a_second_person_approve_but_not_the_writer(client_as, factory, now, actor):
    acc = _account(factory, now, actor)
    writer = client_as("service_manager")
    with factory.begin() as s:
        mid = service.send(s, event="generic.notice", account_id=acc, context={"subject": "Formal reply", "body": "We dispute the claim."},
                           now=now, actor=Actor(name=writer.username, roles=frozenset({"service_manager"})), needs_approval=True,
                           subject_ref="case:77")
    page = writer.get("/notifications/approvals")
    assert page.status_code == 200 and "We dispute the claim." in page.text and "another approver must sign it off" in page.text
    assert 'href="/cases/77"' in page.text  # the case the reply belongs to
    r = writer.post(f"/notifications/messages/{mid}/approve", data={})
    assert r.status_code == 403 and "second person" in r.text
    with factory() as s:
        assert s.get(Message, mid).state == MessageState.AWAITING_APPROVAL
    assert client_as("debtors_clerk").get("/notifications/approvals").status_code == 403
    approver = client_as("debtors_manager")
    r = approver.post(f"/notifications/messages/{mid}/approve", data={"back": "/notifications/approvals"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/notifications/approvals")
    with factory() as s:
        m = s.get(Message, mid)
        assert m.state == MessageState.QUEUED and m.decided_by == approver.username
    detail = approver.get(f"/notifications/messages/{mid}")
    assert detail.status_code == 200 and "We dispute the claim." in detail.text and "queued" in detail.text


def test_the_account_panel_lists_messages_and_saves_preferences(client_as, factory, now, actor):
    acc = _account(factory, now, actor)
    with factory.begin() as s:
        service.send(s, event="case.acknowledged", account_id=acc, context={"reference": "CS-000321", "summary": "No dial tone"}, now=now, actor=actor)
    c = client_as("debtors_clerk")
    panel = c.get(f"/accounts/{acc}/panel/messages")
    assert panel.status_code == 200 and "We have received your complaint (CS-000321)" in panel.text
    allowed = {f"allow:{ch}:{cat}": "on" for ch in ("email", "sms") for cat in ("service", "billing", "collections", "marketing")}
    del allowed["allow:sms:marketing"]
    r = c.post(f"/notifications/accounts/{acc}/preferences", data=allowed | {"reason": "asked on the phone", "language": "en"},
               follow_redirects=False)
    assert r.status_code == 303
    with factory() as s:
        rows = s.execute(select(ContactPreference.channel, ContactPreference.category).where(ContactPreference.opted_out.is_(True))).all()
        assert rows == [("sms", "marketing")]
    timeline = c.get(f"/accounts/{acc}")
    assert "CS-000321" in timeline.text  # the message text is on the account timeline


def test_message_list_filters_and_rejects_an_unknown_state(client_as, factory, now, actor):
    acc = _account(factory, now, actor)
    with factory.begin() as s:
        service.send(s, event="generic.notice", account_id=acc, context={"subject": "", "body": "Your SMS"}, now=now, actor=actor, channel="sms")
    c = client_as("billing_analyst")
    assert "Your SMS" in c.get("/notifications/messages?channel=sms").text
    assert "Your SMS" not in c.get("/notifications/messages?channel=email").text
    assert c.get("/notifications/messages?state=bogus").status_code == 422
    assert c.get("/notifications/messages/999999").status_code == 404


def test_every_notifications_route_declares_a_permission():
    from fastapi.routing import APIRoute

    from opsline.notifications.views import router

    routes = [r for r in router.routes if isinstance(r, APIRoute)]
    assert len(routes) >= 12
    for r in routes:
        names = [d.call.__name__ for d in r.dependant.dependencies for d in [d, *d.dependencies]]
        assert any(n.startswith("require_notifications_") for n in names), r.path


def test_pages_need_sign_in(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        r = c.get("/notifications/messages", follow_redirects=False)
        assert r.status_code in (303, 401)


def test_the_managers_desk_shows_messages_awaiting_approval_and_admin_sees_failures(client_as, factory, now, actor):
    from opsline.notifications.channels import DeliveryFailed
    from opsline.notifications.delivery import deliver_message

    class Refusing:
        def send(self, *, to: str, body: str, reference: str) -> str:
            raise DeliveryFailed("invalid number", permanent=True)

    acc = _account(factory, now, actor)
    with factory.begin() as s:
        service.send(s, event="generic.notice", account_id=acc, context={"subject": "Formal", "body": "Reply"}, now=now,
                     actor=Actor(name="someone", roles=frozenset({"second_line_agent"})), needs_approval=True)
        bad = service.send(s, event="generic.notice", account_id=acc, context={"subject": "", "body": "x"}, now=now, actor=actor, channel="sms")
        deliver_message(s, message_id=bad, now=now, gateway=Refusing())
    page = client_as("debtors_manager").get("/desk/debtors_manager")
    assert page.status_code == 200 and "Messages awaiting approval" in page.text and "/notifications/approvals" in page.text
    admin = client_as("admin").get("/desk/admin")
    assert admin.status_code == 200 and "Failed and undeliverable messages" in admin.text and "state=problem" in admin.text


def test_a_service_manager_changes_quiet_hours_on_the_rules_page_and_a_bad_time_is_refused(client_as, factory):
    from opsline.notifications.models import ContactRule

    with factory() as s:
        rid = s.execute(select(ContactRule.id).where(ContactRule.code == "collections-quiet-hours")).scalar_one()
    assert client_as("debtors_clerk").post(f"/notifications/rules/{rid}", data={"quiet_from": "21:00", "quiet_to": "07:00", "active": "on"}).status_code == 403
    c = client_as("service_manager")
    r = c.post(f"/notifications/rules/{rid}", data={"quiet_from": "21:00", "quiet_to": "7am", "active": "on"})
    assert r.status_code == 422 and "is not a time HH:MM" in r.text
    r = c.post(f"/notifications/rules/{rid}", data={"quiet_from": "21:00", "quiet_to": "07:00", "active": "on"}, follow_redirects=False)
    assert r.status_code == 303
    with factory() as s:
        rule = s.get(ContactRule, rid)
        assert (rule.quiet_from, rule.quiet_to, rule.active) == ("21:00", "07:00", True)
    assert "21:00" in c.get("/notifications/rules").text


def test_a_translation_is_started_from_the_template_page(client_as, factory):
    tid = _template_id(factory)
    c = client_as("service_manager")
    r = c.post(f"/notifications/templates/{tid}/languages", data={"language": "zu"}, follow_redirects=False)
    assert r.status_code == 303
    page = c.get(r.headers["location"])
    assert "case.acknowledged · email · zu" in page.text and "Translation started" in page.text
    again = c.post(f"/notifications/templates/{tid}/languages", data={"language": "zu"})
    assert again.status_code == 409 and "already has a" in again.text


def test_rejecting_without_a_reason_shows_the_error_and_keeps_the_message_waiting(client_as, factory, now, actor):
    acc = _account(factory, now, actor)
    with factory.begin() as s:
        mid = service.send(s, event="generic.notice", account_id=acc, context={"subject": "s", "body": "b"}, now=now,
                           actor=Actor(name="writer", roles=frozenset({"second_line_agent"})), needs_approval=True)
    c = client_as("service_manager")
    r = c.post(f"/notifications/messages/{mid}/reject", data={"reason": ""})
    assert r.status_code == 422 and "a reason is required" in r.text
    r = c.post(f"/notifications/messages/{mid}/reject", data={"reason": "tone"}, follow_redirects=False)
    assert r.status_code == 303
    with factory() as s:
        assert s.get(Message, mid).state == MessageState.REJECTED
