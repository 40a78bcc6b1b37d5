"""Allocation work a person does: approve proposals (a batch in one action), reject them to suspense, reverse an allocation
(history kept, ledger reversed), allocate suspense money to one or several accounts/invoices, reassign suspense, and capture
cash/card/EFT payments. Every ledger entry goes through billing.ledger; settled and re-opened invoices are announced."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Iterable

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from opsline.billing import ledger
from opsline.core import domain_events, events
from opsline.core.errors import InvalidInput, NotFound, TransitionNotAllowed
from opsline.core.events import Actor
from opsline.core.lifecycle import transition
from opsline.core.money import Money
from opsline.payments import matching
from opsline.payments import settings as policy
from opsline.payments.models import ALLOCATION, METHODS, PAYMENT, Allocation, Payment, SuspenseItem

REOPENED = "payments.invoice_reopened"


class UnableToAllocate(InvalidInput):
    title = "Unable to allocate"
    type_slug = "unable-to-allocate"


class AllocationExceedsPayment(UnableToAllocate):
    type_slug = "allocation-exceeds-payment"


class AllocationExceedsInvoice(UnableToAllocate):
    type_slug = "allocation-exceeds-invoice"


class UnableToCapturePayment(InvalidInput):
    title = "Unable to record the payment"
    type_slug = "unable-to-capture-payment"


@dataclass(frozen=True)
class Part:
    """One piece of a split: an account, optionally one of its invoices (none = account credit), and an amount."""

    account_id: int
    amount: Money
    invoice_id: int | None = None


PAYMENT_CREATED = "payments.payment_created"  # {"id"}: a payment captured (TMF676 PaymentCreateEvent)

def invoice_open(session: Session, *, invoice_ids: Iterable[int], reserve_proposals: bool = True) -> dict[int, dict[str, Any]]:
    """{invoice id: {account_id, number, currency, total_minor, open_minor}} with open = total − credit notes − allocations
    (allocated, and proposed when `reserve_proposals`)."""
    ids = sorted({int(i) for i in invoice_ids})
    if not ids:
        return {}
    states = "('allocated','proposed')" if reserve_proposals else "('allocated')"
    marks = ",".join(str(i) for i in ids)
    rows = session.execute(text(f"""
        SELECT i.id, i.account_id, i.number, i.currency, i.total_minor,
               i.total_minor - COALESCE((SELECT SUM(c.total_minor) FROM credit_note c WHERE c.invoice_id = i.id), 0)
                 - COALESCE((SELECT SUM(a.amount_minor) FROM payment_allocation a WHERE a.invoice_id = i.id AND a.state IN {states}), 0) AS open_minor
        FROM invoice i WHERE i.id IN ({marks})""")).all()
    return {r.id: {"account_id": r.account_id, "number": r.number, "currency": r.currency, "total_minor": int(r.total_minor),
                   "open_minor": int(r.open_minor)} for r in rows}


def _post(session: Session, alloc: Allocation, *, now: datetime, reversal: bool = False) -> None:
    what = f"Reversal of payment {alloc.payment_id} allocation {alloc.id}" if reversal else f"Payment {alloc.payment_id} ({alloc.rule_code})"
    ledger.post(session, account_id=alloc.account_id, kind="payment", ref_type="allocation", ref_id=alloc.id,
                amount=Money.from_minor(alloc.amount_minor if reversal else -alloc.amount_minor, alloc.currency), now=now, description=what)


def _announce_settled(session: Session, invoice_ids: Iterable[int], *, now: datetime, actor: Actor) -> None:
    rows = invoice_open(session, invoice_ids=[i for i in invoice_ids if i], reserve_proposals=False)
    matching.announce_settled(session, [(inv_id, row["account_id"]) for inv_id, row in sorted(rows.items()) if row["open_minor"] <= 0],
                              now=now, actor=actor)


def _payment(session: Session, payment_id: int) -> Payment:
    p = session.get(Payment, payment_id)
    if p is None:
        raise NotFound(f"payment {payment_id} not found")
    return p


def _open_suspense(session: Session, *, payment: Payment, amount_minor: int, now: datetime, reason: str) -> SuspenseItem:
    item = SuspenseItem(payment_id=payment.id, amount_minor=amount_minor, currency=payment.currency, owner=policy.value(session, "suspense_owner"),
                        opened_at=now, opened_reason=reason[:300])
    session.add(item)
    session.flush()
    return item


def approve_proposals(session: Session, *, payment_ids: Iterable[int], now: datetime, actor: Actor) -> dict[str, int]:
    """Approve the proposed allocations of these payments in one action: allocations become allocated, the ledger is posted,
    settled invoices announced. Raises NotFound, TransitionNotAllowed (a payment is not proposed), ActionNotPermitted.
    Nothing changes if any payment fails."""
    ids = sorted({int(i) for i in payment_ids})
    if not ids:
        raise InvalidInput("choose at least one proposal to approve", field="payment_ids")
    touched: set[int] = set()
    n_alloc = 0
    with domain_events.collect(session):
        for pid in ids:
            p = _payment(session, pid)
            transition(session, PAYMENT, p, "approve", now=now, actor=actor, details={"batch": len(ids)})
            for a in session.execute(select(Allocation).where(Allocation.payment_id == pid, Allocation.state == "proposed")).scalars():
                transition(session, ALLOCATION, a, "approve", now=now, actor=actor, details={"rule": a.rule_code, "score": a.score}, publish=False)
                a.decided_at, a.decided_by = now, actor.name
                _post(session, a, now=now)
                touched.add(a.invoice_id or 0)
                n_alloc += 1
            session.execute(text("""INSERT INTO payment_known_payer (payer_account, account_id, first_seen_on)
                                    SELECT p.payer_account, p.account_id, p.received_on FROM payment p WHERE p.id = :p AND p.payer_account <> ''
                                    AND p.account_id IS NOT NULL ON CONFLICT (payer_account, account_id) DO NOTHING"""), {"p": pid})
        session.flush()
        _announce_settled(session, touched, now=now, actor=actor)
    return {"payments": len(ids), "allocations": n_alloc}


def reject_proposal(session: Session, *, payment_id: int, reason: str, now: datetime, actor: Actor) -> int:
    """Reject a proposal: the money goes to suspense with the reason. Returns the suspense item id.
    Raises NotFound, TransitionNotAllowed, ReasonRequired."""
    p = _payment(session, payment_id)
    transition(session, PAYMENT, p, "reject", now=now, actor=actor, reason=reason)
    for a in session.execute(select(Allocation).where(Allocation.payment_id == payment_id, Allocation.state == "proposed")).scalars():
        transition(session, ALLOCATION, a, "reject", now=now, actor=actor, reason=reason, publish=False)
        a.decided_at, a.decided_by = now, actor.name
    p.account_id = None
    return _open_suspense(session, payment=p, amount_minor=p.amount_minor, now=now, reason=f"proposal rejected: {reason}").id


def active_allocations(session: Session, *, payment_id: int) -> list[Allocation]:
    return list(session.execute(select(Allocation).where(Allocation.payment_id == payment_id, Allocation.state == "allocated")
                                .order_by(Allocation.id)).scalars())


def reverse_allocation(session: Session, *, allocation_id: int, reason: str, now: datetime, actor: Actor, returned: bool = False) -> dict[str, Any]:
    """Reverse one allocation: it stays (state reversed, with the reason), the ledger entry is reversed, the invoice re-opens
    (announced when it had been settled). The money goes back to suspense, or, for a returned debit order (`returned`), back to
    the payer. Raises NotFound, TransitionNotAllowed, ReasonRequired."""
    a = session.get(Allocation, allocation_id)
    if a is None:
        raise NotFound(f"allocation {allocation_id} not found")
    was_settled = bool(a.invoice_id) and invoice_open(session, invoice_ids=[a.invoice_id], reserve_proposals=False)[a.invoice_id]["open_minor"] <= 0
    transition(session, ALLOCATION, a, "reverse", now=now, actor=actor, reason=reason, publish=False,
               details={"invoice_id": a.invoice_id, "amount_minor": a.amount_minor})
    a.reversed_at, a.reversal_reason = now, reason
    _post(session, a, now=now, reversal=True)
    session.flush()
    p = _payment(session, a.payment_id)
    item_id = None
    if not returned:
        item_id = _open_suspense(session, payment=p, amount_minor=a.amount_minor, now=now, reason=f"allocation {a.id} reversed: {reason}").id
    if not active_allocations(session, payment_id=p.id) and p.state == "allocated":
        # a returned debit order is the bank's verdict, recorded by the system on the importer's behalf
        transition(session, PAYMENT, p, "return" if returned else "reverse", now=now, actor=Actor.system(f"debit-order-results:{actor.name}") if returned else actor,
                   reason=reason)
        if not returned:
            p.account_id = None
    if was_settled:
        domain_events.publish(session, REOPENED, {"id": a.invoice_id, "account_id": a.account_id}, now=now, actor=actor)
    return {"allocation_id": a.id, "suspense_item_id": item_id, "invoice_reopened": was_settled}


def allocate_suspense(session: Session, *, suspense_item_id: int, parts: list[Part], reason: str, now: datetime, actor: Actor) -> list[int]:
    """Allocate suspense money to one or several accounts and invoices (a split). Whatever is not allocated stays in suspense
    as a new item. Raises NotFound, UnableToAllocate (no reason, wrong currency, invoice of another account),
    AllocationExceedsPayment, AllocationExceedsInvoice, TransitionNotAllowed (item already closed), ActionNotPermitted."""
    from opsline.users.roles import allowed

    if not actor.is_system and not allowed(actor.roles, "payments.allocate"):
        from opsline.core.lifecycle import ActionNotPermitted

        raise ActionNotPermitted("your role does not allow 'payments.allocate'")
    item = session.get(SuspenseItem, suspense_item_id, with_for_update=session.get_bind().dialect.name == "postgresql")
    if item is None:
        raise NotFound(f"suspense item {suspense_item_id} not found")
    if item.closed_at is not None:
        raise TransitionNotAllowed(f"suspense item {item.id} already left suspense ({item.outcome})", field="suspense_item_id")
    reason = (reason or "").strip()
    if not reason:
        raise UnableToAllocate("nothing leaves suspense without a reason", field="reason")
    if not parts:
        raise UnableToAllocate("choose at least one account to allocate to", field="parts")
    total = 0
    for n, part in enumerate(parts):
        if part.amount.currency != item.currency:
            raise UnableToAllocate(f"part {n + 1} is in {part.amount.currency}; the payment is in {item.currency}", field=f"parts[{n}].amount")
        if part.amount.minor <= 0:
            raise UnableToAllocate(f"part {n + 1}: the amount must be positive", field=f"parts[{n}].amount")
        total += part.amount.minor
    if total > item.amount_minor:
        raise AllocationExceedsPayment(f"the parts add up to {Money.from_minor(total, item.currency)}, more than the "
                                       f"{Money.from_minor(item.amount_minor, item.currency)} in suspense", field="parts")
    accounts = {r.id: r for r in session.execute(text(f"SELECT id, currency, account_number FROM account WHERE id IN "
                                                      f"({','.join(str(int(p.account_id)) for p in parts)})")).all()}
    opens = invoice_open(session, invoice_ids=[p.invoice_id for p in parts if p.invoice_id])
    per_invoice: dict[int, int] = {}
    for n, part in enumerate(parts):
        acc = accounts.get(part.account_id)
        if acc is None:
            raise NotFound(f"account {part.account_id} not found", field=f"parts[{n}].account_id")
        if acc.currency != item.currency:
            raise UnableToAllocate(f"account {acc.account_number} is billed in {acc.currency}, the payment is in {item.currency}", field=f"parts[{n}].account_id")
        if part.invoice_id:
            inv = opens.get(part.invoice_id)
            if inv is None or inv["account_id"] != part.account_id:
                raise UnableToAllocate(f"invoice {part.invoice_id} is not an invoice of account {acc.account_number}", field=f"parts[{n}].invoice_id")
            per_invoice[part.invoice_id] = per_invoice.get(part.invoice_id, 0) + part.amount.minor
            if per_invoice[part.invoice_id] > inv["open_minor"]:
                raise AllocationExceedsInvoice(f"invoice {inv['number']} has {Money.from_minor(max(inv['open_minor'], 0), item.currency)} open; "
                                               f"{Money.from_minor(per_invoice[part.invoice_id], item.currency)} is more", field=f"parts[{n}].amount")
    p = _payment(session, item.payment_id)
    ids = []
    with domain_events.collect(session):
        for part in parts:
            a = Allocation(payment_id=p.id, account_id=part.account_id, invoice_id=part.invoice_id, amount_minor=part.amount.minor, currency=item.currency,
                           state="allocated", rule_code="manual", score=100, created_at=now, created_by=actor.name, decided_at=now, decided_by=actor.name,
                           evidence={"rule": "manual", "matched": reason, "field": "suspense", "allocation": "invoice chosen" if part.invoice_id else "account credit",
                                     "suspense_item_id": item.id})
            session.add(a)
            session.flush()
            _post(session, a, now=now)
            events.record(session, now=now, actor=actor, entity_type="allocation", entity_id=a.id, action="allocate", account_id=a.account_id, reason=reason,
                          after={"state": "allocated", "payment_id": p.id, "invoice_id": a.invoice_id, "amount_minor": a.amount_minor, "suspense_item_id": item.id})
            ids.append(a.id)
        item.closed_at, item.closed_by, item.outcome, item.close_reason = now, actor.name, "allocated", reason
        rest = item.amount_minor - total
        if rest > 0:
            _open_suspense(session, payment=p, amount_minor=rest, now=now, reason=f"remainder after allocating from suspense item {item.id}")
        elif p.state == "suspense" and not _open_items(session, p.id):
            transition(session, PAYMENT, p, "allocate", now=now, actor=actor, reason=reason, details={"allocations": ids})
        account_ids = {part.account_id for part in parts}
        p.account_id = account_ids.pop() if len(account_ids) == 1 and p.account_id in (None, *account_ids) else None
        session.flush()
        _announce_settled(session, [part.invoice_id for part in parts if part.invoice_id], now=now, actor=actor)
    return ids


def _open_items(session: Session, payment_id: int) -> list[SuspenseItem]:
    return list(session.execute(select(SuspenseItem).where(SuspenseItem.payment_id == payment_id, SuspenseItem.closed_at.is_(None))).scalars())


def reassign_suspense(session: Session, *, suspense_item_id: int, owner: str, reason: str, now: datetime, actor: Actor) -> None:
    """Give a suspense item to another person. Raises NotFound, UnableToAllocate (no owner or reason, item closed)."""
    item = session.get(SuspenseItem, suspense_item_id)
    if item is None:
        raise NotFound(f"suspense item {suspense_item_id} not found")
    owner, reason = (owner or "").strip(), (reason or "").strip()
    if item.closed_at is not None:
        raise UnableToAllocate(f"suspense item {item.id} is closed", field="suspense_item_id")
    if not owner:
        raise UnableToAllocate("say who takes the item over", field="owner")
    if not reason:
        raise UnableToAllocate("a reason is required to reassign", field="reason")
    before = item.owner
    item.owner = owner[:120]
    events.record(session, now=now, actor=actor, entity_type="suspense_item", entity_id=item.id, action="reassign", reason=reason,
                  before={"owner": before}, after={"owner": item.owner})


def capture_payment(session: Session, *, account_id: int, amount: Money, method: str, received_on: date, now: datetime, actor: Actor,
                    reference: str = "", invoice_id: int | None = None, payer_name: str = "", external_id: str | None = None,
                    source: str = "staff") -> dict[str, Any]:
    """Record a cash/card/EFT payment for an account (staff) or through the API, then allocate it (the invoice named, else
    oldest first; above the amount limit it waits for approval). A repeat with the same `external_id` returns the first payment.
    Raises NotFound (account, invoice), UnableToCapturePayment (amount, method, currency, date)."""
    if external_id:
        existing = session.execute(select(Payment.id).where(Payment.external_id == external_id)).scalar_one_or_none()
        if existing is not None:
            return {"payment_id": int(existing), "replayed": True}
    if method not in METHODS:
        raise UnableToCapturePayment(f"method '{method}' is not one of {', '.join(METHODS)}", field="method")
    acc = session.execute(text("SELECT id, currency, account_number FROM account WHERE id = :a"), {"a": account_id}).first()
    if acc is None:
        raise NotFound(f"account {account_id} not found", field="account_id")
    if amount.currency != acc.currency:
        raise UnableToCapturePayment(f"the payment is in {amount.currency}; account {acc.account_number} is billed in {acc.currency}", field="amount")
    minor = amount.rounded().minor
    if minor <= 0:
        raise UnableToCapturePayment("the amount must be positive", field="amount")
    if received_on > now.date():
        raise UnableToCapturePayment(f"{received_on} is in the future", field="received_on")
    if invoice_id is not None:
        inv = invoice_open(session, invoice_ids=[invoice_id]).get(invoice_id)
        if inv is None or inv["account_id"] != account_id:
            raise NotFound(f"invoice {invoice_id} is not an invoice of account {acc.account_number}", field="invoice_id")
    p = Payment(account_id=account_id, external_id=external_id, source=source, method=method, state="received", amount_minor=minor, currency=amount.currency,
                received_on=received_on, payer_name=payer_name[:200], reference=reference[:300], named_invoice_id=invoice_id, created_at=now, created_by=actor.name)
    session.add(p)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="payment", entity_id=p.id, action="record", account_id=account_id,
                  after={"amount_minor": minor, "currency": amount.currency, "method": method, "source": source, "invoice_id": invoice_id})
    domain_events.publish(session, PAYMENT_CREATED, {"id": p.id}, now=now, actor=actor)
    summary = matching.run(session, now=now, actor=actor)
    session.refresh(p)
    return {"payment_id": p.id, "state": p.state, "replayed": False, "settled_invoices": summary.settled_invoices}
