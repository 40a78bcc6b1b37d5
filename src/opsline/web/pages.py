"""The background-jobs page showing what is queued, retrying or stuck (desk home pages live in desk.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from opsline.core.jobs import Job, stuck_jobs
from opsline.web.deps import DB, Now, Principal, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, db: DB, now: Now, principal: Annotated[Principal, Depends(require("jobs.view"))]) -> HTMLResponse:
    counts = dict(db.execute(select(Job.state, func.count()).group_by(Job.state)).all())
    return render(request, "jobs.html", {"counts": counts, "stuck": stuck_jobs(db, now=now)}, principal=principal)
