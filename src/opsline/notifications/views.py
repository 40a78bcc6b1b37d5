"""Notification pages: message log and detail, approvals queue, templates (edit, preview), rules, account preferences."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsline.core import events
from opsline.core.errors import InvalidInput, OpslineError
from opsline.customers.service import get_account
from opsline.notifications import contacts, queries, service, templates
from opsline.notifications.models import CATEGORIES, CHANNELS, MESSAGE
from opsline.web.deps import DB, Now, Principal, Tz, require
from opsline.web.panels import Panel
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)

View = Annotated[Principal, Depends(require("notifications.view"))]
Approve = Annotated[Principal, Depends(require("notifications.approve"))]
Manage = Annotated[Principal, Depends(require("notifications.manage"))]
EditTemplates = Annotated[Principal, Depends(require("notifications.templates"))]
Prefs = Annotated[Principal, Depends(require("notifications.preferences"))]


def messages_panel() -> Panel:
    return Panel(key="messages", title="Messages", permission="notifications.view", template="notifications/_account_panel.html",
                 loader=lambda session, *, account_id, now: queries.account_messages(session, account_id=account_id, now=now))


async def _form(request: Request) -> dict[str, str]:
    form = {k: str(v) for k, v in (await request.form()).items()}
    form.pop("csrf_token", None)
    return form


# --- messages -------------------------------------------------------------------------------------
@router.get("/notifications/messages", response_class=HTMLResponse)
def messages_page(request: Request, db: DB, principal: View, state: str = "", channel: str = "", category: str = "",
                  account_id: int | None = None, event: str = "", page: int = 1) -> HTMLResponse:
    res = queries.list_messages(db, state=state or None, channel=channel or None, category=category or None, account_id=account_id,
                                event=event or None, page=page)
    return render(request, "notifications/messages.html", {
        "result": res, "filters": {"state": state, "channel": channel, "category": category, "account_id": account_id or "", "event": event},
        "states": ["problem", "retrying", *MESSAGE.state_values()], "channels": CHANNELS, "categories": CATEGORIES}, principal=principal)


def _detail(request: Request, db: DB, principal: Principal, message_id: int, *, error: str | None = None, ok: str | None = None,
            status_code: int = 200) -> HTMLResponse:
    data = queries.message_detail(db, message_id=message_id, actor=principal.actor)
    return render(request, "notifications/message_detail.html", data | {"error": error, "ok": ok}, principal=principal, status_code=status_code)


@router.get("/notifications/messages/{message_id}", response_class=HTMLResponse)
def message_page(request: Request, message_id: int, db: DB, principal: View) -> HTMLResponse:
    return _detail(request, db, principal, message_id)


async def _act(request: Request, db: DB, principal: Principal, message_id: int, fn: Any, ok: str, *, with_reason: bool = False,
               **kw: Any) -> Response:
    """Run one lifecycle action on a message; on a refusal show the message with the error (nothing changed)."""
    form = await _form(request)
    if with_reason:
        kw["reason"] = form.get("reason", "")
    try:
        fn(db, message_id=message_id, actor=principal.actor, **kw)
    except OpslineError as exc:
        db.rollback()
        return _detail(request, db, principal, message_id, error=exc.detail, status_code=exc.status)
    back = form.get("back", "")
    target = back if back.startswith("/notifications/") else f"/notifications/messages/{message_id}"
    return RedirectResponse(target + ("&" if "?" in target else "?") + f"ok={ok}", status_code=303)


@router.post("/notifications/messages/{message_id}/approve", response_model=None)
async def approve_message(request: Request, message_id: int, db: DB, now: Now, tz: Tz, principal: Approve) -> Response:
    return await _act(request, db, principal, message_id, service.approve, "approved", now=now, tz=tz)


@router.post("/notifications/messages/{message_id}/reject", response_model=None)
async def reject_message(request: Request, message_id: int, db: DB, now: Now, principal: Approve) -> Response:
    return await _act(request, db, principal, message_id, service.reject, "rejected", with_reason=True, now=now)


@router.post("/notifications/messages/{message_id}/retry", response_model=None)
async def retry_message(request: Request, message_id: int, db: DB, now: Now, principal: Manage) -> Response:
    return await _act(request, db, principal, message_id, service.retry, "queued", now=now)


@router.post("/notifications/messages/{message_id}/cancel", response_model=None)
async def cancel_message(request: Request, message_id: int, db: DB, now: Now, principal: Manage) -> Response:
    return await _act(request, db, principal, message_id, service.cancel, "cancelled", with_reason=True, now=now)


@router.get("/notifications/approvals", response_class=HTMLResponse)
def approvals_page(request: Request, db: DB, now: Now, principal: Approve, ok: str = "") -> HTMLResponse:
    return render(request, "notifications/approvals.html", {"rows": queries.approvals_queue(db, now=now), "ok": ok}, principal=principal)


# --- templates ------------------------------------------------------------------------------------
@router.get("/notifications/templates", response_class=HTMLResponse)
def templates_page(request: Request, db: DB, principal: View, event: str = "") -> HTMLResponse:
    return render(request, "notifications/templates.html", {"rows": templates.list_templates(db, event=event or None), "event": event},
                  principal=principal)


def _template_page(request: Request, db: DB, principal: Principal, template_id: int, *, values: dict[str, Any] | None = None,
                   error: str | None = None, ok: str | None = None, status_code: int = 200) -> HTMLResponse:
    tpl = templates.template_dict(templates.get_template(db, template_id=template_id))
    vals = values or {"subject": tpl["subject"], "body": tpl["body"], "sample_context": json.dumps(tpl["sample_context"], indent=2, default=str),
                      "version": tpl["version"]}
    pv = templates.preview(db, template_id=template_id, subject=vals["subject"], body=vals["body"], context=_parse_context(vals["sample_context"], quiet=True))
    return render(request, "notifications/template_edit.html", {"tpl": tpl, "values": vals, "preview": pv, "error": error, "ok": ok,
                                                                "history": events.history(db, entity_type="message_template", entity_id=template_id, limit=20)},
                  principal=principal, status_code=status_code)


def _parse_context(text: str, *, quiet: bool = False) -> dict[str, Any] | None:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        if quiet:
            return None
        raise InvalidInput(f"the sample context is not valid JSON: {exc.msg} (line {exc.lineno})", field="sample_context") from exc
    if not isinstance(value, dict):
        if quiet:
            return None
        raise InvalidInput("the sample context must be a JSON object", field="sample_context")
    return value


@router.get("/notifications/templates/{template_id}", response_class=HTMLResponse)
def template_page(request: Request, template_id: int, db: DB, principal: View, ok: str = "") -> HTMLResponse:
    return _template_page(request, db, principal, template_id, ok=ok or None)


@router.post("/notifications/templates/{template_id}", response_model=None)
async def template_save(request: Request, template_id: int, db: DB, now: Now, principal: EditTemplates) -> Response:
    form = await _form(request)
    values = {"subject": form.get("subject", ""), "body": form.get("body", ""), "sample_context": form.get("sample_context", "{}"),
              "version": form.get("version", "0")}
    try:
        version = int(values["version"]) if values["version"].isdigit() else -1
        templates.update_template(db, template_id=template_id, subject=values["subject"], body=values["body"],
                                  sample_context=_parse_context(values["sample_context"]), version=version, now=now, actor=principal.actor)
    except OpslineError as exc:
        db.rollback()
        return _template_page(request, db, principal, template_id, values=values, error=exc.detail, status_code=exc.status)
    return RedirectResponse(f"/notifications/templates/{template_id}?ok=saved", status_code=303)


@router.post("/notifications/templates/{template_id}/preview", response_class=HTMLResponse)
async def template_preview(request: Request, template_id: int, db: DB, principal: View) -> HTMLResponse:
    """Render unsaved text with the sample context (HTMX fragment); nothing is saved or sent."""
    form = await _form(request)
    try:
        ctx = _parse_context(form.get("sample_context", "{}"))
        pv = templates.preview(db, template_id=template_id, subject=form.get("subject"), body=form.get("body"), context=ctx)
    except InvalidInput as exc:
        pv = {"ok": False, "subject": "", "body": "", "error": exc.detail}
    return render(request, "notifications/_preview.html", {"preview": pv}, principal=principal)


@router.post("/notifications/templates/{template_id}/languages", response_model=None)
async def template_add_language(request: Request, template_id: int, db: DB, now: Now, principal: EditTemplates) -> Response:
    form = await _form(request)
    try:
        new_id = templates.add_language(db, template_id=template_id, language=form.get("language", ""), now=now, actor=principal.actor)
    except OpslineError as exc:
        db.rollback()
        return _template_page(request, db, principal, template_id, error=exc.detail, status_code=exc.status)
    return RedirectResponse(f"/notifications/templates/{new_id}?ok=created", status_code=303)


def _rules_page(request: Request, db: DB, principal: Principal, *, error: str | None = None, ok: str | None = None,
                status_code: int = 200) -> HTMLResponse:
    return render(request, "notifications/rules.html", {"rows": contacts.list_rules(db), "error": error, "ok": ok}, principal=principal,
                  status_code=status_code)


@router.get("/notifications/rules", response_class=HTMLResponse)
def rules_page(request: Request, db: DB, principal: View, ok: str = "") -> HTMLResponse:
    return _rules_page(request, db, principal, ok=ok or None)


def _opt_int(form: dict[str, str], key: str) -> int | None:
    v = form.get(key, "").strip()
    if not v:
        return None
    if not v.isdigit():
        raise InvalidInput(f"{key.replace('_', ' ')} must be a whole number", field=key)
    return int(v)


@router.post("/notifications/rules/{rule_id}", response_model=None)
async def rule_save(request: Request, rule_id: int, db: DB, now: Now, principal: Manage) -> Response:
    form = await _form(request)
    try:
        contacts.update_rule(db, rule_id=rule_id, max_contacts=_opt_int(form, "max_contacts"), period_days=_opt_int(form, "period_days"),
                             quiet_from=form.get("quiet_from", "").strip() or None, quiet_to=form.get("quiet_to", "").strip() or None,
                             active="active" in form, now=now, actor=principal.actor)
    except OpslineError as exc:
        db.rollback()
        return _rules_page(request, db, principal, error=exc.detail, status_code=exc.status)
    return RedirectResponse("/notifications/rules?ok=saved", status_code=303)


# --- account preferences --------------------------------------------------------------------------
@router.post("/notifications/accounts/{account_id}/preferences", response_model=None)
async def preferences_save(request: Request, account_id: int, db: DB, now: Now, principal: Prefs) -> Response:
    """The whole matrix is posted: a checked box `allow:<channel>:<category>` means allowed."""
    form = await _form(request)
    get_account(db, account_id=account_id)
    reason = form.get("reason") or None
    for ch in CHANNELS:
        for cat in CATEGORIES:
            contacts.set_preference(db, account_id=account_id, channel=ch, category=cat, opted_out=f"allow:{ch}:{cat}" not in form,
                                    now=now, actor=principal.actor, reason=reason)
    if form.get("language"):
        contacts.set_language(db, account_id=account_id, language=form["language"], now=now, actor=principal.actor)
    return RedirectResponse(f"/accounts/{account_id}#panel-messages", status_code=303)
