"""Catalog page: offerings with the prices valid on a date, filterable by kind and partner."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from opsline.catalog import service
from opsline.core.localtime import local_date
from opsline.web.deps import DB, Now, Principal, Tz, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)
View = Annotated[Principal, Depends(require("catalog.view"))]
KINDS = ("fibre", "mobile", "b2b_link", "service", "equipment")


@router.get("/catalog", response_class=HTMLResponse)
def catalog_page(request: Request, db: DB, now: Now, tz: Tz, principal: View, kind: str = "", partner: str = "", q: str = "", on: str = "") -> HTMLResponse:
    try:
        day = date.fromisoformat(on) if on else local_date(now, tz)
    except ValueError:
        day = local_date(now, tz)
    ctx = service.catalog_page(db, on=day, kind=kind or None, partner_code=partner or None, q=q or None)
    return render(request, "catalog/catalog.html", ctx | {"filters": {"kind": kind, "partner": partner, "q": q, "on": day.isoformat()}, "kinds": KINDS}, principal=principal)


@router.get("/catalog/{offering_id}", response_class=HTMLResponse)
def offering_page(request: Request, offering_id: int, db: DB, now: Now, principal: View) -> HTMLResponse:
    o = service.offering_detail(db, offering_id=offering_id, on=None)
    return render(request, "catalog/offering.html", {"o": o}, principal=principal)
