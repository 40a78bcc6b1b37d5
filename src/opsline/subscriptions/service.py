"""Report subscriptions: a staff user holding a report's permission subscribes named recipients to it (daily, weekly on
Mondays, monthly on the 1st, at local 06:00), as xlsx or PDF; the `subscriptions.send_due` job sends each due
subscription once per slot (a unique (subscription, slot) row makes a repeat a no-op) through notifications, the file
attached. The owner's permission is checked again at every send: a user who lost it gets a skipped slot, not a leak."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opsline.core import events, jobs
from opsline.core.errors import InvalidInput, NotFound, PermissionDenied
from opsline.core.events import Actor
from opsline.core.localtime import local_date
from opsline.notifications import service as notifications
from opsline.notifications.templates import ensure_template
from opsline.subscriptions import catalogue
from opsline.subscriptions.models import FORMATS, FREQUENCIES, ReportDelivery, ReportSubscription
from opsline.users.models import User
from opsline.users.roles import allowed

SEND_JOB = "subscriptions.send_due"
EVENT = "reports.subscription"
SEND_AT = time(6, 0)
MAX_RECIPIENTS = 20
SYSTEM = Actor.system("report-subscriptions")


class UnableToSubscribe(InvalidInput):
    title = "Cannot subscribe to the report"
    type_slug = "unable-to-subscribe"


def seed_templates(session: Session, *, now: datetime) -> None:
    ensure_template(session, event=EVENT, channel="email", language="en", now=now,
                    subject="{{ report }} — {{ as_of }}",
                    body="Attached is the {{ frequency }} report \"{{ report }}\" as of {{ as_of }} ({{ format }}).\n\n"
                         "{{ owner }} subscribed you to it in Opsline; they can change or end the subscription there.",
                    description="A scheduled report, attached as xlsx or PDF, to a subscription's recipients",
                    sample_context={"report": "Top 60 debtors", "as_of": "2026-11-23", "frequency": "daily", "format": "xlsx", "owner": "Naledi"})


def parse_recipients(raw: str) -> list[str]:
    """Addresses separated by commas, semicolons, spaces or lines, normalised and de-duplicated. Raises
    UnableToSubscribe (field `recipients`) naming the first invalid address, or when there are none or too many."""
    found: list[str] = []
    for part in re.split(r"[,;\s]+", raw or ""):
        if not part:
            continue
        try:
            addr = validate_email(part, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise UnableToSubscribe(f"'{part[:80]}' is not an email address: {exc}", field="recipients") from None
        if addr.lower() not in {f.lower() for f in found}:
            found.append(addr)
    if not found:
        raise UnableToSubscribe("name at least one recipient's email address", field="recipients")
    if len(found) > MAX_RECIPIENTS:
        raise UnableToSubscribe(f"at most {MAX_RECIPIENTS} recipients per subscription", field="recipients")
    return found


def subscribe(session: Session, *, report_key: str, frequency: str, fmt: str, recipients: str, now: datetime, actor: Actor) -> int:
    """Create a subscription owned by `actor`; returns its id. Raises UnableToSubscribe (fields `report`, `frequency`,
    `format`, `recipients`), PermissionDenied (the actor may not read that report). Nothing is written when it raises."""
    try:
        report = catalogue.get(report_key)
    except InvalidInput as exc:
        raise UnableToSubscribe(exc.detail, field="report") from None
    if frequency not in FREQUENCIES:
        raise UnableToSubscribe(f"'{frequency[:20]}' is not one of {', '.join(FREQUENCIES)}", field="frequency")
    if fmt not in FORMATS:
        raise UnableToSubscribe(f"'{fmt[:10]}' is not one of {', '.join(FORMATS)}", field="format")
    if not allowed(actor.roles, report.permission):
        raise PermissionDenied(f"subscribing to \"{report.title}\" needs the permission {report.permission}")
    to = parse_recipients(recipients)
    sub = ReportSubscription(report_key=report.key, frequency=frequency, format=fmt, recipients=", ".join(to), owner=actor.name, active=True,
                             created_at=now, updated_at=now)
    session.add(sub)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="report_subscription", entity_id=sub.id, action="subscribe",
                  after={"report": report.key, "frequency": frequency, "format": fmt, "recipients": to})
    return sub.id


def end(session: Session, *, subscription_id: int, now: datetime, actor: Actor) -> None:
    """End a subscription (its owner or an administrator). Raises NotFound, PermissionDenied."""
    sub = session.get(ReportSubscription, subscription_id)
    if sub is None or not sub.active:
        raise NotFound(f"active subscription {subscription_id} not found", field="subscription_id")
    if sub.owner != actor.name and "admin" not in actor.roles:
        raise PermissionDenied("only its owner or an administrator may end a subscription")
    sub.active, sub.updated_at = False, now
    events.record(session, now=now, actor=actor, entity_type="report_subscription", entity_id=sub.id, action="end",
                  before={"active": True}, after={"active": False})
    session.flush()


def list_subscriptions(session: Session, *, owner: str | None = None) -> list[dict[str, Any]]:
    q = select(ReportSubscription).where(ReportSubscription.active.is_(True)).order_by(ReportSubscription.id)
    if owner is not None:
        q = q.where(ReportSubscription.owner == owner)
    return [{"id": s.id, "report_key": s.report_key, "title": catalogue.REPORTS[s.report_key].title if s.report_key in catalogue.REPORTS else s.report_key,
             "frequency": s.frequency, "format": s.format, "recipients": s.recipients, "owner": s.owner, "last_sent_at": s.last_sent_at,
             "created_at": s.created_at} for s in session.execute(q).scalars()]


def slot_for(frequency: str, today: date) -> str | None:
    """The slot a subscription is due in on local date `today`, or None when it is not due that day."""
    if frequency == "daily":
        return today.isoformat()
    if frequency == "weekly":
        iso = today.isocalendar()
        return f"{iso.year}-W{iso.week:02d}" if today.weekday() == 0 else None
    if frequency == "monthly":
        return f"{today:%Y-%m}" if today.day == 1 else None
    return None


def _principal(session: Session, owner: str) -> Any:
    from opsline.web.deps import Principal

    u = session.execute(select(User).where(User.username == owner)).scalar_one_or_none()
    if u is None or not u.active:
        return None
    roles = frozenset(str(r) for r in (u.roles or []))
    return Principal(Actor(name=u.username, user_id=u.id, roles=roles), u.id, u.full_name, roles, "subscription")


def send(session: Session, *, subscription_id: int, slot: str, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """Send one subscription for one slot, once: returns {"outcome": sent|skipped|already, "messages"}. The report is
    built as its owner would see it; an owner no longer active or without the permission skips the slot (recorded)."""
    sub = session.get(ReportSubscription, subscription_id)
    if sub is None:
        raise NotFound(f"subscription {subscription_id} not found", field="subscription_id")
    if session.execute(select(ReportDelivery.id).where(ReportDelivery.subscription_id == sub.id, ReportDelivery.slot == slot)).first():
        return {"outcome": "already", "messages": 0}
    report = catalogue.REPORTS.get(sub.report_key)
    principal = _principal(session, sub.owner)
    note = None
    if not sub.active:
        note = "the subscription has ended"
    elif report is None:
        note = f"report {sub.report_key} is no longer in the catalogue"
    elif principal is None or not principal.can(report.permission):
        note = f"{sub.owner} no longer holds {report.permission if report else 'the permission'}"
    try:
        with session.begin_nested():
            d = ReportDelivery(subscription_id=sub.id, slot=slot, at=now, messages=0, outcome="skipped" if note else "sent", note=note)
            session.add(d)
            session.flush()
            if note is None:
                assert report is not None
                name, media, body = catalogue.render_file(report, fmt=sub.format, session=session, now=now, tz=tz, principal=principal)
                as_of = local_date(now, tz).isoformat()
                for to in [r.strip() for r in sub.recipients.split(",") if r.strip()]:
                    notifications.send(session, event=EVENT, account_id=None, to=to, now=now, actor=SYSTEM, category="service", tz=tz,
                                       context={"report": report.title, "as_of": as_of, "frequency": sub.frequency, "format": sub.format,
                                                "owner": principal.display_name},
                                       attachments=[notifications.Attachment(filename=name, content_type=media, data=body)],
                                       subject_ref=f"report_subscription:{sub.id}", idempotency_key=f"report-sub:{sub.id}:{slot}:{to.lower()}")
                    d.messages += 1
                sub.last_sent_at = now
            session.flush()
    except IntegrityError:
        return {"outcome": "already", "messages": 0}  # a concurrent run took the slot first
    events.record(session, now=now, actor=SYSTEM, entity_type="report_subscription", entity_id=sub.id, action="send" if note is None else "skip",
                  after={"slot": slot, "messages": d.messages, "note": note})
    return {"outcome": d.outcome, "messages": d.messages, "note": note}


def send_due(session: Session, *, now: datetime, tz: ZoneInfo) -> dict[str, int]:
    """Send every active subscription due on the local date of `now` (each once per slot)."""
    today = local_date(now, tz)
    out = {"sent": 0, "skipped": 0, "already": 0, "messages": 0}
    for sub_id, frequency in session.execute(select(ReportSubscription.id, ReportSubscription.frequency)
                                             .where(ReportSubscription.active.is_(True)).order_by(ReportSubscription.id)).all():
        slot = slot_for(frequency, today)
        if slot is None:
            continue
        r = send(session, subscription_id=sub_id, slot=slot, now=now, tz=tz)
        out[r["outcome"]] += 1
        out["messages"] += r["messages"]
    return out


def next_run_at(now: datetime, tz: ZoneInfo) -> datetime:
    """The next local 06:00 after `now`."""
    today = local_date(now, tz)
    at = datetime.combine(today, SEND_AT, tzinfo=tz)
    if at.astimezone(timezone.utc) <= now:
        at = datetime.combine(today + timedelta(days=1), SEND_AT, tzinfo=tz)
    return at.astimezone(timezone.utc)


def schedule(session: Session, *, now: datetime, tz: ZoneInfo) -> datetime:
    at = next_run_at(now, tz)
    jobs.enqueue(session, kind=SEND_JOB, payload={}, now=now, run_at=at, idempotency_key=f"{SEND_JOB}:{at:%Y%m%d}", priority=200)
    return at


def send_due_job(session: Session, payload: dict[str, Any], now: datetime, *, tz: ZoneInfo) -> dict[str, Any]:
    out = send_due(session, now=now, tz=tz)
    at = schedule(session, now=now, tz=tz)
    return {**out, "next_run_at": at.isoformat()}
