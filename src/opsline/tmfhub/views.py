"""Staff pages of the TMF event hub: every listener with its delivery counts, and each listener's delivery log."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from opsline.core.errors import OpslineError
from opsline.tmfhub import service
from opsline.tmfhub.catalogue import APIS
from opsline.web.deps import DB, Now, Principal, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)
Hub = Annotated[Principal, Depends(require("tmf.hub"))]


@router.get("/tmf-hub", response_class=HTMLResponse)
def listeners(request: Request, db: DB, principal: Hub) -> HTMLResponse:
    return render(request, "tmfhub/listeners.html", {"listeners": service.overview(db), "apis": APIS}, principal=principal)


@router.get("/tmf-hub/{listener_id}", response_class=HTMLResponse)
def deliveries(request: Request, listener_id: int, db: DB, principal: Hub, flash: str = "", error: str = "") -> HTMLResponse:
    return render(request, "tmfhub/deliveries.html", service.delivery_log(db, listener_id=listener_id) | {"flash": flash, "error": error}, principal=principal)


@router.post("/tmf-hub/{listener_id}/retry", response_model=None)
def retry(request: Request, listener_id: int, db: DB, now: Now, principal: Hub) -> RedirectResponse:
    try:
        n = service.retry_dead(db, listener_id=listener_id, now=now, actor=principal.actor)
    except OpslineError as exc:
        db.rollback()
        return RedirectResponse(f"/tmf-hub/{listener_id}?" + urlencode({"error": exc.detail}), status_code=303)
    return RedirectResponse(f"/tmf-hub/{listener_id}?" + urlencode({"flash": f"{n} dead deliveries queued again, oldest first"}), status_code=303)
