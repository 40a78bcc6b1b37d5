"""Delivery channels: email over SMTP and SMS through a gateway adapter (log-only default, generic HTTP)."""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Protocol

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.core.errors import InvalidInput
from opsline.db.base import Base

log = logging.getLogger("opsline.notifications")


class DeliveryFailed(Exception):
    """A delivery attempt did not go through. Transient (server down, busy): the message is retried with backoff.
    `permanent` (mailbox unknown, number invalid): retrying cannot help, the message is undeliverable."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class OutgoingFile:
    filename: str
    content_type: str
    data: bytes


# --- attachments by reference ---------------------------------------------------------------------
def check_ref(ref: tuple[str, str, int]) -> None:
    """A reference must name a known table with an `id` column and a known column. Raises InvalidInput."""
    try:
        table, column, row_id = ref
    except (TypeError, ValueError) as exc:
        raise InvalidInput("an attachment reference is (table, column, id)", field="attachments") from exc
    t = Base.metadata.tables.get(str(table))
    if t is None or "id" not in t.c or str(column) not in t.c:
        raise InvalidInput(f"attachment reference {table}.{column} names no known table column", field="attachments")
    if not isinstance(row_id, int):
        raise InvalidInput("an attachment reference id must be an integer", field="attachments")


def read_ref(session: Session, *, table: str, column: str, row_id: int) -> bytes:
    """The bytes a reference points at, read now (at delivery). Raises DeliveryFailed when the row or value is missing."""
    check_ref((table, column, row_id))
    t = Base.metadata.tables[table]
    value = session.execute(select(t.c[column]).where(t.c.id == row_id)).scalar_one_or_none()
    if value is None:
        raise DeliveryFailed(f"attachment {table}.{column} of row {row_id} is not there (yet)")
    return bytes(value) if not isinstance(value, str) else value.encode()


# --- email -----------------------------------------------------------------------------------------
def build_email(*, mail_from: str, to: str, subject: str, body: str, created_at: datetime, files: list[OutgoingFile],
                message_id: str) -> EmailMessage:
    m = EmailMessage()
    m["From"] = mail_from
    m["To"] = to
    m["Subject"] = subject
    m["Message-ID"] = message_id
    m["Date"] = format_datetime(created_at)
    m.set_content(body)
    for f in files:
        maintype, _, subtype = f.content_type.partition("/")
        m.add_attachment(f.data, maintype=maintype or "application", subtype=subtype or "octet-stream", filename=f.filename)
    return m


def send_email(*, host: str, port: int, mail_from: str, to: str, subject: str, body: str, created_at: datetime,
               files: list[OutgoingFile], reference: str) -> str:
    """Hand one email to the SMTP server; returns its Message-ID. Raises DeliveryFailed."""
    domain = (mail_from.split("@", 1) + ["opsline.example"])[1]
    message_id = make_msgid(idstring=reference, domain=domain)
    msg = build_email(mail_from=mail_from, to=to, subject=subject, body=body, created_at=created_at, files=files,
                      message_id=message_id)
    try:
        with smtplib.SMTP(host, port, timeout=20) as smtp:
            smtp.send_message(msg)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        raise DeliveryFailed(f"SMTP {host}:{port} refused {to}: {exc.recipients}", permanent=all(c >= 500 for c in codes)) from exc
    except smtplib.SMTPResponseException as exc:
        raise DeliveryFailed(f"SMTP {host}:{port}: {exc.smtp_code} {exc.smtp_error!r}", permanent=exc.smtp_code >= 500) from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryFailed(f"SMTP {host}:{port}: {exc}") from exc
    return message_id


# --- SMS -------------------------------------------------------------------------------------------
class SmsGateway(Protocol):
    """An SMS gateway adapter: send one text, return the gateway's id for it. Raises DeliveryFailed."""

    def send(self, *, to: str, body: str, reference: str) -> str: ...


class LogOnlyGateway:
    """The default: writes the SMS to the log (development, demo, operators without a gateway contract)."""

    def send(self, *, to: str, body: str, reference: str) -> str:
        log.info("SMS (log only) to %s [%s]: %s", to, reference, body)
        return f"log:{reference}"


class HttpSmsGateway:
    """A generic HTTP gateway: POST {"to", "body", "reference"} as JSON with a bearer token; a 2xx answer is success
    and its JSON "id" (if any) is the gateway's id. `transport` lets tests plug in httpx.MockTransport."""

    def __init__(self, *, url: str, token: str, timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        if not url:
            raise InvalidInput("the HTTP SMS gateway needs a URL (OPSLINE_SMS_GATEWAY_URL)", field="sms_gateway_url")
        self.url, self.token, self.timeout, self.transport = url, token, timeout, transport

    def send(self, *, to: str, body: str, reference: str) -> str:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            with httpx.Client(timeout=self.timeout, transport=self.transport) as client:
                resp = client.post(self.url, json={"to": to, "body": body, "reference": reference}, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"SMS gateway {self.url}: {exc}") from exc
        if resp.status_code // 100 != 2:
            # 4xx is the gateway refusing this message (bad number, blocked); busy/timeout/5xx may pass later
            permanent = 400 <= resp.status_code < 500 and resp.status_code not in (408, 425, 429)
            raise DeliveryFailed(f"SMS gateway answered {resp.status_code}: {resp.text[:200]}", permanent=permanent)
        try:
            data: Any = resp.json()
        except ValueError:
            data = {}
        gid = data.get("id") if isinstance(data, dict) else None
        return str(gid) if gid else reference


def gateway_from_settings(settings: Any, *, transport: httpx.BaseTransport | None = None) -> SmsGateway:
    if settings.sms_gateway == "http":
        return HttpSmsGateway(url=settings.sms_gateway_url, token=settings.sms_gateway_token,
                              timeout=settings.sms_gateway_timeout_seconds, transport=transport)
    return LogOnlyGateway()
