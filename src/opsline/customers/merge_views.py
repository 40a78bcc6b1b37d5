"""Merge pages: the preview (choose the surviving value field by field, see what moves), the merge, and its undo."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from opsline.customers import merge, service
from opsline.web.deps import DB, Now, Principal, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)

Merger = Annotated[Principal, Depends(require("customers.merge"))]


@router.get("/merges/preview", response_class=HTMLResponse)
def preview(request: Request, db: DB, principal: Merger, survivor: str = "", merged: str = "") -> HTMLResponse:
    """Both accounts side by side; `survivor` and `merged` are account numbers or ids (without them: a form to name them)."""
    if not survivor.strip() or not merged.strip():
        return render(request, "customers/merge_pick.html", {"survivor": survivor, "merged": merged}, principal=principal)
    s_id = service.resolve_account_id(db, key=survivor, field="survivor")
    m_id = service.resolve_account_id(db, key=merged, field="merged")
    return render(request, "customers/merge_preview.html", merge.preview(db, survivor_id=s_id, merged_id=m_id), principal=principal)


@router.post("/merges", response_model=None)
async def do_merge(request: Request, db: DB, now: Now, principal: Merger) -> RedirectResponse:
    form = await request.form()
    choices = {k[7:]: str(v) for k, v in form.items() if k.startswith("choice_")}
    survivor_id = service.resolve_account_id(db, key=str(form.get("survivor_id", "")), field="survivor_id")
    merged_id = service.resolve_account_id(db, key=str(form.get("merged_id", "")), field="merged_id")
    merge.merge_accounts(db, survivor_id=survivor_id, merged_id=merged_id, choices=choices, reason=str(form.get("reason", ""))[:2000], now=now,
                         actor=principal.actor, merge_parties=form.get("merge_parties") == "1")
    return RedirectResponse(f"/accounts/{survivor_id}#panel-merges", status_code=303)


@router.post("/merges/{merge_id}/undo", response_model=None)
def undo(merge_id: int, db: DB, now: Now, principal: Merger, reason: Annotated[str, Form(max_length=2000)] = "") -> RedirectResponse:
    m = merge.get_merge(db, merge_id=merge_id)
    merge.undo_merge(db, merge_id=merge_id, reason=reason, now=now, actor=principal.actor)
    return RedirectResponse(f"/accounts/{m.survivor_account_id}#panel-merges", status_code=303)
