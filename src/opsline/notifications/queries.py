"""Read side of notifications: message lists and detail, the approvals queue, the account panel, desk home cards."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsline.areas import HomeCard
from opsline.core import events
from opsline.core.errors import InvalidInput
from opsline.core.events import Actor
from opsline.core.localtime import local_date, start_of_day
from opsline.customers.models import Account
from opsline.notifications.contacts import preferences
from opsline.notifications.models import CATEGORIES, CHANNELS, MESSAGE, Message, MessageAttachment, MessageState
from opsline.notifications.service import get_message
from opsline.notifications.settings import get_notification_settings

PROBLEM_STATES = (MessageState.FAILED.value, MessageState.UNDELIVERABLE.value)
# Where a message's subject_ref ("case:42") is shown, for a link from the message to what it is about.
REF_PAGES = {"case": "/cases/{}", "invoice": "/billing/invoices/{}", "claim": "/billing/claims/{}", "order": "/orders/{}",
             "quote": "/quotes/{}", "account": "/accounts/{}"}


def ref_link(subject_ref: str | None) -> str | None:
    kind, _, ident = (subject_ref or "").partition(":")
    page = REF_PAGES.get(kind)
    return page.format(ident) if page and ident.isdigit() else None
PAGE = 50


def _row(m: Message, account_number: str | None = None, account_name: str | None = None) -> dict[str, Any]:
    return {"id": m.id, "account_id": m.account_id, "account_number": account_number, "account_name": account_name,
            "event": m.event, "channel": m.channel, "category": m.category, "language": m.language, "to": m.to_addr,
            "subject": m.subject, "body": m.body, "state": m.state, "needs_approval": m.needs_approval, "created_by": m.created_by,
            "created_at": m.created_at, "run_at": m.run_at, "schedule_note": m.schedule_note, "sent_at": m.sent_at,
            "attempts": m.attempts, "next_attempt_at": m.next_attempt_at, "last_error": m.last_error,
            "decided_by": m.decided_by, "decided_at": m.decided_at, "subject_ref": m.subject_ref, "ref_link": ref_link(m.subject_ref),
            "external_id": m.external_id,
            "scheduled": m.state == MessageState.QUEUED.value and m.run_at > m.created_at,
            "retrying": m.state == MessageState.QUEUED.value and m.attempts > 0}


def list_messages(session: Session, *, state: str | None = None, channel: str | None = None, category: str | None = None,
                  account_id: int | None = None, event: str | None = None, page: int = 1) -> dict[str, Any]:
    """Messages newest first, filtered; `state="problem"` means failed or undeliverable, `state="retrying"` queued
    after a failed attempt (the server is down). One query per page.
    Raises InvalidInput for an unknown filter value."""
    q = select(Message, Account.account_number, Account.name).outerjoin(Account, Account.id == Message.account_id)
    count = select(func.count()).select_from(Message)
    conds = []
    if state == "problem":
        conds.append(Message.state.in_(PROBLEM_STATES))
    elif state == "retrying":
        conds.extend([Message.state == MessageState.QUEUED.value, Message.attempts > 0])
    elif state:
        if state not in MESSAGE.state_values():
            raise InvalidInput(f"unknown message state '{state}'", field="state")
        conds.append(Message.state == state)
    if channel:
        if channel not in CHANNELS:
            raise InvalidInput(f"unknown channel '{channel}'", field="channel")
        conds.append(Message.channel == channel)
    if category:
        if category not in CATEGORIES:
            raise InvalidInput(f"unknown category '{category}'", field="category")
        conds.append(Message.category == category)
    if account_id is not None:
        conds.append(Message.account_id == account_id)
    if event:
        conds.append(Message.event == event)
    page = max(1, page)
    rows = session.execute(q.where(*conds).order_by(Message.id.desc()).offset((page - 1) * PAGE).limit(PAGE)).all()
    total = session.execute(count.where(*conds)).scalar_one()
    return {"rows": [_row(m, num, name) for m, num, name in rows], "total": total, "page": page,
            "pages": max(1, (total + PAGE - 1) // PAGE)}


def approvals_queue(session: Session, *, now: datetime) -> list[dict[str, Any]]:
    """Messages awaiting Legal/Brand sign-off, oldest first, with how long each has waited."""
    rows = session.execute(select(Message, Account.account_number, Account.name).outerjoin(Account, Account.id == Message.account_id)
                           .where(Message.state == MessageState.AWAITING_APPROVAL.value).order_by(Message.created_at, Message.id)).all()
    out = []
    for m, num, name in rows:
        r = _row(m, num, name)
        r["waiting_hours"] = round((now - m.created_at).total_seconds() / 3600, 1)
        out.append(r)
    return out


def message_detail(session: Session, *, message_id: int, actor: Actor | None = None) -> dict[str, Any]:
    """One message with its attachments, history and the actions `actor` may take. Raises NotFound."""
    m = get_message(session, message_id=message_id)
    acc = session.get(Account, m.account_id) if m.account_id is not None else None
    files = session.execute(select(MessageAttachment.filename, MessageAttachment.content_type, MessageAttachment.ref_table,
                                   MessageAttachment.ref_id).where(MessageAttachment.message_id == m.id)
                            .order_by(MessageAttachment.id)).all()
    return {"message": _row(m, acc.account_number if acc else None, acc.name if acc else None),
            "attachments": [{"filename": f, "content_type": ct, "ref": f"{t} {i}" if t else None} for f, ct, t, i in files],
            "history": events.history(session, entity_type="message", entity_id=m.id),
            "buttons": MESSAGE.buttons(m.state, actor=actor),
            "own_message": actor is not None and actor.name == m.created_by}


def account_messages(session: Session, *, account_id: int, now: datetime, limit: int = 20) -> dict[str, Any]:
    """The account 360 panel: the latest messages and the account's contact preferences."""
    rows = session.execute(select(Message).where(Message.account_id == account_id).order_by(Message.id.desc()).limit(limit)).scalars()
    return {"messages": [_row(m) for m in rows],
            "prefs": preferences(session, account_id=account_id, default_language=get_notification_settings().notifications_default_language)}


