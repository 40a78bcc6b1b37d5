"""The support additions' tiles on desk home pages: leads to hand over, campaign calls waiting, open brand incidents."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsline.areas import HomeCard
from opsline.cases.campaign_models import BrandIncident, Campaign, CampaignTarget
from opsline.cases.models import SalesLead
from opsline.core.events import Actor

DESKS = ("second_line_agent", "service_manager")


def home(session: Session, *, now: datetime, actor: Actor, tz: str) -> list[HomeCard]:
    """One query per card."""
    qualified = int(session.execute(select(func.count(SalesLead.id)).where(SalesLead.state == "qualified")).scalar_one())
    calls = int(session.execute(select(func.count(CampaignTarget.id)).join(Campaign, Campaign.id == CampaignTarget.campaign_id)
                                .where(Campaign.state == "running", Campaign.channel == "call", CampaignTarget.outcome.in_(("pending", "no_answer")))).scalar_one())
    inc_n, inc_oldest = session.execute(select(func.count(BrandIncident.id), func.min(BrandIncident.opened_at)).where(BrandIncident.state != "closed")).one()
    return [
        HomeCard(desks=DESKS, title="Leads to hand over to sales", count=qualified, href="/cases/leads?state=qualified", permission="cases.view",
                 hint="qualified, waiting for a sales team or partner", tone="warn" if qualified else "normal", order=15),
        HomeCard(desks=DESKS, title="Campaign calls waiting", count=calls, href="/cases/campaigns", permission="cases.view",
                 hint="in running call campaigns", order=16),
        HomeCard(desks=DESKS, title="Open brand incidents", count=int(inc_n), href="/cases/incidents", permission="cases.view",
                 hint=f"oldest opened {inc_oldest:%Y-%m-%d %H:%M} UTC" if inc_oldest else "none open", tone="danger" if inc_n else "normal", order=17),
    ]
