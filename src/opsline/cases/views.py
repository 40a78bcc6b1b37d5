"""Support desk pages: work queue tabs, case detail (clocks, actions, notes, timeline), new case, FCR report."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from opsline.cases import queries, service
from opsline.cases.models import CaseAttachment
from opsline.cases.schemas import CaseIn, LeadIn, NoteIn
from opsline.core.errors import NotFound, OpslineError
from opsline.web.deps import DB, Now, Principal, require
from opsline.web.panels import Panel
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)

View = Annotated[Principal, Depends(require("cases.view"))]
Work = Annotated[Principal, Depends(require("cases.work"))]


def cases_panel() -> Panel:
    return Panel(key="cases", title="Cases", permission="cases.view", template="cases/_account_panel.html",
                 loader=lambda session, *, account_id, now: queries.account_cases(session, account_id=account_id, now=now))


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


@router.get("/cases", response_class=HTMLResponse)
def work_queue(request: Request, db: DB, now: Now, principal: View, tab: str = "mine", state: str = "", category: str = "", queue: str = "",
               priority: str = "", signoff: str = "", sort: str = "sla", page: int = 1) -> HTMLResponse:
    prio = int(priority) if priority.isdigit() else None
    res = queries.work_queue(db, now=now, user_id=principal.user_id, tab=tab, state=state or None, category=category or None, queue=queue or None,
                             priority=prio, signoff=bool(signoff), sort=sort, page=page)
    ctx = {"result": res, "filters": {"state": state, "category": category, "queue": queue, "priority": priority, "signoff": signoff, "sort": sort}, "ref": queries.reference_data(db),
           "counts": queries.tab_counts(db, user_id=principal.user_id)}
    return render(request, "cases/work_queue.html", ctx, principal=principal)


@router.get("/cases/new", response_class=HTMLResponse)
def case_new(request: Request, db: DB, principal: Work, account_id: int | None = None) -> HTMLResponse:
    return render(request, "cases/case_new.html", {"ref": queries.reference_data(db), "values": {"account_id": account_id or ""}, "error": None}, principal=principal)


@router.post("/cases/new", response_model=None)
async def case_create(request: Request, db: DB, now: Now, principal: Work) -> HTMLResponse | RedirectResponse:
    form = dict(await request.form())
    form.pop("csrf_token", None)
    values = {k: v for k, v in form.items() if v not in ("", None)}
    for flag in ("litigation_risk", "brand_risk", "contractual_dispute"):
        values[flag] = flag in values
    try:
        c = service.open_case(db, data=CaseIn(**values), now=now, actor=principal.actor)
    except ValidationError as exc:
        return render(request, "cases/case_new.html", {"ref": queries.reference_data(db), "values": form, "error": _errors(exc)}, principal=principal, status_code=422)
    except OpslineError as exc:
        db.rollback()
        return render(request, "cases/case_new.html", {"ref": queries.reference_data(db), "values": form, "error": exc.detail}, principal=principal, status_code=exc.status)
    return RedirectResponse(f"/cases/{c.id}", status_code=303)


@router.get("/cases/reports/fcr", response_class=HTMLResponse)
def fcr_page(request: Request, db: DB, principal: View) -> HTMLResponse:
    return render(request, "cases/fcr.html", {"by_queue": queries.fcr_report(db, by="queue"), "by_agent": queries.fcr_report(db, by="agent"),
                                              "queues": queries.queues_overview(db)}, principal=principal)


def _detail(request: Request, db: DB, now: Now, principal: Principal, case_id: int, *, error: str | None = None, ok: str | None = None, status_code: int = 200) -> HTMLResponse:
    data = queries.case_detail(db, case_id=case_id, now=now, actor=principal.actor)
    return render(request, "cases/case_detail.html", data | {"ref": queries.reference_data(db), "error": error, "ok": ok}, principal=principal, status_code=status_code)


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(request: Request, case_id: int, db: DB, now: Now, principal: View) -> HTMLResponse:
    return _detail(request, db, now, principal, case_id)


def _after(request: Request, db: DB, now: Now, principal: Principal, case_id: int, fn, ok: str) -> Response:  # type: ignore[no-untyped-def]
    """Run one service call; on a user error roll back and re-render the page with the message."""
    try:
        fn()
        db.flush()
    except ValidationError as exc:
        db.rollback()
        return _detail(request, db, now, principal, case_id, error=_errors(exc), status_code=422)
    except OpslineError as exc:
        db.rollback()
        if isinstance(exc, NotFound) and "case" in exc.detail and str(case_id) in exc.detail:
            raise
        return _detail(request, db, now, principal, case_id, error=exc.detail, status_code=exc.status)
    if request.headers.get("hx-request"):
        return _detail(request, db, now, principal, case_id, ok=ok)
    return RedirectResponse(f"/cases/{case_id}", status_code=303)


@router.post("/cases/{case_id}/transition", response_model=None)
def case_transition(request: Request, case_id: int, db: DB, now: Now, principal: Work, action: Annotated[str, Form()],
                    reason: Annotated[str, Form()] = "", partner_code: Annotated[str, Form()] = "", resolution: Annotated[str, Form()] = "",
                    version: Annotated[str, Form()] = "") -> Response:
    return _after(request, db, now, principal, case_id, lambda: service.transition(
        db, case_id=case_id, action=action, now=now, actor=principal.actor, reason=reason, partner_code=partner_code or None,
        resolution=resolution or None, version=int(version) if version.isdigit() else None), f"{action} done")


@router.post("/cases/{case_id}/assign", response_model=None)
def case_assign(request: Request, case_id: int, db: DB, now: Now, principal: Work, queue_code: Annotated[str, Form()] = "",
                assignee_user_id: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "") -> Response:
    auto = assignee_user_id == "auto"
    uid = int(assignee_user_id) if assignee_user_id.isdigit() else (-1 if assignee_user_id == "none" else None)
    return _after(request, db, now, principal, case_id, lambda: service.assign(
        db, case_id=case_id, now=now, actor=principal.actor, queue_code=queue_code or None, assignee_user_id=uid, auto=auto, reason=reason or None), "assignment saved")


@router.post("/cases/{case_id}/priority", response_model=None)
def case_priority(request: Request, case_id: int, db: DB, now: Now, principal: Work, priority: Annotated[int, Form()], reason: Annotated[str, Form()] = "") -> Response:
    return _after(request, db, now, principal, case_id, lambda: service.change_priority(db, case_id=case_id, priority=priority, now=now, actor=principal.actor, reason=reason), "priority changed")


@router.post("/cases/{case_id}/notes", response_model=None)
def case_note(request: Request, case_id: int, db: DB, now: Now, principal: Work, body: Annotated[str, Form()] = "", visibility: Annotated[str, Form()] = "internal") -> Response:
    return _after(request, db, now, principal, case_id, lambda: service.add_note(db, case_id=case_id, data=NoteIn(body=body, visibility=visibility), now=now, actor=principal.actor), "note added")  # type: ignore[arg-type]


@router.post("/cases/{case_id}/links", response_model=None)
def case_link(request: Request, case_id: int, db: DB, now: Now, principal: Work, target_type: Annotated[str, Form()], target: Annotated[str, Form()] = "",
              note: Annotated[str, Form()] = "") -> Response:
    return _after(request, db, now, principal, case_id, lambda: service.add_link(db, case_id=case_id, target_type=target_type, target_ref=target.strip() or None,
                                                                                 note=note or None, now=now, actor=principal.actor), "link added")


@router.post("/cases/{case_id}/retention", response_model=None)
def case_retention(request: Request, case_id: int, db: DB, now: Now, principal: Work, offer: Annotated[str, Form()] = "", outcome: Annotated[str, Form()] = "offer_made") -> Response:
    return _after(request, db, now, principal, case_id, lambda: service.record_retention(db, case_id=case_id, offer=offer, outcome=outcome, now=now, actor=principal.actor), "retention outcome recorded")


@router.post("/cases/{case_id}/leads", response_model=None)
def case_lead(request: Request, case_id: int, db: DB, now: Now, principal: Work, product_interest: Annotated[str, Form()] = "", notes: Annotated[str, Form()] = "") -> Response:
    return _after(request, db, now, principal, case_id, lambda: service.create_lead(db, case_id=case_id, data=LeadIn(product_interest=product_interest, notes=notes or None), now=now, actor=principal.actor), "sales lead recorded")


@router.post("/cases/{case_id}/leads/{lead_id}/transition", response_model=None)
def lead_action(request: Request, case_id: int, lead_id: int, db: DB, now: Now, principal: Work, action: Annotated[str, Form()],
                reason: Annotated[str, Form()] = "") -> Response:
    return _after(request, db, now, principal, case_id, lambda: service.lead_transition(db, lead_id=lead_id, action=action, now=now, actor=principal.actor,
                                                                                        reason=reason or None), f"lead {action} done")


@router.post("/cases/{case_id}/attachments", response_model=None)
async def case_attachment(request: Request, case_id: int, db: DB, now: Now, principal: Work, file: Annotated[UploadFile, File()]) -> Response:
    data = await file.read(5 * 1024 * 1024 + 1)
    return _after(request, db, now, principal, case_id, lambda: service.add_attachment(db, case_id=case_id, filename=file.filename or "attachment",
                                                                                       content_type=file.content_type or "", data=data, now=now, actor=principal.actor), "attachment added")


@router.get("/cases/{case_id}/attachments/{attachment_id}")
def case_attachment_download(case_id: int, attachment_id: int, db: DB, principal: View) -> Response:
    att = db.get(CaseAttachment, attachment_id)
    if att is None or att.case_id != case_id:
        raise NotFound(f"attachment {attachment_id} not found on case {case_id}")
    safe = att.filename.replace('"', "")
    return Response(att.data, media_type=att.content_type, headers={"Content-Disposition": f'attachment; filename="{safe}"', "X-Content-Type-Options": "nosniff"})
