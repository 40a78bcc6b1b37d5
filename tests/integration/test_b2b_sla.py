"""B2B contracts with SLA rules: metrics measured from cases (overlapping outages, MTTR, compliance), violations,
service credits within the contract's cap, four eyes, and bad input that changes nothing."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from opsline.b2b import service
from opsline.b2b.models import B2BServiceCredit, B2BSlaRule, B2BViolation
from opsline.billing.models import PendingCharge
from opsline.cases.models import Queue, SupportCase
from opsline.core.errors import InvalidInput, OpslineError
from opsline.core.events import Actor
from opsline.core.lifecycle import FourEyesRequired
from opsline.core.localtime import zone
from opsline.core.money import Money
from opsline.customers.models import Account, Party

TZ = zone("Africa/Johannesburg")
MGR1 = Actor(name="mgr1", roles=frozenset({"service_manager"}))
MGR2 = Actor(name="mgr2", roles=frozenset({"service_manager"}))
OCT = date(2026, 10, 1)


def _utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=timezone.utc)


def _b2b_account(s, now, name="Acme Logistics (Pty) Ltd") -> int:  # type: ignore[no-untyped-def]
    p = Party(kind="organisation", name=name, created_at=now)
    s.add(p)
    s.flush()
    a = Account(account_number=f"B{p.id:09d}", party_id=p.id, name=name, kind="b2b", status="active", segment_code="enterprise",
                value_tier_code="standard", currency="ZAR", created_at=now, updated_at=now)
    s.add(a)
    s.flush()
    return int(a.id)


def _case(s, acc: int, n: int, category: str, opened: datetime, resolved: datetime | None, *, first_response: datetime | None = None,  # type: ignore[no-untyped-def]
          breached: datetime | None = None) -> None:
    q = s.execute(select(Queue).where(Queue.code == "technical")).scalar_one_or_none()
    if q is None:
        q = Queue(code="technical", name="Technical", is_escalation=False, assignment="manual", skills=[], active=True)
        s.add(q)
        s.flush()
    s.add(SupportCase(reference=f"CS-B{acc}-{n}", account_id=acc, category_code=category, channel="call", subject="Link down",
                      state="resolved" if resolved else "in_progress", priority=2, queue_id=q.id, opened_at=opened, updated_at=opened,
                      resolved_at=resolved, first_response_at=first_response, sla_breached_at=breached, reopen_count=0))
    s.flush()


def _contract_with_outages(s, now):  # type: ignore[no-untyped-def]
    acc = _b2b_account(s, now)
    # two overlapping outages (08:00-12:00 and 10:00-14:00 UTC on 5 October: 6 h together) and one of 3 h on 20 October
    _case(s, acc, 1, "network_coverage", _utc(2026, 10, 5, 8), _utc(2026, 10, 5, 12), first_response=_utc(2026, 10, 5, 9))
    _case(s, acc, 2, "network_coverage", _utc(2026, 10, 5, 10), _utc(2026, 10, 5, 14), first_response=_utc(2026, 10, 5, 11),
          breached=_utc(2026, 10, 5, 13))
    _case(s, acc, 3, "device_technical", _utc(2026, 10, 20, 0), _utc(2026, 10, 20, 3), first_response=_utc(2026, 10, 20, 5))
    # a billing case outside the outage categories and an outage from another month do not count as downtime
    _case(s, acc, 4, "billing_account", _utc(2026, 9, 28, 8), _utc(2026, 9, 29, 8))
    cid = service.create_contract(s, account_id=acc, name="Managed SD-WAN", valid_from=date(2026, 1, 1), valid_to=None,
                                  monthly_value=Money.of("50000", "ZAR"), credit_cap=Money.of("6000", "ZAR"), terms=None, now=now, actor=MGR1)
    return acc, cid


def test_overlapping_outages_count_once_in_availability_and_mttr_averages_the_restored_outages(session, now) -> None:
    acc, cid = _contract_with_outages(session, now)
    measured = service.metrics.measure(session, account_ids=[acc], period=OCT, tz=TZ, settings=service.metric_settings(session))[acc]
    # October: 31 days = 44,640 minutes; 9 h = 540 minutes down -> (44,640 - 540) / 44,640 = 98.7903 %
    assert measured["availability"] == (Decimal("98.7903"), 3)
    assert measured["mttr"] == (Decimal("3.6667"), 3)  # (4 + 4 + 3) / 3 hours
    assert measured["resolution_compliance"][0] == Decimal("66.6667")  # one of three resolved after its SLA breach
    assert measured["first_response_compliance"][0] == Decimal("66.6667")  # 5 h to first response on the third (target 4 h)


def test_a_month_is_evaluated_once_into_violations_and_credits_capped_per_contract(session, now) -> None:
    acc, cid = _contract_with_outages(session, now)
    service.add_rule(session, contract_id=cid, metric="availability", operator=">=", reference_value="99.5", consequence="credit_percent",
                     credit_percent="10", now=now, actor=MGR1)
    service.add_rule(session, contract_id=cid, metric="mttr", operator="<=", reference_value="4", consequence="credit_fixed",
                     credit_fixed=Money.of("2000", "ZAR"), now=now, actor=MGR1)  # met: 3.67 h
    service.add_rule(session, contract_id=cid, metric="mttr", operator="<=", reference_value="3", tolerance="0.5", consequence="credit_fixed",
                     credit_fixed=Money.of("2000", "ZAR"), now=now, actor=MGR1)  # missed even with the half hour of tolerance
    service.add_rule(session, contract_id=cid, metric="order_on_time", operator=">=", reference_value="95", now=now, actor=MGR1)  # no orders: not measured
    out = service.evaluate_month(session, period=OCT, now=now, tz=TZ, actor=MGR1)
    assert out["violations"] == 2 and out["credits_proposed"] == 2
    credits = session.execute(select(B2BServiceCredit.amount_minor).order_by(B2BServiceCredit.id)).scalars().all()
    assert credits == [500000, 100000]  # 10 % of R 50,000 = R 5,000; the R 2,000 clipped to the R 1,000 left of the R 6,000 cap
    v = session.execute(select(B2BViolation).where(B2BViolation.metric == "availability")).scalar_one()
    assert v.actual_value == Decimal("98.7903") and "99.5" in (v.cause or "")
    again = service.evaluate_month(session, period=OCT, now=now, tz=TZ, actor=MGR1)
    assert again["credits_proposed"] == 0
    assert session.execute(select(func.count()).select_from(B2BViolation)).scalar_one() == 2


def test_an_approved_credit_is_queued_for_the_next_bill_linked_to_its_violation_and_never_by_its_proposer(session, now) -> None:
    acc, cid = _contract_with_outages(session, now)
    service.add_rule(session, contract_id=cid, metric="availability", operator=">=", reference_value="99.9", consequence="credit_percent",
                     credit_percent="5", now=now, actor=MGR1)
    service.evaluate_month(session, period=OCT, now=now, tz=TZ, actor=MGR1)
    credit = session.execute(select(B2BServiceCredit)).scalar_one()
    with pytest.raises(FourEyesRequired) as own:
        service.approve_credit(session, credit_id=credit.id, now=now, actor=MGR1)
    assert own.value.field == "actor"
    assert session.execute(select(func.count()).select_from(PendingCharge)).scalar_one() == 0
    charge_id = service.approve_credit(session, credit_id=credit.id, now=now, actor=MGR2)
    charge = session.get(PendingCharge, charge_id)
    assert charge is not None and charge.amount_minor == -250000 and charge.account_id == acc and charge.state == "pending"
    assert f"violation {credit.violation_id}" in charge.description and charge.idempotency_key == f"b2b-credit:{credit.id}"
    assert credit.state == "approved" and credit.pending_charge_id == charge_id and credit.decided_by == "mgr2"
    with pytest.raises(OpslineError):
        service.approve_credit(session, credit_id=credit.id, now=now, actor=MGR2)  # approved is final: nothing queued twice
    assert session.execute(select(func.count()).select_from(PendingCharge)).scalar_one() == 1


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"metric": "uptime_ish", "operator": ">=", "reference_value": "99"}, "metric"),
    ({"metric": "availability", "operator": "=~", "reference_value": "99"}, "operator"),
    ({"metric": "availability", "operator": ">=", "reference_value": "101"}, "reference_value"),
    ({"metric": "availability", "operator": ">=", "reference_value": "ninety"}, "reference_value"),
    ({"metric": "availability", "operator": ">=", "reference_value": "99", "tolerance": "-1"}, "tolerance"),
    ({"metric": "availability", "operator": ">=", "reference_value": "99", "consequence": "credit_percent"}, "credit_percent"),
    ({"metric": "availability", "operator": ">=", "reference_value": "99", "consequence": "refund_everything"}, "consequence"),
])
def test_a_bad_rule_is_refused_naming_the_field_and_adds_nothing(session, now, kwargs, field) -> None:  # type: ignore[no-untyped-def]
    _, cid = _contract_with_outages(session, now)
    with pytest.raises(InvalidInput) as err:
        service.add_rule(session, contract_id=cid, now=now, actor=MGR1, **kwargs)
    assert err.value.field == field
    assert session.execute(select(func.count()).select_from(B2BSlaRule)).scalar_one() == 0


def test_a_credit_above_the_contract_cap_is_refused_naming_the_amount_and_nothing_is_proposed(session, now) -> None:
    _, cid = _contract_with_outages(session, now)
    service.add_rule(session, contract_id=cid, metric="availability", operator=">=", reference_value="99.9", now=now, actor=MGR1)  # no money consequence
    service.evaluate_month(session, period=OCT, now=now, tz=TZ, actor=MGR1)
    v = session.execute(select(B2BViolation)).scalar_one()
    with pytest.raises(InvalidInput) as err:
        service.propose_credit(session, violation_id=v.id, amount=Money.of("6000.01", "ZAR"), now=now, actor=MGR1)
    assert err.value.field == "amount" and "cap" in str(err.value)
    assert session.execute(select(func.count()).select_from(B2BServiceCredit)).scalar_one() == 0
    service.propose_credit(session, violation_id=v.id, amount=Money.of("6000", "ZAR"), now=now, actor=MGR1)
    assert session.execute(select(B2BServiceCredit.amount_minor)).scalar_one() == 600000


def test_a_month_not_yet_closed_cannot_be_evaluated_and_a_retail_account_cannot_have_a_contract(session, now) -> None:
    with pytest.raises(InvalidInput) as err:
        service.evaluate_month(session, period=date(2026, 11, 1), now=now, tz=TZ, actor=MGR1)
    assert err.value.field == "period"
    p = Party(kind="person", name="Thabo Nkosi", created_at=now)
    session.add(p)
    session.flush()
    a = Account(account_number=f"R{p.id:09d}", party_id=p.id, name="Thabo Nkosi", kind="retail", status="active", segment_code="consumer",
                value_tier_code="standard", currency="ZAR", created_at=now, updated_at=now)
    session.add(a)
    session.flush()
    with pytest.raises(InvalidInput) as err2:
        service.create_contract(session, account_id=a.id, name="x", valid_from=date(2026, 1, 1), valid_to=None, monthly_value=Money.of("1", "ZAR"),
                                credit_cap=Money.of("1", "ZAR"), terms=None, now=now, actor=MGR1)
    assert err2.value.field == "account_id"
