"""Logistics desk pages: the collections board, the collection list and detail (attempts, rebooking, receipt), the
booking page with its slot picker (and swaps of faulty devices), courier runs, and the clean-up checks with exports."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsline.core.errors import InvalidInput, NotFound, OpslineError
from opsline.core.exports import download_headers, export_table
from opsline.core.localtime import local_date
from opsline.customers import service as customers
from opsline.logistics import checks, queries, service
from opsline.logistics.models import COLLECTION, CONDITIONS
from opsline.partners import service as partners
from opsline.web.deps import DB, Now, Principal, Tz, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)

View = Annotated[Principal, Depends(require("logistics.view"))]
Book = Annotated[Principal, Depends(require("logistics.book"))]
Receive = Annotated[Principal, Depends(require("logistics.receive"))]
Checks = Annotated[Principal, Depends(require("logistics.checks"))]


def _back(url: str, **params: str) -> RedirectResponse:
    return RedirectResponse(url + ("?" + urlencode({k: v for k, v in params.items() if v}) if params else ""), status_code=303)


def _when(value: str, field: str = "slot_start") -> datetime:
    try:
        dt = datetime.fromisoformat((value or "").strip())
    except ValueError:
        raise InvalidInput(f"'{value}' is not a date and time", field=field) from None
    if dt.tzinfo is None:
        raise InvalidInput("the slot needs its timezone (choose one from the list)", field=field)
    return dt


@router.get("/logistics", response_class=HTMLResponse)
def board(request: Request, db: DB, now: Now, tz: Tz, principal: View, ok: str = "", error: str = "") -> HTMLResponse:
    ctx = queries.board(db, now=now, tz=tz)
    ctx |= {"couriers": partners.list_partners(db, kind="courier"), "ok": ok, "error": error,
            "run_slots": _run_slots(db, now=now, tz=tz) if principal.can("logistics.book") else []}
    return render(request, "logistics/board.html", ctx, principal=principal)


def _run_slots(db, *, now: datetime, tz) -> list[dict]:  # type: ignore[no-untyped-def]
    out = []
    for c in partners.list_partners(db, kind="courier"):
        try:
            out += [s for s in service.slots(db, courier_code=c["code"], from_date=local_date(now, tz), days=7, tz=tz) if s["start"] > now and s["free"]][:6]
        except OpslineError:
            continue
    return out


@router.get("/logistics/collections", response_class=HTMLResponse)
def collections(request: Request, db: DB, now: Now, tz: Tz, principal: View, state: str = "", courier: str = "", on: str = "", q: str = "",
                page: int = 1) -> HTMLResponse:
    try:
        day = date.fromisoformat(on) if on else None
    except ValueError:
        day = None
    ctx = queries.list_collections(db, state=state or None, courier_code=courier or None, on=day, tz=tz, q=q or None, page=page)
    ctx |= {"filters": {"state": state, "courier": courier, "on": on, "q": q}, "states": ["open"] + COLLECTION.state_values(),
            "couriers": partners.list_partners(db, kind="courier")}
    return render(request, "logistics/collections.html", ctx, principal=principal)


@router.get("/logistics/collections/{collection_id}", response_class=HTMLResponse)
def collection_detail(request: Request, collection_id: int, db: DB, now: Now, tz: Tz, principal: View, ok: str = "", error: str = "") -> HTMLResponse:
    ctx = queries.collection_page(db, collection_id=collection_id, actor=principal.actor)
    c = ctx["c"]
    slots = []
    if c["state"] in ("failed", "rejected") and principal.can("logistics.book"):
        slots = [s for s in service.slots(db, courier_code=c["courier_code"], from_date=local_date(now, tz), days=14, tz=tz) if s["start"] > now and s["free"]]
    return render(request, "logistics/collection.html", ctx | {"ok": ok, "error": error, "slots": slots, "conditions": CONDITIONS}, principal=principal)


@router.post("/logistics/collections/{collection_id}/attempt", response_model=None)
def attempt(collection_id: int, db: DB, now: Now, tz: Tz, principal: Book, outcome: Annotated[str, Form()] = "", note: Annotated[str, Form()] = "") -> RedirectResponse:
    url = f"/logistics/collections/{collection_id}"
    try:
        service.record_attempt(db, collection_id=collection_id, outcome=outcome, note=note or None, now=now, actor=principal.actor, tz=tz)
    except OpslineError as exc:
        db.rollback()
        return _back(url, error=exc.detail)
    return _back(url, ok=f"Attempt recorded: {outcome.replace('_', ' ')}")


@router.post("/logistics/collections/{collection_id}/rebook", response_model=None)
def rebook(collection_id: int, db: DB, now: Now, tz: Tz, principal: Book, slot_start: Annotated[str, Form()] = "", address: Annotated[str, Form()] = "",
           reason: Annotated[str, Form()] = "") -> RedirectResponse:
    url = f"/logistics/collections/{collection_id}"
    try:
        service.rebook_collection(db, collection_id=collection_id, slot_start=_when(slot_start), address=address or None, reason=reason or None,
                                  now=now, actor=principal.actor, tz=tz)
    except OpslineError as exc:
        db.rollback()
        return _back(url, error=exc.detail)
    return _back(url, ok="Collection rebooked")


@router.post("/logistics/collections/{collection_id}/cancel", response_model=None)
def cancel(collection_id: int, db: DB, now: Now, principal: Book, reason: Annotated[str, Form()] = "") -> RedirectResponse:
    url = f"/logistics/collections/{collection_id}"
    try:
        service.cancel_collection(db, collection_id=collection_id, reason=reason, now=now, actor=principal.actor)
    except OpslineError as exc:
        db.rollback()
        return _back(url, error=exc.detail)
    return _back(url, ok="Collection cancelled")


@router.post("/logistics/collections/{collection_id}/receive", response_model=None)
def receive(request: Request, collection_id: int, db: DB, now: Now, tz: Tz, principal: Receive, condition: Annotated[str, Form()] = "",
            note: Annotated[str, Form()] = "") -> RedirectResponse:
    url = f"/logistics/collections/{collection_id}"
    try:
        c = service.get_collection(db, collection_id=collection_id)
        ids = [i["equipment_id"] for i in c["items"] if i["received_at"] is None]
        out = service.receive_at_warehouse(db, equipment_ids=ids, condition=condition, collection_id=collection_id, note=note or None, now=now,
                                           actor=principal.actor, tz=tz)
    except OpslineError as exc:
        db.rollback()
        return _back(url, error=exc.detail)
    return _back(url, ok=f"Received {len(out['equipment_ids'])} device(s)" + (f"; {len(out['fees_credited'])} fee(s) credited back" if out["fees_credited"] else ""))


@router.get("/logistics/book", response_class=HTMLResponse)
def book_page(request: Request, db: DB, now: Now, tz: Tz, principal: Book, account: str = "", courier: str = "", start: str = "", ref: str = "",
              error: str = "", field: str = "") -> HTMLResponse:
    ctx: dict = {"account_key": account, "ref": ref, "error": error, "field": field, "couriers": partners.list_partners(db, kind="courier"),
                 "courier": courier, "account": None, "equipment": [], "slots": [], "key": f"web-{now.timestamp():.0f}-{principal.display_name}"}
    if account:
        try:
            acc_id = customers.resolve_account_id(db, key=account)
            a = customers.get_account(db, account_id=acc_id)
            sites = customers.account_360(db, account_id=acc_id)["sites"]
            site = sites[0] if sites else None
            ctx["account"] = {"id": a.id, "account_number": a.account_number, "name": a.name, "phone": a.phone or "",
                              "address": ", ".join(x for x in ((site["line1"], site.get("suburb"), site.get("city")) if site else
                                                               (a.billing_line1, a.billing_suburb, a.billing_city)) if x)}
            ctx["equipment"] = queries.account_equipment_for_booking(db, account_id=acc_id)
        except OpslineError as exc:
            ctx["error"], ctx["field"] = exc.detail, exc.field or "account"
    code = courier or (ctx["couriers"][0]["code"] if ctx["couriers"] else "")
    ctx["courier"] = code
    try:
        first = date.fromisoformat(start) if start else local_date(now, tz)
    except ValueError:
        first = local_date(now, tz)
    if code:
        try:
            ctx["slots"] = [s for s in service.slots(db, courier_code=code, from_date=first, days=14, tz=tz) if s["start"] > now]
        except OpslineError as exc:
            ctx["error"], ctx["field"] = exc.detail, exc.field or "courier_code"
    ctx["start"] = first.isoformat()
    ctx["next_start"] = (first + timedelta(days=14)).isoformat()
    return render(request, "logistics/book.html", ctx, principal=principal)


@router.post("/logistics/book", response_model=None)
async def book(request: Request, db: DB, now: Now, tz: Tz, principal: Book) -> RedirectResponse:
    form = await request.form()
    account = str(form.get("account") or "")
    back = {"account": account, "courier": str(form.get("courier_code") or ""), "ref": str(form.get("reference") or "")}
    try:
        acc_id = customers.resolve_account_id(db, key=account)
        ids = [int(v) for v in form.getlist("equipment_ids") if str(v).isdigit()]
        common = dict(slot_start=_when(str(form.get("slot_start") or "")), address=str(form.get("address") or ""),
                      contact_name=str(form.get("contact_name") or ""), contact_phone=str(form.get("contact_phone") or ""),
                      courier_code=str(form.get("courier_code") or "") or None, idempotency_key=str(form.get("idempotency_key") or ""),
                      now=now, actor=principal.actor, tz=tz)
        if form.get("swap_reason"):
            if len(ids) != 1:
                raise InvalidInput("a swap replaces one device: choose exactly one", field="equipment_ids")
            sw = service.swap_faulty_equipment(db, equipment_id=ids[0], reason=str(form.get("swap_reason")), reference=back["ref"] or None, **common)
            cid = sw["collection_id"]
        else:
            cid = service.book_collection(db, account_id=acc_id, equipment_ids=ids, reference=back["ref"] or None, **common)["id"]
    except OpslineError as exc:
        db.rollback()
        return _back("/logistics/book", **back, error=exc.detail, field=exc.field or "")
    return _back(f"/logistics/collections/{cid}", ok="Collection booked; the customer and the courier are told")


@router.post("/logistics/run", response_model=None)
def courier_run(db: DB, now: Now, tz: Tz, principal: Book, courier_code: Annotated[str, Form()] = "", slot_start: Annotated[str, Form()] = "",
                city: Annotated[str, Form()] = "") -> RedirectResponse:
    if "|" in slot_start:  # the board's picker sends "courier|slot start"
        courier_code, slot_start = slot_start.split("|", 1)
    try:
        out = service.book_courier_run(db, courier_code=courier_code, slot_start=_when(slot_start), city=city or None, now=now, actor=principal.actor, tz=tz)
    except OpslineError as exc:
        db.rollback()
        return _back("/logistics", error=exc.detail)
    return _back("/logistics", ok=f"Courier run booked: {out['booked']} collections, {out['equipment']} devices")


@router.get("/logistics/checks", response_class=HTMLResponse)
def checks_page(request: Request, db: DB, principal: Checks, key: str = "", ok: str = "") -> HTMLResponse:
    if key and key not in checks.CHECKS:
        raise NotFound(f"no clean-up check '{key}'", field="key")
    return render(request, "logistics/checks.html", checks.page(db, key=key or None) | {"ok": ok}, principal=principal)


@router.post("/logistics/checks/run", response_model=None)
def checks_run(db: DB, now: Now, principal: Checks) -> RedirectResponse:
    c = checks.run(db, now=now, actor=principal.actor)
    return _back("/logistics/checks", ok="Checks run: " + ", ".join(f"{checks.CHECKS[k][0]} {n}" for k, n in c.items()))


@router.get("/logistics/checks/{key}/export.{fmt}")
def checks_export(key: str, fmt: str, db: DB, principal: Checks) -> Response:
    if key not in checks.CHECKS:
        raise NotFound(f"no clean-up check '{key}'", field="key")
    rows = checks.rows(db, key=key, limit=None)
    filename, media, body = export_table(fmt, name=f"cleanup-{key}", header=["Id", "Account id", "Account", "Detail"],
                                         rows=[[r["entity_id"], r["account_id"], r["account_number"], r["detail"]] for r in rows])
    return Response(body, media_type=media, headers=download_headers(filename))
