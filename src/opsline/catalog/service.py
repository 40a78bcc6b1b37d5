"""Catalog queries: offerings with the prices valid on a date, price summaries with VAT, bundled equipment,
contract terms and early-termination charges."""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable

from sqlalchemy import and_, func, or_, select, table, column
from sqlalchemy.orm import Session

from opsline.api.tmf import sort_clauses
from opsline.catalog.models import ContractTerm, OfferingEquipment, Price, PriceKind, ProductOffering
from opsline.core import domain_events
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.core.money import Money
from opsline.db.session import transaction_cache


class OfferingNotFound(NotFound):
    pass


class PriceNotValid(InvalidInput):
    title = "No valid price"
    type_slug = "price-not-valid"


class UnknownTaxRate(InvalidInput):
    pass


def get_offering(session: Session, *, offering_id: int) -> ProductOffering:
    """Raises OfferingNotFound."""
    o = session.get(ProductOffering, offering_id) if 0 < offering_id < 2**62 else None
    if o is None:
        raise OfferingNotFound(f"product offering {offering_id} does not exist", field="productOffering.id")
    return o


def get_offering_by_code(session: Session, *, code: str) -> ProductOffering:
    """Raises OfferingNotFound."""
    o = session.execute(select(ProductOffering).where(ProductOffering.code == code)).scalar_one_or_none()
    if o is None:
        raise OfferingNotFound(f"product offering '{code}' does not exist", field="productOffering.id")
    return o


def _valid_on(on: date):  # type: ignore[no-untyped-def]
    return and_(Price.valid_from <= on, or_(Price.valid_to.is_(None), Price.valid_to > on))


def prices_on(session: Session, *, offering_ids: list[int], on: date | None) -> dict[int, list[Price]]:
    """Prices per offering valid on `on` (all prices when `on` is None), ordered by kind and id."""
    q = select(Price).where(Price.offering_id.in_(offering_ids)).order_by(Price.offering_id, Price.kind, Price.id)
    if on is not None:
        q = q.where(_valid_on(on))
    out: dict[int, list[Price]] = {i: [] for i in offering_ids}
    for p in session.execute(q).scalars():
        out[p.offering_id].append(p)
    return out


def price_dict(p: Price) -> dict[str, Any]:
    return {
        "id": p.id, "offering_id": p.offering_id, "kind": p.kind, "name": p.name, "amount_minor": p.amount_minor, "currency": p.currency,
        "tax_rate_code": p.tax_rate_code, "charge_event": p.charge_event, "usage_type": p.usage_type,
        "included_quantity": p.included_quantity, "unit": p.unit, "valid_from": p.valid_from, "valid_to": p.valid_to,
        "etc_fraction": p.etc_fraction, "etc_cap_months": p.etc_cap_months, "applies_to": p.applies_to,
    }


def offering_dict(o: ProductOffering, prices: list[Price] | None = None) -> dict[str, Any]:
    d = {
        "id": o.id, "code": o.code, "name": o.name, "kind": o.kind, "partner_code": o.partner_code, "download_mbps": o.download_mbps,
        "upload_mbps": o.upload_mbps, "contract_months": o.contract_months, "description": o.description, "active": o.active,
        "created_at": o.created_at, "equipment_kind": o.equipment_kind, "customer_kind": o.customer_kind, "sla_template_code": o.sla_template_code,
    }
    if prices is not None:
        d["prices"] = [price_dict(p) for p in prices]
        rec = [p for p in prices if p.kind == PriceKind.RECURRING]
        d["recurring_minor"] = sum(p.amount_minor for p in rec) if rec else None
        d["one_off_minor"] = sum(p.amount_minor for p in prices if p.kind == PriceKind.ONE_OFF and p.charge_event in ("installation", "activation", "router"))
        d["currency"] = prices[0].currency if prices else None
    return d


class PriceNotFound(NotFound):
    title = "Price not found"


PRICE_SORT = {"id": Price.id, "name": Price.name, "priceType": Price.kind, "validFor.startDateTime": Price.valid_from,
              "validFor.endDateTime": Price.valid_to, "price.value": Price.amount_minor}


OFFERING_SORT = {"id": ProductOffering.id, "name": ProductOffering.name, "lastUpdate": ProductOffering.created_at, "lifecycleStatus": ProductOffering.active}


