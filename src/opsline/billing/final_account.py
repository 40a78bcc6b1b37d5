"""The final account of terminated products: off-cycle, exact, once. What the last bills should have been up to the
confirmed end date is settled now (pro-rata credit for days billed in advance after the end, or a charge for days not
yet billed), with the early-termination fee and the account's queued charges, on one final invoice (net charge) or one
credit note (net credit); the bill runs leave a final-billed product alone from then on (`final_account_product`).
Relocations are billed by the bill runs themselves: `relocation_plan` gives the journey the dates that make them
neither twice nor never."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Sequence

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String, Text, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsline.billing import billrun, ledger
from opsline.billing import service as billing
from opsline.billing.charges import ONE_OFF_EVENTS, dialect_of
from opsline.billing.invoicing.credits import next_credit_note_number
from opsline.billing.invoicing.models import CreditNote, CreditNoteLine
from opsline.billing.models import (PENDING_CHARGE, AccountSuspension, Discount, Invoice, InvoiceLine, PendingCharge, RelocationOverlap)
from opsline.billing.periods import add_months
from opsline.billing.tax import TaxedLine, rates_on, spread_vat
from opsline.catalog.models import Price, ProductOffering
from opsline.core import domain_events, events, lifecycle
from opsline.core.errors import Conflict, InvalidInput, NotFound, OpslineError
from opsline.core.events import Actor
from opsline.core.money import Money
from opsline.customers.models import Account
from opsline.db.base import Base, IdPk
from opsline.inventory.models import Equipment, Product
from opsline.orders.service import termination
from opsline.payments import refunds
from opsline.payments.models import Allocation, Payment

EVENT = "billing.final_account_issued"
AT_RISK_EQUIPMENT_STATES = ("dispatched", "installed", "awaiting_return", "lost")
ENDED_PRODUCT_STATES = ("pendingTerminate", "terminated")


# ---------------------------------------------------------------------------------------------- tables

class FinalAccount(Base):
    """One issued final account: its document (a final invoice or a credit note, or none when nothing was left to
    settle), its signed total (+ the customer owes, - credited) and the refund proposed for a credit balance."""

    __tablename__ = "final_account"
    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    end_date: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(String(3))
    subtotal_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    tax_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    total_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    invoice_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("invoice.id"))
    credit_note_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("credit_note.id"))
    refund_id: Mapped[int | None] = mapped_column(BigInteger)
    refund_note: Mapped[str | None] = mapped_column(Text)
    etf_waiver_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))

    __table_args__ = (Index("ix_final_account_account", "account_id", "id"),)


class FinalAccountProduct(Base):
    """A product settled by a final account: the bill runs never bill it again (one row per product, ever)."""

    __tablename__ = "final_account_product"
    product_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("product.id"), primary_key=True)
    final_account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("final_account.id"), index=True)
    account_id: Mapped[int] = mapped_column(BigInteger)
    end_date: Mapped[date] = mapped_column(Date)


def reference_of(final_account_id: int) -> str:
    return f"FA-{final_account_id:08d}"


# ---------------------------------------------------------------------------------------------- errors

class UnableToFinalBill(InvalidInput):
    title = "Unable to issue the final account"
    type_slug = "unable-to-final-bill"


class AlreadyFinalBilled(Conflict):
    title = "Already final-billed"
    type_slug = "already-final-billed"


class FinalAccountBlocked(Conflict):
    title = "Final account must wait"
    type_slug = "final-account-blocked"


# ---------------------------------------------------------------------------------------------- pro-rata arithmetic
# The same cumulative rounding as the bill run (billing.charges / edges): the charge for [a, b) inside a period that
# starts at `basis` and has D days is round(P*(b-basis)/D) - round(P*(a-basis)/D), halves away from zero. Pieces that
# touch add up to exactly P, so what is kept plus what is credited is exactly what was billed.

def half_up(num: int, den: int) -> int:
    """num / den (den > 0) rounded half away from zero, in integers (the bill run's SQL `half_up`)."""
    if num >= 0:
        return (2 * num + den) // (2 * den)
    return -((-2 * num + den) // (2 * den))


def piece(price_minor: int, basis: date, days: int, a: date, b: date) -> int:
    """The charge for [a, b) of a period starting `basis` of `days` days at `price_minor` a period."""
    if b <= a:
        return 0
    return half_up(price_minor * (b - basis).days, days) - half_up(price_minor * (a - basis).days, days)


def basis_period(d: date, bill_day: int) -> tuple[date, date]:
    """The billing period [start, end) of an account billed on `bill_day` that contains `d`."""
    start = d.replace(day=bill_day) if d.day >= bill_day else add_months(d, -1).replace(day=bill_day)
    return start, add_months(start, 1)


def split_credit(price_minor: int, basis: date, days: int, end: date) -> tuple[int, int]:
    """(kept, credited) of a whole period billed in advance when service ends on `end` inside it: they sum to the price."""
    kept = piece(price_minor, basis, days, basis, max(basis, min(end, basis + timedelta(days=days))))
    return kept, price_minor - kept


# ---------------------------------------------------------------------------------------------- the plan

@dataclass
class PlanLine:
    kind: str  # recurring | adjustment | one_off
    description: str
    amount_minor: int  # ex tax, + charge / - credit
    tax_rate_code: str
    currency: str
    explanation: str
    group: str  # recurring | credit | fee | queued
    product_id: int | None = None
    offering_id: int | None = None
    price_id: int | None = None
    period_start: date | None = None
    period_end: date | None = None
    unit_amount_minor: int = 0
    credits_line_id: int | None = None  # the billed invoice line a credit is against
    pending_charge_id: int | None = None
    etf_product_id: int | None = None  # an early-termination fee still to be queued
    tax_minor: int = 0


@dataclass
class Plan:
    account_id: int
    currency: str
    end_date: date
    lines: list[PlanLine] = field(default_factory=list)
    products: list[dict[str, Any]] = field(default_factory=list)
    equipment: list[dict[str, Any]] = field(default_factory=list)
    etf: list[dict[str, Any]] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        sub = sum(ln.amount_minor for ln in self.lines)
        tax = sum(ln.tax_minor for ln in self.lines)
        return {"subtotal_minor": sub, "tax_minor": tax, "total_minor": sub + tax,
                "charges_minor": sum(ln.amount_minor + ln.tax_minor for ln in self.lines if ln.amount_minor > 0),
                "credits_minor": sum(ln.amount_minor + ln.tax_minor for ln in self.lines if ln.amount_minor < 0)}


def _account(session: Session, account_id: Any) -> Account:
    acc = session.get(Account, account_id) if isinstance(account_id, int) and 0 < account_id < 2**62 else None
    if acc is None:
        raise NotFound(f"account {account_id} not found", field="account_id")
    return acc


def _products(session: Session, acc: Account, product_ids: Sequence[Any]) -> list[Product]:
    ids = list(dict.fromkeys(product_ids or []))
    if not ids:
        raise UnableToFinalBill("choose at least one product to final-bill", field="product_ids")
    out = []
    for pid in ids:
        p = session.get(Product, pid) if isinstance(pid, int) and 0 < pid < 2**62 else None
        if p is None:
            raise UnableToFinalBill(f"product {pid} does not exist", field="product_ids")
        if p.account_id != acc.id:
            raise UnableToFinalBill(f"product {pid} belongs to another account, not {acc.account_number}", field="product_ids")
        out.append(p)
    return out


def _check_dates(products: list[Product], end_date: Any) -> None:
    if not isinstance(end_date, date) or isinstance(end_date, datetime):
        raise UnableToFinalBill(f"'{end_date}' is not a date", field="end_date")
    for p in products:
        if p.start_date is None:
            raise UnableToFinalBill(f"product {p.id} was never activated: nothing was billed, so there is no final account", field="product_ids")
        if end_date < p.start_date:
            raise UnableToFinalBill(f"product {p.id} cannot end on {end_date.isoformat()}: it was activated on {p.start_date.isoformat()}", field="end_date")


def _already_final(session: Session, product_ids: list[int]) -> None:
    row = session.execute(select(FinalAccountProduct.product_id, FinalAccountProduct.final_account_id)
                          .where(FinalAccountProduct.product_id.in_(product_ids)).order_by(FinalAccountProduct.product_id)).first()
    if row is not None:
        raise AlreadyFinalBilled(f"product {row[0]} was already final-billed ({reference_of(row[1])})", field="product_ids",
                                 extra={"final_account_id": row[1]})


def _billed_end(session: Session, p: Product, end: date) -> tuple[date, int]:
    """The day billing stops (exclusive) and the overlap days: a replaced product (relocation) keeps the partner's
    configured overlap past its end date, exactly like the bill run's `edges.billed_end`."""
    if not p.partner_code:
        return end, 0
    replaced = session.execute(select(Product.id).where(Product.replaces_product_id == p.id).limit(1)).first()
    ro = session.get(RelocationOverlap, p.partner_code)
    if replaced and ro is not None and ro.overlap_days > 0:
        return end + timedelta(days=ro.overlap_days), int(ro.overlap_days)
    return end, 0


def _recurring_price(session: Session, offering_id: int, on: date, currency: str) -> Price | None:
    return session.execute(select(Price).where(Price.offering_id == offering_id, Price.kind == "recurring", Price.currency == currency,
                                               Price.valid_from <= on, (Price.valid_to.is_(None)) | (Price.valid_to > on))
                           .order_by(Price.valid_from.desc()).limit(1)).scalar_one_or_none()


def _product_lines(session: Session, *, acc: Account, p: Product, end: date, charge_suspended: bool) -> tuple[list[PlanLine], dict[str, Any]]:
    """What the product's bills should have been to `end` against what its finalised bills charged (net of credit
    notes), per billing period: the periods awaiting the bill run's coverage, every period after the end, and the
    days not yet billed."""
    offering = session.get(ProductOffering, p.offering_id)
    name = offering.name if offering else f"product {p.id}"
    bend, overlap = _billed_end(session, p, end)
    start = p.start_date
    assert start is not None
    credited = dict(session.execute(
        select(CreditNoteLine.invoice_line_id, func.sum(CreditNoteLine.amount_minor))
        .join(InvoiceLine, InvoiceLine.id == CreditNoteLine.invoice_line_id)
        .where(InvoiceLine.product_id == p.id).group_by(CreditNoteLine.invoice_line_id)).all())
    rows = session.execute(
        select(InvoiceLine).join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(InvoiceLine.product_id == p.id, InvoiceLine.account_id == acc.id, Invoice.number.is_not(None),
               InvoiceLine.kind.in_(("recurring", "adjustment", "discount")), InvoiceLine.period_start.is_not(None))
        .order_by(InvoiceLine.id)).scalars().all()
    by_period: dict[date, dict[str, Any]] = {}
    for ln in rows:
        b0, _ = basis_period(ln.period_start, acc.bill_cycle_day)
        g = by_period.setdefault(b0, {"net": 0, "recurring": None, "discounts": []})
        g["net"] += int(ln.amount_minor) - int(credited.get(ln.id, 0) or 0)
        if ln.kind == "discount" and ln.discount_id is not None:
            g["discounts"].append(ln.discount_id)
        if ln.kind == "recurring":
            g["recurring"] = ln
    billed = sorted(b for b, g in by_period.items() if g["recurring"] is not None)
    if billed:
        frm = min(bend, billed[-1])
        upto = max(bend, add_months(billed[-1], 1))
    else:
        frm, upto = start, bend
    suspensions = [] if charge_suspended else session.execute(
        select(AccountSuspension.suspended_on, AccountSuspension.resumed_on).where(AccountSuspension.account_id == acc.id)).all()
    out: list[PlanLine] = []
    b0, b1 = basis_period(frm, acc.bill_cycle_day)
    while b0 < upto:
        g = by_period.get(b0, {"net": 0, "recurring": None, "discounts": []})
        rec = g["recurring"]
        days = (b1 - b0).days
        if rec is not None:
            price_minor, code, price_id, unit = int(rec.unit_amount_minor), rec.tax_rate_code, rec.price_id, int(rec.unit_amount_minor)
        else:
            pr = _recurring_price(session, p.offering_id, b0, acc.currency)
            if pr is None:
                if g["net"] == 0:
                    b0, b1 = b1, add_months(b1, 1)
                    continue
                raise UnableToFinalBill(f"no {acc.currency} recurring price for {name} on {b0.isoformat()}", field="product_ids")
            price_minor, code, price_id, unit = int(pr.amount_minor), pr.tax_rate_code, pr.id, int(pr.amount_minor)
        s, e = max(start, b0), min(bend, b1)
        expected = piece(price_minor, b0, days, s, e)
        susp_days = 0
        for so, ro in suspensions:
            z1, z2 = max(s, so), min(e, ro or b1)
            if z2 > z1:
                expected -= piece(price_minor, b0, days, z1, z2)
                susp_days += (z2 - z1).days
        # a percent discount billed on the line (net of it: the customer paid the discounted price) applies to the days kept
        base = expected
        for d in session.execute(select(Discount).where(Discount.id.in_(g["discounts"]), Discount.kind == "percent")).scalars() if g["discounts"] else []:
            expected -= half_up(base * int((Decimal(d.value) * 10000).to_integral_value(rounding=ROUND_HALF_UP)), 1_000_000)
        diff = expected - g["net"]
        if diff != 0:
            active = max(0, (e - s).days)
            last = (b1 - timedelta(days=1)).isoformat()
            ended = f"Service ended {end.isoformat()}" + (f" (billed {overlap} more days: relocation overlap)" if overlap else "")
            if diff < 0:
                out.append(PlanLine(kind="adjustment", description=f"Credit: {name}", amount_minor=diff, tax_rate_code=code, currency=acc.currency,
                                    explanation=(f"{ended}: {name} {b0.isoformat()} to {last} was billed {Money.from_minor(g['net'], acc.currency)} "
                                                 f"(net of credits and discounts) for {active - susp_days} active of {days} days; the difference is credited"),
                                    group="credit", product_id=p.id, offering_id=p.offering_id, price_id=price_id,
                                    period_start=max(min(bend, b1), b0) if bend < b1 else b0, period_end=b1, unit_amount_minor=unit,
                                    credits_line_id=rec.id if rec is not None else None))
            elif g["net"] == 0:
                out.append(PlanLine(kind="recurring", description=name, amount_minor=diff, tax_rate_code=code, currency=acc.currency,
                                    explanation=(f"{name} pro-rata {active} of {days} days, {s.isoformat()} to {(e - timedelta(days=1)).isoformat()} "
                                                 f"(not billed yet; service ends {end.isoformat()})"),
                                    group="recurring", product_id=p.id, offering_id=p.offering_id, price_id=price_id, period_start=s, period_end=e,
                                    unit_amount_minor=unit))
            else:
                out.append(PlanLine(kind="adjustment", description=f"Correction: {name}", amount_minor=diff, tax_rate_code=code, currency=acc.currency,
                                    explanation=(f"{ended}: {name} {b0.isoformat()} to {last} was billed {Money.from_minor(g['net'], acc.currency)} "
                                                 f"(net of credits and discounts) for {active - susp_days} active of {days} days; the difference is charged"),
                                    group="recurring", product_id=p.id, offering_id=p.offering_id, price_id=price_id, period_start=b0, period_end=b1,
                                    unit_amount_minor=unit))
        b0, b1 = b1, add_months(b1, 1)
    if not billed:  # ended before its first bill: its one-off charges were never billed either
        events_in = ",".join(f"'{e}'" for e in ONE_OFF_EVENTS)
        for pr in session.execute(select(Price).where(Price.offering_id == p.offering_id, Price.kind == "one_off", Price.amount_minor != 0,
                                                      Price.currency == acc.currency, text(f"price.charge_event IN ({events_in})"),
                                                      Price.valid_from <= start, (Price.valid_to.is_(None)) | (Price.valid_to > start))).scalars():
            if session.execute(select(InvoiceLine.id).where(InvoiceLine.product_id == p.id, InvoiceLine.price_id == pr.id, InvoiceLine.kind == "one_off")).first():
                continue
            out.append(PlanLine(kind="one_off", description=pr.name, amount_minor=int(pr.amount_minor), tax_rate_code=pr.tax_rate_code, currency=acc.currency,
                                explanation=f"{pr.name} for {name}, once on {pr.charge_event} {start.isoformat()} (not billed before the service ended)",
                                group="fee", product_id=p.id, offering_id=p.offering_id, price_id=pr.id, period_start=start, unit_amount_minor=int(pr.amount_minor)))
    info = {"product_id": p.id, "name": name, "state": p.state, "start_date": start, "end_date": end, "billed_to": bend, "overlap_days": overlap,
            "inventory_end_date": p.end_date}
    return out, info


def _etf(session: Session, *, p: Product, end: date, include: bool, waive_reason: str | None, currency: str) -> tuple[PlanLine | None, dict[str, Any]]:
    """The early-termination fee by the catalogue rule with the consumer cap (orders.service.termination decides it);
    none when orders already queued it for this product."""
    queued = session.execute(select(PendingCharge.id, PendingCharge.state).where(
        PendingCharge.product_id == p.id, PendingCharge.idempotency_key.like("etf:%"), PendingCharge.state != "cancelled")).first()
    if queued is not None:
        return None, {"product_id": p.id, "already_queued": True, "pending_charge_id": queued[0], "explanation": "queued by the termination order"}
    if p.state in ENDED_PRODUCT_STATES or p.end_date is not None:
        terms = termination.fee_terms(session, product=p, termination_date=end)
        fee = Money.from_minor(terms["fee_minor"], terms["currency"]) if terms else None
        why = (f"{terms['remaining_months']} month(s) left to {p.contract_end_date.isoformat() if p.contract_end_date else '-'}; {', '.join(terms['rules'])}"
               if terms else "no early-termination fee (month-to-month, past the contract end, or no rule)")
        q = {"fee": fee, "capped": bool(terms and terms["cap_minor"] is not None and terms["cap_minor"] < terms["rule_minor"]),
             "tax_rate_code": terms["tax_rate_code"] if terms else None, "explanation": why}
    else:
        q = termination.early_termination_quote(session, product_id=p.id, termination_date=end)
    info = {"product_id": p.id, "already_queued": False, "fee": q.get("fee"), "capped": q.get("capped", False), "explanation": q.get("explanation", ""),
            "waived": False, "waiver_reason": None}
    fee = q.get("fee")
    if fee is None or fee.is_zero():
        return None, info
    if not include or waive_reason:
        info |= {"waived": True, "waiver_reason": waive_reason or "not included"}
        return None, info
    if fee.currency != currency:
        raise UnableToFinalBill(f"the early-termination fee is in {fee.currency}, the account is billed in {currency}", field="include_etf")
    offering = session.get(ProductOffering, p.offering_id)
    line = PlanLine(kind="one_off", description=f"Early termination fee: {offering.name if offering else p.offering_id}", amount_minor=fee.rounded().minor,
                    tax_rate_code=q["tax_rate_code"] or "VAT15", currency=currency, explanation=f"Early termination fee: {q['explanation']}",
                    group="fee", product_id=p.id, offering_id=p.offering_id, etf_product_id=p.id)
    return line, info


def _equipment_at_risk(session: Session, *, account_id: int, product_ids: list[int], on: date) -> list[dict[str, Any]]:
    """Loaned equipment of these products not back in the warehouse: charged by logistics after its grace period
    (a fee already queued is on this final account among the queued charges)."""
    rows = session.execute(select(Equipment).where(Equipment.owner == "isp_loaned", Equipment.state.in_(AT_RISK_EQUIPMENT_STATES),
                                                   (Equipment.product_id.in_(product_ids)) | ((Equipment.account_id == account_id) & Equipment.product_id.is_(None)))
                           .order_by(Equipment.id)).scalars().all()
    offerings = {e.offering_id for e in rows if e.offering_id}
    fees: dict[int, Price] = {}
    if offerings:
        for pr in session.execute(select(Price).where(Price.offering_id.in_(offerings), Price.kind == "one_off", Price.charge_event == "unreturned_equipment",
                                                      Price.valid_from <= on, (Price.valid_to.is_(None)) | (Price.valid_to > on))).scalars():
            fees[pr.offering_id] = pr
    return [{"equipment_id": e.id, "kind": e.kind, "model": e.model, "serial_number": e.serial_number, "state": e.state, "product_id": e.product_id,
             "fee": Money.from_minor(fees[e.offering_id].amount_minor, fees[e.offering_id].currency) if e.offering_id in fees else None}
            for e in rows]


def _pending_lines(session: Session, *, account_id: int, currency: str, now: datetime) -> list[PlanLine]:
    # a charge a computed draft run holds is taken too (the draft is recomputed without it)
    in_draft = select(Invoice.id).where(Invoice.account_id == account_id, Invoice.state == "draft")
    rows = session.execute(select(PendingCharge).where(PendingCharge.account_id == account_id, PendingCharge.state == "pending",
                                                       PendingCharge.invoice_id.is_(None) | PendingCharge.invoice_id.in_(in_draft), PendingCharge.created_at <= now,
                                                       PendingCharge.currency == currency).order_by(PendingCharge.id)).scalars().all()
    return [PlanLine(kind="one_off", description=c.description, amount_minor=int(c.amount_minor), tax_rate_code=c.tax_rate_code, currency=c.currency,
                     explanation=f"{c.description} ({c.reason})", group="queued", product_id=c.product_id, pending_charge_id=c.id,
                     unit_amount_minor=int(c.amount_minor)) for c in rows]


def _plan(session: Session, *, acc: Account, products: list[Product], end_date: date, now: datetime, include_etf: bool,
          waive_etf_reason: str | None) -> Plan:
    plan = Plan(account_id=acc.id, currency=acc.currency, end_date=end_date)
    charge_suspended = billing.setting(session, "suspension_policy", "charge") != "no_charge"
    for p in products:
        lines, info = _product_lines(session, acc=acc, p=p, end=end_date, charge_suspended=charge_suspended)
        plan.lines.extend(lines)
        plan.products.append(info)
    for p in products:
        line, info = _etf(session, p=p, end=end_date, include=include_etf, waive_reason=waive_etf_reason, currency=acc.currency)
        plan.etf.append(info)
        if line is not None:
            plan.lines.append(line)
    plan.lines.extend(_pending_lines(session, account_id=acc.id, currency=acc.currency, now=now))
    plan.equipment = _equipment_at_risk(session, account_id=acc.id, product_ids=[p.id for p in products], on=now.date())
    taxes = spread_vat([TaxedLine(ln.amount_minor, ln.tax_rate_code) for ln in plan.lines], rates_on(session, on=now.date()))
    for ln, t in zip(plan.lines, taxes):
        ln.tax_minor = t
    return plan


def _plan_dict(plan: Plan) -> dict[str, Any]:
    cur = plan.currency
    t = plan.totals()
    lines = []
    for ln in plan.lines:
        d = asdict(ln)
        d |= {"amount": Money.from_minor(ln.amount_minor, cur), "tax": Money.from_minor(ln.tax_minor, cur),
              "total_minor": ln.amount_minor + ln.tax_minor, "total": Money.from_minor(ln.amount_minor + ln.tax_minor, cur),
              "period_last_day": ln.period_end - timedelta(days=1) if ln.period_end else None}
        lines.append(d)
    return {"account_id": plan.account_id, "currency": cur, "end_date": plan.end_date, "lines": lines, "products": plan.products,
            "etf": plan.etf, "equipment_at_risk": plan.equipment,
            "equipment_at_risk_total": Money.from_minor(sum(e["fee"].minor for e in plan.equipment if e["fee"] is not None), cur),
            **t, "subtotal": Money.from_minor(t["subtotal_minor"], cur), "tax": Money.from_minor(t["tax_minor"], cur),
            "total": Money.from_minor(t["total_minor"], cur), "charges": Money.from_minor(t["charges_minor"], cur),
            "credits": Money.from_minor(t["credits_minor"], cur),
            "document": None if not plan.lines else ("invoice" if t["total_minor"] >= 0 else "credit_note")}


def quote(session: Session, *, account_id: int, product_ids: Sequence[int], end_date: date, today: date | None = None,
          now: datetime | None = None, include_etf: bool = True, waive_etf_reason: str | None = None) -> dict[str, Any]:
    """What the final account of `product_ids` ending on `end_date` (their first non-billable day) will contain, for the
    screen shown before confirming. Nothing is written. `today` (or `now`) dates the VAT rates and the queued charges.

    Returns {lines (each with group recurring|credit|fee|queued, amount, tax, explanation), products, etf, equipment_at_risk,
    subtotal, tax, total (Money; + the customer pays, - credited), charges, credits, document (invoice|credit_note|None)}.
    Raises NotFound (account), UnableToFinalBill (no products, a product of another account, an end before activation,
    not a date), AlreadyFinalBilled."""
    if now is None:
        if today is None:
            raise UnableToFinalBill("the quote needs today's date", field="today")
        from datetime import timezone

        now = datetime.combine(today, datetime.max.time(), tzinfo=timezone.utc)
    acc = _account(session, account_id)
    products = _products(session, acc, product_ids)
    _check_dates(products, end_date)
    _already_final(session, [p.id for p in products])
    return _plan_dict(_plan(session, acc=acc, products=products, end_date=end_date, now=now, include_etf=include_etf, waive_etf_reason=waive_etf_reason))


# ---------------------------------------------------------------------------------------------- issuing

def _runs_holding(session: Session, acc: Account) -> list[Any]:
    """Live (unfinished, not dry) bill runs that hold a draft of this account, or are still computing its bill day."""
    rows = session.execute(text(
        "SELECT r.id, r.cycle_date, r.state FROM bill_run r WHERE r.state NOT IN ('finalised', 'rolled_back') AND r.dry_run = :no AND ("
        " EXISTS (SELECT 1 FROM invoice i WHERE i.bill_run_id = r.id AND i.account_id = :a AND i.state = 'draft')"
        " OR r.state = 'draft_running') ORDER BY r.id"), {"a": acc.id, "no": False}).all()
    return [r for r in rows if r.state != "draft_running" or int(str(r.cycle_date)[8:10]) == acc.bill_cycle_day]


def _blocking_run(session: Session, acc: Account) -> str | None:
    """A bill run whose draft of this account cannot be recomputed now (still computing, or in review / approved: the
    reviewed figures must not change under the reviewer): the final account waits for it."""
    for r in _runs_holding(session, acc):
        if r.state != "draft":
            return f"bill run {r.id} ({str(r.cycle_date)[:10]}) is {r.state}"
    return None


def result_of(session: Session, fa: FinalAccount, *, replayed: bool = False) -> dict[str, Any]:
    number = None
    if fa.invoice_id:
        number = session.execute(select(Invoice.number).where(Invoice.id == fa.invoice_id)).scalar_one()
    elif fa.credit_note_id:
        number = session.execute(select(CreditNote.number).where(CreditNote.id == fa.credit_note_id)).scalar_one()
    products = list(session.execute(select(FinalAccountProduct.product_id).where(FinalAccountProduct.final_account_id == fa.id)
                                    .order_by(FinalAccountProduct.product_id)).scalars())
    return {"id": fa.id, "reference": reference_of(fa.id), "account_id": fa.account_id, "product_ids": products, "end_date": fa.end_date,
            "document": "invoice" if fa.invoice_id else ("credit_note" if fa.credit_note_id else None), "invoice_id": fa.invoice_id,
            "credit_note_id": fa.credit_note_id, "number": number, "subtotal": Money.from_minor(fa.subtotal_minor, fa.currency),
            "tax": Money.from_minor(fa.tax_minor, fa.currency), "total": Money.from_minor(fa.total_minor, fa.currency), "total_minor": fa.total_minor,
            "currency": fa.currency, "refund_id": fa.refund_id, "refund_note": fa.refund_note, "reason": fa.reason, "created_at": fa.created_at,
            "created_by": fa.created_by, "replayed": replayed}


def _replay(session: Session, key: str, account_id: int) -> dict[str, Any] | None:
    fa = session.execute(select(FinalAccount).where(FinalAccount.idempotency_key == key)).scalar_one_or_none()
    if fa is None:
        return None
    if fa.account_id != account_id:
        raise Conflict(f"idempotency key '{key}' was used for account {fa.account_id}'s final account", field="idempotency_key")
    return result_of(session, fa, replayed=True)


def issue(session: Session, *, account_id: int, product_ids: Sequence[int], end_date: date, reason: str, idempotency_key: str, now: datetime,
          actor: Actor, include_etf: bool = True, waive_etf_reason: str | None = None) -> dict[str, Any]:
    """Issue the final account of `product_ids`, whose deactivation the FNO confirmed on `end_date` (first non-billable
    day): pro-rata credit or charge to the end date, the early-termination fee (unless orders already queued it, or it
    is waived with a reason), and the account's queued charges, on one final invoice (net charge, zero included) or one
    credit note (net credit), through the invoicing path (gapless numbers, ledger, PDF and e-mail jobs, audit). The
    bill runs never bill these products again. With a credit balance and every product ended, a refund is proposed
    through payments. Publishes `billing.final_account_issued`.

    Idempotent: the same `idempotency_key` returns the first result (also when two arrive at once).
    Raises NotFound (account), UnableToFinalBill (no reason or key, no products, another account's product, an end date
    before activation or other than the one inventory recorded, a product still active), AlreadyFinalBilled,
    FinalAccountBlocked (a bill run holding the account's draft invoice is not finished)."""
    key = (idempotency_key or "").strip()
    if not key:
        raise UnableToFinalBill("an idempotency key is required", field="idempotency_key")
    if isinstance(account_id, int):
        prior = _replay(session, key, account_id)
        if prior is not None:
            return prior
    why = (reason or "").strip()
    if not why:
        raise UnableToFinalBill("a final account needs a reason", field="reason")
    waive = (waive_etf_reason or "").strip() or None
    acc = _account(session, account_id)
    products = _products(session, acc, product_ids)
    _check_dates(products, end_date)
    for p in products:
        if p.end_date is not None and p.end_date != end_date:
            raise UnableToFinalBill(f"product {p.id} ended on {p.end_date.isoformat()} in inventory, not {end_date.isoformat()}", field="end_date")
        if p.state not in ENDED_PRODUCT_STATES:
            raise UnableToFinalBill(f"product {p.id} is {p.state}: its termination must be confirmed before its final account", field="product_ids")
    _already_final(session, [p.id for p in products])
    blocking = _blocking_run(session, acc)
    if blocking:
        raise FinalAccountBlocked(f"{blocking}: finish or roll it back before the final account of {acc.account_number}", field="account_id")

    # Claim the key first: a concurrent repeat waits on the unique index and then replays the committed answer.
    dia = dialect_of(session)
    values = dict(account_id=acc.id, idempotency_key=key, end_date=end_date, reason=why, currency=acc.currency, subtotal_minor=0, tax_minor=0,
                  total_minor=0, etf_waiver_reason=waive, created_at=now, created_by=actor.name)
    ins = (pg_insert if dia.pg else sqlite_insert)(FinalAccount).values(**values).on_conflict_do_nothing(index_elements=["idempotency_key"])
    if session.execute(ins.returning(FinalAccount.id)).scalar_one_or_none() is None:
        prior = _replay(session, key, acc.id)
        assert prior is not None
        return prior
    fa = session.execute(select(FinalAccount).where(FinalAccount.idempotency_key == key)).scalar_one()
    try:
        with session.begin_nested():
            session.add_all([FinalAccountProduct(product_id=p.id, final_account_id=fa.id, account_id=acc.id, end_date=end_date) for p in products])
            session.flush()
    except IntegrityError as exc:
        raise AlreadyFinalBilled("one of these products was just final-billed by another final account", field="product_ids") from exc

    # A computed draft run that holds this account's next bill is recomputed for it now, without the final-billed
    # products and with the queued charges this final account takes: nothing is billed twice when it is finalised.
    redo = [r.id for r in _runs_holding(session, acc) if r.state == "draft"]
    plan = _plan(session, acc=acc, products=products, end_date=end_date, now=now, include_etf=include_etf, waive_etf_reason=waive)
    for ln in plan.lines:  # the fee goes through the one queue of one-off charges, idempotent per product
        if ln.etf_product_id is not None:
            ln.pending_charge_id = billing.queue_charge(
                session, account_id=acc.id, product_id=ln.etf_product_id, description=ln.description, amount=Money.from_minor(ln.amount_minor, acc.currency),
                tax_rate_code=ln.tax_rate_code, reason=f"final account {reference_of(fa.id)}: {ln.explanation}"[:300], now=now, actor=actor,
                idempotency_key=f"etf:final:{ln.etf_product_id}")
            ln.group = "fee"
    for info in plan.etf:
        if info.get("waived") and waive:
            events.record(session, now=now, actor=actor, entity_type="product", entity_id=info["product_id"], account_id=acc.id,
                          action="early_termination_fee_waived", reason=waive,
                          after={"fee_minor": info["fee"].minor if info.get("fee") else None, "final_account": reference_of(fa.id)})
    t = plan.totals()
    fa.subtotal_minor, fa.tax_minor, fa.total_minor = t["subtotal_minor"], t["tax_minor"], t["total_minor"]
    if plan.lines and t["total_minor"] >= 0:
        fa.invoice_id = _issue_invoice(session, acc=acc, plan=plan, fa=fa, now=now, actor=actor)
    elif plan.lines:
        fa.credit_note_id = _issue_credit_note(session, acc=acc, plan=plan, fa=fa, now=now, actor=actor)
    session.flush()
    for run_id in redo:
        billrun.recompute_account(session, bill_run_id=run_id, account_id=acc.id, now=now)
    events.record(session, now=now, actor=actor, entity_type="final_account", entity_id=fa.id, action="issued", account_id=acc.id, reason=why,
                  after={"reference": reference_of(fa.id), "products": [p.id for p in products], "end_date": end_date.isoformat(),
                         "total_minor": fa.total_minor, "currency": fa.currency, "invoice_id": fa.invoice_id, "credit_note_id": fa.credit_note_id})
    _propose_refund(session, acc=acc, fa=fa, now=now)
    session.flush()
    out = result_of(session, fa)
    domain_events.publish(session, EVENT, {"id": fa.id, "account_id": acc.id, "reference": out["reference"], "invoice_id": fa.invoice_id,
                                           "credit_note_id": fa.credit_note_id, "number": out["number"], "amount_minor": fa.total_minor,
                                           "currency": fa.currency, "product_ids": out["product_ids"], "end_date": end_date.isoformat(),
                                           "refund_id": fa.refund_id}, now=now, actor=actor)
    return out


def _mark_billed(session: Session, plan: Plan, *, invoice_id: int | None, fa: FinalAccount, now: datetime, actor: Actor) -> None:
    ids = [ln.pending_charge_id for ln in plan.lines if ln.pending_charge_id is not None]
    for c in session.execute(select(PendingCharge).where(PendingCharge.id.in_(ids)).order_by(PendingCharge.id)).scalars() if ids else []:
        c.invoice_id = invoice_id
        c.extra = dict(c.extra or {}) | {"final_account_id": fa.id, "credit_note_id": fa.credit_note_id}
        lifecycle.transition(session, PENDING_CHARGE, c, "bill", now=now, actor=Actor.system("final-account"), reason=f"final account {reference_of(fa.id)}")


def _issue_invoice(session: Session, *, acc: Account, plan: Plan, fa: FinalAccount, now: datetime, actor: Actor) -> int:
    t = plan.totals()
    period_end = max([ln.period_end for ln in plan.lines if ln.period_end] + [plan.end_date])
    if session.execute(select(Invoice.id).where(Invoice.account_id == acc.id, Invoice.kind == "final", Invoice.period_start == plan.end_date)).first():
        raise AlreadyFinalBilled(f"account {acc.account_number} already has a final invoice for {plan.end_date.isoformat()}; "
                                 "final-bill its products together", field="end_date")
    inv = Invoice(account_id=acc.id, bill_run_id=None, kind="final", period_start=plan.end_date, period_end=period_end, state="draft", currency=acc.currency,
                  subtotal_minor=t["subtotal_minor"], tax_minor=t["tax_minor"], total_minor=t["total_minor"], created_at=now, version=1)
    try:
        with session.begin_nested():
            session.add(inv)
            session.flush()
    except IntegrityError as exc:  # another final account of this account with the same end date committed meanwhile
        raise AlreadyFinalBilled(f"account {acc.account_number} already has a final invoice for {plan.end_date.isoformat()}", field="end_date") from exc
    session.add_all([InvoiceLine(invoice_id=inv.id, account_id=acc.id, product_id=ln.product_id, offering_id=ln.offering_id, price_id=ln.price_id,
                                 kind=ln.kind, description=ln.description[:300], period_start=ln.period_start, period_end=ln.period_end, quantity=1,
                                 unit_amount_minor=ln.unit_amount_minor, amount_minor=ln.amount_minor, tax_rate_code=ln.tax_rate_code, tax_minor=ln.tax_minor,
                                 total_minor=ln.amount_minor + ln.tax_minor, currency=ln.currency,
                                 explanation=f"{ln.explanation} (final account {reference_of(fa.id)})", pending_charge_id=ln.pending_charge_id)
                     for ln in plan.lines])
    session.flush()
    billing.finalise_invoice(session, invoice_id=inv.id, now=now, actor=actor)
    _mark_billed(session, plan, invoice_id=inv.id, fa=fa, now=now, actor=actor)
    return inv.id


def _issue_credit_note(session: Session, *, acc: Account, plan: Plan, fa: FinalAccount, now: datetime, actor: Actor) -> int:
    """A net credit: one credit note, its credits against the billed lines they reverse and the charges netted as
    negative lines, VAT per rate spread like an invoice's (credit-positive)."""
    nets = [-ln.amount_minor for ln in plan.lines]
    taxes = spread_vat([TaxedLine(n, ln.tax_rate_code) for n, ln in zip(nets, plan.lines)], rates_on(session, on=now.date()))
    against = {ln.credits_line_id: -ln.amount_minor for ln in plan.lines if ln.credits_line_id is not None}
    invoice_id = None
    if against:
        top = max(against, key=lambda k: against[k])
        invoice_id = session.execute(select(InvoiceLine.invoice_id).where(InvoiceLine.id == top)).scalar_one()
    cn = CreditNote(account_id=acc.id, invoice_id=invoice_id, number=next_credit_note_number(session, year=now.year), state="issued", source="manual",
                    reason=f"Final account {reference_of(fa.id)}: {fa.reason}", currency=acc.currency, subtotal_minor=sum(nets), tax_minor=sum(taxes),
                    total_minor=sum(nets) + sum(taxes), issued_at=now, issued_by=actor.name, idempotency_key=f"final-account:{fa.idempotency_key}"[:200])
    session.add(cn)
    session.flush()
    session.add_all([CreditNoteLine(credit_note_id=cn.id, account_id=acc.id, invoice_line_id=ln.credits_line_id, description=ln.description[:300],
                                    amount_minor=n, tax_rate_code=ln.tax_rate_code, tax_minor=tx, total_minor=n + tx, currency=ln.currency)
                     for ln, n, tx in zip(plan.lines, nets, taxes)])
    fa.credit_note_id = cn.id
    ledger.post(session, account_id=acc.id, kind="credit_note", ref_type="credit_note", ref_id=cn.id, amount=Money.from_minor(-cn.total_minor, cn.currency),
                now=now, description=f"Credit note {cn.number}: final account {reference_of(fa.id)}")
    events.record(session, now=now, actor=actor, entity_type="credit_note", entity_id=cn.id, action="issued", account_id=acc.id, reason=cn.reason,
                  after={"number": cn.number, "total_minor": cn.total_minor, "currency": cn.currency, "source": "final_account", "final_account": reference_of(fa.id)})
    _mark_billed(session, plan, invoice_id=None, fa=fa, now=now, actor=actor)
    return cn.id


def _propose_refund(session: Session, *, acc: Account, fa: FinalAccount, now: datetime) -> None:
    """A credit balance on an account whose products have all ended goes back to the customer: a refund request
    through payments (approved at once within its four-eyes limit, else waiting for a second person). What payments
    cannot refund (no known bank account, refunds already waiting for the credit) is noted on the final account instead."""
    balance = ledger.balance_minor(session, account_id=acc.id)
    if balance >= 0:
        return
    live = session.execute(select(func.count()).select_from(Product).where(
        Product.account_id == acc.id, Product.state.not_in(("terminated",)),
        Product.id.not_in(select(FinalAccountProduct.product_id).where(FinalAccountProduct.account_id == acc.id)))).scalar_one()
    if live:
        fa.refund_note = f"credit balance {Money.from_minor(-balance, acc.currency)} kept on the account: {live} product(s) still active"
        return
    avail = refunds.available_credit_minor(session, account_id=acc.id)
    amount = min(-balance, avail)
    payer = session.execute(select(Payment.payer_name, Payment.payer_account).join(Allocation, Allocation.payment_id == Payment.id)
                            .where(Allocation.account_id == acc.id, Payment.payer_account != "").order_by(Payment.id.desc()).limit(1)).first()
    if amount <= 0:
        fa.refund_note = (f"credit balance {Money.from_minor(-balance, acc.currency)}: already being refunded (refunds waiting for approval "
                          "take it all)")
        return
    if payer is None:
        fa.refund_note = f"credit balance {Money.from_minor(-balance, acc.currency)}: no bank account known to refund to"
        return
    try:
        with session.begin_nested():
            r = refunds.request_refund(session, account_id=acc.id, amount=Money.from_minor(amount, acc.currency), reason=f"final account {reference_of(fa.id)}: credit balance",
                                       now=now, actor=Actor.system("final-account"), payee_name=payer[0] or acc.name, payee_account=payer[1],
                                       idempotency_key=f"final-account:{fa.id}:refund")
    except OpslineError as exc:
        fa.refund_note = f"refund not proposed: {exc.detail}"
        return
    fa.refund_id = int(r["refund_id"])
    fa.refund_note = f"refund of {Money.from_minor(amount, acc.currency)} {r['state']}" + (" (waits for a second person)" if r.get("needs_second_person") else "")
    if amount < -balance:
        fa.refund_note += f"; the other {Money.from_minor(-balance - amount, acc.currency)} is already in refunds waiting for approval"


# ---------------------------------------------------------------------------------------------- relocations

def relocation_plan(session: Session, *, old_product_id: int, new_start_date: date) -> dict[str, Any]:
    """The billing dates of a relocation (a new line at the new site replacing the old): the old product ends on the
    day the new one starts (billed to the day before) plus the partner's configured overlap (data:
    relocation_overlap), the new one is billed from its start. Record the old product's termination with
    `old_end_date` and the new product with `replaces_product_id`; the bill runs then credit the old line and catch up
    the new one on the next bill: never twice, never a gap. Nothing is written.
    Raises NotFound (product), UnableToFinalBill (new start before the old product started, old product final-billed)."""
    p = session.get(Product, old_product_id) if isinstance(old_product_id, int) and 0 < old_product_id < 2**62 else None
    if p is None:
        raise NotFound(f"product {old_product_id} not found", field="old_product_id")
    if not isinstance(new_start_date, date):
        raise UnableToFinalBill(f"'{new_start_date}' is not a date", field="new_start_date")
    if p.start_date is not None and new_start_date < p.start_date:
        raise UnableToFinalBill(f"the new line cannot start on {new_start_date.isoformat()}: the old one started on {p.start_date.isoformat()}",
                                field="new_start_date")
    fap = session.get(FinalAccountProduct, p.id)
    if fap is not None:
        raise UnableToFinalBill(f"product {p.id} was final-billed ({reference_of(fap.final_account_id)}); it cannot be relocated", field="old_product_id")
    ro = session.get(RelocationOverlap, p.partner_code) if p.partner_code else None
    overlap = int(ro.overlap_days) if ro is not None else 0
    billed_to = new_start_date + timedelta(days=overlap)
    return {"old_product_id": p.id, "old_end_date": new_start_date, "old_billed_to": billed_to, "old_last_billed_day": billed_to - timedelta(days=1),
            "new_billed_from": new_start_date, "overlap_days": overlap, "partner_code": p.partner_code,
            "explanation": (f"old line billed to {(billed_to - timedelta(days=1)).isoformat()}"
                            + (f" ({overlap} days' overlap configured for {p.partner_code})" if overlap else " (the day before the new line starts)")
                            + f"; new line billed from {new_start_date.isoformat()}")}


def final_accounts_of(session: Session, *, account_id: int, limit: int = 20) -> list[dict[str, Any]]:
    rows = session.execute(select(FinalAccount).where(FinalAccount.account_id == account_id).order_by(FinalAccount.id.desc()).limit(limit)).scalars().all()
    return [result_of(session, fa) for fa in rows]


def get_final_account(session: Session, *, final_account_id: int) -> dict[str, Any]:
    fa = session.get(FinalAccount, final_account_id) if 0 < final_account_id < 2**62 else None
    if fa is None:
        raise NotFound(f"final account {final_account_id} not found")
    return result_of(session, fa)


def terminated_still_billed(session: Session, *, limit: int = 500) -> list[dict[str, Any]]:
    """Products ended in inventory whose finalised bills still charge days after their end date, with neither a
    credit (the next bill run's end-of-service correction, a credit note) nor a final account yet: the clean-up check
    "terminated products still billed". Set-based: one query over the billed recurring lines past each end date."""
    rows = session.execute(text("""
        SELECT p.id AS product_id, p.account_id, a.account_number, p.end_date, p.state, MAX(l.period_end) AS billed_to,
               SUM(l.amount_minor) AS billed_minor, MIN(l.currency) AS currency
        FROM product p
        JOIN account a ON a.id = p.account_id
        JOIN invoice_line l ON l.product_id = p.id AND l.kind = 'recurring' AND l.period_end > p.end_date
        JOIN invoice i ON i.id = l.invoice_id AND i.number IS NOT NULL
        WHERE p.end_date IS NOT NULL AND p.state IN ('pendingTerminate', 'terminated')
          AND NOT EXISTS (SELECT 1 FROM final_account_product f WHERE f.product_id = p.id)
          AND NOT EXISTS (SELECT 1 FROM invoice_line c JOIN invoice ci ON ci.id = c.invoice_id AND ci.number IS NOT NULL
                          WHERE c.product_id = p.id AND c.kind = 'adjustment' AND c.amount_minor < 0 AND c.period_end >= l.period_end)
          AND NOT EXISTS (SELECT 1 FROM credit_note_line n WHERE n.invoice_line_id = l.id)
        GROUP BY p.id, p.account_id, a.account_number, p.end_date, p.state
        ORDER BY p.end_date, p.id LIMIT :n"""), {"n": limit}).mappings().all()
    return [dict(r) | {"end_date": _as_date(r["end_date"]), "billed_to": _as_date(r["billed_to"])} for r in rows]


def _as_date(v: Any) -> date | None:
    return v if v is None or isinstance(v, date) else date.fromisoformat(str(v)[:10])
