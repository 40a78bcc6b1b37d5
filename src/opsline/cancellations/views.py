"""Cancellations desk pages: the board with the day plan, a journey's detail (checklist, amounts, timeline, the
preview before confirming), the new-journey page (from the account's "Cancel service"), and the actions. Thin: parse,
call one service function, redirect. Errors are the service's OpslineError: problem+json or the error page."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from urllib.parse import quote_plus

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsline.cancellations import followups, queries, reports, service
from opsline.core.errors import InvalidInput, OpslineError
from opsline.core.exports import Sheet, download_headers, export_sheets
from opsline.core.localtime import local_date
from opsline.web.deps import DB, Now, Principal, Tz, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)
View = Annotated[Principal, Depends(require("cancellations.view"))]
Ask = Annotated[Principal, Depends(require("cancellations.request"))]
Work = Annotated[Principal, Depends(require("cancellations.work"))]


def _date(raw: str, field: str) -> date | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"'{raw}' is not a date (YYYY-MM-DD)", field=field) from None


def _int(raw: str, field: str) -> int | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 12:
        raise InvalidInput(f"'{raw}' is not a number", field=field)
    return int(raw)


def _back(journey_id: int, msg: str) -> RedirectResponse:
    return RedirectResponse(f"/cancellations/{journey_id}?ok={quote_plus(msg)}", status_code=303)


@router.get("/cancellations", response_class=HTMLResponse)
def board_page(request: Request, db: DB, now: Now, tz: Tz, principal: View, partner: str = "", step: str = "", breaching: str = "",
               reason: str = "", page: int = 1, ok: str = "") -> HTMLResponse:
    b = queries.board(db, now=now, tz=tz, partner=partner or None, step=step or None, breaching=bool(breaching), reason=reason or None,
                      page=max(1, min(page, 100_000)))
    return render(request, "cancellations/board.html", {"board": b, "plan": queries.day_plan(db, now=now, tz=tz), "ok": ok or None,
                                                        "today": local_date(now, tz)}, principal=principal)


@router.get("/cancellations/reports", response_class=HTMLResponse)
def reports_page(request: Request, db: DB, now: Now, tz: Tz, principal: View) -> HTMLResponse:
    return render(request, "cancellations/reports.html", {"r": reports.report(db, now=now, tz=tz, sections=("volume",))}, principal=principal)


@router.get("/cancellations/reports/sla", response_class=HTMLResponse)
def reports_sla_page(request: Request, db: DB, now: Now, tz: Tz, principal: View) -> HTMLResponse:
    return render(request, "cancellations/reports.html", {"r": reports.report(db, now=now, tz=tz, sections=("sla",))}, principal=principal)


@router.get("/cancellations/reports/export")
def reports_export(db: DB, now: Now, tz: Tz, principal: View, format: str = "xlsx") -> Response:
    r = reports.report(db, now=now, tz=tz, breach_limit=5000)
    reasons = list(r["by_reason"]["reasons"].items())
    sheets = [
        Sheet("By reason and month", ["month"] + [label for _, label in reasons],
              [[m] + [r["by_reason"]["table"][m].get(code, 0) for code, _ in reasons] for m in r["by_reason"]["months"]]),
        Sheet("SLA per step", ["step", "done", "done late", "open", "open overdue", "compliance %"],
              [[s["label"], s["done"], s["done_late"], s["open"], s["overdue"], s["compliance"]] for s in r["sla"]]),
        Sheet("Breaches", ["journey", "step", "owner", "due", "done", "hours late", "cause"],
              [[b["reference"], b["label"], b["owner"], b["due_at"].isoformat() if b["due_at"] else "", b["done_at"].isoformat() if b["done_at"] else "",
                b["late_hours"], b["cause"]] for b in r["breaches"]]),
        Sheet("FNO deactivations", ["fno", "confirmed", "after the SLA", "waiting"], [[f["partner_code"], f["confirmed"], f["late"], f["waiting"]] for f in r["fno"]]),
    ]
    filename, media, body = export_sheets(format, name="cancellations", sheets=sheets)
    return Response(body, media_type=media, headers=download_headers(filename))


@router.get("/cancellations/new", response_class=HTMLResponse)
def new_page(request: Request, db: DB, now: Now, tz: Tz, principal: Ask, account_id: int, product_id: int = 0, requested_date: str = "") -> HTMLResponse:
    form = queries.new_form(db, account_id=account_id)
    pv, error = None, None
    if product_id:
        try:
            pv = service.preview(db, product_id=product_id, notice_date=local_date(now, tz), requested_date=_date(requested_date, "requested_date"))
        except OpslineError as exc:
            error = str(exc)
    return render(request, "cancellations/new.html", {"form": form, "product_id": product_id, "preview": pv, "error": error,
                                                      "requested_date": requested_date}, principal=principal)


@router.post("/cancellations", response_model=None)
def create(request: Request, db: DB, now: Now, tz: Tz, principal: Ask, account_id: Annotated[str, Form()] = "", product_id: Annotated[str, Form()] = "",
           reason_code: Annotated[str, Form()] = "", requester: Annotated[str, Form()] = "account_holder", verified: Annotated[str, Form()] = "",
           requester_name: Annotated[str, Form()] = "", documents: Annotated[str, Form()] = "", requested_date: Annotated[str, Form()] = "",
           notes: Annotated[str, Form()] = "", kind: Annotated[str, Form()] = "cancellation", new_site_id: Annotated[str, Form()] = "") -> Response:
    acc = _int(account_id, "account_id")
    prod = _int(product_id, "product_id")
    if acc is None or prod is None:
        raise InvalidInput("choose the account and the product to cancel", field="product_id" if acc else "account_id")
    j = service.request_cancellation(db, account_id=acc, product_id=prod, reason_code=reason_code, requester=requester, verified=bool(verified),
                                     requester_name=requester_name, documents=documents, requested_date=_date(requested_date, "requested_date"),
                                     notes=notes, kind=kind, new_site_id=_int(new_site_id, "new_site_id"), now=now, tz=tz, actor=principal.actor)
    return _back(j.id, f"Journey {j.reference} opened")


@router.get("/cancellations/{journey_id}", response_class=HTMLResponse)
def detail_page(request: Request, journey_id: int, db: DB, now: Now, tz: Tz, principal: View, ok: str = "", requested_date: str = "") -> HTMLResponse:
    d = queries.detail(db, journey_id=journey_id, now=now, tz=tz, actor=principal.actor)
    pv, error, offers = None, None, []
    if d["state"] in ("requested", "retention"):
        try:
            pv = service.journey_preview(db, journey_id=journey_id, requested_date=_date(requested_date, "requested_date"))
        except OpslineError as exc:
            error = str(exc)
        if d["kind"] == "cancellation" and d["retention_outcome"] is None:
            offers = service.retention_offers(db, product_id=d["product_id"], on=local_date(now, tz))
    collection = followups.collection_form(db, journey_id=journey_id, now=now, tz=tz) if d["state"] == "equipment_collection" else None
    final = None
    if d["state"] in ("final_billing", "equipment_collection", "deactivation_confirmed") and any(
            s["code"] == "final_account" and s["state"] == "open" for s in d["steps"]):
        try:
            final = followups.final_account_quote(db, journey_id=journey_id, now=now)
        except OpslineError as exc:
            final = {"error": str(exc)}
    return render(request, "cancellations/detail.html", {"j": d, "preview": pv, "error": error, "offers": offers, "ok": ok or None,
                                                         "requested_date": requested_date, "collection": collection, "final": final}, principal=principal)


@router.post("/cancellations/{journey_id}/retention", response_model=None)
def retention(request: Request, journey_id: int, db: DB, now: Now, tz: Tz, principal: Work, offer: Annotated[str, Form()] = "",
              outcome: Annotated[str, Form()] = "", offering_id: Annotated[str, Form()] = "") -> Response:
    j = service.record_retention(db, journey_id=journey_id, offer=offer, outcome=outcome, offering_id=_int(offering_id, "offering_id"), now=now, tz=tz,
                                 actor=principal.actor)
    return _back(j.id, f"Retention {outcome.replace('_', ' ')}")


@router.post("/cancellations/{journey_id}/confirm", response_model=None)
def confirm(request: Request, journey_id: int, db: DB, now: Now, tz: Tz, principal: Work, requested_date: Annotated[str, Form()] = "",
            waive: Annotated[str, Form()] = "", waiver_reason: Annotated[str, Form()] = "") -> Response:
    j = service.confirm(db, journey_id=journey_id, requested_date=_date(requested_date, "requested_date"), waive=bool(waive), waiver_reason=waiver_reason,
                        now=now, tz=tz, actor=principal.actor)
    return _back(j.id, f"Confirmed: effective {j.effective_date}")


@router.post("/cancellations/{journey_id}/withdraw", response_model=None)
def withdraw(request: Request, journey_id: int, db: DB, now: Now, tz: Tz, principal: Work, reason: Annotated[str, Form()] = "") -> Response:
    j = service.withdraw(db, journey_id=journey_id, reason=reason, now=now, tz=tz, actor=principal.actor)
    return _back(j.id, "Withdrawn")


@router.post("/cancellations/{journey_id}/fno-confirmation", response_model=None)
def fno_confirmation(request: Request, journey_id: int, db: DB, now: Now, tz: Tz, principal: Work, line_ref: Annotated[str, Form()] = "",
                     confirmed_date: Annotated[str, Form()] = "") -> Response:
    when = _date(confirmed_date, "confirmed_date")
    if when is None:
        raise InvalidInput("give the date the FNO ceased the line", field="confirmed_date")
    j = service.record_fno_confirmation(db, journey_id=journey_id, line_ref=line_ref, confirmed_date=when, now=now, tz=tz, actor=principal.actor)
    return _back(j.id, "FNO confirmation recorded")


@router.post("/cancellations/{journey_id}/steps/{code}", response_model=None)
def step(request: Request, journey_id: int, code: str, db: DB, now: Now, tz: Tz, principal: Work, note: Annotated[str, Form()] = "",
         action: Annotated[str, Form()] = "complete") -> Response:
    j = service.complete_step(db, journey_id=journey_id, code=code, note=note, skip=action == "skip", now=now, tz=tz, actor=principal.actor)
    return _back(j.id, "Step updated")


@router.post("/cancellations/{journey_id}/close", response_model=None)
def close(request: Request, journey_id: int, db: DB, now: Now, principal: Work) -> Response:
    j = service.close(db, journey_id=journey_id, now=now, actor=principal.actor)
    return _back(j.id, "Journey closed")


@router.post("/cancellations/bulk", response_model=None)
def bulk(request: Request, db: DB, now: Now, tz: Tz, principal: Work, action: Annotated[str, Form()] = "", ids: Annotated[list[str], Form()] = [],  # noqa: B006
         note: Annotated[str, Form()] = "") -> Response:
    chosen = [i for i in (_int(x, "ids") for x in ids) if i is not None]
    if not chosen:
        raise InvalidInput("tick at least one journey", field="ids")
    if action == "close":
        res = service.close_many(db, journey_ids=chosen, now=now, actor=principal.actor)
        msg = f"Closed {len(res['closed'])}; {len(res['refused'])} refused" + (f": {res['refused'][0]}" if res["refused"] else "")
    elif action in ("final_account", "equipment"):
        done, refused = 0, []
        for jid in chosen:
            try:
                with db.begin_nested():
                    service.complete_step(db, journey_id=jid, code=action, note=note, now=now, tz=tz, actor=principal.actor)
                done += 1
            except OpslineError as exc:
                refused.append(str(exc))
        msg = f"{done} step(s) done; {len(refused)} refused" + (f": {refused[0]}" if refused else "")
    else:
        raise InvalidInput("action must be close, final_account or equipment", field="action")
    return RedirectResponse(f"/cancellations?ok={quote_plus(msg[:300])}", status_code=303)


@router.post("/cancellations/escalate", response_model=None)
def escalate(request: Request, db: DB, now: Now, tz: Tz, principal: Work) -> Response:
    res = service.escalate(db, now=now, tz=tz, actor=principal.actor)
    return RedirectResponse(f"/cancellations?ok={res['flagged']}+step(s)+flagged+at+risk", status_code=303)


@router.post("/cancellations/{journey_id}/collection", response_model=None)
def book_collection(request: Request, journey_id: int, db: DB, now: Now, tz: Tz, principal: Work, slot_start: Annotated[str, Form()] = "",
                    address: Annotated[str, Form()] = "", contact_name: Annotated[str, Form()] = "", contact_phone: Annotated[str, Form()] = "",
                    courier_code: Annotated[str, Form()] = "") -> Response:
    try:
        start = datetime.fromisoformat(slot_start.strip())
    except ValueError:
        raise InvalidInput("choose one of the courier's slots", field="slot_start") from None
    if start.tzinfo is None:
        raise InvalidInput("the slot needs its time zone", field="slot_start")
    c = followups.book_collection(db, journey_id=journey_id, slot_start=start, address=address, contact_name=contact_name, contact_phone=contact_phone,
                                  courier_code=courier_code or None, now=now, tz=tz, actor=principal.actor)
    return _back(journey_id, f"Collection {c.get('number', '')} booked")


@router.post("/cancellations/{journey_id}/final-account", response_model=None)
def issue_final_account(request: Request, journey_id: int, db: DB, now: Now, tz: Tz, principal: Work) -> Response:
    res = followups.issue_final_account(db, journey_id=journey_id, now=now, tz=tz, actor=principal.actor)
    return _back(journey_id, f"Final account {res['reference']} issued{(': ' + res['number']) if res.get('number') else ''}")
