"""The management dashboard page and its xlsx export (`management.view`). Thin: build the data, render or export."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from opsline.assurance import dashboard
from opsline.core.exports import download_headers, export_sheets
from opsline.web.deps import DB, Now, Principal, Tz, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)
View = Annotated[Principal, Depends(require("management.view"))]


@router.get("/assurance/dashboard", response_class=HTMLResponse)
def dashboard_page(request: Request, db: DB, now: Now, tz: Tz, principal: View) -> HTMLResponse:
    return render(request, "assurance/dashboard.html", {"d": dashboard.build(db, now=now, tz=tz, principal=principal)}, principal=principal)


@router.get("/assurance/dashboard/export")
def dashboard_export(db: DB, now: Now, tz: Tz, principal: View, format: str = "xlsx") -> Response:
    d = dashboard.build(db, now=now, tz=tz, principal=principal)
    filename, media, body = export_sheets(format, name=f"management-dashboard-{d['today']}", sheets=dashboard.sheets(d))
    return Response(body, media_type=media, headers=download_headers(filename))
