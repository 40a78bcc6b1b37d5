"""B2B service management operations: contracts and their SLA rules, the monthly evaluation that records violations
and proposes service credits (set-based, for every contracted account at once), and the credit decisions that queue
an approved credit for the next bill. Plain keyword-only functions taking `session`, `now` (and `tz` where months are
local)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from opsline.b2b import metrics
from opsline.b2b.models import (CONSEQUENCES, CONTRACT, CREDIT, METRICS, OPERATORS, B2BContract, B2BServiceCredit, B2BSetting, B2BSlaRule,
                                B2BViolation, ContractState, CreditState)
from opsline.billing import service as billing
from opsline.core import events, lifecycle
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.core.localtime import local_date
from opsline.core.money import Money
from opsline.customers.models import Account

DEFAULT_SETTINGS = (
    ("outage_categories", "network_coverage,device_technical", "Case categories (comma-separated) whose cases count as outages for availability and MTTR"),
    ("first_response_hours", "4", "A case's first response within this many hours counts as compliant"),
    ("credit_tax_rate_code", "VAT15", "Tax rate code of service-credit lines on the bill"),
)


class UnableToManageContract(InvalidInput):
    title = "Unable to manage the contract"
    type_slug = "b2b-contract-invalid"


class UnableToDecideCredit(InvalidInput):
    title = "Unable to decide the service credit"
    type_slug = "b2b-credit-invalid"


def seed(session: Session, *, now: datetime) -> None:
    for key, value, desc in DEFAULT_SETTINGS:
        if session.get(B2BSetting, key) is None:
            session.add(B2BSetting(key=key, value=value, description=desc))
    session.flush()


def _setting(session: Session, key: str) -> str:
    row = session.get(B2BSetting, key)
    return row.value if row is not None else dict((k, v) for k, v, _ in DEFAULT_SETTINGS)[key]


def metric_settings(session: Session) -> metrics.Settings:
    cats = tuple(c.strip() for c in _setting(session, "outage_categories").split(",") if c.strip())
    return metrics.Settings(outage_categories=cats, first_response_hours=int(_setting(session, "first_response_hours")))


def _decimal(raw: Any, field: str) -> Decimal:
    try:
        d = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        raise UnableToManageContract(f"'{raw}' is not a number", field=field) from None
    if not d.is_finite() or abs(d) >= Decimal("100000000"):
        raise UnableToManageContract(f"'{raw}' is not a usable number", field=field)
    return d


def month_start(raw: str | date, field: str = "period") -> date:
    """'YYYY-MM' (or a date) -> the first day of that month; anything else is an error naming `field`."""
    if isinstance(raw, date):
        return raw.replace(day=1)
    try:
        y, m = str(raw).strip().split("-")[:2]
        return date(int(y), int(m), 1)
    except (ValueError, TypeError):
        raise InvalidInput(f"'{raw}' is not a month (YYYY-MM)", field=field) from None


# --- contracts and rules ------------------------------------------------------------------------------------------
def create_contract(session: Session, *, account_id: int, name: str, valid_from: date, valid_to: date | None, monthly_value: Money,
                    credit_cap: Money, terms: str | None, now: datetime, actor: Actor) -> int:
    """A service contract with a B2B account. Raises NotFound (account), UnableToManageContract (not a B2B account, empty
    name, currency not the account's, a negative amount, valid_to not after valid_from)."""
    acc = session.get(Account, account_id)
    if acc is None:
        raise NotFound(f"account {account_id} not found", field="account_id")
    if acc.kind != "b2b":
        raise UnableToManageContract(f"account {acc.account_number} is a {acc.kind} account; contracts are for B2B accounts", field="account_id")
    if not (name or "").strip():
        raise UnableToManageContract("a contract name is required", field="name")
    for fld, m in (("monthly_value", monthly_value), ("credit_cap", credit_cap)):
        if m.currency != acc.currency:
            raise UnableToManageContract(f"{fld} is in {m.currency} but the account is billed in {acc.currency}", field=fld)
        if m.amount < 0:
            raise UnableToManageContract(f"{fld} cannot be negative", field=fld)
    if valid_to is not None and valid_to <= valid_from:
        raise UnableToManageContract("the contract must end after it starts", field="valid_to")
    c = B2BContract(account_id=account_id, reference=f"tmp-{now.timestamp()}-{account_id}", name=name.strip()[:200], state=ContractState.ACTIVE,
                    valid_from=valid_from, valid_to=valid_to, currency=acc.currency, monthly_value_minor=monthly_value.rounded().minor,
                    credit_cap_minor=credit_cap.rounded().minor, terms=(terms or "").strip() or None, created_at=now, created_by=actor.name)
    session.add(c)
    session.flush()
    c.reference = f"SC-{c.id:06d}"  # from the id sequence, never a count
    events.record(session, now=now, actor=actor, entity_type="b2b_contract", entity_id=c.id, action="created", account_id=account_id,
                  after={"reference": c.reference, "name": c.name, "valid_from": valid_from.isoformat(), "monthly_value_minor": c.monthly_value_minor,
                         "credit_cap_minor": c.credit_cap_minor})
    return int(c.id)


def add_rule(session: Session, *, contract_id: int, metric: str, operator: str, reference_value: Any, tolerance: Any = 0,
             consequence: str = "none", credit_percent: Any = None, credit_fixed: Money | None = None, description: str | None = None,
             now: datetime, actor: Actor) -> int:
    """Add a TMF623-shaped rule. Raises NotFound (contract), UnableToManageContract naming the field: unknown metric,
    operator or consequence, a reference value outside the metric's range, a negative tolerance, a credit consequence
    without its percent/amount. Nothing is written when it raises."""
    c = session.get(B2BContract, contract_id)
    if c is None:
        raise NotFound(f"contract {contract_id} not found", field="contract_id")
    if c.state != ContractState.ACTIVE:
        raise UnableToManageContract(f"contract {c.reference} has ended", field="contract_id")
    if metric not in METRICS:
        raise UnableToManageContract(f"unknown metric '{metric}'; known: {', '.join(METRICS)}", field="metric")
    if operator not in OPERATORS:
        raise UnableToManageContract(f"unknown operator '{operator}'; known: {', '.join(OPERATORS)}", field="operator")
    if consequence not in CONSEQUENCES:
        raise UnableToManageContract(f"unknown consequence '{consequence}'; known: {', '.join(CONSEQUENCES)}", field="consequence")
    ref = _decimal(reference_value, "reference_value")
    unit = METRICS[metric][0]
    if ref < 0 or (unit == "%" and ref > 100):
        raise UnableToManageContract(f"a reference value for {metric} must be between 0 and {'100' if unit == '%' else 'any positive number'}",
                                     field="reference_value")
    tol = _decimal(tolerance if tolerance not in (None, "") else 0, "tolerance")
    if tol < 0:
        raise UnableToManageContract("tolerance cannot be negative", field="tolerance")
    pct: Decimal | None = None
    fixed: int | None = None
    if consequence == "credit_percent":
        if credit_percent in (None, ""):
            raise UnableToManageContract("a percent credit needs its percent of the monthly value", field="credit_percent")
        pct = _decimal(credit_percent, "credit_percent")
        if not (0 < pct <= 100):
            raise UnableToManageContract("credit_percent must be above 0 and at most 100", field="credit_percent")
    elif consequence == "credit_fixed":
        if credit_fixed is None or credit_fixed.amount <= 0:
            raise UnableToManageContract("a fixed credit needs a positive amount", field="credit_fixed")
        if credit_fixed.currency != c.currency:
            raise UnableToManageContract(f"credit_fixed is in {credit_fixed.currency}; the contract is in {c.currency}", field="credit_fixed")
        fixed = credit_fixed.rounded().minor
    r = B2BSlaRule(contract_id=c.id, account_id=c.account_id, metric=metric, unit=unit, reference_value=ref, operator=operator, tolerance=tol,
                   consequence=consequence, credit_percent=pct, credit_fixed_minor=fixed, description=(description or "").strip()[:300] or None)
    session.add(r)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="b2b_contract", entity_id=c.id, action="rule_added", account_id=c.account_id,
                  after={"rule_id": r.id, "metric": metric, "operator": operator, "reference_value": str(ref), "tolerance": str(tol),
                         "consequence": consequence})
    return int(r.id)


