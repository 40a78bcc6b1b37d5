"""Final account pages: preview a final account from the account (what it will contain) and issue it by hand."""

from __future__ import annotations

import secrets
from datetime import date, datetime
from typing import Annotated, Any, Optional

import typer
from fastapi import APIRouter, Depends, Request
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


# ---------------------------------------------------------------------------------------------- command line

def register_cli(app: Any) -> None:
    @app.command("final-account")
    def final_account_cmd(
        account: Annotated[str, typer.Option("--account", help="Account number (or id)")],
        end_date: Annotated[str, typer.Option("--end-date", help="The FNO-confirmed deactivation date: the first day not billed (YYYY-MM-DD)")],
        product: Annotated[Optional[list[int]], typer.Option("--product", help="Product id (repeat); default: the account's ended products not yet final-billed")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what the final account will contain; write nothing")] = False,
        reason: Annotated[str, typer.Option("--reason", help="Why (kept on the final account and its documents)")] = "",
        waive_etf: Annotated[str, typer.Option("--waive-etf", help="Waive the early-termination fee, with this reason")] = "",
        key: Annotated[str, typer.Option("--key", help="Idempotency key; default: account, end date and products")] = "",
    ) -> None:
        """Preview (--dry-run) or issue the final account of an account's terminated products."""
        from rich.table import Table

        from opsline.cli import _engine, console, fail, utc_now
        from opsline.core.events import Actor
        from opsline.db.session import make_sessionmaker
        from opsline.inventory.models import Product

        factory = make_sessionmaker(_engine())
        now = utc_now()
        try:
            end = date.fromisoformat(end_date.strip())
        except ValueError:
            fail(f"--end-date: '{end_date}' is not a date (YYYY-MM-DD)")
            return
        try:
            with factory() as s:
                acc_id = customers.resolve_account_id(s, key=account, field="--account")
                ids = list(product or [])
                if not ids:
                    done = select(fa.FinalAccountProduct.product_id)
                    ids = list(s.execute(select(Product.id).where(Product.account_id == acc_id, Product.end_date == end, Product.id.not_in(done))
                                         .order_by(Product.id)).scalars())
                    if not ids:
                        fail(f"--product: account {account} has no product ending on {end.isoformat()} that is not final-billed; name one with --product")
                        return
                waive = waive_etf.strip() or None
                q = fa.quote(s, account_id=acc_id, product_ids=ids, end_date=end, now=now, include_etf=waive is None, waive_etf_reason=waive)
            t = Table(title=f"Final account of {account}, products {', '.join(map(str, ids))}, ending {end.isoformat()}")
            for c in ("Line", "Period", "Amount", "VAT", "Total"):
                t.add_column(c, justify="right" if c in ("Amount", "VAT", "Total") else "left")
            for ln in q["lines"]:
                period = f"{ln['period_start']} – {ln['period_last_day'] or ''}" if ln["period_start"] else ""
                t.add_row(ln["description"], period, str(ln["amount"]), str(ln["tax"]), str(ln["total"]))
            console.print(t)
            for e in q["equipment_at_risk"]:
                console.print(f"at risk: {e['kind']} {e['serial_number']} ({e['state']}){' ' + str(e['fee']) if e['fee'] else ''}")
            console.print(f"total {q['total']} ({q['document'] or 'nothing to issue'})")
            if dry_run:
                console.print("[yellow]dry run: nothing written[/yellow]")
                return
            if not reason.strip():
                fail("--reason: a final account needs a reason")
                return
            with factory.begin() as s:
                out = fa.issue(s, account_id=acc_id, product_ids=ids, end_date=end, reason=reason, now=now, actor=Actor.system("cli"),
                               idempotency_key=key or f"cli:{acc_id}:{end.isoformat()}:{','.join(map(str, sorted(ids)))}",
                               include_etf=waive is None, waive_etf_reason=waive)
            console.print(f"[green]{out['reference']}{' (replayed)' if out['replayed'] else ''}: {out['document'] or 'no document'} "
                          f"{out['number'] or ''} {out['total']}[/green]" + (f"; {out['refund_note']}" if out["refund_note"] else ""))
        except OpslineError as exc:
            flag = {"account_id": "--account", "product_ids": "--product", "end_date": "--end-date", "reason": "--reason", "idempotency_key": "--key",
                    "waive_etf_reason": "--waive-etf"}.get(exc.field or "", exc.field)
            fail(f"{flag + ': ' if flag else ''}{exc.detail}")
