"""Contact preferences (opt-outs by channel and category, language) and contact rules (caps, quiet hours) as data."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from opsline.core import events
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.notifications.models import (CATEGORIES, CHANNELS, CONTACT_STATES, ContactPreference, ContactProfile, ContactRule,
                                          Message)


class RecipientOptedOut(InvalidInput):
    """The account has opted out of this channel for this category; nothing is sent."""

    status = 409
    title = "Recipient opted out"
    type_slug = "recipient-opted-out"


def check_channel_category(*, channel: str, category: str) -> None:
    if channel not in CHANNELS:
        raise InvalidInput(f"unknown channel '{channel}' (one of {', '.join(CHANNELS)})", field="channel")
    if category not in CATEGORIES:
        raise InvalidInput(f"unknown category '{category}' (one of {', '.join(CATEGORIES)})", field="category")


# --- preferences ---------------------------------------------------------------------------------
def is_opted_out(session: Session, *, account_id: int, channel: str, category: str) -> bool:
    row = session.execute(select(ContactPreference.opted_out).where(
        ContactPreference.account_id == account_id, ContactPreference.channel == channel,
        ContactPreference.category == category)).scalar_one_or_none()
    return bool(row)


def language_of(session: Session, *, account_id: int | None, default: str) -> str:
    if account_id is None:
        return default
    lang = session.execute(select(ContactProfile.language).where(ContactProfile.account_id == account_id)).scalar_one_or_none()
    return lang or default


def preferences(session: Session, *, account_id: int, default_language: str = "en") -> dict[str, Any]:
    """The account's choices as a matrix: {"language", "rows": [{"category", "channels": {channel: allowed}}]}."""
    rows = session.execute(select(ContactPreference).where(ContactPreference.account_id == account_id)).scalars().all()
    out = {(r.channel, r.category): not r.opted_out for r in rows}
    return {"account_id": account_id, "language": language_of(session, account_id=account_id, default=default_language),
            "channels": list(CHANNELS),
            "rows": [{"category": cat, "channels": {ch: out.get((ch, cat), True) for ch in CHANNELS}} for cat in CATEGORIES]}


def set_preference(session: Session, *, account_id: int, channel: str, category: str, opted_out: bool, now: datetime,
                   actor: Actor, reason: str | None = None) -> bool:
    """Record an opt-out (or opt back in) for one channel and category; written to the account timeline.
    Returns True when it changed anything. Raises InvalidInput for an unknown channel or category."""
    check_channel_category(channel=channel, category=category)
    row = session.execute(select(ContactPreference).where(
        ContactPreference.account_id == account_id, ContactPreference.channel == channel,
        ContactPreference.category == category)).scalar_one_or_none()
    was = bool(row and row.opted_out)
    if was == opted_out:
        return False
    if row is None:
        row = ContactPreference(account_id=account_id, channel=channel, category=category, opted_out=opted_out, updated_at=now,
                                updated_by=actor.name)
        session.add(row)
    else:
        row.opted_out, row.updated_at, row.updated_by = opted_out, now, actor.name
    events.record(session, now=now, actor=actor, entity_type="contact_preference", entity_id=account_id,
                  action="opt_out" if opted_out else "opt_in", account_id=account_id, reason=reason,
                  before={"channel": channel, "category": category, "opted_out": was},
                  after={"channel": channel, "category": category, "opted_out": opted_out})
    return True


def set_language(session: Session, *, account_id: int, language: str, now: datetime, actor: Actor) -> None:
    """Set the language messages to this account are written in. Raises InvalidInput for a malformed code."""
    language = (language or "").strip().lower()
    if not (2 <= len(language) <= 10) or not language.replace("-", "").isalpha():
        raise InvalidInput(f"'{language}' is not a language code (e.g. en, af, zu)", field="language")
    row = session.get(ContactProfile, account_id)
    before = row.language if row else None
    if before == language:
        return
    if row is None:
        session.add(ContactProfile(account_id=account_id, language=language, updated_at=now, updated_by=actor.name))
    else:
        row.language, row.updated_at, row.updated_by = language, now, actor.name
    events.record(session, now=now, actor=actor, entity_type="contact_profile", entity_id=account_id, action="set_language",
                  account_id=account_id, before={"language": before}, after={"language": language})


# --- caps and quiet hours ------------------------------------------------------------------------
def _hhmm(value: str) -> time:
    h, m = value.split(":")
    return time(int(h), int(m))


def quiet_until(at: datetime, *, quiet_from: str, quiet_to: str, tz: ZoneInfo) -> datetime | None:
    """The end of the quiet period `at` falls in (operator local time), or None when `at` is not quiet."""
    local = at.astimezone(tz)
    qf, qt, lt = _hhmm(quiet_from), _hhmm(quiet_to), local.time()
    day = local.date()
    if qf == qt:
        return None
    if qf < qt:
        if not (qf <= lt < qt):
            return None
        end_day = day
    else:  # the window wraps midnight, e.g. 20:00 - 08:00
        if qt <= lt < qf:
            return None
        end_day = day + timedelta(days=1) if lt >= qf else day
    return datetime.combine(end_day, qt, tzinfo=tz).astimezone(at.tzinfo)


def rules_for(session: Session, *, category: str, channel: str) -> list[ContactRule]:
    return list(session.execute(select(ContactRule).where(
        ContactRule.active.is_(True), ContactRule.category == category,
        or_(ContactRule.channel.is_(None), ContactRule.channel == channel))).scalars())


def _contact_times(session: Session, *, account_id: int, rule: ContactRule, since: datetime, exclude_id: int | None) -> list[datetime]:
    q = select(Message.run_at).where(Message.account_id == account_id, Message.category == rule.category,
                                     Message.state.in_(CONTACT_STATES), Message.run_at > since)
    if rule.channel:
        q = q.where(Message.channel == rule.channel)
    if exclude_id is not None:
        q = q.where(Message.id != exclude_id)
    return sorted(session.execute(q).scalars())


