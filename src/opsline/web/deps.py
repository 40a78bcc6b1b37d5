"""FastAPI dependencies shared by pages and API routers: database session, clock, timezone, principal, permissions.

FastAPI runs every plain `def` dependency on a handler thread, one hop there and back each. The cheap ones (clock,
timezone, the permission check, opening the session) are `async def` and run on the event loop; only work that waits
on the database (the principal's lookup, the handler, the commit) takes a thread."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo
from typing import Annotated, AsyncIterator, Callable

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from opsline.core.localtime import zone
from opsline.db.session import keep_loaded
from opsline.core.errors import NotAuthenticated, PermissionDenied
from opsline.core.events import Actor
from opsline.users import service as users
from opsline.users import sessions
from opsline.users.roles import allowed
from opsline.web.security import require_csrf

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Where a system's bearer token is accepted: the REST API and its description. Staff pages and forms take only a
# staff session (so a token handed to an integration can never drive the staff UI's forms).
API_PREFIXES = ("/tmf-api/", "/api/", "/openapi.json")


async def get_db(request: Request) -> AsyncIterator[Session]:
    """One transaction per request: commit when the handler returns, roll back on error. Reads (GET, HEAD) run
    deferred on SQLite: they never wait for the worker's write lock and take it only if they happen to write."""
    factory = request.app.state.read_sessionmaker if request.method in ("GET", "HEAD") else request.app.state.sessionmaker
    session = factory()  # no I/O until the first statement, which runs on a handler thread
    keep_loaded(session)  # one request: a row read once is not read again by the next service's session.get
    try:
        yield session
    except BaseException:
        await run_in_threadpool(_finish, session, False)
        raise
    await run_in_threadpool(_finish, session, True)


def _finish(session: Session, ok: bool) -> None:
    try:
        if ok:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


async def get_now(request: Request) -> datetime:
    return request.app.state.clock()


async def get_tz(request: Request) -> ZoneInfo:
    """The operator's timezone (OPSLINE_TIMEZONE), passed into services like `now`."""
    return zone(request.app.state.settings.timezone)


@dataclass(frozen=True)
class Principal:
    actor: Actor
    user_id: int | None
    display_name: str
    roles: frozenset[str]
    via: str  # "session" or "token"
    csrf_token: str | None = None

    def can(self, permission: str) -> bool:
        return allowed(self.roles, permission)


def session_token(request: Request) -> str:
    """The opaque server-side session token from the cookie ("" when there is none)."""
    return request.cookies.get(sessions.COOKIE_NAME, "")


def get_principal(request: Request, db: Annotated[Session, Depends(get_db, scope="function")], now: Annotated[datetime, Depends(get_now)]) -> Principal:
    """A staff user from the server-side session named by the cookie, or a system from a bearer token.
    Unsafe requests on a cookie session must echo the session's CSRF token (see security.check_csrf).
    Raises NotAuthenticated (no, unknown, revoked or expired session) or PermissionDenied (CSRF)."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        if not request.url.path.startswith(API_PREFIXES):
            raise NotAuthenticated("API tokens are accepted only by the REST API (/tmf-api, /api); staff pages need a signed-in user")
        client = users.client_for_token(db, token=auth[7:].strip())
        roles = frozenset(client.roles)
        return Principal(Actor(name=f"api:{client.name}", roles=roles), None, client.name, roles, "token")
    active = sessions.load_session(db, token=session_token(request), now=now)
    if request.method in UNSAFE:
        require_csrf(request, active.csrf_token)
    request.state.csrf_token = active.csrf_token
    return Principal(Actor(name=active.username, user_id=active.user_id, roles=active.roles), active.user_id, active.full_name, active.roles, "session", active.csrf_token)


def require(permission: str) -> Callable[..., Principal]:
    """Dependency factory: the principal, after checking it holds `permission` (403 otherwise).
    The permission is kept on the dependency so the route table can be checked (tests/functional/test_web_permission_matrix.py)."""

    async def dep(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.can(permission):
            raise PermissionDenied(f"your role does not allow '{permission}'")
        return principal

    dep.__name__ = f"require_{permission.replace('.', '_')}"
    dep.permission = permission  # type: ignore[attr-defined]
    return dep


def public(reason: str) -> Callable[[], None]:
    """Marks a route as deliberately open to anyone (sign-in, health, metrics); `reason` says why."""

    async def dep() -> None:
        return None

    dep.__name__ = "public"
    dep.public = reason  # type: ignore[attr-defined]
    return dep


DB = Annotated[Session, Depends(get_db, scope="function")]  # commits before the response is sent
Now = Annotated[datetime, Depends(get_now)]
Tz = Annotated[ZoneInfo, Depends(get_tz)]
