"""Reference-data editing with starlette-admin, mounted at /admin and open only to administrators. Every create, edit
and delete is written to the audit log (who, which row, before and after) in the same transaction as the change."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any, Callable
from urllib.parse import quote

from sqlalchemy import Engine, Integer
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette_admin.contrib.sqla import Admin, ModelView

from opsline.core import events
from opsline.core.errors import NotAuthenticated
from opsline.core.events import Actor
from opsline.users import sessions
from opsline.users.roles import Role


class _AdminOnly(BaseHTTPMiddleware):
    def __init__(self, app, engine: Engine, clock: Callable[[], datetime]) -> None:  # type: ignore[no-untyped-def]
        super().__init__(app)
        self.engine = engine
        self.clock = clock

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        username = await run_in_threadpool(self._admin_username, request.cookies.get(sessions.COOKIE_NAME, ""))
        if username is None:
            return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
        request.state.admin_actor = Actor(name=username, roles=frozenset({Role.ADMIN.value}))
        request.state.admin_now = self.clock()
        return await call_next(request)

    def _admin_username(self, token: str) -> str | None:
        if not token:
            return None
        with Session(self.engine) as s:  # closed before the admin view runs, so no lock is held across it
            try:
                active = sessions.load_session(s, token=token, now=self.clock())
            except NotAuthenticated:
                return None
            finally:
                s.rollback()
        return active.username if Role.ADMIN.value in active.roles else None


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


class ReferenceView(ModelView):
    """A reference table in the admin: code-keyed tables (segment, value tier, tax rate ...) take their code in the
    create form (it is the key, so it is never edited afterwards), and every change is audited."""

    page_size = 50

    def __init__(self, model: type[Any], *args: Any, **kwargs: Any) -> None:
        pk_cols = list(sa_inspect(model).primary_key)
        # An integer key the database numbers itself stays out of the forms; a code the operator chooses must be in them.
        self._typed_key = not (len(pk_cols) == 1 and isinstance(pk_cols[0].type, Integer) and pk_cols[0].autoincrement in (True, "auto"))
        if self._typed_key:
            self.show_pk_in_forms = True
        super().__init__(model, *args, **kwargs)
        if self._typed_key:
            for f in self.fields:
                if f.name in {c.key for c in pk_cols}:
                    f.exclude_from_edit = True

    def _row(self, obj: Any) -> dict[str, Any]:
        return {c.key: _plain(getattr(obj, c.key, None)) for c in sa_inspect(type(obj)).column_attrs}

    def _audit(self, request: Request, obj: Any, action: str, *, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        actor = getattr(request.state, "admin_actor", None) or Actor.system("admin")
        now = getattr(request.state, "admin_now", None) or datetime.now(timezone.utc)
        pk = ",".join(str(getattr(obj, c.key)) for c in sa_inspect(type(obj)).primary_key) if obj is not None else ""
        events.record(request.state.session, now=now, actor=actor, entity_type=self.model.__tablename__, entity_id=pk,
                      action=action, reason="reference data edited at /admin", before=before, after=after)

    async def create(self, request: Request, data: dict[str, Any]) -> Any:
        obj = await super().create(request, data)
        self._audit(request, obj, "admin_created", before=None, after=self._row(obj))
        return obj

    async def edit(self, request: Request, pk: Any, data: dict[str, Any]) -> Any:
        found = await self.find_by_pk(request, pk)
        before = self._row(found) if found is not None else None
        obj = await super().edit(request, pk, data)
        if obj is not None:
            changed_before, changed_after = events.diff(before or {}, self._row(obj))
            self._audit(request, obj, "admin_edited", before=changed_before, after=changed_after)
        return obj

    async def delete(self, request: Request, pks: list[Any]) -> int | None:
        rows = [(o, self._row(o)) for o in await self.find_by_pks(request, pks)]
        deleted = await super().delete(request, pks)
        for obj, row in rows:
            self._audit(request, obj, "admin_deleted", before=row, after=None)
        return deleted


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
