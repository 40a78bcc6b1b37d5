"""Fraud and credit risk flags on accounts: set with a reason (and an optional expiry), cleared by someone with a
reason; an active flag shows on the account's pages and holds its new orders and upgrades for review."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from opsline.core import events, lifecycle
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.customers import service
from opsline.customers.data_models import RISK_FLAG, FlagKind, FlagState, RiskFlag


class UnableToFlag(InvalidInput):
    title = "Unable to flag the account"
    type_slug = "unable-to-flag"


class FlagNotFound(NotFound):
    pass


def _active(now: datetime) -> Any:
    return (RiskFlag.state == FlagState.ACTIVE.value) & or_(RiskFlag.expires_at.is_(None), RiskFlag.expires_at > now)


def set_flag(session: Session, *, account_id: int, kind: str, reason: str, expires_at: datetime | None, now: datetime, actor: Actor) -> RiskFlag:
    """Flag an account. Raises AccountNotFound, UnableToFlag (unknown kind, no reason, an expiry in the past)."""
    acc = service.get_account(session, account_id=account_id)
    if kind not in {k.value for k in FlagKind}:
        raise UnableToFlag(f"'{kind}' is not a flag kind (fraud, credit or other)", field="kind")
    reason = (reason or "").strip()
    if not reason:
        raise UnableToFlag("a reason is required to flag an account", field="reason")
    if expires_at is not None and expires_at <= now:
        raise UnableToFlag("the expiry must be in the future", field="expires_at")
    flag = RiskFlag(account_id=acc.id, kind=kind, state=FlagState.ACTIVE.value, reason=reason[:2000], set_by=actor.name, set_at=now, expires_at=expires_at)
    session.add(flag)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="risk_flag", entity_id=flag.id, account_id=acc.id, action="set", reason=reason,
                  after={"kind": kind, "expires_at": expires_at.isoformat() if expires_at else None})
    return flag


def clear_flag(session: Session, *, flag_id: int, reason: str, now: datetime, actor: Actor) -> RiskFlag:
    """Clear a flag. Raises FlagNotFound, ReasonRequired, ActionNotPermitted, TransitionNotAllowed (already cleared)."""
    flag = session.get(RiskFlag, flag_id) if 0 < flag_id < 2**62 else None
    if flag is None:
        raise FlagNotFound(f"risk flag {flag_id} not found")
    lifecycle.transition(session, RISK_FLAG, flag, "clear", now=now, actor=actor, reason=reason, account_id=flag.account_id, label=f"{flag.kind} flag {flag.id}")
    flag.cleared_by, flag.cleared_at, flag.clear_reason = actor.name, now, reason.strip()
    session.flush()
    return flag


def flag_dict(f: RiskFlag, now: datetime) -> dict[str, Any]:
    expired = f.state == FlagState.ACTIVE.value and f.expires_at is not None and f.expires_at <= now
    return {"id": f.id, "account_id": f.account_id, "kind": f.kind, "state": "expired" if expired else f.state, "reason": f.reason, "set_by": f.set_by,
            "set_at": f.set_at, "expires_at": f.expires_at, "cleared_by": f.cleared_by, "cleared_at": f.cleared_at, "clear_reason": f.clear_reason,
            "active": f.state == FlagState.ACTIVE.value and not expired}


def active_flags(session: Session, *, account_id: int, now: datetime) -> list[dict[str, Any]]:
    """The account's flags in force now (not cleared, not expired), newest first."""
    rows = session.execute(select(RiskFlag).where(RiskFlag.account_id == account_id, _active(now)).order_by(RiskFlag.id.desc())).scalars()
    return [flag_dict(f, now) for f in rows]


def flags(session: Session, *, account_id: int, now: datetime) -> list[dict[str, Any]]:
    rows = session.execute(select(RiskFlag).where(RiskFlag.account_id == account_id).order_by(RiskFlag.id.desc()).limit(100)).scalars()
    return [flag_dict(f, now) for f in rows]


def flagged_accounts(session: Session, *, now: datetime, limit: int = 500) -> list[dict[str, Any]]:
    """Accounts with a flag in force (the risk desk's list)."""
    from opsline.customers.models import Account

    rows = session.execute(select(RiskFlag, Account.account_number, Account.name).join(Account, Account.id == RiskFlag.account_id)
                           .where(_active(now)).order_by(RiskFlag.set_at.desc()).limit(limit)).all()
    return [flag_dict(f, now) | {"account_number": num, "account_name": name} for f, num, name in rows]


def panel(session: Session, *, account_id: int, now: datetime) -> dict[str, Any]:
    """The account page panel: every flag (in force first) and the kinds a person can set."""
    allf = flags(session, account_id=account_id, now=now)
    return {"flags": sorted(allf, key=lambda f: (not f["active"], -f["id"])), "active": [f for f in allf if f["active"]], "kinds": [k.value for k in FlagKind]}


def home(session: Session, *, now: datetime, actor: Actor, tz: Any) -> list[Any]:
    """Cards: orders waiting for risk review (orders and debtors desks), accounts flagged now (support desk)."""
    from sqlalchemy import func

    from opsline.areas import HomeCard
    from opsline.customers.data_models import HoldState, OrderRiskHold

    waiting, oldest = session.execute(select(func.count(OrderRiskHold.id), func.min(OrderRiskHold.created_at))
                                      .where(OrderRiskHold.state == HoldState.PENDING.value)).one()
    flagged = session.execute(select(func.count(func.distinct(RiskFlag.account_id))).where(_active(now))).scalar_one()
    age = f"oldest {int((now - oldest).total_seconds() // 3600)} h" if oldest else "none waiting"
    return [
        HomeCard(desks=("service_manager", "debtors_manager", "billing_analyst"), title="Orders held for risk review", count=int(waiting),
                 href="/risk/holds", permission="orders.view", hint=age, tone="warn" if waiting else "normal", order=58),
        HomeCard(desks=("second_line_agent", "service_manager", "debtors_manager"), title="Accounts with a risk flag", count=int(flagged),
                 href="/risk/flags", permission="customers.view", hint="fraud, credit or other flags in force", order=59),
    ]


def demo_flags(ctx: Any) -> None:
    """Demo: two of the near-duplicate accounts carry risk flags (a fraud suspicion and a credit concern), so the risk
    cards, banners and the review path have something to show. Near-duplicates get no products, so no demo order is held."""
    from sqlalchemy.orm import Session as OrmSession

    from opsline.customers.models import Account

    with OrmSession(ctx.engine) as s, s.begin():
        first = int(max(ctx.account_ids)) if len(ctx.account_ids) else 0
        ids = list(s.execute(select(Account.id).where(Account.id > first).order_by(Account.id).limit(2)).scalars())
        reasons = [("fraud", "Caller could not confirm the ID number; same phone as an account under investigation"),
                   ("credit", "Bank returned the first two debit orders unpaid")]
        for acc_id, (kind, why) in zip(ids, reasons):
            set_flag(s, account_id=acc_id, kind=kind, reason=why, expires_at=None, now=ctx.now, actor=Actor(name="service", roles=frozenset({"service_manager"})))
    ctx.counts["risk_flags"] = len(ids)
