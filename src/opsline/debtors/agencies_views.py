"""Collection agency pages: placements with filters (bulk recall), one placement with its recoveries and lifecycle
buttons, the hand-over (dry run, then place), a batch and its file in the agency's layout, recovery file upload and the
imported files, agency terms (a debtors manager edits them), and the "Hand-over recoveries" report with its exports.
Thin: parse, call one service, render. Errors are the service's OpslineError (problem+json), except the upload, which
shows its error on the page like the payments desk."""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Iterable, Sequence

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsline.core.errors import InvalidInput, OpslineError
from opsline.core.exports import download_headers, export_table
from opsline.core.localtime import local_date
from opsline.debtors import agencies, agencies_recoveries, agencies_report
from opsline.debtors.agencies import major
from opsline.debtors.agency_models import PlacementState
from opsline.web.deps import DB, Now, Principal, Tz, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)
View = Annotated[Principal, Depends(require("debtors.view"))]
Handover = Annotated[Principal, Depends(require("debtors.handover"))]
Terms = Annotated[Principal, Depends(require("debtors.agency"))]
BASE = "/debtors/agencies"
PAGE = 100
MAX_UPLOAD = 20_000_000


def _download(fmt: str, *, name: str, header: Sequence[str], rows: Iterable[Sequence[Any]], money_cols: Iterable[int] = ()) -> Response:
    filename, media, body = export_table(fmt, name=name, header=header, rows=rows, money_cols=money_cols)
    return Response(body, media_type=media, headers=download_headers(filename))


def _page(page: int) -> int:
    if page < 1:
        raise InvalidInput("page must be 1 or more", field="page")
    return (page - 1) * PAGE


def _int(raw: str, field: str) -> int:
    raw = (raw or "").strip().upper().removeprefix("PL-")
    if not raw.isdigit() or len(raw) > 15:
        raise InvalidInput(f"'{raw}' is not a placement number", field=field)
    return int(raw)


# --- placements ---------------------------------------------------------------------------------------------------------

