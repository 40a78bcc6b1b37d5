"""Delivery through the job table: email over a real SMTP server (aiosmtpd) that is down and then back, SMS through
the log-only and the generic HTTP gateway, attachments read at delivery time, giving up and retrying by hand."""

from __future__ import annotations

import email
import json
import socket
from datetime import timedelta

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from opsline.config import get_settings
from opsline.core.errors import InvalidInput
from opsline.core.events import Actor, AuditEvent
from opsline.core.jobs import Job, JobState, Worker
from opsline.core.lifecycle import ActionNotPermitted
from opsline.customers import service as customers
from opsline.customers.schemas import AccountIn
from opsline.jobs_registry import build_registry
from opsline.notifications import delivery, service
from opsline.notifications.channels import DeliveryFailed, HttpSmsGateway, LogOnlyGateway
from opsline.notifications.models import Message, MessageAttachment, MessageState


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Sink:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
        self.messages.append((list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 OK"


class _Clock:
    def __init__(self, at) -> None:  # type: ignore[no-untyped-def]
        self.at = at

    def __call__(self):  # type: ignore[no-untyped-def]
        return self.at


@pytest.fixture
def smtp_port(monkeypatch):  # type: ignore[no-untyped-def]
    port = _free_port()
    monkeypatch.setenv("OPSLINE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("OPSLINE_SMTP_PORT", str(port))
    get_settings.cache_clear()
    yield port
    monkeypatch.undo()
    get_settings.cache_clear()


def _account(session, now, actor, **kw) -> int:  # type: ignore[no-untyped-def]
    data = {"name": "Sipho Mokoena", "email": "sipho@example.co.za", "phone": "083 444 1234", "billing_line1": "2 High Street",
            "billing_city": "Durban", "billing_postal_code": "4001"} | kw
    acc = customers.create_account(session, data=AccountIn(**data), now=now, actor=actor)
    session.flush()
    return acc.id


def test_with_the_smtp_server_down_the_message_stays_queued_and_goes_once_the_server_is_back(factory, now, actor, smtp_port):
    sink = _Sink()
    ctl = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    ctl.start()
    ctl.stop()  # the sink was up and is now down
    with factory.begin() as s:
        acc = _account(s, now, actor)
        mid = service.send(s, event="case.acknowledged", account_id=acc, context={"reference": "CS-000900", "summary": "Slow line"},
                           now=now, actor=actor, attachments=[service.Attachment("terms.txt", "text/plain", data=b"Our complaint process")])
    clock = _Clock(now)
    worker = Worker(factory, build_registry(), worker_id="t1", clock=clock)
    assert worker.drain() == 1
    with factory() as s:
        msg = s.get(Message, mid)
        assert msg.state == MessageState.QUEUED and msg.attempts == 1 and "SMTP" in msg.last_error  # stays queued
        assert msg.next_attempt_at == now + timedelta(seconds=2)
    clock.at = now + timedelta(seconds=1)
    assert worker.drain() == 0  # the retry is not due yet
    clock.at = now + timedelta(seconds=3)
    assert worker.drain() == 1  # still down: a second failure, backing off
    with factory() as s:
        msg = s.get(Message, mid)
        assert msg.state == MessageState.QUEUED and msg.attempts == 2 and msg.next_attempt_at == clock.at + timedelta(seconds=4)
    assert sink.messages == []

    ctl = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    ctl.start()  # the sink is back
    try:
        clock.at = now + timedelta(seconds=10)
        assert worker.drain() == 1
        assert worker.drain() == 0
    finally:
        ctl.stop()
    assert len(sink.messages) == 1  # sent exactly once
    rcpt, raw = sink.messages[0]
    assert rcpt == ["sipho@example.co.za"]
    parsed = email.message_from_bytes(raw)
    assert parsed["Subject"] == "We have received your complaint (CS-000900)"
    parts = {p.get_filename(): p.get_payload(decode=True) for p in parsed.walk() if p.get_filename()}
    assert parts == {"terms.txt": b"Our complaint process"}
    with factory() as s:
        msg = s.get(Message, mid)
        assert msg.state == MessageState.SENT and msg.attempts == 3 and msg.sent_at == clock.at and msg.external_id
        actions = [a for (a,) in s.execute(select(AuditEvent.action).where(AuditEvent.entity_type == "message",
                                                                             AuditEvent.entity_id == str(mid)).order_by(AuditEvent.id))]
        assert actions == ["queue", "attempt_failed", "attempt_failed", "deliver"]
        assert s.execute(select(Job).where(Job.kind == "notifications.deliver", Job.state != JobState.DONE.value)).first() is None


def test_an_attachment_by_reference_is_read_when_the_message_goes(factory, now, actor, smtp_port):
    sink = _Sink()
    with factory.begin() as s:
        acc = _account(s, now, actor)
        # a row with a binary column to point at: another message's attachment
        first = service.send(s, event="generic.notice", account_id=acc, context={"subject": "a", "body": "b"}, now=now, actor=actor,
                             attachments=[service.Attachment("v1.pdf", "application/pdf", data=b"%PDF-draft")])
        att_id = s.execute(select(MessageAttachment.id).where(MessageAttachment.message_id == first)).scalar_one()
        mid = service.send(s, event="generic.notice", account_id=acc, context={"subject": "Invoice", "body": "Attached"}, now=now,
                           actor=actor, attachments=[service.Attachment("invoice.pdf", "application/pdf", ref=("message_attachment", "data", att_id))])
    with factory.begin() as s:  # the document changes after the message was written
        s.get(MessageAttachment, att_id).data = b"%PDF-final"
    ctl = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    ctl.start()
    try:
        Worker(factory, build_registry(), worker_id="t2", clock=lambda: now).drain()
    finally:
        ctl.stop()
    by_subject = {email.message_from_bytes(raw)["Subject"]: email.message_from_bytes(raw) for _, raw in sink.messages}
    files = {p.get_filename(): p.get_payload(decode=True) for p in by_subject["Invoice"].walk() if p.get_filename()}
    assert files == {"invoice.pdf": b"%PDF-final"}
    with factory() as s:
        assert s.get(Message, mid).state == MessageState.SENT


def test_an_attachment_reference_to_an_unknown_table_is_refused(session, now, actor):
    acc = _account(session, now, actor)
    with pytest.raises(InvalidInput) as err:
        service.send(session, event="generic.notice", account_id=acc, context={"subject": "a", "body": "b"}, now=now, actor=actor,
                     attachments=[service.Attachment("x.pdf", "application/pdf", ref=("users; drop table", "pdf", 1))])
    assert "names no known table column" in str(err.value)
    assert session.execute(select(Message)).first() is None


def test_an_sms_goes_through_the_log_only_gateway_by_default(session, now, actor, caplog):
    acc = _account(session, now, actor)
    mid = service.send(session, event="generic.notice", account_id=acc, context={"subject": "", "body": "Your router ships today"},
                       now=now, actor=actor, channel="sms")
    with caplog.at_level("INFO", logger="opsline.notifications"):
        res = delivery.deliver_message(session, message_id=mid, now=now, gateway=LogOnlyGateway())
    msg = session.get(Message, mid)
    assert res["sent_to"] == "+27834441234" and msg.state == MessageState.SENT and msg.external_id == f"log:msg{mid}"
    assert "Your router ships today" in caplog.text


def test_the_http_sms_gateway_posts_with_the_token_and_a_gateway_error_is_retried(session, now, actor):
    acc = _account(session, now, actor)
    mid = service.send(session, event="generic.notice", account_id=acc, context={"subject": "", "body": "Payment received"},
                       now=now, actor=actor, channel="sms")
    seen: list[httpx.Request] = []
    answers = iter([httpx.Response(503, text="busy"), httpx.Response(200, json={"id": "gw-123"})])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(answers)

    gw = HttpSmsGateway(url="https://sms.example/send", token="s3cret", transport=httpx.MockTransport(handler))
    res = delivery.deliver_message(session, message_id=mid, now=now, gateway=gw)
    msg = session.get(Message, mid)
    assert "503" in res["retrying"] and msg.state == MessageState.QUEUED and msg.next_attempt_at == now + timedelta(seconds=2)
    later = now + timedelta(seconds=2)
    delivery.deliver_message(session, message_id=mid, now=later, gateway=gw)
    assert msg.state == MessageState.SENT and msg.external_id == "gw-123"
    assert seen[-1].headers["authorization"] == "Bearer s3cret"
    assert json.loads(seen[-1].content) == {"to": "+27834441234", "body": "Payment received", "reference": f"msg{mid}"}


def test_the_http_gateway_without_a_url_is_a_configuration_error():
    with pytest.raises(InvalidInput) as err:
        HttpSmsGateway(url="", token="x")
    assert "OPSLINE_SMS_GATEWAY_URL" in str(err.value)


class _Down:
    def send(self, *, to: str, body: str, reference: str) -> str:
        raise DeliveryFailed("gateway unreachable")


def test_a_gateway_refusing_the_number_makes_the_message_undeliverable_at_once(session, now, actor):
    acc = _account(session, now, actor)
    mid = service.send(session, event="generic.notice", account_id=acc, context={"subject": "", "body": "b"}, now=now, actor=actor, channel="sms")
    gw = HttpSmsGateway(url="https://sms.example/send", token="t", transport=httpx.MockTransport(lambda r: httpx.Response(400, text="invalid number")))
    res = delivery.deliver_message(session, message_id=mid, now=now, gateway=gw)
    msg = session.get(Message, mid)
    assert "invalid number" in res["undeliverable"] and msg.state == MessageState.UNDELIVERABLE and msg.attempts == 1
    assert session.execute(select(Job).where(Job.kind == "notifications.deliver", Job.run_at > now)).first() is None


def test_after_the_last_attempt_a_message_has_failed_and_an_operator_can_retry_it(session, now, actor):
    acc = _account(session, now, actor)
    mid = service.send(session, event="generic.notice", account_id=acc, context={"subject": "", "body": "b"}, now=now, actor=actor, channel="sms")
    t = now
    for _ in range(3):
        delivery.deliver_message(session, message_id=mid, now=t, gateway=_Down(), max_attempts=3)
        t += timedelta(hours=1)
    msg = session.get(Message, mid)
    assert msg.state == MessageState.FAILED and msg.attempts == 3 and msg.next_attempt_at is None
    clerk = Actor(name="clerk", roles=frozenset({"debtors_clerk"}))
    with pytest.raises(ActionNotPermitted):
        service.retry(session, message_id=mid, now=t, actor=clerk)
    service.retry(session, message_id=mid, now=t, actor=Actor(name="boss", roles=frozenset({"service_manager"})))
    assert msg.state == MessageState.QUEUED and msg.attempts == 0
    delivery.deliver_message(session, message_id=mid, now=t, gateway=LogOnlyGateway())
    assert msg.state == MessageState.SENT


def test_a_queued_message_is_suppressed_if_the_account_opts_out_before_it_goes(session, now, actor):
    acc = _account(session, now, actor)
    mid = service.send(session, event="generic.notice", account_id=acc, context={"subject": "", "body": "Sale!"}, now=now, actor=actor,
                       channel="sms", category="marketing")
    service.set_preference(session, account_id=acc, channel="sms", category="marketing", opted_out=True, now=now, actor=actor)
    res = delivery.deliver_message(session, message_id=mid, now=now + timedelta(hours=1), gateway=LogOnlyGateway())
    assert res == {"suppressed": "opted out"}
    assert session.get(Message, mid).state == MessageState.SUPPRESSED


class _NoSuchMailbox(_Sink):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd hook
        return "550 5.1.1 no such mailbox"


def test_a_mailbox_the_smtp_server_refuses_for_good_is_undeliverable_not_retried(factory, now, actor, smtp_port):
    with factory.begin() as s:
        acc = _account(s, now, actor, email="nobody@example.co.za")
        mid = service.send(s, event="generic.notice", account_id=acc, context={"subject": "s", "body": "b"}, now=now, actor=actor)
    sink = _NoSuchMailbox()
    ctl = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    ctl.start()
    try:
        Worker(factory, build_registry(), worker_id="t3", clock=lambda: now).drain()
    finally:
        ctl.stop()
    with factory() as s:
        msg = s.get(Message, mid)
        assert msg.state == MessageState.UNDELIVERABLE and "550" in msg.last_error and sink.messages == []
