"""TMF622 Product Ordering and TMF648 Quote Management."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field

from opsline.api.idempotency import run_idempotent
from opsline.api.tmf import PAGE_LIMIT_MAX, Fields, Note, Ref, Sort, TMFModel, dump, item_response, list_response, selectable, sort_clauses
from opsline.core.errors import Conflict, InvalidInput
from opsline.core.money import Money
from opsline.api import tmf_attributes
from opsline.orders import service
from opsline.orders.models import ORDER, QUOTE
from opsline.orders.models import ProductOrder as ProductOrderRow
from opsline.orders.models import Quote as QuoteRow
from opsline.orders.schemas import OrderIn, OrderItemIn, QuoteIn
from opsline.web.deps import DB, Now, Principal, Tz, require

router = APIRouter(tags=["TMF622 Product Ordering", "TMF648 Quote"])
BASE = "/tmf-api/productOrderingManagement/v4/productOrder"
QUOTE_BASE = "/tmf-api/quoteManagement/v4/quote"
OFFERING_BASE = "/tmf-api/productCatalogManagement/v4/productOffering"
PRODUCT_BASE = "/tmf-api/productInventory/v4/product"
ACCOUNT_BASE = "/tmf-api/accountManagement/v4/billingAccount"
CUSTOMER_BASE = "/tmf-api/customerManagement/v4/customer"
MAX_ID = 2**62
ORDER_STATES = "^(" + "|".join(ORDER.state_values()) + ")$"
QUOTE_STATES = "^(" + "|".join(QUOTE.state_values()) + ")$"


class IdRef(TMFModel):
    id: str = Field(pattern=r"^\d{1,18}$")


class Kept(TMFModel):
    """An input shape whose attributes beyond ours are kept (see tmf_attributes) rather than dropped."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")


# Attributes the server assigns (TMF622 ProductOrder_Create leaves them out): a client sending a whole resource back,
# like the spec's own sample, has them ignored rather than refused.
SERVER_OWNED = frozenset({"id", "href", "state", "orderDate", "completionDate", "expectedCompletionDate", "cancellationDate", "cancellationReason",
                          "@type", "@baseType", "@schemaLocation"})
QUOTE_SERVER_OWNED = SERVER_OWNED | {"quoteDate", "expectedQuoteCompletionDate", "effectiveQuoteCompletionDate", "quoteTotalPrice"}


class PlaceRef(TMFModel):
    id: str = Field(pattern=r"^\d{1,18}$")
    role: str | None = None
    referred_type: str | None = Field(default=None, alias="@referredType")


class ProductRefIn(Kept):
    id: str | None = Field(default=None, pattern=r"^\d{1,18}$")
    place: list[PlaceRef] = Field(default=[], max_length=1)


class ProductOrderItemIn(Kept):
    id: str | None = Field(default=None, max_length=20)
    action: str = Field(pattern="^(add|modify|delete|noChange)$")
    quantity: int = Field(default=1, ge=1, le=100)
    productOffering: IdRef | None = None
    product: ProductRefIn | None = None
    # Opsline extension for a delete inside a fixed term: waive the early-termination fee (a reason is required)
    earlyTerminationFeeWaiverReason: str | None = Field(default=None, max_length=500)


class ProductOrderCreate(Kept):
    """TMF622 ProductOrder_Create. The customer is `billingAccount.id` (or a relatedParty with role 'customer')."""

    externalId: str | None = Field(default=None, max_length=80)
    description: str | None = Field(default=None, max_length=2000)
    priority: str | None = Field(default=None, pattern=r"^[0-9]$")
    channel: list[dict[str, Any]] = Field(default=[], max_length=5)
    requestedStartDate: datetime | date | None = None  # TMF622 says date-time: any time of day is accepted (the local date is kept)
    requestedCompletionDate: datetime | date | None = None
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
    completionDate: datetime | None = None
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
    requestedStartDate: datetime | None = None
    requestedCompletionDate: datetime | None = None
    completionDate: datetime | None = None
    billingAccount: Ref
    relatedParty: list[dict[str, Any]] = []
    quote: list[Ref] = []
    productOrderItem: list[ProductOrderItem] = []
    allowedActions: list[str] = []
    type_: str = Field(default="ProductOrder", alias="@type")


