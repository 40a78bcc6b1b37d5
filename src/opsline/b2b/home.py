"""The service manager's home cards: service credits waiting for a decision, last month's SLA violations (with the
12-month trend) and active B2B contracts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from opsline.areas import HomeCard
from opsline.b2b import queries
from opsline.core.localtime import local_date

DESKS = ("service_manager",)


def cards(session: Session, *, now: datetime, actor: Any, tz: ZoneInfo | str) -> list[HomeCard]:
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    today = local_date(now, zone)
    last = date(today.year - (today.month == 1), (today.month - 2) % 12 + 1, 1)
    c = queries.counts(session, period=last)
    oldest = c["oldest_credit"]
    chart = {"type": "bar", "data": {"labels": [m for m, _ in c["per_month"]],
                                     "datasets": [{"label": "SLA violations", "data": [n for _, n in c["per_month"]], "backgroundColor": "#c0392b"}]},
             "options": {"plugins": {"legend": {"display": False}}}}
    return [
        HomeCard(desks=DESKS, title="Service credits to decide", count=c["credits_waiting"], href="/b2b#credits", permission="b2b.view",
                 hint=(f"oldest {(now - (oldest if oldest.tzinfo else oldest.replace(tzinfo=now.tzinfo))).days} d" if oldest else "none waiting"),
                 tone="warn" if c["credits_waiting"] else "normal", order=5),
        HomeCard(desks=DESKS, title=f"SLA violations in {last:%B %Y}", count=c["violations_last_month"], href="/b2b#violations", permission="b2b.view",
                 hint="12-month trend", chart=chart, tone="danger" if c["violations_last_month"] else "normal", order=6),
        HomeCard(desks=DESKS, title="Service reviews to release", count=c["reviews_to_release"], href="/b2b/reviews", permission="b2b.view",
                 hint=f"{last:%B} reviews are generated on the 2nd", tone="warn" if c["reviews_to_release"] else "normal", order=8),
        HomeCard(desks=DESKS, title="Change requests open", count=sum(c["changes"].values()), href="/b2b#changes", permission="b2b.view",
                 hint=f"{c['changes'].get('submitted', 0)} to approve, {c['changes'].get('in_delivery', 0)} in delivery",
                 tone="warn" if c["changes"].get("submitted") else "normal", order=9),
        HomeCard(desks=("service_manager", "billing_analyst"), title="B2B bill differences to sign off", count=c["bill_checks"], href="/b2b/billcheck",
                 permission="b2b.view", hint="the bill run is approved once all are signed off", tone="warn" if c["bill_checks"] else "normal", order=10),
        HomeCard(desks=DESKS, title="Active B2B contracts", count=c["contracts"], href="/b2b#contracts", permission="b2b.view", order=7),
    ]
