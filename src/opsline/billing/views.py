"""Billing pages: bill runs (list, start, progress, review, approve, finalise, roll back) and the account balance panel."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session

from opsline.billing import billrun, review
from opsline.billing.service import AGEING_BUCKETS, BUCKET_LABELS, account_balance, ageing, recent_invoices
from opsline.core.errors import OpslineError
from opsline.web.deps import DB, Now, Principal, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)

View = Annotated[Principal, Depends(require("billing.view"))]
Run = Annotated[Principal, Depends(require("billing.run"))]


def _default_cycle(now: datetime) -> date:
    return billrun.add_months(now.date().replace(day=1), 1)


@router.get("/billing/runs", response_class=HTMLResponse)
def runs(request: Request, db: DB, principal: View) -> HTMLResponse:
    return render(request, "billing/runs.html", {"runs": billrun.list_runs(db)}, principal=principal)


@router.get("/billing/runs/new", response_class=HTMLResponse)
def run_new(request: Request, now: Now, principal: Run) -> HTMLResponse:
    return render(request, "billing/run_new.html", {"values": {"cycle_date": _default_cycle(now).isoformat(), "dry_run": False}, "error": None}, principal=principal)


@router.post("/billing/runs/new", response_model=None)
def run_create(request: Request, db: DB, now: Now, principal: Run, cycle_date: Annotated[str, Form()] = "",
               dry_run: Annotated[str, Form()] = "") -> HTMLResponse | RedirectResponse:
    values = {"cycle_date": cycle_date, "dry_run": bool(dry_run)}
    try:
        try:
            cycle = date.fromisoformat(cycle_date.strip())
        except ValueError:
            raise billrun.UnableToStartBillRun(f"'{cycle_date}' is not a date (YYYY-MM-DD)", field="cycle_date") from None
        run = billrun.start_bill_run(db, cycle_date=cycle, now=now, actor=principal.actor, dry_run=bool(dry_run))
    except OpslineError as exc:
        db.rollback()
        return render(request, "billing/run_new.html", {"values": values, "error": exc.detail}, principal=principal, status_code=exc.status)
    return RedirectResponse(f"/billing/runs/{run.id}", status_code=303)


def _detail_ctx(db: Session, bill_run_id: int) -> dict[str, Any]:
    return review.run_page(db, bill_run_id=bill_run_id, limit=50)


@router.get("/billing/runs/{bill_run_id}", response_class=HTMLResponse)
def run_detail(request: Request, bill_run_id: int, db: DB, principal: View) -> HTMLResponse:
    return render(request, "billing/run_detail.html", _detail_ctx(db, bill_run_id) | {"flash": request.query_params.get("ok")}, principal=principal)


@router.get("/billing/runs/{bill_run_id}/progress", response_class=HTMLResponse)
def run_progress(request: Request, bill_run_id: int, db: DB, principal: View, was: str = "") -> HTMLResponse:
    run = billrun.bill_run_detail(db, bill_run_id=bill_run_id)
    resp = render(request, "billing/_run_progress.html", {"run": run}, principal=principal)
    if was == "running" and not run["running"]:
        resp.headers["HX-Refresh"] = "true"  # computed: reload so the review appears
    return resp


@router.post("/billing/runs/{bill_run_id}/action", response_model=None)
def run_action(request: Request, bill_run_id: int, db: DB, now: Now, principal: View, action: Annotated[str, Form()],
               reason: Annotated[str, Form()] = "") -> HTMLResponse | RedirectResponse:
    try:
        billrun.act(db, bill_run_id=bill_run_id, action=action, now=now, actor=principal.actor, reason=reason or None)
    except OpslineError as exc:
        db.rollback()
        return render(request, "billing/run_detail.html", _detail_ctx(db, bill_run_id) | {"error": exc.detail}, principal=principal, status_code=exc.status)
    return RedirectResponse(f"/billing/runs/{bill_run_id}?ok={action}", status_code=303)


def balance_panel(session: Session, *, account_id: int, now: datetime) -> dict[str, Any]:
    """Account 360 panel: ledger balance, ageing buckets and the latest invoices."""
    bal = account_balance(session, account_id=account_id, as_of=now)
    age = ageing(session, account_id=account_id, as_of=now)
    row = next((a for a in age if a["currency"] == bal["currency"]), None) or {b: 0 for b in AGEING_BUCKETS}
    return {"balance": bal, "ageing": [{"key": b, "label": BUCKET_LABELS[b], "minor": row[b]} for b in AGEING_BUCKETS],
            "invoices": recent_invoices(session, account_id=account_id)}