def end_contract(session: Session, *, contract_id: int, reason: str, now: datetime, actor: Actor) -> list[str]:
    c = session.get(B2BContract, contract_id)
    if c is None:
        raise NotFound(f"contract {contract_id} not found", field="contract_id")
    return lifecycle.transition(session, CONTRACT, c, "end", now=now, actor=actor, reason=reason, label=f"contract {c.reference}")


# --- evaluation -----------------------------------------------------------------------------------------------------
def num(d: Decimal | float | int) -> str:
    """A measured or reference value for people: no trailing zeros, no exponent."""
    t = format(Decimal(str(d)).quantize(Decimal("0.0001")).normalize(), "f")
    return t


def violated(*, actual: Decimal, operator: str, reference: Decimal, tolerance: Decimal) -> bool:
    """True when `actual` fails `operator reference`, after the tolerance is allowed in the customer's disfavour."""
    if operator == ">=":
        return actual < reference - tolerance
    if operator == ">":
        return actual <= reference - tolerance
    if operator == "<=":
        return actual > reference + tolerance
    if operator == "<":
        return actual >= reference + tolerance
    raise ValueError(operator)


def credit_amount(*, rule_consequence: str, credit_percent: Decimal | None, credit_fixed_minor: int | None, monthly_value_minor: int) -> int:
    """The credit a violated rule proposes, in minor units, before the contract's cap (percent rounds half up)."""
    if rule_consequence == "credit_percent" and credit_percent is not None:
        return int((Decimal(monthly_value_minor) * Decimal(credit_percent) / 100).quantize(Decimal(1), ROUND_HALF_UP))
    if rule_consequence == "credit_fixed" and credit_fixed_minor:
        return int(credit_fixed_minor)
    return 0


