"""B2B service pages: the desk (contracts, credits to decide, recent violations), a contract with its SLA rules,
violations and credits, and the actions (create a contract, add a rule, evaluate a closed month, propose, approve or
reject a credit, end a contract) and the violations/credits export. Thin: parse, call one service function, redirect."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo
from urllib.parse import quote_plus

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsline.b2b import billcheck, changes, pnl, queries, reviews, service
from opsline.core.errors import InvalidInput
from opsline.core.exports import Sheet, download_headers, export_sheets
from opsline.core.localtime import local_date
from opsline.core.money import Money
from opsline.web.deps import DB, Now, Principal, Tz, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)
View = Annotated[Principal, Depends(require("b2b.view"))]
Manage = Annotated[Principal, Depends(require("b2b.manage"))]
Approve = Annotated[Principal, Depends(require("b2b.approve"))]
SignOff = Annotated[Principal, Depends(require("b2b.signoff"))]


def _date(raw: str, field: str, *, required: bool = False) -> date | None:
    raw = (raw or "").strip()
    if not raw:
        if required:
            raise InvalidInput("a date is required (YYYY-MM-DD)", field=field)
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"'{raw}' is not a date (YYYY-MM-DD)", field=field) from None


def _money(raw: str, currency: str, field: str) -> Money:
    raw = (raw or "").strip().replace(",", "")
    try:
        return Money.of(raw, currency)
    except Exception:  # noqa: BLE001  (any unparsable amount is the same user error)
        raise InvalidInput(f"'{raw}' is not an amount", field=field) from None


def _int(raw: str, field: str) -> int:
    raw = (raw or "").strip()
    if not raw.isdigit() or len(raw) > 12:
        raise InvalidInput(f"'{raw}' is not a number", field=field)
    return int(raw)


def _back(url: str, msg: str) -> RedirectResponse:
    return RedirectResponse(f"{url}?ok={quote_plus(msg)}", status_code=303)


@router.get("/b2b", response_class=HTMLResponse)
def desk_page(request: Request, db: DB, principal: View, ok: str = "") -> HTMLResponse:
    return render(request, "b2b/desk.html", {"d": queries.desk(db, actor=principal.actor), "ok": ok or None}, principal=principal)


@router.get("/b2b/contracts/{contract_id}", response_class=HTMLResponse)
def contract_page(request: Request, contract_id: int, db: DB, principal: View, ok: str = "") -> HTMLResponse:
    return render(request, "b2b/contract.html", {"d": queries.contract_detail(db, contract_id=contract_id, actor=principal.actor), "ok": ok or None},
                  principal=principal)


@router.get("/b2b/export")
def export(db: DB, principal: View, format: str = "xlsx") -> Response:
    v = queries.violations_list(db, limit=100_000)
    c = queries.credits_list(db, limit=100_000)
    sheets = [
        Sheet("Violations", ["period", "customer", "contract", "metric", "actual", "reference", "measured", "cause", "credit state", "credit"],
              [[r["period"].isoformat(), r["account_name"], r["contract_reference"], r["metric_label"], float(r["actual_value"]), float(r["reference_value"]),
                r["sample_size"], r["cause"] or "", r["credit_state"] or "", str(Money.from_minor(r["credit_minor"], r["currency"])) if r["credit_minor"] else ""]
               for r in v]),
        Sheet("Service credits", ["id", "period", "customer", "contract", "metric", "amount", "currency", "state", "proposed by", "decided by", "bill charge"],
              [[r["id"], r["period"].isoformat(), r["account_name"], r["contract_reference"], r["metric_label"], float(Money.from_minor(r["amount_minor"], r["currency"]).amount),
                r["currency"], r["state"], r["proposed_by"], r["decided_by"] or "", r["pending_charge_id"] or ""] for r in c]),
    ]
    filename, media, body = export_sheets(format, name="b2b-sla", sheets=sheets)
    return Response(body, media_type=media, headers=download_headers(filename))


@router.post("/b2b/contracts", response_model=None)
def create_contract(request: Request, db: DB, now: Now, principal: Manage, account_id: Annotated[str, Form()] = "", name: Annotated[str, Form()] = "",
                    valid_from: Annotated[str, Form()] = "", valid_to: Annotated[str, Form()] = "", monthly_value: Annotated[str, Form()] = "0",
                    credit_cap: Annotated[str, Form()] = "", currency: Annotated[str, Form()] = "ZAR", terms: Annotated[str, Form()] = "") -> Response:
    acc = _int(account_id, "account_id")
    cid = service.create_contract(db, account_id=acc, name=name, valid_from=_date(valid_from, "valid_from", required=True),  # type: ignore[arg-type]
                                  valid_to=_date(valid_to, "valid_to"), monthly_value=_money(monthly_value, currency, "monthly_value"),
                                  credit_cap=_money(credit_cap, currency, "credit_cap"), terms=terms, now=now, actor=principal.actor)
    return _back(f"/b2b/contracts/{cid}", "Contract created")


@router.post("/b2b/contracts/{contract_id}/rules", response_model=None)
def add_rule(request: Request, contract_id: int, db: DB, now: Now, principal: Manage, metric: Annotated[str, Form()] = "",
             operator: Annotated[str, Form()] = "", reference_value: Annotated[str, Form()] = "", tolerance: Annotated[str, Form()] = "0",
             consequence: Annotated[str, Form()] = "none", credit_percent: Annotated[str, Form()] = "", credit_fixed: Annotated[str, Form()] = "",
             currency: Annotated[str, Form()] = "ZAR", description: Annotated[str, Form()] = "") -> Response:
    fixed = _money(credit_fixed, currency, "credit_fixed") if credit_fixed.strip() else None
    service.add_rule(db, contract_id=contract_id, metric=metric, operator=operator, reference_value=reference_value, tolerance=tolerance,
                     consequence=consequence, credit_percent=credit_percent or None, credit_fixed=fixed, description=description, now=now,
                     actor=principal.actor)
    return _back(f"/b2b/contracts/{contract_id}", "Rule added")


@router.post("/b2b/contracts/{contract_id}/end", response_model=None)
def end_contract(request: Request, contract_id: int, db: DB, now: Now, principal: Manage, reason: Annotated[str, Form()] = "") -> Response:
    service.end_contract(db, contract_id=contract_id, reason=reason, now=now, actor=principal.actor)
    return _back(f"/b2b/contracts/{contract_id}", "Contract ended")


@router.post("/b2b/evaluate", response_model=None)
def evaluate(request: Request, db: DB, now: Now, tz: Tz, principal: Manage, period: Annotated[str, Form()] = "") -> Response:
    out = service.evaluate_month(db, period=service.month_start(period), now=now, tz=tz, actor=principal.actor)
    return _back("/b2b", f"{period}: {out['violations']} violations, {out['credits_proposed']} credits proposed")


@router.post("/b2b/violations/{violation_id}/credit", response_model=None)
def propose(request: Request, violation_id: int, db: DB, now: Now, principal: Manage, amount: Annotated[str, Form()] = "",
            currency: Annotated[str, Form()] = "ZAR") -> Response:
    service.propose_credit(db, violation_id=violation_id, amount=_money(amount, currency, "amount"), now=now, actor=principal.actor)
    return _back("/b2b", "Credit proposed; a second person decides it")


@router.post("/b2b/credits/{credit_id}/approve", response_model=None)
def approve(request: Request, credit_id: int, db: DB, now: Now, principal: Approve) -> Response:
    service.approve_credit(db, credit_id=credit_id, now=now, actor=principal.actor)
    return _back("/b2b", f"Credit {credit_id} approved: it is on the next bill")


@router.post("/b2b/credits/{credit_id}/reject", response_model=None)
def reject(request: Request, credit_id: int, db: DB, now: Now, principal: Approve, reason: Annotated[str, Form()] = "") -> Response:
    service.reject_credit(db, credit_id=credit_id, reason=reason, now=now, actor=principal.actor)
    return _back("/b2b", f"Credit {credit_id} rejected")


# --- monthly service reviews ----------------------------------------------------------------------------------------
@router.get("/b2b/reviews", response_class=HTMLResponse)
def reviews_page(request: Request, db: DB, principal: View, period: str = "", ok: str = "") -> HTMLResponse:
    return render(request, "b2b/reviews.html", {"rows": queries.reviews_list(db, period=service.month_start(period) if period else None),
                                                "period": period, "ok": ok or None}, principal=principal)


@router.post("/b2b/reviews/generate", response_model=None)
def generate_reviews(request: Request, db: DB, now: Now, tz: Tz, principal: Manage, period: Annotated[str, Form()] = "") -> Response:
    n = reviews.generate(db, period=service.month_start(period), now=now, tz=tz, actor=principal.actor)
    return _back("/b2b/reviews", f"{n} reviews generated for {period}")


@router.get("/b2b/reviews/{review_id}", response_class=HTMLResponse)
def review_page(request: Request, review_id: int, db: DB, tz: Tz, principal: View, ok: str = "") -> HTMLResponse:
    p = reviews.pack(db, review_id=review_id, tz=tz)
    p["review"]["buttons"] = [b for b in p["review"]["buttons"] if principal.can("b2b.approve")]
    return render(request, "b2b/review.html", {"p": p, "ok": ok or None}, principal=principal)


@router.get("/b2b/reviews/{review_id}/pdf")
def review_pdf(review_id: int, db: DB, tz: Tz, principal: View) -> Response:
    filename, body = reviews.pdf(db, review_id=review_id, tz=tz)
    return Response(body, media_type="application/pdf", headers=download_headers(filename))


@router.get("/b2b/reviews/{review_id}/export")
def review_export(review_id: int, db: DB, tz: Tz, principal: View, format: str = "xlsx") -> Response:
    name, sheets = reviews.sheets(db, review_id=review_id, tz=tz)
    filename, media, body = export_sheets(format, name=name, sheets=sheets)
    return Response(body, media_type=media, headers=download_headers(filename))


@router.post("/b2b/reviews/{review_id}/release", response_model=None)
def release_review(request: Request, review_id: int, db: DB, now: Now, tz: Tz, principal: Approve) -> Response:
    n = reviews.release(db, review_id=review_id, now=now, tz=tz, actor=principal.actor)
    return _back(f"/b2b/reviews/{review_id}", f"Released and emailed to {n} contacts")


@router.post("/b2b/reviews/{review_id}/actions", response_model=None)
def add_action(request: Request, review_id: int, db: DB, now: Now, tz: Tz, principal: Manage, title: Annotated[str, Form()] = "",
               owner: Annotated[str, Form()] = "", due_date: Annotated[str, Form()] = "") -> Response:
    p = reviews.pack(db, review_id=review_id, tz=tz)
    reviews.add_action(db, account_id=p["account"]["id"], period=p["review"]["period"], title=title, owner=owner, due_date=_date(due_date, "due_date"),
                       now=now, actor=principal.actor)
    return _back(f"/b2b/reviews/{review_id}", "Action added to the improvement plan")


@router.post("/b2b/reviews/{review_id}/actions/{action_id}", response_model=None)
def set_action(request: Request, review_id: int, action_id: int, db: DB, now: Now, principal: Manage, status: Annotated[str, Form()] = "") -> Response:
    rv = queries.review_period(db, review_id=review_id)
    reviews.set_action_status(db, action_id=action_id, status=status, period=rv, now=now, actor=principal.actor)
    return _back(f"/b2b/reviews/{review_id}", f"Action {status.replace('_', ' ')}")


# --- change requests --------------------------------------------------------------------------------------------------
@router.post("/b2b/contracts/{contract_id}/changes", response_model=None)
def create_change(request: Request, contract_id: int, db: DB, now: Now, principal: Manage, title: Annotated[str, Form()] = "",
                  description: Annotated[str, Form()] = "", scope: Annotated[str, Form()] = "", impact: Annotated[str, Form()] = "",
                  price: Annotated[str, Form()] = "", currency: Annotated[str, Form()] = "ZAR") -> Response:
    money = _money(price, currency, "price") if price.strip() else None
    changes.create(db, contract_id=contract_id, title=title, description=description, scope=scope, impact=impact, price=money, now=now,
                   actor=principal.actor)
    return _back(f"/b2b/contracts/{contract_id}", "Change request submitted; a second person approves it")


@router.post("/b2b/changes/{change_id}/quote", response_model=None)
def change_quote(request: Request, change_id: int, db: DB, now: Now, tz: Tz, principal: Manage, offering_id: Annotated[str, Form()] = "",
                 site_id: Annotated[str, Form()] = "") -> Response:
    qid = changes.to_quote(db, change_id=change_id, offering_id=_int(offering_id, "offering_id"),
                           site_id=_int(site_id, "site_id") if site_id.strip() else None, now=now, tz=tz, actor=principal.actor)
    return RedirectResponse(f"/quotes/{qid}", status_code=303)


@router.post("/b2b/changes/{change_id}/order", response_model=None)
def change_order(request: Request, change_id: int, db: DB, now: Now, principal: Manage, order_id: Annotated[str, Form()] = "") -> Response:
    changes.link_order(db, change_id=change_id, order_id=_int(order_id, "order_id"), now=now, actor=principal.actor)
    return _back(f"/b2b/contracts/{queries.change_contract(db, change_id=change_id)}", "Delivering order linked")


@router.post("/b2b/changes/{change_id}/{action}", response_model=None)
def change_action(request: Request, change_id: int, action: str, db: DB, now: Now, principal: Manage, reason: Annotated[str, Form()] = "") -> Response:
    changes.act(db, change_id=change_id, action=action, reason=reason, now=now, actor=principal.actor)
    return _back(f"/b2b/contracts/{queries.change_contract(db, change_id=change_id)}", f"Change request: {action}")


@router.get("/b2b/pnl/{account_id}", response_class=HTMLResponse)
def pnl_page(request: Request, account_id: int, db: DB, now: Now, tz: Tz, principal: View, month: str = "") -> HTMLResponse:
    last = service.month_start(month, "month") if month else _last_month(now, tz)
    return render(request, "b2b/pnl.html", {"r": pnl.services_pnl(db, account_id=account_id, last=last, tz=tz)}, principal=principal)


@router.get("/b2b/pnl/{account_id}/export")
def pnl_export(account_id: int, db: DB, now: Now, tz: Tz, principal: View, month: str = "", format: str = "xlsx") -> Response:
    last = service.month_start(month, "month") if month else _last_month(now, tz)
    r = pnl.services_pnl(db, account_id=account_id, last=last, tz=tz)
    sheet = Sheet("Services P&L", ["month"] + [label for _, label in r["columns"]] + ["currency"],
                  [[m["period"].strftime("%Y-%m")] + [float(Money.from_minor(m[k], r["currency"]).amount) for k, _ in r["columns"]] + [r["currency"]]
                   for m in r["months"]])
    filename, media, body = export_sheets(format, name=f"services-pnl-{r['account']['account_number']}", sheets=[sheet])
    return Response(body, media_type=media, headers=download_headers(filename))


def _last_month(now: datetime, tz: ZoneInfo) -> date:
    today = local_date(now, tz)
    return date(today.year - (today.month == 1), (today.month - 2) % 12 + 1, 1)


# --- billing peer review --------------------------------------------------------------------------------------------
@router.get("/b2b/billcheck", response_class=HTMLResponse)
def billcheck_page(request: Request, db: DB, principal: View, state: str = "open", ok: str = "") -> HTMLResponse:
    return render(request, "b2b/billcheck.html", {"rows": billcheck.listing(db, state=state if state in ("open", "signed_off") else None),
                                                  "state": state, "ok": ok or None}, principal=principal)


@router.post("/b2b/billcheck/{check_id}/signoff", response_model=None)
def billcheck_signoff(request: Request, check_id: int, db: DB, now: Now, principal: SignOff, note: Annotated[str, Form()] = "") -> Response:
    billcheck.sign_off(db, check_id=check_id, note=note, now=now, actor=principal.actor)
    return _back("/b2b/billcheck", f"Difference {check_id} signed off")
