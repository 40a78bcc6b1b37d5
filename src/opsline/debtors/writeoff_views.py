"""Write-off and prescription pages: the proposals (waiting first, totals and VAT relief), one proposal with its lifecycle
buttons, proposing for one account or in bulk (dry-run count first), the batch, finance's VAT relief export, and the
prescribed debt report. Thin: parse, call one service, render. Errors are the service's OpslineError (problem+json)."""

from __future__ import annotations

from typing import Annotated, Any, Iterable, Sequence

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsline.config import DEFAULT_CURRENCY
from opsline.core.exports import download_headers, export_table
from opsline.core.localtime import local_date
from opsline.core.money import Money
from opsline.customers import service as customers
from opsline.debtors import prescription, writeoffs
from opsline.debtors.models import WRITE_OFF, WRITE_OFF_BATCH, WriteOffState
from opsline.web.deps import DB, Now, Principal, Tz, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)
View = Annotated[Principal, Depends(require("debtors.view"))]
Propose = Annotated[Principal, Depends(require("debtors.writeoff.propose"))]
Approve = Annotated[Principal, Depends(require("debtors.writeoff.approve"))]
BASE = "/debtors/writeoffs"


def _major(minor: int, currency: str) -> Any:
    return Money.from_minor(int(minor), currency).amount


def _download(fmt: str, *, name: str, header: Sequence[str], rows: Iterable[Sequence[Any]], money_cols: Iterable[int] = ()) -> Response:
    filename, media, body = export_table(fmt, name=name, header=header, rows=rows, money_cols=money_cols)
    return Response(body, media_type=media, headers=download_headers(filename))


def _account_id(db: DB, key: str) -> int:
    return customers.resolve_account_id(db, key=key)


@router.get(BASE, response_class=HTMLResponse)
def list_page(request: Request, db: DB, principal: View, state: str = "", ok: str = "") -> HTMLResponse:
    data = writeoffs.list_write_offs(db, state=state)
    return render(request, "debtors/writeoffs/list.html", {"data": data, "state": state, "states": [s.value for s in WriteOffState],
                                                           "ok": ok or None}, principal=principal)


@router.get(f"{BASE}/export")
def export(db: DB, principal: View, format: str = "xlsx", state: str = "posted") -> Response:
    """Finance's VAT relief: one row per write-off and VAT rate."""
    rows = writeoffs.vat_relief_rows(db, state=state)
    header = ["Write-off", "Account", "Name", "State", "Posted at", "Proposed by", "Approved by", "Batch", "VAT rate code", "Rate",
              "Gross written off", "VAT relief", "Currency", "Reason"]
    return _download(format, name=f"write-offs-vat-relief-{state or 'all'}", header=header, money_cols=(10, 11), rows=(
        [r["ref"], r["account_number"], r["account_name"], r["state"], r["posted_at"], r["proposed_by"], r["decided_by"], r["batch_ref"],
         r["tax_rate_code"], r["rate"], _major(r["gross_minor"], r["currency"]), _major(r["vat_relief_minor"], r["currency"]), r["currency"], r["reason"]]
        for r in rows))


@router.get(f"{BASE}/new", response_class=HTMLResponse)
def new_page(request: Request, db: DB, now: Now, tz: Tz, principal: Propose, account: str = "", amount: str = "", action_id: str = "") -> HTMLResponse:
    """The proposal form; with ?account= the balance, prescribed part and the VAT relief the amount would give."""
    ctx: dict[str, Any] = {"account": account, "amount": amount, "action_id": action_id, "acc": None}
    if account.strip():
        acc_id = _account_id(db, account)
        acc = customers.get_account(db, account_id=acc_id)
        from opsline.billing import ledger

        balance = ledger.balance_minor(db, account_id=acc_id)
        wanted = writeoffs.parse_amount(amount, currency=acc.currency)
        minor = balance if wanted is None else wanted.rounded().minor
        presc = writeoffs._prescribed_minor(db, account_id=acc_id, today=local_date(now, tz))
        ctx["acc"] = {"id": acc.id, "account_number": acc.account_number, "name": acc.name, "status": acc.status, "currency": acc.currency,
                      "balance_minor": balance, "prescribed_minor": presc, "amount_minor": minor,
                      "vat": writeoffs.preview(db, account_id=acc_id, amount_minor=minor) if 0 < minor <= balance else []}
    return render(request, "debtors/writeoffs/new.html", ctx, principal=principal)


