"""TMF637 Product Inventory: installed products with price, place, realizing resource and relationships."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field

from opsline.api.tmf import PAGE_LIMIT_MAX, Characteristic, Fields, Ref, Sort, TMFModel, item_response, list_response, selectable
from opsline.core.errors import InvalidInput
from opsline.core.money import Money
from opsline.customers.schemas import normalise_phone
from opsline.inventory import service
from opsline.inventory.models import PRODUCT
from opsline.core.localtime import local_date
from opsline.web.deps import DB, Now, Principal, Tz, require

router = APIRouter(tags=["TMF637 Product Inventory"])
BASE = "/tmf-api/productInventory/v4/product"
OFFERING_BASE = "/tmf-api/productCatalogManagement/v4/productOffering"
PRICE_BASE = "/tmf-api/productCatalogManagement/v4/productOfferingPrice"
MAX_ID = 2**62
STATES = "^(" + "|".join(PRODUCT.state_values()) + ")$"


class Place(TMFModel):
    id: str
    role: str = "installationAddress"
    name: str | None = None
    referred_type: str = Field(default="GeographicSite", alias="@referredType")


class ProductPriceValue(TMFModel):
    dutyFreeAmount: dict[str, Any]
    taxRateCode: str


class ProductPrice(TMFModel):
    name: str
    priceType: str
    recurringChargePeriod: str | None = None
    price: ProductPriceValue
    productOfferingPrice: Ref | None = None


class RealizingResource(TMFModel):
    id: str
    name: str | None = None
    value: str | None = None
    referred_type: str = Field(default="Resource", alias="@referredType")


class ProductRelationship(TMFModel):
    relationshipType: str
    product: Ref


class Product(TMFModel):
    id: str
    href: str
    name: str
    status: str
    statusReason: str | None = None
    isBundle: bool = False
    startDate: datetime | None = None
    terminationDate: datetime | None = None
    orderDate: datetime | None = None
    productOffering: Ref
    billingAccount: Ref
    place: list[Place] = []
    productPrice: list[ProductPrice] = []
    realizingResource: list[RealizingResource] = []
    productRelationship: list[ProductRelationship] = []
    productCharacteristic: list[Characteristic] = []
    productOrderItem: list[dict[str, Any]] = []
    type_: str = Field(default="Product", alias="@type")


def _dt(d: date | None) -> datetime | None:
    return datetime.combine(d, time(0), tzinfo=timezone.utc) if d else None


def product_out(p: dict[str, Any], prices: list[Any], equipment: list[dict[str, Any]]) -> Product:
    resources = []
    if p["partner_line_ref"]:
        resources.append(RealizingResource(id=p["partner_line_ref"], name=f"{p['partner_code']} line", value=p["partner_line_ref"], referred_type="LogicalResource"))
    resources += [RealizingResource(id=e["serial_number"], name=f"{e['kind']} {e['model']}", value=e["state"], referred_type="PhysicalResource") for e in equipment]
    chars = [Characteristic(name=k, value=p[v]) for k, v in (("partner", "partner_code"), ("partnerLineRef", "partner_line_ref"), ("msisdn", "msisdn"),
                                                             ("contractMonths", "contract_months"), ("contractEndDate", "contract_end_date"),
                                                             ("offeringCode", "offering_code")) if p[v] is not None]
    return Product(
        id=str(p["id"]), href=f"{BASE}/{p['id']}", name=p["offering_name"], status=p["state"], statusReason=p["state_reason"],
        startDate=_dt(p["start_date"]), terminationDate=_dt(p["end_date"]), orderDate=p["created_at"],
        productOffering=Ref(id=str(p["offering_id"]), href=f"{OFFERING_BASE}/{p['offering_id']}", name=p["offering_name"]),
        billingAccount=Ref(id=str(p["account_id"]), href=f"/tmf-api/accountManagement/v4/billingAccount/{p['account_id']}", referred_type="BillingAccount"),
        place=[Place(id=str(p["site_id"]), name=p["site_address"])] if p["site_id"] else [],
        productPrice=[ProductPrice(name=pr.name, priceType={"recurring": "recurring", "one_off": "oneTime", "usage": "usage"}[pr.kind],
                                   recurringChargePeriod="month" if pr.kind == "recurring" else None,
                                   price=ProductPriceValue(dutyFreeAmount=Money.from_minor(pr.amount_minor, pr.currency).to_tmf(), taxRateCode=pr.tax_rate_code),
                                   productOfferingPrice=Ref(id=str(pr.id), href=f"{PRICE_BASE}/{pr.id}", name=pr.name, referred_type="ProductOfferingPrice")) for pr in prices if pr.kind in ("recurring", "one_off", "usage")],
        realizingResource=resources,
        productRelationship=[ProductRelationship(relationshipType="replaces", product=Ref(id=str(p["replaces_product_id"]), href=f"{BASE}/{p['replaces_product_id']}"))] if p["replaces_product_id"] else [],
        productCharacteristic=chars,
        productOrderItem=[{"productOrderId": str(p["order_id"]), "orderItemId": str(p["order_item_id"]), "orderItemAction": p["order_item_action"],
                           "productOrderHref": f"/tmf-api/productOrderingManagement/v4/productOrder/{p['order_id']}"}] if p["order_id"] and p["order_item_id"] else [],
    )


def _out(rows: list[dict[str, Any]]) -> list[Product]:
    return [product_out(p, p["prices"], p["equipment"]) for p in rows]


@router.get(BASE, response_model=list[selectable(Product)], response_model_by_alias=True, response_model_exclude_none=True)
def list_products(
    db: DB, now: Now, tz: Tz, principal: Annotated[Principal, Depends(require("inventory.view"))], fields: Fields = None,
    account: Annotated[int | None, Query(alias="billingAccount.id", ge=1, le=MAX_ID)] = None, status: Annotated[str | None, Query(pattern=STATES)] = None,
    offering: Annotated[int | None, Query(alias="productOffering.id", ge=1, le=MAX_ID)] = None,
    related_party: Annotated[int | None, Query(alias="relatedParty.id", ge=1, le=MAX_ID, description="The customer (account) id")] = None,
    sort: Sort = None, offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0, limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 100,
) -> JSONResponse:
    """Installed products, newest first (or by `sort`: startDate, terminationDate, orderDate, status, name, id), by billing
    account (or customer), status and offering, in SQL (TMF630 `fields` and paging headers)."""
    if account is not None and related_party is not None and account != related_party:
        return list_response([], fields=fields, total=0)
    res = service.products_for_api(db, account_id=account or related_party, state=status, offering_id=offering, sort=sort, offset=offset, limit=limit,
                                   on=local_date(now, tz))
    return list_response(_out(res["items"]), fields=fields, total=res["total"])


@router.get(BASE + "/{id}", response_model=selectable(Product), response_model_by_alias=True, response_model_exclude_none=True)
def get_product(id: Annotated[int, Path(ge=1, le=MAX_ID)], db: DB, now: Now, tz: Tz, principal: Annotated[Principal, Depends(require("inventory.view"))],
                fields: Fields = None) -> JSONResponse:
    return item_response(_out(service.products_for_api(db, product_id=id, on=local_date(now, tz))["items"])[0], fields=fields)


class CharacteristicIn(TMFModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    name: str = Field(min_length=1, max_length=60)
    value: str = Field(min_length=1, max_length=80)
    valueType: str | None = Field(default=None, max_length=20)


class ProductUpdate(TMFModel):
    """TMF637 Product_Update as far as a record may be corrected without a product order: the characteristics
    `msisdn` and `partnerLineRef`. Anything else (a new offering, place, status, price ...) is a 400 naming it: such
    changes go through a product order or the product's lifecycle."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    productCharacteristic: list[CharacteristicIn] = Field(default=[], max_length=10)


