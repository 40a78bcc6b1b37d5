"""Sign-in and sign-out pages (session cookie; rotated CSRF token per sign-in)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from opsline.core.errors import NotAuthenticated
from opsline.core.ids import token
from opsline.users import service as users
from opsline.web.deps import DB, Now
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)


def _safe_next(nxt: str | None) -> str:
    return nxt if nxt and nxt.startswith("/") and not nxt.startswith("//") else "/"


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    request.session.setdefault("csrf", token())
    return render(request, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/login", response_model=None)
def login(request: Request, db: DB, now: Now, username: Annotated[str, Form()], password: Annotated[str, Form()], next: Annotated[str, Form()] = "/") -> HTMLResponse | RedirectResponse:
    try:
        user = users.authenticate(db, username=username.strip(), password=password, now=now)
    except NotAuthenticated as exc:
        return render(request, "login.html", {"next": _safe_next(next), "error": exc.detail, "username": username}, status_code=401)
    request.session.clear()
    request.session.update({"uid": user.id, "iat": now.timestamp(), "csrf": token()})
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request) -> RedirectResponse:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
