"""SLA read API: a case's clocks and the breach list (JSON, bearer token or session)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from opsline.api.tmf import PAGE_LIMIT_MAX, page_headers
from opsline.cases.models import SupportCase
from opsline.core.errors import NotFound
from opsline.sla import service
from opsline.sla.schemas import Breach, CaseClock
from opsline.web.deps import DB, Now, Principal, require

router = APIRouter(prefix="/api/sla/v1", tags=["SLA"])
View = Annotated[Principal, Depends(require("sla.view"))]


@router.get("/caseClock", response_model=list[CaseClock])
def case_clock(db: DB, now: Now, principal: View, caseId: Annotated[int, Query(ge=1)]) -> list[CaseClock]:
    """Every SLA clock of one case as of now, computed from its history. 404 for an unknown case."""
    if db.get(SupportCase, caseId) is None:
        raise NotFound(f"case {caseId} not found")
    return [CaseClock(caseId=caseId, metric=c["metric"], label=c["label"], team=c["team"], partner=c["partner"], startedAt=c["started_at"], dueAt=c["due_at"],
                      stoppedAt=c["stopped_at"], elapsedSeconds=c["elapsed_seconds"], targetSeconds=c["target_seconds"], pausedSeconds=c["paused_seconds"],
                      percent=c["percent"], state=c["state"], paused=c["paused"]) for c in service.case_clocks(db, case_id=caseId, now=now)]


@router.get("/breach", response_model=list[Breach])
def breach_list(response: Response, db: DB, principal: View, caseId: int | None = None, cause: str | None = None, uncaused: bool = False,
                offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 100) -> list[Breach]:
    """SLA breaches, newest first; filter by case, cause code, or not yet analysed."""
    res = service.list_breaches(db, case_id=caseId, cause=cause, uncaused=uncaused, limit=limit, offset=offset)
    page_headers(response, count=len(res["items"]), total=res["total"])
    return [Breach(id=b["id"], caseId=b["case_id"], caseReference=b["reference"], metric=b["metric"], team=b["team"], partner=b["partner_code"], dueAt=b["due_at"],
                   breachedAt=b["breached_at"], overrunHours=b["overrun_hours"], causeCode=b["cause_code"], causeNote=b["cause_note"], setBy=b["set_by"], setAt=b["set_at"])
            for b in res["items"]]