PATCHABLE = {"msisdn": "msisdn", "partnerLineRef": "partner_line_ref"}


@router.patch(BASE + "/{id}", response_model=Product, response_model_by_alias=True, response_model_exclude_none=True)
def patch_product(id: Annotated[int, Path(ge=1, le=MAX_ID)], body: ProductUpdate, db: DB, now: Now, tz: Tz,
                  principal: Annotated[Principal, Depends(require("orders.place"))],
                  if_match: Annotated[str | None, Header(alias="If-Match", max_length=100)] = None) -> JSONResponse:
    """Correct a product's mobile number or partner line reference (JSON or `application/merge-patch+json`); If-Match a version."""
    changes: dict[str, str] = {}
    for i, ch in enumerate(body.productCharacteristic):
        if ch.name not in PATCHABLE:
            raise InvalidInput(f"productCharacteristic '{ch.name}' cannot be changed here (only {', '.join(PATCHABLE)}); use a product order",
                               field=f"productCharacteristic[{i}].name")
        changes[PATCHABLE[ch.name]] = ch.value
    if "msisdn" in changes:
        try:
            changes["msisdn"] = normalise_phone(changes["msisdn"]) or ""
        except ValueError as exc:
            raise InvalidInput(str(exc), field="productCharacteristic.msisdn") from exc
    tag = (if_match or "").strip().removeprefix("W/").strip('"')
    service.update_product_details(db, product_id=id, now=now, actor=principal.actor, version=int(tag) if tag.isdigit() else None, **changes)
    db.flush()
    return item_response(_out(service.products_for_api(db, product_id=id, on=local_date(now, tz))["items"])[0])
