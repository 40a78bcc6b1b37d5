"""Partners desk pages: partners with open/late/stuck counts, service-order list with filters, order and partner detail."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsline.core.errors import OpslineError
from opsline.core.exports import download_headers, export_table
from opsline.core.localtime import local_date
from opsline.partners import exposure, service
from opsline.partners.models import ServiceOrderState
from opsline.web.deps import DB, Now, Principal, Tz, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)

View = Annotated[Principal, Depends(require("partners.view"))]
Manage = Annotated[Principal, Depends(require("partners.manage"))]
Claims = Annotated[Principal, Depends(require("partners.claims"))]
STATES = ["open"] + [s.value for s in ServiceOrderState]


@router.get("/partners", response_class=HTMLResponse)
def desk(request: Request, db: DB, now: Now, tz: Tz, principal: View) -> HTMLResponse:
    return render(request, "partners/desk.html", service.desk_page(db, now=now, tz=tz), principal=principal)


@router.get("/partners/orders", response_class=HTMLResponse)
def orders(request: Request, db: DB, now: Now, tz: Tz, principal: View, state: str = "", partner: str = "", late: str = "", delivery: str = "", q: str = "", page: int = 1) -> HTMLResponse:
    ctx = service.orders_page(db, now=now, tz=tz, state=state or None, partner_code=partner or None, late=late == "1", delivery=delivery or None, q=q or None, page=page)
    ctx |= {"filters": {"state": state, "partner": partner, "late": late, "delivery": delivery, "q": q}, "states": STATES}
    template = "partners/_order_rows.html" if request.headers.get("hx-request") and request.headers.get("hx-target") == "order-rows" else "partners/orders.html"
    return render(request, template, ctx, principal=principal)


@router.get("/partners/orders/{service_order_id}", response_class=HTMLResponse)
def order_detail(request: Request, service_order_id: int, db: DB, now: Now, tz: Tz, principal: View, flash: str = "", error: str = "") -> HTMLResponse:
    ctx = service.service_order_page(db, service_order_id=service_order_id, now=now, tz=tz)
    ctx["exposure"] = exposure.order_exposure(db, service_order_id=service_order_id, today=local_date(now, tz)) if ctx["o"]["action"] == "delete" else None
    return render(request, "partners/order.html", ctx | {"flash": flash, "error": error}, principal=principal)


@router.post("/partners/orders/{service_order_id}/retry", response_model=None)
def order_retry(request: Request, service_order_id: int, db: DB, now: Now, tz: Tz, principal: Manage, reason: Annotated[str, Form()] = "retry requested from the Partners desk") -> RedirectResponse:
    try:
        service.retry_delivery(db, service_order_id=service_order_id, now=now, actor=principal.actor, reason=reason or "retry requested from the Partners desk")
    except OpslineError as exc:
        db.rollback()
        return RedirectResponse(f"/partners/orders/{service_order_id}?" + urlencode({"error": exc.detail}), status_code=303)
    return RedirectResponse(f"/partners/orders/{service_order_id}?" + urlencode({"flash": "Delivery queued to run now"}), status_code=303)


@router.post("/partners/orders/{service_order_id}/cancel", response_model=None)
def order_cancel(request: Request, service_order_id: int, db: DB, now: Now, tz: Tz, principal: Manage, reason: Annotated[str, Form()] = "") -> RedirectResponse:
    try:
        outcome = service.cancel_or_ask_partner(db, service_order_id=service_order_id, now=now, actor=principal.actor, reason=reason)
    except OpslineError as exc:
        db.rollback()
        return RedirectResponse(f"/partners/orders/{service_order_id}?" + urlencode({"error": exc.detail}), status_code=303)
    flash = {"cancelled": "Service order cancelled", "requested": "The partner is asked to cancel it (TMF641 cancelServiceOrder); it is cancelled when they confirm",
             "already_requested": "The partner was already asked to cancel it"}[outcome]
    return RedirectResponse(f"/partners/orders/{service_order_id}?" + urlencode({"flash": flash}), status_code=303)


@router.get("/partners/exposure", response_class=HTMLResponse)
def exposure_page(request: Request, db: DB, now: Now, tz: Tz, principal: View, partner: str = "", ok: str = "", error: str = "") -> HTMLResponse:
    ctx = exposure.exposure_page(db, now=now, tz=tz, partner_code=partner or None, actor=principal.actor)
    return render(request, "partners/exposure.html", ctx | {"partners": service.list_partners(db, kind="fno"), "ok": ok, "error": error}, principal=principal)


@router.get("/partners/claims/export.{fmt}")
def claims_export(fmt: str, db: DB, principal: View, state: str = "") -> Response:
    header, rows = exposure.claims_export_rows(db, state=state or None)
    filename, media, body = export_table(fmt, name="fno-claims", header=header, rows=rows, money_cols=(9, 11))
    return Response(body, media_type=media, headers=download_headers(filename))


@router.post("/partners/claims/propose", response_model=None)
def claims_propose(db: DB, now: Now, tz: Tz, principal: Claims) -> RedirectResponse:
    out = exposure.propose_claims(db, today=local_date(now, tz), now=now, actor=principal.actor)
    return RedirectResponse("/partners/exposure?" + urlencode({"ok": f"{out['proposed']} claim(s) proposed"}), status_code=303)


@router.post("/partners/claims/{claim_id}/{action}", response_model=None)
def claim_act(claim_id: int, action: str, db: DB, now: Now, principal: Claims, reason: Annotated[str, Form()] = "",
              credited: Annotated[str, Form()] = "") -> RedirectResponse:
    try:
        minor = None
        if credited.strip():
            try:
                minor = int((Decimal(credited.strip().replace(",", "")) * 100).to_integral_value(rounding=ROUND_HALF_UP))
            except InvalidOperation:
                raise exposure.UnableToActOnClaim(f"'{credited}' is not an amount", field="credited_minor") from None
        exposure.act_on_claim(db, claim_id=claim_id, action=action, reason=reason or None, credited_minor=minor, now=now, actor=principal.actor)
    except OpslineError as exc:
        db.rollback()
        return RedirectResponse("/partners/exposure?" + urlencode({"error": exc.detail}) + "#claims", status_code=303)
    return RedirectResponse("/partners/exposure?" + urlencode({"ok": f"Claim {action} recorded"}) + "#claims", status_code=303)


@router.get("/partners/{code}", response_class=HTMLResponse)
def partner_detail(request: Request, code: str, db: DB, now: Now, tz: Tz, principal: View, flash: str = "", error: str = "") -> HTMLResponse:
    ctx = service.partner_page(db, code=code, now=now, tz=tz)
    return render(request, "partners/partner.html", ctx | {"flash": flash, "error": error}, principal=principal)


@router.post("/partners/{code}/outage", response_model=None)
def partner_outage(request: Request, code: str, db: DB, now: Now, tz: Tz, principal: Manage, outage: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "") -> RedirectResponse:
    try:
        service.set_simulator_outage(db, code=code, outage=outage == "on", now=now, actor=principal.actor, reason=reason)
    except OpslineError as exc:
        db.rollback()
        return RedirectResponse(f"/partners/{code}?" + urlencode({"error": exc.detail}), status_code=303)
    return RedirectResponse(f"/partners/{code}?" + urlencode({"flash": f"Simulator outage {'on' if outage == 'on' else 'off'}"}), status_code=303)