@router.post(BASE, response_model=None)
def propose(request: Request, db: DB, now: Now, tz: Tz, principal: Propose, account: Annotated[str, Form()] = "",
            amount: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "", action_id: Annotated[str, Form()] = "") -> Response:
    acc_id = _account_id(db, account)
    acc = customers.get_account(db, account_id=acc_id)
    if not amount.strip():
        raise writeoffs.UnableToWriteOff("give the amount to write off (the form shows the balance)", field="amount")
    money = writeoffs.parse_amount(amount, currency=acc.currency)
    dunning = None
    if action_id.strip():
        if not action_id.strip().isdigit():
            raise writeoffs.UnableToWriteOff(f"'{action_id}' is not a dunning action number", field="dunning_action_id")
        dunning = int(action_id)
    wo = writeoffs.propose(db, account_id=acc_id, amount=money, reason=reason, today=local_date(now, tz), now=now, actor=principal.actor,
                           dunning_action_id=dunning)
    return RedirectResponse(f"{BASE}/{wo.id}?ok=Write-off+{writeoffs.ref(wo.id)}+proposed;+a+debtors+manager+approves+it", status_code=303)


@router.get(f"{BASE}/bulk", response_class=HTMLResponse)
def bulk_page(request: Request, db: DB, now: Now, tz: Tz, principal: Propose, status: str = "closed", max_balance: str = "", min_days: str = "90",
              prescribed_only: str = "", check: str = "") -> HTMLResponse:
    """The bulk form; with ?check=1 the dry run: how many accounts, how much (nothing is written)."""
    preview = None
    if check:
        crit = writeoffs.parse_criteria(status=status, max_balance=max_balance, min_days=min_days, prescribed_only=bool(prescribed_only),
                                        currency=DEFAULT_CURRENCY)
        preview = writeoffs.dry_run(db, criteria=crit, today=local_date(now, tz), now=now)
    return render(request, "debtors/writeoffs/bulk.html", {"f": {"status": status, "max_balance": max_balance, "min_days": min_days,
                                                                 "prescribed_only": bool(prescribed_only)}, "preview": preview}, principal=principal)


@router.post(f"{BASE}/bulk", response_model=None)
def bulk_propose(request: Request, db: DB, now: Now, tz: Tz, principal: Propose, status: Annotated[str, Form()] = "closed",
                 max_balance: Annotated[str, Form()] = "", min_days: Annotated[str, Form()] = "0", prescribed_only: Annotated[str, Form()] = "",
                 reason: Annotated[str, Form()] = "") -> Response:
    crit = writeoffs.parse_criteria(status=status, max_balance=max_balance, min_days=min_days, prescribed_only=bool(prescribed_only),
                                    currency=DEFAULT_CURRENCY)
    b = writeoffs.propose_batch(db, criteria=crit, reason=reason, today=local_date(now, tz), now=now, actor=principal.actor)
    return RedirectResponse(f"{BASE}/batches/{b.id}?ok=Batch+{writeoffs.batch_ref(b.id)}+proposed:+{b.accounts}+accounts", status_code=303)


@router.get(f"{BASE}/batches/{{batch_id}}", response_class=HTMLResponse)
def batch_page(request: Request, batch_id: int, db: DB, principal: View, ok: str = "") -> HTMLResponse:
    b = writeoffs.get_batch(db, batch_id=batch_id)
    buttons = [x for x in WRITE_OFF_BATCH.buttons(b["state"], actor=principal.actor)]
    return render(request, "debtors/writeoffs/batch.html", {"b": b, "buttons": buttons, "mine": b["proposed_by"] == principal.actor.name,
                                                            "ok": ok or None}, principal=principal)


@router.post(f"{BASE}/batches/{{batch_id}}/approve", response_model=None)
def batch_approve(request: Request, batch_id: int, db: DB, now: Now, principal: Approve) -> Response:
    res = writeoffs.approve_batch(db, batch_id=batch_id, now=now, actor=principal.actor)
    return RedirectResponse(f"{BASE}/batches/{batch_id}?ok={res['posted']}+write-offs+posted,+{res['withdrawn']}+withdrawn", status_code=303)


