"""Customer portal pages under /portal: sign-in (password, optional SMS code), verification, reset and invitation
links, then the customer's accounts. Thin: parse, call one portal service function, render."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from opsline.core.errors import NotAuthenticated, NotFound, OpslineError
from opsline.core.ids import token as new_token
from opsline.portal import auth
from opsline.portal import service as svc
from opsline.portal.auth import Customer
from opsline.portal.deps import customer, customer_token
from opsline.users.signin import TooManySignInAttempts
from opsline.web.auth import client_ip
from opsline.web.deps import DB, Now, Tz, public
from opsline.web.security import cookie_secure, csrf_sent_matches, sign_out_with_csrf
from opsline.web.templating import render

router = APIRouter(prefix="/portal", include_in_schema=False)
FORM_COOKIE = "opsline_portal_form"  # CSRF for the forms shown before there is a session (double-submit cookie)
Signed = Annotated[Customer, Depends(customer("portal"))]
Text = Annotated[str, Form(max_length=2000)]


def _link_base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _page(request: Request, template: str, ctx: dict[str, Any], *, status_code: int = 200, who: Customer | None = None) -> HTMLResponse:
    return render(request, f"portal/{template}", {"customer": who, "error": None, "notice": None} | ctx, status_code=status_code)


def _public_form(request: Request, template: str, ctx: dict[str, Any], *, status_code: int = 200) -> HTMLResponse:
    tok = new_token(24)
    request.state.csrf_token = tok
    page = _page(request, template, ctx, status_code=status_code)
    page.set_cookie(FORM_COOKIE, tok, max_age=3600, httponly=True, samesite="strict", secure=cookie_secure(request), path="/portal")
    return page


def _public_csrf_ok(request: Request) -> bool:
    return csrf_sent_matches(request, request.cookies.get(FORM_COOKIE, ""))


def _set_session(response: Response, request: Request, tok: str) -> None:
    response.set_cookie(auth.COOKIE_NAME, tok, max_age=auth.SESSION_MAX_AGE, httponly=True, samesite="lax", secure=cookie_secure(request), path="/portal")


def _hidden(request: Request, db: Any, who: Customer, now: datetime, exc: OpslineError) -> HTMLResponse:
    """Another customer's URL: the same 404 as a missing one, logged and audited as this customer."""
    db.rollback()
    svc.record_refusal(db, customer=who, what=f"{request.method} {request.url.path}", now=now, ip=client_ip(request))
    return _page(request, "error.html", {"status": 404, "title": "Not found", "detail": "There is no such page in your self-service."}, status_code=404, who=who)


def _failed(request: Request, db: Any, who: Customer, exc: Exception) -> tuple[str, int]:
    """A refused action: undo whatever it started, and say why (the page is shown again with the message)."""
    db.rollback()
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()), 422
    assert isinstance(exc, OpslineError)
    return exc.detail, exc.status


# --- sign-in ------------------------------------------------------------------------------------------------
@router.get("/login", response_class=HTMLResponse, dependencies=[Depends(public("the customer sign-in form"))])
def login_page(request: Request) -> HTMLResponse:
    return _public_form(request, "login.html", {"email": ""})


@router.post("/login", response_model=None, dependencies=[Depends(public("customers signing in"))])
def login(request: Request, db: DB, now: Now, email: Annotated[str, Form(max_length=200)], password: Annotated[str, Form(max_length=1000)]) -> Response:
    ctx = {"email": email}
    if not _public_csrf_ok(request):
        return _public_form(request, "login.html", ctx | {"error": "the sign-in form had expired; please try again"}, status_code=403)
    try:
        user = auth.sign_in(db, email=email, password=password, ip=client_ip(request), now=now)
    except TooManySignInAttempts as exc:
        page = _public_form(request, "login.html", ctx | {"error": exc.detail}, status_code=429)
        page.headers["Retry-After"] = str(exc.retry_after_seconds)
        return page
    except auth.EmailNotVerified as exc:
        return _public_form(request, "login.html", ctx | {"error": exc.detail, "resend": True}, status_code=401)
    except NotAuthenticated as exc:
        return _public_form(request, "login.html", ctx | {"error": exc.detail}, status_code=401)
    old = customer_token(request)
    if old:
        auth.sign_out(db, token=old, now=now)
    row, tok, sms = auth.start_session(db, user=user, now=now, ip=client_ip(request), user_agent=request.headers.get("user-agent"))
    response = RedirectResponse("/portal/code" if sms else "/portal", status_code=303)
    _set_session(response, request, tok)
    response.delete_cookie(FORM_COOKIE, path="/portal")
    return response