def price_list(session: Session, *, offering_id: int | None = None, kind: str | None = None, name: str | None = None, on: date | None = None,
               sort: str | None = None, offset: int = 0, limit: int = 100) -> dict[str, Any]:
    """A page of prices (TMF620 productOfferingPrice), filtered in SQL, with how many match in all: {"items", "total"}.
    `on` keeps the prices valid on that date. Raises UnsortableAttribute (400) for an attribute that cannot be sorted on."""
    query = select(Price)
    if offering_id is not None:
        query = query.where(Price.offering_id == offering_id)
    if kind:
        query = query.where(Price.kind == kind)
    if name:
        query = query.where(func.lower(Price.name).like(f"%{name.strip().lower()}%"))
    if on is not None:
        query = query.where(_valid_on(on))
    rows = session.execute(query.order_by(*sort_clauses(sort, PRICE_SORT, tiebreak=Price.id)).offset(offset).limit(limit)).scalars()
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    return {"items": [price_dict(p) for p in rows], "total": total}


def get_price(session: Session, *, price_id: int) -> dict[str, Any]:
    """Raises PriceNotFound."""
    p = session.get(Price, price_id)
    if p is None:
        raise PriceNotFound(f"price {price_id} not found")
    return price_dict(p)


def list_offerings(
    session: Session, *, on: date | None, kind: str | None = None, partner_code: str | None = None, q: str | None = None,
    active: bool | None = True, offset: int = 0, limit: int = 100,
) -> list[dict[str, Any]]:
    """Offerings with the prices valid on `on` embedded, filtered and paged (one query for offerings, one for prices)."""
    return offering_list(session, on=on, kind=kind, partner_code=partner_code, q=q, active=active, offset=offset, limit=limit, with_total=False)["items"]


def offering_list(
    session: Session, *, on: date | None, kind: str | None = None, partner_code: str | None = None, q: str | None = None,
    active: bool | None = True, offset: int = 0, limit: int = 100, with_total: bool = True, sort: str | None = None,
) -> dict[str, Any]:
    """A page of offerings (see list_offerings) and how many match in all (TMF630): {"items", "total"}.
    `sort` as TMF630 (`-name`, `lastUpdate`); raises UnsortableAttribute (400) for an attribute that cannot be sorted on."""
    query = select(ProductOffering)
    if kind:
        query = query.where(ProductOffering.kind == kind)
    if partner_code:
        query = query.where(ProductOffering.partner_code == partner_code)
    if active is not None:
        query = query.where(ProductOffering.active == active)
    if q:
        like = f"%{q.strip().lower()}%"
        query = query.where(or_(func.lower(ProductOffering.name).like(like), func.lower(ProductOffering.code).like(like)))
    default = [ProductOffering.kind, ProductOffering.partner_code, ProductOffering.download_mbps, ProductOffering.code]
    order = sort_clauses(sort, OFFERING_SORT, default=default, tiebreak=ProductOffering.id)
    rows = list(session.execute(query.order_by(*order).offset(offset).limit(limit)).scalars())
    prices = prices_on(session, offering_ids=[o.id for o in rows], on=on)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one() if with_total else None
    return {"items": [offering_dict(o, prices[o.id]) for o in rows], "total": total}


def catalog_page(session: Session, *, on: date, kind: str | None = None, partner_code: str | None = None, q: str | None = None) -> dict[str, Any]:
    """The catalog page: offerings (live and retired) with the prices valid on `on`, and the partners to filter by."""
    partners = sorted(p for (p,) in session.execute(select(ProductOffering.partner_code).where(ProductOffering.partner_code.is_not(None)).distinct()))
    return {"offerings": list_offerings(session, on=on, kind=kind, partner_code=partner_code, q=q, active=None, limit=500), "partners": partners}


def offering_detail(session: Session, *, offering_id: int, on: date | None) -> dict[str, Any]:
    """One offering with prices (valid on `on`, or all when None) and bundled equipment. Raises OfferingNotFound."""
    o = get_offering(session, offering_id=offering_id)
    d = offering_dict(o, prices_on(session, offering_ids=[o.id], on=on)[o.id])
    d["equipment"] = bundled_equipment(session, offering_id=o.id)
    return d


def bundled_equipment(session: Session, *, offering_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(OfferingEquipment, ProductOffering).join(ProductOffering, ProductOffering.id == OfferingEquipment.equipment_offering_id)
        .where(OfferingEquipment.offering_id == offering_id).order_by(OfferingEquipment.id)
    ).all()
    return [{"offering_id": eo.id, "code": eo.code, "name": eo.name, "equipment_kind": eo.equipment_kind, "owner": link.owner, "quantity": link.quantity} for link, eo in rows]


