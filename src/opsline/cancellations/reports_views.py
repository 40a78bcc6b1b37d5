"""Cancellations report pages beyond volumes and SLA: breaches per cause with the drill-down and the cause form,
prevention actions (list, add, update, move through their lifecycle), leakage to FNOs and equipment recovery, each
with its drill-down and CSV/Excel export. Thin: parse, call one service function, render or redirect."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from urllib.parse import quote_plus

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsline.cancellations import prevention, reports
from opsline.cancellations.models import STEPS
from opsline.core.errors import InvalidInput
from opsline.core.exports import Sheet, download_headers, export_sheets
from opsline.core.localtime import local_date
from opsline.web.deps import DB, Now, Principal, Tz, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)
View = Annotated[Principal, Depends(require("cancellations.view"))]
BREACH_PAGE = 100
Work = Annotated[Principal, Depends(require("cancellations.work"))]


def _date(raw: str, field: str) -> date | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"'{raw[:20]}' is not a date (YYYY-MM-DD)", field=field) from None


def _id(raw: str, field: str) -> int:
    raw = (raw or "").strip()
    if not raw.isdigit() or len(raw) > 12:
        raise InvalidInput(f"'{raw[:20]}' is not a number", field=field)
    return int(raw)


def _this_month(now, tz) -> str:  # type: ignore[no-untyped-def]
    return local_date(now, tz).strftime("%Y-%m")


def _money(m) -> object:  # type: ignore[no-untyped-def]
    return m.amount if m is not None else ""


def _download(fmt: str, name: str, sheets: list[Sheet]) -> Response:
    filename, media, body = export_sheets(fmt, name=name, sheets=sheets)
    return Response(body, media_type=media, headers=download_headers(filename))


# --- breaches per cause and their drill-down ---------------------------------------------------------------------

@router.get("/cancellations/reports/breaches", response_class=HTMLResponse)
def breaches_page(request: Request, db: DB, now: Now, tz: Tz, principal: View, cause: str = "", ok: str = "", page: int = 1) -> HTMLResponse:
    since = reports._since(now, tz, 12)
    page = max(1, min(page, 10_000))
    items = reports.breaches(db, since=since, now=now, tz=tz, cause=cause or None, limit=BREACH_PAGE + 1, offset=(page - 1) * BREACH_PAGE)
    return render(request, "cancellations/reports_breaches.html", {
        "items": items[:BREACH_PAGE], "more": len(items) > BREACH_PAGE, "page": page, "cause": cause, "since": since, "causes": prevention.causes(db),
        "ok": ok or None,
        "actions": prevention.list_actions(db, today=local_date(now, tz), cause_code=cause, state="open") if cause and cause != "none" else []},
        principal=principal)


@router.post("/cancellations/breaches/{step_id}/cause", response_model=None)
def set_cause(request: Request, step_id: int, db: DB, now: Now, principal: Work, cause_code: Annotated[str, Form()] = "",
              note: Annotated[str, Form()] = "", back: Annotated[str, Form()] = "") -> Response:
    r = prevention.set_breach_cause(db, step_id=step_id, cause_code=cause_code, note=note, now=now, actor=principal.actor)
    where = back if back in ("", "none") or back in {c["code"] for c in prevention.causes(db)} else ""
    return RedirectResponse(f"/cancellations/reports/breaches?cause={quote_plus(where)}&ok={quote_plus('Cause recorded: ' + r['cause_code'])}",
                            status_code=303)


@router.get("/cancellations/reports/breaches/export")
def breaches_export(db: DB, now: Now, tz: Tz, principal: View, format: str = "xlsx", cause: str = "") -> Response:
    since = reports._since(now, tz, 12)
    by = reports.breaches_by_cause(db, since=since, now=now, today=local_date(now, tz))
    items = reports.breaches(db, since=since, now=now, tz=tz, cause=cause or None, limit=5000)
    acts = prevention.list_actions(db, today=local_date(now, tz), cause_code=cause or None, limit=5000)
    return _download(format, "cancellation-breaches", [
        Sheet("Breaches by cause", ["cause code", "cause", "breaches", "still open", "actions open", "actions overdue"],
              [[c["cause_code"], c["cause"], c["count"], c["open"], c["actions_open"], c["actions_overdue"]] for c in by["items"]]),
        Sheet("Breaches", ["journey", "account", "step", "owner", "state", "due", "done", "hours late", "cause code", "recorded", "note"],
              [[b["reference"], b["account_number"], b["label"], b["owner"], b["state"], b["due_at"].isoformat() if b["due_at"] else "",
                b["done_at"].isoformat() if b["done_at"] else "", b["late_hours"], b["cause_code"] or "", "yes" if b["cause_recorded"] else "inferred",
                b["cause"]] for b in items]),
        Sheet("Prevention actions", ["id", "cause", "step", "action", "owner", "due", "state", "overdue", "outcome"],
              [[a["id"], a["cause"], a["step"], a["title"], a["owner"], a["due_date"].isoformat(), a["state"], "yes" if a["overdue"] else "", a["outcome"] or ""]
               for a in acts]),
    ])


# --- prevention actions ----------------------------------------------------------------------------------------------

@router.get("/cancellations/prevention", response_class=HTMLResponse)
def prevention_page(request: Request, db: DB, now: Now, tz: Tz, principal: View, cause: str = "", state: str = "open", ok: str = "") -> HTMLResponse:
    today = local_date(now, tz)
    if state not in ("", "all", "open", *prevention.PREVENTION_ACTION.state_values()):
        raise InvalidInput(f"unknown state '{state[:20]}'", field="state")
    items = prevention.list_actions(db, today=today, cause_code=cause or None, state=None if state in ("", "all") else state, actor=principal.actor)
    return render(request, "cancellations/prevention.html", {
        "items": items, "cause": cause, "state": state, "causes": prevention.causes(db), "steps": [(c, lbl) for c, lbl, _ in STEPS],
        "today": today, "ok": ok or None, "states": prevention.PREVENTION_ACTION.state_values()}, principal=principal)


@router.post("/cancellations/prevention", response_model=None)
def prevention_add(request: Request, db: DB, now: Now, principal: Work, cause_code: Annotated[str, Form()] = "", title: Annotated[str, Form()] = "",
                   owner: Annotated[str, Form()] = "", due_date: Annotated[str, Form()] = "", step_code: Annotated[str, Form()] = "") -> Response:
    a = prevention.add_action(db, cause_code=cause_code, title=title, owner=owner, due_date=_date(due_date, "due_date"), step_code=step_code or None,
                              now=now, actor=principal.actor)
    return RedirectResponse(f"/cancellations/prevention?ok={quote_plus('Action %d added' % a['id'])}", status_code=303)


@router.post("/cancellations/prevention/{action_id}", response_model=None)
def prevention_update(request: Request, action_id: int, db: DB, now: Now, principal: Work, title: Annotated[str, Form()] = "",
                      owner: Annotated[str, Form()] = "", due_date: Annotated[str, Form()] = "") -> Response:
    prevention.update_action(db, action_id=action_id, title=title, owner=owner, due_date=_date(due_date, "due_date"), now=now, actor=principal.actor)
    return RedirectResponse(f"/cancellations/prevention?ok={quote_plus('Action %d updated' % action_id)}", status_code=303)


@router.post("/cancellations/prevention/{action_id}/act", response_model=None)
def prevention_act(request: Request, action_id: int, db: DB, now: Now, principal: Work, action: Annotated[str, Form()] = "",
                   reason: Annotated[str, Form()] = "") -> Response:
    a = prevention.act(db, action_id=action_id, action=action, reason=reason, now=now, actor=principal.actor)
    return RedirectResponse(f"/cancellations/prevention?state=all&ok={quote_plus('Action %d is %s' % (action_id, a['state'].replace('_', ' ')))}",
                            status_code=303)


# --- leakage -------------------------------------------------------------------------------------------------------

@router.get("/cancellations/reports/leakage", response_class=HTMLResponse)
def leakage_page(request: Request, db: DB, now: Now, tz: Tz, principal: View) -> HTMLResponse:
    return render(request, "cancellations/reports_leakage.html", {"r": reports.leakage(db, now=now, tz=tz)}, principal=principal)


@router.get("/cancellations/reports/leakage/orders", response_class=HTMLResponse)
def leakage_orders_page(request: Request, db: DB, now: Now, tz: Tz, principal: View, month: str = "", partner: str = "") -> HTMLResponse:
    return render(request, "cancellations/reports_leakage_orders.html",
                  {"d": reports.leakage_orders(db, now=now, tz=tz, partner_code=partner, month=month or _this_month(now, tz))}, principal=principal)


@router.get("/cancellations/reports/leakage/export")
def leakage_export(db: DB, now: Now, tz: Tz, principal: View, format: str = "xlsx", month: str = "", partner: str = "") -> Response:
    r = reports.leakage(db, now=now, tz=tz)
    sheets = [Sheet("Leakage per FNO and month", ["month", "FNO", "orders", "days", "paid after effective date", "claimed", "credited", "net", "currency",
                                                  "still growing"],
                    [[i["month"], i["partner_code"], i["orders"], i["days"], _money(i["amount"]), _money(i["claimed"]), _money(i["credited"]), _money(i["net"]),
                      i["currency"], i["growing"]] for i in r["items"]], money_cols=frozenset({4, 5, 6, 7}))]
    if month:
        d = reports.leakage_orders(db, now=now, tz=tz, partner_code=partner, month=month, limit=10_000)
        sheets.append(Sheet("Orders", ["service order", "FNO", "journey", "account", "effective", "confirmed", "days", "amount", "currency"],
                            [[i["external_ref"], i["partner_code"], i["journey_reference"] or "", i["account_number"], str(i["requested_date"]),
                              str(i["confirmed_date"] or ""), i["days"], _money(i["amount"]), i["amount"].currency] for i in d["items"]], money_cols=frozenset({7})))
    return _download(format, "cancellation-leakage", sheets)


# --- equipment recovery ----------------------------------------------------------------------------------------------

@router.get("/cancellations/reports/equipment", response_class=HTMLResponse)
def equipment_page(request: Request, db: DB, now: Now, tz: Tz, principal: View) -> HTMLResponse:
    return render(request, "cancellations/reports_equipment.html", {"r": reports.equipment_recovery(db, now=now, tz=tz)}, principal=principal)


@router.get("/cancellations/reports/equipment/devices", response_class=HTMLResponse)
def equipment_devices_page(request: Request, db: DB, now: Now, tz: Tz, principal: View, month: str = "", fno: str | None = None,
                           courier: str | None = None) -> HTMLResponse:
    return render(request, "cancellations/reports_equipment_devices.html",
                  {"d": reports.equipment_devices(db, now=now, tz=tz, month=month or _this_month(now, tz), fno=fno, courier=courier)}, principal=principal)


@router.get("/cancellations/reports/equipment/export")
def equipment_export(db: DB, now: Now, tz: Tz, principal: View, format: str = "xlsx", month: str = "", fno: str | None = None,
                     courier: str | None = None) -> Response:
    r = reports.equipment_recovery(db, now=now, tz=tz)
    sheets = [Sheet("Recovery", ["month", "FNO", "courier", "due back", "returned", "still out", "recovery %", "value outstanding"],
                    [[i["month"], i["fno"], i["courier"] or "none booked", i["due"], i["back"], i["out"], i["rate"], _money(i["value"])] for i in r["items"]],
                    money_cols=frozenset({7}))]
    if month:
        d = reports.equipment_devices(db, now=now, tz=tz, month=month, fno=fno, courier=courier, limit=10_000)
        sheets.append(Sheet("Devices", ["serial", "model", "state", "account", "journey", "product end", "FNO", "courier", "collection", "value"],
                            [[i["serial_number"], i["model"], i["state"], i["account_number"], i["journey_reference"] or "", str(i["end_date"]), i["fno"],
                              i["courier"], i["collection_number"] or "", _money(i["value"])] for i in d["items"]], money_cols=frozenset({9})))
    return _download(format, "cancellation-equipment-recovery", sheets)
