"""The FastAPI app factory: pages, REST API, admin, static assets, metrics, and the in-process worker."""

from __future__ import annotations

import hmac
import logging
import socket
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import AsyncIterator, Callable

import anyio.to_thread
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine

from opsline.api import problems
from opsline.config import Settings, get_settings
from opsline.core.jobs import Worker
from opsline.db.session import deferred, make_engine, make_sessionmaker
from opsline.jobs_registry import build_registry
from opsline.core.errors import NotAuthenticated, PermissionDenied
from opsline.web.admission import AdmissionLimit
from opsline.web.deps import DB, Now, get_principal, public, require
from opsline.web.security import BodySizeLimit, SecurityHeaders, check_csrf

log = logging.getLogger("opsline.web")

API_DESCRIPTION = """Opsline REST API. Resources follow TM Forum Open API shapes (TMF629 Customer, TMF666 Account ...).
Authenticate with `Authorization: Bearer <token>` (create one with `opsline api-client create`).
POST requests accept an `Idempotency-Key` header; repeating a key with the same body replays the first answer.
Errors are `application/problem+json` (RFC 9457)."""


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def metrics_access(request: Request, db: DB, now: Now) -> None:
    """Prometheus sends `Authorization: Bearer <OPSLINE_METRICS_TOKEN>`; otherwise a signed-in user with metrics.view.
    Raises NotAuthenticated (no or wrong credentials) or PermissionDenied (a user without the permission)."""
    expected = request.app.state.settings.metrics_token
    auth = request.headers.get("authorization", "")
    if expected and auth.lower().startswith("bearer "):
        if hmac.compare_digest(auth[7:].strip().encode(), expected.encode()):
            return
        raise NotAuthenticated("wrong metrics token")
    principal = get_principal(request, db, now)
    if not principal.can("metrics.view"):
        raise PermissionDenied("your role does not allow 'metrics.view'")


metrics_access.permission = "metrics.view"  # type: ignore[attr-defined]  (read by the route-table permission matrix)


def create_app(*, settings: Settings | None = None, engine: Engine | None = None, clock: Callable[[], datetime] | None = None, start_worker: bool | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = engine or make_engine(settings.database_url)
    factory = make_sessionmaker(engine)
    registry = build_registry()
    clock = clock or _utc_now
    run_worker = settings.worker_in_process if start_worker is None else start_worker

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # fewer handler threads than anyio's 40 (see web/admission.py: requests beyond web_max_inflight wait on the loop)
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.web_threads
        worker = None
        if run_worker:
            worker = Worker(factory, registry, worker_id=f"web-{socket.gethostname()}", clock=clock)
            worker.start_thread()
        app.state.worker = worker
        yield
        if worker:
            worker.stop()

    app = FastAPI(
        title="Opsline API", version="4.0.0", description=API_DESCRIPTION, lifespan=lifespan,
        dependencies=[Depends(check_csrf)], docs_url=None, redoc_url=None, openapi_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = factory
    app.state.read_sessionmaker = deferred(factory)
    app.state.clock = clock
    app.state.registry = registry

    problems.install(app)

    from opsline.areas import load_areas
    from opsline.web import auth, desk, pages

    from opsline.web.routing import include_router_gated

    for router in (auth.router, pages.router, desk.router):
        include_router_gated(app, router)
    for area in load_areas():
        for router in area.routers() if area.routers else []:
            include_router_gated(app, router)

    app.mount("/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="static")

    from opsline.web.admin import mount_admin

    mount_admin(app, engine=engine, secret_key=settings.secret_key, clock=clock)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require("api.docs"))])
    def openapi_document() -> JSONResponse:
        """The OpenAPI description, for signed-in staff and API clients (it maps the whole attack surface)."""
        return JSONResponse(app.openapi())

    @app.get("/api/docs", include_in_schema=False, dependencies=[Depends(require("api.docs"))])
    def api_docs() -> HTMLResponse:
        """The API browser, from vendored Swagger UI (no CDN: it works on a closed network)."""
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Opsline API", swagger_js_url="/static/vendor/swagger-ui-bundle.js",
                                   swagger_css_url="/static/vendor/swagger-ui.css", swagger_favicon_url="data:,")

    @app.get("/healthz", include_in_schema=False, dependencies=[Depends(public("load-balancer health check"))])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False, dependencies=[Depends(metrics_access)])
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    # Middleware order: outermost last. Size limit runs before anything reads the body; headers go on every answer.
    # Staff sessions are server-side (users/sessions.py), so there is no session middleware.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(AdmissionLimit, limit=settings.web_max_inflight, max_wait=settings.web_max_wait_seconds)
    app.add_middleware(SecurityHeaders)
    return app
