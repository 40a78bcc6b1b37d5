"""Revenue assurance pages: the desk (upload an FNO invoice, imported invoices, leakage per FNO per month), an invoice's
findings with dispute actions and export, a line's history, and our inventory against our own billing for a month.
Thin: parse, call one service or query function, render or redirect."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from urllib.parse import quote_plus

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from opsline.assurance import queries, service
from opsline.assurance.models import PartnerInvoice
from opsline.core.errors import InvalidInput, NotFound, OpslineError
from opsline.core.exports import Sheet, download_headers, export_sheets
from opsline.core.localtime import local_date
from opsline.core.money import Money
from opsline.web.deps import DB, Now, Principal, Tz, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)
View = Annotated[Principal, Depends(require("assurance.view"))]
Import = Annotated[Principal, Depends(require("assurance.import"))]
Manage = Annotated[Principal, Depends(require("assurance.manage"))]
MAX_BYTES = 20 * 1024 * 1024


def _month_before(day: date) -> date:
    return date(day.year - (day.month == 1), (day.month - 2) % 12 + 1, 1)


def _last_month(now, tz) -> date:  # type: ignore[no-untyped-def]
    return _month_before(local_date(now, tz))


def _desk(request: Request, db: DB, now: Any, tz: Any, principal: Principal, *, ok: str = "", error: str = "", error_field: str = "",
          form: dict[str, str] | None = None, status: int = 200, partner: str = "") -> HTMLResponse:
    fnos, with_lines = queries.fnos(db), queries.fnos_with_lines(db)
    return render(request, "assurance/desk.html", {
        "fnos": fnos, "invoices": queries.invoices(db, partner_code=partner[:30]), "partner": partner[:30], "leakage": queries.leakage_by_month(db, today=local_date(now, tz)),
        "open": queries.open_findings_total(db), "ok": ok or None, "error": error or None, "error_field": error_field,
        "form": form or {"period": f"{_last_month(now, tz):%Y-%m}", "partner": ""},
        "samples": [{"code": f["code"], "name": f["name"], "month": _sample_month(db, f["code"], now, tz)} for f in fnos if f["code"] in with_lines]},
        principal=principal, status_code=status)


@router.get("/assurance", response_class=HTMLResponse)
def desk(request: Request, db: DB, now: Now, tz: Tz, principal: View, ok: str = "", partner: str = "") -> HTMLResponse:
    return _desk(request, db, now, tz, principal, ok=ok, partner=partner)


def _sample_month(db: DB, partner: str, now: Any, tz: Any) -> date:
    """The latest month that has ended and has no imported invoice from `partner` (so the sample can be uploaded)."""
    month = _last_month(now, tz)
    taken = set(db.execute(select(PartnerInvoice.period).where(PartnerInvoice.partner_code == partner)).scalars())
    while month in taken:
        month = _month_before(month)
    return month


@router.get("/assurance/sample.csv")
def sample_invoice(db: DB, now: Now, tz: Tz, principal: Import, partner: str = "openserve") -> Response:
    """An invoice file as `partner` would send it, built from our inventory with the demo's planted errors (lines
    billed after we cancelled them, two overcharges, two forgotten lines), for a month not yet imported: to try the
    upload and see the findings."""
    from opsline.assurance.demo import invoice_csv
    from opsline.partners.models import Partner

    if db.get(Partner, partner[:30]) is None:
        raise NotFound(f"no FNO with code {partner[:30]!r}", field="partner")
    month = _sample_month(db, partner[:30], now, tz)
    data, _ = invoice_csv(db, period=month, partner_code=partner[:30])
    return Response(data, media_type="text/csv", headers=download_headers(f"sample-{partner[:30]}-invoice-{month:%Y-%m}.csv"))


@router.post("/assurance/invoices", response_model=None)
async def upload(request: Request, db: DB, now: Now, tz: Tz, principal: Import, file: Annotated[UploadFile, File()],
                 partner: Annotated[str, Form()] = "", period: Annotated[str, Form()] = "") -> Response:
    data = await file.read(MAX_BYTES + 1)
    try:
        if len(data) > MAX_BYTES:
            raise service.UnableToImportInvoice(f"{file.filename}: larger than {MAX_BYTES // (1024 * 1024)} MB", field="file")
        r = service.import_invoice(db, partner_code=partner, period=period, file_name=file.filename or "upload.csv", data=data, now=now,
                                   actor=principal.actor)
    except OpslineError as exc:
        db.rollback()
        return _desk(request, db, now, tz, principal, error=exc.detail, error_field=exc.field or "", form={"partner": partner, "period": period},
                     status=exc.status)
    msg = (f"Imported {r['partner_name']} {r['period']:%Y-%m}: {r['lines']} lines, {r['findings']} finding(s), "
           f"leakage {Money.from_minor(r['leakage_minor'], r['currency'])}")
    return RedirectResponse(f"/assurance/invoices/{r['id']}?ok={quote_plus(msg)}", status_code=303)


def _invoice(db: DB, invoice_id: int) -> dict[str, Any]:
    if db.get(PartnerInvoice, invoice_id) is None:
        raise NotFound(f"partner invoice {invoice_id} not found", field="invoice_id")
    return service.invoice_summary(db, invoice_id=invoice_id)


@router.get("/assurance/invoices/{invoice_id}", response_class=HTMLResponse)
def invoice_page(request: Request, invoice_id: int, db: DB, principal: View, kind: str = "", state: str = "", page: int = 1, ok: str = "") -> HTMLResponse:
    inv = _invoice(db, invoice_id)
    page = max(1, min(page, 100_000))
    items = queries.findings(db, invoice_id=invoice_id, kind=kind, state=state, limit=queries.PAGE + 1, offset=(page - 1) * queries.PAGE,
                             actor=principal.actor)
    return render(request, "assurance/invoice.html", {"inv": inv, "items": items[:queries.PAGE], "more": len(items) > queries.PAGE, "page": page,
                                                      "kind": kind, "state": state, "kinds": queries.KIND_LABELS, "ok": ok or None}, principal=principal)


FINDING_HEADER = ["Finding", "Kind", "Line", "Account", "Name", "Product", "Cancellation journey", "Detail", "Billed", "Expected", "Difference",
                  "Currency", "State"]


def finding_rows(items: list[dict[str, Any]]) -> list[list[Any]]:
    def major(minor: int, cur: str) -> Any:
        return Money.from_minor(minor, cur).amount

    return [[f["id"], f["kind_label"], f["line_ref"], f["account_number"], f["account_name"], f["product_id"], f["journey_id"], f["detail"],
             major(f["billed_minor"], f["currency"]), major(f["expected_minor"], f["currency"]), major(f["amount_minor"], f["currency"]), f["currency"],
             f["state"]] for f in items]


@router.get("/assurance/invoices/{invoice_id}/export")
def invoice_export(invoice_id: int, db: DB, principal: View, format: str = "xlsx") -> Response:
    inv = _invoice(db, invoice_id)
    items = queries.findings(db, invoice_id=invoice_id, limit=None)
    filename, media, body = export_sheets(format, name=f"reconciliation-{inv['partner_code']}-{inv['period']:%Y-%m}",
                                          sheets=[Sheet("Findings", FINDING_HEADER, finding_rows(items), frozenset({8, 9, 10}))])
    return Response(body, media_type=media, headers=download_headers(filename))


@router.post("/assurance/findings/{finding_id}/{action}", response_model=None)
def finding_action(request: Request, finding_id: int, action: str, db: DB, now: Now, principal: Manage, reason: Annotated[str, Form()] = "",
                   back: Annotated[str, Form()] = "") -> Response:
    state = service.act_on_finding(db, finding_id=finding_id, action=action, now=now, actor=principal.actor, reason=reason.strip() or None)
    where = back if back.startswith("/assurance/") and "//" not in back else "/assurance"
    sep = "&" if "?" in where else "?"
    return RedirectResponse(f"{where}{sep}ok={quote_plus(f'Finding {finding_id}: {state}')}", status_code=303)


@router.get("/assurance/lines/{partner_code}/{line_ref}", response_class=HTMLResponse)
def line_page(request: Request, partner_code: str, line_ref: str, db: DB, principal: View) -> HTMLResponse:
    try:
        data = queries.line_history(db, partner_code=partner_code, line_ref=line_ref)
    except InvalidInput as exc:
        raise NotFound(exc.detail, field="line_ref") from None
    return render(request, "assurance/line.html", {"d": data}, principal=principal)


@router.get("/assurance/billing", response_class=HTMLResponse)
def billing_page(request: Request, db: DB, now: Now, tz: Tz, principal: View, month: str = "") -> HTMLResponse:
    period = service.parse_period(month, field="month") if month else _last_month(now, tz)
    return render(request, "assurance/billing.html", {"d": queries.billing_consistency(db, period=period)}, principal=principal)


@router.get("/assurance/billing/export")
def billing_export(db: DB, now: Now, tz: Tz, principal: View, month: str = "", format: str = "xlsx") -> Response:
    period = service.parse_period(month, field="month") if month else _last_month(now, tz)
    d = queries.billing_consistency(db, period=period, limit=5000)
    sheets = [Sheet("Active not billed", ["Product", "Account", "Name", "Offering", "State", "Since", "FNO", "Line", "Cancellation journey"],
                    [[r["product_id"], r["account_number"], r["account_name"], r["offering"], r["state"], r["start_date"], r["partner_code"],
                      r["partner_line_ref"], r["journey_id"]] for r in d["not_billed"]]),
              Sheet("Billed not active", ["Invoice line", "Invoice", "Product", "Account", "Name", "Product state", "Active from", "Ended",
                                          "Billed from", "Billed to", "Amount", "Currency", "Cancellation journey"],
                    [[r["line_id"], r["invoice_id"], r["product_id"], r["account_number"], r["account_name"], r["state"], r["start_date"], r["end_date"],
                      r["period_start"], r["period_end"], Money.from_minor(r["amount_minor"], r["currency"]).amount, r["currency"], r["journey_id"]]
                     for r in d["billed_not_active"]], frozenset({10}))]
    filename, media, body = export_sheets(format, name=f"inventory-vs-billing-{period:%Y-%m}", sheets=sheets)
    return Response(body, media_type=media, headers=download_headers(filename))


@router.get("/assurance/leakage/export")
def leakage_export(db: DB, now: Now, tz: Tz, principal: View, format: str = "xlsx") -> Response:
    filename, media, body = export_sheets(format, name=f"fno-leakage-{local_date(now, tz):%Y-%m}", sheets=leakage_sheets(db, now=now, tz=tz))
    return Response(body, media_type=media, headers=download_headers(filename))


def leakage_sheets(db: Any, *, now: Any, tz: Any) -> list[Sheet]:
    data = queries.leakage_by_month(db, today=local_date(now, tz))
    rows = [[e["name"], f"{m:%Y-%m}", e["months"][m]["n"], Money.from_minor(e["months"][m]["amount"], e["currency"]).amount, e["currency"]]
            for e in data["partners"] for m in data["months"] if m in e["months"]]
    return [Sheet("FNO leakage", ["FNO", "Month", "Findings", "Leakage", "Currency"], rows, frozenset({3}))]