def _etf_price(it: dict[str, Any]) -> dict[str, Any]:
    waived = bool(it["etf_waiver_reason"])
    amount = Money.from_minor(0 if waived else it["etf_minor"], it["etf_currency"])
    return {"name": "Early termination fee" + (f" (waived: {it['etf_waiver_reason']})" if waived else ""), "priceType": "oneTime",
            "price": {"dutyFreeAmount": amount.to_tmf()}, "@type": "OrderPrice"}


def at_local_midnight(d: date | None, tz: ZoneInfo) -> datetime | None:
    """A stored business date as the TMF `date-time` it stands for: the start of that day where the company works."""
    return datetime.combine(d, time.min, tzinfo=tz) if d else None


def local_date(v: datetime | date | None, tz: ZoneInfo) -> date | None:
    """A TMF date-time sent by a client as our business date: its day in the company's zone (a naive value is taken as local)."""
    if v is None or not isinstance(v, datetime):
        return v
    return (v.astimezone(tz) if v.tzinfo else v).date()


def _aware(v: datetime | None, tz: ZoneInfo) -> datetime | None:
    return v.replace(tzinfo=tz) if v is not None and v.tzinfo is None else v


def order_out(d: dict[str, Any], tz: ZoneInfo) -> ProductOrder:
    items = []
    for it in d["items"]:
        pid = it["result_product_id"] or it["product_id"]
        items.append(ProductOrderItem(
            id=str(it["id"]), action=it["action"], state=it["state"], quantity=it["quantity"], stateReason=it["state_reason"], completionDate=at_local_midnight(it["completion_date"], tz),
            productOffering=Ref(id=str(it["offering_id"]), href=f"{OFFERING_BASE}/{it['offering_id']}", name=it["offering_name"]),
            product=ProductRef(id=str(pid), href=f"{PRODUCT_BASE}/{pid}", place=[PlaceRef(id=str(it["site_id"]), role="installationAddress", referred_type="GeographicSite")] if it["site_id"] else []) if pid else None,
            partnerServiceOrder=Ref(id=str(it["partner_service_order_id"]), name=it["partner_code"], referred_type="ServiceOrder") if it["partner_service_order_id"] else None,
            itemPrice=[_etf_price(it)] if it["etf_minor"] else [],
        ))
    return ProductOrder(
        id=str(d["id"]), href=f"{BASE}/{d['id']}", externalId=d["external_id"], state=d["state"], stateReason=d["state_reason"], description=d["description"],
        priority=str(d["priority"]), channel=[{"id": d["channel"], "name": d["channel"], "@type": "RelatedChannel"}] if d["channel"] else [], orderDate=d["created_at"], requestedStartDate=at_local_midnight(d["requested_start_date"], tz),
        requestedCompletionDate=at_local_midnight(d["requested_completion_date"], tz), completionDate=at_local_midnight(d["completion_date"], tz),
        billingAccount=Ref(id=str(d["account_id"]), href=f"{ACCOUNT_BASE}/{d['account_id']}", referred_type="BillingAccount"),
        relatedParty=[{"id": str(d["account_id"]), "href": f"{CUSTOMER_BASE}/{d['account_id']}", "role": "customer", "@referredType": "Customer", "@type": "RelatedParty"}],
        quote=[Ref(id=str(d["quote_id"]), href=f"{QUOTE_BASE}/{d['quote_id']}")] if d["quote_id"] else [], productOrderItem=items, allowedActions=d["allowed_actions"],
    )


def _extra(model: Kept, *, drop: frozenset[str] = SERVER_OWNED) -> dict[str, Any]:
    return {k: v for k, v in (model.model_extra or {}).items() if k not in drop}


