"""Notifications service: the one way a customer-facing message is written, held for approval, scheduled and queued.

Other areas call `send(...)` and seed their templates with `ensure_template(...)`. Delivery happens in the worker
(`notifications.deliver` jobs, see delivery.py); every message is written to the account timeline with its text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opsline.config import get_settings
from opsline.core import events, jobs
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.core.lifecycle import FourEyesRequired, transition
from opsline.core.localtime import zone
from opsline.customers.models import Account
from opsline.notifications.channels import check_ref
from opsline.notifications.contacts import (RecipientOptedOut, check_channel_category, ensure_rule, is_opted_out, language_of,
                                            list_rules, next_allowed, preferences, set_language, set_preference, update_rule)
from opsline.notifications.models import MESSAGE, Message, MessageAttachment, MessageState
from opsline.notifications.settings import get_notification_settings
from opsline.notifications.templates import (NoTemplate, Rendered, TemplateRenderError, add_language, ensure_template, list_templates,
                                             preview, render, update_template)

DELIVER_JOB = "notifications.deliver"

__all__ = [
    "Attachment", "send", "ensure_template", "render", "preview", "update_template", "list_templates", "approve", "reject",
    "retry", "cancel", "get_message", "preferences", "set_preference", "set_language", "ensure_rule", "list_rules", "update_rule",
    "add_language", "preview_message",
    "RecipientOptedOut", "TemplateRenderError", "NoTemplate", "FourEyesRequired", "Rendered", "DELIVER_JOB", "MESSAGE",
]


@dataclass(frozen=True)
class Attachment:
    """A file to send with an email: its bytes now, or `ref=(table, column, id)` read at delivery time
    (e.g. ("invoice_document", "pdf", 42)) so the message carries the document as it is when it goes."""

    filename: str
    content_type: str
    data: bytes | None = None
    ref: tuple[str, str, int] | None = None


def _tz(tz: ZoneInfo | None) -> ZoneInfo:
    # The operator timezone is normally passed in; callers that have none (subscribers) get the configured one.
    return tz or zone(get_settings().timezone)


def _timeline(session: Session, msg: Message, *, now: datetime, actor: Actor, action: str) -> None:
    """The account timeline entry: the message as the customer gets it (empty fields left out)."""
    after = {"event": msg.event, "channel": msg.channel, "category": msg.category, "to": msg.to_addr, "subject": msg.subject,
             "body": msg.body, "state": msg.state, "subject_ref": msg.subject_ref, "why": msg.last_error}
    if msg.run_at != now:
        after |= {"scheduled_for": msg.run_at.isoformat(), "schedule_note": msg.schedule_note}
    events.record(session, now=now, actor=actor, entity_type="message", entity_id=msg.id, action=action, account_id=msg.account_id,
                  after={k: v for k, v in after.items() if v not in (None, "")})


def _enqueue_delivery(session: Session, msg: Message, *, now: datetime) -> None:
    jobs.enqueue(session, kind=DELIVER_JOB, payload={"message_id": msg.id}, now=now, run_at=msg.run_at,
                 idempotency_key=f"{DELIVER_JOB}:{msg.id}:{msg.attempts}:{msg.run_at.isoformat()}", priority=50)


def _check_attachments(attachments: list[Attachment], channel: str) -> None:
    if attachments and channel != "email":
        raise InvalidInput("only email messages carry attachments", field="attachments")
    for a in attachments:
        if not a.filename or "/" not in (a.content_type or ""):
            raise InvalidInput(f"attachment '{a.filename}' needs a filename and a content type like application/pdf", field="attachments")
        if (a.data is None) == (a.ref is None):
            raise InvalidInput(f"attachment '{a.filename}' needs either data or a reference, not both", field="attachments")
        if a.ref is not None:
            check_ref(a.ref)


@dataclass(frozen=True)
class _Draft:
    account: Any  # Row(id, account_number, name, email, phone) or None
    address: str | None
    opted_out: bool
    rendered: Rendered


def _draft(session: Session, *, event: str, account_id: int | None, context: dict[str, Any], channel: str, to: str | None,
           category: str, language: str | None) -> _Draft:
    """Recipient, opt-out and rendered text of a message: read and rendered, nothing written."""
    account = None
    if account_id is not None:
        account = session.execute(select(Account.id, Account.account_number, Account.name, Account.email, Account.phone)
                                  .where(Account.id == account_id)).one_or_none()
        if account is None:
            raise NotFound(f"account {account_id} not found")
    # The account read flushed whatever the caller had pending; the reads below need no further autoflush (each one
    # would scan the whole identity map, which grows when a batch sends many messages in one transaction).
    with session.no_autoflush:
        opted_out = account is not None and is_opted_out(session, account_id=account.id, channel=channel, category=category)
        address = to or (None if account is None else (account.email if channel == "email" else account.phone))
        ns = get_notification_settings()
        lang = language or language_of(session, account_id=account_id, default=ns.notifications_default_language)
        base = {"account": {"id": account.id, "name": account.name, "account_number": account.account_number}} if account else {}
        rendered = render(session, event=event, channel=channel, language=lang, context=base | dict(context),
                          fallback_language=ns.notifications_default_language)
    return _Draft(account, address, opted_out, rendered)


def send(
    session: Session,
    *,
    event: str,
    account_id: int | None,
    context: dict[str, Any],
    now: datetime,
    actor: Actor,
    channel: str = "email",
    to: str | None = None,
    category: str = "service",
    subject_ref: str | None = None,
    attachments: list[Attachment] | None = None,
    needs_approval: bool = False,
    idempotency_key: str | None = None,
    tz: ZoneInfo | None = None,
    language: str | None = None,
    on_opt_out: Literal["raise", "suppress"] = "raise",
) -> int:
    """Render the template for `event` (in the account's language) and queue the message for delivery through the job
    table, in the caller's transaction; returns the message id. The message goes at the next time the contact rules
    allow (quiet hours, caps: it is scheduled, never dropped); with `needs_approval` it waits for a Legal/Brand approver.
    An account without an address for the channel gets a suppressed message (kept, visible, not sent).
    A repeated `idempotency_key` returns the first message's id and sends nothing more.
    A batch sender (dunning, bill run) may pass `on_opt_out="suppress"`: an opted-out account then gets a suppressed
    message on its timeline ("not sent: opted out") instead of the error.

    Raises InvalidInput (unknown channel/category, no recipient, bad attachment), NotFound (account),
    RecipientOptedOut (the account opted out of this channel for this category), NoTemplate, TemplateRenderError
    (the template refers to a variable `context` lacks). Nothing is written when it raises."""
    check_channel_category(channel=channel, category=category)
    if idempotency_key:
        existing = session.execute(select(Message.id).where(Message.idempotency_key == idempotency_key)).scalar_one_or_none()
        if existing is not None:
            return int(existing)
    attachments = list(attachments or [])
    _check_attachments(attachments, channel)
    if account_id is None and not to:
        raise InvalidInput("a message needs an account or a recipient address", field="to")
    d = _draft(session, event=event, account_id=account_id, context=context, channel=channel, to=to, category=category, language=language)
    account, address, opted_out, rendered = d.account, d.address, d.opted_out, d.rendered
    if opted_out and on_opt_out != "suppress":
        raise RecipientOptedOut(f"account {account.account_number} has opted out of {category} messages by {channel}; nothing was sent",
                                field="channel", extra={"account_id": account_id, "channel": channel, "category": category})
    schedule: tuple[datetime, str | None] = (now, None)
    if address and not needs_approval and not opted_out:
        with session.no_autoflush:
            schedule = next_allowed(session, account_id=account_id, category=category, channel=channel, at=now, tz=_tz(tz))

    msg = Message(account_id=account_id, event=event, channel=channel, category=category, language=rendered.language,
                  to_addr=address, subject=rendered.subject[:1000], body=rendered.body, template_id=rendered.template_id,
                  template_version=rendered.template_version, subject_ref=subject_ref, needs_approval=needs_approval,
                  created_by=actor.name, created_at=now, run_at=now, attempts=0, idempotency_key=idempotency_key)
    if opted_out:
        msg.state, action = MessageState.SUPPRESSED.value, "suppress"
        msg.last_error = f"not sent: the account opted out of {category} messages by {channel}"
    elif not address:
        msg.state, action = MessageState.SUPPRESSED.value, "suppress"
        msg.last_error = f"account has no {'email address' if channel == 'email' else 'phone number'}"
    elif needs_approval:
        msg.state, action = MessageState.AWAITING_APPROVAL.value, "hold_for_approval"
    else:
        msg.state, action = MessageState.QUEUED.value, "queue"
        msg.run_at, msg.schedule_note = schedule
    try:
        with session.begin_nested():
            session.add(msg)
            session.flush()
    except IntegrityError:
        if idempotency_key is None:
            raise
        # A concurrent call with the same key won: replay its answer.
        return int(session.execute(select(Message.id).where(Message.idempotency_key == idempotency_key)).scalar_one())
    for a in attachments:
        ref = a.ref or (None, None, None)
        session.add(MessageAttachment(message_id=msg.id, filename=a.filename, content_type=a.content_type, data=a.data,
                                      ref_table=ref[0], ref_column=ref[1], ref_id=ref[2]))
    _timeline(session, msg, now=now, actor=actor, action=action)
    if msg.state == MessageState.QUEUED.value:
        _enqueue_delivery(session, msg, now=now)
    session.flush()
    return msg.id


def preview_message(session: Session, *, event: str, account_id: int | None, context: dict[str, Any], now: datetime,
                    channel: str = "email", to: str | None = None, category: str = "service", tz: ZoneInfo | None = None,
                    language: str | None = None) -> dict[str, Any]:
    """What `send` would write, without writing anything: recipient, rendered text, language, when it would go and
    why, and whether the account has opted out. Raises what `send` raises for bad input (NoTemplate,
    TemplateRenderError, InvalidInput, NotFound), but not RecipientOptedOut (reported as `opted_out`)."""
    check_channel_category(channel=channel, category=category)
    d = _draft(session, event=event, account_id=account_id, context=context, channel=channel, to=to, category=category, language=language)
    run_at, note = next_allowed(session, account_id=account_id, category=category, channel=channel, at=now, tz=_tz(tz))
    return {"to": d.address, "subject": d.rendered.subject, "body": d.rendered.body, "language": d.rendered.language,
            "run_at": run_at, "schedule_note": note, "opted_out": d.opted_out}


def move(session: Session, msg: Message, action: str, *, now: datetime, actor: Actor, reason: str | None = None,
         **details: Any) -> list[str]:
    """A message lifecycle transition whose event payload tells subscribers what the message was about
    (`event`, `subject_ref`, e.g. "case:42"), so a case can react to its reply being sent or rejected."""
    return transition(session, MESSAGE, msg, action, now=now, actor=actor, reason=reason, label=f"message {msg.id}",
                      details={"event": msg.event, "channel": msg.channel, "subject_ref": msg.subject_ref, **details})


def get_message(session: Session, *, message_id: int, lock: bool = False) -> Message:
    q = select(Message).where(Message.id == message_id)
    if lock and session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    msg = session.execute(q).scalar_one_or_none()
    if msg is None:
        raise NotFound(f"message {message_id} not found")
    return msg


def approve(session: Session, *, message_id: int, now: datetime, actor: Actor, tz: ZoneInfo | None = None) -> list[str]:
    """Legal/Brand sign-off: the held message is scheduled (contact rules apply from now) and queued.
    Raises NotFound, TransitionNotAllowed (not awaiting approval), ActionNotPermitted (no notifications.approve),
    FourEyesRequired (the approver wrote it). If the account opted out meanwhile, the message is suppressed instead."""
    msg = get_message(session, message_id=message_id, lock=True)
    nxt = move(session, msg, "approve", now=now, actor=actor)
    msg.decided_by, msg.decided_at = actor.name, now
    if msg.account_id is not None and is_opted_out(session, account_id=msg.account_id, channel=msg.channel, category=msg.category):
        msg.last_error = "the account opted out after the message was written"
        return move(session, msg, "suppress", now=now, actor=Actor.system("notifications"), error=msg.last_error)
    msg.run_at, msg.schedule_note = next_allowed(session, account_id=msg.account_id, category=msg.category, channel=msg.channel,
                                                 at=now, tz=_tz(tz), exclude_message_id=msg.id)
    _enqueue_delivery(session, msg, now=now)
    return nxt


def reject(session: Session, *, message_id: int, reason: str, now: datetime, actor: Actor) -> list[str]:
    """The approver refuses a held message; it is never sent. Raises NotFound, TransitionNotAllowed,
    ActionNotPermitted, ReasonRequired."""
    msg = get_message(session, message_id=message_id, lock=True)
    nxt = move(session, msg, "reject", now=now, actor=actor, reason=reason)
    msg.decided_by, msg.decided_at = actor.name, now
    return nxt


def retry(session: Session, *, message_id: int, now: datetime, actor: Actor) -> list[str]:
    """Send a failed or undeliverable message again now, with a fresh set of attempts.
    Raises NotFound, TransitionNotAllowed, ActionNotPermitted."""
    msg = get_message(session, message_id=message_id, lock=True)
    nxt = move(session, msg, "retry", now=now, actor=actor)
    msg.attempts, msg.run_at, msg.next_attempt_at = 0, now, None
    _enqueue_delivery(session, msg, now=now)
    return nxt


def cancel(session: Session, *, message_id: int, reason: str, now: datetime, actor: Actor) -> list[str]:
    """Withdraw a message not sent yet. Raises NotFound, TransitionNotAllowed, ActionNotPermitted, ReasonRequired."""
    msg = get_message(session, message_id=message_id, lock=True)
    return move(session, msg, "cancel", now=now, actor=actor, reason=reason)
