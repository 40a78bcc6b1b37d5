"""TMF641 Service Ordering: our outbound orders to partners (read-only, for inspection) and the partners' webhook."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from opsline.api.problems import PROBLEM
from opsline.api.tmf import PAGE_LIMIT_MAX, Fields, Note, Sort, dump, item_response, list_response, selectable, sort_clauses
from opsline.partners import service
from opsline.partners.adapters import SIGNATURE_HEADER
from opsline.partners.models import PartnerServiceOrder
from opsline.partners.schemas import CallbackAck, ServiceOrderItemOut, ServiceOrderOut
from opsline.web.deps import DB, Now, Principal, Tz, require

router = APIRouter(tags=["TMF641 Service Ordering"])

BASE = "/tmf-api/serviceOrdering/v4/serviceOrder"
View = Annotated[Principal, Depends(require("partners.view"))]
MAX_ID = 2**62
PartnerCode = Annotated[str, Path(min_length=1, max_length=30, pattern=r"^[a-z0-9_-]+$")]


def _at(d: date | None, tz: ZoneInfo) -> str | None:
    """A business date as the TMF641 `date-time` it stands for: the start of that day in the company's zone."""
    return datetime.combine(d, time.min, tzinfo=tz).isoformat() if d else None


def service_order_out(o: dict, tz: ZoneInfo) -> ServiceOrderOut:  # type: ignore[type-arg]
    chars = [{"name": "opslineProductId", "value": str(o["product_id"])}, {"name": "deliveryState", "value": o["delivery"]},
             {"name": "deliveryAttempts", "value": o["attempts"]}]
    if o["last_error"]:
        chars.append({"name": "lastError", "value": o["last_error"]})
    if o["partner_ref"]:
        chars.append({"name": "partnerOrderId", "value": o["partner_ref"]})
    notes = [Note(id=str(m["id"]), author=f"{m['direction']}:{m['kind']}", date=m["at"], text=f"{m['outcome']}{': ' + m['note'] if m['note'] else ''}") for m in o["messages"]]
    return ServiceOrderOut(
        id=str(o["id"]), href=f"{BASE}/{o['id']}", externalId=o["external_ref"], state=o["state"], description=o["reason"],
        orderDate=o["created_at"].isoformat(), requestedStartDate=_at(o["requested_date"], tz), requestedCompletionDate=_at(o["requested_date"], tz),
        expectedCompletionDate=_at(o["due_date"], tz), completionDate=_at(o["confirmed_date"], tz),
        relatedParty=[{"id": o["partner_code"], "name": o["partner_name"], "role": "provider", "@referredType": "Organization", "@type": "RelatedParty"},
                      {"id": str(o["account_id"]), "role": "endCustomerAccount", "@referredType": "BillingAccount", "@type": "RelatedParty"}],
        serviceOrderItem=[ServiceOrderItemOut(id="1", action=o["action"], state=o["state"], service={"id": str(o["product_id"]), "@referredType": "Service"})],
        note=notes, characteristic=chars,
    )


@router.get(BASE, response_model=list[selectable(ServiceOrderOut)], response_model_by_alias=True, response_model_exclude_none=True)
def list_service_orders(db: DB, now: Now, tz: Tz, principal: View, state: Annotated[str | None, Query(max_length=30)] = None, partner: Annotated[str | None, Query(max_length=30)] = None,
                        party: Annotated[str | None, Query(alias="relatedParty.id", max_length=30, pattern=r"^[A-Za-z0-9_-]+$",
                                                           description="The provider (partner code) or the end customer's account id")] = None,
                        externalId: Annotated[str | None, Query(max_length=60)] = None, late: bool = False, sort: Sort = None, offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0, limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 100,
                        fields: Fields = None) -> JSONResponse:
    """Our outbound service orders, newest first (filters: state, partner code, late vs the partner's SLA; TMF630 `fields` and paging headers)."""
    account_id = int(party) if party and party.isdigit() else None
    partner = partner or (party if party and not party.isdigit() else None)
    order_by = sort_clauses(sort, {"orderDate": PartnerServiceOrder.created_at, "id": PartnerServiceOrder.id, "state": PartnerServiceOrder.state,
                                   "requestedStartDate": PartnerServiceOrder.requested_date, "expectedCompletionDate": PartnerServiceOrder.due_date},
                            default=[PartnerServiceOrder.id.desc()], tiebreak=PartnerServiceOrder.id.desc())
    res = service.list_service_orders(db, now=now, tz=tz, state=state, partner_code=partner, account_id=account_id, q=externalId, late=late, order_by=order_by, offset=offset, page_size=limit, with_messages=True)
    return list_response((service_order_out(o, tz) for o in res["items"]), fields=fields, total=res["total"])


@router.get(BASE + "/{service_order_id}", response_model=selectable(ServiceOrderOut), response_model_by_alias=True, response_model_exclude_none=True)
def get_service_order(service_order_id: Annotated[int, Path(ge=1, le=MAX_ID)], db: DB, now: Now, tz: Tz, principal: View, fields: Fields = None) -> JSONResponse:
    """One outbound service order with every message exchanged (as notes)."""
    return item_response(service_order_out(service.get_service_order(db, service_order_id=service_order_id, now=now, tz=tz), tz), fields=fields)


@router.post("/api/partners/callback/{partner_code}", response_model=CallbackAck, status_code=200,
             responses={202: {"model": CallbackAck, "description": "Ignored (duplicate or out of order) and logged"},
                        401: {"description": "Bad signature"}, 404: {"description": "Unknown partner or service order (logged)"}})
async def partner_callback(partner_code: PartnerCode, request: Request, db: DB, now: Now, tz: Tz) -> JSONResponse:
    """A partner's TMF641 ServiceOrderStateChangeEvent. Authenticated by `X-Opsline-Signature: sha256=<HMAC-SHA256 of the body
    with the partner's webhook secret>` (or `Authorization: Bearer <webhook secret>`)."""
    raw = await request.body()
    res = service.receive_callback(db, partner_code=partner_code, raw_body=raw, signature=request.headers.get(SIGNATURE_HEADER),
                                   authorization=request.headers.get("authorization"), now=now, tz=tz)
    if res["outcome"] == "unknown":
        body = {"type": "https://opsline.dev/problems/not-found", "title": "Not found", "status": 404, "detail": res["detail"], "instance": request.url.path}
        return JSONResponse(body, status_code=404, media_type=PROBLEM)
    ack = CallbackAck(outcome=res["outcome"], detail=res["detail"], externalId=res["external_ref"], state=res["state"])
    return JSONResponse(dump(ack), status_code=200 if res["outcome"] == "applied" else 202)
