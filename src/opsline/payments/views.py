"""Payments desk pages: import, proposals (approve a batch), suspense queue (allocate, split, refund, reassign), payment
detail (reverse), refunds awaiting a second person, staff capture, and the account page panel. Thin: parse, call, render."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from opsline.core.errors import InvalidInput, OpslineError
from opsline.core.money import Money
from opsline.payments import allocations, imports, queries, refunds
from opsline.payments.allocations import Part
from opsline.web.deps import DB, Now, Principal, Tz, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)
View = Annotated[Principal, Depends(require("payments.view"))]
Allocate = Annotated[Principal, Depends(require("payments.allocate"))]
Approve = Annotated[Principal, Depends(require("payments.approve"))]
RefundP = Annotated[Principal, Depends(require("payments.refund"))]
Capture = Annotated[Principal, Depends(require("payments.capture"))]
MAX_UPLOAD = 20_000_000


def _money(raw: str, currency: str, field: str) -> Money:
    try:
        return Money.of(Decimal(raw.replace(" ", "").replace(",", "")), currency)
    except (InvalidOperation, ValueError):
        raise InvalidInput(f"'{raw}' is not an amount", field=field) from None


def _int(raw: str, field: str) -> int:
    if not raw.strip().isdigit():
        raise InvalidInput(f"'{raw}' is not a number", field=field)
    return int(raw.strip())


def _desk(request: Request, db: Session, principal: Principal, now: datetime, tz: Any, *, result: dict | None = None, error: str | None = None,
          ok: str | None = None, status: int = 200) -> HTMLResponse:
    return render(request, "payments/desk.html", {"summary": queries.desk_summary(db, now=now, tz=tz), "files": queries.statement_files(db),
                                                  "proposals": queries.proposals(db, limit=100), "refunds": refunds.pending_refunds(db),
                                                  "unpaids": queries.unpaids(db, days=7, now=now), "mappings": _mappings(db), "result": result,
                                                  "samples": sample_files(),
                                                  "error": error, "ok": ok, "now": now}, principal=principal, status_code=status)


def _mappings(db: Session) -> list[str]:
    from sqlalchemy import select

    from opsline.payments.models import CsvMapping

    return list(db.execute(select(CsvMapping.name).order_by(CsvMapping.name)).scalars())


@router.get("/payments", response_class=HTMLResponse)
def desk(request: Request, db: DB, now: Now, tz: Tz, principal: View, ok: str = "") -> HTMLResponse:
    return _desk(request, db, principal, now, tz, ok=ok or None)


@router.post("/payments/upload", response_class=HTMLResponse)
async def upload(request: Request, db: DB, now: Now, tz: Tz, principal: Allocate, file: Annotated[UploadFile, File()],
                 format: Annotated[str, Form()] = "", mapping: Annotated[str, Form()] = "") -> HTMLResponse:
    data = await file.read(MAX_UPLOAD + 1)
    try:
        if len(data) > MAX_UPLOAD:
            raise InvalidInput(f"{file.filename}: larger than {MAX_UPLOAD // 1_000_000} MB; use `opsline import-statement`", field="file")
        res = imports.import_statement(db, data=data, filename=file.filename or "upload", fmt=format or None, mapping_name=mapping or None, now=now,
                                       actor=principal.actor)
    except OpslineError as exc:
        db.rollback()
        return _desk(request, db, principal, now, tz, error=exc.detail, status=exc.status)
    return _desk(request, db, principal, now, tz, result=res)


@router.post("/payments/proposals/approve", response_model=None)
def approve(request: Request, db: DB, now: Now, tz: Tz, principal: Approve, payment_id: Annotated[list[str], Form()] = []) -> Response:  # noqa: B006
    try:
        res = allocations.approve_proposals(db, payment_ids=[_int(p, "payment_id") for p in payment_id], now=now, actor=principal.actor)
    except OpslineError as exc:
        db.rollback()
        return _desk(request, db, principal, now, tz, error=exc.detail, status=exc.status)
    return RedirectResponse(f"/payments?ok=Approved+{res['payments']}+payments+({res['allocations']}+allocations)", status_code=303)


@router.post("/payments/proposals/{payment_id}/reject", response_model=None)
def reject(request: Request, payment_id: int, db: DB, now: Now, tz: Tz, principal: Approve, reason: Annotated[str, Form()] = "") -> Response:
    try:
        allocations.reject_proposal(db, payment_id=payment_id, reason=reason, now=now, actor=principal.actor)
    except OpslineError as exc:
        db.rollback()
        return _desk(request, db, principal, now, tz, error=exc.detail, status=exc.status)
    return RedirectResponse("/payments?ok=Proposal+rejected+to+suspense", status_code=303)


SAMPLES = Path(__file__).parent / "samples"


def sample_files() -> list[str]:
    return sorted(p.name for p in SAMPLES.iterdir() if p.is_file()) if SAMPLES.is_dir() else []


@router.get("/payments/samples/{name}")
def sample(name: str, principal: View) -> Response:
    """The statement files shipped with the demo (one per format), to try the import as a new user would."""
    if name not in sample_files():
        from opsline.core.errors import NotFound

        raise NotFound(f"no sample statement '{name}'")
    return Response((SAMPLES / name).read_bytes(), media_type="application/octet-stream", headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/payments/suspense", response_class=HTMLResponse)
def suspense(request: Request, db: DB, now: Now, principal: View, q: str = "", owner: str = "") -> HTMLResponse:
    return render(request, "payments/suspense.html", {"items": queries.suspense_items(db, now=now, q=q, owner=owner), "ageing": queries.suspense_ageing(db, now=now),
                                                      "q": q, "owner": owner}, principal=principal)


def _item_page(request: Request, db: Session, principal: Principal, now: datetime, item_id: int, *, find: str = "", accounts: str = "",
               error: str | None = None, status: int = 200) -> HTMLResponse:
    from opsline.payments.models import SuspenseItem

    item = db.get(SuspenseItem, item_id)
    if item is None:
        from opsline.core.errors import NotFound

        raise NotFound(f"suspense item {item_id} not found")
    chosen = [int(a) for a in accounts.split(",") if a.strip().isdigit()][:5]
    return render(request, "payments/suspense_item.html", {
        "item": {c: getattr(item, c) for c in ("id", "payment_id", "amount_minor", "currency", "owner", "opened_at", "opened_reason", "closed_at", "outcome",
                                               "close_reason")},
        "detail": queries.payment_detail(db, payment_id=item.payment_id), "find": find, "found": queries.account_search(db, q=find),
        "chosen": [{"id": a, "invoices": queries.open_invoices(db, account_id=a), "row": (queries.account_search(db, q=str(a)) or [None])[0]} for a in chosen],
        "accounts": accounts, "error": error}, principal=principal, status_code=status)


@router.get("/payments/suspense/{item_id}", response_class=HTMLResponse)
def suspense_item(request: Request, item_id: int, db: DB, now: Now, principal: View, find: str = "", accounts: str = "") -> HTMLResponse:
    return _item_page(request, db, principal, now, item_id, find=find, accounts=accounts)


@router.post("/payments/suspense/{item_id}/allocate", response_model=None)
def suspense_allocate(request: Request, item_id: int, db: DB, now: Now, principal: Allocate, reason: Annotated[str, Form()] = "",
                      account_id: Annotated[list[str], Form()] = [], invoice_id: Annotated[list[str], Form()] = [],  # noqa: B006
                      amount: Annotated[list[str], Form()] = [], accounts: Annotated[str, Form()] = "") -> Response:  # noqa: B006
    from opsline.payments.models import SuspenseItem

    try:
        item = db.get(SuspenseItem, item_id)
        if item is None:
            raise InvalidInput(f"suspense item {item_id} not found", field="item")
        currency = item.currency
        parts = [Part(account_id=_int(a, f"parts[{n}].account_id"), amount=_money(m, currency, f"parts[{n}].amount"),
                      invoice_id=_int(i, f"parts[{n}].invoice_id") if i.strip() else None)
                 for n, (a, i, m) in enumerate(zip(account_id, invoice_id, amount)) if m.strip()]
        allocations.allocate_suspense(db, suspense_item_id=item_id, parts=parts, reason=reason, now=now, actor=principal.actor)
    except OpslineError as exc:
        db.rollback()
        return _item_page(request, db, principal, now, item_id, accounts=accounts, error=exc.detail, status=exc.status)
    return RedirectResponse("/payments/suspense?ok=1", status_code=303)


@router.post("/payments/suspense/{item_id}/refund", response_model=None)
def suspense_refund(request: Request, item_id: int, db: DB, now: Now, principal: RefundP, reason: Annotated[str, Form()] = "",
                    payee_account: Annotated[str, Form()] = "") -> Response:
    from opsline.payments.models import SuspenseItem

    try:
        item = db.get(SuspenseItem, item_id)
        if item is None:
            raise InvalidInput(f"suspense item {item_id} not found", field="item")
        refunds.request_refund(db, suspense_item_id=item_id, amount=Money.from_minor(item.amount_minor, item.currency), reason=reason,
                               payee_account=payee_account, now=now, actor=principal.actor)
    except OpslineError as exc:
        db.rollback()
        return _item_page(request, db, principal, now, item_id, error=exc.detail, status=exc.status)
    return RedirectResponse("/payments/suspense", status_code=303)


@router.post("/payments/suspense/{item_id}/reassign", response_model=None)
def suspense_reassign(request: Request, item_id: int, db: DB, now: Now, principal: Allocate, owner: Annotated[str, Form()] = "",
                      reason: Annotated[str, Form()] = "") -> Response:
    try:
        allocations.reassign_suspense(db, suspense_item_id=item_id, owner=owner, reason=reason, now=now, actor=principal.actor)
    except OpslineError as exc:
        db.rollback()
        return _item_page(request, db, principal, now, item_id, error=exc.detail, status=exc.status)
    return RedirectResponse(f"/payments/suspense/{item_id}", status_code=303)


def _payment_page(request: Request, db: Session, principal: Principal, payment_id: int, *, error: str | None = None, status: int = 200) -> HTMLResponse:
    return render(request, "payments/payment.html", queries.payment_detail(db, payment_id=payment_id) | {"error": error}, principal=principal, status_code=status)


@router.get("/payments/{payment_id:int}", response_class=HTMLResponse)
def payment_page(request: Request, payment_id: int, db: DB, principal: View) -> HTMLResponse:
    return _payment_page(request, db, principal, payment_id)


@router.post("/payments/allocations/{allocation_id}/reverse", response_model=None)
def reverse(request: Request, allocation_id: int, db: DB, now: Now, principal: Allocate, payment_id: Annotated[int, Form()],
            reason: Annotated[str, Form()] = "") -> Response:
    try:
        allocations.reverse_allocation(db, allocation_id=allocation_id, reason=reason, now=now, actor=principal.actor)
    except OpslineError as exc:
        db.rollback()
        return _payment_page(request, db, principal, payment_id, error=exc.detail, status=exc.status)
    return RedirectResponse(f"/payments/{payment_id}", status_code=303)


@router.post("/payments/refunds/{refund_id}/{action}", response_model=None)
def refund_decide(request: Request, refund_id: int, action: str, db: DB, now: Now, tz: Tz, principal: RefundP, reason: Annotated[str, Form()] = "") -> Response:
    try:
        if action == "approve":
            refunds.approve_refund(db, refund_id=refund_id, now=now, actor=principal.actor)
        elif action == "reject":
            refunds.reject_refund(db, refund_id=refund_id, reason=reason, now=now, actor=principal.actor)
        else:
            raise InvalidInput(f"'{action}' is neither approve nor reject", field="action")
    except OpslineError as exc:
        db.rollback()
        return _desk(request, db, principal, now, tz, error=exc.detail, status=exc.status)
    return RedirectResponse(f"/payments?ok=Refund+{refund_id}+{action}d", status_code=303)


@router.post("/payments/accounts/{account_id}/refund", response_model=None)
def credit_refund(request: Request, account_id: int, db: DB, now: Now, tz: Tz, principal: RefundP, amount: Annotated[str, Form()] = "",
                  reason: Annotated[str, Form()] = "", payee_name: Annotated[str, Form()] = "", payee_account: Annotated[str, Form()] = "") -> Response:
    from sqlalchemy import text

    try:
        cur = db.execute(text("SELECT currency FROM account WHERE id = :a"), {"a": account_id}).scalar()
        if cur is None:
            raise InvalidInput(f"account {account_id} not found", field="account_id")
        res = refunds.request_refund(db, account_id=account_id, amount=_money(amount, cur, "amount"), reason=reason, payee_name=payee_name,
                                     payee_account=payee_account, now=now, actor=principal.actor)
    except OpslineError as exc:
        db.rollback()
        return _desk(request, db, principal, now, tz, error=exc.detail, status=exc.status)
    return RedirectResponse(f"/accounts/{account_id}?ok=Refund+{res['refund_id']}+{res['state']}", status_code=303)


@router.get("/payments/capture", response_class=HTMLResponse)
def capture_form(request: Request, db: DB, principal: Capture, account: str = "") -> HTMLResponse:
    return render(request, "payments/capture.html", {"account": account, "error": None, "form": {}}, principal=principal)


@router.post("/payments/capture", response_model=None)
def capture(request: Request, db: DB, now: Now, principal: Capture, account_number: Annotated[str, Form()] = "", amount: Annotated[str, Form()] = "",
            method: Annotated[str, Form()] = "cash", received_on: Annotated[str, Form()] = "", invoice_id: Annotated[str, Form()] = "",
            reference: Annotated[str, Form()] = "") -> Response:
    form = {"account_number": account_number, "amount": amount, "method": method, "received_on": received_on, "invoice_id": invoice_id, "reference": reference}
    try:
        found = queries.account_search(db, q=account_number)
        if len(account_number.strip()) < 10 or len(found) != 1:
            raise InvalidInput(f"no account number '{account_number}'", field="account_number")
        try:
            day = date.fromisoformat(received_on) if received_on else now.date()
        except ValueError:
            raise InvalidInput(f"'{received_on}' is not a date (YYYY-MM-DD)", field="received_on") from None
        res = allocations.capture_payment(db, account_id=found[0]["id"], amount=_money(amount, found[0]["currency"], "amount"), method=method, received_on=day,
                                          invoice_id=_int(invoice_id, "invoice_id") if invoice_id.strip() else None, reference=reference, now=now,
                                          actor=principal.actor)
    except OpslineError as exc:
        db.rollback()
        return render(request, "payments/capture.html", {"account": account_number, "error": exc.detail, "form": form}, principal=principal,
                      status_code=exc.status)
    return RedirectResponse(f"/payments/{res['payment_id']}", status_code=303)


def panel_loader(session: Session, *, account_id: int, now: datetime, **_: Any) -> dict[str, Any]:
    return {"money": queries.account_money(session, account_id=account_id, now=now)}