def _ins(session: Session, model: Any) -> Any:
    return (pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert)(model)


def evaluate_month(session: Session, *, period: date, now: datetime, tz: ZoneInfo, actor: Actor, account_ids: list[int] | None = None) -> dict[str, int]:
    """Measure every active contract's rules for the month starting `period`, record a violation per rule not met and
    propose the credits their consequences give, within each contract's monthly cap. Idempotent: a second run for the
    same month adds nothing. Raises InvalidInput (field `period`) for a month not yet closed."""
    period = month_start(period)
    today = local_date(now, tz)
    if period >= today.replace(day=1):
        raise InvalidInput(f"{period:%Y-%m} is not closed yet; a month is measured after it ends", field="period")
    _, _, nxt = metrics.month_bounds(period, tz)
    active = (select(B2BContract.account_id).where(B2BContract.state == ContractState.ACTIVE, B2BContract.valid_from < nxt,
                                                   (B2BContract.valid_to.is_(None)) | (B2BContract.valid_to > period)))
    rules = session.execute(
        select(B2BSlaRule.id, B2BSlaRule.contract_id, B2BSlaRule.account_id, B2BSlaRule.metric, B2BSlaRule.operator, B2BSlaRule.reference_value,
               B2BSlaRule.tolerance, B2BSlaRule.consequence, B2BSlaRule.credit_percent, B2BSlaRule.credit_fixed_minor,
               B2BContract.monthly_value_minor, B2BContract.credit_cap_minor, B2BContract.currency)
        .join(B2BContract, B2BContract.id == B2BSlaRule.contract_id)
        .where(B2BContract.state == ContractState.ACTIVE, B2BContract.valid_from < nxt, (B2BContract.valid_to.is_(None)) | (B2BContract.valid_to > period),
               *( [B2BContract.account_id.in_(account_ids)] if account_ids is not None else []))
        .order_by(B2BSlaRule.contract_id, B2BSlaRule.id)).all()
    measured = metrics.measure(session, account_ids=account_ids, period=period, tz=tz, settings=metric_settings(session), contracted_only=active)
    new_violations: list[dict[str, Any]] = []
    for r in rules:
        got = measured.get(int(r.account_id), {}).get(r.metric)
        if got is None:
            continue
        actual, n = got
        if violated(actual=actual, operator=r.operator, reference=Decimal(r.reference_value), tolerance=Decimal(r.tolerance)):
            unit = METRICS[r.metric][0]
            new_violations.append(dict(rule_id=r.id, contract_id=r.contract_id, account_id=r.account_id, period=period, metric=r.metric,
                                       actual_value=actual, reference_value=Decimal(r.reference_value), sample_size=n, created_at=now,
                                       cause=f"{METRICS[r.metric][1]}: {num(actual)} {unit} against {r.operator} {num(r.reference_value)} {unit} "
                                             f"(tolerance {num(r.tolerance)}; {n} measured)"))
    if new_violations:
        session.execute(_ins(session, B2BViolation).values(new_violations).on_conflict_do_nothing(index_elements=["rule_id", "period"]))
    # credits for this month's violations that have none yet, clipped to what remains of each contract's cap
    by_rule = {int(r.id): r for r in rules}
    open_v = session.execute(
        select(B2BViolation.id, B2BViolation.rule_id, B2BViolation.contract_id, B2BViolation.account_id)
        .outerjoin(B2BServiceCredit, B2BServiceCredit.violation_id == B2BViolation.id)
        .where(B2BViolation.period == period, B2BServiceCredit.id.is_(None), B2BViolation.rule_id.in_(list(by_rule) or [-1]))
        .order_by(B2BViolation.contract_id, B2BViolation.id)).all()
    used = dict(session.execute(select(B2BServiceCredit.contract_id, func.sum(B2BServiceCredit.amount_minor))
                                .where(B2BServiceCredit.period == period, B2BServiceCredit.state != CreditState.REJECTED)
                                .group_by(B2BServiceCredit.contract_id)).all())
    credits: list[dict[str, Any]] = []
    for v in open_v:
        r = by_rule[int(v.rule_id)]
        want = credit_amount(rule_consequence=r.consequence, credit_percent=r.credit_percent, credit_fixed_minor=r.credit_fixed_minor,
                             monthly_value_minor=int(r.monthly_value_minor))
        room = int(r.credit_cap_minor) - int(used.get(v.contract_id) or 0)
        amount = min(want, room)
        if amount <= 0:
            continue
        used[v.contract_id] = int(used.get(v.contract_id) or 0) + amount
        credits.append(dict(violation_id=v.id, contract_id=v.contract_id, account_id=v.account_id, period=period, amount_minor=amount,
                            currency=r.currency, state=CreditState.PROPOSED, proposed_by=actor.name, proposed_at=now))
    if credits:
        session.execute(_ins(session, B2BServiceCredit).values(credits).on_conflict_do_nothing(index_elements=["violation_id"]))
    summary = {"rules": len(rules), "accounts": len(measured), "violations": len(new_violations), "credits_proposed": len(credits)}
    events.record(session, now=now, actor=actor, entity_type="b2b_evaluation", entity_id=f"{period:%Y-%m}", action="evaluated", after=summary)
    return summary


