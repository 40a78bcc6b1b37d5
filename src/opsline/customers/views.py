"""Customer pages: account list with filters and paging, new account, account 360, memos, edits, duplicates."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from opsline.core.errors import NotFound, OpslineError
from opsline.customers import service
from opsline.customers.schemas import AccountIn, AccountUpdate, MemoIn, SiteIn
from opsline.web.deps import DB, Now, Principal, require
from opsline.web.panels import account_panels
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)

View = Annotated[Principal, Depends(require("customers.view"))]


def _form_errors(exc: ValidationError) -> dict[str, str]:
    return {".".join(str(p) for p in e["loc"]): e["msg"] for e in exc.errors()}


@router.get("/accounts", response_class=HTMLResponse)
def account_list(request: Request, db: DB, principal: View, q: str = "", status: str = "", kind: str = "", segment: str = "", tier: str = "", page: int = 1) -> HTMLResponse:
    res = service.search_accounts(db, q=q or None, status=status or None, kind=kind or None, segment=segment or None, value_tier=tier or None, page=page)
    ctx = {"result": res, "filters": {"q": q, "status": status, "kind": kind, "segment": segment, "tier": tier}, "ref": service.reference_data(db)}
    template = "customers/_account_rows.html" if request.headers.get("hx-request") and request.headers.get("hx-target") == "account-rows" else "customers/accounts.html"
    return render(request, template, ctx, principal=principal)


@router.get("/accounts/new", response_class=HTMLResponse)
def account_new(request: Request, db: DB, principal: Annotated[Principal, Depends(require("customers.create"))]) -> HTMLResponse:
    return render(request, "customers/account_new.html", {"ref": service.reference_data(db), "errors": {}, "values": {}}, principal=principal)


@router.post("/accounts/new", response_model=None)
async def account_create(request: Request, db: DB, now: Now, principal: Annotated[Principal, Depends(require("customers.create"))]) -> HTMLResponse | RedirectResponse:
    form = dict(await request.form())
    form.pop("csrf_token", None)
    values = {k: (v if v != "" else None) for k, v in form.items()}
    site = {k[5:]: values.pop(k) for k in list(values) if k.startswith("site_")}
    try:
        payload = {k: v for k, v in values.items() if v is not None}
        if site.get("line1"):
            payload["sites"] = [SiteIn(**{k: v for k, v in site.items() if v is not None})]
        data = AccountIn(**payload)
        acc = service.create_account(db, data=data, now=now, actor=principal.actor, default_currency=request.app.state.settings.currency)
    except ValidationError as exc:
        return render(request, "customers/account_new.html", {"ref": service.reference_data(db), "errors": _form_errors(exc), "values": form}, principal=principal, status_code=422)
    except OpslineError as exc:
        db.rollback()
        return render(request, "customers/account_new.html", {"ref": service.reference_data(db), "errors": {exc.field or "form": exc.detail}, "values": form}, principal=principal, status_code=exc.status)
    return RedirectResponse(f"/accounts/{acc.id}", status_code=303)


@router.get("/accounts/duplicates", response_class=HTMLResponse)
def duplicates(request: Request, db: DB, principal: View) -> HTMLResponse:
    return render(request, "customers/duplicates.html", {"pairs": service.find_duplicates(db, limit=200)}, principal=principal)


@router.get("/accounts/{account_id}", response_class=HTMLResponse)
def account_page(request: Request, account_id: int, db: DB, principal: View) -> HTMLResponse:
    data = service.account_360(db, account_id=account_id)
    panels = [p for p in account_panels() if principal.can(p.permission)]
    return render(request, "customers/account_360.html", data | {"panels": panels, "ref": service.reference_data(db)}, principal=principal)


@router.get("/accounts/{account_id}/panel/{key}", response_class=HTMLResponse)
def account_panel(request: Request, account_id: int, key: str, db: DB, now: Now, principal: View) -> HTMLResponse:
    panel = next((p for p in account_panels() if p.key == key), None)
    if panel is None:
        raise NotFound(f"no panel '{key}'")
    if not principal.can(panel.permission):
        return HTMLResponse("")
    service.get_account(db, account_id=account_id)
    return render(request, panel.template, panel.loader(db, account_id=account_id, now=now) | {"account_id": account_id}, principal=principal)


@router.post("/accounts/{account_id}/memos", response_class=HTMLResponse)
def memo_add(request: Request, account_id: int, db: DB, now: Now, principal: Annotated[Principal, Depends(require("memos.add"))], body: Annotated[str, Form()] = "", category: Annotated[str, Form()] = "general") -> HTMLResponse:
    error = None
    try:
        service.add_memo(db, account_id=account_id, data=MemoIn(body=body, category=category), now=now, actor=principal.actor)
        db.flush()
    except ValidationError as exc:
        error = "; ".join(e["msg"] for e in exc.errors())
    data = service.account_360(db, account_id=account_id)
    if request.headers.get("hx-request"):
        return render(request, "customers/_memos_and_timeline.html", data | {"memo_error": error}, principal=principal, status_code=422 if error else 200)
    return RedirectResponse(f"/accounts/{account_id}", status_code=303)  # type: ignore[return-value]


@router.post("/accounts/{account_id}/edit", response_model=None)
async def account_edit(request: Request, account_id: int, db: DB, now: Now, principal: Annotated[Principal, Depends(require("customers.edit"))]) -> HTMLResponse | RedirectResponse:
    form = dict(await request.form())
    form.pop("csrf_token", None)
    fields = {k: (v if v != "" else None) for k, v in form.items()}
    try:
        data = AccountUpdate(**{k: v for k, v in fields.items() if k in AccountUpdate.model_fields})
        service.update_account(db, account_id=account_id, data=data, now=now, actor=principal.actor)
    except ValidationError as exc:
        data360 = service.account_360(db, account_id=account_id)
        return render(request, "customers/account_360.html", data360 | {"panels": [], "ref": service.reference_data(db), "edit_errors": _form_errors(exc)}, principal=principal, status_code=422)
    return RedirectResponse(f"/accounts/{account_id}", status_code=303)


@router.post("/accounts/{account_id}/status", response_model=None)
def account_status(request: Request, account_id: int, db: DB, now: Now, principal: Annotated[Principal, Depends(require("customers.edit"))], action: Annotated[str, Form()], reason: Annotated[str, Form()] = "") -> RedirectResponse:
    service.transition_account(db, account_id=account_id, action=action, now=now, actor=principal.actor, reason=reason)
    return RedirectResponse(f"/accounts/{account_id}", status_code=303)


@router.post("/accounts/{account_id}/sites", response_model=None)
async def site_add(request: Request, account_id: int, db: DB, now: Now, principal: Annotated[Principal, Depends(require("customers.edit"))]) -> RedirectResponse:
    form = dict(await request.form())
    form.pop("csrf_token", None)
    cov = form.pop("fno_coverage", "") or ""
    data = SiteIn(**{k: v for k, v in form.items() if v != ""}, fno_coverage=[c.strip() for c in str(cov).split(",") if c.strip()])
    service.add_site(db, account_id=account_id, data=data, now=now, actor=principal.actor)
    return RedirectResponse(f"/accounts/{account_id}", status_code=303)