_TAX = table("tax_rate", column("code"), column("rate"), column("valid_from"), column("valid_to"))


def tax_rate(session: Session, *, code: str, on: date) -> Decimal:
    """The rate (e.g. Decimal('0.15')) for a tax code on a date, from billing's tax_rate table, read once per
    transaction (an order prices each item and then the order). Raises UnknownTaxRate."""
    rates = transaction_cache(session, "tax_rates")
    if (code, on) not in rates:
        rates[(code, on)] = _tax_rate_row(session, code=code, on=on)
    return rates[(code, on)]


def _tax_rate_row(session: Session, *, code: str, on: date) -> Decimal:
    row = session.execute(
        select(_TAX.c.rate).where(_TAX.c.code == code, _TAX.c.valid_from <= on, or_(_TAX.c.valid_to.is_(None), _TAX.c.valid_to > on))
    ).first()
    if row is None:
        raise UnknownTaxRate(f"tax rate '{code}' is not configured for {on.isoformat()}", field="tax_rate_code")
    rate = Decimal(str(row[0]))
    return rate / 100 if rate > 1 else rate


def tax_on(amount_minor: int, rate: Decimal) -> int:
    """VAT on an amount in minor units, rounded half-up to the minor unit."""
    return int((Decimal(amount_minor) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def price_summary(session: Session, *, offering_id: int, on: date, quantity: int = 1, include_router: bool = True) -> dict[str, Any]:
    """Recurring and one-off charges (excl. and incl. VAT) of an offering on a date, from its price rows.
    Raises OfferingNotFound; PriceNotValid when a sellable offering has no recurring price on that date."""
    o = get_offering(session, offering_id=offering_id)
    prices = prices_on(session, offering_ids=[o.id], on=on)[o.id]
    recurring = [p for p in prices if p.kind == PriceKind.RECURRING]
    if o.kind != "equipment" and not recurring:
        raise PriceNotValid(f"offering {o.code} has no price valid on {on.isoformat()}", field="requestedStartDate")
    one_off_events = {"installation", "activation"} | ({"router"} if include_router else set())
    one_off = [p for p in prices if p.kind == PriceKind.ONE_OFF and p.charge_event in one_off_events]
    if o.kind == "equipment":
        one_off = [p for p in prices if p.kind == PriceKind.ONE_OFF and p.charge_event in ("router", "activation")]
    if not prices:
        raise PriceNotValid(f"offering {o.code} has no price valid on {on.isoformat()}", field="requestedStartDate")
    currency = (recurring or one_off or prices)[0].currency
    rates: dict[str, Decimal] = {}

    def taxed(ps: list[Price]) -> tuple[int, int]:
        net = tax = 0
        for p in ps:
            if p.tax_rate_code not in rates:
                rates[p.tax_rate_code] = tax_rate(session, code=p.tax_rate_code, on=on)
            amount = p.amount_minor * quantity
            net += amount
            tax += tax_on(amount, rates[p.tax_rate_code])
        return net, tax

    r_net, r_tax = taxed(recurring)
    o_net, o_tax = taxed(one_off)
    return {
        "offering_id": o.id, "currency": currency, "recurring_minor": r_net, "recurring_tax_minor": r_tax, "one_off_minor": o_net, "one_off_tax_minor": o_tax,
        "lines": [price_dict(p) for p in recurring + one_off],
    }


def contract_term_for(session: Session, *, months: int, juristic: bool) -> ContractTerm | None:
    return session.execute(select(ContractTerm).where(ContractTerm.months == months, ContractTerm.customer_kind == ("juristic" if juristic else "consumer"))).scalar_one_or_none()


def remaining_months(termination_date: date, contract_end_date: date) -> int:
    """Whole or part months from `termination_date` up to the contract end (a part month counts as a month)."""
    months = (contract_end_date.year - termination_date.year) * 12 + contract_end_date.month - termination_date.month
    if contract_end_date.day > termination_date.day:
        months += 1
    return max(months, 0)


def early_termination_terms(session: Session, *, offering_id: int, juristic: bool, termination_date: date, contract_end_date: date | None,
                            on: date) -> dict[str, Any] | None:
    """The early-termination fee for ending a fixed-term product on `termination_date` (exclusive end), or None when
    nothing is due (no contract end, ended at or after it, no rule for this kind of customer).

    The offering's 'early_termination' rules (for consumers, juristic persons or all) give the fee: a fixed amount
    plus `etc_fraction` x the remaining months' recurring charge (months capped at `etc_cap_months`). For consumers the
    contract term's "reasonable penalty" policy (CPA s14, `penalty_cap_fraction` of the recurring charges still due)
    caps it. Returns {rule_minor, cap_minor (None: no cap), fee_minor, currency, tax_rate_code, remaining_months,
    monthly_minor, rules}. Raises OfferingNotFound."""
    if contract_end_date is None or termination_date >= contract_end_date:
        return None
    o = get_offering(session, offering_id=offering_id)
    prices = prices_on(session, offering_ids=[o.id], on=on)[o.id]
    who = "juristic" if juristic else "consumer"
    rules = [p for p in prices if p.kind == PriceKind.EARLY_TERMINATION and p.applies_to in (who, "all")]
    recurring = [p for p in prices if p.kind == PriceKind.RECURRING]
    if not rules or not recurring:
        return None
    months = remaining_months(termination_date, contract_end_date)
    monthly = sum(p.amount_minor for p in recurring)
    rule_minor = 0
    for rule in rules:
        m = min(months, rule.etc_cap_months) if rule.etc_cap_months else months
        rule_minor += rule.amount_minor + int((Decimal(monthly * m) * (rule.etc_fraction or Decimal(0))).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    cap_minor = None
    if not juristic:
        term = contract_term_for(session, months=o.contract_months, juristic=False)
        if term is not None and term.penalty_cap_fraction is not None:
            cap_minor = int((Decimal(monthly * months) * term.penalty_cap_fraction).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    fee = rule_minor if cap_minor is None else min(rule_minor, cap_minor)
    if fee <= 0:
        return None
    return {"rule_minor": rule_minor, "cap_minor": cap_minor, "fee_minor": fee, "currency": recurring[0].currency, "tax_rate_code": rules[0].tax_rate_code,
            "remaining_months": months, "monthly_minor": monthly, "rules": [r.name for r in rules]}


def early_termination_charge(session: Session, *, offering_id: int, juristic: bool, termination_date: date, contract_end_date: date | None, on: date) -> Money | None:
    """The early-termination fee (see early_termination_terms) as Money, or None. Raises OfferingNotFound."""
    t = early_termination_terms(session, offering_id=offering_id, juristic=juristic, termination_date=termination_date, contract_end_date=contract_end_date, on=on)
    return Money.from_minor(t["fee_minor"], t["currency"]) if t else None


def offering_choices(session: Session, *, on: date) -> list[dict[str, Any]]:
    """Active sellable offerings (not equipment) with their current recurring price, for order forms."""
    return [o for o in list_offerings(session, on=on, limit=1000) if o["kind"] != "equipment"]


OFFERING_CREATED = "catalog.offering_created"  # {"id"}: a new offering (TMF620 ProductOfferingCreateEvent)
OFFERING_CHANGED = "catalog.offering_changed"  # {"id", "attributes"}: TMF620 names of what changed (lifecycleStatus: a state change)

# our column -> the TMF620 ProductOffering attributes it shows as (columns the API does not show are not announced)
OFFERING_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "name": ("name",), "description": ("description",), "active": ("lifecycleStatus", "isSellable"), "kind": ("category", "prodSpecCharValueUse", "isSellable"),
    "contract_months": ("productOfferingTerm",), "code": ("prodSpecCharValueUse",), "partner_code": ("prodSpecCharValueUse",),
    "download_mbps": ("prodSpecCharValueUse",), "upload_mbps": ("prodSpecCharValueUse",), "customer_kind": ("prodSpecCharValueUse",),
    "equipment_kind": ("prodSpecCharValueUse",),
}


def announce_offering_created(session: Session, *, offering_id: int, now: datetime, actor: Actor) -> None:
    """Publish catalog.offering_created for an offering just added (offerings are reference data, added at /admin). Raises nothing."""
    domain_events.publish(session, OFFERING_CREATED, {"id": offering_id}, now=now, actor=actor)


def announce_offering_changed(session: Session, *, offering_id: int, columns: Iterable[str], now: datetime, actor: Actor) -> list[str]:
    """Publish catalog.offering_changed naming the TMF620 attributes that the changed `columns` show as; nothing when none
    of them is shown by the API. Returns the attributes announced. Raises nothing."""
    attributes = sorted({a for c in columns for a in OFFERING_ATTRIBUTES.get(c, ())})
    if attributes:
        domain_events.publish(session, OFFERING_CHANGED, {"id": offering_id, "attributes": attributes}, now=now, actor=actor)
    return attributes
