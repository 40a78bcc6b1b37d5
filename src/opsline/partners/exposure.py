"""Fee exposure on FNO deactivations: every day a line stays active at the FNO after its effective (requested) date
costs the wholesale line fee; jeopardy for delete orders not confirmed by their due date (the partner's deactivation
SLA on the business calendar, fixed at submission); and claims to the FNO for that money where the delay was theirs
(sent in time, confirmed late): proposed -> sent -> accepted / rejected -> credited. Figures are set-based SQL.

Cost per order: a partner whose late_deactivation_period is 'day' costs late_deactivation_cost_minor per day; 'month'
costs the monthly fee (late_deactivation_cost_minor, else monthly_line_cost_minor) pro rata per day on a 365-day year,
amount = monthly x days x 12 / 365, rounded half up to the minor unit once per order (totals add the rounded orders)."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, func, insert, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsline.core import events, lifecycle
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.core.lifecycle import Lifecycle
from opsline.core.localtime import local_date
from opsline.core.money import Money
from opsline.customers.models import Account
from opsline.db.base import Base, IdPk, sqlite_utc
from opsline.partners.models import PartnerServiceOrder


class ClaimState(enum.StrEnum):
    PROPOSED = "proposed"
    SENT = "sent"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CREDITED = "credited"
    WITHDRAWN = "withdrawn"


K = ClaimState

FNO_CLAIM = Lifecycle(
    name="fno_claim",
    states=ClaimState,
    initial=K.PROPOSED,
    transitions={
        K.PROPOSED: {"send": K.SENT, "withdraw": K.WITHDRAWN},
        K.SENT: {"accept": K.ACCEPTED, "reject": K.REJECTED},
        K.ACCEPTED: {"credit": K.CREDITED},
        K.REJECTED: {}, K.CREDITED: {}, K.WITHDRAWN: {},
    },
    permissions={"send": "partners.claims", "withdraw": "partners.claims", "accept": "partners.claims", "reject": "partners.claims",
                 "credit": "partners.claims"},
    needs_reason={"withdraw", "reject"},
    labels={"send": "Send to FNO", "accept": "FNO accepted", "reject": "FNO rejected", "credit": "FNO credit received"},
)


class FnoClaim(Base):
    """A claim to an FNO for the line fees of the days a line stayed active after its effective date by the FNO's delay."""

    __tablename__ = "fno_claim"

    id: Mapped[IdPk]
    number: Mapped[str] = mapped_column(String(24), unique=True)
    partner_code: Mapped[str] = mapped_column(String(30), ForeignKey("partner.code"))
    service_order_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("partner_service_order.id"), unique=True)
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    product_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("product.id"))
    state: Mapped[str] = mapped_column(String(20), default=ClaimState.PROPOSED)
    effective_date: Mapped[date]
    confirmed_date: Mapped[date]
    days: Mapped[int] = mapped_column(Integer)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    credited_minor: Mapped[int | None] = mapped_column(BigInteger)
    state_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))
    updated_at: Mapped[datetime]

    __table_args__ = (FNO_CLAIM.check(), CheckConstraint("days > 0 AND amount_minor >= 0", name="amount"),
                      Index("ix_fno_claim_partner_state", "partner_code", "state"))


class UnableToActOnClaim(InvalidInput):
    title = "Cannot act on the claim"
    type_slug = "unable-to-act-on-claim"


class ClaimNotFound(NotFound):
    pass


def _pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _days_sql(pg: bool) -> str:
    end = "COALESCE(so.confirmed_date, CAST(:today AS DATE))" if pg else "COALESCE(so.confirmed_date, :today)"
    return f"({end} - so.requested_date)" if pg else f"CAST(julianday({end}) - julianday(so.requested_date) AS INTEGER)"


