"""Read models for the B2B service pages and home cards: plain dicts, one query per page section."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsline.b2b.models import CHANGE, CONTRACT, CREDIT, METRICS, OPERATORS, B2BBillCheck, B2BChangeRequest, B2BContract, B2BReview, B2BServiceCredit, B2BSlaRule, B2BViolation, CreditState
from opsline.b2b.service import num
from opsline.core.errors import NotFound
from opsline.core.events import Actor
from opsline.customers.models import Account


def _d(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


def desk(session: Session, *, actor: Actor, limit: int = 200) -> dict[str, Any]:
    contracts = [_d(r) for r in session.execute(
        select(B2BContract.id, B2BContract.reference, B2BContract.name, B2BContract.state, B2BContract.valid_from, B2BContract.valid_to,
               B2BContract.currency, B2BContract.monthly_value_minor, B2BContract.credit_cap_minor, Account.id.label("account_id"),
               Account.account_number, Account.name.label("account_name"))
        .join(Account, Account.id == B2BContract.account_id).order_by(B2BContract.id).limit(limit)).all()]
    credits = credits_list(session, state=CreditState.PROPOSED, actor=actor, limit=limit)
    pending_changes = changes_list(session, states=("submitted", "approved", "quoted", "in_delivery"), actor=actor, limit=limit)
    violations = violations_list(session, limit=50)
    return {"contracts": contracts, "credits": credits, "violations": violations, "b2b_accounts": b2b_accounts(session), "changes": pending_changes}


def b2b_accounts(session: Session, limit: int = 500) -> list[dict[str, Any]]:
    return [_d(r) for r in session.execute(select(Account.id, Account.account_number, Account.name).where(Account.kind == "b2b")
                                           .order_by(Account.name).limit(limit)).all()]


def violations_list(session: Session, *, contract_id: int | None = None, limit: int = 200) -> list[dict[str, Any]]:
    q = (select(B2BViolation.id, B2BViolation.period, B2BViolation.metric, B2BViolation.actual_value, B2BViolation.reference_value,
                B2BViolation.sample_size, B2BViolation.cause, B2BViolation.contract_id, B2BContract.reference.label("contract_reference"),
                B2BContract.currency, Account.name.label("account_name"), B2BServiceCredit.id.label("credit_id"),
                B2BServiceCredit.state.label("credit_state"), B2BServiceCredit.amount_minor.label("credit_minor"))
         .join(B2BContract, B2BContract.id == B2BViolation.contract_id).join(Account, Account.id == B2BViolation.account_id)
         .outerjoin(B2BServiceCredit, B2BServiceCredit.violation_id == B2BViolation.id))
    if contract_id is not None:
        q = q.where(B2BViolation.contract_id == contract_id)
    rows = [_d(r) for r in session.execute(q.order_by(B2BViolation.period.desc(), B2BViolation.id.desc()).limit(limit)).all()]
    for r in rows:
        r["metric_label"], r["unit"] = METRICS[r["metric"]][1], METRICS[r["metric"]][0]
        r["actual"], r["reference"] = num(r["actual_value"]), num(r["reference_value"])
    return rows


def credits_list(session: Session, *, state: str | None = None, contract_id: int | None = None, actor: Actor | None = None,
                 limit: int = 200) -> list[dict[str, Any]]:
    q = (select(B2BServiceCredit.id, B2BServiceCredit.period, B2BServiceCredit.amount_minor, B2BServiceCredit.currency, B2BServiceCredit.state,
                B2BServiceCredit.proposed_by, B2BServiceCredit.proposed_at, B2BServiceCredit.decided_by, B2BServiceCredit.pending_charge_id,
                B2BServiceCredit.violation_id, B2BViolation.metric, B2BViolation.cause, B2BContract.reference.label("contract_reference"),
                B2BContract.id.label("contract_id"), Account.name.label("account_name"))
         .join(B2BViolation, B2BViolation.id == B2BServiceCredit.violation_id).join(B2BContract, B2BContract.id == B2BServiceCredit.contract_id)
         .join(Account, Account.id == B2BServiceCredit.account_id))
    if state is not None:
        q = q.where(B2BServiceCredit.state == state)
    if contract_id is not None:
        q = q.where(B2BServiceCredit.contract_id == contract_id)
    rows = [_d(r) for r in session.execute(q.order_by(B2BServiceCredit.proposed_at, B2BServiceCredit.id).limit(limit)).all()]
    for r in rows:
        r["buttons"] = [b for b in CREDIT.buttons(r["state"], actor=actor)
                        if not (b["four_eyes"] and actor is not None and r["proposed_by"] == actor.name)]
        r["metric_label"] = METRICS[r["metric"]][1]
    return rows


def contract_detail(session: Session, *, contract_id: int, actor: Actor) -> dict[str, Any]:
    row = session.execute(select(B2BContract, Account.account_number, Account.name.label("account_name"))
                          .join(Account, Account.id == B2BContract.account_id).where(B2BContract.id == contract_id)).first()
    if row is None:
        raise NotFound(f"contract {contract_id} not found", field="contract_id")
    c = row[0]
    contract = {k: getattr(c, k) for k in ("id", "reference", "name", "state", "valid_from", "valid_to", "currency", "monthly_value_minor",
                                           "credit_cap_minor", "terms", "account_id", "created_by", "created_at")}
    contract.update(account_number=row.account_number, account_name=row.account_name, buttons=CONTRACT.buttons(c.state, actor=actor))
    rules = [_d(r) for r in session.execute(select(B2BSlaRule.id, B2BSlaRule.metric, B2BSlaRule.unit, B2BSlaRule.reference_value, B2BSlaRule.operator,
                                                   B2BSlaRule.tolerance, B2BSlaRule.consequence, B2BSlaRule.credit_percent, B2BSlaRule.credit_fixed_minor,
                                                   B2BSlaRule.description).where(B2BSlaRule.contract_id == contract_id).order_by(B2BSlaRule.id)).all()]
    for r in rules:
        r["metric_label"] = METRICS[r["metric"]][1]
        r["reference"], r["tol"] = num(r["reference_value"]), num(r["tolerance"])
        r["percent"] = num(r["credit_percent"]) if r["credit_percent"] is not None else None
    return {"contract": contract, "rules": rules, "violations": violations_list(session, contract_id=contract_id),
            "changes": changes_list(session, contract_id=contract_id, actor=actor),
            "credits": credits_list(session, contract_id=contract_id, actor=actor), "metrics": METRICS, "operators": OPERATORS}


def counts(session: Session, *, period: date) -> dict[str, Any]:
    """Home-card figures: credits waiting, violations last month, active contracts, and violations per month (chart)."""
    waiting = session.execute(select(func.count(), func.coalesce(func.sum(B2BServiceCredit.amount_minor), 0), func.min(B2BServiceCredit.proposed_at))
                              .where(B2BServiceCredit.state == CreditState.PROPOSED)).one()
    per_month = session.execute(select(B2BViolation.period, func.count()).group_by(B2BViolation.period).order_by(B2BViolation.period.desc()).limit(12)).all()
    contracts = session.execute(select(func.count()).select_from(B2BContract).where(B2BContract.state == "active")).scalar_one()
    checks = session.execute(select(func.count()).select_from(B2BBillCheck).where(B2BBillCheck.state == "open")).scalar_one()
    drafts = session.execute(select(func.count()).select_from(B2BReview).where(B2BReview.state == "draft")).scalar_one()
    open_changes = dict(session.execute(select(B2BChangeRequest.state, func.count()).where(B2BChangeRequest.state.in_(("submitted", "approved", "quoted", "in_delivery")))
                                        .group_by(B2BChangeRequest.state)).all())
    last = dict((p, int(n)) for p, n in per_month).get(period, 0)
    return {"credits_waiting": int(waiting[0]), "credits_waiting_minor": int(waiting[1] or 0), "oldest_credit": waiting[2],
            "violations_last_month": last, "contracts": int(contracts), "reviews_to_release": int(drafts), "bill_checks": int(checks), "changes": {k: int(v) for k, v in open_changes.items()},
            "per_month": [(p.strftime("%Y-%m"), int(n)) for p, n in reversed(per_month)]}




def reviews_list(session: Session, *, period: date | None, limit: int = 500) -> list[dict[str, Any]]:
    q = (select(B2BReview.id, B2BReview.period, B2BReview.state, B2BReview.released_at, B2BReview.released_by, B2BReview.messages_sent,
                B2BContract.reference.label("contract_reference"), Account.name.label("account_name"), Account.account_number)
         .join(B2BContract, B2BContract.id == B2BReview.contract_id).join(Account, Account.id == B2BReview.account_id))
    if period is not None:
        q = q.where(B2BReview.period == period)
    return [_d(r) for r in session.execute(q.order_by(B2BReview.period.desc(), Account.name).limit(limit)).all()]


def review_period(session: Session, *, review_id: int) -> date:
    p = session.execute(select(B2BReview.period).where(B2BReview.id == review_id)).scalar_one_or_none()
    if p is None:
        raise NotFound(f"service review {review_id} not found", field="review_id")
    return p


def change_contract(session: Session, *, change_id: int) -> int:
    cid = session.execute(select(B2BChangeRequest.contract_id).where(B2BChangeRequest.id == change_id)).scalar_one_or_none()
    if cid is None:
        raise NotFound(f"change request {change_id} not found", field="change_id")
    return int(cid)


def changes_list(session: Session, *, contract_id: int | None = None, states: tuple[str, ...] | None = None, actor: Actor | None = None,
                 limit: int = 200) -> list[dict[str, Any]]:
    q = (select(B2BChangeRequest.id, B2BChangeRequest.reference, B2BChangeRequest.title, B2BChangeRequest.scope, B2BChangeRequest.impact,
                B2BChangeRequest.price_minor, B2BChangeRequest.currency, B2BChangeRequest.state, B2BChangeRequest.quote_id, B2BChangeRequest.order_id,
                B2BChangeRequest.created_by, B2BChangeRequest.created_at, B2BChangeRequest.delivered_at, B2BChangeRequest.contract_id,
                Account.name.label("account_name")).join(Account, Account.id == B2BChangeRequest.account_id))
    if contract_id is not None:
        q = q.where(B2BChangeRequest.contract_id == contract_id)
    if states is not None:
        q = q.where(B2BChangeRequest.state.in_(states))
    rows = [_d(r) for r in session.execute(q.order_by(B2BChangeRequest.id.desc()).limit(limit)).all()]
    for r in rows:
        r["buttons"] = [b for b in CHANGE.buttons(r["state"], actor=actor) if b["action"] in ("approve", "reject", "withdraw")
                        and not (b["four_eyes"] and actor is not None and r["created_by"] == actor.name)]
        r["can_quote"] = r["scope"] == "out_of_scope" and r["state"] == "approved"
        r["can_link"] = r["state"] == "quoted" or (r["state"] == "approved" and r["scope"] == "in_scope")
    return rows


def account_panel(session: Session, *, account_id: int, **_: Any) -> dict[str, Any]:
    """The account page's B2B service panel: the customer's contracts, recent violations and reviews."""
    contracts = [_d(r) for r in session.execute(select(B2BContract.id, B2BContract.reference, B2BContract.name, B2BContract.state, B2BContract.currency,
                                                       B2BContract.credit_cap_minor).where(B2BContract.account_id == account_id)
                                                .order_by(B2BContract.id)).all()]
    if not contracts:
        return {"account_id": account_id, "contracts": [], "violations": [], "reviews": []}
    violations = [_d(r) for r in session.execute(select(B2BViolation.period, B2BViolation.metric, B2BViolation.cause, B2BViolation.contract_id)
                                                 .where(B2BViolation.account_id == account_id)
                                                 .order_by(B2BViolation.period.desc(), B2BViolation.id.desc()).limit(10)).all()]
    for v in violations:
        v["metric_label"] = METRICS[v["metric"]][1]
    reviews = [_d(r) for r in session.execute(select(B2BReview.id, B2BReview.period, B2BReview.state).where(B2BReview.account_id == account_id)
                                              .order_by(B2BReview.period.desc()).limit(12)).all()]
    return {"account_id": account_id, "contracts": contracts, "violations": violations, "reviews": reviews}
