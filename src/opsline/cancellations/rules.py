"""When a cancellation takes effect and what it costs, from the contract, the law and the FNO: the customer's notice
(CPA s14: consumers on a fixed term give 20 business days; juristic persons per their contract term; month-to-month
per its term), the FNO's cut-off (notice by the cut-off day ends at that month's end, later at the next month's end)
and minimum notice, a later date the customer asks for, and the early-termination fee (catalogue rule, capped for
consumers). Pure reads: nothing is written."""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.catalog import service as catalog
from opsline.core.calendar.days import add_business_days
from opsline.core.errors import Conflict, InvalidInput
from opsline.inventory import service as inventory
from opsline.inventory.models import Product, ProductState
from opsline.orders.service import termination
from opsline.partners.models import Partner


class UnableToCancelProduct(Conflict):
    """The product cannot be cancelled (already terminated, ending, never activated, or a journey is already open)."""

    title = "Unable to cancel product"
    type_slug = "unable-to-cancel-product"


class UnableToRequestCancellation(InvalidInput):
    title = "Unable to request cancellation"
    type_slug = "unable-to-request-cancellation"


def month_end(d: date) -> date:
    return d.replace(day=calendar.monthrange(d.year, d.month)[1])


def next_month_end(d: date) -> date:
    return month_end(month_end(d) + timedelta(days=1))


def fno_last_day(*, notice_date: date, cutoff_day: int | None, notice_days: int) -> tuple[date | None, str | None]:
    """The FNO's last day of service for notice received on `notice_date`, and why. With a cut-off day: the earliest day
    (after `notice_days`) on or before the cut-off (capped at the month's last day) ends at that month's end, later at
    the end of the next month. Without: `notice_days` after the notice. (None, None) when the FNO has no rule."""
    earliest = notice_date + timedelta(days=notice_days)
    if cutoff_day:
        cutoff = min(cutoff_day, calendar.monthrange(earliest.year, earliest.month)[1])
        if earliest.day <= cutoff:
            end = month_end(earliest)
            why = f"received by the {cutoff}th: ends at month end {end.isoformat()}"
        else:
            end = next_month_end(earliest)
            why = f"received after the {cutoff}th: ends at the end of next month {end.isoformat()}"
        if notice_days:
            why = f"{notice_days} days' notice to {earliest.isoformat()}, then " + why
        return end, why
    if notice_days:
        return earliest, f"{notice_days} days' notice: ends {earliest.isoformat()}"
    return None, None


def _product(session: Session, product_id: int) -> Product:
    return inventory.get_product(session, product_id=product_id)


def check_cancellable(product: Product) -> None:
    """Raises UnableToCancelProduct unless the product is live (active or suspended)."""
    if product.state == ProductState.TERMINATED:
        ended = f" on {product.end_date.isoformat()}" if product.end_date else ""
        raise UnableToCancelProduct(f"product {product.id} was already terminated{ended}; there is nothing to cancel", field="product_id",
                                    extra={"state": product.state})
    if product.state == ProductState.PENDING_TERMINATE:
        raise UnableToCancelProduct(f"product {product.id} is already being terminated (pendingTerminate)", field="product_id", extra={"state": product.state})
    if product.state not in (ProductState.ACTIVE, ProductState.SUSPENDED):
        raise UnableToCancelProduct(f"product {product.id} is {product.state}: only an active or suspended product can be cancelled "
                                    "(cancel its order instead)", field="product_id", extra={"state": product.state})