def _amount_sql(days: str) -> str:
    # integer arithmetic, half up: (2 x monthly x days x 12 + 365) / (2 x 365)
    return (f"CASE WHEN p.late_deactivation_period = 'day' THEN p.late_deactivation_cost_minor * {days} "
            f"ELSE (2 * CAST(CASE WHEN p.late_deactivation_cost_minor > 0 THEN p.late_deactivation_cost_minor ELSE p.monthly_line_cost_minor END AS BIGINT)"
            f" * {days} * 12 + 365) / 730 END")


def _bind_today(session: Session, today: date) -> Any:
    return today if _pg(session) else today.isoformat()


# delete orders whose line may still be costing us: not cancelled, and not superseded by a later delete for the product
_EXPOSED_FROM = """
    FROM partner_service_order so JOIN partner p ON p.code = so.partner_code AND p.kind = 'fno'
    JOIN account a ON a.id = so.account_id
    WHERE so.action = 'delete' AND so.state <> 'cancelled'
      AND NOT EXISTS (SELECT 1 FROM partner_service_order s2 WHERE s2.product_id = so.product_id AND s2.action = 'delete'
                      AND s2.id > so.id AND s2.state <> 'cancelled')"""


def exposure(session: Session, *, today: date, partner_code: str | None = None, open_only: bool = False, limit: int = 100, offset: int = 0,
             effective_from: date | None = None, effective_to: date | None = None) -> dict[str, Any]:
    """Fee exposure of FNO delete orders as of local date `today`: per order (days active after the effective date and
    their cost, growing daily while unconfirmed), per FNO and in total. Three queries whatever the size. Optionally
    only orders whose effective date is in [effective_from, effective_to).
    Returns {"items", "total_items", "by_partner": [...], "total_minor", "currency"}."""
    pg = _pg(session)
    days = _days_sql(pg)
    where = ""
    params: dict[str, Any] = {"today": _bind_today(session, today), "limit": limit, "offset": offset}
    if partner_code:
        where += " AND so.partner_code = :partner"
        params["partner"] = partner_code
    if effective_from is not None:
        where += " AND so.requested_date >= :eff_from"
        params["eff_from"] = _bind_today(session, effective_from)
    if effective_to is not None:
        where += " AND so.requested_date < :eff_to"
        params["eff_to"] = _bind_today(session, effective_to)
    if open_only:
        where += " AND so.confirmed_date IS NULL"
    base = f"{_EXPOSED_FROM}{where} AND {days} > 0"
    by_partner = session.execute(text(f"""SELECT so.partner_code, p.name, p.currency, COUNT(*) AS n, SUM({days}) AS days, SUM({_amount_sql(days)}) AS amount,
            SUM(CASE WHEN so.confirmed_date IS NULL THEN 1 ELSE 0 END) AS growing
        {base} GROUP BY so.partner_code, p.name, p.currency ORDER BY amount DESC"""), params).all()
    rows = session.execute(text(f"""SELECT so.id, so.external_ref, so.partner_code, p.name AS partner_name, so.account_id, a.account_number, a.name AS account_name,
            so.product_id, so.state, so.requested_date, so.due_date, so.confirmed_date, so.created_at, {days} AS days, {_amount_sql(days)} AS amount, p.currency
        {base} ORDER BY {days} DESC, so.id LIMIT :limit OFFSET :offset"""), params).all()
    items = [{"id": r.id, "external_ref": r.external_ref, "partner_code": r.partner_code, "partner_name": r.partner_name, "account_id": r.account_id,
              "account_number": r.account_number, "account_name": r.account_name, "product_id": r.product_id, "state": r.state,
              "requested_date": _d(r.requested_date), "due_date": _d(r.due_date), "confirmed_date": _d(r.confirmed_date), "days": int(r.days),
              "amount_minor": int(r.amount), "amount": Money.from_minor(int(r.amount), r.currency), "growing": r.confirmed_date is None,
              "fno_delay": _d(r.due_date) <= _d(r.requested_date)} for r in rows]
    parts = [{"partner_code": r.partner_code, "partner_name": r.name, "orders": int(r.n), "days": int(r.days or 0), "amount_minor": int(r.amount or 0),
              "amount": Money.from_minor(int(r.amount or 0), r.currency), "growing": int(r.growing or 0), "currency": r.currency} for r in by_partner]
    currency = parts[0]["currency"] if parts else "ZAR"
    total = sum(p["amount_minor"] for p in parts if p["currency"] == currency)
    return {"items": items, "total_items": sum(p["orders"] for p in parts), "by_partner": parts, "total_minor": total,
            "total": Money.from_minor(total, currency), "currency": currency, "today": today}


