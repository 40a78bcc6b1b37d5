"""Email for cases over real SMTP (aiosmtpd): outbound notes and resolution feedback through the job, inbound
mail creating cases and threading replies by reference, and the Maildir importer."""

from __future__ import annotations

import mailbox
import smtplib
import socket
from datetime import timedelta
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from opsline.cases import inbound, service
from opsline.cases.models import CaseNote, SupportCase
from opsline.cases.schemas import CaseIn, NoteIn
from opsline.config import get_settings
from opsline.core.jobs import Worker
from opsline.customers.models import Account, Party
from opsline.jobs_registry import build_registry
from opsline.notifications.models import Message


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Sink:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append((list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_sink(monkeypatch):
    port = _free_port()
    sink = _Sink()
    ctl = Controller(sink, hostname="127.0.0.1", port=port)
    ctl.start()
    monkeypatch.setenv("OPSLINE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("OPSLINE_SMTP_PORT", str(port))
    get_settings.cache_clear()
    yield sink
    ctl.stop()
    monkeypatch.undo()
    get_settings.cache_clear()


def _account(session, now, email: str) -> int:
    p = Party(kind="person", name="Naledi Dlamini", created_at=now)
    session.add(p)
    session.flush()
    a = Account(account_number=f"20{p.id:08d}", party_id=p.id, name="Naledi Dlamini", kind="retail", status="active", segment_code="consumer",
                value_tier_code="standard", currency="ZAR", email=email, created_at=now, updated_at=now)
    session.add(a)
    session.flush()
    return a.id


def test_resolving_emails_the_customer_and_the_originating_agent_once_over_smtp(factory, now, actor, smtp_sink):
    with factory.begin() as s:
        c = service.open_case(s, data=CaseIn(category_code="billing_account", subject="Double debit", contact_email="naledi@example.test",
                                             originating_agent="Lerato <lerato@frontline.test>"), now=now, actor=actor)
        service.add_note(s, case_id=c.id, data=NoteIn(body="We are checking the debit order file.", visibility="customer"), now=now, actor=actor)
        service.transition(s, case_id=c.id, action="resolve", now=now + timedelta(hours=1), actor=actor, resolution="Refund of R499 processed")
        ref = c.reference
    worker = Worker(factory, build_registry(), worker_id="t", clock=lambda: now + timedelta(hours=1))
    worker.drain()
    assert worker.drain() == 0  # nothing left, nothing sent twice
    got = sorted((r[0], raw.decode()) for r, raw in smtp_sink.messages)
    assert [r for r, _ in got] == ["lerato@frontline.test", "naledi@example.test", "naledi@example.test"]
    assert "Refund of R499 processed" in got[0][1] and f"[{ref}]" in got[0][1]
    customer = " ".join(m for _, m in got[1:])
    assert "We are checking the debit order file." in customer and "Resolved: Double debit" in customer
    with factory() as s:
        assert set(s.execute(select(Message.state)).scalars()) == {"sent"}


def test_inbound_email_over_smtp_creates_a_case_and_a_reply_threads_onto_it_and_reopens_it(factory, now, actor):
    with factory.begin() as s:
        acc = _account(s, now, "naledi@example.test")
    port = _free_port()
    ctl = inbound.start_listener(factory, host="127.0.0.1", port=port, clock=lambda: now)
    try:
        m = EmailMessage()
        m["From"], m["To"], m["Subject"], m["Message-ID"] = "Naledi <Naledi@Example.test>", "support@opsline.example", "Charged twice this month", "<a1@example.test>"
        m.set_content("Hi, you debited my account twice on the 1st.")
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.send_message(m)
        with factory() as s:
            c = s.execute(select(SupportCase)).scalar_one()
            assert (c.account_id, c.channel, c.subject, c.contact_email) == (acc, "email", "Charged twice this month", "Naledi@Example.test")
            ref, cid = c.reference, c.id
        with factory.begin() as s:
            service.transition(s, case_id=cid, action="resolve", now=now, actor=actor, resolution="Refunded")
        reply = EmailMessage()
        reply["From"], reply["To"], reply["Subject"], reply["Message-ID"] = "naledi@example.test", "support@opsline.example", f"Re: [{ref}] Resolved: Charged twice", "<a2@example.test>"
        reply.set_content("The refund has not arrived yet.")
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.send_message(reply)
    finally:
        ctl.stop()
    with factory() as s:
        assert s.execute(select(SupportCase.id)).scalars().all() == [cid]
        c = s.get(SupportCase, cid)
        assert c.state == "inProgress" and c.reopen_count == 1
        notes = s.execute(select(CaseNote.body, CaseNote.direction).where(CaseNote.case_id == cid).order_by(CaseNote.id)).all()
        assert notes[-1] == ("The refund has not arrived yet.", "in")


def test_the_maildir_importer_threads_by_reference_and_is_safe_to_run_twice(factory, now, actor, tmp_path):
    with factory.begin() as s:
        c = service.open_case(s, data=CaseIn(category_code="network_coverage", subject="Line down"), now=now, actor=actor)
        ref, cid = c.reference, c.id
    box = mailbox.Maildir(str(tmp_path / "mail"), create=True)
    for i, subject in enumerate([f"Re: line down {ref}", "New problem: router"]):
        m = EmailMessage()
        m["From"], m["Subject"], m["Message-ID"] = "someone@example.test", subject, f"<m{i}@example.test>"
        m.set_content(f"message {i}")
        box.add(m)
    first = inbound.import_maildir(factory, path=str(tmp_path / "mail"), now=now)
    again = inbound.import_maildir(factory, path=str(tmp_path / "mail"), now=now)
    assert first == {"created": 1, "threaded": 1, "duplicate": 0, "failed": 0}
    assert again == {"created": 0, "threaded": 0, "duplicate": 2, "failed": 0}
    with factory() as s:
        assert s.execute(select(CaseNote.body).where(CaseNote.case_id == cid)).scalars().all() == ["message 0"]
        assert s.execute(select(SupportCase.account_id).where(SupportCase.id != cid)).scalar_one() is None  # unknown sender: no account


def test_the_autoclose_job_closes_old_resolved_cases_decides_fcr_and_schedules_its_next_run(factory, now, actor):
    from opsline.cases.jobs import schedule_autoclose
    from opsline.core.jobs import Job

    with factory.begin() as s:
        c = service.open_case(s, data=CaseIn(category_code="billing_account", subject="How to read my bill"), now=now, actor=actor)
        service.transition(s, case_id=c.id, action="resolve", now=now + timedelta(minutes=5), actor=actor, resolution="explained")
        schedule_autoclose(s, now=now)
        schedule_autoclose(s, now=now)  # a second request for the same hour is the same job
    later = now + timedelta(days=8)
    assert Worker(factory, build_registry(), worker_id="t", clock=lambda: later).run_once()
    with factory() as s:
        c = s.execute(select(SupportCase)).scalar_one()
        assert c.state == "closed" and c.first_contact_resolution is True
        queued = s.execute(select(Job.run_at).where(Job.kind == "cases.autoclose", Job.state == "queued")).scalars().all()
        assert queued == [(later + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)]


def test_the_import_maildir_command_imports_mail_and_names_a_bad_path(engine, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from opsline.cli import app

    monkeypatch.setenv("OPSLINE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        box = mailbox.Maildir(str(tmp_path / "in"), create=True)
        m = EmailMessage()
        m["From"], m["Subject"], m["Message-ID"] = "x@example.test", "Router broken", "<cli1@example.test>"
        m.set_content("It does not boot.")
        box.add(m)
        ok = CliRunner().invoke(app, ["import-maildir", str(tmp_path / "in")])
        assert ok.exit_code == 0 and "created: 1" in ok.output
        bad = CliRunner().invoke(app, ["import-maildir", str(tmp_path / "nope")])
        assert bad.exit_code == 2 and "not a Maildir" in " ".join(bad.output.split())
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_an_attachment_over_the_limit_is_refused_and_nothing_is_stored(factory, now, actor):
    from opsline.cases.models import CaseAttachment, CaseSetting
    from opsline.core.errors import InvalidInput

    with factory.begin() as s:
        c = service.open_case(s, data=CaseIn(category_code="billing_account", subject="Bank statement"), now=now, actor=actor)
        s.execute(CaseSetting.__table__.update().where(CaseSetting.key == "attachment_max_bytes").values(value="1000"))
        service.add_attachment(s, case_id=c.id, filename="stmt.pdf", content_type="application/pdf", data=b"%PDF" * 10, now=now, actor=actor)
    with factory() as s:
        with pytest.raises(InvalidInput, match="limit is 1000"):
            service.add_attachment(s, case_id=c.id, filename="big.pdf", content_type="application/pdf", data=b"x" * 1001, now=now, actor=actor)
        s.rollback()
        assert s.execute(select(CaseAttachment.filename)).scalars().all() == ["stmt.pdf"]
