"""IFRS 9 provision pages (/debtors/provision: last month's provision, roll-rate matrix, loss rates, movement, history
sources; running, re-running, the forward-looking adjustment and the history import for `debtors.provision`), the
accounts behind a provision line, finance's workbook, and the roll-rate and promises reports. Thin: parse, call one
service, render. Viewing and exporting need `debtors.view`."""

from __future__ import annotations

from typing import Annotated, Any, Iterable, Sequence

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from opsline.config import DEFAULT_CURRENCY
from opsline.core.errors import InvalidInput, OpslineError
from opsline.core.exports import download_headers, export_sheets, export_table
from opsline.core.money import Money
from opsline.debtors import provision
from opsline.debtors.reports import promises, rollrates
from opsline.debtors.provision_models import BUCKETS
from opsline.web.deps import DB, Now, Principal, Tz, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)
View = Annotated[Principal, Depends(require("debtors.view"))]
Provide = Annotated[Principal, Depends(require("debtors.provision"))]
BASE = "/debtors/provision"
REPORTS = "/debtors/reports"
PAGE = 100
LABELS = provision.BUCKET_LABELS


def _major(minor: int, currency: str) -> Any:
    return Money.from_minor(int(minor), currency).amount


def _download(fmt: str, *, name: str, header: Sequence[str], rows: Iterable[Sequence[Any]], money_cols: Iterable[int] = ()) -> Response:
    filename, media, body = export_table(fmt, name=name, header=header, rows=rows, money_cols=money_cols)
    return Response(body, media_type=media, headers=download_headers(filename))


def _page(page: int) -> int:
    if page < 1:
        raise InvalidInput("page must be 1 or more", field="page")
    return (page - 1) * PAGE