def exposure_by_month(session: Session, *, today: date, since: date | None = None) -> list[dict[str, Any]]:
    """Fee exposure per FNO and month of the effective date (the month the line should have ceased), as of local date
    `today`, the same per-order amounts as `exposure`; one grouped query. Rows ordered by month, then FNO."""
    pg = _pg(session)
    days = _days_sql(pg)
    month = "to_char(so.requested_date, 'YYYY-MM')" if pg else "strftime('%Y-%m', so.requested_date)"
    params: dict[str, Any] = {"today": _bind_today(session, today)}
    where = ""
    if since is not None:
        where = " AND so.requested_date >= :since"
        params["since"] = _bind_today(session, since)
    rows = session.execute(text(f"""SELECT {month} AS month, so.partner_code, p.name, p.currency, COUNT(*) AS n, SUM({days}) AS days,
            SUM({_amount_sql(days)}) AS amount, SUM(CASE WHEN so.confirmed_date IS NULL THEN 1 ELSE 0 END) AS growing
        {_EXPOSED_FROM}{where} AND {days} > 0 GROUP BY {month}, so.partner_code, p.name, p.currency ORDER BY 1, 2"""), params).all()
    return [{"month": r.month, "partner_code": r.partner_code, "partner_name": r.name, "currency": r.currency, "orders": int(r.n),
             "days": int(r.days or 0), "amount_minor": int(r.amount or 0), "amount": Money.from_minor(int(r.amount or 0), r.currency),
             "growing": int(r.growing or 0)} for r in rows]


def _d(v: Any) -> date | None:
    if v is None or isinstance(v, date):
        return v
    return date.fromisoformat(str(v)[:10])


def order_exposure(session: Session, *, service_order_id: int, today: date) -> dict[str, Any] | None:
    """One delete order's exposure (None when it has none)."""
    pg = _pg(session)
    days = _days_sql(pg)
    r = session.execute(text(f"SELECT {days} AS days, {_amount_sql(days)} AS amount, p.currency {_EXPOSED_FROM} AND so.id = :id"),
                        {"today": _bind_today(session, today), "id": service_order_id}).first()
    if r is None or int(r.days) <= 0:
        return None
    return {"days": int(r.days), "amount_minor": int(r.amount), "amount": Money.from_minor(int(r.amount), r.currency)}


def jeopardy(session: Session, *, today: date, limit: int = 100) -> dict[str, Any]:
    """Open delete orders not confirmed by their due date (late) or due today (at risk), oldest due first."""
    rows = session.execute(text("""SELECT so.id, so.external_ref, so.partner_code, p.name AS partner_name, so.account_id, a.account_number, so.state,
            so.requested_date, so.due_date, so.delivered_at
        FROM partner_service_order so JOIN partner p ON p.code = so.partner_code JOIN account a ON a.id = so.account_id
        WHERE so.action = 'delete' AND so.state IN ('acknowledged', 'held', 'inProgress') AND so.due_date <= :today
        ORDER BY so.due_date, so.id LIMIT :limit"""), {"today": _bind_today(session, today), "limit": limit}).all()
    counts = session.execute(text("""SELECT SUM(CASE WHEN so.due_date < :today THEN 1 ELSE 0 END), SUM(CASE WHEN so.due_date = :today THEN 1 ELSE 0 END)
        FROM partner_service_order so WHERE so.action = 'delete' AND so.state IN ('acknowledged', 'held', 'inProgress') AND so.due_date <= :today"""),
                             {"today": _bind_today(session, today)}).one()
    items = [{"id": r.id, "external_ref": r.external_ref, "partner_code": r.partner_code, "partner_name": r.partner_name, "account_id": r.account_id,
              "account_number": r.account_number, "state": r.state, "requested_date": _d(r.requested_date), "due_date": _d(r.due_date),
              "delivered": r.delivered_at is not None, "level": "jeopardy" if _d(r.due_date) < today else "at_risk",
              "days_late": max(0, (today - _d(r.due_date)).days)} for r in rows]
    return {"items": items, "late": int(counts[0] or 0), "at_risk": int(counts[1] or 0)}


