"""Refunds: suspense money back to the payer, or an account's credit balance back to the customer. Above the four-eyes limit
(setting `refund_four_eyes_limit_minor`) a second person approves; below it the policy approves at once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from opsline.billing import ledger
from opsline.core import domain_events, events
from opsline.core.errors import InvalidInput, NotFound, TransitionNotAllowed
from opsline.core.events import Actor
from opsline.core.lifecycle import ActionNotPermitted, transition
from opsline.core.money import Money
from opsline.payments import settings as policy
from opsline.payments.allocations import active_allocations
from opsline.payments.models import PAYMENT, REFUND, Payment, Refund, SuspenseItem
from opsline.users.roles import allowed


class UnableToRefund(InvalidInput):
    title = "Unable to refund"
    type_slug = "unable-to-refund"


class RefundExceedsCredit(UnableToRefund):
    type_slug = "refund-exceeds-credit"


REFUND_CREATED = "payments.refund_created"  # {"id"}: a refund requested (TMF676 RefundCreateEvent)

def available_credit_minor(session: Session, *, account_id: int) -> int:
    """Account credit that may be refunded: the credit balance on the ledger (overpayments, credit notes such as a final
    account's, less everything invoiced, less refunds already paid out) less refunds still waiting for approval."""
    credit = max(0, -ledger.balance_minor(session, account_id=account_id))
    waiting = session.execute(select(func.coalesce(func.sum(Refund.amount_minor), 0)).where(
        Refund.account_id == account_id, Refund.state == "requested")).scalar_one()
    return credit - int(waiting)


def request_refund(session: Session, *, amount: Money, reason: str, now: datetime, actor: Actor, account_id: int | None = None,
                   suspense_item_id: int | None = None, payee_name: str = "", payee_account: str = "", idempotency_key: str | None = None) -> dict[str, Any]:
    """Request a refund of an account's credit (`account_id`) or of a whole suspense item to its payer (`suspense_item_id`).
    Approved at once when within the four-eyes limit. Raises NotFound, UnableToRefund (no reason, wrong amount or currency,
    item closed or already being refunded), RefundExceedsCredit, ActionNotPermitted."""
    if not actor.is_system and not allowed(actor.roles, "payments.refund"):
        raise ActionNotPermitted("your role does not allow 'payments.refund'")
    if idempotency_key:
        prior = session.execute(select(Refund).where(Refund.idempotency_key == idempotency_key)).scalar_one_or_none()
        if prior is not None:
            return {"refund_id": prior.id, "state": prior.state, "replayed": True}
    reason = (reason or "").strip()
    if not reason:
        raise UnableToRefund("a reason is required for a refund", field="reason")
    if (account_id is None) == (suspense_item_id is None):
        raise UnableToRefund("refund either an account's credit or a suspense item", field="account_id")
    minor = amount.rounded().minor
    if minor <= 0:
        raise UnableToRefund("the amount must be positive", field="amount")
    payment_id = None
    if suspense_item_id is not None:
        item = session.get(SuspenseItem, suspense_item_id, with_for_update=True)  # two requests for one item wait in turn
        if item is None:
            raise NotFound(f"suspense item {suspense_item_id} not found")
        if item.closed_at is not None:
            raise UnableToRefund(f"suspense item {item.id} already left suspense ({item.outcome})", field="suspense_item_id")
        if session.execute(select(Refund.id).where(Refund.suspense_item_id == item.id, Refund.state == "requested")).first():
            raise UnableToRefund(f"suspense item {item.id} already has a refund waiting for approval", field="suspense_item_id")
        if amount.currency != item.currency or minor != item.amount_minor:
            raise UnableToRefund(f"a suspense refund returns the whole {Money.from_minor(item.amount_minor, item.currency)}", field="amount")
        pay = session.get(Payment, item.payment_id)
        assert pay is not None
        payment_id = pay.id
        payee_name = payee_name or pay.payer_name
        payee_account = payee_account or pay.payer_account
    else:
        # the account row is locked until commit, so two concurrent requests cannot both spend the same credit
        lock = " FOR UPDATE" if session.get_bind().dialect.name == "postgresql" else ""
        cur = session.execute(text(f"SELECT currency FROM account WHERE id = :a{lock}"), {"a": account_id}).scalar()
        if cur is None:
            raise NotFound(f"account {account_id} not found", field="account_id")
        if amount.currency != cur:
            raise UnableToRefund(f"the account is billed in {cur}, not {amount.currency}", field="amount")
        avail = available_credit_minor(session, account_id=int(account_id))  # type: ignore[arg-type]
        if minor > avail:
            raise RefundExceedsCredit(f"the account has {Money.from_minor(max(avail, 0), cur)} credit to refund; "
                                      f"{Money.from_minor(minor, cur)} is more", field="amount")
    if not payee_account.strip():
        raise UnableToRefund("the payee's bank account is needed to pay a refund", field="payee_account")
    r = Refund(account_id=account_id, payment_id=payment_id, suspense_item_id=suspense_item_id, amount_minor=minor, currency=amount.currency,
               state="requested", payee_name=payee_name[:200] or "payer", payee_account=payee_account.strip()[:40], reason=reason, requested_at=now,
               requested_by=actor.name, idempotency_key=idempotency_key)
    session.add(r)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="refund", entity_id=r.id, action="request", account_id=account_id, reason=reason,
                  after={"state": "requested", "amount_minor": minor, "currency": amount.currency, "suspense_item_id": suspense_item_id})
    domain_events.publish(session, REFUND_CREATED, {"id": r.id}, now=now, actor=actor)
    limit = policy.load(session).refund_four_eyes_limit_minor
    if minor <= limit:
        _approve(session, r, now=now, actor=Actor.system("refund-policy"), why=f"within the four-eyes limit of {Money.from_minor(limit, amount.currency)}")
    return {"refund_id": r.id, "state": r.state, "replayed": False, "needs_second_person": minor > limit}