def _pager(count: int, page: int) -> dict[str, Any]:
    return {"page": page, "pages": max(1, -(-count // PAGE)), "count": count}


def _month_or_last(raw: str, *, now: Any, tz: Any) -> Any:
    return provision.parse_month(raw) if raw.strip() else provision.last_ended_month(now=now, tz=tz)


def _provision_page(request: Request, db: Session, principal: Principal, now: Any, tz: Any, *, month: Any, ok: str | None = None,
                    error: str | None = None, error_field: str | None = None, status: int = 200, form: dict[str, str] | None = None) -> HTMLResponse:
    rep = provision.get_report(db, month=month)
    ctx = {"month": provision.month_text(month), "rep": rep, "runs": provision.list_runs(db), "history": provision.history_summary(db, now=now, tz=tz),
           "adjustments": provision.list_adjustments(db), "in_effect": provision.adjustments_for(db, month=month),
           "segments": provision._segments(db), "buckets": [{"key": b, "label": LABELS[b]} for b in BUCKETS], "next": provision.NEXT,
           "can_run": principal.can("debtors.provision"), "ok": ok, "error": error, "error_field": error_field, "form": form or {},
           "last_month": provision.month_text(provision.last_ended_month(now=now, tz=tz)), "lookback": provision.LOOKBACK}
    return render(request, "debtors/provision/index.html", ctx, status_code=status, principal=principal)


@router.get(BASE, response_class=HTMLResponse)
def provision_page(request: Request, db: DB, now: Now, tz: Tz, principal: View, month: str = "", ok: str = "") -> HTMLResponse:
    return _provision_page(request, db, principal, now, tz, month=_month_or_last(month, now=now, tz=tz), ok=ok or None)


@router.post(f"{BASE}/run", response_model=None)
def run(request: Request, db: DB, now: Now, tz: Tz, principal: Provide, month: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
        lookback: Annotated[str, Form()] = "12") -> Response:
    try:
        m = provision.parse_month(month)
        if not lookback.strip().isdigit():
            raise provision.UnableToProvide(f"'{lookback}' is not a number of months", field="lookback")
        rep = provision.run_provision(db, month=m, now=now, tz=tz, actor=principal.actor, reason=reason or None, lookback=int(lookback))
    except OpslineError as exc:
        db.rollback()
        shown = provision.last_ended_month(now=now, tz=tz)
        return _provision_page(request, db, principal, now, tz, month=shown, error=exc.detail, error_field=exc.field, status=exc.status,
                               form={"month": month, "reason": reason, "lookback": lookback})
    msg = (f"{rep['month']} was already run; its stored figures are shown (give a reason to run it again)" if rep.get("replayed")
           else f"Provision for {rep['month']} calculated (run #{rep['seq']})")
    return RedirectResponse(f"{BASE}?month={rep['month']}&ok={msg.replace(' ', '+')}", status_code=303)


@router.post(f"{BASE}/adjustments", response_model=None)
def adjust(request: Request, db: DB, now: Now, tz: Tz, principal: Provide, month: Annotated[str, Form()] = "", segment: Annotated[str, Form()] = "",
           pct: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "") -> Response:
    try:
        m = provision.parse_month(month)
        p = provision.parse_pct(pct)
        provision.set_adjustment(db, month=m, segment_code=segment, pct=p, reason=reason, now=now, tz=tz, actor=principal.actor)
    except OpslineError as exc:
        db.rollback()
        return _provision_page(request, db, principal, now, tz, month=provision.last_ended_month(now=now, tz=tz), error=exc.detail,
                               error_field=exc.field, status=exc.status, form={"adj_month": month, "segment": segment, "pct": pct, "adj_reason": reason})
    return RedirectResponse(f"{BASE}?month={month}&ok=Adjustment+{p}+%25+for+{segment or 'all+segments'}+from+{month}+entered;+"
                            "run+the+month+again+with+a+reason+to+apply+it+to+a+stored+provision", status_code=303)


@router.post(f"{BASE}/history", response_model=None)
async def history_upload(request: Request, db: DB, now: Now, tz: Tz, principal: Provide, file: Annotated[UploadFile, File()]) -> Response:
    data = await file.read(provision.MAX_IMPORT_BYTES + 1)
    try:
        res = provision.import_history(db, data=data, filename=file.filename or "upload", now=now, tz=tz, actor=principal.actor,
                                       default_currency=DEFAULT_CURRENCY)
    except OpslineError as exc:
        db.rollback()
        return _provision_page(request, db, principal, now, tz, month=provision.last_ended_month(now=now, tz=tz), error=exc.detail,
                               error_field=exc.field, status=exc.status)
    return RedirectResponse(f"{BASE}?ok=Imported+{res['lines']}+lines:+{res['months']}+month+ends+{res['first']}+to+{res['last']}", status_code=303)


@router.get(f"{BASE}/export")
def export(db: DB, principal: View, month: str, format: str = "xlsx") -> Response:
    m = provision.parse_month(month)
    rep = provision.get_report(db, month=m)
    if rep is None:
        raise provision.UnableToProvide(f"no provision for {provision.month_text(m)} yet", field="month")
    filename, media, body = export_sheets(format, name=f"provision-{rep['month']}", sheets=provision.workbook_sheets(rep))
    return Response(body, media_type=media, headers=download_headers(filename))


@router.get(f"{BASE}/accounts", response_class=HTMLResponse)
def accounts(request: Request, db: DB, now: Now, tz: Tz, principal: View, month: str, segment: str, bucket: str, currency: str = DEFAULT_CURRENCY,
             page: int = 1) -> HTMLResponse:
    data = provision.line_accounts(db, month=provision.parse_month(month), currency=currency, segment=segment, bucket=bucket, limit=PAGE, offset=_page(page))
    return render(request, "debtors/provision/accounts.html", {"data": data, "pager": _pager(data["count"], page)}, principal=principal)


@router.get(f"{BASE}/accounts/export")
def accounts_export(db: DB, principal: View, month: str, segment: str, bucket: str, currency: str = DEFAULT_CURRENCY, format: str = "xlsx") -> Response:
    data = provision.line_accounts(db, month=provision.parse_month(month), currency=currency, segment=segment, bucket=bucket, limit=None)
    rows = ([r["account_number"], r["name"], r["status"], r["value_tier_code"], currency, _major(r["balance_minor"], currency),
             _major(r["provision_minor"], currency)] for r in data["rows"])
    return _download(format, name=f"provision-{month}-{segment}-{bucket}-accounts", rows=rows, money_cols=(5, 6),
                     header=["Account", "Name", "Status", "Value tier", "Currency", f"Balance {LABELS[bucket]}", "Provision share"])


@router.get(f"{BASE}/history", response_class=HTMLResponse)
def history_page(request: Request, db: DB, now: Now, tz: Tz, principal: View) -> HTMLResponse:
    return render(request, "debtors/provision/history.html", {"history": provision.history_summary(db, now=now, tz=tz)}, principal=principal)


# --- roll rates (collections effectiveness) -----------------------------------------------------------------------------

@router.get(f"{REPORTS}/rollrates", response_class=HTMLResponse)
def rollrates_page(request: Request, db: DB, now: Now, tz: Tz, principal: View, months: int = 12, segment: str = "") -> HTMLResponse:
    data = rollrates.report(db, now=now, tz=tz, months=months, segment=segment)
    return render(request, "debtors/provision/rollrates.html", {"data": data, "tab": "rollrates", "segments": provision._segments(db)}, principal=principal)


@router.get(f"{REPORTS}/rollrates/export")
def rollrates_export(db: DB, now: Now, tz: Tz, principal: View, months: int = 12, segment: str = "", format: str = "xlsx") -> Response:
    data = rollrates.report(db, now=now, tz=tz, months=months, segment=segment)
    filename, media, body = export_sheets(format, name=f"roll-rates-{data['month']}", sheets=rollrates.sheets(data))
    return Response(body, media_type=media, headers=download_headers(filename))


@router.get(f"{REPORTS}/rollrates/accounts", response_class=HTMLResponse)
def rollrates_accounts(request: Request, db: DB, now: Now, tz: Tz, principal: View, month: str, bucket: str, segment: str = "",
                       currency: str = DEFAULT_CURRENCY, page: int = 1) -> HTMLResponse:
    data = rollrates.rolled_accounts(db, month=provision.parse_month(month), bucket=bucket, segment=segment, currency=currency, limit=PAGE,
                                     offset=_page(page))
    return render(request, "debtors/provision/rollrate_accounts.html", {"data": data, "pager": _pager(data["count"], page), "tab": "rollrates"},
                  principal=principal)


@router.get(f"{REPORTS}/rollrates/accounts/export")
def rollrates_accounts_export(db: DB, principal: View, month: str, bucket: str, segment: str = "", currency: str = DEFAULT_CURRENCY,
                              format: str = "xlsx") -> Response:
    data = rollrates.rolled_accounts(db, month=provision.parse_month(month), bucket=bucket, segment=segment, currency=currency, limit=None)
    rows = ([r["account_number"], r["name"], r["segment_code"], currency, _major(r["balance_minor"], currency), _major(r["rolled_minor"], currency)]
            for r in data["rows"])
    return _download(format, name=f"rolled-{month}-{bucket}", rows=rows, money_cols=(4, 5),
                     header=["Account", "Name", "Segment", "Currency", f"{LABELS[bucket]} at {month}", f"Rolled to {data['to_label']}"])


# --- promises kept and broken ----------------------------------------------------------------------------------------------

@router.get(f"{REPORTS}/promises", response_class=HTMLResponse)
def promises_page(request: Request, db: DB, now: Now, tz: Tz, principal: View, months: int = 12, by: str = "clerk") -> HTMLResponse:
    data = promises.report(db, now=now, tz=tz, months=months, by=by)
    return render(request, "debtors/provision/promises.html", {"data": data, "tab": "promises"}, principal=principal)


@router.get(f"{REPORTS}/promises/export")
def promises_export(db: DB, now: Now, tz: Tz, principal: View, months: int = 12, by: str = "clerk", format: str = "xlsx") -> Response:
    data = promises.report(db, now=now, tz=tz, months=months, by=by)
    filename, media, body = export_sheets(format, name=f"promises-{data['months'][-1]}", sheets=promises.sheets(data))
    return Response(body, media_type=media, headers=download_headers(filename))


@router.get(f"{REPORTS}/promises/accounts", response_class=HTMLResponse)
def promises_accounts(request: Request, db: DB, now: Now, tz: Tz, principal: View, month: str, by: str = "clerk", person: str = "", state: str = "",
                      page: int = 1) -> HTMLResponse:
    data = promises.arrangements(db, tz=tz, month=provision.parse_month(month), by=by, person=person, state=state, limit=PAGE, offset=_page(page))
    return render(request, "debtors/provision/promise_accounts.html", {"data": data, "pager": _pager(data["count"], page), "tab": "promises"},
                  principal=principal)


@router.get(f"{REPORTS}/promises/accounts/export")
def promises_accounts_export(db: DB, tz: Tz, principal: View, month: str, by: str = "clerk", person: str = "", state: str = "",
                             format: str = "xlsx") -> Response:
    data = promises.arrangements(db, tz=tz, month=provision.parse_month(month), by=by, person=person, state=state, limit=None)
    rows = ([f"ARR-{r['id']}", r["account_number"], r["name"], r["kind"], r["outcome"], r["created_on"], r["created_by"], r["decided_by"],
             r["last_due"], _major(r["amount_minor"], r["currency"]), r["currency"]] for r in data["rows"])
    return _download(format, name=f"promises-{month}-{person or 'all'}-{state or 'all'}", rows=rows, money_cols=(9,),
                     header=["Arrangement", "Account", "Name", "Kind", "Outcome", "Made on", "Made by", "Approved by", "Last due", "Amount", "Currency"])