@router.get(BASE, response_class=HTMLResponse)
def placements_page(request: Request, db: DB, principal: View, agency: str = "", state: str = "", month: str = "", account: str = "", batch: str = "",
                    page: int = 1, ok: str = "") -> HTMLResponse:
    f = agencies.parse_filter(agency=agency, state=state, month=month, account=account, batch=batch)
    data = agencies.list_placements(db, filters=f, limit=PAGE, offset=_page(page))
    qs = f"agency={f.agency}&state={f.state}&month={f.month}&account={f.account}&batch={f.batch_id or ''}"
    return render(request, "debtors/agencies/list.html", {
        "data": data, "f": f, "qs": qs, "agencies": agencies.list_agencies(db), "states": [s.value for s in PlacementState],
        "pager": {"page": page, "pages": max(1, -(-data["count"] // PAGE)), "count": data["count"]}, "batches": agencies.list_batches(db),
        "ok": ok or None}, principal=principal)


PLACEMENT_HEADER = ["Placement", "Batch", "Account", "Name", "Agency", "State", "Handed over on", "Oldest due", "Age (days)", "Handed over", "Written off",
                    "On the books", "Recovered", "Of it written-off debt", "Outstanding", "Commission %", "Commission", "Currency", "Closed", "Reason"]


@router.get(f"{BASE}/export")
def placements_export(db: DB, principal: View, agency: str = "", state: str = "", month: str = "", account: str = "", batch: str = "",
                      format: str = "xlsx") -> Response:
    f = agencies.parse_filter(agency=agency, state=state, month=month, account=account, batch=batch)
    data = agencies.list_placements(db, filters=f, limit=None)
    rows = ([r["ref"], r["batch_ref"], r["account_number"], r["name"], r["agency_name"], r["state"], r["placed_on"], r["oldest_due"], r["age_days"],
             *[major(r[k], r["currency"]) for k in ("amount_minor", "written_off_minor", "on_book_minor", "recovered_minor", "bad_debt_recovered_minor",
                                                    "outstanding_minor")],
             r["commission_percent"], major(r["commission_minor"], r["currency"]), r["currency"], r["closed_at"], r["close_reason"]] for r in data["rows"])
    return _download(format, name=f"agency-placements-{f.agency or 'all'}-{f.month or 'all'}", header=PLACEMENT_HEADER, rows=rows,
                     money_cols=(*range(9, 15), 16))


@router.get(f"{BASE}/placements/{{placement_id}}", response_class=HTMLResponse)
def placement_page(request: Request, placement_id: int, db: DB, principal: View, ok: str = "") -> HTMLResponse:
    return render(request, "debtors/agencies/detail.html", {"p": agencies.get_placement(db, placement_id=placement_id, actor=principal.actor),
                                                             "ok": ok or None}, principal=principal)


@router.post(f"{BASE}/placements/{{placement_id}}/recall", response_model=None)
def recall_one(request: Request, placement_id: int, db: DB, now: Now, principal: Handover, reason: Annotated[str, Form()] = "") -> Response:
    agencies.recall(db, placement_ids=[placement_id], reason=reason, now=now, actor=principal.actor)
    return RedirectResponse(f"{BASE}/placements/{placement_id}?ok=Recalled;+the+agency+is+told+by+email", status_code=303)


@router.post(f"{BASE}/placements/{{placement_id}}/return", response_model=None)
def returned(request: Request, placement_id: int, db: DB, now: Now, principal: Handover, reason: Annotated[str, Form()] = "") -> Response:
    agencies.mark_returned(db, placement_id=placement_id, reason=reason, now=now, actor=principal.actor)
    return RedirectResponse(f"{BASE}/placements/{placement_id}?ok=Recorded+as+returned+by+the+agency", status_code=303)


@router.post(f"{BASE}/recall", response_model=None)
def recall_bulk(request: Request, db: DB, now: Now, principal: Handover, placement_id: Annotated[list[str], Form()] = [],  # noqa: B006
                reason: Annotated[str, Form()] = "") -> Response:
    res = agencies.recall(db, placement_ids=[_int(p, "placement_id") for p in placement_id], reason=reason, now=now, actor=principal.actor)
    return RedirectResponse(f"{BASE}?ok={res['recalled']}+placements+recalled,+{res['left_alone']}+no+longer+with+an+agency", status_code=303)


# --- hand-over ----------------------------------------------------------------------------------------------------------

@router.get(f"{BASE}/handover", response_class=HTMLResponse)
def handover_page(request: Request, db: DB, now: Now, tz: Tz, principal: Handover, agency: str = "", source: str = "both", accounts: str = "",
                  min_amount: str = "", min_days: str = "0", check: str = "") -> HTMLResponse:
    """The hand-over form; with ?check=1 the dry run: how many accounts, how much, who is left out and why."""
    listed = agencies.list_agencies(db)
    preview = None
    if check:
        code = agency or (listed[0]["code"] if listed else "")
        cur = next((a["currency"] for a in listed if a["code"] == code), "ZAR")
        sel = agencies.parse_selection(source=source, accounts=accounts, min_amount=min_amount, min_days=min_days, currency=cur)
        preview = agencies.dry_run(db, agency=code, selection=sel, today=local_date(now, tz), now=now)
        db.rollback()  # the dry run's temp tables
    return render(request, "debtors/agencies/handover.html", {
        "agencies": listed, "sources": agencies.SOURCES, "preview": preview, "token": secrets.token_urlsafe(16),
        "f": {"agency": agency, "source": source, "accounts": accounts, "min_amount": min_amount, "min_days": min_days}}, principal=principal)


@router.post(f"{BASE}/handover", response_model=None)
def handover(request: Request, db: DB, now: Now, tz: Tz, principal: Handover, agency: Annotated[str, Form()] = "", source: Annotated[str, Form()] = "both",
             accounts: Annotated[str, Form()] = "", min_amount: Annotated[str, Form()] = "", min_days: Annotated[str, Form()] = "0",
             token: Annotated[str, Form()] = "") -> Response:
    terms = agencies.get_terms(db, code=agency)
    sel = agencies.parse_selection(source=source, accounts=accounts, min_amount=min_amount, min_days=min_days, currency=terms["currency"])
    b = agencies.hand_over(db, agency=agency, selection=sel, today=local_date(now, tz), now=now, actor=principal.actor, idempotency_key=token or None)
    return RedirectResponse(f"{BASE}/batches/{b.id}?ok={b.accounts}+accounts+handed+over+to+{terms['name'].replace(' ', '+')}", status_code=303)


@router.get(f"{BASE}/batches/{{batch_id}}", response_class=HTMLResponse)
def batch_page(request: Request, batch_id: int, db: DB, principal: View, ok: str = "") -> HTMLResponse:
    return render(request, "debtors/agencies/batch.html", {"b": agencies.get_batch(db, batch_id=batch_id), "ok": ok or None}, principal=principal)


@router.get(f"{BASE}/batches/{{batch_id}}/export")
def batch_export(db: DB, batch_id: int, principal: Handover, format: str = "") -> Response:
    """The file to send the agency: its layout, its format unless `format` asks for csv or xlsx."""
    filename, media, body = agencies.export_batch(db, batch_id=batch_id, fmt=format or None)
    return Response(body, media_type=media, headers=download_headers(filename))


# --- recovery files -----------------------------------------------------------------------------------------------------

def _recoveries(request: Request, db: DB, principal: Principal, *, error: str | None = None, status: int = 200, result: dict[str, Any] | None = None,
                agency: str = "") -> HTMLResponse:
    return render(request, "debtors/agencies/recoveries.html", {"files": agencies_recoveries.list_files(db), "agencies": agencies.list_agencies(db),
                                                                 "error": error, "result": result, "agency": agency}, status_code=status, principal=principal)


@router.get(f"{BASE}/recoveries", response_class=HTMLResponse)
def recoveries_page(request: Request, db: DB, principal: View) -> HTMLResponse:
    return _recoveries(request, db, principal)


@router.post(f"{BASE}/recoveries", response_class=HTMLResponse)
async def recoveries_upload(request: Request, db: DB, now: Now, tz: Tz, principal: Handover, file: Annotated[UploadFile, File()],
                            agency: Annotated[str, Form()] = "") -> HTMLResponse:
    data = await file.read(MAX_UPLOAD + 1)
    try:
        if len(data) > MAX_UPLOAD:
            raise InvalidInput(f"{file.filename}: larger than {MAX_UPLOAD // 1_000_000} MB; use `opsline agency-recoveries`", field="file")
        res = agencies_recoveries.import_recoveries(db, agency=agency, data=data, filename=file.filename or "upload", today=local_date(now, tz), now=now,
                                                    actor=principal.actor)
    except OpslineError as exc:
        db.rollback()
        return _recoveries(request, db, principal, error=exc.detail, status=exc.status, agency=agency)
    return _recoveries(request, db, principal, result=res, agency=agency)


@router.get(f"{BASE}/recoveries/{{file_id}}", response_class=HTMLResponse)
def recovery_file_page(request: Request, file_id: int, db: DB, principal: View) -> HTMLResponse:
    return render(request, "debtors/agencies/recovery_file.html", {"f": agencies_recoveries.get_file(db, file_id=file_id)}, principal=principal)


# --- terms --------------------------------------------------------------------------------------------------------------

@router.get(f"{BASE}/terms", response_class=HTMLResponse)
def terms_page(request: Request, db: DB, principal: View, ok: str = "") -> HTMLResponse:
    return render(request, "debtors/agencies/terms.html", {"agencies": agencies.list_agencies(db), "fields": agencies.FIELDS, "ok": ok or None},
                  principal=principal)


@router.get(f"{BASE}/terms/{{code}}", response_class=HTMLResponse)
def terms_edit_page(request: Request, code: str, db: DB, principal: Terms) -> HTMLResponse:
    return render(request, "debtors/agencies/terms_edit.html", {"t": agencies.get_terms(db, code=code), "fields": agencies.FIELDS,
                                                                 "recovery_fields": agencies.RECOVERY_FIELDS}, principal=principal)


@router.post(f"{BASE}/terms/{{code}}", response_model=None)
def terms_save(request: Request, code: str, db: DB, now: Now, principal: Terms, export_format: Annotated[str, Form()] = "",
               export_delimiter: Annotated[str, Form()] = "", export_date_format: Annotated[str, Form()] = "", export_columns: Annotated[str, Form()] = "",
               commission_basis: Annotated[str, Form()] = "", bands: Annotated[str, Form()] = "", recovery_format: Annotated[str, Form()] = "",
               recovery_delimiter: Annotated[str, Form()] = "", recovery_date_format: Annotated[str, Form()] = "",
               recovery_account: Annotated[str, Form()] = "", recovery_amount: Annotated[str, Form()] = "", recovery_paid_on: Annotated[str, Form()] = "",
               recovery_agency_ref: Annotated[str, Form()] = "", version: Annotated[str, Form()] = "0") -> Response:
    if not version.strip().isdigit():
        raise InvalidInput(f"'{version}' is not a version number", field="version")
    t = agencies.save_terms(db, code=code, export_format=export_format, export_delimiter=export_delimiter, export_date_format=export_date_format,
                            export_columns=export_columns, commission_basis=commission_basis, bands=bands, recovery_format=recovery_format,
                            recovery_delimiter=recovery_delimiter, recovery_date_format=recovery_date_format,
                            recovery_columns={"account": recovery_account, "amount": recovery_amount, "paid_on": recovery_paid_on,
                                              "agency_ref": recovery_agency_ref}, version=int(version), now=now, actor=principal.actor)
    return RedirectResponse(f"{BASE}/terms?ok={t['name'].replace(' ', '+')}+terms+saved+(version+{t['version']})", status_code=303)


# --- the report ---------------------------------------------------------------------------------------------------------

@router.get("/debtors/reports/handover", response_class=HTMLResponse)
def report_page(request: Request, db: DB, principal: View, agency: str = "") -> HTMLResponse:
    return render(request, "debtors/agencies/report.html", {"data": agencies_report.recoveries_report(db, agency=agency), "agency": agency,
                                                             "agencies": agencies.list_agencies(db), "tab": "handover"}, principal=principal)


REPORT_HEADER = ["Agency", "Currency", "Month handed over", "Placements", "Handed over", "Recovered", "Of it written-off debt", "Recovery rate %",
                 "Commission", "Net (recovered less commission)", "Still with the agency", "Paid up"]


@router.get("/debtors/reports/handover/export")
def report_export(db: DB, principal: View, agency: str = "", format: str = "xlsx") -> Response:
    data = agencies_report.recoveries_report(db, agency=agency)

    def row(r: dict[str, Any], month: str) -> list[Any]:
        c = r["currency"]
        return [r["agency_name"], c, month, r["placements"], major(r["handed_minor"], c), major(r["recovered_minor"], c), major(r["bad_debt_minor"], c),
                r["rate_pct"], major(r["commission_minor"], c), major(r["net_minor"], c), major(r["open_minor"], c), r["paid_up"]]

    rows = [row(r, r["month"]) for r in data["rows"]] + [row(t, "all months") for t in data["totals"]]
    return _download(format, name=f"handover-recoveries-{agency or 'all'}", header=REPORT_HEADER, rows=rows, money_cols=(4, 5, 6, 8, 9, 10))