def preview(session: Session, *, product_id: int, notice_date: date, requested_date: date | None = None, holiday_country: str = "ZA",
            waive: bool = False, waiver_reason: str | None = None, customer_notice: bool = True) -> dict[str, Any]:
    """What the coordinator shows before the customer confirms: the effective date (first day without service), the last
    day of service, each rule that decided it, whether CPA s14 applies, and the early-termination fee.

    `customer_notice=False` is the supplier ending the contract for the customer's breach (discontinuance for
    non-payment): the customer gives no notice (CPA s14's 20 business days are the consumer's notice to us, not ours to
    them), so only the FNO's cut-off and minimum notice decide; without an FNO rule the service ends after the notice day.

    Raises ProductNotFound, UnableToCancelProduct (terminated, ending, not live), UnableToRequestCancellation (a requested
    date before the earliest allowed, a contract that may not be ended early), WaiverReasonRequired."""
    product = _product(session, product_id)
    check_cancellable(product)
    juristic = termination.is_juristic(session, account_id=product.account_id)
    fixed_term = bool(product.contract_end_date and product.contract_end_date > notice_date)
    term = catalog.contract_term_for(session, months=product.contract_months if fixed_term else 0, juristic=juristic)
    rules: list[dict[str, Any]] = []
    notice_bd = term.notice_business_days if term is not None else 20
    country = holiday_country
    partner = session.get(Partner, product.partner_code) if product.partner_code else None
    if partner is not None and partner.holiday_country:
        country = partner.holiday_country
    customer_last = add_business_days(notice_date, notice_bd, holiday_country=country)
    cpa = fixed_term and not juristic and customer_notice
    if not customer_notice:
        customer_last, notice_bd = notice_date, 0
        label = "non-payment: the supplier ends the contract for breach; no customer notice period (CPA s14 is the consumer's notice)"
    elif cpa:
        label = f"CPA s14: a consumer on a fixed-term contract gives {notice_bd} business days' notice"
    elif fixed_term:
        label = f"juristic person (not covered by CPA s14): {notice_bd} business days' notice per the {term.name if term else 'contract'} term"
    else:
        label = f"month-to-month: {notice_bd} business days' notice per the {term.name if term else 'contract'} term"
    rules.append({"rule": "customer_notice", "label": label, "last_day": customer_last})
    if fixed_term and term is not None and not term.may_cancel_early and customer_notice:
        raise UnableToRequestCancellation(f"the {term.name} contract may not be ended before {product.contract_end_date.isoformat()}", field="product_id")
    if partner is not None:
        fno_last, why = fno_last_day(notice_date=notice_date, cutoff_day=partner.notice_cutoff_day, notice_days=partner.notice_days)
        if fno_last is not None:
            rules.append({"rule": "fno_notice", "label": f"{partner.name}: {why}", "last_day": fno_last})
    last_day = max(r["last_day"] for r in rules)
    if requested_date is not None:
        if requested_date - timedelta(days=1) < last_day:
            raise UnableToRequestCancellation(
                f"the earliest the service can end is after {last_day.isoformat()} (first day without service {(last_day + timedelta(days=1)).isoformat()}); "
                f"{requested_date.isoformat()} is too early", field="requested_date")
        last_day = requested_date - timedelta(days=1)
        rules.append({"rule": "customer_request", "label": f"the customer asked to end on {requested_date.isoformat()}", "last_day": last_day})
    effective = last_day + timedelta(days=1)
    for r in rules:
        r["decides"] = r["last_day"] == last_day
    fee = termination.early_termination_quote(session, product_id=product.id, termination_date=effective, waive=waive, waiver_reason=waiver_reason)
    return {"product_id": product.id, "account_id": product.account_id, "partner_code": product.partner_code, "partner_name": partner.name if partner else None,
            "notice_date": notice_date, "last_day": last_day, "effective_date": effective, "juristic": juristic, "fixed_term": fixed_term,
            "cpa_applies": cpa, "notice_business_days": notice_bd, "rules": rules, "fee": fee,
            "explanation": "; ".join(r["label"] for r in rules) + f" → last day of service {last_day.isoformat()}"}


def resolve_policy(session: Session, *, reason_code: str, segment_code: str | None) -> Any:
    """The most specific policy row for this reason and segment (falls back to the default row)."""
    from opsline.cancellations.models import CancellationPolicy as P

    rows = session.execute(select(P).where((P.reason_code == reason_code) | (P.reason_code.is_(None)),
                                           (P.segment_code == segment_code) | (P.segment_code.is_(None)))).scalars().all()
    if not rows:
        raise UnableToRequestCancellation("no cancellation policy is configured (seed the reference data)", field="reason_code")
    return sorted(rows, key=lambda p: (p.reason_code is None, p.segment_code is None, p.id))[0]
