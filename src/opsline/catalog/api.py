"""TMF620 Product Catalog: product offerings, which reference their prices (ProductOfferingPriceRef), and the prices
themselves at /productOfferingPrice (read-only; both are edited in /admin)."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from opsline.api.tmf import PAGE_LIMIT_MAX, Characteristic, Fields, Ref, Sort, TimePeriod, TMFModel, item_response, list_response, selectable
from opsline.catalog import service
from opsline.core.localtime import local_date
from opsline.core.money import Money
from opsline.web.deps import DB, Now, Principal, Tz, require

router = APIRouter(tags=["TMF620 Product Catalog"])
BASE = "/tmf-api/productCatalogManagement/v4/productOffering"
PRICE_BASE = "/tmf-api/productCatalogManagement/v4/productOfferingPrice"
PRICE_KINDS = "^(recurring|oneTime|usage|wholesaleCost|earlyTermination)$"
MAX_ID = 2**62


class Quantity(TMFModel):
    amount: float = 1
    units: str


class PriceValue(TMFModel):
    unit: str
    value: float


class ProductOfferingPrice(TMFModel):
    id: str
    href: str
    name: str
    lifecycleStatus: str
    priceType: str
    price: PriceValue
    recurringChargePeriodType: str | None = None
    recurringChargePeriodLength: int | None = None
    unitOfMeasure: Quantity | None = None
    includedQuantity: float | None = None
    chargeEvent: str | None = None
    usageType: str | None = None
    taxRateCode: str
    validFor: TimePeriod
    appliesTo: str | None = None
    fractionOfRemaining: float | None = None
    capMonths: int | None = None
    productOffering: Ref | None = Field(default=None, description="The offering this price belongs to (extension)")
    type_: str = Field(default="ProductOfferingPrice", alias="@type")


class ProductOfferingPriceRef(TMFModel):
    id: str
    href: str
    name: str
    referred_type: str = Field(default="ProductOfferingPrice", alias="@referredType")


class ProductOfferingTerm(TMFModel):
    name: str
    duration: Quantity


class ProductOffering(TMFModel):
    id: str
    href: str
    name: str
    description: str | None = None
    lifecycleStatus: str
    isSellable: bool
    isBundle: bool = False
    category: list[dict[str, str]] = []
    productOfferingTerm: list[ProductOfferingTerm] = []
    productOfferingPrice: list[ProductOfferingPriceRef] = []
    prodSpecCharValueUse: list[Characteristic] = []
    bundledEquipment: list[dict[str, Any]] = []
    type_: str = Field(default="ProductOffering", alias="@type")


def _dt(d: date | None) -> datetime | None:
    return datetime.combine(d, time(0), tzinfo=timezone.utc) if d else None


PRICE_TYPE = {"recurring": "recurring", "one_off": "oneTime", "usage": "usage", "wholesale_cost": "wholesaleCost", "early_termination": "earlyTermination"}


KIND_OF_PRICE_TYPE = {v: k for k, v in PRICE_TYPE.items()}


def price_out(p: dict[str, Any], *, on: date) -> ProductOfferingPrice:
    """A TMF620 ProductOfferingPrice; lifecycleStatus says whether it applies on `on` (Active), later (Planned) or no more (Retired)."""
    status = "Planned" if p["valid_from"] > on else "Retired" if p["valid_to"] is not None and p["valid_to"] <= on else "Active"
    recurring = p["kind"] in ("recurring", "wholesale_cost")
    return ProductOfferingPrice(
        id=str(p["id"]), href=f"{PRICE_BASE}/{p['id']}", name=p["name"], lifecycleStatus=status, priceType=PRICE_TYPE[p["kind"]],
        price=PriceValue(**Money.from_minor(p["amount_minor"], p["currency"]).to_tmf()),  # type: ignore[arg-type]
        recurringChargePeriodType="month" if recurring else None, recurringChargePeriodLength=1 if recurring else None,
        unitOfMeasure=Quantity(amount=1, units=p["unit"]) if p["unit"] else None,
        includedQuantity=float(p["included_quantity"]) if p["included_quantity"] is not None else None,
        chargeEvent=p["charge_event"], usageType=p["usage_type"], taxRateCode=p["tax_rate_code"],
        validFor=TimePeriod(startDateTime=_dt(p["valid_from"]), endDateTime=_dt(p["valid_to"])),
        appliesTo=p["applies_to"] if p["kind"] == "early_termination" else None,
        fractionOfRemaining=float(p["etc_fraction"]) if p["etc_fraction"] is not None else None, capMonths=p["etc_cap_months"],
        productOffering=Ref(id=str(p["offering_id"]), href=f"{BASE}/{p['offering_id']}", referred_type="ProductOffering"),
    )


def offering_out(o: dict[str, Any]) -> ProductOffering:
    chars = [Characteristic(name=k, value=o[v]) for k, v in (("kind", "kind"), ("code", "code"), ("partner", "partner_code"), ("downloadMbps", "download_mbps"),
                                                            ("uploadMbps", "upload_mbps"), ("customerKind", "customer_kind"), ("equipmentKind", "equipment_kind")) if o[v] is not None]
    return ProductOffering(
        id=str(o["id"]), href=f"{BASE}/{o['id']}", name=o["name"], description=o["description"], lifecycleStatus="Launched" if o["active"] else "Retired",
        isSellable=o["active"] and o["kind"] != "equipment", category=[{"id": o["kind"], "name": o["kind"]}],
        productOfferingTerm=[ProductOfferingTerm(name=f"{o['contract_months']} months" if o["contract_months"] else "month-to-month", duration=Quantity(amount=o["contract_months"], units="month"))],
        productOfferingPrice=[ProductOfferingPriceRef(id=str(p["id"]), href=f"{PRICE_BASE}/{p['id']}", name=p["name"]) for p in o.get("prices", [])],
        prodSpecCharValueUse=chars, bundledEquipment=o.get("equipment", []),
    )


@router.get(BASE, response_model=list[selectable(ProductOffering)], response_model_by_alias=True, response_model_exclude_none=True)
def list_product_offerings(
    db: DB, now: Now, tz: Tz, principal: Annotated[Principal, Depends(require("catalog.view"))], fields: Fields = None,
    kind: Annotated[str | None, Query(max_length=20)] = None, partner: Annotated[str | None, Query(max_length=40)] = None,
    name: Annotated[str | None, Query(max_length=100)] = None, priceDate: date | None = None, lifecycleStatus: Annotated[str | None, Query(pattern="^(Launched|Retired)$")] = None,
    sort: Sort = None, offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0, limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 100,
) -> JSONResponse:
    """Offerings referencing the prices valid on `priceDate` (default today) (TMF630 `fields`, `sort` and paging headers)."""
    active = None if lifecycleStatus is None else lifecycleStatus == "Launched"
    res = service.offering_list(db, on=priceDate or local_date(now, tz), kind=kind, partner_code=partner, q=name, active=active, offset=offset, limit=limit,
                                sort=sort)
    return list_response((offering_out(o) for o in res["items"]), fields=fields, total=res["total"])


@router.get(BASE + "/{id}", response_model=selectable(ProductOffering), response_model_by_alias=True, response_model_exclude_none=True)
def get_product_offering(id: Annotated[int, Path(ge=1, le=MAX_ID)], db: DB, now: Now, tz: Tz, principal: Annotated[Principal, Depends(require("catalog.view"))],
                         priceDate: date | None = None, allPrices: bool = False, fields: Fields = None) -> JSONResponse:
    """One offering with its prices valid on `priceDate` (default today; `allPrices=true` for the full price history) and bundled equipment."""
    return item_response(offering_out(service.offering_detail(db, offering_id=id, on=None if allPrices else (priceDate or local_date(now, tz)))), fields=fields)


@router.get(PRICE_BASE, response_model=list[selectable(ProductOfferingPrice)], response_model_by_alias=True, response_model_exclude_none=True)
def list_product_offering_prices(
    db: DB, now: Now, tz: Tz, principal: Annotated[Principal, Depends(require("catalog.view"))], fields: Fields = None,
    priceType: Annotated[str | None, Query(pattern=PRICE_KINDS)] = None, name: Annotated[str | None, Query(max_length=100)] = None,
    offering: Annotated[int | None, Query(alias="productOffering.id", ge=1, le=MAX_ID)] = None,
    priceDate: Annotated[date | None, Query(description="Only prices valid on this date (default: all)")] = None,
    sort: Sort = None, offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0, limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 100,
) -> JSONResponse:
    """Every price (current, planned and retired), filtered and sorted in SQL (TMF630 `fields` and paging headers)."""
    res = service.price_list(db, offering_id=offering, kind=KIND_OF_PRICE_TYPE[priceType] if priceType else None, name=name, on=priceDate, sort=sort,
                             offset=offset, limit=limit)
    today = local_date(now, tz)
    return list_response((price_out(p, on=today) for p in res["items"]), fields=fields, total=res["total"])


@router.get(PRICE_BASE + "/{id}", response_model=selectable(ProductOfferingPrice), response_model_by_alias=True, response_model_exclude_none=True)
def get_product_offering_price(id: Annotated[int, Path(ge=1, le=MAX_ID)], db: DB, now: Now, tz: Tz,
                               principal: Annotated[Principal, Depends(require("catalog.view"))], fields: Fields = None) -> JSONResponse:
    """One price: what each ProductOfferingPriceRef of an offering (or product) resolves to."""
    return item_response(price_out(service.get_price(db, price_id=id), on=local_date(now, tz)), fields=fields)
