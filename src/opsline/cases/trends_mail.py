"""The weekly trends report subscription: managers subscribe an email address; every Monday the job sends each active
subscription last week's figures and the workbook through notifications, once per week (idempotent)."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.cases import trends
from opsline.cases.campaign_models import TrendSubscription
from opsline.core import events
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.core.exports import XLSX_MEDIA, export_sheets
from opsline.core.jobs import Registry, enqueue
from opsline.notifications.service import Attachment, ensure_template, send

EVENT = "cases.trends_weekly"
TEMPLATE = ("Support trends: week of {{ week }}",
            "Support trends for the {{ weeks }} weeks to {{ week }}.\n\nCases last week: {{ last_week }} (the week before: {{ week_before }}).\n"
            "Top reason last week: {{ top_reason }}.\nRepeat contacts: {{ repeaters }} customers.\n"
            "Sentiment recovered: {{ sentiment }}.\n\nThe workbook is attached; the page is /cases/trends.")


class UnableToSubscribe(InvalidInput):
    title = "Unable to subscribe"


def subscribe(session: Session, *, email: str, weeks: int, now: datetime, actor: Actor) -> TrendSubscription:
    """Subscribe (or re-activate) an address. Raises UnableToSubscribe (not an email address, weeks out of range)."""
    email = (email or "").strip().lower()
    if "@" not in email or " " in email or len(email) > 200:
        raise UnableToSubscribe("give an email address", field="email")
    if not 1 <= weeks <= trends.MAX_WEEKS:
        raise UnableToSubscribe(f"weeks must be between 1 and {trends.MAX_WEEKS}", field="weeks")
    sub = session.execute(select(TrendSubscription).where(TrendSubscription.email == email)).scalar_one_or_none()
    if sub is None:
        sub = TrendSubscription(email=email, weeks=weeks, active=True, created_by=actor.name, created_at=now)
        session.add(sub)
    else:
        sub.weeks, sub.active = weeks, True
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="trend_subscription", entity_id=sub.id, action="subscribed", after={"email": email, "weeks": weeks})
    schedule(session, now=now)
    return sub


def unsubscribe(session: Session, *, subscription_id: int, now: datetime, actor: Actor) -> None:
    """Raises NotFound."""
    sub = session.get(TrendSubscription, subscription_id) if 0 < subscription_id < 2**62 else None
    if sub is None:
        raise NotFound(f"subscription {subscription_id} not found", field="subscription_id")
    sub.active = False
    events.record(session, now=now, actor=actor, entity_type="trend_subscription", entity_id=sub.id, action="unsubscribed", after={"email": sub.email})


def subscriptions(session: Session) -> list[dict[str, Any]]:
    return [{"id": s.id, "email": s.email, "weeks": s.weeks, "last_sent_for": s.last_sent_for, "created_by": s.created_by}
            for s in session.execute(select(TrendSubscription).where(TrendSubscription.active.is_(True)).order_by(TrendSubscription.email)).scalars()]


def _next_monday(now: datetime) -> datetime:
    d = now.astimezone(timezone.utc).date()
    return datetime.combine(d + timedelta(days=7 - d.weekday()), time(6, 0), tzinfo=timezone.utc)


def schedule(session: Session, *, now: datetime) -> None:
    """Enqueue the next Monday 06:00 UTC run (one per week, however often it is asked)."""
    at = _next_monday(now)
    enqueue(session, kind=EVENT, payload={}, now=now, run_at=at, idempotency_key=f"{EVENT}:{at:%Y%m%d}")


def send_weekly(session: Session, *, now: datetime) -> int:
    """Send every active subscription the report for the weeks to the last complete week, once per week. Returns how many were sent."""
    system = Actor.system("trends")
    this_monday = now.astimezone(timezone.utc).date() - timedelta(days=now.astimezone(timezone.utc).weekday())
    last_week_end = datetime.combine(this_monday, time(0), tzinfo=timezone.utc) - timedelta(microseconds=1)
    sent = 0
    for sub in session.execute(select(TrendSubscription).where(TrendSubscription.active.is_(True)).order_by(TrendSubscription.id)).scalars().all():
        if sub.last_sent_for == this_monday:
            continue
        data = trends.report(session, now=last_week_end, weeks=sub.weeks)
        top = data["categories"][0]["name"] if data["categories"] and data["categories"][0]["weeks"][-1] else "none"
        rate = data["sentiment"]["rate"]
        ctx = {"week": data["mondays"][-1], "weeks": sub.weeks, "last_week": data["totals"][-1], "week_before": data["totals"][-2] if sub.weeks > 1 else "—",
               "top_reason": top, "repeaters": data["repeat"]["repeaters"], "sentiment": f"{rate * 100:.0f}%" if rate is not None else "not judged"}
        filename, _media, body = export_sheets("xlsx", name=f"support-trends-{data['mondays'][-1]}", sheets=trends.sheets(data))
        send(session, event=EVENT, account_id=None, to=sub.email, context=ctx, now=now, actor=system, category="service",
             attachments=[Attachment(filename=filename, content_type=XLSX_MEDIA, data=body)], idempotency_key=f"{EVENT}:{sub.id}:{this_monday}")
        sub.last_sent_for = this_monday
        sent += 1
    return sent


def _job(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    n = send_weekly(session, now=now)
    schedule(session, now=now)
    return {"sent": n}


def register(registry: Registry) -> None:
    registry.register(EVENT)(_job)


def seed_templates(session: Session, *, now: datetime) -> None:
    sample = {"week": "2026-11-16", "weeks": 12, "last_week": 41, "week_before": 37, "top_reason": "Network & coverage", "repeaters": 6, "sentiment": "72%"}
    ensure_template(session, event=EVENT, channel="email", language="en", subject=TEMPLATE[0], body=TEMPLATE[1], now=now,
                    description="Cases: the weekly trends report", sample_context=sample)