def _approve(session: Session, r: Refund, *, now: datetime, actor: Actor, why: str | None = None) -> None:
    transition(session, REFUND, r, "approve", now=now, actor=actor, reason=why)
    r.decided_at, r.decided_by = now, actor.name
    if r.account_id is not None:
        ledger.post(session, account_id=r.account_id, kind="refund", ref_type="refund", ref_id=r.id, amount=Money.from_minor(r.amount_minor, r.currency),
                    now=now, description=f"Refund {r.id} of account credit to {r.payee_name}")
        return
    item = session.get(SuspenseItem, r.suspense_item_id)
    assert item is not None
    item.closed_at, item.closed_by, item.outcome, item.close_reason = now, actor.name, "refunded", f"refund {r.id}: {r.reason}"
    pay = session.get(Payment, r.payment_id)
    assert pay is not None
    session.flush()
    still_open = session.execute(select(SuspenseItem.id).where(SuspenseItem.payment_id == pay.id, SuspenseItem.closed_at.is_(None))).first()
    if pay.state == "suspense" and not still_open and not active_allocations(session, payment_id=pay.id):
        transition(session, PAYMENT, pay, "refund", now=now, actor=Actor.system("refund-policy") if actor.is_system else actor, reason=r.reason)


def approve_refund(session: Session, *, refund_id: int, now: datetime, actor: Actor) -> None:
    """The second person approves. Raises NotFound, FourEyesRequired (own request), ActionNotPermitted, TransitionNotAllowed."""
    r = session.get(Refund, refund_id)
    if r is None:
        raise NotFound(f"refund {refund_id} not found")
    if r.account_id is not None and r.state == "requested":
        # the credit must still be there: other refunds or reversals may have used it since the request
        avail = available_credit_minor(session, account_id=r.account_id) + r.amount_minor
        if r.amount_minor > avail:
            raise RefundExceedsCredit(f"the account now has only {Money.from_minor(max(avail, 0), r.currency)} credit", field="amount")
    _approve(session, r, now=now, actor=actor)


def reject_refund(session: Session, *, refund_id: int, reason: str, now: datetime, actor: Actor) -> None:
    """Raises NotFound, ReasonRequired, ActionNotPermitted, TransitionNotAllowed."""
    r = session.get(Refund, refund_id)
    if r is None:
        raise NotFound(f"refund {refund_id} not found")
    transition(session, REFUND, r, "reject", now=now, actor=actor, reason=reason)
    r.decided_at, r.decided_by = now, actor.name


def pending_refunds(session: Session, *, limit: int = 100) -> list[dict[str, Any]]:
    rows = session.execute(select(Refund).where(Refund.state == "requested").order_by(Refund.requested_at).limit(limit)).scalars()
    return [{"id": r.id, "account_id": r.account_id, "payment_id": r.payment_id, "amount_minor": r.amount_minor, "currency": r.currency,
             "payee_name": r.payee_name, "payee_account": r.payee_account, "reason": r.reason, "requested_at": r.requested_at,
             "requested_by": r.requested_by} for r in rows]


__all__ = ["UnableToRefund", "RefundExceedsCredit", "TransitionNotAllowed", "request_refund", "approve_refund", "reject_refund"]