@router.get("/code", response_class=HTMLResponse, dependencies=[Depends(public("the SMS code form of a half-finished sign-in"))])
def code_page(request: Request, db: DB, now: Now) -> Response:
    if not auth.pending_code(db, token=customer_token(request), now=now):
        return RedirectResponse("/portal/login", status_code=303)
    return _public_form(request, "code.html", {})


@router.post("/code", response_model=None, dependencies=[Depends(public("the SMS code of a half-finished sign-in"))])
def code(request: Request, db: DB, now: Now, code: Annotated[str, Form(max_length=12)]) -> Response:
    if not _public_csrf_ok(request):
        return _public_form(request, "code.html", {"error": "the form had expired; please try again"}, status_code=403)
    try:
        auth.check_code(db, token=customer_token(request), code=code, now=now)
    except NotAuthenticated as exc:
        if auth.pending_code(db, token=customer_token(request), now=now):
            return _public_form(request, "code.html", {"error": exc.detail}, status_code=401)
        return _public_form(request, "login.html", {"email": "", "error": exc.detail}, status_code=401)
    return RedirectResponse("/portal", status_code=303)


@router.post("/logout", response_model=None, dependencies=[Depends(public("signing out ends only the caller's own session"))])
def logout(request: Request, db: DB, now: Now) -> RedirectResponse:
    return sign_out_with_csrf(request, token=customer_token(request), load=lambda tok: auth.load_customer(db, token=tok, now=now),
                              sign_out=lambda tok: auth.sign_out(db, token=tok, now=now), cookie=auth.COOKIE_NAME, path="/portal", redirect="/portal/login")


@router.get("/reset", response_class=HTMLResponse, dependencies=[Depends(public("asking for a password reset link"))])
def reset_request_page(request: Request) -> HTMLResponse:
    return _public_form(request, "reset_request.html", {})


@router.post("/reset", response_model=None, dependencies=[Depends(public("asking for a password reset link (same answer for any address)"))])
def reset_request(request: Request, db: DB, now: Now, email: Annotated[str, Form(max_length=200)]) -> HTMLResponse:
    if not _public_csrf_ok(request):
        return _public_form(request, "reset_request.html", {"error": "the form had expired; please try again"}, status_code=403)
    auth.request_reset(db, email=email, link_base=_link_base(request), now=now, ip=client_ip(request))
    return _public_form(request, "reset_request.html", {"notice": "If that address has a self-service login, we emailed it a link to choose a new password."})


@router.post("/verify/resend", response_model=None, dependencies=[Depends(public("asking for a new verification link (same answer for any address)"))])
def resend_verification(request: Request, db: DB, now: Now, email: Annotated[str, Form(max_length=200)]) -> HTMLResponse:
    if not _public_csrf_ok(request):
        return _public_form(request, "login.html", {"email": email, "error": "the form had expired; please try again"}, status_code=403)
    user = auth.unverified_user(db, email=email)
    if user is not None:
        auth.send_verification(db, user_id=user.id, link_base=_link_base(request), now=now, actor=auth.actor_for(user.email))
    return _public_form(request, "login.html", {"email": email, "notice": "If that address is waiting for verification, we emailed it a new link."})


@router.get("/verify/{token}", response_class=HTMLResponse, dependencies=[Depends(public("a verification link from an email (the token is the credential)"))])
def verify(request: Request, db: DB, now: Now, token: str) -> HTMLResponse:
    try:
        auth.use_token(db, token=token, purpose="verify", now=now)
    except auth.LinkNotValid as exc:
        return _public_form(request, "login.html", {"email": "", "error": exc.detail}, status_code=410)
    return _public_form(request, "login.html", {"email": "", "notice": "Thank you: your email address is confirmed. Sign in below."})