def sent_attributes(body: ProductOrderCreate | QuoteCreate) -> dict[str, Any]:
    """What the client sent that our columns do not hold: kept and returned with the order or quote (tmf_attributes)."""
    out = _extra(body, drop=QUOTE_SERVER_OWNED if isinstance(body, QuoteCreate) else SERVER_OWNED)
    if isinstance(body, QuoteCreate):
        if body.validFor:
            out["validFor"] = body.validFor
        key, sent_items = "quoteItem", body.quoteItem
    else:
        if body.note:
            out["note"] = [n.model_dump(mode="json", by_alias=True, exclude_none=True) for n in body.note]
        if body.channel:
            out["channel"] = body.channel
        if body.relatedParty:
            out["relatedParty"] = body.relatedParty
        key, sent_items = "productOrderItem", body.productOrderItem
    items = []
    for it in sent_items:
        extra = _extra(it)
        if it.product is not None and _extra(it.product):
            extra["product"] = _extra(it.product)
        if it.id:
            extra["clientItemId"] = it.id
        items.append(extra)
    if any(items):
        out[key] = items
    return out


def with_sent_attributes(order: dict[str, Any], sent: dict[str, Any] | None, *, key: str = "productOrderItem") -> dict[str, Any]:
    """An order's (or quote's) JSON with what its client sent beyond our columns (ours win where both say something; the
    client's item ids in item relationships are translated to ours; quoted prices are listed after ours)."""
    if not sent:
        return order
    out = dict(order)
    for k, v in sent.items():
        if k == key:
            continue
        if k == "relatedParty":
            ours = {(p.get("id"), p.get("role")) for p in out.get("relatedParty", [])}
            out["relatedParty"] = out.get("relatedParty", []) + [p for p in v if (p.get("id"), p.get("role")) not in ours]
        elif k in ("channel", "note", "validFor") or out.get(k) in (None, [], {}):
            out[k] = v
    items = [dict(i) for i in out.get(key, [])]
    sent_items = sent.get(key, [])
    ids = {s.get("clientItemId"): i["id"] for s, i in zip(sent_items, items) if s.get("clientItemId")}
    for item, extra in zip(items, sent_items):
        for k, v in extra.items():
            if k == "clientItemId":
                continue
            if k == "product":
                item["product"] = {**v, **item.get("product", {})}
            elif k in ("productOrderItemRelationship", "quoteItemRelationship"):
                item[k] = [{**r, "id": ids.get(r.get("id"), r.get("id"))} for r in v]
            elif k in ("itemPrice", "quoteItemPrice"):  # ours (catalogue prices, an early-termination fee) before the client's
                item[k] = item.get(k, []) + v
            elif item.get(k) in (None, [], {}):
                item[k] = v
    out[key] = items
    return out