# --- credits --------------------------------------------------------------------------------------------------------
def _cap_room(session: Session, *, contract: B2BContract, period: date, exclude_credit_id: int | None = None) -> int:
    q = select(func.coalesce(func.sum(B2BServiceCredit.amount_minor), 0)).where(
        B2BServiceCredit.contract_id == contract.id, B2BServiceCredit.period == period, B2BServiceCredit.state != CreditState.REJECTED)
    if exclude_credit_id is not None:
        q = q.where(B2BServiceCredit.id != exclude_credit_id)
    return int(contract.credit_cap_minor) - int(session.execute(q).scalar_one())


def propose_credit(session: Session, *, violation_id: int, amount: Money, now: datetime, actor: Actor) -> int:
    """Propose a credit by hand for a violation that has none (e.g. a rule without a money consequence). Raises NotFound,
    UnableToDecideCredit naming `amount` (not positive, wrong currency, above what remains of the contract's monthly cap)
    or `violation_id` (it already has a credit)."""
    v = session.get(B2BViolation, violation_id)
    if v is None:
        raise NotFound(f"violation {violation_id} not found", field="violation_id")
    c = session.get(B2BContract, v.contract_id)
    assert c is not None
    if session.execute(select(B2BServiceCredit.id).where(B2BServiceCredit.violation_id == v.id)).first() is not None:
        raise UnableToDecideCredit(f"violation {v.id} already has a service credit", field="violation_id")
    if amount.currency != c.currency:
        raise UnableToDecideCredit(f"the credit is in {amount.currency}; contract {c.reference} is in {c.currency}", field="amount")
    minor = amount.rounded().minor
    if minor <= 0:
        raise UnableToDecideCredit("a service credit must be positive", field="amount")
    room = _cap_room(session, contract=c, period=v.period)
    if minor > room:
        raise UnableToDecideCredit(f"{Money.from_minor(minor, c.currency)} is above what remains of contract {c.reference}'s monthly cap for "
                                   f"{v.period:%Y-%m} ({Money.from_minor(max(room, 0), c.currency)})", field="amount")
    cr = B2BServiceCredit(violation_id=v.id, contract_id=c.id, account_id=c.account_id, period=v.period, amount_minor=minor, currency=c.currency,
                          state=CreditState.PROPOSED, proposed_by=actor.name, proposed_at=now)
    session.add(cr)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="b2b_service_credit", entity_id=cr.id, action="proposed", account_id=c.account_id,
                  after={"violation_id": v.id, "amount_minor": minor, "currency": c.currency})
    return int(cr.id)


