"""Outbound case email: an outbox row per message, sent once by the 'cases.send_email' job over SMTP."""

from __future__ import annotations

import re
import smtplib
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from sqlalchemy.orm import Session

from opsline.cases.models import CaseEmail, SupportCase
from opsline.config import Settings, get_settings
from opsline.core import jobs

_ADDR = re.compile(r"[\w.+'-]+@[\w-]+(\.[\w-]+)+")


def address_of(text: str | None) -> str | None:
    """The email address inside 'Name <a@b>' or a bare address; None when there is none."""
    if not text:
        return None
    m = _ADDR.search(text)
    return m.group(0) if m else None


def queue_email(session: Session, *, case: SupportCase | None, to: str, subject: str, body: str, purpose: str, now: datetime) -> CaseEmail:
    """Put a message in the outbox and enqueue its send job in the caller's transaction."""
    domain = (get_settings().mail_from.split("@", 1) + ["opsline.example"])[1]
    msg = CaseEmail(case_id=case.id if case else None, account_id=case.account_id if case else None, purpose=purpose, to_addr=to, subject=subject[:300],
                    body=body, message_id=make_msgid(idstring=(case.reference if case else "opsline"), domain=domain), state="queued", created_at=now)
    session.add(msg)
    session.flush()
    jobs.enqueue(session, kind="cases.send_email", payload={"email_id": msg.id}, now=now, idempotency_key=f"cases.send_email:{msg.id}", priority=50)
    return msg


def build_message(row: CaseEmail, *, settings: Settings) -> EmailMessage:
    m = EmailMessage()
    m["From"] = settings.mail_from
    m["To"] = row.to_addr
    m["Subject"] = row.subject
    m["Message-ID"] = row.message_id
    m["Date"] = format_datetime(row.created_at)
    m.set_content(row.body)
    return m


def send_email(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Job handler: send one outbox message (a message already sent is not sent again)."""
    row = session.get(CaseEmail, int(payload["email_id"]))
    if row is None:
        return {"skipped": "missing"}
    if row.state == "sent":
        return {"skipped": "already sent"}
    settings = get_settings()
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=20) as smtp:
        smtp.send_message(build_message(row, settings=settings))
    row.state, row.sent_at = "sent", now
    return {"sent_to": row.to_addr}