# --- claims ---------------------------------------------------------------------------------------

def propose_claims(session: Session, *, today: date, now: datetime, actor: Actor) -> dict[str, Any]:
    """Propose a claim for every confirmed delete order the FNO confirmed after its effective date although it was sent
    in time (its SLA due date fell on or before the effective date), for the exposure amount; one per order (set-based
    INSERT ... SELECT; a second run proposes nothing more). Returns {"proposed": n}."""
    pg = _pg(session)
    days = _days_sql(pg)
    params = {"today": _bind_today(session, today), "now": now if pg else sqlite_utc(now),
              "actor": actor.name}
    sql = f"""INSERT INTO fno_claim (number, partner_code, service_order_id, account_id, product_id, state, effective_date, confirmed_date, days,
                                     amount_minor, currency, created_at, created_by, updated_at)
        SELECT 'FC-' || so.external_ref, so.partner_code, so.id, so.account_id, so.product_id, 'proposed', so.requested_date, so.confirmed_date,
               {days}, {_amount_sql(days)}, p.currency, :now, :actor, :now
        {_EXPOSED_FROM} AND so.state = 'completed' AND so.confirmed_date > so.requested_date AND so.due_date <= so.requested_date
          AND NOT EXISTS (SELECT 1 FROM fno_claim c WHERE c.service_order_id = so.id)"""
    before = session.execute(select(func.coalesce(func.max(FnoClaim.id), 0))).scalar_one()
    n = session.execute(text(sql), params).rowcount or 0
    made = session.execute(select(FnoClaim.id, FnoClaim.account_id, FnoClaim.amount_minor, FnoClaim.number).where(FnoClaim.id > before)).all() if n else []
    if made:
        session.execute(insert(events.AuditEvent), [{"occurred_at": now, "actor": actor.name, "entity_type": FNO_CLAIM.name, "entity_id": str(r.id),
                                                     "account_id": r.account_id, "action": "proposed", "reason": "FNO confirmed the deactivation late",
                                                     "before": None, "after": {"number": r.number, "amount_minor": r.amount_minor}} for r in made])
    return {"proposed": int(n)}


def claim_dict(c: FnoClaim, *, actor: Actor | None = None) -> dict[str, Any]:
    return {"id": c.id, "number": c.number, "partner_code": c.partner_code, "service_order_id": c.service_order_id, "account_id": c.account_id,
            "product_id": c.product_id, "state": c.state, "effective_date": c.effective_date, "confirmed_date": c.confirmed_date, "days": c.days,
            "amount_minor": c.amount_minor, "amount": Money.from_minor(c.amount_minor, c.currency), "currency": c.currency,
            "credited_minor": c.credited_minor, "credited": Money.from_minor(c.credited_minor, c.currency) if c.credited_minor is not None else None,
            "state_reason": c.state_reason, "created_at": c.created_at, "updated_at": c.updated_at,
            "buttons": FNO_CLAIM.buttons(c.state, actor=actor)}


