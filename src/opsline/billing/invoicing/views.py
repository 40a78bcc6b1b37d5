"""Invoice pages: list with filters and exports, detail ("why was I charged this"), credits, claims, statement, usage upload."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from opsline.billing.invoicing import claims as cl
from opsline.billing.invoicing import credits as cr
from opsline.billing.invoicing import detail, documents, invoices, statements, usage
from opsline.billing.invoicing.models import OPEN_CLAIM_STATES
from opsline.core.errors import InvalidInput, OpslineError
from opsline.core.exports import download_headers
from opsline.web.deps import DB, Now, Principal, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)

View = Annotated[Principal, Depends(require("billing.view"))]
PAGE = 50


def _d(v: str | None) -> date | None:
    if not v:
        return None
    try:
        return date.fromisoformat(v)
    except ValueError as exc:
        raise InvalidInput(f"'{v}' is not a date (YYYY-MM-DD)", field="date") from exc


def _filters(state: str, account: str, period: str, issued_from: str, issued_to: str) -> dict[str, Any]:
    return {"account_id": int(account) if account.strip().isdigit() else None, "state": state or None, "period_start": _d(period),
            "issued_from": _d(issued_from), "issued_to": _d(issued_to)}


@router.get("/billing/invoices", response_class=HTMLResponse)
def invoice_list(request: Request, db: DB, principal: View, state: str = "", account: str = "", period: str = "", issued_from: str = "", issued_to: str = "", page: int = 1) -> HTMLResponse:
    page = max(1, page)
    f = _filters(state, account, period, issued_from, issued_to)
    res = invoices.list_invoices(db, **f, offset=(page - 1) * PAGE, limit=PAGE)
    raw = {"state": state, "account": account, "period": period, "issued_from": issued_from, "issued_to": issued_to}
    qs = "&".join(f"{k}={v}" for k, v in raw.items() if v)
    return render(request, "invoicing/invoices.html", {"result": res, "filters": raw, "qs": qs, "page": page, "pages": max(1, -(-res["total"] // PAGE)),
                                                       "states": [s.value for s in invoices.InvoiceState]}, principal=principal)


@router.get("/billing/invoices/export.{fmt}")
def invoice_export(fmt: str, db: DB, principal: View, state: str = "", account: str = "", period: str = "", issued_from: str = "", issued_to: str = "") -> Response:
    name, media, body = documents.export_invoices(db, fmt=fmt, **_filters(state, account, period, issued_from, issued_to))
    return Response(body, media_type=media, headers=download_headers(name))


def _detail_ctx(db: Session, invoice_id: int, now: datetime) -> dict[str, Any]:
    return detail.invoice_detail(db, invoice_id=invoice_id, now=now)


def _detail(request: Request, db: Session, principal: Principal, invoice_id: int, now: datetime, *, error: str | None = None, ok: str | None = None, status: int = 200) -> HTMLResponse:
    return render(request, "invoicing/invoice.html", _detail_ctx(db, invoice_id, now) | {"error": error, "ok": ok}, principal=principal, status_code=status)


@router.get("/billing/invoices/{invoice_id}", response_class=HTMLResponse)
def invoice_page(request: Request, invoice_id: int, db: DB, now: Now, principal: View, ok: str = "") -> HTMLResponse:
    return _detail(request, db, principal, invoice_id, now, ok=ok or None)


@router.get("/billing/invoices/{invoice_id}/pdf")
def invoice_pdf(invoice_id: int, db: DB, now: Now, principal: View) -> Response:
    name, pdf = documents.invoice_pdf(db, invoice_id=invoice_id, now=now)
    return Response(pdf, media_type="application/pdf", headers={"Content-Disposition": f'inline; filename="{name}"'})


@router.get("/billing/invoices/{invoice_id}/lines.{fmt}")
def invoice_lines_export(invoice_id: int, fmt: str, db: DB, principal: View) -> Response:
    name, media, body = documents.export_invoice_lines(db, invoice_id=invoice_id, fmt=fmt)
    return Response(body, media_type=media, headers=download_headers(name))


@router.post("/billing/invoices/{invoice_id}/transition", response_model=None)
def invoice_transition(request: Request, invoice_id: int, db: DB, now: Now, principal: Annotated[Principal, Depends(require("billing.approve"))],
                       action: Annotated[str, Form()], reason: Annotated[str, Form()] = "") -> Response:
    try:
        invoices.transition(db, invoice_id=invoice_id, action=action, now=now, actor=principal.actor, reason=reason or None, manual=True)
    except OpslineError as exc:
        db.rollback()
        return _detail(request, db, principal, invoice_id, now, error=exc.detail, status=exc.status)
    return RedirectResponse(f"/billing/invoices/{invoice_id}?ok=Invoice+updated", status_code=303)


@router.post("/billing/invoices/{invoice_id}/credit", response_model=None)
def invoice_credit(request: Request, invoice_id: int, db: DB, now: Now, principal: Annotated[Principal, Depends(require("billing.credit"))],
                   line: Annotated[str, Form()], reason: Annotated[str, Form()] = "", amount: Annotated[str, Form()] = "", key: Annotated[str, Form()] = "") -> Response:
    try:
        cn = cr.credit_from_form(db, invoice_id=invoice_id, line=line, amount=amount, reason=reason, now=now, actor=principal.actor, idempotency_key=key or None)
    except OpslineError as exc:
        db.rollback()
        return _detail(request, db, principal, invoice_id, now, error=exc.detail, status=exc.status)
    return RedirectResponse(f"/billing/invoices/{invoice_id}?ok=Credit+note+{cn.number}+issued", status_code=303)


@router.post("/billing/invoices/{invoice_id}/claims", response_model=None)
async def invoice_claim(request: Request, invoice_id: int, db: DB, now: Now, principal: Annotated[Principal, Depends(require("claims.raise"))]) -> Response:
    form = await request.form()
    try:
        disputes = {int(k[8:]): v for k, v in form.items() if k.startswith("dispute_") and k[8:].isdigit() and isinstance(v, str)}
        atts = []
        for up in form.getlist("evidence"):
            if hasattr(up, "read") and getattr(up, "filename", ""):
                atts.append((up.filename, up.content_type or "application/octet-stream", await up.read()))
        claim = cl.raise_claim_from_form(db, invoice_id=invoice_id, disputes=disputes, reason=str(form.get("reason", "")),
                                         channel=str(form.get("channel", "phone")), now=now, actor=principal.actor, attachments=atts)
    except OpslineError as exc:
        db.rollback()
        return _detail(request, db, principal, invoice_id, now, error=exc.detail, status=exc.status)
    return RedirectResponse(f"/billing/claims/{claim.id}", status_code=303)


@router.get("/billing/claims", response_class=HTMLResponse)
def claim_list(request: Request, db: DB, now: Now, principal: View, open: str = "1") -> HTMLResponse:
    return render(request, "invoicing/claims.html", {"claims": cl.list_claims(db, open_only=open == "1", now=now, limit=300), "open": open == "1"}, principal=principal)


@router.get("/billing/claims/{claim_id}", response_class=HTMLResponse)
def claim_page(request: Request, claim_id: int, db: DB, now: Now, principal: View, error: str | None = None, status: int = 200) -> HTMLResponse:
    return render(request, "invoicing/claim.html", detail.claim_page(db, claim_id=claim_id, now=now) | {"error": error}, principal=principal, status_code=status)


@router.post("/billing/claims/{claim_id}/transition", response_model=None)
def claim_transition(request: Request, claim_id: int, db: DB, now: Now, principal: View, action: Annotated[str, Form()], reason: Annotated[str, Form()] = "",
                     upheld: Annotated[str, Form()] = "", version: Annotated[str, Form()] = "") -> Response:
    perm = "claims.raise" if action == "withdraw" else "claims.decide"
    if not principal.can(perm):
        return claim_page(request, claim_id, db, now, principal, error=f"your role does not allow '{perm}'", status=403)
    try:
        cl.decide_from_form(db, claim_id=claim_id, action=action, reason=reason, upheld=upheld, version=version, now=now, actor=principal.actor)
    except OpslineError as exc:
        db.rollback()
        return claim_page(request, claim_id, db, now, principal, error=exc.detail, status=exc.status)
    return RedirectResponse(f"/billing/claims/{claim_id}", status_code=303)


@router.get("/billing/claims/attachments/{attachment_id}")
def claim_attachment(attachment_id: int, db: DB, principal: View) -> Response:
    a = cl.attachment(db, attachment_id=attachment_id)
    return Response(a.content, media_type=a.content_type, headers={"Content-Disposition": f'attachment; filename="{a.filename}"'})


@router.get("/billing/accounts/{account_id}/statement", response_model=None)
def statement_page(request: Request, account_id: int, db: DB, now: Now, principal: View, date_from: str = "", date_to: str = "", format: str = "html") -> Response:
    if format == "pdf":
        pdf = documents.statement_pdf(db, account_id=account_id, date_from=_d(date_from), date_to=_d(date_to), now=now)
        return Response(pdf, media_type="application/pdf", headers={"Content-Disposition": f'inline; filename="statement-{account_id}.pdf"'})
    ctx = statements.statement(db, account_id=account_id, date_from=_d(date_from), date_to=_d(date_to), now=now)
    return render(request, "invoicing/statement.html", ctx, principal=principal)


@router.get("/billing/usage", response_class=HTMLResponse)
def usage_page(request: Request, db: DB, principal: View) -> HTMLResponse:
    return render(request, "invoicing/usage.html", {"result": None, "rejected": usage.list_rejected(db, limit=200)}, principal=principal)


@router.post("/billing/usage", response_class=HTMLResponse)
async def usage_upload(request: Request, db: DB, now: Now, principal: Annotated[Principal, Depends(require("billing.run"))]) -> HTMLResponse:
    form = await request.form()
    up = form.get("file")
    error, result = None, None
    if up is None or not hasattr(up, "read") or not getattr(up, "filename", ""):
        error = "choose a CSV file to upload"
    else:
        try:
            result = usage.import_usage(db, file=await up.read(), filename=up.filename, now=now, actor=principal.actor).as_dict()
        except OpslineError as exc:
            db.rollback()
            error = exc.detail
    return render(request, "invoicing/usage.html", {"result": result, "error": error, "rejected": usage.list_rejected(db, limit=200)}, principal=principal,
                  status_code=422 if error else 200)


def panel_loader(session: Session, *, account_id: int, now: datetime) -> dict[str, Any]:
    """Account 360 panel: recent invoices, open claims, disputed amount, balance."""
    acc = statements.account_row(session, account_id=account_id)
    recent = invoices.list_invoices(session, account_id=account_id, limit=6)["items"]
    open_claims = cl.list_claims(session, account_id=account_id, open_only=True, now=now, limit=10)
    return {"invoices": recent, "claims": open_claims, "currency": acc["currency"],
            "disputed_minor": cl.disputed_amount(session, account_id=account_id, currency=acc["currency"]).minor,
            "balance_minor": statements.balance_at(session, account_id=account_id, before=now), "open_states": OPEN_CLAIM_STATES}
