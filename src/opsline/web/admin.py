"""Reference-data editing with starlette-admin, mounted at /admin and open only to administrators."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette_admin.contrib.sqla import Admin, ModelView

from opsline.users.models import User


class _AdminOnly(BaseHTTPMiddleware):
    def __init__(self, app, engine: Engine) -> None:  # type: ignore[no-untyped-def]
        super().__init__(app)
        self.engine = engine

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        uid = request.session.get("uid") if "session" in request.scope else None
        is_admin = False
        if uid:
            with Session(self.engine) as s:  # closed before the admin view runs, so no lock is held across it
                user = s.get(User, int(uid))
                is_admin = user is not None and user.active and "admin" in (user.roles or [])
        if is_admin:
            return await call_next(request)
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)


class ReferenceView(ModelView):
    page_size = 50


def reference_views() -> list[ModelView]:
    """Every area's reference-data views (catalog, tax rates, SLA policies ...)."""
    from opsline.areas import load_areas

    return [v for a in load_areas() if a.admin_views for v in a.admin_views()]


def mount_admin(app, *, engine: Engine, secret_key: str) -> None:  # type: ignore[no-untyped-def]
    admin = Admin(engine, title="Opsline reference data", base_url="/admin", secret_key=secret_key, timezone_config=None, middlewares=[Middleware(_AdminOnly, engine=engine)])
    for view in reference_views():
        admin.add_view(view)
    admin.mount_to(app)
