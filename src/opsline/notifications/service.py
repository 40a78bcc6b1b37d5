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
from opsline.core.batching import pages
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
    "add_language", "preview_message", "send_many", "Outgoing",
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


# --- many messages at once (dunning, bill runs): the same rules as send(), set-based --------------------------------

@dataclass(frozen=True)
class Outgoing:
    """One message of a `send_many` batch (the arguments `send` takes per message)."""

    event: str
    account_id: int
    context: dict[str, Any]
    channel: str = "email"
    subject_ref: str | None = None
    attachments: tuple[Attachment, ...] = ()
    idempotency_key: str | None = None


def _capped_until(rules: list[Any], times: dict[tuple[int, int], list[datetime]], *, account_id: int, at: datetime,
                  tz: ZoneInfo) -> tuple[datetime, str | None]:
    """contacts.next_allowed on contact times read beforehand (rule id, account) -> sorted run_at of its messages."""
    from datetime import timedelta

    from opsline.notifications.contacts import quiet_until

    notes: list[str] = []
    t = at
    for _ in range(50):
        moved = False
        for r in rules:
            if r.quiet_from and r.quiet_to:
                end = quiet_until(t, quiet_from=r.quiet_from, quiet_to=r.quiet_to, tz=tz)
                if end is not None:
                    t, moved = end, True
                    notes.append(f"quiet hours {r.quiet_from}-{r.quiet_to} ({r.code})")
            if r.max_contacts and r.period_days:
                period = timedelta(days=r.period_days)
                within = [x for x in times.get((r.id, account_id), []) if x > t - period]
                if len(within) >= r.max_contacts:
                    t, moved = within[len(within) - r.max_contacts] + period, True
                    notes.append(f"contact cap {r.max_contacts} per {r.period_days} d ({r.code})")
        if not moved:
            break
    return t, ("; ".join(dict.fromkeys(notes)) if t != at else None)


