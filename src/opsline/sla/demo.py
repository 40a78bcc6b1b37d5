"""SLA demo step: replay every demo case's clocks, then give most breaches a plausible cause for the breach report."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect, select, update

from opsline.cases.models import SupportCase
from opsline.core.events import Actor
from opsline.db.session import make_sessionmaker
from opsline.sla import service
from opsline.sla.models import SlaBreach


def run(ctx: Any) -> None:
    if "support_case" not in inspect(ctx.engine).get_table_names():
        return
    actor = Actor.system("demo")
    with make_sessionmaker(ctx.engine).begin() as s:
        ids = list(s.execute(select(SupportCase.id).order_by(SupportCase.id)).scalars())
        counts = service.recalculate(s, case_ids=ids, now=ctx.now, reason="demo: replay case history", actor=actor)
        rows = s.execute(select(SlaBreach.id, SlaBreach.metric, SlaBreach.partner_code)).all()
        by_cause: dict[str, list[int]] = {}
        generic = ["capacity", "capacity", "misrouted", "customer_unreachable", "system_outage", "other"]
        for i, (bid, metric, partner) in enumerate(rows):
            if i % 4 == 3:
                continue  # leave a quarter for the analysts to do
            if partner:
                cause = "waiting_on_fno" if i % 5 else "third_party_courier"
            elif metric == "team":
                cause = "misrouted" if i % 3 == 0 else "capacity"
            else:
                cause = generic[int(ctx.rng.integers(0, len(generic)))]
            by_cause.setdefault(cause, []).append(int(bid))
        for cause, bids in by_cause.items():
            for k in range(0, len(bids), 2000):
                s.execute(update(SlaBreach).where(SlaBreach.id.in_(bids[k : k + 2000])).values(cause_code=cause, set_by="demo", set_at=ctx.now, cause_note="Set by the demo"))
        service.schedule_scan(s, now=ctx.now)
    ctx.counts["sla_clocks"] = counts["clocks"]
    ctx.counts["sla_breaches"] = len(rows)
    ctx.counts["sla_breaches_with_cause"] = sum(len(v) for v in by_cause.values())
