"""Report subscriptions page: the catalogue of reports the user may subscribe to, their active subscriptions (end,
send now), and the subscribe form with its errors. Thin: parse, call one service function, render or redirect."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote_plus

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsline.core.errors import NotFound, OpslineError
from opsline.subscriptions import catalogue, service
from opsline.subscriptions.models import FORMATS, FREQUENCIES
from opsline.web.deps import DB, Now, Principal, Tz, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)
Subscribe = Annotated[Principal, Depends(require("reports.subscribe"))]
BASE = "/reports/subscriptions"


def _page(request: Request, db: DB, principal: Principal, *, ok: str = "", error: str = "", error_field: str = "", form: dict[str, str] | None = None,
          status: int = 200) -> HTMLResponse:
    reports = [{"key": r.key, "title": r.title, "description": r.description} for r in catalogue.REPORTS.values() if principal.can(r.permission)]
    admin = "admin" in principal.roles
    return render(request, "subscriptions/index.html", {
        "reports": reports, "subs": service.list_subscriptions(db, owner=None if admin else principal.actor.name), "frequencies": FREQUENCIES,
        "formats": FORMATS, "ok": ok or None, "error": error or None, "error_field": error_field,
        "form": form or {"report": "", "frequency": "weekly", "format": "xlsx", "recipients": ""}}, principal=principal, status_code=status)


@router.get(BASE, response_class=HTMLResponse)
def index(request: Request, db: DB, principal: Subscribe, ok: str = "") -> HTMLResponse:
    return _page(request, db, principal, ok=ok)


@router.post(BASE, response_model=None)
def subscribe(request: Request, db: DB, now: Now, principal: Subscribe, report: Annotated[str, Form()] = "", frequency: Annotated[str, Form()] = "",
              format: Annotated[str, Form()] = "", recipients: Annotated[str, Form()] = "") -> Response:
    form: dict[str, Any] = {"report": report, "frequency": frequency, "format": format, "recipients": recipients}
    try:
        sid = service.subscribe(db, report_key=report, frequency=frequency, fmt=format, recipients=recipients, now=now, actor=principal.actor)
    except OpslineError as exc:
        db.rollback()
        return _page(request, db, principal, error=exc.detail, error_field=exc.field or "", form=form, status=exc.status)
    return RedirectResponse(f"{BASE}?ok={quote_plus(f'Subscription {sid} created')}", status_code=303)


@router.post(BASE + "/{subscription_id}/end", response_model=None)
def end(subscription_id: int, db: DB, now: Now, principal: Subscribe) -> Response:
    service.end(db, subscription_id=subscription_id, now=now, actor=principal.actor)
    return RedirectResponse(f"{BASE}?ok={quote_plus(f'Subscription {subscription_id} ended')}", status_code=303)


@router.post(BASE + "/{subscription_id}/send", response_model=None)
def send_now(subscription_id: int, db: DB, now: Now, tz: Tz, principal: Subscribe) -> Response:
    """Send it now, outside its schedule (once per minute at most): the owner checks what the recipients will get."""
    subs = {s["id"]: s for s in service.list_subscriptions(db, owner=None if "admin" in principal.roles else principal.actor.name)}
    if subscription_id not in subs:
        raise NotFound(f"active subscription {subscription_id} not found", field="subscription_id")
    r = service.send(db, subscription_id=subscription_id, slot=f"now-{now:%Y%m%dT%H%M}", now=now, tz=tz)
    msg = f"Subscription {subscription_id}: {r['outcome']}, {r['messages']} message(s) queued" + (f" ({r['note']})" if r.get("note") else "")
    return RedirectResponse(f"{BASE}?ok={quote_plus(msg)}", status_code=303)
