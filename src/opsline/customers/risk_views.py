"""Risk pages: flags on an account (set, clear), the banner every account, case and order page shows, flagged
accounts, and the orders desk's risk review (release or reject a held order, four eyes)."""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from opsline.core.errors import InvalidInput
from opsline.customers import merge, quality, risk, service
from opsline.orders.models import ProductOrder
from opsline.orders.service import risk_hold, risk_review
from opsline.web.deps import DB, Now, Principal, Tz, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)

View = Annotated[Principal, Depends(require("customers.view"))]
Flagger = Annotated[Principal, Depends(require("risk.flag"))]
Reviewer = Annotated[Principal, Depends(require("risk.review"))]
OrdersView = Annotated[Principal, Depends(require("orders.view"))]


@router.post("/accounts/{account_id}/risk-flags", response_model=None)
def set_flag(account_id: int, db: DB, now: Now, tz: Tz, principal: Flagger, kind: Annotated[str, Form()] = "",
             reason: Annotated[str, Form(max_length=2000)] = "", expires_on: Annotated[str, Form()] = "") -> RedirectResponse:
    expires_at = None
    if expires_on.strip():
        try:
            expires_at = datetime.combine(datetime.strptime(expires_on.strip(), "%Y-%m-%d").date(), time(0), tzinfo=tz)
        except ValueError:
            raise InvalidInput(f"expiry '{expires_on}' is not a date (YYYY-MM-DD)", field="expires_on") from None
    risk.set_flag(db, account_id=account_id, kind=kind, reason=reason, expires_at=expires_at, now=now, actor=principal.actor)
    return RedirectResponse(f"/accounts/{account_id}#panel-risk", status_code=303)


@router.post("/risk-flags/{flag_id}/clear", response_model=None)
def clear_flag(flag_id: int, db: DB, now: Now, principal: Flagger, reason: Annotated[str, Form(max_length=2000)] = "") -> RedirectResponse:
    flag = risk.clear_flag(db, flag_id=flag_id, reason=reason, now=now, actor=principal.actor)
    return RedirectResponse(f"/accounts/{flag.account_id}#panel-risk", status_code=303)


@router.get("/accounts/{account_id}/risk-banner", response_class=HTMLResponse)
def banner(request: Request, account_id: int, db: DB, now: Now, principal: View, contact: str = "", back: str = "", order_id: int = 0) -> HTMLResponse:
    """The flags in force (and, for a merged account, where it went), as a banner (HTMX fragment on account, case and
    order pages). With `contact` (a case page),
    also the "confirm or update details" form for that contact, returning to `back`."""
    acc = service.get_account(db, account_id=account_id)
    ctx = {"flags": risk.active_flags(db, account_id=acc.id, now=now), "account_id": acc.id, "account_number": acc.account_number, "confirm": None,
           "merged_into": merge.merges_of(db, account_id=acc.id)["merged_into"]}
    if order_id:  # an order page: its risk hold and credit check, if any
        hold = risk_hold.hold_for_order(db, order_id=order_id)
        if hold is not None and hold.account_id == acc.id:
            ctx["hold"] = {"id": hold.id, "state": hold.state, "reasons": list(hold.reasons or []), "placed_by": hold.placed_by,
                           "decided_by": hold.decided_by, "decision_reason": hold.decision_reason}
        check = risk_hold.check_for_order(db, order_id=order_id)
        ctx["credit_check"] = check if check is not None and db.get(ProductOrder, order_id).account_id == acc.id else None
    if contact and principal.can("customers.edit"):
        ctx["confirm"] = quality.confirm_panel(db, account_id=acc.id, now=now) | {
            "contact": contact[:200], "back": back if back.startswith("/") and not back.startswith("//") else None}
    return render(request, "customers/_risk_banner.html", ctx, principal=principal)


@router.get("/risk/flags", response_class=HTMLResponse)
def flagged(request: Request, db: DB, now: Now, principal: View) -> HTMLResponse:
    return render(request, "customers/risk_flags.html", {"flags": risk.flagged_accounts(db, now=now)}, principal=principal)


@router.get("/risk/holds", response_class=HTMLResponse)
def holds(request: Request, db: DB, principal: OrdersView, state: str = "pending") -> HTMLResponse:
    state = state if state in ("pending", "released", "rejected", "") else "pending"
    return render(request, "customers/risk_holds.html", {"holds": risk_review.holds(db, state=state), "state": state}, principal=principal)


@router.post("/risk/holds/{hold_id}/release", response_model=None)
def release(hold_id: int, db: DB, now: Now, tz: Tz, principal: Reviewer, reason: Annotated[str, Form(max_length=2000)] = "") -> RedirectResponse:
    order = risk_review.release(db, hold_id=hold_id, reason=reason, now=now, tz=tz, actor=principal.actor)
    return RedirectResponse(f"/orders/{order.id}", status_code=303)


@router.post("/risk/holds/{hold_id}/reject", response_model=None)
def reject(hold_id: int, db: DB, now: Now, tz: Tz, principal: Reviewer, reason: Annotated[str, Form(max_length=2000)] = "") -> RedirectResponse:
    risk_review.reject(db, hold_id=hold_id, reason=reason, now=now, tz=tz, actor=principal.actor)
    return RedirectResponse("/risk/holds", status_code=303)
