"""Inbound email: turn a customer's message into a new case, or thread it onto the case named in the subject
(reopening a resolved case). Fed by the SMTP listener (aiosmtpd) and the Maildir importer."""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
from datetime import datetime
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any, Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from opsline.cases import service
from opsline.cases.models import CaseNote, CaseState, SupportCase
from opsline.cases.schemas import CaseIn, NoteIn
from opsline.core import domain_events
from opsline.core.events import Actor
from opsline.customers.models import Account, Contact

REFERENCE_RE = re.compile(r"\bCS\d{8}\b", re.IGNORECASE)


def _body_text(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    text = part.get_content()
    if part.get_content_type() == "text/html":
        text = re.sub(r"<[^>]+>", " ", text)
    return text.strip()


def match_account(session: Session, *, address: str) -> int | None:
    """The account whose email (or a contact's email) is the sender's; lowest id when several match."""
    addr = address.strip().lower()
    if not addr:
        return None
    acc = session.execute(select(Account.id).where(func.lower(Account.email) == addr).order_by(Account.id).limit(1)).scalar_one_or_none()
    if acc is None:
        acc = session.execute(select(Contact.account_id).where(func.lower(Contact.email) == addr).order_by(Contact.account_id).limit(1)).scalar_one_or_none()
    return acc


def ingest_email(session: Session, *, raw: bytes, now: datetime, actor: Actor | None = None) -> dict[str, Any]:
    """Create or thread a case from one raw RFC 5322 message. Idempotent by Message-ID. One service call: a reply that
    reopens a case and adds a note recomputes its SLA clocks once.
    Returns {"action": "created"|"threaded"|"duplicate", "case_id", "reference"}."""
    with domain_events.collect(session):
        return _ingest(session, raw=raw, now=now, actor=actor or Actor.system("inbound-email"))


def _ingest(session: Session, *, raw: bytes, now: datetime, actor: Actor) -> dict[str, Any]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    sender = parseaddr(str(msg.get("From", "")))[1]
    subject = str(msg.get("Subject", "") or "(no subject)").strip()[:300]
    message_id = str(msg.get("Message-ID", "") or "").strip() or None
    body = _body_text(msg) or "(empty message)"
    if message_id:
        dup = session.execute(select(CaseNote.case_id).where(CaseNote.email_message_id == message_id).limit(1)).scalar_one_or_none()
        if dup is not None:
            c = service.get_case(session, case_id=dup)
            return {"action": "duplicate", "case_id": c.id, "reference": c.reference}
    case = None
    for ref in REFERENCE_RE.findall(subject):
        case = session.execute(select(SupportCase).where(SupportCase.reference == ref.upper())).scalar_one_or_none()
        if case is not None:
            break
    if case is not None:
        if case.state in (CaseState.RESOLVED, CaseState.CLOSED):
            service.transition(session, case_id=case.id, action="reopen", now=now, actor=actor, reason=f"customer replied by email ({sender})")
        if case.state in (CaseState.PENDING,):
            service.transition(session, case_id=case.id, action="resume", now=now, actor=actor, reason="customer replied by email")
        service.add_note(session, case_id=case.id, data=NoteIn(body=body[:20_000], visibility="customer"), now=now, actor=actor, author=sender or "customer",
                         direction="in", email_message_id=message_id)
        return {"action": "threaded", "case_id": case.id, "reference": case.reference}
    account_id = match_account(session, address=sender)
    category = service.setting(session, "inbound_default_category", "billing_account")
    c = service.open_case(session, data=CaseIn(account_id=account_id, category_code=category, channel="email", subject=subject, description=body[:20_000],
                                               contact_email=sender or None), now=now, actor=actor)
    service.add_note(session, case_id=c.id, data=NoteIn(body=body[:20_000], visibility="customer"), now=now, actor=actor, author=sender or "customer",
                     direction="in", email_message_id=message_id)
    return {"action": "created", "case_id": c.id, "reference": c.reference}


class InboundHandler:
    """aiosmtpd handler: each accepted message is ingested in its own transaction."""

    def __init__(self, factory: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
        self.factory = factory
        self.clock = clock
        self.results: list[dict[str, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode()
        try:
            with self.factory.begin() as s:
                self.results.append(ingest_email(s, raw=raw, now=self.clock()))
        except Exception as exc:  # noqa: BLE001 - tell the sending server to retry later
            return f"451 Requested action aborted: {str(exc)[:200]}"
        return "250 Message accepted for delivery"


def start_listener(factory: sessionmaker[Session], *, host: str, port: int, clock: Callable[[], datetime]) -> Any:
    """Start an aiosmtpd Controller (in its own thread); the caller stops it with `.stop()`."""
    from aiosmtpd.controller import Controller

    ctl = Controller(InboundHandler(factory, clock), hostname=host, port=port)
    ctl.start()
    return ctl


def import_maildir(factory: sessionmaker[Session], *, path: str, now: datetime, on_message: Callable[[], None] | None = None) -> dict[str, int]:
    """Ingest every message in a Maildir (new/ and cur/), one transaction each; re-running is harmless."""
    box = mailbox.Maildir(path, factory=None, create=False)
    counts = {"created": 0, "threaded": 0, "duplicate": 0, "failed": 0}
    for key in box.iterkeys():
        raw = box.get_bytes(key)
        try:
            with factory.begin() as s:
                counts[ingest_email(s, raw=raw, now=now)["action"]] += 1
        except Exception:  # noqa: BLE001 - one bad message must not stop the import
            counts["failed"] += 1
        if on_message:
            on_message()
    return counts


def maildir_size(path: str) -> int:
    return len(mailbox.Maildir(path, factory=None, create=False))


__all__ = ["ingest_email", "import_maildir", "start_listener", "match_account", "InboundHandler"]
