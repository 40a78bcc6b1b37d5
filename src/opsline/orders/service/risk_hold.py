"""The risk step of placing an order: a flagged account's new orders and upgrades are held for review, and orders
above the credit-check limit go through a credit bureau (pluggable; the default is a rules-based bureau over our own
ledger: account age, payment history, arrears, open write-offs). A pass carries on; a refer holds the order for review;
a decline rejects it, with the reasons stored on the order's credit check and in the audit trail."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from opsline.billing.models import LedgerEntry
from opsline.core import events, lifecycle
from opsline.core.events import Actor
from opsline.core.money import Money
from opsline.customers import risk
from opsline.customers.data_models import ORDER_RISK_HOLD, CreditCheck, HoldState, OrderRiskHold
from opsline.customers.data_settings import setting_int
from opsline.customers.models import Account
from opsline.debtors.models import WriteOff
from opsline.orders.models import ItemAction, ProductOrder
from opsline.orders.schemas import OrderIn
from opsline.orders.service.common import SYSTEM, order_transition
from opsline.orders.service.validation import Item


@dataclass(frozen=True)
class CreditDecision:
    outcome: str  # pass | refer | decline
    score: int  # 0..100, higher is better
    reasons: list[str] = field(default_factory=list)


class CreditBureau(Protocol):
    """A credit bureau: deterministic for the same data, and explains its outcome in reasons a clerk can read."""

    name: str

    def check(self, session: Session, *, account: Account, order_value: Money, today: date) -> CreditDecision: ...


class RulesBureau:
    """The default bureau: our own ledger and write-offs. Decline on an open or posted write-off; refer for arrears above
    the setting, an account younger than the minimum age, or a billed account that never paid; otherwise pass."""

    name = "rules"

    def check(self, session: Session, *, account: Account, order_value: Money, today: date) -> CreditDecision:
        reasons: list[str] = []
        score, outcome = 100, "pass"
        year_ago = datetime.combine(today - timedelta(days=365), datetime.min.time()).replace(tzinfo=account.created_at.tzinfo)
        row = session.execute(select(
            func.coalesce(func.sum(LedgerEntry.amount_minor), 0),
            func.coalesce(func.sum(case(((LedgerEntry.amount_minor > 0) & (LedgerEntry.due_date >= today), LedgerEntry.amount_minor), else_=0)), 0),
            func.count(case((LedgerEntry.kind == "payment", 1))),
            func.count(case(((LedgerEntry.kind == "payment") & (LedgerEntry.posted_at >= year_ago), 1))),
            func.count(case((LedgerEntry.kind == "invoice", 1))),
        ).where(LedgerEntry.account_id == account.id)).one()
        balance, not_due, payments, payments_year, invoices = (int(x) for x in row)
        arrears = max(0, balance - not_due)
        write_offs = session.execute(select(func.count(WriteOff.id)).where(WriteOff.account_id == account.id,
                                                                           WriteOff.state.in_(("proposed", "approved", "posted")))).scalar_one()
        age = (today - account.created_at.date()).days
        min_age, max_arrears = setting_int(session, "credit_min_account_age_days"), setting_int(session, "credit_max_arrears_minor")
        cur = account.currency
        if write_offs:
            score -= 60
            outcome = "decline"
            reasons.append(f"{write_offs} write-off(s) open or posted on the account")
        if arrears > max_arrears:
            score -= 30
            outcome = "decline" if outcome == "decline" else "refer"
            reasons.append(f"arrears of {Money.from_minor(arrears, cur)} (more than {Money.from_minor(max_arrears, cur)} allowed)")
        if age < min_age:
            score -= 20
            outcome = "decline" if outcome == "decline" else "refer"
            reasons.append(f"account is {age} days old (less than {min_age})")
        if invoices and not payments:
            score -= 15
            outcome = "decline" if outcome == "decline" else "refer"
            reasons.append(f"{invoices} invoice(s) and no payment ever received")
        if outcome == "pass":
            reasons.append(f"account {age} days old, {payments_year} payment(s) in the last 12 months, no arrears, no write-offs")
        reasons.append(f"order value {order_value}")
        return CreditDecision(outcome=outcome, score=max(0, score), reasons=reasons)


_BUREAUS: dict[str, CreditBureau] = {"rules": RulesBureau()}


def register_bureau(bureau: CreditBureau) -> None:
    """Add a bureau adapter (e.g. an external bureau's HTTP client); the setting `credit_bureau` names the one used."""
    _BUREAUS[bureau.name] = bureau


def bureau_for(session: Session) -> CreditBureau:
    from opsline.customers.data_models import CustomerSetting

    row = session.get(CustomerSetting, "credit_bureau")
    return _BUREAUS.get(row.value.strip() if row else "rules", _BUREAUS["rules"])


def order_value(*, items: Sequence[Item], currency: str) -> Money:
    """What the order commits the customer to, excl. VAT: once-off charges plus the recurring charge over the term
    (12 months for month-to-month). Deletes and plain relocations add nothing new. Priced by validation on the start
    date (Item.price, with the router charged on month-to-month only)."""
    total = 0
    for it in items:
        if it.data.action not in (ItemAction.ADD, ItemAction.MODIFY):
            continue
        s = it.price
        assert s is not None, "validate_items prices every add and modify"
        months = it.offering.contract_months or 12
        one_off = 0 if (it.data.action == ItemAction.MODIFY and not it.relocation) else int(s["one_off_minor"])
        total += one_off + int(s["recurring_minor"]) * months
    return Money.from_minor(total, currency)


def assess(session: Session, *, order: ProductOrder, data: OrderIn, items: Sequence[Item], start: date, now: datetime, tz: ZoneInfo,
           actor: Actor) -> str:
    """The risk step for a just-placed order (nothing carried out yet). Returns "go" (carry on), "held" (a risk hold
    waits for review; nothing is carried out until it is released) or "rejected" (the credit check declined it; the
    order is rejected with the reasons). Orders that only cease lines are never held."""
    if not any(i.data.action in (ItemAction.ADD, ItemAction.MODIFY) for i in items):
        return "go"
    acc = session.get(Account, order.account_id)
    assert acc is not None
    reasons: list[str] = []
    flags = risk.active_flags(session, account_id=acc.id, now=now)
    for f in flags:
        reasons.append(f"{f['kind']} flag set by {f['set_by']}: {f['reason']}")
    value = order_value(items=items, currency=acc.currency)
    limit = setting_int(session, "credit_check_limit_minor")
    if value.minor > limit:
        bureau = bureau_for(session)
        decision = bureau.check(session, account=acc, order_value=value, today=start)
        session.add(CreditCheck(order_id=order.id, account_id=acc.id, bureau=bureau.name, outcome=decision.outcome, score=decision.score,
                                reasons=decision.reasons, order_value_minor=value.minor, limit_minor=limit, currency=acc.currency, checked_at=now))
        events.record(session, now=now, actor=actor, entity_type="product_order", entity_id=order.id, account_id=acc.id, action="credit_checked",
                      after={"bureau": bureau.name, "outcome": decision.outcome, "score": decision.score, "reasons": decision.reasons,
                             "order_value_minor": value.minor, "limit_minor": limit})
        if decision.outcome == "decline":
            why = "credit check declined: " + "; ".join(decision.reasons)
            order_transition(session, order=order, action="reject", now=now, tz=tz, actor=SYSTEM, reason=why[:2000])
            return "rejected"
        if decision.outcome == "refer":
            reasons.append("credit check referred: " + "; ".join(decision.reasons))
    if not reasons:
        return "go"
    hold = OrderRiskHold(order_id=order.id, account_id=acc.id, state=HoldState.PENDING.value, reasons=reasons, flag_ids=[f["id"] for f in flags],
                         order_in=data.model_dump(mode="json"), placed_by=actor.name, created_at=now)
    session.add(hold)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="order_risk_hold", entity_id=hold.id, account_id=acc.id, action="held",
                  after={"order_id": order.id, "reasons": reasons})
    order.state_reason = ("held for risk review: " + "; ".join(reasons))[:2000]
    return "held"


