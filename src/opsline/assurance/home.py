"""The billing analyst's home card for revenue assurance: FNO overbilling still to dispute or awaiting the FNO's answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from opsline.areas import HomeCard
from opsline.assurance.queries import open_findings_total
from opsline.core.money import Money


def cards(session: Session, *, now: datetime, actor: Any, tz: Any) -> list[HomeCard]:
    t = open_findings_total(session)
    return [HomeCard(desks=("billing_analyst",), title="FNO overbilling to recover", count=t["count"], href="/assurance", permission="assurance.view",
                     hint=f"{Money.from_minor(t['amount_minor'], 'ZAR')} open or disputed" if t["count"] else "", tone="warn" if t["count"] else "normal",
                     order=60)]
