"""Delivery in the worker: the `notifications.deliver` job sends one message and records the outcome.

While the SMTP server or SMS gateway is down the message stays queued: each failed attempt is written to its history
(audit event `attempt_failed` with the error), and a new job is scheduled with backoff, so it is never lost and goes
once the server is back. After the configured number of attempts it is `failed`; a permanent refusal (unknown
mailbox, invalid number) makes it `undeliverable` at once. An operator may retry either.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.config import get_settings
from opsline.core import events, jobs
from opsline.core.events import Actor
from opsline.notifications.channels import DeliveryFailed, OutgoingFile, SmsGateway, gateway_from_settings, read_ref, send_email
from opsline.notifications.contacts import is_opted_out
from opsline.notifications.models import Message, MessageAttachment, MessageState
from opsline.notifications.service import DELIVER_JOB, get_message, move
from opsline.notifications.settings import get_notification_settings

SYSTEM = Actor.system("notifications")


def _files(session: Session, msg: Message) -> list[OutgoingFile]:
    rows = session.execute(select(MessageAttachment).where(MessageAttachment.message_id == msg.id).order_by(MessageAttachment.id)).scalars()
    out = []
    for a in rows:
        data = a.data if a.data is not None else read_ref(session, table=str(a.ref_table), column=str(a.ref_column), row_id=int(a.ref_id or 0))
        out.append(OutgoingFile(a.filename, a.content_type, data))
    return out


def deliver_message(session: Session, *, message_id: int, now: datetime, gateway: SmsGateway | None = None,
                    max_attempts: int | None = None) -> dict[str, Any]:
    """Try to send one message now. Returns what happened; a failure is recorded (and retried later), not raised."""
    msg = get_message(session, message_id=message_id, lock=True)
    if msg.state != MessageState.QUEUED.value:
        return {"skipped": msg.state}
    due = msg.next_attempt_at or msg.run_at
    if due > now:
        return {"skipped": "not due"}  # a later job exists for the rescheduled time
    if msg.account_id is not None and is_opted_out(session, account_id=msg.account_id, channel=msg.channel, category=msg.category):
        msg.last_error = "the account opted out before the message went"
        move(session, msg, "suppress", now=now, actor=SYSTEM, error=msg.last_error)
        return {"suppressed": "opted out"}
    msg.attempts += 1
    try:
        if msg.channel == "email":
            s = get_settings()
            msg.external_id = send_email(host=s.smtp_host, port=s.smtp_port, mail_from=s.mail_from, to=str(msg.to_addr),
                                         subject=msg.subject, body=msg.body, created_at=msg.created_at, files=_files(session, msg),
                                         reference=f"msg{msg.id}")
        else:
            gw = gateway or gateway_from_settings(get_notification_settings())
            msg.external_id = gw.send(to=str(msg.to_addr), body=msg.body, reference=f"msg{msg.id}")
    except DeliveryFailed as exc:
        return _failed(session, msg, exc=exc, now=now, max_attempts=max_attempts)
    msg.sent_at, msg.last_error, msg.next_attempt_at = now, None, None
    move(session, msg, "deliver", now=now, actor=SYSTEM, to=msg.to_addr, attempts=msg.attempts, external_id=msg.external_id)
    return {"sent_to": msg.to_addr, "attempts": msg.attempts}


def _failed(session: Session, msg: Message, *, exc: DeliveryFailed, now: datetime, max_attempts: int | None) -> dict[str, Any]:
    limit = max_attempts or get_notification_settings().message_max_attempts
    error = str(exc)
    msg.last_error = error[:2000]
    if exc.permanent:
        msg.next_attempt_at = None
        move(session, msg, "bounce", now=now, actor=SYSTEM, attempts=msg.attempts, error=msg.last_error)
        return {"undeliverable": error, "attempts": msg.attempts}
    if msg.attempts >= limit:
        msg.next_attempt_at = None
        move(session, msg, "fail", now=now, actor=SYSTEM, attempts=msg.attempts, error=msg.last_error)
        return {"failed": error, "attempts": msg.attempts}
    msg.next_attempt_at = now + jobs.backoff(msg.attempts)
    # The state does not change (still queued); the attempt is on the record with its error and the next try.
    events.record(session, now=now, actor=SYSTEM, entity_type="message", entity_id=msg.id, action="attempt_failed",
                  account_id=msg.account_id, after={"attempts": msg.attempts, "error": msg.last_error,
                                                    "next_attempt_at": msg.next_attempt_at.isoformat()})
    jobs.enqueue(session, kind=DELIVER_JOB, payload={"message_id": msg.id}, now=now, run_at=msg.next_attempt_at,
                 idempotency_key=f"{DELIVER_JOB}:{msg.id}:{msg.attempts}:{msg.next_attempt_at.isoformat()}", priority=50)
    return {"retrying": error, "attempts": msg.attempts, "next_attempt_at": msg.next_attempt_at.isoformat()}


def deliver_job(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Job handler for `notifications.deliver`."""
    return deliver_message(session, message_id=int(payload["message_id"]), now=now)


def register(registry: jobs.Registry) -> None:
    registry.register(DELIVER_JOB)(deliver_job)