def send_many(session: Session, *, messages: list[Outgoing], now: datetime, actor: Actor, category: str,
              tz: ZoneInfo | None = None) -> list[int | InvalidInput | NotFound]:
    """Queue many messages in a few statements, each as `send(..., on_opt_out="suppress")` would: rendered in the
    account's language (each template compiled once), opt-outs and missing addresses suppressed, scheduled by the contact
    rules (quiet hours, caps, counting the batch's own earlier messages), a timeline event and a delivery job each.
    A repeated idempotency key (also one a concurrent caller just wrote) returns the first message's id.

    Returns, per message in order, its id or the error `send` would have raised for it (NoTemplate,
    TemplateRenderError, InvalidInput for a bad attachment, NotFound for a missing account): one bad message never stops
    the others. Raises InvalidInput for an unknown channel or category (nothing is written then)."""
    from sqlalchemy import insert as sa_insert
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    from opsline.core.events import AuditEvent
    from opsline.notifications.contacts import rules_for
    from opsline.notifications.models import CONTACT_STATES, ContactPreference, ContactProfile
    from opsline.notifications.templates import _render_text, find_template

    for ch in {m.channel for m in messages}:
        check_channel_category(channel=ch, category=category)
    out: list[int | InvalidInput | NotFound] = [0] * len(messages)
    if not messages:
        return out
    zone_ = _tz(tz)
    pg = session.get_bind().dialect.name == "postgresql"
    session.flush()
    keys = [m.idempotency_key for m in messages if m.idempotency_key]
    known: dict[str, int] = {}
    for part in pages(keys, 1000):
        known.update({str(key): int(i) for key, i in session.execute(select(Message.idempotency_key, Message.id)
                                                                     .where(Message.idempotency_key.in_(part))).all()})
    acc_ids = sorted({m.account_id for m in messages})
    accounts: dict[int, Any] = {}
    prefs: set[tuple[int, str]] = set()
    langs: dict[int, str] = {}
    for k in range(0, len(acc_ids), 1000):
        part = acc_ids[k:k + 1000]
        accounts.update({r.id: r for r in session.execute(select(Account.id, Account.account_number, Account.name, Account.email, Account.phone)
                                                          .where(Account.id.in_(part))).all()})
        prefs.update((int(a), ch) for a, ch in session.execute(select(ContactPreference.account_id, ContactPreference.channel).where(
            ContactPreference.account_id.in_(part), ContactPreference.category == category, ContactPreference.opted_out.is_(True))).all())
        langs.update({int(a): lang for a, lang in session.execute(select(ContactProfile.account_id, ContactProfile.language)
                                                                  .where(ContactProfile.account_id.in_(part))).all()})
    ns = get_notification_settings()
    rules = {ch: rules_for(session, category=category, channel=ch) for ch in {m.channel for m in messages}}
    times: dict[tuple[int, int], list[datetime]] = {}
    for ch, rs in rules.items():
        for r in rs:
            if not (r.max_contacts and r.period_days):
                continue
            from datetime import timedelta

            since = now - timedelta(days=r.period_days)
            for k in range(0, len(acc_ids), 1000):
                q = select(Message.account_id, Message.run_at).where(Message.account_id.in_(acc_ids[k:k + 1000]), Message.category == r.category,
                                                                     Message.state.in_(CONTACT_STATES), Message.run_at > since)
                if r.channel:
                    q = q.where(Message.channel == r.channel)
                for a, t in session.execute(q).all():
                    times.setdefault((r.id, int(a)), []).append(t if t.tzinfo else t.replace(tzinfo=now.tzinfo))
    for v in times.values():
        v.sort()
    templates: dict[tuple[str, str, str], Any] = {}
    rows: list[dict[str, Any]] = []
    slot: list[int] = []  # index into `messages` of each row
    seen: set[str] = set()
    for n, m in enumerate(messages):
        if m.idempotency_key and m.idempotency_key in known:
            out[n] = known[m.idempotency_key]
            continue
        if m.idempotency_key and m.idempotency_key in seen:
            out[n] = -1  # the same key twice in the batch: the first one's id, filled in below
            continue
        acc = accounts.get(m.account_id)
        if acc is None:
            out[n] = NotFound(f"account {m.account_id} not found")
            continue
        try:
            _check_attachments(list(m.attachments), m.channel)
            lang = langs.get(m.account_id) or ns.notifications_default_language
            tkey = (m.event, m.channel, lang)
            if tkey not in templates:
                try:
                    templates[tkey] = find_template(session, event=m.event, channel=m.channel, language=lang,
                                                    fallback_language=ns.notifications_default_language)
                except NoTemplate as exc:
                    templates[tkey] = exc
            tpl = templates[tkey]
            if isinstance(tpl, NoTemplate):
                raise tpl
            ctx = {"account": {"id": acc.id, "name": acc.name, "account_number": acc.account_number}} | dict(m.context)
            where = f"template {tpl.event}/{tpl.channel}/{tpl.language}"
            subject = _render_text(tpl.subject or "", ctx, where=f"{where} subject").strip()
            body = _render_text(tpl.body, ctx, where=f"{where} body")
        except InvalidInput as exc:
            out[n] = exc
            continue
        address = acc.email if m.channel == "email" else acc.phone
        opted_out = (m.account_id, m.channel) in prefs
        row = dict(account_id=m.account_id, event=m.event, channel=m.channel, category=category, language=tpl.language, to_addr=address,
                   subject=subject[:1000], body=body, template_id=tpl.id, template_version=tpl.version, subject_ref=m.subject_ref,
                   needs_approval=False, created_by=actor.name, created_at=now, run_at=now, schedule_note=None, attempts=0,
                   idempotency_key=m.idempotency_key, last_error=None)
        if opted_out:
            row |= {"state": MessageState.SUPPRESSED.value, "last_error": f"not sent: the account opted out of {category} messages by {m.channel}"}
        elif not address:
            row |= {"state": MessageState.SUPPRESSED.value,
                    "last_error": f"account has no {'email address' if m.channel == 'email' else 'phone number'}"}
        else:
            run_at, note = _capped_until(rules[m.channel], times, account_id=m.account_id, at=now, tz=zone_)
            row |= {"state": MessageState.QUEUED.value, "run_at": run_at, "schedule_note": note}
            for r in rules[m.channel]:  # the batch's own message counts for the next one to the same account
                if r.max_contacts and r.period_days:
                    times.setdefault((r.id, m.account_id), []).append(run_at)
                    times[(r.id, m.account_id)].sort()
        if m.idempotency_key:
            seen.add(m.idempotency_key)
        rows.append(row)
        slot.append(n)
    written: list[tuple[dict[str, Any], int, int]] = []  # (row, message id, index in `messages`)
    keyed = [(row, n) for row, n in zip(rows, slot) if row["idempotency_key"] is not None]
    unkeyed = [(row, n) for row, n in zip(rows, slot) if row["idempotency_key"] is None]
    if keyed:
        # a concurrent caller with the same key wrote it first: its message stands (looked up below)
        ins = (pg_insert if pg else sqlite_insert)(Message).on_conflict_do_nothing(index_elements=["idempotency_key"])
        got = {str(k): int(i) for i, k in session.execute(ins.returning(Message.id, Message.idempotency_key), [r for r, _ in keyed]).all()}
        for row, n in keyed:
            key = row["idempotency_key"]
            if key in got:
                out[n] = got[key]
                written.append((row, got[key], n))
            else:
                out[n] = int(session.execute(select(Message.id).where(Message.idempotency_key == key)).scalar_one())
    if unkeyed:
        ids = session.execute(sa_insert(Message).returning(Message.id, sort_by_parameter_order=True), [r for r, _ in unkeyed]).scalars().all()
        for (row, n), mid in zip(unkeyed, ids):
            out[n] = int(mid)
            written.append((row, int(mid), n))
    if written:
        session.execute(sa_insert(AuditEvent), [
            {"occurred_at": now, "actor": actor.name, "entity_type": "message", "entity_id": str(mid), "account_id": row["account_id"],
             "action": "suppress" if row["state"] == MessageState.SUPPRESSED.value else "queue", "reason": None, "before": None,
             "after": {k: v for k, v in ({"event": row["event"], "channel": row["channel"], "category": category, "to": row["to_addr"],
                                         "subject": row["subject"], "body": row["body"], "state": row["state"], "subject_ref": row["subject_ref"],
                                         "why": row["last_error"]} | ({"scheduled_for": row["run_at"].isoformat(), "schedule_note": row["schedule_note"]}
                                                                      if row["run_at"] != now else {})).items() if v not in (None, "")}}
            for row, mid, _ in written])
        att = [{"message_id": mid, "filename": a.filename, "content_type": a.content_type, "data": a.data,
                "ref_table": a.ref[0] if a.ref else None, "ref_column": a.ref[1] if a.ref else None, "ref_id": a.ref[2] if a.ref else None}
               for _, mid, n in written for a in messages[n].attachments]
        if att:
            session.execute(sa_insert(MessageAttachment), att)
        from opsline.core.jobs import Job, JobState

        jobs_rows = [dict(kind=DELIVER_JOB, payload={"message_id": mid}, state=JobState.QUEUED.value, priority=50, run_at=row["run_at"],
                          created_at=now, attempts=0, max_attempts=8, idempotency_key=f"{DELIVER_JOB}:{mid}:0:{row['run_at'].isoformat()}",
                          serial_key=None)
                     for row, mid, _ in written if row["state"] == MessageState.QUEUED.value]
        if jobs_rows:
            session.execute((pg_insert if pg else sqlite_insert)(Job).on_conflict_do_nothing(index_elements=["idempotency_key"]), jobs_rows)
    for n, m in enumerate(messages):
        if out[n] == -1:
            out[n] = next(out[j] for j in range(n) if messages[j].idempotency_key == m.idempotency_key)
    return out
