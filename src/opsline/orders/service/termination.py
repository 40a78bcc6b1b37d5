"""Early termination of a fixed-term product: the fee shown before the customer confirms (the catalogue's rule,
capped for consumers by the "reasonable penalty" policy, waivable with a reason), and the charge queued for the final
bill when the termination completes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.billing import service as billing
from opsline.catalog import service as catalog
from opsline.catalog.models import ProductOffering
from opsline.core import events
from opsline.core.events import Actor
from opsline.core.money import Money
from opsline.customers.models import Account, Party
from opsline.inventory import service as inventory
from opsline.inventory.models import Product
from opsline.orders.models import ProductOrderItem
from opsline.orders.service.errors import WaiverReasonRequired


def is_juristic(session: Session, *, account_id: int) -> bool:
    """A juristic person (company, trust, ...) is not protected by CPA s14's reasonable-penalty rule: a business or
    wholesale account, or any account whose party is an organisation."""
    row = session.execute(select(Account.kind, Party.kind).join(Party, Party.id == Account.party_id).where(Account.id == account_id)).first()
    if row is None:
        return False
    return row[0] in ("b2b", "wholesale") or row[1] == "organisation"


def fee_terms(session: Session, *, product: Product, termination_date: date) -> dict[str, Any] | None:
    """The catalogue terms for ending `product` on `termination_date`, or None when no fee is due."""
    return catalog.early_termination_terms(session, offering_id=product.offering_id, juristic=is_juristic(session, account_id=product.account_id),
                                           termination_date=termination_date, contract_end_date=product.contract_end_date, on=termination_date)


def early_termination_quote(session: Session, *, product_id: int, termination_date: date, waive: bool = False,
                            waiver_reason: str | None = None) -> dict[str, Any]:
    """What ending the product on `termination_date` (its first non-billable day) costs, for the order entry and the
    cancellation confirmation to show before the customer confirms. Nothing is written.

    Returns {product_id, offering_code, offering_name, termination_date, contract_end_date, juristic, remaining_months,
    rule_fee: Money | None, cap: Money | None, capped: bool, fee: Money | None, waived, waiver_reason, charge: Money | None,
    explanation}. Raises ProductNotFound, UnableToTerminateProduct (already terminated, or a date before activation),
    WaiverReasonRequired (a waiver without a reason)."""
    product = inventory.get_product(session, product_id=product_id)
    inventory.check_termination(product, on=termination_date)
    reason = (waiver_reason or "").strip() or None
    if waive and reason is None:
        raise WaiverReasonRequired("waiving the early-termination fee needs a reason", field="waiver_reason")
    offering = session.get(ProductOffering, product.offering_id)
    juristic = is_juristic(session, account_id=product.account_id)
    terms = fee_terms(session, product=product, termination_date=termination_date)
    out: dict[str, Any] = {
        "product_id": product.id, "offering_code": offering.code if offering else None, "offering_name": offering.name if offering else None,
        "termination_date": termination_date, "contract_end_date": product.contract_end_date, "juristic": juristic,
        "remaining_months": 0, "rule_fee": None, "cap": None, "capped": False, "fee": None, "waived": False, "waiver_reason": None, "charge": None,
    }
    if terms is None:
        out["explanation"] = "no early-termination fee: " + ("month-to-month or past the contract end" if not product.contract_end_date or termination_date >= product.contract_end_date
                                                            else "the catalogue has no early-termination rule for this customer")
        return out
    cur = terms["currency"]
    fee = Money.from_minor(terms["fee_minor"], cur)
    out |= {"remaining_months": terms["remaining_months"], "rule_fee": Money.from_minor(terms["rule_minor"], cur),
            "cap": Money.from_minor(terms["cap_minor"], cur) if terms["cap_minor"] is not None else None,
            "capped": terms["cap_minor"] is not None and terms["cap_minor"] < terms["rule_minor"], "fee": fee,
            "waived": bool(waive), "waiver_reason": reason if waive else None, "charge": None if waive else fee,
            "tax_rate_code": terms["tax_rate_code"]}
    why = f"{terms['remaining_months']} month(s) left to {product.contract_end_date.isoformat()}; {', '.join(terms['rules'])}"
    if out["capped"]:
        why += f"; capped at the consumer reasonable-penalty limit {out['cap']}"
    if waive:
        why += f"; waived: {reason}"
    out["explanation"] = why
    return out


def record_fee_on_item(session: Session, *, item: ProductOrderItem, product: Product, termination_date: date, waiver_reason: str | None) -> None:
    """Keep on a delete item the fee the customer confirmed (or its waiver and why), to be charged when the line ends."""
    terms = fee_terms(session, product=product, termination_date=termination_date)
    if terms is None:
        return
    item.etf_minor, item.etf_currency, item.etf_tax_rate_code = terms["fee_minor"], terms["currency"], terms["tax_rate_code"]
    item.etf_waiver_reason = (waiver_reason or "").strip() or None


def charge_fee(session: Session, *, item: ProductOrderItem, product: Product, now: datetime, actor: Actor) -> int | None:
    """The termination completed: queue the confirmed fee for the final bill (billing.queue_charge, idempotent per item),
    or record the waiver. Returns the pending charge id, or None when nothing is charged."""
    if not item.etf_minor:
        return None
    if item.etf_waiver_reason:
        events.record(session, now=now, actor=actor, entity_type="product", entity_id=product.id, account_id=product.account_id,
                      action="early_termination_fee_waived", reason=item.etf_waiver_reason,
                      after={"fee_minor": item.etf_minor, "currency": item.etf_currency, "order_item_id": item.id})
        return None
    offering = session.get(ProductOffering, product.offering_id)
    return billing.queue_charge(
        session, account_id=product.account_id, product_id=product.id, description=f"Early termination fee: {offering.name if offering else product.offering_id}",
        amount=Money.from_minor(item.etf_minor, item.etf_currency or ""), tax_rate_code=item.etf_tax_rate_code or "",
        reason=f"product {product.id} ended before its contract end {product.contract_end_date.isoformat() if product.contract_end_date else ''} (order {item.order_id})",
        now=now, actor=actor, idempotency_key=f"etf:order_item:{item.id}")


def termination_fees(session: Session, *, data: Any, on: date) -> list[dict[str, Any]]:
    """The early-termination quote of every delete item of an order about to be placed (`data`: OrderIn), for the
    order entry to show before the order is confirmed. Raises what early_termination_quote raises."""
    return [early_termination_quote(session, product_id=it.product_id, termination_date=on, waive=it.waive_early_termination_fee, waiver_reason=it.waiver_reason)
            for it in data.items if it.action == "delete" and it.product_id is not None]
