"""Sign-in and sign-out pages: rate-limited password check, a new server-side session (and CSRF token) per sign-in.

The sign-in form carries its own CSRF token (a double-submit cookie set with the form), so another site cannot sign a
browser in under the attacker's account (login CSRF)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from opsline.core.errors import NotAuthenticated
from opsline.core.ids import token as new_token
from opsline.users import sessions, signin
from opsline.web.deps import DB, Now, public, session_token
from opsline.web.security import cookie_secure, csrf_sent_matches, sign_out_with_csrf
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)

SIGNIN_COOKIE = "opsline_signin"  # the sign-in form's CSRF token (before there is a session to hold one)
SIGNIN_COOKIE_MAX_AGE = 3600


def _safe_next(nxt: str | None) -> str:
    return nxt if nxt and nxt.startswith("/") and not nxt.startswith("//") and "\\" not in nxt else "/"


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _form(request: Request, ctx: dict, *, status_code: int = 200) -> HTMLResponse:
    """The sign-in form with a fresh CSRF token in the page and in its cookie."""
    tok = new_token(24)
    request.state.csrf_token = tok
    page = render(request, "login.html", ctx, status_code=status_code)
    page.set_cookie(SIGNIN_COOKIE, tok, max_age=SIGNIN_COOKIE_MAX_AGE, httponly=True, samesite="strict", secure=cookie_secure(request), path="/login")
    return page


@router.get("/login", response_class=HTMLResponse, dependencies=[Depends(public("the sign-in form"))])
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return _form(request, {"next": _safe_next(next), "error": None})


@router.post("/login", response_model=None, dependencies=[Depends(public("signing in"))])
def login(request: Request, db: DB, now: Now, username: Annotated[str, Form(max_length=200)], password: Annotated[str, Form(max_length=1000)],
          next: Annotated[str, Form(max_length=2000)] = "/") -> HTMLResponse | RedirectResponse:
    ctx = {"next": _safe_next(next), "username": username}
    if not csrf_sent_matches(request, request.cookies.get(SIGNIN_COOKIE, "")):
        return _form(request, ctx | {"error": "the sign-in form had expired or came from another site; please sign in again"}, status_code=403)
    try:
        user = signin.sign_in(db, username=username, password=password, ip=client_ip(request), now=now)
    except signin.TooManySignInAttempts as exc:
        page = _form(request, ctx | {"error": exc.detail}, status_code=429)
        page.headers["Retry-After"] = str(exc.retry_after_seconds)
        return page
    except NotAuthenticated as exc:
        return _form(request, ctx | {"error": exc.detail}, status_code=401)
    previous = session_token(request)
    if previous:  # whatever this browser held before is ended, never promoted
        sessions.end_session(db, token=previous, now=now)
    max_age = request.app.state.settings.session_max_age_seconds
    _, tok = sessions.start_session(db, user_id=user.id, now=now, max_age_seconds=max_age, ip=client_ip(request),
                                    user_agent=request.headers.get("user-agent"))
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(sessions.COOKIE_NAME, tok, max_age=max_age, httponly=True, samesite="lax", secure=cookie_secure(request), path="/")
    response.delete_cookie(SIGNIN_COOKIE, path="/login")
    return response


@router.post("/logout", response_model=None, dependencies=[Depends(public("signing out ends only the caller's own session"))])
def logout(request: Request, db: DB, now: Now) -> RedirectResponse:
    """End this browser's session. A live session must send its CSRF token (no cross-site sign-outs)."""
    return sign_out_with_csrf(request, token=session_token(request), load=lambda tok: sessions.load_session(db, token=tok, now=now),
                              sign_out=lambda tok: sessions.sign_out(db, token=tok, now=now), cookie=sessions.COOKIE_NAME, path="/", redirect="/login")