def list_claims(session: Session, *, state: str | None = None, partner_code: str | None = None, limit: int = 200, actor: Actor | None = None) -> dict[str, Any]:
    """Claims (newest first) with counts and amounts per state."""
    q = select(FnoClaim).order_by(FnoClaim.id.desc()).limit(limit)
    if state:
        q = q.where(FnoClaim.state == state)
    if partner_code:
        q = q.where(FnoClaim.partner_code == partner_code)
    items = [claim_dict(c, actor=actor) for c in session.execute(q).scalars()]
    sums = {s: {"count": 0, "amount_minor": 0} for s in FNO_CLAIM.state_values()}
    for st, n, amt in session.execute(select(FnoClaim.state, func.count(), func.coalesce(func.sum(FnoClaim.amount_minor), 0)).group_by(FnoClaim.state)).all():
        sums[st] = {"count": int(n), "amount_minor": int(amt)}
    return {"items": items, "by_state": sums, "states": FNO_CLAIM.state_values()}


def act_on_claim(session: Session, *, claim_id: int, action: str, now: datetime, actor: Actor, reason: str | None = None,
                 credited_minor: int | None = None) -> dict[str, Any]:
    """Move a claim through its lifecycle (send, accept, reject, credit, withdraw). 'credit' records the amount the FNO
    credited (0 < credited <= claimed; the claimed amount when not given). Raises ClaimNotFound, TransitionNotAllowed,
    ActionNotPermitted, ReasonRequired, UnableToActOnClaim (credited amount)."""
    c = session.execute(select(FnoClaim).where(FnoClaim.id == claim_id).with_for_update()).scalar_one_or_none() if 0 < claim_id < 2**62 else None
    if c is None:
        raise ClaimNotFound(f"claim {claim_id} not found", field="claim_id")
    details: dict[str, Any] = {"number": c.number, "amount_minor": c.amount_minor}
    if action == "credit":
        amount = c.amount_minor if credited_minor is None else int(credited_minor)
        if not 0 < amount <= c.amount_minor:
            raise UnableToActOnClaim(f"the credited amount must be above zero and at most {Money.from_minor(c.amount_minor, c.currency)}", field="credited_minor")
        details["credited_minor"] = amount
    lifecycle.transition(session, FNO_CLAIM, c, action, now=now, actor=actor, reason=reason, details=details, label=f"claim {c.number}")
    if action == "credit":
        c.credited_minor = details["credited_minor"]
    if reason:
        c.state_reason = reason
    c.updated_at = now
    return claim_dict(c, actor=actor)


def claims_export_rows(session: Session, *, state: str | None = None) -> tuple[list[str], list[list[Any]]]:
    header = ["Claim", "FNO", "Service order", "Account", "Product", "State", "Effective date", "Confirmed date", "Days", "Amount", "Currency", "Credited"]
    q = (select(FnoClaim, PartnerServiceOrder.external_ref, Account.account_number).join(PartnerServiceOrder, PartnerServiceOrder.id == FnoClaim.service_order_id)
         .join(Account, Account.id == FnoClaim.account_id).order_by(FnoClaim.id))
    if state:
        q = q.where(FnoClaim.state == state)
    rows = []
    for c, ext, acc in session.execute(q).all():
        rows.append([c.number, c.partner_code, ext, acc, c.product_id, c.state, c.effective_date.isoformat(), c.confirmed_date.isoformat(), c.days,
                     Money.from_minor(c.amount_minor, c.currency).amount, c.currency,
                     Money.from_minor(c.credited_minor, c.currency).amount if c.credited_minor is not None else ""])
    return header, rows


def exposure_page(session: Session, *, now: datetime, tz: ZoneInfo, partner_code: str | None = None, actor: Actor | None = None) -> dict[str, Any]:
    today = local_date(now, tz)
    return {"exposure": exposure(session, today=today, partner_code=partner_code), "jeopardy": jeopardy(session, today=today),
            "claims": list_claims(session, limit=50, actor=actor), "partner_code": partner_code or ""}
