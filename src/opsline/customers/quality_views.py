"""Data-quality pages: counts per check, the worklist behind each (with export and a fix), and the "confirm or update
details" step on a contact, which leaves a memo of what changed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsline.core.errors import InvalidInput
from opsline.core.exports import download_headers, export_table
from opsline.customers import quality
from opsline.web.deps import DB, Now, Principal, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)

Quality = Annotated[Principal, Depends(require("customers.quality"))]
Editor = Annotated[Principal, Depends(require("customers.edit"))]


@router.get("/data-quality", response_class=HTMLResponse)
def overview(request: Request, db: DB, principal: Quality, check: str = quality.CHECK_KEYS[0], done: str = "") -> HTMLResponse:
    ctx = quality.overview(db) | {"check": check, "rows": quality.worklist(db, check=check), "done": done}
    return render(request, "customers/data_quality.html", ctx, principal=principal)


@router.get("/data-quality/{check}/export.{fmt}")
def export(check: str, fmt: str, db: DB, principal: Quality) -> Response:
    header, rows = quality.export_rows(db, check=check)
    name, media, body = export_table(fmt, name=f"data-quality-{check}", header=header, rows=rows)
    return Response(body, media_type=media, headers=download_headers(name))


@router.post("/data-quality/phones/normalise", response_model=None)
def normalise_phones(db: DB, now: Now, principal: Quality, account_id: Annotated[str, Form()] = "") -> RedirectResponse:
    """Rewrite fixable phone numbers in E.164: one account (`account_id`) or every fixable one (empty)."""
    ids = None
    if account_id.strip():
        if not account_id.strip().isdigit():
            raise InvalidInput(f"'{account_id}' is not an account id", field="account_id")
        ids = [int(account_id.strip())]
    res = quality.normalise_phones(db, account_ids=ids, now=now, actor=principal.actor)
    return RedirectResponse(f"/data-quality?check=invalid_phone&done=fixed+{res['fixed']}%2C+left+{res['left']}+for+a+person", status_code=303)


@router.post("/data-quality/sites/{site_id}/coverage", response_model=None)
def site_coverage(site_id: int, db: DB, now: Now, principal: Quality, fno_coverage: Annotated[str, Form(max_length=500)] = "") -> RedirectResponse:
    quality.set_site_coverage(db, site_id=site_id, partners=fno_coverage.split(","), now=now, actor=principal.actor)
    return RedirectResponse("/data-quality?check=site_no_coverage&done=coverage+recorded", status_code=303)


@router.post("/accounts/{account_id}/details/confirm", response_model=None)
async def confirm_details(request: Request, account_id: int, db: DB, now: Now, principal: Editor) -> RedirectResponse:
    form = await request.form()
    raw_version = str(form.get("version", ""))
    if not raw_version.isdigit():
        raise InvalidInput("the form is missing the account's version; reload the page", field="version")
    values = {k: str(form.get(k, "")) for k in quality.CONFIRM_FIELDS if k in form}
    quality.confirm_details(db, account_id=account_id, version=int(raw_version), values=values, contact=str(form.get("contact", ""))[:200],
                            now=now, actor=principal.actor)
    back = str(form.get("back", ""))
    target = back if back.startswith("/") and not back.startswith("//") else f"/accounts/{account_id}"
    return RedirectResponse(target, status_code=303)
