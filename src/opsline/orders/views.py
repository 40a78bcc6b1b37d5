"""Orders desk: orders by state with age, order detail with partner messages, order entry (and quotes) with the
early-termination fee shown before a cancellation is confirmed, quote page."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from opsline.core.errors import OpslineError
from opsline.orders import service
from opsline.orders.schemas import OrderIn, OrderItemIn, QuoteIn
from opsline.web.deps import DB, Now, Principal, Tz, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)
View = Annotated[Principal, Depends(require("orders.view"))]
Place = Annotated[Principal, Depends(require("orders.place"))]
ITEM_ROWS = 3


@router.get("/orders", response_class=HTMLResponse)
def orders_desk(request: Request, db: DB, now: Now, tz: Tz, principal: View, state: str = "", q: str = "", open: str = "", older: str = "",
                account_id: str = "", page: int = 1, quotes_expiring: str = "") -> HTMLResponse:
    ctx = service.orders_desk(db, now=now, tz=tz, actor=principal.actor, state=state or None, q=q or None, open_only=open == "1",
                              older_than_days=int(older) if older.isdigit() else None, account_id=int(account_id) if account_id.isdigit() else None, page=page,
                              quotes_expiring_days=min(int(quotes_expiring), 366) if quotes_expiring.isdigit() else None)
    ctx["filters"] = {"state": state, "q": q, "open": open, "older": older, "account_id": account_id}
    return render(request, "orders/desk.html", ctx, principal=principal)


def _form_ctx(db: Any, *, account_id: int | None, now: Any, tz: Any, values: dict[str, Any], errors: dict[str, str],
              fees: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    ctx: dict[str, Any] = {"values": values, "errors": errors, "rows": range(ITEM_ROWS), "account": None, "sites": [], "products": [], "offerings": [],
                           "fees": fees or []}
    try:
        ctx |= service.order_form(db, account_id=account_id, now=now, tz=tz)
    except OpslineError as exc:
        errors.setdefault("account_id", exc.detail)
    return ctx


@router.get("/orders/new", response_class=HTMLResponse)
def order_new(request: Request, db: DB, now: Now, tz: Tz, principal: Place, account_id: str = "") -> HTMLResponse:
    acc = int(account_id) if account_id.isdigit() else None
    return render(request, "orders/new.html", _form_ctx(db, account_id=acc, now=now, tz=tz, values={"account_id": account_id}, errors={}), principal=principal)


def _parse(form: dict[str, Any]) -> tuple[dict[str, Any], list[OrderItemIn]]:
    def num(v: Any) -> int | None:
        return int(v) if str(v or "").strip().isdigit() else None

    items = []
    for i in range(ITEM_ROWS):
        action = form.get(f"items-{i}-action") or "add"
        offering, product, site = num(form.get(f"items-{i}-offering_id")), num(form.get(f"items-{i}-product_id")), num(form.get(f"items-{i}-site_id"))
        if offering is None and product is None:
            continue
        waive = form.get(f"items-{i}-waive") == "1"
        items.append(OrderItemIn(action=action, offering_id=offering, product_id=product, site_id=site, waive_early_termination_fee=waive,
                                 waiver_reason=(form.get(f"items-{i}-waiver_reason") or None) if waive else None))
    head = {"account_id": num(form.get("account_id")), "external_id": form.get("external_id") or None, "requested_start_date": form.get("requested_start_date") or None,
            "description": form.get("description") or None}
    return head, items


@router.post("/orders/new", response_model=None)
async def order_create(request: Request, db: DB, now: Now, tz: Tz, principal: Place) -> HTMLResponse | RedirectResponse:
    """Place the order (or save it as a quote). A cancellation of a product still in its contract first shows the
    early-termination fee (or its waiver); the order is placed only once the fee is confirmed."""
    form = dict(await request.form())
    form.pop("csrf_token", None)
    head: dict[str, Any] = {}
    fees: list[dict[str, Any]] = []
    try:
        head, items = _parse(form)
        if "as_quote" in form:
            q = service.submit_quote(db, data=QuoteIn(**head, items=items), now=now, tz=tz, actor=principal.actor)
            return RedirectResponse(f"/quotes/{q['id']}", status_code=303)
        data = OrderIn(**head, channel="desk", items=items)
        if form.get("confirm_fees") != "1":
            start = data.requested_start_date or service.local_date(now, tz)
            fees = service.termination_fees(db, data=data, on=start)
            if any(f["fee"] is not None for f in fees):
                return render(request, "orders/new.html", _form_ctx(db, account_id=head.get("account_id"), now=now, tz=tz, values=form, errors={}, fees=fees),
                              principal=principal)
        order = service.place_order(db, data=data, now=now, tz=tz, actor=principal.actor)
        db.flush()
        return RedirectResponse(f"/orders/{order.id}", status_code=303)
    except ValidationError as exc:
        errors = {".".join(str(p) for p in e["loc"]) or "form": e["msg"] for e in exc.errors()}
        status = 422
    except OpslineError as exc:
        db.rollback()
        errors = {exc.field or "form": exc.detail}
        status = exc.status
    return render(request, "orders/new.html", _form_ctx(db, account_id=head.get("account_id"), now=now, tz=tz, values=form, errors=errors, fees=fees),
                  principal=principal, status_code=status)


@router.get("/orders/{order_id}", response_class=HTMLResponse)
def order_page(request: Request, order_id: int, db: DB, now: Now, tz: Tz, principal: View) -> HTMLResponse:
    return render(request, "orders/detail.html", {"order": service.order_detail(db, order_id=order_id, now=now, tz=tz, actor=principal.actor), "error": None},
                  principal=principal)


@router.post("/orders/{order_id}/action", response_model=None)
def order_action(request: Request, order_id: int, db: DB, now: Now, tz: Tz, principal: Annotated[Principal, Depends(require("orders.manage"))],
                 action: Annotated[str, Form()], reason: Annotated[str, Form()] = "", version: Annotated[str, Form()] = "") -> HTMLResponse | RedirectResponse:
    try:
        service.order_action(db, order_id=order_id, action=action, now=now, tz=tz, actor=principal.actor, reason=reason, version=int(version) if version.isdigit() else None)
    except OpslineError as exc:
        db.rollback()
        return render(request, "orders/detail.html", {"order": service.order_detail(db, order_id=order_id, now=now, tz=tz, actor=principal.actor), "error": exc.detail},
                      principal=principal, status_code=exc.status)
    return RedirectResponse(f"/orders/{order_id}", status_code=303)


@router.get("/orders/products/{product_id}/termination-fee", response_class=HTMLResponse)
def termination_fee(request: Request, product_id: int, db: DB, now: Now, tz: Tz, principal: View, on: str = "") -> HTMLResponse:
    """The early-termination fee for ending a product on a date (HTMX fragment for the order form and the cancellation journey)."""
    try:
        day = date.fromisoformat(on) if on else service.local_date(now, tz)
        return render(request, "orders/_termination_fee.html", {"fees": [service.early_termination_quote(db, product_id=product_id, termination_date=day)], "error": None},
                      principal=principal)
    except ValueError:
        return render(request, "orders/_termination_fee.html", {"fees": [], "error": f"'{on}' is not a date"}, principal=principal, status_code=422)
    except OpslineError as exc:
        return render(request, "orders/_termination_fee.html", {"fees": [], "error": exc.detail}, principal=principal, status_code=exc.status)


@router.get("/quotes/{quote_id}", response_class=HTMLResponse)
def quote_page(request: Request, quote_id: int, db: DB, principal: View) -> HTMLResponse:
    return render(request, "orders/quote.html", {"quote": service.quote_detail(db, quote_id=quote_id, actor=principal.actor), "error": None}, principal=principal)


@router.post("/quotes/{quote_id}/action", response_model=None)
def quote_action(request: Request, quote_id: int, db: DB, now: Now, tz: Tz, principal: Place, action: Annotated[str, Form()],
                 reason: Annotated[str, Form()] = "") -> HTMLResponse | RedirectResponse:
    try:
        q = service.change_quote(db, quote_id=quote_id, action=action, now=now, tz=tz, actor=principal.actor, reason=reason or None)
    except OpslineError as exc:
        db.rollback()
        return render(request, "orders/quote.html", {"quote": service.quote_detail(db, quote_id=quote_id, actor=principal.actor), "error": exc.detail},
                      principal=principal, status_code=exc.status)
    if q["product_order_id"] and action == "accept":
        return RedirectResponse(f"/orders/{q['product_order_id']}", status_code=303)
    return RedirectResponse(f"/quotes/{quote_id}", status_code=303)
