"""Orders desk: orders by state with age, order detail with partner messages, order entry (and quotes), quote page."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from opsline.catalog import service as catalog
from opsline.core.errors import OpslineError
from opsline.customers import service as customers
from opsline.inventory import service as inventory
from opsline.orders import service
from opsline.orders.models import OrderState
from opsline.orders.schemas import OrderIn, OrderItemIn, QuoteIn
from opsline.web.deps import DB, Now, Principal, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)
View = Annotated[Principal, Depends(require("orders.view"))]
Place = Annotated[Principal, Depends(require("orders.place"))]
ITEM_ROWS = 3


@router.get("/orders", response_class=HTMLResponse)
def orders_desk(request: Request, db: DB, now: Now, principal: View, state: str = "", q: str = "", open: str = "", older: str = "", account_id: str = "", page: int = 1) -> HTMLResponse:
    page = max(1, page)
    older_days = int(older) if older.isdigit() else None
    acc = int(account_id) if account_id.isdigit() else None
    rows = service.list_orders(db, now=now, state=state or None, open_only=open == "1", older_than_days=older_days, q=q or None, account_id=acc, offset=(page - 1) * 50, limit=51)
    ctx = {"orders": rows[:50], "has_next": len(rows) > 50, "page": page, "counts": service.order_counts(db), "states": [s.value for s in OrderState],
           "filters": {"state": state, "q": q, "open": open, "older": older, "account_id": account_id}, "quotes": service.list_quotes(db, limit=10)}
    return render(request, "orders/desk.html", ctx, principal=principal)


def _form_ctx(db: Any, *, account_id: int | None, now: Any, values: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    ctx: dict[str, Any] = {"values": values, "errors": errors, "rows": range(ITEM_ROWS), "account": None, "sites": [], "products": []}
    ctx["offerings"] = catalog.offering_choices(db, on=service.local_date(now))
    if account_id:
        try:
            data = customers.account_360(db, account_id=account_id, memo_limit=0, timeline_limit=0)
            ctx["account"] = data["account"]
            ctx["sites"] = data["sites"]
            ctx["products"] = inventory.active_products_of(db, account_id=account_id)
        except OpslineError as exc:
            errors.setdefault("account_id", exc.detail)
    return ctx


@router.get("/orders/new", response_class=HTMLResponse)
def order_new(request: Request, db: DB, now: Now, principal: Place, account_id: str = "") -> HTMLResponse:
    acc = int(account_id) if account_id.isdigit() else None
    return render(request, "orders/new.html", _form_ctx(db, account_id=acc, now=now, values={"account_id": account_id}, errors={}), principal=principal)


def _parse(form: dict[str, Any]) -> tuple[dict[str, Any], list[OrderItemIn]]:
    def num(v: Any) -> int | None:
        return int(v) if str(v or "").strip().isdigit() else None

    items = []
    for i in range(ITEM_ROWS):
        action = form.get(f"items-{i}-action") or "add"
        offering, product, site = num(form.get(f"items-{i}-offering_id")), num(form.get(f"items-{i}-product_id")), num(form.get(f"items-{i}-site_id"))
        if offering is None and product is None:
            continue
        items.append(OrderItemIn(action=action, offering_id=offering, product_id=product, site_id=site))
    head = {"account_id": num(form.get("account_id")), "external_id": form.get("external_id") or None, "requested_start_date": form.get("requested_start_date") or None,
            "description": form.get("description") or None}
    return head, items


@router.post("/orders/new", response_model=None)
async def order_create(request: Request, db: DB, now: Now, principal: Place) -> HTMLResponse | RedirectResponse:
    form = dict(await request.form())
    form.pop("csrf_token", None)
    as_quote = "as_quote" in form
    head, items = {}, []
    try:
        head, items = _parse(form)
        if as_quote:
            q = service.create_quote(db, data=QuoteIn(**head, items=items), now=now, actor=principal.actor)
            db.flush()
            return RedirectResponse(f"/quotes/{q.id}", status_code=303)
        order = service.place_order(db, data=OrderIn(**head, channel="desk", items=items), now=now, actor=principal.actor)
        db.flush()
        return RedirectResponse(f"/orders/{order.id}", status_code=303)
    except ValidationError as exc:
        errors = {".".join(str(p) for p in e["loc"]) or "form": e["msg"] for e in exc.errors()}
        status = 422
    except OpslineError as exc:
        db.rollback()
        errors = {exc.field or "form": exc.detail}
        status = exc.status
    return render(request, "orders/new.html", _form_ctx(db, account_id=head.get("account_id"), now=now, values=form, errors=errors), principal=principal, status_code=status)


@router.get("/orders/{order_id}", response_class=HTMLResponse)
def order_page(request: Request, order_id: int, db: DB, now: Now, principal: View) -> HTMLResponse:
    return render(request, "orders/detail.html", {"order": service.order_detail(db, order_id=order_id, now=now), "error": None}, principal=principal)


@router.post("/orders/{order_id}/action", response_model=None)
def order_action(request: Request, order_id: int, db: DB, now: Now, principal: Annotated[Principal, Depends(require("orders.manage"))],
                 action: Annotated[str, Form()], reason: Annotated[str, Form()] = "", version: Annotated[str, Form()] = "") -> HTMLResponse | RedirectResponse:
    try:
        service.order_action(db, order_id=order_id, action=action, now=now, actor=principal.actor, reason=reason, version=int(version) if version.isdigit() else None)
    except OpslineError as exc:
        db.rollback()
        return render(request, "orders/detail.html", {"order": service.order_detail(db, order_id=order_id, now=now), "error": exc.detail}, principal=principal, status_code=exc.status)
    return RedirectResponse(f"/orders/{order_id}", status_code=303)


@router.get("/quotes/{quote_id}", response_class=HTMLResponse)
def quote_page(request: Request, quote_id: int, db: DB, principal: View) -> HTMLResponse:
    return render(request, "orders/quote.html", {"quote": service.quote_detail(db, quote_id=quote_id), "error": None}, principal=principal)


@router.post("/quotes/{quote_id}/action", response_model=None)
def quote_action(request: Request, quote_id: int, db: DB, now: Now, principal: Place, action: Annotated[str, Form()], reason: Annotated[str, Form()] = "") -> HTMLResponse | RedirectResponse:
    try:
        q = service.quote_action(db, quote_id=quote_id, action=action, now=now, actor=principal.actor, reason=reason or None)
        db.flush()
    except OpslineError as exc:
        db.rollback()
        return render(request, "orders/quote.html", {"quote": service.quote_detail(db, quote_id=quote_id), "error": exc.detail}, principal=principal, status_code=exc.status)
    if q.product_order_id and action == "accept":
        return RedirectResponse(f"/orders/{q.product_order_id}", status_code=303)
    return RedirectResponse(f"/quotes/{quote_id}", status_code=303)
