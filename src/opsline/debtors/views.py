"""Debtors desk pages: today's work, the dunning run (dry run first, then run), run detail with the actions, proposals
decided by a person, letters of demand, holds, and the dunning policies. Thin: parse, call one service, render.
Errors are raised as the service's OpslineError: problem+json (or the error page for a browser)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from opsline.core.errors import InvalidInput
from opsline.core.localtime import local_date
from opsline.customers.models import Account
from opsline.debtors import actions, arrangements, desk, holds, policies, runs
from opsline.web.deps import DB, Now, Principal, Tz, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)
View = Annotated[Principal, Depends(require("debtors.view"))]
Run = Annotated[Principal, Depends(require("debtors.run"))]
Act = Annotated[Principal, Depends(require("debtors.act"))]
Hold = Annotated[Principal, Depends(require("debtors.hold"))]
Policy = Annotated[Principal, Depends(require("debtors.policy"))]


@router.get("/debtors", response_class=HTMLResponse)
def desk_page(request: Request, db: DB, now: Now, tz: Tz, principal: View, ok: str = "") -> HTMLResponse:
    today = local_date(now, tz)
    can_approve = principal.can("debtors.writeoff.approve")
    work = desk.today_work(db, today=today, now=now, actor_name=principal.actor.name, can_approve=can_approve,
                           arrangement_limit=arrangements.approval_limit(db, actor=principal.actor) if can_approve else None)
    return render(request, "debtors/desk.html", {"summary": desk.summary(db, today=today), "proposals": desk.proposals(db), "work": work,
                                                 "can_approve": can_approve, "runs": runs.list_runs(db, limit=10), "today": today, "ok": ok or None},
                  principal=principal)


@router.get("/debtors/run", response_class=HTMLResponse)
def run_page(request: Request, db: DB, now: Now, tz: Tz, principal: View, date: str = "") -> HTMLResponse:
    """With ?date=D: the dry run for D (per step counts and amounts, exclusions) and the button to run it."""
    today = local_date(now, tz)
    preview = None
    if date:
        preview = runs.dry_run(db, run_date=runs.parse_run_date(date), today=today, now=now)
    return render(request, "debtors/run.html", {"today": today, "date": date or today.isoformat(), "preview": preview,
                                                "runs": runs.list_runs(db, limit=20)}, principal=principal)


@router.post("/debtors/run", response_model=None)
def run_post(request: Request, db: DB, now: Now, tz: Tz, principal: Run, date: Annotated[str, Form()] = "") -> Response:
    res = runs.run_dunning(db, run_date=runs.parse_run_date(date), today=local_date(now, tz), now=now, actor=principal.actor)
    note = "already+ran+(nothing+done)" if res["already_run"] else f"{res['actions']}+actions"
    return RedirectResponse(f"/debtors/runs/{res['run_id']}?ok=Dunning+{res['run_date']}:+{note}", status_code=303)


@router.get("/debtors/runs/{run_id}", response_class=HTMLResponse)
def run_detail(request: Request, run_id: int, db: DB, principal: View, ok: str = "") -> HTMLResponse:
    return render(request, "debtors/run_detail.html", {"run": runs.get_run(db, run_id=run_id), "actions": desk.run_actions(db, run_id=run_id),
                                                       "ok": ok or None}, principal=principal)


@router.post("/debtors/actions/{action_id}/decide", response_model=None)
def decide(request: Request, action_id: int, db: DB, now: Now, principal: Act, decision: Annotated[str, Form()] = "",
           reason: Annotated[str, Form()] = "") -> Response:
    actions.decide(db, action_id=action_id, decision=decision, reason=reason, now=now, actor=principal.actor)
    return RedirectResponse(f"/debtors?ok=Action+DUN-{action_id}+{'done' if decision == 'accept' else 'dismissed'}#proposals", status_code=303)


@router.get("/debtors/actions/{action_id}/letter.pdf")
def letter(action_id: int, db: DB, principal: View) -> Response:
    name, pdf = actions.letter_pdf(db, action_id=action_id)
    return Response(pdf, media_type="application/pdf", headers={"Content-Disposition": f'inline; filename="{name}"'})


@router.get("/debtors/holds", response_class=HTMLResponse)
def holds_page(request: Request, db: DB, now: Now, tz: Tz, principal: View, ok: str = "") -> HTMLResponse:
    today = local_date(now, tz)
    return render(request, "debtors/holds.html", {"holds": holds.holds(db, today=today), "today": today, "ok": ok or None}, principal=principal)


@router.post("/debtors/holds", response_model=None)
def hold_post(request: Request, db: DB, now: Now, tz: Tz, principal: Hold, account: Annotated[str, Form()] = "",
              reason: Annotated[str, Form()] = "", valid_to: Annotated[str, Form()] = "", back: Annotated[str, Form()] = "") -> Response:
    key = account.strip()
    acc_id = db.execute(select(Account.id).where(Account.account_number == key)).scalar() if key else None
    if acc_id is None and key.isdigit() and db.get(Account, int(key)) is not None:
        acc_id = int(key)
    if acc_id is None:
        raise InvalidInput(f"no account '{key}' (give the account number)", field="account")
    end = holds.parse_date(valid_to, field="valid_to")
    h = holds.place_hold(db, account_id=acc_id, reason=reason, valid_to=end, today=local_date(now, tz), now=now, actor=principal.actor)
    if back.startswith("/accounts/") and back[len("/accounts/"):].isdigit():  # from the account page's panel: back there
        return RedirectResponse(f"{back}?ok=Dunning+held+until+{h.valid_to.isoformat()}", status_code=303)
    return RedirectResponse(f"/debtors/holds?ok=Held+until+{h.valid_to.isoformat()}", status_code=303)


@router.post("/debtors/holds/{hold_id}/release", response_model=None)
def hold_release(request: Request, hold_id: int, db: DB, now: Now, principal: Hold, reason: Annotated[str, Form()] = "") -> Response:
    holds.release_hold(db, hold_id=hold_id, reason=reason, now=now, actor=principal.actor)
    return RedirectResponse("/debtors/holds?ok=Hold+released", status_code=303)


@router.get("/debtors/policies", response_class=HTMLResponse)
def policies_page(request: Request, db: DB, principal: View, ok: str = "") -> HTMLResponse:
    from opsline.debtors.models import HANDLERS, StepAction

    return render(request, "debtors/policies.html", {"policies": policies.list_policies(db), "actions": [a.value for a in StepAction],
                                                     "handlers": HANDLERS, "ok": ok or None}, principal=principal)


def _int(raw: str, field: str) -> int:
    raw = (raw or "").strip()
    if not raw.lstrip("-").isdigit():
        raise policies.UnableToSavePolicy(f"'{raw}' is not a whole number", field=field)
    return int(raw)


def _minor(raw: str, field: str) -> int:
    from decimal import Decimal, InvalidOperation

    try:
        return int((Decimal((raw or "0").replace(" ", "").replace(",", "")) * 100).to_integral_value())
    except InvalidOperation:
        raise policies.UnableToSavePolicy(f"'{raw}' is not an amount", field=field) from None


@router.post("/debtors/policies/{policy_id}", response_model=None)
def policy_save(request: Request, policy_id: int, db: DB, now: Now, principal: Policy, version: Annotated[str, Form()] = "",
                name: Annotated[list[str], Form()] = [], action: Annotated[list[str], Form()] = [],  # noqa: B006
                min_days_overdue: Annotated[list[str], Form()] = [], min_balance: Annotated[list[str], Form()] = [],  # noqa: B006
                notice_days: Annotated[list[str], Form()] = [], handled_by: Annotated[list[str], Form()] = []) -> Response:  # noqa: B006
    pol = policies.get_policy(db, policy_id=policy_id)
    steps = []
    for k, nm in enumerate(name, start=1):
        if not nm.strip() and not (action[k - 1:k] or [""])[0]:
            continue  # the blank row for a new step
        at = lambda xs, d="": xs[k - 1] if k - 1 < len(xs) else d  # noqa: E731
        steps.append(policies.StepIn(name=nm, action=at(action), min_days_overdue=_int(at(min_days_overdue), f"steps[{k}].min_days_overdue"),
                                     min_balance_minor=_minor(at(min_balance, "0"), f"steps[{k}].min_balance"),
                                     notice_days=_int(at(notice_days, "0"), f"steps[{k}].notice_days"), handled_by=at(handled_by, "system")))
    policies.save_policy(db, code=pol.code, name=pol.name, segment_code=pol.segment_code, value_tier_code=pol.value_tier_code, steps=steps,
                         now=now, actor=principal.actor, currency=pol.currency, description=pol.description,
                         version=_int(version, "version") if version else None)
    return RedirectResponse(f"/debtors/policies?ok=Policy+{pol.code}+saved#policy-{pol.id}", status_code=303)
