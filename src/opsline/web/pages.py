"""Home page (desk overview) and the background-jobs page showing what is stuck."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import func, select

from opsline.core.errors import NotAuthenticated
from opsline.core.jobs import Job, stuck_jobs
from opsline.web.deps import DB, Now, Principal, get_principal, require
from opsline.web.templating import desks, render

router = APIRouter(include_in_schema=False)


@router.get("/", response_model=None)
def home(request: Request, principal: Annotated[Principal, Depends(get_principal)]) -> RedirectResponse:
    for _label, url, perm in desks():
        if principal.can(perm):
            return RedirectResponse(url, status_code=303)
    raise NotAuthenticated("no desk for your roles")


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, db: DB, now: Now, principal: Annotated[Principal, Depends(require("jobs.view"))]) -> HTMLResponse:
    counts = dict(db.execute(select(Job.state, func.count()).group_by(Job.state)).all())
    return render(request, "jobs.html", {"counts": counts, "stuck": stuck_jobs(db, now=now)}, principal=principal)
