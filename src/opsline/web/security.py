"""Request hardening: CSRF token capture, security headers on every response, and a request body size limit."""

from __future__ import annotations

from urllib.parse import urlsplit

import hmac
from typing import Any, Callable

from fastapi import Request
from fastapi.responses import RedirectResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsline.core.errors import PermissionDenied

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def request_is_https(request: Request) -> bool:
    """Whether the browser reached us over https: directly, or through a proxy named in OPSLINE_TRUSTED_PROXIES
    whose X-Forwarded-Proto says so (anyone else's X-Forwarded-Proto is ignored: a client could send it)."""
    if request.url.scheme == "https":
        return True
    settings = request.app.state.settings
    peer = request.client.host if request.client else ""
    if peer and peer in settings.trusted_proxy_addresses():
        return request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower() == "https"
    return False


def cookie_secure(request: Request) -> bool:
    """The session cookie's Secure flag (OPSLINE_COOKIE_SECURE: true, false, or auto = when the request is https)."""
    mode = request.app.state.settings.cookie_secure
    return mode == "true" or (mode == "auto" and request_is_https(request))


async def check_csrf(request: Request) -> None:
    """Capture the CSRF token an unsafe request sends (header `X-CSRF-Token`, or form field `csrf_token`) into
    `request.state.csrf_sent`, after refusing a browser request whose Origin is another site. The principal
    dependency compares it with the server-side session's token, so every route that acts for a signed-in user is
    covered; bearer-token API calls are not cookie-borne and need none."""
    request.state.csrf_sent = ""
    if request.method not in UNSAFE or request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise PermissionDenied("cross-site request refused")
    sent = request.headers.get("x-csrf-token")
    if not sent:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("application/x-www-form-urlencoded") or ctype.startswith("multipart/form-data"):
            form = await request.form()
            sent = str(form.get("csrf_token") or "")
    request.state.csrf_sent = sent or ""


def csrf_sent_matches(request: Request, expected: str | None) -> bool:
    """Whether the CSRF token this unsafe request sent (captured by `check_csrf`) equals `expected`, compared in
    constant time. False when either is missing. The one comparison every session and form check uses."""
    sent = getattr(request.state, "csrf_sent", "") or ""
    return bool(expected and sent and hmac.compare_digest(sent.encode(), expected.encode()))


def require_csrf(request: Request, expected: str | None) -> None:
    """Raises PermissionDenied (403) unless the request sent the session's CSRF token."""
    if not csrf_sent_matches(request, expected):
        raise PermissionDenied("missing or wrong CSRF token; reload the page and try again")


def sign_out_with_csrf(request: Request, *, token: str, load: Callable[[str], Any], sign_out: Callable[[str], object],
                       cookie: str, path: str, redirect: str) -> RedirectResponse:
    """Sign-out for staff and customers alike: a live session (`load(token)`, raising NotAuthenticated when there is
    none) must send its CSRF token, so no other site can sign a user out; then `sign_out(token)` revokes it server-side
    and the cookie is deleted. Without a live session there is nothing to revoke: the cookie is just cleared."""
    from opsline.core.errors import NotAuthenticated

    try:
        live = load(token)
    except NotAuthenticated:
        live = None
    if live is not None:
        require_csrf(request, live.csrf_token)
        sign_out(token)
    response = RedirectResponse(redirect, status_code=303)
    response.delete_cookie(cookie, path=path)
    return response


# Scripts only from our own origin (vendored htmx and Chart.js, no CDN, no inline script or on* handlers);
# inline style attributes are allowed because server-rendered bars and layout use them.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
DOWNLOAD_CSP = "default-src 'none'; sandbox; frame-ancestors 'none'"
# Third-party UIs we mount (starlette-admin, Swagger UI) carry their own inline scripts; they keep every other header.
CSP_EXEMPT_PREFIXES = ("/admin", "/api/docs", "/docs/")


class SecurityHeaders:
    """Adds the browser security headers to every HTTP response (pages, API, static files, errors)."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "same-origin")
                headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
                headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
                if headers.get("content-disposition", "").lower().startswith("attachment"):
                    # A download (uploaded attachments, exports) is never a page: even if a browser renders it
                    # (an uploader's text/html), it runs nothing and reaches nothing.
                    headers["Content-Security-Policy"] = DOWNLOAD_CSP
                elif not path.startswith(CSP_EXEMPT_PREFIXES):
                    headers.setdefault("Content-Security-Policy", CSP)
                if self.hsts or https:
                    headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
                if not path.startswith("/static/"):
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodySizeLimit:
    """Refuse bodies larger than `max_bytes` with 413 problem+json before the app reads them."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._reject(scope, send)
            return
        received = 0

        async def limited_receive():  # type: ignore[no-untyped-def]
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._reject(scope, send)

    async def _reject(self, scope: Scope, send: Send) -> None:
        import json

        body = json.dumps({"type": "https://opsline.dev/problems/payload-too-large", "title": "Payload too large", "status": 413, "detail": f"request body exceeds {self.max_bytes} bytes", "instance": scope.get("path", "")}).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass
