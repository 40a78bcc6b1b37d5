"""TMF622 Product Ordering and TMF648 Quote Management."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from opsline.api.idempotency import run_idempotent
from opsline.api.tmf import PAGE_LIMIT_MAX, Fields, Note, Ref, TMFModel, dump, item_response, list_response, selectable
from opsline.core.errors import InvalidInput
from opsline.core.money import Money
from opsline.orders import service
from opsline.orders.models import ORDER, QUOTE
from opsline.orders.schemas import OrderIn, OrderItemIn, QuoteIn
from opsline.web.deps import DB, Now, Principal, Tz, require

router = APIRouter(tags=["TMF622 Product Ordering", "TMF648 Quote"])
BASE = "/tmf-api/productOrderingManagement/v4/productOrder"
QUOTE_BASE = "/tmf-api/quoteManagement/v4/quote"
OFFERING_BASE = "/tmf-api/productCatalogManagement/v4/productOffering"
PRODUCT_BASE = "/tmf-api/productInventory/v4/product"
ACCOUNT_BASE = "/tmf-api/accountManagement/v4/billingAccount"
MAX_ID = 2**62
ORDER_STATES = "^(" + "|".join(ORDER.state_values()) + ")$"
QUOTE_STATES = "^(" + "|".join(QUOTE.state_values()) + ")$"


class IdRef(TMFModel):
    id: str = Field(pattern=r"^\d{1,18}$")


class PlaceRef(TMFModel):
    id: str = Field(pattern=r"^\d{1,18}$")
    role: str | None = None
    referred_type: str | None = Field(default=None, alias="@referredType")


class ProductRefIn(TMFModel):
    id: str | None = Field(default=None, pattern=r"^\d{1,18}$")
    place: list[PlaceRef] = Field(default=[], max_length=1)


class ProductOrderItemIn(TMFModel):
    id: str | None = Field(default=None, max_length=20)
    action: str = Field(pattern="^(add|modify|delete|noChange)$")
    quantity: int = Field(default=1, ge=1, le=100)
    productOffering: IdRef | None = None
    product: ProductRefIn | None = None
    # Opsline extension for a delete inside a fixed term: waive the early-termination fee (a reason is required)
    earlyTerminationFeeWaiverReason: str | None = Field(default=None, max_length=500)


class ProductOrderCreate(TMFModel):
    """TMF622 ProductOrder_Create. The customer is `billingAccount.id` (or a relatedParty with role 'customer')."""

    externalId: str | None = Field(default=None, max_length=80)
    description: str | None = Field(default=None, max_length=2000)
    priority: str | None = Field(default=None, pattern=r"^[0-9]$")
    channel: list[dict[str, Any]] = Field(default=[], max_length=5)
    requestedStartDate: date | None = None
    requestedCompletionDate: date | None = None
    billingAccount: IdRef | None = None
    relatedParty: list[dict[str, Any]] = Field(default=[], max_length=10)
    note: list[Note] = Field(default=[], max_length=20)
    productOrderItem: list[ProductOrderItemIn] = Field(min_length=1, max_length=50)


class ProductOrderUpdate(TMFModel):
    """PATCH: ask for a state (cancelled, held, inProgress to resume) with a reason."""

    state: str = Field(pattern="^(cancelled|held|inProgress)$")
    cancellationReason: str | None = Field(default=None, max_length=500)
    stateReason: str | None = Field(default=None, max_length=500)


class ProductRef(TMFModel):
    id: str
    href: str
    place: list[PlaceRef] = []


class ProductOrderItem(TMFModel):
    id: str
    action: str
    state: str
    quantity: int
    productOffering: Ref
    product: ProductRef | None = None
    stateReason: str | None = None
    completionDate: date | None = None
    partnerServiceOrder: Ref | None = None
    itemPrice: list[dict[str, Any]] = []
    type_: str = Field(default="ProductOrderItem", alias="@type")


class ProductOrder(TMFModel):
    id: str
    href: str
    externalId: str | None = None
    state: str
    stateReason: str | None = None
    description: str | None = None
    priority: str | None = None
    channel: list[dict[str, Any]] = []
    orderDate: datetime
    requestedStartDate: date | None = None
    requestedCompletionDate: date | None = None
    completionDate: date | None = None
    billingAccount: Ref
    quote: list[Ref] = []
    productOrderItem: list[ProductOrderItem] = []
    allowedActions: list[str] = []
    type_: str = Field(default="ProductOrder", alias="@type")


def _etf_price(it: dict[str, Any]) -> dict[str, Any]:
    waived = bool(it["etf_waiver_reason"])
    amount = Money.from_minor(0 if waived else it["etf_minor"], it["etf_currency"])
    return {"name": "Early termination fee" + (f" (waived: {it['etf_waiver_reason']})" if waived else ""), "priceType": "oneTime",
            "price": {"dutyFreeAmount": amount.to_tmf()}, "@type": "OrderPrice"}


def order_out(d: dict[str, Any]) -> ProductOrder:
    items = []
    for it in d["items"]:
        pid = it["result_product_id"] or it["product_id"]
        items.append(ProductOrderItem(
            id=str(it["id"]), action=it["action"], state=it["state"], quantity=it["quantity"], stateReason=it["state_reason"], completionDate=it["completion_date"],
            productOffering=Ref(id=str(it["offering_id"]), href=f"{OFFERING_BASE}/{it['offering_id']}", name=it["offering_name"]),
            product=ProductRef(id=str(pid), href=f"{PRODUCT_BASE}/{pid}", place=[PlaceRef(id=str(it["site_id"]), role="installationAddress", referred_type="GeographicSite")] if it["site_id"] else []) if pid else None,
            partnerServiceOrder=Ref(id=str(it["partner_service_order_id"]), name=it["partner_code"], referred_type="ServiceOrder") if it["partner_service_order_id"] else None,
            itemPrice=[_etf_price(it)] if it["etf_minor"] else [],
        ))
    return ProductOrder(
        id=str(d["id"]), href=f"{BASE}/{d['id']}", externalId=d["external_id"], state=d["state"], stateReason=d["state_reason"], description=d["description"],
        priority=str(d["priority"]), channel=[{"id": d["channel"], "name": d["channel"], "@type": "RelatedChannel"}] if d["channel"] else [], orderDate=d["created_at"], requestedStartDate=d["requested_start_date"],
        requestedCompletionDate=d["requested_completion_date"], completionDate=d["completion_date"],
        billingAccount=Ref(id=str(d["account_id"]), href=f"{ACCOUNT_BASE}/{d['account_id']}", referred_type="BillingAccount"),
        quote=[Ref(id=str(d["quote_id"]), href=f"{QUOTE_BASE}/{d['quote_id']}")] if d["quote_id"] else [], productOrderItem=items, allowedActions=d["allowed_actions"],
    )


def _account_id(body: ProductOrderCreate) -> int:
    if body.billingAccount is not None:
        return int(body.billingAccount.id)
    for p in body.relatedParty:
        if p.get("role") == "customer" and str(p.get("id", "")).isdigit():
            return int(p["id"])
    raise InvalidInput("name the customer: billingAccount.id (or a relatedParty with role 'customer')", field="billingAccount")


def _items(items: list[ProductOrderItemIn]) -> list[OrderItemIn]:
    out = []
    for it in items:
        place = it.product.place[0].id if it.product and it.product.place else None
        out.append(OrderItemIn(action=it.action, quantity=it.quantity, offering_id=int(it.productOffering.id) if it.productOffering else None,
                               product_id=int(it.product.id) if it.product and it.product.id else None, site_id=int(place) if place else None,
                               waive_early_termination_fee=it.earlyTerminationFeeWaiverReason is not None, waiver_reason=it.earlyTerminationFeeWaiverReason))
    return out


def _check_ids(*values: int | None) -> None:
    for v in values:
        if v is not None and not 0 < v < MAX_ID:
            raise InvalidInput(f"id {v} is out of range")


@router.get(BASE, response_model=list[selectable(ProductOrder)], response_model_by_alias=True, response_model_exclude_none=True)
def list_product_orders(
    db: DB, now: Now, tz: Tz, principal: Annotated[Principal, Depends(require("orders.view"))], fields: Fields = None,
    state: Annotated[str | None, Query(pattern=ORDER_STATES)] = None, account: Annotated[int | None, Query(alias="billingAccount.id", ge=1, le=MAX_ID)] = None,
    externalId: Annotated[str | None, Query(max_length=80)] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0, limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 50,
) -> JSONResponse:
    """Orders newest first (TMF630: `fields`, `offset`/`limit`, X-Total-Count / X-Result-Count)."""
    res = service.order_list(db, now=now, tz=tz, state=state, account_id=account, q=externalId, offset=offset, limit=limit, actor=principal.actor)
    return list_response((order_out(r) for r in res["items"]), fields=fields, total=res["total"])


@router.get(BASE + "/{id}", response_model=selectable(ProductOrder), response_model_by_alias=True, response_model_exclude_none=True)
def get_product_order(id: Annotated[int, Path(ge=1, le=MAX_ID)], db: DB, now: Now, tz: Tz, principal: Annotated[Principal, Depends(require("orders.view"))],
                      fields: Fields = None) -> JSONResponse:
    return item_response(order_out(service.order_detail(db, order_id=id, now=now, tz=tz, actor=principal.actor)), fields=fields)


@router.post(BASE, status_code=201, response_model=ProductOrder, response_model_by_alias=True, response_model_exclude_none=True)
def create_product_order(
    body: ProductOrderCreate, db: DB, now: Now, tz: Tz, principal: Annotated[Principal, Depends(require("orders.place"))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> JSONResponse:
    """Place an order: items `add` (productOffering + product.place for FNO-delivered offerings), `modify` (product.id with a new
    offering and/or a new place: relocation) or `delete` (product.id). Validation failures change nothing."""

    def action() -> tuple[int, dict[str, Any]]:
        data = OrderIn(account_id=_account_id(body), external_id=body.externalId, requested_start_date=body.requestedStartDate,
                       requested_completion_date=body.requestedCompletionDate, channel=(body.channel[0].get("name") if body.channel else "api"),
                       priority=int(body.priority) if body.priority else 4, description=body.description, items=_items(body.productOrderItem),
                       hold_terminations=True)  # a TMF622 delete opens a cancellation journey (notice, penalty, FNO cut-off) instead of ending today
        return 201, dump(order_out(service.submit_order(db, data=data, now=now, tz=tz, actor=principal.actor)))

    status, payload, _ = run_idempotent(db, principal=principal.actor.name, key=idempotency_key, method="POST", path=BASE, body=body.model_dump(mode="json"), now=now, action=action)
    return JSONResponse(payload, status_code=status, headers={"Location": payload.get("href", "")})


@router.patch(BASE + "/{id}", response_model=ProductOrder, response_model_by_alias=True, response_model_exclude_none=True)
def patch_product_order(
    id: Annotated[int, Path(ge=1, le=MAX_ID)], body: ProductOrderUpdate, db: DB, now: Now, tz: Tz, principal: Annotated[Principal, Depends(require("orders.manage"))],
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> ProductOrder:
    """`state: cancelled` (goes through assessingCancellation; refused once an item completed), `held`, or `inProgress` to resume."""
    version = int(if_match.strip('"W/')) if if_match and if_match.strip('"W/').isdigit() else None
    action = {"cancelled": "cancel", "held": "hold", "inProgress": "resume"}[body.state]
    return order_out(service.change_order(db, order_id=id, action=action, now=now, tz=tz, actor=principal.actor,
                                          reason=body.cancellationReason or body.stateReason, version=version))


# --- TMF648 quotes ---------------------------------------------------------------------------------

class QuotePrice(TMFModel):
    priceType: str
    recurringChargePeriod: str | None = None
    price: dict[str, Any]


class QuoteItem(TMFModel):
    id: str
    action: str
    quantity: int
    state: str
    productOffering: Ref
    product: ProductRef | None = None
    quoteItemPrice: list[QuotePrice] = []


class Quote(TMFModel):
    id: str
    href: str
    externalId: str | None = None
    state: str
    description: str | None = None
    quoteDate: datetime
    requestedQuoteCompletionDate: date | None = None
    effectiveQuoteCompletionDate: date | None = None
    validFor: dict[str, Any] | None = None
    billingAccount: list[Ref]
    quoteItem: list[QuoteItem] = []
    quoteTotalPrice: list[QuotePrice] = []
    productOrder: list[Ref] = []
    allowedActions: list[str] = []
    type_: str = Field(default="Quote", alias="@type")


class QuoteCreate(TMFModel):
    externalId: str | None = Field(default=None, max_length=80)
    description: str | None = Field(default=None, max_length=2000)
    requestedQuoteCompletionDate: date | None = None
    validFor: dict[str, Any] | None = None
    billingAccount: IdRef | list[IdRef]  # TMF648 has an array; a single reference is accepted too
    quoteItem: list[ProductOrderItemIn] = Field(min_length=1, max_length=50)

    def account_id(self) -> int:
        refs = self.billingAccount if isinstance(self.billingAccount, list) else [self.billingAccount]
        if len(refs) != 1:
            raise InvalidInput("name exactly one billing account", field="billingAccount")
        return int(refs[0].id)


class QuoteUpdate(TMFModel):
    state: str = Field(pattern="^(approved|accepted|rejected|cancelled|pending)$")
    stateReason: str | None = Field(default=None, max_length=500)


def _price(kind: str, net: int, tax: int, currency: str) -> QuotePrice:
    return QuotePrice(priceType=kind, recurringChargePeriod="month" if kind == "recurring" else None, price={
        "dutyFreeAmount": Money.from_minor(net, currency).to_tmf(), "taxIncludedAmount": Money.from_minor(net + tax, currency).to_tmf(),
        "taxRate": round(tax / net * 100, 2) if net else 0})


def quote_out(q: dict[str, Any]) -> Quote:
    return Quote(
        id=str(q["id"]), href=f"{QUOTE_BASE}/{q['id']}", externalId=q["external_id"], state=q["state"], description=q["description"], quoteDate=q["created_at"],
        requestedQuoteCompletionDate=q["requested_start_date"], validFor={"endDateTime": q["valid_until"].isoformat()} if q["valid_until"] else None,
        billingAccount=[Ref(id=str(q["account_id"]), href=f"{ACCOUNT_BASE}/{q['account_id']}", referred_type="BillingAccount")],
        quoteItem=[QuoteItem(id=str(i["id"]), action=i["action"], quantity=i["quantity"], state=q["state"],
                             productOffering=Ref(id=str(i["offering_id"]), href=f"{OFFERING_BASE}/{i['offering_id']}", name=i["offering_name"]),
                             product=ProductRef(id=str(i["product_id"]), href=f"{PRODUCT_BASE}/{i['product_id']}") if i["product_id"] else None,
                             quoteItemPrice=[_price("recurring", i["recurring_minor"], i["recurring_tax_minor"], i["currency"]), _price("oneTime", i["one_off_minor"], i["one_off_tax_minor"], i["currency"])])
                   for i in q["items"]],
        quoteTotalPrice=[_price("recurring", q["recurring_total_minor"], q["recurring_tax_minor"], q["currency"]), _price("oneTime", q["one_off_total_minor"], q["one_off_tax_minor"], q["currency"])],
        productOrder=[Ref(id=str(q["product_order_id"]), href=f"{BASE}/{q['product_order_id']}")] if q["product_order_id"] else [], allowedActions=q["allowed_actions"],
    )


@router.get(QUOTE_BASE, response_model=list[selectable(Quote)], response_model_by_alias=True, response_model_exclude_none=True)
def list_quotes(
    db: DB, principal: Annotated[Principal, Depends(require("orders.view"))], fields: Fields = None,
    state: Annotated[str | None, Query(pattern=QUOTE_STATES)] = None,
    account: Annotated[int | None, Query(alias="billingAccount.id", ge=1, le=MAX_ID)] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0, limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JSONResponse:
    """Quotes newest first (TMF630 `fields` and paging headers)."""
    res = service.quote_list(db, account_id=account, state=state, offset=offset, limit=limit)
    return list_response((quote_out(q) for q in res["items"]), fields=fields, total=res["total"])


@router.get(QUOTE_BASE + "/{id}", response_model=selectable(Quote), response_model_by_alias=True, response_model_exclude_none=True)
def get_quote(id: Annotated[int, Path(ge=1, le=MAX_ID)], db: DB, principal: Annotated[Principal, Depends(require("orders.view"))], fields: Fields = None) -> JSONResponse:
    return item_response(quote_out(service.quote_detail(db, quote_id=id, actor=principal.actor)), fields=fields)


@router.post(QUOTE_BASE, status_code=201, response_model=Quote, response_model_by_alias=True, response_model_exclude_none=True)
def create_quote(
    body: QuoteCreate, db: DB, now: Now, tz: Tz, principal: Annotated[Principal, Depends(require("orders.place"))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> JSONResponse:
    def action() -> tuple[int, dict[str, Any]]:
        valid_until = None
        if body.validFor and body.validFor.get("endDateTime"):
            try:
                valid_until = date.fromisoformat(str(body.validFor["endDateTime"])[:10])
            except ValueError as exc:
                raise InvalidInput("validFor.endDateTime is not a date", field="validFor") from exc
        data = QuoteIn(account_id=body.account_id(), external_id=body.externalId, description=body.description,
                       requested_start_date=body.requestedQuoteCompletionDate, valid_until=valid_until, items=_items(body.quoteItem))
        return 201, dump(quote_out(service.submit_quote(db, data=data, now=now, tz=tz, actor=principal.actor)))

    status, payload, _ = run_idempotent(db, principal=principal.actor.name, key=idempotency_key, method="POST", path=QUOTE_BASE, body=body.model_dump(mode="json"), now=now, action=action)
    return JSONResponse(payload, status_code=status, headers={"Location": payload.get("href", "")})


@router.patch(QUOTE_BASE + "/{id}", response_model=Quote, response_model_by_alias=True, response_model_exclude_none=True)
def patch_quote(id: Annotated[int, Path(ge=1, le=MAX_ID)], body: QuoteUpdate, db: DB, now: Now, tz: Tz, principal: Annotated[Principal, Depends(require("orders.place"))]) -> Quote:
    """`state: accepted` places the product order (see productOrder); also approved, pending, rejected, cancelled."""
    action = {"approved": "approve", "accepted": "accept", "rejected": "reject", "cancelled": "cancel", "pending": "submit"}[body.state]
    return quote_out(service.change_quote(db, quote_id=id, action=action, now=now, tz=tz, actor=principal.actor, reason=body.stateReason))
