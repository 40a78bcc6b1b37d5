"""Admission control: at most `limit` requests are worked on at once in a web process; the rest wait, in arrival
order, on the event loop (a waiting request holds no thread and no database connection), and one that has waited
`max_wait` seconds is answered 503 with Retry-After instead of queueing without bound.

Why: a request takes a database connection in its first dependency and then needs a handler thread for each later
step; with more requests in progress than pooled connections, requests held connections while waiting for threads and
others timed out waiting for connections (30 s, then 503), and 40 threads contending for the GIL slowed everyone.
Health checks and static files are not counted: a load balancer must still see a busy process as alive."""

from __future__ import annotations

import asyncio
import json
import logging
import weakref

from starlette.types import ASGIApp, Receive, Scope, Send

from opsline.api.conventions import problem_body

log = logging.getLogger("opsline.web")
EXEMPT = ("/healthz", "/static/")


class AdmissionLimit:
    def __init__(self, app: ASGIApp, *, limit: int, max_wait: float) -> None:
        self.app = app
        self.limit = limit
        self.max_wait = max_wait
        # one semaphore per event loop (a server has one; tests may drive the same app from several)
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(EXEMPT):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        slots = self._slots.get(loop)
        if slots is None:
            slots = self._slots[loop] = asyncio.Semaphore(self.limit)
        try:
            await asyncio.wait_for(slots.acquire(), timeout=self.max_wait)
        except asyncio.TimeoutError:
            log.warning("shed %s %s after waiting %.0f s for one of %d request slots", scope.get("method"), scope.get("path"), self.max_wait, self.limit)
            await _busy(scope, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            slots.release()


async def _busy(scope: Scope, send: Send) -> None:
    body = json.dumps(problem_body(503, "Service busy", "the service is busy; please try again in a few seconds", instance=scope.get("path", ""),
                                   slug="service-busy")).encode()
    await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"application/problem+json"), (b"retry-after", b"5"),
                                                                           (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