def order_json(db: Any, d: dict[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    return with_sent_attributes(dump(order_out(d, tz)), tmf_attributes.kept(db, entity_type="product_order", ids=[d["id"]]).get(d["id"]))


def _account_id(body: ProductOrderCreate) -> int:
    if body.billingAccount is not None:
        return int(body.billingAccount.id)
    for p in body.relatedParty:
        if (str(p.get("role", "")).lower() == "customer" or p.get("@referredType") == "Customer") and str(p.get("id", "")).isdigit():
            return int(p["id"])
    for it in body.productOrderItem:  # TMF622 also allows a billing account per item (one account per order here)
        ref = (it.model_extra or {}).get("billingAccount")
        if isinstance(ref, dict) and str(ref.get("id", "")).isdigit():
            return int(ref["id"])
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
    db: DB, now: Now, tz: Tz, principal: Annotated[Principal, Depends(require("orders.view"))], fields: Fields = None, sort: Sort = None,
    state: Annotated[str | None, Query(pattern=ORDER_STATES)] = None, account: Annotated[int | None, Query(alias="billingAccount.id", ge=1, le=MAX_ID)] = None,
    party: Annotated[int | None, Query(alias="relatedParty.id", ge=1, le=MAX_ID, description="The customer (TMF629 customer id)")] = None,
    externalId: Annotated[str | None, Query(max_length=80)] = None,
    order_date_gt: Annotated[datetime | None, Query(alias="orderDate.gt")] = None, order_date_lt: Annotated[datetime | None, Query(alias="orderDate.lt")] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0, limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 50,
) -> JSONResponse:
    """Orders newest first. Filters (in SQL): state, billingAccount.id, relatedParty.id, externalId, orderDate.gt / orderDate.lt;
    `sort` by orderDate, state, id, requestedStartDate, priority (TMF630 `fields`, `offset`/`limit`, X-Total-Count / X-Result-Count)."""
    if account and party and account != party:
        return list_response([], total=0)
    order_by = sort_clauses(sort, {"orderDate": ProductOrderRow.created_at, "state": ProductOrderRow.state, "id": ProductOrderRow.id,
                                   "requestedStartDate": ProductOrderRow.requested_start_date, "priority": ProductOrderRow.priority},
                            default=[ProductOrderRow.id.desc()], tiebreak=ProductOrderRow.id.desc())
    res = service.order_list(db, now=now, tz=tz, state=state, account_id=account or party, external_id=externalId, created_after=_aware(order_date_gt, tz),
                             created_before=_aware(order_date_lt, tz), order_by=order_by, offset=offset, limit=limit, actor=principal.actor)
    sent = tmf_attributes.kept(db, entity_type="product_order", ids=[r["id"] for r in res["items"]])
    return list_response((with_sent_attributes(dump(order_out(r, tz)), sent.get(r["id"])) for r in res["items"]), fields=fields, total=res["total"])


@router.get(BASE + "/{id}", response_model=selectable(ProductOrder), response_model_by_alias=True, response_model_exclude_none=True)
def get_product_order(id: Annotated[int, Path(ge=1, le=MAX_ID)], db: DB, now: Now, tz: Tz, principal: Annotated[Principal, Depends(require("orders.view"))],
                      fields: Fields = None) -> JSONResponse:
    return item_response(order_json(db, service.order_record(db, order_id=id, now=now, tz=tz, actor=principal.actor), tz), fields=fields)


@router.post(BASE, status_code=201, response_model=ProductOrder, response_model_by_alias=True, response_model_exclude_none=True)
def create_product_order(
    body: ProductOrderCreate, db: DB, now: Now, tz: Tz, principal: Annotated[Principal, Depends(require("orders.place"))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> JSONResponse:
    """Place an order: items `add` (productOffering + product.place for FNO-delivered offerings), `modify` (product.id with a new
    offering and/or a new place: relocation) or `delete` (product.id). Validation failures change nothing."""

    def action() -> tuple[int, dict[str, Any]]:
        data = OrderIn(account_id=_account_id(body), external_id=body.externalId, requested_start_date=local_date(body.requestedStartDate, tz),
                       requested_completion_date=local_date(body.requestedCompletionDate, tz), channel=(body.channel[0].get("name") if body.channel else "api"),
                       priority=int(body.priority) if body.priority else 4, description=body.description, items=_items(body.productOrderItem),
                       hold_terminations=True)  # a TMF622 delete opens a cancellation journey (notice, penalty, FNO cut-off) instead of ending today
        placed = service.submit_order(db, data=data, now=now, tz=tz, actor=principal.actor)
        tmf_attributes.keep(db, entity_type="product_order", entity_id=placed["id"], account_id=placed["account_id"], attributes=sent_attributes(body),
                            now=now, actor=principal.actor)
        return 201, with_sent_attributes(dump(order_out(placed, tz)), sent_attributes(body))

    status, payload, _ = run_idempotent(db, principal=principal.actor.name, key=idempotency_key, method="POST", path=BASE, body=body.model_dump(mode="json"), now=now, action=action)
    return JSONResponse(payload, status_code=status, headers={"Location": payload.get("href", "")})


@router.patch(BASE + "/{id}", response_model=ProductOrder, response_model_by_alias=True, response_model_exclude_none=True)
def patch_product_order(
    id: Annotated[int, Path(ge=1, le=MAX_ID)], body: ProductOrderUpdate, db: DB, now: Now, tz: Tz, principal: Annotated[Principal, Depends(require("orders.manage"))],
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> JSONResponse:
    """`state: cancelled` (goes through assessingCancellation; refused once an item completed), `held`, or `inProgress` to resume."""
    version = int(if_match.strip('"W/')) if if_match and if_match.strip('"W/').isdigit() else None
    action = {"cancelled": "cancel", "held": "hold", "inProgress": "resume"}[body.state]
    return JSONResponse(order_json(db, service.change_order(db, order_id=id, action=action, now=now, tz=tz, actor=principal.actor,
                                                            reason=body.cancellationReason or body.stateReason, version=version), tz))


class OrderDeletionNotAllowed(Conflict):
    type_slug = "order-deletion-not-allowed"


@router.delete(BASE + "/{id}", status_code=204, responses={409: {"description": "Orders are never deleted: cancel it (cancelProductOrder)"}})
def delete_product_order(id: Annotated[int, Path(ge=1, le=MAX_ID)], db: DB, principal: Annotated[Principal, Depends(require("orders.manage"))]) -> None:
    """TMF622 DELETE. A product order is a record of what the customer asked for (billing, partner orders and the audit trail
    refer to it), so it is never deleted: 409 naming cancelProductOrder, which cancels it; 404 when there is no such order."""
    order = service.get_order(db, order_id=id)
    raise OrderDeletionNotAllowed(f"product order {order.id} is {order.state} and cannot be deleted; cancel it with POST "
                                  f"/tmf-api/productOrderingManagement/v4/cancelProductOrder", field="id")


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
    requestedQuoteCompletionDate: datetime | None = None
    effectiveQuoteCompletionDate: datetime | None = None
    validFor: dict[str, Any] | None = None
    billingAccount: list[Ref]
    quoteItem: list[QuoteItem] = []
    quoteTotalPrice: list[QuotePrice] = []
    productOrder: list[Ref] = []
    allowedActions: list[str] = []
    type_: str = Field(default="Quote", alias="@type")


class QuoteCreate(Kept):
    """TMF648 Quote_Create. Attributes beyond ours (category, notes, agreements, contact media, item characteristics ...) are kept."""

    externalId: str | None = Field(default=None, max_length=80)
    description: str | None = Field(default=None, max_length=2000)
    requestedQuoteCompletionDate: datetime | date | None = None
    validFor: dict[str, Any] | None = None
    billingAccount: IdRef | list[IdRef]  # TMF648 has an array; a single reference is accepted too
    quoteItem: list[ProductOrderItemIn] = Field(min_length=1, max_length=50)

    def account_id(self) -> int:
        refs = self.billingAccount if isinstance(self.billingAccount, list) else [self.billingAccount]
        if len(refs) != 1:
            raise InvalidInput("name exactly one billing account", field="billingAccount")
        return int(refs[0].id)


class QuoteValidFor(TMFModel):
    startDateTime: datetime | None = None
    endDateTime: datetime | None = Field(default=None, description="The last day the quote can be accepted is this instant's day in the company's zone")


class QuoteUpdate(TMFModel):
    """TMF648 Quote_Update: a state (the lifecycle action) and, while the quote is open, its description, externalId and
    validFor.endDateTime (null clears; merge-patch). At least one of them."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [{"required": [k]} for k in ("state", "description", "externalId", "validFor")]})

    state: str | None = Field(default=None, pattern="^(approved|accepted|rejected|cancelled|pending)$")
    stateReason: str | None = Field(default=None, max_length=500)
    description: str | None = Field(default=None, max_length=2000)
    externalId: str | None = Field(default=None, max_length=80)
    validFor: QuoteValidFor | None = None

    def changes(self, tz: ZoneInfo) -> dict[str, Any]:
        """The attributes sent, as the quote's columns."""
        sent = self.model_fields_set
        out: dict[str, Any] = {}
        if "description" in sent:
            out["description"] = self.description
        if "externalId" in sent:
            out["external_id"] = self.externalId or None
        if "validFor" in sent:
            out["valid_until"] = local_date(self.validFor.endDateTime if self.validFor else None, tz)
        return out


def _price(kind: str, net: int, tax: int, currency: str) -> QuotePrice:
    return QuotePrice(priceType=kind, recurringChargePeriod="month" if kind == "recurring" else None, price={
        "dutyFreeAmount": Money.from_minor(net, currency).to_tmf(), "taxIncludedAmount": Money.from_minor(net + tax, currency).to_tmf(),
        "taxRate": round(tax / net * 100, 2) if net else 0})


def quote_out(q: dict[str, Any], tz: ZoneInfo) -> Quote:
    return Quote(
        id=str(q["id"]), href=f"{QUOTE_BASE}/{q['id']}", externalId=q["external_id"], state=q["state"], description=q["description"], quoteDate=q["created_at"],
        requestedQuoteCompletionDate=at_local_midnight(q["requested_start_date"], tz),
        validFor={"endDateTime": at_local_midnight(q["valid_until"], tz).isoformat()} if q["valid_until"] else None,  # type: ignore[union-attr]
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
    db: DB, tz: Tz, principal: Annotated[Principal, Depends(require("orders.view"))], fields: Fields = None, sort: Sort = None,
    state: Annotated[str | None, Query(pattern=QUOTE_STATES)] = None,
    account: Annotated[int | None, Query(alias="billingAccount.id", ge=1, le=MAX_ID)] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0, limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 50,
) -> JSONResponse:
    """Quotes newest first. Filters (in SQL): state, billingAccount.id; `sort` by quoteDate, state, id, requestedQuoteCompletionDate
    (TMF630 `fields` and paging headers)."""
    order_by = sort_clauses(sort, {"quoteDate": QuoteRow.created_at, "state": QuoteRow.state, "id": QuoteRow.id,
                                   "requestedQuoteCompletionDate": QuoteRow.requested_start_date}, default=[QuoteRow.id.desc()], tiebreak=QuoteRow.id.desc())
    res = service.quote_list(db, account_id=account, state=state, offset=offset, limit=limit, order_by=order_by)
    sent = tmf_attributes.kept(db, entity_type="quote", ids=[q["id"] for q in res["items"]])
    return list_response((with_sent_attributes(dump(quote_out(q, tz)), sent.get(q["id"]), key="quoteItem") for q in res["items"]), fields=fields, total=res["total"])


@router.get(QUOTE_BASE + "/{id}", response_model=selectable(Quote), response_model_by_alias=True, response_model_exclude_none=True)
def get_quote(id: Annotated[int, Path(ge=1, le=MAX_ID)], db: DB, tz: Tz, principal: Annotated[Principal, Depends(require("orders.view"))], fields: Fields = None) -> JSONResponse:
    return item_response(quote_json(db, service.quote_detail(db, quote_id=id, actor=principal.actor), tz), fields=fields)


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
                       requested_start_date=local_date(body.requestedQuoteCompletionDate, tz), valid_until=valid_until, items=_items(body.quoteItem))
        made = service.submit_quote(db, data=data, now=now, tz=tz, actor=principal.actor)
        tmf_attributes.keep(db, entity_type="quote", entity_id=made["id"], account_id=made["account_id"], attributes=sent_attributes(body), now=now,
                            actor=principal.actor)
        return 201, with_sent_attributes(dump(quote_out(made, tz)), sent_attributes(body), key="quoteItem")

    status, payload, _ = run_idempotent(db, principal=principal.actor.name, key=idempotency_key, method="POST", path=QUOTE_BASE, body=body.model_dump(mode="json"), now=now, action=action)
    return JSONResponse(payload, status_code=status, headers={"Location": payload.get("href", "")})


@router.patch(QUOTE_BASE + "/{id}", response_model=Quote, response_model_by_alias=True, response_model_exclude_none=True)
def patch_quote(id: Annotated[int, Path(ge=1, le=MAX_ID)], body: QuoteUpdate, db: DB, now: Now, tz: Tz, principal: Annotated[Principal, Depends(require("orders.place"))]) -> JSONResponse:
    """`state: accepted` places the product order (see productOrder); also approved, pending, rejected, cancelled. An open quote's
    description, externalId and validFor.endDateTime can be changed too (before the state, when both are sent)."""
    changes = body.changes(tz)
    if not changes and body.state is None:
        raise InvalidInput("nothing to change: send state, description, externalId or validFor", field="state")
    if changes:
        service.update_quote(db, quote_id=id, changes=changes, now=now, actor=principal.actor)
    if body.state is None:
        return JSONResponse(quote_json(db, service.quote_detail(db, quote_id=id, actor=principal.actor), tz))
    action = {"approved": "approve", "accepted": "accept", "rejected": "reject", "cancelled": "cancel", "pending": "submit"}[body.state]
    return JSONResponse(quote_json(db, service.change_quote(db, quote_id=id, action=action, now=now, tz=tz, actor=principal.actor, reason=body.stateReason), tz))


def quote_json(db: Any, q: dict[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    return with_sent_attributes(dump(quote_out(q, tz)), tmf_attributes.kept(db, entity_type="quote", ids=[q["id"]]).get(q["id"]), key="quoteItem")