def hold_for_order(session: Session, *, order_id: int) -> OrderRiskHold | None:
    return session.execute(select(OrderRiskHold).where(OrderRiskHold.order_id == order_id)).scalar_one_or_none()


def check_for_order(session: Session, *, order_id: int) -> dict[str, Any] | None:
    c = session.execute(select(CreditCheck).where(CreditCheck.order_id == order_id)).scalar_one_or_none()
    if c is None:
        return None
    return {"bureau": c.bureau, "outcome": c.outcome, "score": c.score, "reasons": list(c.reasons or []), "order_value_minor": c.order_value_minor,
            "limit_minor": c.limit_minor, "currency": c.currency, "checked_at": c.checked_at}


def decide_transition(session: Session, *, hold: OrderRiskHold, action: str, reason: str, now: datetime, actor: Actor) -> None:
    """The hold's own lifecycle step with four eyes over both makers: whoever placed the order (declared) and whoever
    set a flag that caused the hold may not decide it. Raises FourEyesRequired, ReasonRequired, ActionNotPermitted, TransitionNotAllowed."""
    from opsline.customers.data_models import RiskFlag

    setters = {s for (s,) in session.execute(select(RiskFlag.set_by).where(RiskFlag.id.in_([int(i) for i in hold.flag_ids or []])))} if hold.flag_ids else set()
    if actor.name in setters and hold.state == HoldState.PENDING.value:
        raise lifecycle.FourEyesRequired(f"you set the risk flag that holds order {hold.order_id}; a second person must {action} it", field="actor")
    lifecycle.transition(session, ORDER_RISK_HOLD, hold, action, now=now, actor=actor, reason=reason, account_id=hold.account_id,
                         details={"order_id": hold.order_id}, label=f"risk hold on order {hold.order_id}")
    hold.decided_by, hold.decided_at, hold.decision_reason = actor.name, now, reason.strip()