def home_cards(session: Session, *, now: datetime, actor: Actor, tz: ZoneInfo) -> list[HomeCard]:
    """Messages awaiting approval (service and debtors managers); failed and undeliverable messages (admin)."""
    waiting, oldest = session.execute(select(func.count(), func.min(Message.created_at))
                                      .where(Message.state == MessageState.AWAITING_APPROVAL.value)).one()
    hint = ""
    if oldest is not None:
        age = now - oldest
        hint = f"oldest {age.days} d {age.seconds // 3600} h"
    cards = [HomeCard(desks=("service_manager", "debtors_manager"), title="Messages awaiting approval", count=waiting,
                      href="/notifications/approvals", permission="notifications.approve", hint=hint,
                      tone="warn" if waiting else "normal", order=40)]
    by_state = dict(session.execute(select(Message.state, func.count()).where(Message.state.in_(PROBLEM_STATES))
                                    .group_by(Message.state)).all())
    retrying = session.execute(select(func.count()).select_from(Message).where(Message.state == MessageState.QUEUED.value,
                                                                              Message.attempts > 0)).scalar_one()
    problems = sum(by_state.values())
    # Sent per day over the last 7 local days, by channel: a picture of the message flow beside the failures.
    first_day = local_date(now, tz) - timedelta(days=6)
    since = start_of_day(first_day, tz)
    sent = session.execute(select(Message.channel, Message.sent_at).where(Message.state == MessageState.SENT.value,
                                                                          Message.sent_at >= since)).all()
    labels = [(first_day + timedelta(days=i)).isoformat() for i in range(7)]
    series = {ch: [0] * 7 for ch in CHANNELS}
    for ch, at in sent:
        idx = (local_date(at, tz) - first_day).days
        if 0 <= idx < 7:
            series[ch][idx] += 1
    chart = {"type": "bar", "data": {"labels": labels, "datasets": [{"label": f"{ch} sent", "data": series[ch]} for ch in CHANNELS]},
             "options": {"scales": {"x": {"stacked": True}, "y": {"stacked": True, "beginAtZero": True}}}}
    cards.append(HomeCard(desks=("admin",), title="Failed and undeliverable messages", count=problems,
                          href="/notifications/messages?state=problem", permission="notifications.manage",
                          hint=f"{by_state.get('failed', 0)} failed, {by_state.get('undeliverable', 0)} undeliverable; {retrying} queued and retrying",
                          tone="danger" if problems else ("warn" if retrying else "normal"), chart=chart, order=90))
    return cards
