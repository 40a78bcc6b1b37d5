"""SLA desk pages: dashboard with the breach report (and its exports), breaches with causes, policies, calendars."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsline.core.errors import InvalidInput, OpslineError
from opsline.core.exports import Sheet, download_headers, export_sheets
from opsline.sla.policies import UnableToSaveCalendar
from opsline.sla import service
from opsline.web.deps import DB, Now, Principal, Tz, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)

View = Annotated[Principal, Depends(require("sla.view"))]
Manage = Annotated[Principal, Depends(require("sla.manage"))]


def _month_start(now: datetime, tz: ZoneInfo) -> datetime:
    local = now.astimezone(tz)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _period(now: datetime, tz: ZoneInfo, month: str | None) -> tuple[datetime, datetime, str]:
    """[start, end) of the month 'YYYY-MM' (default: this month, up to now)."""
    if month:
        try:
            y, m = (int(x) for x in month.split("-"))
            start = datetime(y, m, 1, tzinfo=tz)
        except ValueError as exc:
            raise InvalidInput(f"month must look like 2026-11, got '{month}'", field="month") from exc
    else:
        start = _month_start(now, tz)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, min(end, now + timedelta(seconds=1)) if not month else end, start.strftime("%Y-%m")


@router.get("/sla", response_class=HTMLResponse)
def dashboard(request: Request, db: DB, now: Now, tz: Tz, principal: View) -> HTMLResponse:
    data = service.dashboard(db, now=now, month_start=_month_start(now, tz))
    data["month"] = _month_start(now, tz).strftime("%Y-%m")
    data["notifications"] = service.notifications(db, limit=10)
    return render(request, "sla/dashboard.html", data, principal=principal)


BREACH_COLUMNS = ["reference", "label", "team", "partner_code", "due_at", "breached_at", "overrun_hours", "cause_name", "cause_note", "set_by"]


def _report_sheets(db: DB, since: datetime, until: datetime) -> list[Sheet]:
    report = service.breach_report(db, since=since, until=until)
    breaches = service.list_breaches(db, since=since, until=until, limit=100_000)["items"]
    return [Sheet("By cause", ["Cause", "Breaches", "Overrun business hours"], [[r["cause"], r["count"], r["overrun_hours"]] for r in report["by_cause"]]),
            Sheet("By team", ["Team", "Breaches", "Overrun business hours"], [[r["team"], r["count"], r["overrun_hours"]] for r in report["by_team"]]),
            Sheet("Breaches", BREACH_COLUMNS, [[b[c] for c in BREACH_COLUMNS] for b in breaches])]


@router.get("/sla/report.{fmt}")
def report_export(fmt: str, request: Request, db: DB, now: Now, tz: Tz, principal: View, month: str = "") -> Response:
    """The month's breach report: by cause, by team and every breach; xlsx with a sheet each, CSV one after another."""
    since, until, label = _period(now, tz, month or None)
    name, media, body = export_sheets(fmt, name=f"sla-breaches-{label}", sheets=_report_sheets(db, since, until))
    return Response(body, media_type=media, headers=download_headers(name))


@router.get("/sla/breaches", response_class=HTMLResponse)
def breaches(request: Request, db: DB, now: Now, tz: Tz, principal: View, cause: str = "", uncaused: str = "", month: str = "", open: str = "",
             page: int = 1, flash: str = "", error: str = "") -> HTMLResponse:
    page = max(1, page)
    since, until = (_period(now, tz, month)[:2]) if month else (None, None)
    res = service.list_breaches(db, cause=cause or None, uncaused=bool(uncaused), since=since, until=until, open_only=bool(open), limit=50, offset=(page - 1) * 50)
    ctx = {"result": res, "causes": service.breach_causes(db), "filters": {"cause": cause, "uncaused": uncaused, "month": month, "open": open}, "page": page, "pages": max(1, -(-res["total"] // 50)), "flash": flash, "error": error}
    return render(request, "sla/breaches.html", ctx, principal=principal, status_code=422 if error else 200)


@router.post("/sla/breaches/{breach_id}/cause", response_model=None)
def set_cause(request: Request, breach_id: int, db: DB, now: Now, tz: Tz, principal: Manage, cause_code: Annotated[str, Form()] = "", note: Annotated[str, Form()] = "") -> HTMLResponse | RedirectResponse:
    try:
        service.set_breach_cause(db, breach_id=breach_id, cause_code=cause_code, note=note.strip() or None, now=now, actor=principal.actor)
    except OpslineError as exc:
        db.rollback()
        return breaches(request, db, now, tz, principal, error=exc.detail)
    return RedirectResponse("/sla/breaches?flash=Cause+recorded", status_code=303)


@router.get("/sla/policies", response_class=HTMLResponse)
def policies(request: Request, db: DB, principal: View) -> HTMLResponse:
    return render(request, "sla/policies.html", {"policies": service.list_policies(db), "calendars": service.list_calendars(db)}, principal=principal)


@router.get("/sla/calendars/{code}", response_class=HTMLResponse)
def calendar(request: Request, code: str, db: DB, now: Now, principal: View, flash: str = "", error: str = "") -> HTMLResponse:
    data = service.calendar_view(db, code=code, start=now, days=60)
    return render(request, "sla/calendar.html", data | {"flash": flash, "error": error}, principal=principal, status_code=422 if error else 200)


@router.post("/sla/calendars/{code}/closures", response_model=None)
def calendar_closure(request: Request, code: str, db: DB, now: Now, principal: Manage, day: Annotated[str, Form()] = "", op: Annotated[str, Form()] = "add", reason: Annotated[str, Form()] = "") -> HTMLResponse | RedirectResponse:
    try:
        if not reason.strip():
            raise UnableToSaveCalendar("a reason is required to change a calendar", field="reason")
        day = day.strip()
        kw = {"add_closures": [day]} if op == "add" else {"remove_closures": [day]}
        n = service.update_calendar(db, code=code, now=now, actor=principal.actor, reason=reason.strip(), **kw)  # type: ignore[arg-type]
    except OpslineError as exc:
        db.rollback()
        return calendar(request, code, db, now, principal, error=exc.detail)
    return RedirectResponse(f"/sla/calendars/{code}?flash=Saved;+{n}+recalculation+job(s)+queued", status_code=303)


@router.get("/sla/cases/{case_id}/clocks", response_class=HTMLResponse)
def case_clocks(request: Request, case_id: int, db: DB, now: Now, principal: View) -> HTMLResponse:
    clocks = service.case_clocks(db, case_id=case_id, now=now)
    for c in clocks:
        pct = float(c["percent"])
        c["width"], c["css"] = max(0.0, min(pct, 100.0)), ("bad" if pct >= 100 else "warn" if pct >= 75 else "")
    return render(request, "sla/_clocks.html", {"clocks": clocks}, principal=principal)
