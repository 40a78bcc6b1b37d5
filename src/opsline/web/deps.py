"""FastAPI dependencies shared by pages and API routers: database session, clock, principal, permissions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo
from typing import Annotated, Callable, Iterator

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from opsline.core.localtime import zone
from opsline.core.errors import NotAuthenticated, PermissionDenied
from opsline.core.events import Actor
from opsline.users import service as users
from opsline.users.roles import allowed


def get_db(request: Request) -> Iterator[Session]:
    """One transaction per request: commit when the handler returns, roll back on error."""
    session = request.app.state.sessionmaker()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def get_now(request: Request) -> datetime:
    return request.app.state.clock()


def get_tz(request: Request) -> ZoneInfo:
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


def get_principal(request: Request, db: Annotated[Session, Depends(get_db)], now: Annotated[datetime, Depends(get_now)]) -> Principal:
    """A staff user from the session cookie, or a system from a bearer token. Raises NotAuthenticated."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        client = users.client_for_token(db, token=auth[7:].strip())
        roles = frozenset(client.roles)
        return Principal(Actor(name=f"api:{client.name}", roles=roles), None, client.name, roles, "token")
    uid = request.session.get("uid")
    issued = request.session.get("iat")
    if not uid or issued is None:
        raise NotAuthenticated("please sign in")
    if now.timestamp() - float(issued) > request.app.state.settings.session_max_age_seconds:
        request.session.clear()
        raise NotAuthenticated("your session has expired; please sign in again")
    try:
        user = users.get_user(db, user_id=int(uid))
    except Exception as exc:
        request.session.clear()
        raise NotAuthenticated("please sign in") from exc
    roles = frozenset(user.roles)
    return Principal(Actor(name=user.username, user_id=user.id, roles=roles), user.id, user.full_name, roles, "session", request.session.get("csrf"))


def require(permission: str) -> Callable[..., Principal]:
    """Dependency factory: the principal, after checking it holds `permission` (403 otherwise)."""

    def dep(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.can(permission):
            raise PermissionDenied(f"your role does not allow '{permission}'")
        return principal

    dep.__name__ = f"require_{permission.replace('.', '_')}"
    return dep


DB = Annotated[Session, Depends(get_db)]
Now = Annotated[datetime, Depends(get_now)]
Tz = Annotated[ZoneInfo, Depends(get_tz)]
