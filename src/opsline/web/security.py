"""CSRF protection for session-authenticated unsafe requests, and a request body size limit."""

from __future__ import annotations

import hmac

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from opsline.core.errors import PermissionDenied

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


async def check_csrf(request: Request) -> None:
    """Session-cookie requests that change state must echo the session's CSRF token
    (form field `csrf_token` or header `X-CSRF-Token`). Bearer-token API calls are not cookie-borne, so exempt."""
    if request.method not in UNSAFE:
        return
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    if request.url.path in ("/login",) or request.url.path.startswith("/admin") or request.url.path.startswith("/api/partners/callback"):
        return
    expected = request.session.get("csrf")
    if not expected:
        return  # not signed in: the principal dependency answers 401
    sent = request.headers.get("x-csrf-token")
    if not sent:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("application/x-www-form-urlencoded") or ctype.startswith("multipart/form-data"):
            form = await request.form()
            sent = str(form.get("csrf_token") or "")
    if not sent or not hmac.compare_digest(str(sent), str(expected)):
        raise PermissionDenied("missing or wrong CSRF token; reload the page and try again")


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
