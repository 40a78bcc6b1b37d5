"""Partners desk pages: partners with open/late/stuck counts, service-order list with filters, order and partner detail."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from opsline.core.errors import OpslineError
from opsline.partners import service
from opsline.partners.models import ServiceOrderState
from opsline.web.deps import DB, Now, Principal, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)

View = Annotated[Principal, Depends(require("partners.view"))]
Manage = Annotated[Principal, Depends(require("partners.manage"))]
STATES = ["open"] + [s.value for s in ServiceOrderState]


@router.get("/partners", response_class=HTMLResponse)
def desk(request: Request, db: DB, now: Now, principal: View) -> HTMLResponse:
    summary = service.desk_summary(db, now=now)
    stuck = service.list_service_orders(db, now=now, delivery="stuck", page_size=20)
    late = service.list_service_orders(db, now=now, late=True, page_size=20)
    ignored = service.recent_messages(db, outcome="ignored", limit=10)
    return render(request, "partners/desk.html", {"summary": summary, "stuck": stuck, "late": late, "ignored": ignored}, principal=principal)


@router.get("/partners/orders", response_class=HTMLResponse)
def orders(request: Request, db: DB, now: Now, principal: View, state: str = "", partner: str = "", late: str = "", delivery: str = "", q: str = "", page: int = 1) -> HTMLResponse:
    res = service.list_service_orders(db, now=now, state=state or None, partner_code=partner or None, late=late == "1", delivery=delivery or None, q=q or None, page=page)
    ctx = {"result": res, "filters": {"state": state, "partner": partner, "late": late, "delivery": delivery, "q": q}, "states": STATES,
           "partners": service.list_partners(db, kind="fno"), "deliveries": ["pending", "retrying", "dead", "stuck", "delivered"]}
    template = "partners/_order_rows.html" if request.headers.get("hx-request") and request.headers.get("hx-target") == "order-rows" else "partners/orders.html"
    return render(request, template, ctx, principal=principal)


@router.get("/partners/orders/{service_order_id}", response_class=HTMLResponse)
def order_detail(request: Request, service_order_id: int, db: DB, now: Now, principal: View, flash: str = "", error: str = "") -> HTMLResponse:
    o = service.get_service_order(db, service_order_id=service_order_id, now=now)
    return render(request, "partners/order.html", {"o": o, "partner": service.get_partner(db, code=o["partner_code"]), "flash": flash, "error": error}, principal=principal)


@router.post("/partners/orders/{service_order_id}/retry", response_model=None)
def order_retry(request: Request, service_order_id: int, db: DB, now: Now, principal: Manage, reason: Annotated[str, Form()] = "retry requested from the Partners desk") -> RedirectResponse:
    try:
        service.retry_delivery(db, service_order_id=service_order_id, now=now, actor=principal.actor, reason=reason or "retry requested from the Partners desk")
    except OpslineError as exc:
        db.rollback()
        return RedirectResponse(f"/partners/orders/{service_order_id}?" + urlencode({"error": exc.detail}), status_code=303)
    return RedirectResponse(f"/partners/orders/{service_order_id}?" + urlencode({"flash": "Delivery queued to run now"}), status_code=303)


@router.post("/partners/orders/{service_order_id}/cancel", response_model=None)
def order_cancel(request: Request, service_order_id: int, db: DB, now: Now, principal: Manage, reason: Annotated[str, Form()] = "") -> RedirectResponse:
    try:
        service.cancel_service_order(db, service_order_id=service_order_id, now=now, actor=principal.actor, reason=reason)
    except OpslineError as exc:
        db.rollback()
        return RedirectResponse(f"/partners/orders/{service_order_id}?" + urlencode({"error": exc.detail}), status_code=303)
    return RedirectResponse(f"/partners/orders/{service_order_id}?" + urlencode({"flash": "Service order cancelled"}), status_code=303)


@router.get("/partners/{code}", response_class=HTMLResponse)
def partner_detail(request: Request, code: str, db: DB, now: Now, principal: View, flash: str = "", error: str = "") -> HTMLResponse:
    p = service.get_partner(db, code=code)
    open_orders = service.list_service_orders(db, now=now, partner_code=code, state="open", page_size=25)
    summary = next((s for s in service.desk_summary(db, now=now)["partners"] if s["code"] == code), None)
    messages = service.recent_messages(db, partner_code=code, limit=15)
    return render(request, "partners/partner.html", {"p": p, "open_orders": open_orders, "summary": summary, "messages": messages, "flash": flash, "error": error}, principal=principal)


@router.post("/partners/{code}/outage", response_model=None)
def partner_outage(request: Request, code: str, db: DB, now: Now, principal: Manage, outage: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "") -> RedirectResponse:
    try:
        service.set_simulator_outage(db, code=code, outage=outage == "on", now=now, actor=principal.actor, reason=reason)
    except OpslineError as exc:
        db.rollback()
        return RedirectResponse(f"/partners/{code}?" + urlencode({"error": exc.detail}), status_code=303)
    return RedirectResponse(f"/partners/{code}?" + urlencode({"flash": f"Simulator outage {'on' if outage == 'on' else 'off'}"}), status_code=303)
