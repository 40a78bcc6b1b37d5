"""Inventory pages: equipment across accounts by state (e.g. loaned routers awaiting return, oldest first)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from opsline.inventory import service
from opsline.web.deps import DB, Now, Principal, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)
View = Annotated[Principal, Depends(require("inventory.view"))]


@router.get("/inventory/equipment", response_class=HTMLResponse)
def equipment_list(request: Request, db: DB, now: Now, principal: View, state: str = "", kind: str = "", owner: str = "", page: int = 1) -> HTMLResponse:
    page = max(1, min(page, 100_000))
    ctx = service.equipment_page(db, now=now, state=state or None, kind=kind or None, owner=owner or None, offset=(page - 1) * 100, limit=100)
    return render(request, "inventory/equipment.html", ctx | {"page": page}, principal=principal)
