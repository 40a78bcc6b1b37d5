"""TMF620 Product Catalog: product offerings with their prices (read-only; prices are edited in /admin)."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from opsline.api.tmf import PAGE_LIMIT_MAX, Characteristic, Fields, TimePeriod, TMFModel, item_response, list_response, selectable
from opsline.catalog import service
from opsline.core.localtime import local_date
from opsline.core.money import Money
from opsline.web.deps import DB, Now, Principal, Tz, require

router = APIRouter(tags=["TMF620 Product Catalog"])
BASE = "/tmf-api/productCatalogManagement/v4/productOffering"
MAX_ID = 2**62


class Quantity(TMFModel):
    amount: float = 1
    units: str


class PriceValue(TMFModel):
    unit: str
    value: float


class ProductOfferingPrice(TMFModel):
    id: str
    name: str
    priceType: str
    price: PriceValue
    recurringChargePeriodType: str | None = None
    unitOfMeasure: Quantity | None = None
    includedQuantity: float | None = None
    chargeEvent: str | None = None
    usageType: str | None = None
    taxRateCode: str
    validFor: TimePeriod
    appliesTo: str | None = None
    fractionOfRemaining: float | None = None
    capMonths: int | None = None
    type_: str = Field(default="ProductOfferingPrice", alias="@type")


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
    productOfferingPrice: list[ProductOfferingPrice] = []
    prodSpecCharValueUse: list[Characteristic] = []
    bundledEquipment: list[dict[str, Any]] = []
    type_: str = Field(default="ProductOffering", alias="@type")


def _dt(d: date | None) -> datetime | None:
    return datetime.combine(d, time(0), tzinfo=timezone.utc) if d else None


PRICE_TYPE = {"recurring": "recurring", "one_off": "oneTime", "usage": "usage", "wholesale_cost": "wholesaleCost", "early_termination": "earlyTermination"}


def price_out(p: dict[str, Any]) -> ProductOfferingPrice:
    return ProductOfferingPrice(
        id=str(p["id"]), name=p["name"], priceType=PRICE_TYPE[p["kind"]], price=PriceValue(**Money.from_minor(p["amount_minor"], p["currency"]).to_tmf()),  # type: ignore[arg-type]
        recurringChargePeriodType="month" if p["kind"] in ("recurring", "wholesale_cost") else None,
        unitOfMeasure=Quantity(amount=1, units=p["unit"]) if p["unit"] else None,
        includedQuantity=float(p["included_quantity"]) if p["included_quantity"] is not None else None,
        chargeEvent=p["charge_event"], usageType=p["usage_type"], taxRateCode=p["tax_rate_code"],
        validFor=TimePeriod(startDateTime=_dt(p["valid_from"]), endDateTime=_dt(p["valid_to"])),
        appliesTo=p["applies_to"] if p["kind"] == "early_termination" else None,
        fractionOfRemaining=float(p["etc_fraction"]) if p["etc_fraction"] is not None else None, capMonths=p["etc_cap_months"],
    )


def offering_out(o: dict[str, Any]) -> ProductOffering:
    chars = [Characteristic(name=k, value=o[v]) for k, v in (("kind", "kind"), ("code", "code"), ("partner", "partner_code"), ("downloadMbps", "download_mbps"),
                                                            ("uploadMbps", "upload_mbps"), ("customerKind", "customer_kind"), ("equipmentKind", "equipment_kind")) if o[v] is not None]
    return ProductOffering(
        id=str(o["id"]), href=f"{BASE}/{o['id']}", name=o["name"], description=o["description"], lifecycleStatus="Launched" if o["active"] else "Retired",
        isSellable=o["active"] and o["kind"] != "equipment", category=[{"id": o["kind"], "name": o["kind"]}],
        productOfferingTerm=[ProductOfferingTerm(name=f"{o['contract_months']} months" if o["contract_months"] else "month-to-month", duration=Quantity(amount=o["contract_months"], units="month"))],
        productOfferingPrice=[price_out(p) for p in o.get("prices", [])], prodSpecCharValueUse=chars, bundledEquipment=o.get("equipment", []),
    )


@router.get(BASE, response_model=list[selectable(ProductOffering)], response_model_by_alias=True, response_model_exclude_none=True)
def list_product_offerings(
    db: DB, now: Now, tz: Tz, principal: Annotated[Principal, Depends(require("catalog.view"))], fields: Fields = None,
    kind: Annotated[str | None, Query(max_length=20)] = None, partner: Annotated[str | None, Query(max_length=40)] = None,
    name: Annotated[str | None, Query(max_length=100)] = None, priceDate: date | None = None, lifecycleStatus: Annotated[str | None, Query(pattern="^(Launched|Retired)$")] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0, limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 100,
) -> JSONResponse:
    """Offerings with the prices valid on `priceDate` (default today) embedded (TMF630 `fields` and paging headers)."""
    active = None if lifecycleStatus is None else lifecycleStatus == "Launched"
    res = service.offering_list(db, on=priceDate or local_date(now, tz), kind=kind, partner_code=partner, q=name, active=active, offset=offset, limit=limit)
    return list_response((offering_out(o) for o in res["items"]), fields=fields, total=res["total"])


@router.get(BASE + "/{id}", response_model=selectable(ProductOffering), response_model_by_alias=True, response_model_exclude_none=True)
def get_product_offering(id: Annotated[int, Path(ge=1, le=MAX_ID)], db: DB, now: Now, tz: Tz, principal: Annotated[Principal, Depends(require("catalog.view"))],
                         priceDate: date | None = None, allPrices: bool = False, fields: Fields = None) -> JSONResponse:
    """One offering with its prices valid on `priceDate` (default today; `allPrices=true` for the full price history) and bundled equipment."""
    return item_response(offering_out(service.offering_detail(db, offering_id=id, on=None if allPrices else (priceDate or local_date(now, tz)))), fields=fields)
