"""Reference-data editing with starlette-admin, mounted at /admin and open only to administrators."""

from __future__ import annotations

from datetime import datetime
from typing import Callable
from urllib.parse import quote

from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette_admin.contrib.sqla import Admin, ModelView

from opsline.core.errors import NotAuthenticated
from opsline.users import sessions
from opsline.users.roles import Role


class _AdminOnly(BaseHTTPMiddleware):
    def __init__(self, app, engine: Engine, clock: Callable[[], datetime]) -> None:  # type: ignore[no-untyped-def]
        super().__init__(app)
        self.engine = engine
        self.clock = clock

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if await run_in_threadpool(self._is_admin, request.cookies.get(sessions.COOKIE_NAME, "")):
            return await call_next(request)
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)

    def _is_admin(self, token: str) -> bool:
        if not token:
            return False
        with Session(self.engine) as s:  # closed before the admin view runs, so no lock is held across it
            try:
                active = sessions.load_session(s, token=token, now=self.clock())
            except NotAuthenticated:
                return False
            finally:
                s.rollback()
        return Role.ADMIN.value in active.roles


class ReferenceView(ModelView):
    page_size = 50


def reference_views() -> list[ModelView]:
    """Every area's reference-data views (catalog, tax rates, SLA policies ...)."""
    from opsline.areas import load_areas

    return [v for a in load_areas() if a.admin_views for v in a.admin_views()]


def mount_admin(app, *, engine: Engine, secret_key: str, clock: Callable[[], datetime]) -> None:  # type: ignore[no-untyped-def]
    admin = Admin(engine, title="Opsline reference data", base_url="/admin", secret_key=secret_key, timezone_config=None,
                  middlewares=[Middleware(_AdminOnly, engine=engine, clock=clock)])
    for view in reference_views():
        admin.add_view(view)
    admin.mount_to(app)
