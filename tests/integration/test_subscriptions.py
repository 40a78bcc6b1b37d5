"""Scheduled report subscriptions: a debtors manager subscribes two people to the daily Top 60 and they receive it,
attached, in a real SMTP sink (aiosmtpd); a repeat of the slot sends nothing; weekly and monthly wait for their day;
bad input (an invalid address, an unknown report, a report the user may not read) writes nothing; an owner who lost
the permission gets a skipped slot; the PDF is a PDF."""

from __future__ import annotations

import email
import email.policy
import io
import socket
import zipfile
from datetime import datetime, timezone

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from opsline.config import get_settings
from opsline.core.errors import PermissionDenied
from opsline.core.events import Actor
from opsline.core.localtime import zone
from opsline.notifications import delivery
from opsline.notifications.models import Message
from opsline.subscriptions import service
from opsline.subscriptions.models import ReportDelivery, ReportSubscription
from opsline.users.models import User

from debtors_reports_helpers import build_book

TZ = zone("Africa/Johannesburg")
MONDAY_6 = datetime(2026, 11, 23, 4, 0, tzinfo=timezone.utc)  # 06:00 in Johannesburg, Monday 23 November
MANAGER = Actor(name="naledi", roles=frozenset({"debtors_manager"}))


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


@pytest.fixture
def smtp(monkeypatch):  # type: ignore[no-untyped-def]
    port = _free_port()
    monkeypatch.setenv("OPSLINE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("OPSLINE_SMTP_PORT", str(port))
    get_settings.cache_clear()
    sink = _Sink()
    ctl = Controller(sink, hostname="127.0.0.1", port=port)
    ctl.start()
    yield sink
    ctl.stop()
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def manager(session, make_user):  # type: ignore[no-untyped-def]
    make_user("debtors_manager", username="naledi")
    return MANAGER


def _deliver_all(session, now) -> int:  # type: ignore[no-untyped-def]
    ids = session.execute(select(Message.id).where(Message.state == "queued").order_by(Message.id)).scalars().all()
    for mid in ids:
        delivery.deliver_message(session, message_id=mid, now=now)
    return len(ids)


def test_a_subscriber_to_the_top_60_receives_it_as_an_attachment_in_the_smtp_sink_once_per_slot(session, smtp, manager):
    book = build_book(session)
    sid = service.subscribe(session, report_key="debtors.top60", frequency="daily", fmt="xlsx", recipients="cfo@example.co.za;\n Ops@Example.co.za",
                            now=MONDAY_6, actor=manager)
    out = service.send_due(session, now=MONDAY_6, tz=TZ)
    assert out == {"sent": 1, "skipped": 0, "already": 0, "messages": 2}
    assert _deliver_all(session, MONDAY_6) == 2
    assert sorted(r[0][0] for r in smtp.messages) == ["Ops@example.co.za", "cfo@example.co.za"]
    mail = email.message_from_bytes(smtp.messages[0][1], policy=email.policy.default)
    assert mail["Subject"] == "Top 60 debtors — 2026-11-23"
    files = [p for p in mail.walk() if p.get_filename()]
    assert [f.get_filename() for f in files] == ["debtors-top60-2026-11-23.xlsx"]
    book_xml = zipfile.ZipFile(io.BytesIO(files[0].get_payload(decode=True)))
    strings = book_xml.read("xl/sharedStrings.xml").decode()
    assert "Acme Logistics (Pty) Ltd" in strings and "Thabo Nkosi" in strings
    assert book is not None
    # the same slot again (a retried job, a second worker): nothing more is sent
    assert service.send_due(session, now=MONDAY_6.replace(minute=30), tz=TZ)["already"] == 1
    assert session.execute(select(func.count()).select_from(Message)).scalar_one() == 2
    assert session.get(ReportSubscription, sid).last_sent_at == MONDAY_6


def test_weekly_goes_on_mondays_and_monthly_on_the_first_only(session, manager):
    service.subscribe(session, report_key="debtors.aged", frequency="weekly", fmt="xlsx", recipients="a@example.co.za", now=MONDAY_6, actor=manager)
    service.subscribe(session, report_key="debtors.aged", frequency="monthly", fmt="xlsx", recipients="b@example.co.za", now=MONDAY_6, actor=manager)
    assert service.send_due(session, now=MONDAY_6, tz=TZ)["sent"] == 1  # Monday: the weekly one
    tuesday = datetime(2026, 11, 24, 4, 0, tzinfo=timezone.utc)
    assert service.send_due(session, now=tuesday, tz=TZ)["sent"] == 0
    first = datetime(2026, 12, 1, 4, 0, tzinfo=timezone.utc)
    assert service.send_due(session, now=first, tz=TZ)["sent"] == 1  # 1 December, a Tuesday: the monthly one
    assert service.slot_for("weekly", MONDAY_6.date()) == "2026-W48"


@pytest.mark.parametrize("kw,field", [
    ({"recipients": "cfo@example.co.za, not-an-address"}, "recipients"),
    ({"recipients": "   "}, "recipients"),
    ({"report_key": "debtors.everything"}, "report"),
    ({"frequency": "hourly"}, "frequency"),
    ({"fmt": "docx"}, "format"),
])
def test_bad_input_is_refused_with_its_field_and_nothing_is_written(session, manager, kw, field):
    args = {"report_key": "debtors.top60", "frequency": "daily", "fmt": "xlsx", "recipients": "cfo@example.co.za"} | kw
    with pytest.raises(service.UnableToSubscribe) as e:
        service.subscribe(session, now=MONDAY_6, actor=manager, **args)
    assert e.value.field == field
    if field == "recipients" and "not-an-address" in args["recipients"]:
        assert "'not-an-address' is not an email address" in str(e.value)
    assert session.execute(select(func.count()).select_from(ReportSubscription)).scalar_one() == 0


def test_a_user_cannot_subscribe_to_a_report_they_may_not_read_and_a_lost_permission_skips_the_slot(session, manager):
    with pytest.raises(PermissionDenied):
        service.subscribe(session, report_key="debtors.top60", frequency="daily", fmt="xlsx", recipients="x@example.co.za", now=MONDAY_6,
                          actor=Actor(name="sipho", roles=frozenset({"cancellations_coordinator"})))
    sid = service.subscribe(session, report_key="debtors.top60", frequency="daily", fmt="xlsx", recipients="x@example.co.za", now=MONDAY_6, actor=manager)
    user = session.execute(select(User).where(User.username == "naledi")).scalar_one()
    user.roles = ["cancellations_coordinator"]
    session.flush()
    out = service.send_due(session, now=MONDAY_6, tz=TZ)
    assert out["skipped"] == 1 and out["messages"] == 0
    d = session.execute(select(ReportDelivery).where(ReportDelivery.subscription_id == sid)).scalar_one()
    assert d.outcome == "skipped" and "no longer holds debtors.view" in (d.note or "")


def test_the_pdf_format_attaches_a_pdf(session, manager):
    build_book(session)
    sid = service.subscribe(session, report_key="debtors.top10", frequency="daily", fmt="pdf", recipients="cfo@example.co.za", now=MONDAY_6, actor=manager)
    assert service.send(session, subscription_id=sid, slot="t", now=MONDAY_6, tz=TZ)["messages"] == 1
    from opsline.notifications.models import MessageAttachment

    a = session.execute(select(MessageAttachment)).scalar_one()
    assert a.filename == "debtors-top10-2026-11-23.pdf" and a.content_type == "application/pdf" and a.data.startswith(b"%PDF")


def test_the_send_job_is_scheduled_once_a_day_at_six_and_reschedules_itself(session, manager):
    from opsline.core.jobs import Job

    assert service.next_run_at(MONDAY_6, TZ) == datetime(2026, 11, 24, 4, 0, tzinfo=timezone.utc)  # 06:00 passed: tomorrow
    service.schedule(session, now=MONDAY_6, tz=TZ)
    service.schedule(session, now=MONDAY_6, tz=TZ)
    jobs = session.execute(select(Job).where(Job.kind == service.SEND_JOB)).scalars().all()
    assert len(jobs) == 1
    service.subscribe(session, report_key="debtors.aged", frequency="daily", fmt="xlsx", recipients="a@example.co.za", now=MONDAY_6, actor=manager)
    out = service.send_due_job(session, {}, datetime(2026, 11, 24, 4, 0, tzinfo=timezone.utc), tz=TZ)
    assert out["sent"] == 1 and out["next_run_at"] == "2026-11-25T04:00:00+00:00"