def approve_credit(session: Session, *, credit_id: int, now: datetime, actor: Actor) -> int:
    """Approve a proposed credit (a second person: never its proposer) and queue it as a credit line on the account's next
    bill, linked to the violation. Returns the pending charge id. Raises NotFound, FourEyesRequired, ActionNotPermitted,
    TransitionNotAllowed (not proposed), UnableToDecideCredit (field `amount`: approving it would pass the monthly cap)."""
    cr = session.get(B2BServiceCredit, credit_id)
    if cr is None:
        raise NotFound(f"service credit {credit_id} not found", field="credit_id")
    c = session.get(B2BContract, cr.contract_id)
    v = session.get(B2BViolation, cr.violation_id)
    assert c is not None and v is not None
    if cr.state == CreditState.PROPOSED and cr.amount_minor > _cap_room(session, contract=c, period=cr.period, exclude_credit_id=cr.id):
        raise UnableToDecideCredit(f"approving service credit {cr.id} would pass contract {c.reference}'s monthly cap", field="amount")
    lifecycle.transition(session, CREDIT, cr, "approve", now=now, actor=actor, label=f"service credit {cr.id}",
                         details={"violation_id": v.id, "amount_minor": cr.amount_minor})
    charge_id = billing.queue_charge(
        session, account_id=cr.account_id, product_id=None,
        description=f"Service credit {c.reference}: {METRICS[v.metric][1]} {v.period:%Y-%m} (violation {v.id})",
        amount=-Money.from_minor(cr.amount_minor, cr.currency), tax_rate_code=_setting(session, "credit_tax_rate_code"),
        reason=f"SLA violation {v.id}", now=now, actor=actor, idempotency_key=f"b2b-credit:{cr.id}")
    cr.decided_by, cr.decided_at, cr.pending_charge_id = actor.name, now, charge_id
    session.flush()
    return charge_id


def reject_credit(session: Session, *, credit_id: int, reason: str, now: datetime, actor: Actor) -> list[str]:
    cr = session.get(B2BServiceCredit, credit_id)
    if cr is None:
        raise NotFound(f"service credit {credit_id} not found", field="credit_id")
    out = lifecycle.transition(session, CREDIT, cr, "reject", now=now, actor=actor, reason=reason, label=f"service credit {cr.id}")
    cr.decided_by, cr.decided_at = actor.name, now
    return out
