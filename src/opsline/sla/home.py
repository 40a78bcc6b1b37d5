"""The SLA area's tiles on desk home pages: breaches waiting for a cause, and open cases by SLA standing (chart)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsline.areas import HomeCard
from opsline.cases.models import SupportCase
from opsline.core.events import Actor
from opsline.sla.models import SlaBreach
from opsline.sla.service.common import OPEN_CASE_STATES

DESKS = ("second_line_agent", "service_manager")
STANDING = (("breached", "Breached", "#c0392b"), ("at_risk", "At risk", "#e67e22"), ("ok", "On track", "#27ae60"), (None, "No clocks", "#95a5a6"))


def home(session: Session, *, now: datetime, actor: Actor, tz: str) -> list[HomeCard]:
    uncaused = session.execute(select(func.count(SlaBreach.id)).where(SlaBreach.cause_code.is_(None))).scalar_one()
    counts = dict(session.execute(select(SupportCase.sla_state, func.count(SupportCase.id)).where(SupportCase.state.in_(OPEN_CASE_STATES))
                                  .group_by(SupportCase.sla_state)).all())
    chart = {"type": "doughnut",
             "data": {"labels": [label for _, label, _ in STANDING],
                      "datasets": [{"label": "Open cases", "data": [int(counts.get(k, 0)) for k, _, _ in STANDING],
                                    "backgroundColor": [c for _, _, c in STANDING]}]},
             "options": {"plugins": {"legend": {"position": "bottom"}}}}
    return [
        HomeCard(desks=("service_manager",), title="Breaches without a cause", count=int(uncaused), href="/sla/breaches?uncaused=1", permission="sla.view",
                 hint="analyse why each deadline was missed", tone="warn" if uncaused else "normal", order=20),
        HomeCard(desks=DESKS, title="Open cases by SLA standing", count=sum(int(v) for v in counts.values()), href="/sla", permission="sla.view",
                 hint=f"{int(counts.get('breached', 0))} breached, {int(counts.get('at_risk', 0))} at risk", chart=chart, order=21),
    ]