def _token_page(request: Request, db: Any, now: datetime, token: str, purpose: str, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    try:
        user = auth.token_user(db, token=token, purpose=purpose, now=now)
    except auth.LinkNotValid as exc:
        return _public_form(request, "login.html", {"email": "", "error": exc.detail}, status_code=410)
    return _public_form(request, "set_password.html", {"purpose": purpose, "token": token, "email": user.email, "error": error}, status_code=status_code)


@router.get("/reset/{token}", response_class=HTMLResponse, dependencies=[Depends(public("a password reset link from an email (the token is the credential)"))])
def reset_page(request: Request, db: DB, now: Now, token: str) -> HTMLResponse:
    return _token_page(request, db, now, token, "reset")


@router.get("/invite/{token}", response_class=HTMLResponse, dependencies=[Depends(public("an invitation link from an email (the token is the credential)"))])
def invite_page(request: Request, db: DB, now: Now, token: str) -> HTMLResponse:
    return _token_page(request, db, now, token, "invite")


def _set_password(request: Request, db: Any, now: datetime, token: str, purpose: str, password: str, confirm: str) -> HTMLResponse:
    if not _public_csrf_ok(request):
        return _token_page(request, db, now, token, purpose, "the form had expired; please try again", 403)
    if password != confirm:
        return _token_page(request, db, now, token, purpose, "the two passwords differ", 422)
    try:
        auth.use_token(db, token=token, purpose=purpose, now=now, password=password)
    except auth.LinkNotValid as exc:
        return _public_form(request, "login.html", {"email": "", "error": exc.detail}, status_code=410)
    except auth.PasswordTooWeak as exc:
        db.rollback()
        return _token_page(request, db, now, token, purpose, exc.detail, 422)
    return _public_form(request, "login.html", {"email": "", "notice": "Your password is set. Sign in below."})


@router.post("/reset/{token}", response_model=None, dependencies=[Depends(public("using a password reset link (the token is the credential)"))])
def reset(request: Request, db: DB, now: Now, token: str, password: Annotated[str, Form(max_length=1000)], confirm: Annotated[str, Form(max_length=1000)]) -> HTMLResponse:
    return _set_password(request, db, now, token, "reset", password, confirm)


@router.post("/invite/{token}", response_model=None, dependencies=[Depends(public("accepting an invitation (the token is the credential)"))])
def accept_invite(request: Request, db: DB, now: Now, token: str, password: Annotated[str, Form(max_length=1000)], confirm: Annotated[str, Form(max_length=1000)]) -> HTMLResponse:
    return _set_password(request, db, now, token, "invite", password, confirm)


# --- the customer's pages -------------------------------------------------------------------------------------
@router.get("", response_class=HTMLResponse)
def home(request: Request, db: DB, now: Now, who: Signed) -> Response:
    accounts = svc.home(db, customer=who, now=now)
    if len(accounts) == 1 and not request.query_params.get("all"):
        return RedirectResponse(f"/portal/accounts/{accounts[0]['account_number']}", status_code=303)
    companies = sorted({a["party_id"] for a in accounts if a["role"] == "admin"})
    return _page(request, "home.html", {"accounts": accounts, "companies": companies}, who=who)


def _account_page(request: Request, db: Any, now: datetime, tz: Any, who: Customer, number: str, *, error: str | None = None,
                  notice: str | None = None, status_code: int = 200) -> HTMLResponse:
    try:
        account = svc.account_for(db, customer=who, number=number)
    except svc.AccountHidden as exc:
        return _hidden(request, db, who, now, exc)
    data = svc.account_page(db, account=account, now=now, tz=tz)
    return _page(request, "account.html", {"account": account, **data, "error": error, "notice": notice or request.query_params.get("done")},
                 status_code=status_code, who=who)


@router.get("/accounts/{number}", response_class=HTMLResponse)
def account(request: Request, db: DB, now: Now, tz: Tz, who: Signed, number: str) -> HTMLResponse:
    return _account_page(request, db, now, tz, who, number)


@router.get("/accounts/{number}/statement", response_class=HTMLResponse)
def statement(request: Request, db: DB, now: Now, tz: Tz, who: Signed, number: str, date_from: date | None = None, date_to: date | None = None) -> HTMLResponse:
    try:
        account = svc.account_for(db, customer=who, number=number)
        data = svc.statement_page(db, account=account, date_from=date_from, date_to=date_to, now=now, tz=tz)
    except svc.AccountHidden as exc:
        return _hidden(request, db, who, now, exc)
    return _page(request, "statement.html", {"account": account, "statement": data, "pay": svc.pay_instructions(db, account=account)}, who=who)


def _invoice_page(request: Request, db: Any, now: datetime, who: Customer, number: str, invoice_id: int, *, error: str | None = None,
                  notice: str | None = None, status_code: int = 200) -> HTMLResponse:
    try:
        account = svc.account_for(db, customer=who, number=number)
        inv = svc.invoice_for(db, account=account, invoice_id=invoice_id)
    except svc.AccountHidden as exc:
        return _hidden(request, db, who, now, exc)
    return _page(request, "invoice.html", {"account": account, "invoice": inv, "error": error, "notice": notice, "pay": svc.pay_instructions(db, account=account)},
                 status_code=status_code, who=who)


@router.get("/accounts/{number}/invoices/{invoice_id}", response_class=HTMLResponse)
def invoice(request: Request, db: DB, now: Now, who: Signed, number: str, invoice_id: int) -> HTMLResponse:
    return _invoice_page(request, db, now, who, number, invoice_id)


@router.get("/accounts/{number}/invoices/{invoice_id}/pdf", response_model=None)
def invoice_pdf(request: Request, db: DB, now: Now, who: Signed, number: str, invoice_id: int) -> Response:
    try:
        account = svc.account_for(db, customer=who, number=number)
        name, content = svc.invoice_pdf(db, account=account, invoice_id=invoice_id, now=now)
    except svc.AccountHidden as exc:
        return _hidden(request, db, who, now, exc)
    return Response(content, media_type="application/pdf", headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/accounts/{number}/invoices/{invoice_id}/claim", response_model=None)
def claim(request: Request, db: DB, now: Now, who: Signed, number: str, invoice_id: int, line_id: Annotated[int, Form()],
          amount: Annotated[str, Form(max_length=30)], reason: Text) -> Response:
    try:
        account = svc.account_for(db, customer=who, number=number, need="billing")
        made = svc.raise_claim(db, customer=who, account=account, invoice_id=invoice_id, line_id=line_id, amount=amount, reason=reason, now=now,
                               link_base=_link_base(request))
    except svc.AccountHidden as exc:
        return _hidden(request, db, who, now, exc)
    except OpslineError as exc:
        detail, status = _failed(request, db, who, exc)
        return _invoice_page(request, db, now, who, number, invoice_id, error=detail, status_code=status)
    return _invoice_page(request, db, now, who, number, invoice_id, notice=f"Your billing query (claim {made['id']}) for {made['amount']} is with us; "
                         f"we will answer by {made['due_date'].isoformat()}.")


@router.post("/accounts/{number}/promise", response_model=None)
def promise(request: Request, db: DB, now: Now, tz: Tz, who: Signed, number: str, pay_by: Annotated[str, Form(max_length=10)],
            amount: Annotated[str, Form(max_length=30)] = "", kind: Annotated[str, Form(max_length=10)] = "promise", note: Text = "") -> Response:
    try:
        account = svc.account_for(db, customer=who, number=number, need="billing")
        made = svc.promise_to_pay(db, customer=who, account=account, amount=amount, pay_by=pay_by, kind=kind, note=note, now=now, tz=tz)
    except svc.AccountHidden as exc:
        return _hidden(request, db, who, now, exc)
    except OpslineError as exc:
        detail, status = _failed(request, db, who, exc)
        return _account_page(request, db, now, tz, who, number, error=detail, status_code=status)
    return _account_page(request, db, now, tz, who, number, notice=f"Thank you: your request (arrangement {made['id']}) is {made['state'].replace('_', ' ')}.")


# --- cancellation with a collection slot ---------------------------------------------------------------------
def _cancel_page(request: Request, db: Any, now: datetime, tz: Any, who: Customer, number: str, product_id: int, requested: date | None,
                 *, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    try:
        account = svc.account_for(db, customer=who, number=number, need="order")
        data = svc.cancellation_preview(db, account=account, product_id=product_id, requested_date=requested, now=now, tz=tz)
    except svc.AccountHidden as exc:
        return _hidden(request, db, who, now, exc)
    except OpslineError as exc:
        db.rollback()
        return _account_page(request, db, now, tz, who, number, error=exc.detail, status_code=exc.status)
    return _page(request, "cancel.html", {"account": account, **data, "requested": requested, "error": error}, status_code=status_code, who=who)


@router.get("/accounts/{number}/products/{product_id}/cancel", response_class=HTMLResponse)
def cancel_page(request: Request, db: DB, now: Now, tz: Tz, who: Signed, number: str, product_id: int, requested: date | None = None) -> HTMLResponse:
    return _cancel_page(request, db, now, tz, who, number, product_id, requested)


@router.post("/accounts/{number}/products/{product_id}/cancel", response_model=None)
def cancel(request: Request, db: DB, now: Now, tz: Tz, who: Signed, number: str, product_id: int, reason_code: Annotated[str, Form(max_length=30)],
           address: Annotated[str, Form(max_length=300)] = "", contact_phone: Annotated[str, Form(max_length=30)] = "",
           slot_start: Annotated[str, Form(max_length=40)] = "", requested: Annotated[str, Form(max_length=10)] = "") -> Response:
    try:
        account = svc.account_for(db, customer=who, number=number, need="order")
        slot = datetime.fromisoformat(slot_start) if slot_start else None
        req = date.fromisoformat(requested) if requested else None
        done = svc.request_cancellation(db, customer=who, account=account, product_id=product_id, reason_code=reason_code, requested_date=req,
                                        slot_start=slot, address=address, contact_phone=contact_phone, now=now, tz=tz)
    except svc.AccountHidden as exc:
        return _hidden(request, db, who, now, exc)
    except ValueError as exc:  # a forged slot or date
        db.rollback()
        return _cancel_page(request, db, now, tz, who, number, product_id, None, error=f"that date or slot is not valid ({exc})", status_code=422)
    except OpslineError as exc:
        detail, status = _failed(request, db, who, exc)
        return _cancel_page(request, db, now, tz, who, number, product_id, None, error=detail, status_code=status)
    text = f"Cancellation {done['journey']} confirmed: service ends before {done['effective_date']}."
    if done["collection"]:
        text += f" Courier collection {done['collection']['number']} is booked."
    return _account_page(request, db, now, tz, who, number, notice=text)


# --- cases -----------------------------------------------------------------------------------------------------------
def _cases_page(request: Request, db: Any, now: datetime, tz: Any, who: Customer, number: str, *, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    try:
        account = svc.account_for(db, customer=who, number=number, need="support")
    except svc.AccountHidden as exc:
        return _hidden(request, db, who, now, exc)
    data = svc.account_page(db, account=account, now=now, tz=tz)
    return _page(request, "cases.html", {"account": account, "cases": data["cases"], "categories": svc.CASE_CATEGORIES, "error": error},
                 status_code=status_code, who=who)


@router.get("/accounts/{number}/cases", response_class=HTMLResponse)
def cases_page(request: Request, db: DB, now: Now, tz: Tz, who: Signed, number: str) -> HTMLResponse:
    return _cases_page(request, db, now, tz, who, number)


@router.post("/accounts/{number}/cases", response_model=None)
def open_case(request: Request, db: DB, now: Now, tz: Tz, who: Signed, number: str, category_code: Annotated[str, Form(max_length=40)],
              subject: Annotated[str, Form(max_length=300)], description: Annotated[str, Form(max_length=20_000)] = "") -> Response:
    try:
        account = svc.account_for(db, customer=who, number=number, need="support")
        made = svc.open_case(db, customer=who, account=account, category_code=category_code, subject=subject, description=description, now=now,
                             link_base=_link_base(request))
    except svc.AccountHidden as exc:
        return _hidden(request, db, who, now, exc)
    except (OpslineError, ValidationError) as exc:
        detail, status = _failed(request, db, who, exc)
        return _cases_page(request, db, now, tz, who, number, error=detail, status_code=status)
    return RedirectResponse(f"/portal/accounts/{number}/cases/{made['reference']}", status_code=303)


def _case_page(request: Request, db: Any, now: datetime, who: Customer, number: str, reference: str, *, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    try:
        account = svc.account_for(db, customer=who, number=number, need="support")
        data = svc.case_for(db, account=account, reference=reference, now=now)
    except svc.AccountHidden as exc:
        return _hidden(request, db, who, now, exc)
    return _page(request, "case.html", {"account": account, **data, "error": error}, status_code=status_code, who=who)


@router.get("/accounts/{number}/cases/{reference}", response_class=HTMLResponse)
def case_page(request: Request, db: DB, now: Now, who: Signed, number: str, reference: str) -> HTMLResponse:
    return _case_page(request, db, now, who, number, reference)


@router.post("/accounts/{number}/cases/{reference}/reply", response_model=None)
def reply(request: Request, db: DB, now: Now, who: Signed, number: str, reference: str, body: Annotated[str, Form(max_length=20_000)]) -> Response:
    try:
        account = svc.account_for(db, customer=who, number=number, need="support")
        svc.reply_to_case(db, customer=who, account=account, reference=reference, body=body, now=now)
    except svc.AccountHidden as exc:
        return _hidden(request, db, who, now, exc)
    except (OpslineError, ValidationError) as exc:
        detail, status = _failed(request, db, who, exc)
        return _case_page(request, db, now, who, number, reference, error=detail, status_code=status)
    return RedirectResponse(f"/portal/accounts/{number}/cases/{reference}", status_code=303)


# --- profile ----------------------------------------------------------------------------------------------------------
def _profile_page(request: Request, db: Any, now: datetime, who: Customer, number: str, *, error: str | None = None, notice: str | None = None,
                  status_code: int = 200) -> HTMLResponse:
    try:
        account = svc.account_for(db, customer=who, number=number, need="profile")
    except svc.AccountHidden as exc:
        return _hidden(request, db, who, now, exc)
    return _page(request, "profile.html", {"account": account, "prefs": svc.preferences(db, account=account), "error": error, "notice": notice},
                 status_code=status_code, who=who)


@router.get("/accounts/{number}/profile", response_class=HTMLResponse)
def profile(request: Request, db: DB, now: Now, who: Signed, number: str) -> HTMLResponse:
    return _profile_page(request, db, now, who, number)


@router.post("/accounts/{number}/profile/contact", response_model=None)
def contact(request: Request, db: DB, now: Now, who: Signed, number: str, email: Annotated[str, Form(max_length=200)] = "",
            phone: Annotated[str, Form(max_length=30)] = "") -> Response:
    try:
        account = svc.account_for(db, customer=who, number=number, need="profile")
        svc.update_contact(db, customer=who, account=account, email=email, phone=phone, now=now)
    except svc.AccountHidden as exc:
        return _hidden(request, db, who, now, exc)
    except (OpslineError, ValidationError) as exc:
        detail, status = _failed(request, db, who, exc)
        return _profile_page(request, db, now, who, number, error=detail, status_code=status)
    return _profile_page(request, db, now, who, number, notice="Your contact details are saved.")


@router.post("/accounts/{number}/profile/preferences", response_model=None)
async def set_preferences(request: Request, db: DB, now: Now, who: Signed, number: str) -> Response:
    form = await request.form()
    allowed = {tuple(str(v).split(":", 1)) for v in form.getlist("allow") if ":" in str(v)}
    try:
        account = svc.account_for(db, customer=who, number=number, need="profile")
        svc.set_preferences(db, customer=who, account=account, allowed=allowed, now=now)  # type: ignore[arg-type]
    except svc.AccountHidden as exc:
        return _hidden(request, db, who, now, exc)
    except OpslineError as exc:
        detail, status = _failed(request, db, who, exc)
        return _profile_page(request, db, now, who, number, error=detail, status_code=status)
    return _profile_page(request, db, now, who, number, notice="Your notification preferences are saved.")


# --- a company's users (B2B admin contact) ------------------------------------------------------------------------------
def _users_page(request: Request, db: Any, now: datetime, who: Customer, party_id: int, *, error: str | None = None, notice: str | None = None,
                status_code: int = 200) -> HTMLResponse:
    try:
        users = svc.company_users(db, customer=who, party_id=party_id)
    except NotFound as exc:
        return _hidden(request, db, who, now, exc)
    return _page(request, "users.html", {"party_id": party_id, "users": users, "error": error, "notice": notice}, status_code=status_code, who=who)


@router.get("/company/{party_id}/users", response_class=HTMLResponse)
def company_users(request: Request, db: DB, now: Now, who: Signed, party_id: int) -> HTMLResponse:
    return _users_page(request, db, now, who, party_id)


@router.post("/company/{party_id}/users", response_model=None)
def invite(request: Request, db: DB, now: Now, who: Signed, party_id: int, email: Annotated[str, Form(max_length=200)],
           full_name: Annotated[str, Form(max_length=200)], role: Annotated[str, Form(max_length=20)]) -> Response:
    try:
        auth.invite(db, inviter=who, party_id=party_id, email=email, full_name=full_name, role=role, link_base=_link_base(request), now=now)
    except NotFound as exc:
        return _hidden(request, db, who, now, exc)
    except OpslineError as exc:
        detail, status = _failed(request, db, who, exc)
        return _users_page(request, db, now, who, party_id, error=detail, status_code=status)
    return _users_page(request, db, now, who, party_id, notice=f"We emailed {email} an invitation.")


# --- service requests ----------------------------------------------------------------------------------------------------
def _request_page(request: Request, db: Any, now: datetime, tz: Any, who: Customer, number: str, *, error: str | None = None,
                  notice: str | None = None, status_code: int = 200) -> HTMLResponse:
    try:
        account = svc.account_for(db, customer=who, number=number, need="order")
    except svc.AccountHidden as exc:
        return _hidden(request, db, who, now, exc)
    return _page(request, "request.html", {"account": account, **svc.request_options(db, account=account, now=now, tz=tz), "error": error,
                                           "notice": notice}, status_code=status_code, who=who)


@router.get("/accounts/{number}/request", response_class=HTMLResponse)
def request_page(request: Request, db: DB, now: Now, tz: Tz, who: Signed, number: str) -> HTMLResponse:
    return _request_page(request, db, now, tz, who, number)


def _opt_int(raw: str) -> int | None:
    return int(raw) if raw.strip().isdigit() else None


@router.post("/accounts/{number}/request", response_model=None)
def request_service(request: Request, db: DB, now: Now, tz: Tz, who: Signed, number: str, kind: Annotated[str, Form(max_length=20)],
                    offering_id: Annotated[str, Form(max_length=20)] = "", product_id: Annotated[str, Form(max_length=20)] = "",
                    site_id: Annotated[str, Form(max_length=20)] = "", note: Text = "") -> Response:
    try:
        account = svc.account_for(db, customer=who, number=number, need="order")
        made = svc.request_service(db, customer=who, account=account, kind=kind, offering_id=_opt_int(offering_id), product_id=_opt_int(product_id),
                                   site_id=_opt_int(site_id), note=note, now=now, tz=tz, link_base=_link_base(request))
    except svc.AccountHidden as exc:
        return _hidden(request, db, who, now, exc)
    except (OpslineError, ValidationError) as exc:
        detail, status = _failed(request, db, who, exc)
        return _request_page(request, db, now, tz, who, number, error=detail, status_code=status)
    return _request_page(request, db, now, tz, who, number, notice=f"Thank you: your request is priced as quote {made['quote_id']} "
                         f"({made['monthly']} a month incl. VAT); our team will confirm it with you.")


# --- B2B service ---------------------------------------------------------------------------------------------------------
@router.get("/accounts/{number}/service", response_class=HTMLResponse)
def b2b_service(request: Request, db: DB, now: Now, who: Signed, number: str) -> HTMLResponse:
    try:
        account = svc.account_for(db, customer=who, number=number)
    except svc.AccountHidden as exc:
        return _hidden(request, db, who, now, exc)
    return _page(request, "service.html", {"account": account, **svc.b2b_page(db, account=account)}, who=who)


@router.get("/accounts/{number}/reviews/{review_id}/pdf", response_model=None)
def review_pdf(request: Request, db: DB, now: Now, tz: Tz, who: Signed, number: str, review_id: int) -> Response:
    try:
        account = svc.account_for(db, customer=who, number=number)
        name, content = svc.review_pdf(db, account=account, review_id=review_id, tz=tz)
    except svc.AccountHidden as exc:
        return _hidden(request, db, who, now, exc)
    return Response(content, media_type="application/pdf", headers={"Content-Disposition": f'attachment; filename="{name}"'})
