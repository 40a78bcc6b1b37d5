"""Final account pages: preview a final account from the account (what it will contain) and issue it by hand."""

from __future__ import annotations

import secrets
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.billing import final_account as fa
from opsline.core.errors import OpslineError
from opsline.customers import service as customers
from opsline.inventory import service as inventory
from opsline.web.deps import DB, Now, Principal, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)

View = Annotated[Principal, Depends(require("billing.view"))]
Issue = Annotated[Principal, Depends(require("billing.final_account"))]


def _parse_date(raw: str, field: str) -> date:
    try:
        return date.fromisoformat((raw or "").strip())
    except ValueError:
        raise fa.UnableToFinalBill(f"'{raw}' is not a date (YYYY-MM-DD)", field=field) from None


def _parse_ids(raw: list[str]) -> list[int]:
    out = []
    for v in raw:
        if not str(v).strip().isdigit():
            raise fa.UnableToFinalBill(f"'{v}' is not a product id", field="product_ids")
        out.append(int(v))
    return out


def _page(db: Session, *, account_id: int, now: datetime, values: dict[str, Any], error: str | None = None, field: str | None = None,
          preview: bool = False) -> dict[str, Any]:
    acc = customers.get_account(db, account_id=account_id)
    products = inventory.list_products(db, account_id=account_id, limit=200)
    final_ids = set(db.execute(select(fa.FinalAccountProduct.product_id).where(fa.FinalAccountProduct.account_id == account_id)).scalars())
    for p in products:
        p["final_billed"] = p["id"] in final_ids
    quote = None
    if preview and error is None:
        try:
            quote = fa.quote(db, account_id=account_id, product_ids=values["product_ids"], end_date=_parse_date(values["end_date"], "end_date"), now=now,
                             include_etf=not values.get("waive_etf_reason"), waive_etf_reason=values.get("waive_etf_reason") or None)
        except OpslineError as exc:
            error, field = exc.detail, exc.field
    return {"account": customers.account_dict(acc), "products": products, "values": values, "quote": quote, "error": error, "field": field,
            "history": fa.final_accounts_of(db, account_id=account_id)}


@router.get("/billing/accounts/{account_id}/final-account", response_class=HTMLResponse)
def final_account_page(request: Request, account_id: int, db: DB, now: Now, principal: View) -> HTMLResponse:
    q = request.query_params
    ids = q.getlist("product_ids")
    values = {"end_date": q.get("end_date", now.date().isoformat()), "product_ids": [], "reason": q.get("reason", ""),
              "waive_etf_reason": q.get("waive_etf_reason", ""), "key": secrets.token_hex(12)}
    error = field = None
    try:
        values["product_ids"] = _parse_ids(ids)
    except OpslineError as exc:
        error, field = exc.detail, exc.field
    ctx = _page(db, account_id=account_id, now=now, values=values, error=error, field=field, preview=bool(ids))
    status = 422 if ctx["error"] else 200
    return render(request, "billing/final_account.html", ctx | {"can_issue": principal.can("billing.final_account")}, principal=principal,
                  status_code=status)


@router.post("/billing/accounts/{account_id}/final-account", response_model=None)
async def final_account_issue(request: Request, account_id: int, db: DB, now: Now, principal: Issue) -> Response:
    form = await request.form()
    values = {"end_date": str(form.get("end_date", "")), "product_ids": [], "reason": str(form.get("reason", "")),
              "waive_etf_reason": str(form.get("waive_etf_reason", "")), "key": str(form.get("key", ""))}
    try:
        values["product_ids"] = _parse_ids([str(v) for v in form.getlist("product_ids")])
        end = _parse_date(values["end_date"], "end_date")
        waive = values["waive_etf_reason"].strip() or None
        out = fa.issue(db, account_id=account_id, product_ids=values["product_ids"], end_date=end, reason=values["reason"], idempotency_key=values["key"],
                       now=now, actor=principal.actor, include_etf=waive is None, waive_etf_reason=waive)
    except OpslineError as exc:
        db.rollback()
        ctx = _page(db, account_id=account_id, now=now, values=values, error=exc.detail, field=exc.field)
        return render(request, "billing/final_account.html", ctx | {"can_issue": True}, principal=principal, status_code=exc.status)
    return RedirectResponse(f"/billing/final-accounts/{out['id']}", status_code=303)


@router.get("/billing/final-accounts/{final_account_id}", response_class=HTMLResponse)
def final_account_detail(request: Request, final_account_id: int, db: DB, principal: View) -> HTMLResponse:
    out = fa.get_final_account(db, final_account_id=final_account_id)
    acc = customers.account_dict(customers.get_account(db, account_id=out["account_id"]))
    return render(request, "billing/final_account_detail.html", {"fa": out, "account": acc}, principal=principal)
