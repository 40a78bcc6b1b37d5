"""Demo B2B service: a contract with six SLA rules for every B2B customer (INSERT ... SELECT statements, so the step
costs the same few statements at 300 or 100,000 accounts), last month measured by the real evaluation (set-based), the
first proposed service credit approved by the service manager (so it is on the next draft bill), every customer's
review for last month generated, an improvement plan for the first one and its review released to its contacts."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text

from opsline.b2b import jobs, reviews, service
from opsline.b2b.models import B2BContract, B2BReview, B2BServiceCredit, CreditState
from opsline.cases import service as cases
from opsline.cases.schemas import CaseIn
from opsline.config import get_settings
from opsline.core import events
from opsline.core.events import Actor
from opsline.core.localtime import local_date, zone
from opsline.db.session import make_sessionmaker
from opsline.inventory.models import Product

MANAGER = Actor(name="service", roles=frozenset({"service_manager"}))
# metric, operator, reference, tolerance, consequence, percent, fixed (minor), note
RULES = (
    ("availability", ">=", "99.5", "0", "credit_percent", "10", None, "Monthly availability per service; 10 % credit when missed"),
    ("mttr", "<=", "8", "0.5", "credit_fixed", None, 150000, "Mean time to restore; R 1,500 credit when missed"),
    ("first_response_compliance", ">=", "90", "0", "none", None, None, "First response within 4 hours"),
    ("resolution_compliance", ">=", "90", "0", "credit_percent", "2", None, "Cases resolved within their SLA"),
    ("order_on_time", ">=", "95", "0", "none", None, None, "Orders delivered by the committed date"),
    ("invoice_accuracy", ">=", "99", "0", "none", None, None, "Credit notes at most 1 % of billing"),
)


def run(ctx: Any) -> None:
    tz = zone(get_settings().timezone)
    now = ctx.now
    today = local_date(now, tz)
    last = date(today.year - (today.month == 1), (today.month - 2) % 12 + 1, 1)
    with make_sessionmaker(ctx.engine).begin() as s:
        if s.execute(select(B2BContract.id).limit(1)).first() is not None:
            return  # already there (a second demo run on the same database)
        service.seed(s, now=now)
        pg = s.get_bind().dialect.name == "postgresql"
        ts = now if pg else now.strftime("%Y-%m-%d %H:%M:%S.%f")
        start = date(today.year - 1, 1, 1)
        # a monthly value of R 20,000 to R 95,000 and a credit cap of a fifth of it, spread by account id
        s.execute(text("""INSERT INTO b2b_contract (account_id, reference, name, state, valid_from, valid_to, currency, monthly_value_minor,
                                                    credit_cap_minor, terms, created_at, created_by)
            SELECT a.id, 'SC-' || a.account_number, 'Managed connectivity and SD-WAN', 'active', :vf, NULL, a.currency,
                   (20000 + (a.id % 16) * 5000) * 100, (20000 + (a.id % 16) * 5000) * 20, '36-month managed service agreement; service credits per schedule B',
                   :ts, :by
            FROM account a WHERE a.kind = 'b2b' AND a.status = 'active'"""), {"vf": start if pg else start.isoformat(), "ts": ts, "by": MANAGER.name})
        for metric, op, ref, tol, cons, pct, fixed, note in RULES:
            s.execute(text("""INSERT INTO b2b_sla_rule (contract_id, account_id, metric, unit, reference_value, operator, tolerance, consequence,
                                                        credit_percent, credit_fixed_minor, description)
                SELECT c.id, c.account_id, :m, :u, :ref, :op, :tol, :cons, :pct, :fixed, :note FROM b2b_contract c"""),
                      {"m": metric, "u": service.METRICS[metric][0], "ref": Decimal(ref) if pg else float(ref), "op": op,
                       "tol": Decimal(tol) if pg else float(tol), "cons": cons, "pct": (Decimal(pct) if pg else float(pct)) if pct else None,
                       "fixed": fixed, "note": note})
        n = s.execute(text("SELECT COUNT(*) FROM b2b_contract")).scalar_one()
        events.record(s, now=now, actor=MANAGER, entity_type="b2b_contract", entity_id="demo", action="created_in_bulk",
                      after={"contracts": int(n), "rules_each": len(RULES)})
        _outages(s, last)
        out = service.evaluate_month(s, period=last, now=now, tz=tz, actor=jobs.SYSTEM)
        first = s.execute(select(B2BServiceCredit.id).where(B2BServiceCredit.state == CreditState.PROPOSED).order_by(B2BServiceCredit.id).limit(1)).scalar()
        if first is not None:
            service.approve_credit(s, credit_id=int(first), now=now, actor=MANAGER)
        reviews.seed_templates(s, now=now)
        made = reviews.generate(s, period=last, now=now, tz=tz, actor=jobs.SYSTEM)
        first_review = s.execute(select(B2BReview.id, B2BReview.account_id).where(B2BReview.period == last).order_by(B2BReview.contract_id).limit(1)).first()
        if first_review is not None:
            before = date(last.year - (last.month == 1), (last.month - 2) % 12 + 1, 1)
            reviews.add_action(s, account_id=first_review.account_id, period=before, title="Second, diverse fibre path to head office",
                               owner="Naledi Dlamini (network)", due_date=last + timedelta(days=20), now=now, actor=MANAGER)
            reviews.add_action(s, account_id=first_review.account_id, period=last, title="Root-cause report on the two link outages with the FNO",
                               owner="service", due_date=today + timedelta(days=10), now=now, actor=MANAGER)
            try:
                reviews.release(s, review_id=int(first_review.id), now=now, tz=tz, actor=MANAGER)
            except reviews.UnableToManageReview:
                pass  # a customer without an email contact: its review stays a draft
        jobs.schedule(s, now=now, tz=tz)
        ctx.counts["b2b_reviews"] = int(made)
        ctx.counts["b2b_contracts"] = int(n)
        ctx.counts["b2b_violations"] = int(out["violations"])
        ctx.counts["b2b_credits"] = int(out["credits_proposed"])


def _outages(s: Any, last: date) -> None:
    """Two overlapping link outages last month for four contracted customers, opened and resolved through the cases
    service at their real times (14 hours down together, 11 hours mean time to restore), so the evaluation has breaches."""
    agent = Actor(name="support", roles=frozenset({"second_line_agent"}))
    accounts = s.execute(select(B2BContract.account_id).order_by(B2BContract.id).limit(4)).scalars().all()
    first_product = dict(s.execute(select(Product.account_id, func.min(Product.id)).where(Product.account_id.in_(accounts)).group_by(Product.account_id)).all())
    for k, acc in enumerate(accounts):
        first = datetime.combine(last + timedelta(days=9 + 3 * k), time(6), tzinfo=timezone.utc)
        for n, (offset, hours) in enumerate(((0, 10), (2, 12))):
            opened = first + timedelta(hours=offset)
            c = cases.open_case(s, data=CaseIn(account_id=int(acc), category_code="network_coverage", channel="call",
                                               subject="MPLS link down at head office" if n == 0 else "SD-WAN branch unreachable",
                                               description="Customer reports loss of service; FNO fault logged"), now=opened, actor=agent)
            if first_product.get(acc) is not None and n == 0:  # the head-office link: the outage counts against that service
                cases.add_link(s, case_id=c.id, target_type="product", target_id=str(first_product[acc]), now=opened + timedelta(minutes=5), actor=agent,
                               note="affected service")
            cases.transition(s, case_id=c.id, action="start", now=opened + timedelta(minutes=20), actor=agent)
            cases.transition(s, case_id=c.id, action="resolve", now=opened + timedelta(hours=hours), actor=agent,
                             resolution="FNO repaired the fibre break; service restored")