@router.post(f"{BASE}/batches/{{batch_id}}/reject", response_model=None)
def batch_reject(request: Request, batch_id: int, db: DB, now: Now, principal: Approve, reason: Annotated[str, Form()] = "") -> Response:
    writeoffs.decide_batch(db, batch_id=batch_id, action="reject", reason=reason, now=now, actor=principal.actor)
    return RedirectResponse(f"{BASE}/batches/{batch_id}?ok=Batch+rejected", status_code=303)


@router.post(f"{BASE}/batches/{{batch_id}}/cancel", response_model=None)
def batch_cancel(request: Request, batch_id: int, db: DB, now: Now, principal: Propose, reason: Annotated[str, Form()] = "") -> Response:
    writeoffs.decide_batch(db, batch_id=batch_id, action="cancel", reason=reason, now=now, actor=principal.actor)
    return RedirectResponse(f"{BASE}/batches/{batch_id}?ok=Batch+withdrawn", status_code=303)


@router.get(f"{BASE}/{{write_off_id}}", response_class=HTMLResponse)
def detail(request: Request, write_off_id: int, db: DB, principal: View, ok: str = "") -> HTMLResponse:
    w = writeoffs.get_write_off(db, write_off_id=write_off_id)
    buttons = [] if w["batch_id"] else WRITE_OFF.buttons(w["state"], actor=principal.actor)
    return render(request, "debtors/writeoffs/detail.html", {"w": w, "buttons": buttons, "mine": w["proposed_by"] == principal.actor.name,
                                                             "ok": ok or None}, principal=principal)


@router.post(f"{BASE}/{{write_off_id}}/approve", response_model=None)
def approve(request: Request, write_off_id: int, db: DB, now: Now, principal: Approve) -> Response:
    wo = writeoffs.approve(db, write_off_id=write_off_id, now=now, actor=principal.actor)
    return RedirectResponse(f"{BASE}/{wo.id}?ok=Write-off+{writeoffs.ref(wo.id)}+approved+and+posted", status_code=303)


@router.post(f"{BASE}/{{write_off_id}}/reject", response_model=None)
def reject(request: Request, write_off_id: int, db: DB, now: Now, principal: Approve, reason: Annotated[str, Form()] = "") -> Response:
    writeoffs.decide(db, write_off_id=write_off_id, action="reject", reason=reason, now=now, actor=principal.actor)
    return RedirectResponse(f"{BASE}/{write_off_id}?ok=Write-off+rejected", status_code=303)


@router.post(f"{BASE}/{{write_off_id}}/cancel", response_model=None)
def cancel(request: Request, write_off_id: int, db: DB, now: Now, principal: Propose, reason: Annotated[str, Form()] = "") -> Response:
    writeoffs.decide(db, write_off_id=write_off_id, action="cancel", reason=reason, now=now, actor=principal.actor)
    return RedirectResponse(f"{BASE}/{write_off_id}?ok=Write-off+withdrawn", status_code=303)


# --- prescription ------------------------------------------------------------------------------------------------------

@router.get("/debtors/prescribed", response_class=HTMLResponse)
def prescribed_page(request: Request, db: DB, now: Now, tz: Tz, principal: View) -> HTMLResponse:
    return render(request, "debtors/writeoffs/prescribed.html", {"data": prescription.prescribed(db, today=local_date(now, tz), now=now)},
                  principal=principal)


@router.get("/debtors/prescribed/export")
def prescribed_export(db: DB, now: Now, tz: Tz, principal: View, format: str = "xlsx") -> Response:
    data = prescription.prescribed(db, today=local_date(now, tz), now=now, limit=None)
    header = ["Account", "Name", "Status", "Prescribed", "Oldest unpaid debt due", "Years past due", "Balance", "Currency", "Open write-off"]
    return _download(format, name=f"prescribed-debt-{data['today'].isoformat()}", header=header, money_cols=(3, 6), rows=(
        [r["account_number"], r["account_name"], r["status"], _major(r["prescribed_minor"], r["currency"]), r["oldest_due"], r["years_past_due"],
         _major(r["balance_minor"], r["currency"]), r["currency"], writeoffs.ref(r["write_off_id"]) + f" ({r['write_off_state']})" if r["write_off_id"] else ""]
        for r in data["rows"]))