def next_allowed(session: Session, *, account_id: int | None, category: str, channel: str, at: datetime, tz: ZoneInfo,
                 exclude_message_id: int | None = None) -> tuple[datetime, str | None]:
    """The earliest instant from `at` at which a message may go under the active rules (quiet hours in the operator's
    timezone `tz`, contact caps per account over rolling periods). Returns (instant, why it was moved or None)."""
    rules = rules_for(session, category=category, channel=channel)
    notes: list[str] = []
    t = at
    for _ in range(50):  # each pass either settles or moves t strictly later
        moved = False
        for r in rules:
            if r.quiet_from and r.quiet_to:
                end = quiet_until(t, quiet_from=r.quiet_from, quiet_to=r.quiet_to, tz=tz)
                if end is not None:
                    t, moved = end, True
                    notes.append(f"quiet hours {r.quiet_from}-{r.quiet_to} ({r.code})")
            if account_id is not None and r.max_contacts and r.period_days:
                period = timedelta(days=r.period_days)
                times = _contact_times(session, account_id=account_id, rule=r, since=t - period, exclude_id=exclude_message_id)
                if len(times) >= r.max_contacts:
                    t, moved = times[len(times) - r.max_contacts] + period, True
                    notes.append(f"contact cap {r.max_contacts} per {r.period_days} d ({r.code})")
        if not moved:
            break
    note = None
    if t != at:
        seen: list[str] = []
        for n in notes:
            if n not in seen:
                seen.append(n)
        note = "; ".join(seen)
    return t, note


def list_rules(session: Session) -> list[dict[str, Any]]:
    return [{"id": r.id, "code": r.code, "category": r.category, "channel": r.channel, "max_contacts": r.max_contacts,
             "period_days": r.period_days, "quiet_from": r.quiet_from, "quiet_to": r.quiet_to, "active": r.active,
             "description": r.description}
            for r in session.execute(select(ContactRule).order_by(ContactRule.category, ContactRule.code)).scalars()]


def _check_rule_values(*, max_contacts: int | None, period_days: int | None, quiet_from: str | None, quiet_to: str | None) -> None:
    if (max_contacts is None) != (period_days is None):
        raise InvalidInput("a contact cap needs both a number of contacts and a period in days", field="max_contacts")
    if max_contacts is not None and (max_contacts < 1 or (period_days or 0) < 1):
        raise InvalidInput("a contact cap needs at least 1 contact over at least 1 day", field="max_contacts")
    if (quiet_from is None) != (quiet_to is None):
        raise InvalidInput("quiet hours need both a start and an end", field="quiet_from")
    for name, v in (("quiet_from", quiet_from), ("quiet_to", quiet_to)):
        if v is not None:
            try:
                t = _hhmm(v)
            except ValueError as exc:
                raise InvalidInput(f"'{v}' is not a time HH:MM", field=name) from exc
            if len(v) != 5 or t.strftime("%H:%M") != v:
                raise InvalidInput(f"'{v}' is not a time HH:MM", field=name)
    if quiet_from is not None and quiet_from == quiet_to:
        raise InvalidInput("quiet hours cannot start and end at the same time", field="quiet_to")
    if max_contacts is None and quiet_from is None:
        raise InvalidInput("a rule needs a contact cap, quiet hours, or both", field="max_contacts")


def update_rule(session: Session, *, rule_id: int, max_contacts: int | None, period_days: int | None, quiet_from: str | None,
                quiet_to: str | None, active: bool, now: datetime, actor: Actor) -> ContactRule:
    """Change a contact rule (operators tune caps and quiet hours); audited. Messages already scheduled keep their
    time. Raises NotFound, InvalidInput (incomplete cap or quiet hours, malformed time); nothing changes then."""
    row = session.get(ContactRule, rule_id)
    if row is None:
        raise NotFound(f"contact rule {rule_id} not found")
    _check_rule_values(max_contacts=max_contacts, period_days=period_days, quiet_from=quiet_from, quiet_to=quiet_to)
    before = {"max_contacts": row.max_contacts, "period_days": row.period_days, "quiet_from": row.quiet_from, "quiet_to": row.quiet_to,
              "active": row.active}
    row.max_contacts, row.period_days, row.quiet_from, row.quiet_to, row.active = max_contacts, period_days, quiet_from, quiet_to, active
    after = {"max_contacts": max_contacts, "period_days": period_days, "quiet_from": quiet_from, "quiet_to": quiet_to, "active": active}
    b, a = events.diff(before, after)
    if a:
        events.record(session, now=now, actor=actor, entity_type="contact_rule", entity_id=row.id, action="edit", before=b, after=a)
    return row


def ensure_rule(session: Session, *, code: str, category: str, channel: str | None = None, max_contacts: int | None = None,
                period_days: int | None = None, quiet_from: str | None = None, quiet_to: str | None = None,
                description: str = "") -> int:
    """Create a contact rule if its code is new (idempotent seed). Raises InvalidInput for inconsistent values."""
    check_channel_category(channel=channel or CHANNELS[0], category=category)
    _check_rule_values(max_contacts=max_contacts, period_days=period_days, quiet_from=quiet_from, quiet_to=quiet_to)
    row = session.execute(select(ContactRule).where(ContactRule.code == code)).scalar_one_or_none()
    if row is not None:
        return row.id
    row = ContactRule(code=code, category=category, channel=channel, max_contacts=max_contacts, period_days=period_days,
                      quiet_from=quiet_from, quiet_to=quiet_to, active=True, description=description)
    session.add(row)
    session.flush()
    return row.id

