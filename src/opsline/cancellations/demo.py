"""Demo cancellation journeys: a few dozen at every step, opened and moved through the real services (request,
retention, confirmation with the FNO order, FNO confirmation, steps, withdrawal, close) with back-dated clocks, and
one whose FNO order is held at the partner so its deactivation step is late. A fixed number whatever the demo size,
picked with one query, so the step costs the same at 300 or 100,000 accounts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from opsline.cancellations import followups, service
from opsline.cancellations.models import OPEN_STATES, CancellationJourney
from opsline.config import get_settings
from opsline.core.errors import OpslineError
from opsline.core.events import Actor
from opsline.core.localtime import zone
from opsline.customers.models import Account
from opsline.db.session import make_sessionmaker
from opsline.inventory.models import Product
from opsline.partners import service as partners
from opsline.partners.models import PartnerServiceOrder

COORD = Actor(name="cancel", roles=frozenset({"cancellations_coordinator", "admin"}))
REASONS = ("price", "competitor", "moving", "service_quality", "financial", "emigrating", "deceased", "other")
PLAN = (("requested", 6), ("retained", 3), ("withdrawn", 2), ("sent", 9), ("late", 1), ("collection", 6), ("closed", 3))


def _candidates(session: Any, n: int) -> list[tuple[int, int]]:
    rows = session.execute(
        select(Product.id, Product.account_id).join(Account, Account.id == Product.account_id)
        .where(Product.state == "active", Product.partner_code.is_not(None), Account.kind == "retail", Account.status == "active",
               Product.partner_line_ref.is_not(None))
        .order_by(Product.id).limit(n * 3)).all()
    seen, out = set(), []
    for pid, acc in rows:
        if acc not in seen:
            seen.add(acc)
            out.append((pid, acc))
    return out[:n]


def run(ctx: Any) -> None:
    tz = zone(get_settings().timezone)
    total = sum(n for _, n in PLAN)
    done = 0
    with make_sessionmaker(ctx.engine).begin() as s:
        if s.execute(select(CancellationJourney.id).limit(1)).first() is not None:
            return  # already there (a second demo run on the same database)
        picks = iter(_candidates(s, total))
        k = 0
        for stage, n in PLAN:
            for _ in range(n):
                pick = next(picks, None)
                if pick is None:
                    break
                pid, acc = pick
                k += 1
                reason = REASONS[k % len(REASONS)]
                # the late one is old enough that its effective date is weeks past: the FNO's delay shows as fee exposure
                age = {"requested": 1, "retained": 3, "withdrawn": 4, "sent": 3, "late": 80, "collection": 40, "closed": 50}[stage]
                t0 = ctx.now - timedelta(days=age, hours=k % 7)
                try:
                    with s.begin_nested():
                        _one(s, stage=stage, product_id=pid, account_id=acc, reason=reason, t0=t0, now=ctx.now, tz=tz)
                    done += 1
                except OpslineError:
                    continue  # a product the demo left in a state that cannot be cancelled: pick the next
        service.schedule_escalation(s, now=ctx.now)  # the hourly at-risk escalation keeps itself going from here
    ctx.counts["cancellation_journeys"] = done


def _one(s: Any, *, stage: str, product_id: int, account_id: int, reason: str, t0: Any, now: Any, tz: Any) -> None:
    extra: dict[str, Any] = {"requester": "account_holder", "verified": True, "requester_name": "account holder, verified by ID number"}
    if reason == "deceased":
        extra = {"requester": "deceased_estate", "documents": "death certificate; letter of executorship", "requester_name": "Executor"}
    j = service.request_cancellation(s, account_id=account_id, product_id=product_id, reason_code=reason, now=t0, tz=tz, actor=COORD, **extra)
    if stage == "requested":
        return
    if j.retention_outcome is None:
        outcome = "accepted" if stage == "retained" else "declined"
        service.record_retention(s, journey_id=j.id, offer="R100 off for 6 months" if outcome == "accepted" else "free upgrade to 200 Mbps",
                                 outcome=outcome, now=t0 + timedelta(minutes=10), tz=tz, actor=COORD)
        if stage == "retained":
            return
    elif stage == "retained":
        return
    service.confirm(s, journey_id=j.id, now=t0 + timedelta(minutes=20), tz=tz, actor=COORD)
    if stage == "withdrawn":
        service.withdraw(s, journey_id=j.id, reason="customer changed their mind", now=t0 + timedelta(days=1), tz=tz, actor=COORD)
        return
    if stage == "sent":
        return
    so = s.get(PartnerServiceOrder, j.service_order_id) if j.service_order_id else None
    if stage == "late":
        if so is not None:  # the FNO has not confirmed: held at the partner (disputed line reference), past its SLA
            partners.transition(s, so=so, action="hold", now=t0 + timedelta(hours=2), actor=Actor(name="cancel", roles=frozenset({"admin"})),
                                reason="FNO disputes the line reference; escalated to the FNO account manager")
        return
    if so is not None and j.state == "deactivation_sent":
        service.record_fno_confirmation(s, journey_id=j.id, line_ref=so.external_ref, confirmed_date=j.effective_date, now=t0 + timedelta(days=5),
                                        tz=tz, actor=COORD)
    if stage == "closed" and j.state in OPEN_STATES:
        t = min(now, t0 + timedelta(days=30))
        service.complete_step(s, journey_id=j.id, code="equipment", note="router collected and received at the warehouse", now=t, tz=tz, actor=COORD)
        try:
            with s.begin_nested():  # billing's final account to the FNO's date; by hand when a bill run holds the account
                followups.issue_final_account(s, journey_id=j.id, now=t, tz=tz, actor=COORD)
        except OpslineError:
            service.complete_step(s, journey_id=j.id, code="final_account", note="final invoice issued by hand (bill run in progress)", now=t, tz=tz,
                                  actor=COORD)
        service.close(s, journey_id=j.id, now=t, actor=COORD)
