"""Arrangement pages: the list (promises due today and this week first), a new promise or pay-off plan for an account,
the detail with its instalments and payments, approve / cancel from the lifecycle's allowed actions, and the desk list of
suspended accounts with their arrears. Thin: parse, call one service, render."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsline.core.localtime import local_date
from opsline.customers import service as customers
from opsline.debtors import arrangements, reconnect
from opsline.debtors.arrangements import InstalmentIn
from opsline.debtors.models import ArrangementState
from opsline.web.deps import DB, Now, Principal, Tz, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)
View = Annotated[Principal, Depends(require("debtors.view"))]
Arrange = Annotated[Principal, Depends(require("debtors.arrange"))]


def _account_id(db: DB, key: str) -> int:
    return customers.resolve_account_id(db, key=key)


@router.get("/debtors/arrangements", response_class=HTMLResponse)
def list_page(request: Request, db: DB, now: Now, tz: Tz, principal: View, state: str = "", ok: str = "") -> HTMLResponse:
    today = local_date(now, tz)
    rows = arrangements.list_arrangements(db, today=today, now=now, state=state or None)
    return render(request, "debtors/arrangements/list.html", {"rows": rows, "state": state, "states": [s.value for s in ArrangementState],
                                                               "counts": arrangements.desk_counts(db, today=today), "today": today,
                                                               "ok": ok or None}, principal=principal)


@router.get("/debtors/arrangements/new", response_class=HTMLResponse)
def new_page(request: Request, db: DB, now: Now, tz: Tz, principal: Arrange, account: str = "") -> HTMLResponse:
    today = local_date(now, tz)
    acc = None
    if account.strip():
        a = customers.get_account(db, account_id=_account_id(db, account))
        owed = arrangements.overdue_minor(db, account_id=a.id, today=today, now=now)
        acc = {"id": a.id, "account_number": a.account_number, "name": a.name, "overdue": arrangements._money(owed, a.currency),
               "overdue_plain": f"{owed / 100:.2f}"}
    return render(request, "debtors/arrangements/new.html", {"account": acc, "account_key": account, "today": today}, principal=principal)


@router.post("/debtors/arrangements", response_model=None)
def create(request: Request, db: DB, now: Now, tz: Tz, principal: Arrange, account: Annotated[str, Form()] = "",
           kind: Annotated[str, Form()] = "promise", amount: Annotated[str, Form()] = "", note: Annotated[str, Form()] = "",
           due_date: Annotated[list[str], Form()] = [], instalment_amount: Annotated[list[str], Form()] = []) -> Response:  # noqa: B006
    acc_id = _account_id(db, account)
    promise = kind == "promise"
    rows: list[InstalmentIn] = []
    for k, raw in enumerate(due_date, start=1):
        amt = instalment_amount[k - 1] if k - 1 < len(instalment_amount) else ""
        if not raw.strip() and not amt.strip() and k > 1:
            continue  # blank rows of the plan form
        name = (lambda f: f) if promise else (lambda f: f"instalments[{k}].{f}")
        rows.append(InstalmentIn(arrangements.parse_day(raw, field=name("due_date")), arrangements.parse_amount(amt, field=name("amount"))))
    g = arrangements.propose(db, account_id=acc_id, kind=kind, instalments=rows, amount_minor=arrangements.parse_amount(amount, field="amount"),
                             note=note, today=local_date(now, tz), now=now, actor=principal.actor)
    msg = "waits+for+approval" if g.state == "proposed" else "active"
    return RedirectResponse(f"/debtors/arrangements/{g.id}?ok=Arrangement+ARR-{g.id}+{msg}", status_code=303)


@router.get("/debtors/arrangements/{arrangement_id}", response_class=HTMLResponse)
def detail_page(request: Request, arrangement_id: int, db: DB, now: Now, principal: View, ok: str = "") -> HTMLResponse:
    return render(request, "debtors/arrangements/detail.html", {"a": arrangements.detail(db, arrangement_id=arrangement_id, now=now, actor=principal.actor),
                                                                 "ok": ok or None}, principal=principal)


@router.post("/debtors/arrangements/{arrangement_id}/approve", response_model=None)
def approve(request: Request, arrangement_id: int, db: DB, now: Now, principal: Arrange) -> Response:
    arrangements.approve(db, arrangement_id=arrangement_id, now=now, actor=principal.actor)
    return RedirectResponse(f"/debtors/arrangements/{arrangement_id}?ok=Approved", status_code=303)


@router.post("/debtors/arrangements/{arrangement_id}/cancel", response_model=None)
def cancel(request: Request, arrangement_id: int, db: DB, now: Now, tz: Tz, principal: Arrange, reason: Annotated[str, Form()] = "") -> Response:
    arrangements.cancel(db, arrangement_id=arrangement_id, reason=reason, today=local_date(now, tz), now=now, actor=principal.actor)
    return RedirectResponse(f"/debtors/arrangements/{arrangement_id}?ok=Cancelled", status_code=303)


@router.get("/debtors/suspended", response_class=HTMLResponse)
def suspended_page(request: Request, db: DB, now: Now, tz: Tz, principal: View) -> HTMLResponse:
    today = local_date(now, tz)
    return render(request, "debtors/arrangements/suspended.html", {"rows": reconnect.suspended_accounts(db, today=today, now=now), "today": today},
                  principal=principal)
