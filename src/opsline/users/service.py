"""Staff users and API clients: creation, password checks (argon2), token checks."""

from __future__ import annotations

import hashlib
from datetime import datetime
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from opsline.core import events
from opsline.core.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from opsline.core.events import Actor
from opsline.core.ids import token as new_token
from opsline.users.models import ApiClient, User
from opsline.users.roles import Role

_hasher = PasswordHasher()


class UnableToCreateUser(InvalidInput):
    pass


def _check_roles(roles: list[str]) -> list[str]:
    valid = {r.value for r in Role}
    bad = [r for r in roles if r not in valid]
    if bad or not roles:
        raise UnableToCreateUser(f"unknown role(s): {', '.join(bad) or '(none given)'}; choose from {', '.join(sorted(valid))}", field="roles")
    return roles


def create_user(session: Session, *, username: str, full_name: str, email: str, password: str, roles: list[str], now: datetime, actor: Actor, skills: list[str] | None = None) -> User:
    """Create a staff user. Raises UnableToCreateUser (bad role, short password) or Conflict (username taken)."""
    if len(password) < 8:
        raise UnableToCreateUser("password must be at least 8 characters", field="password")
    _check_roles(roles)
    if session.execute(select(User.id).where(User.username == username)).first():
        raise Conflict(f"username '{username}' is taken", field="username")
    user = User(username=username, full_name=full_name, email=email, password_hash=_hasher.hash(password), roles=roles, skills=skills or [], active=True, created_at=now)
    session.add(user)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="user", entity_id=user.id, action="created", after={"username": username, "roles": roles})
    return user


def authenticate(session: Session, *, username: str, password: str, now: datetime) -> User:
    """Check a password. Raises NotAuthenticated with one message for unknown user and wrong password."""
    user = session.execute(select(User).where(User.username == username, User.active.is_(True))).scalar_one_or_none()
    if user is None:
        _hasher.hash(password)  # same cost either way, so timing does not reveal which usernames exist
        raise NotAuthenticated("wrong username or password")
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError) as exc:
        raise NotAuthenticated("wrong username or password") from exc
    user.last_login_at = now
    events.record(session, now=now, actor=Actor(name=user.username, user_id=user.id), entity_type="user", entity_id=user.id, action="signed_in")
    return user


def change_password(session: Session, *, username: str, password: str, now: datetime, actor: Actor) -> int:
    """Set a new password and end every live session of that user (a stolen cookie dies with the old password).
    Returns how many sessions were ended. Raises NotFound (no such active user), UnableToCreateUser (short password)."""
    from opsline.users.sessions import end_all_sessions

    if len(password) < 8:
        raise UnableToCreateUser("password must be at least 8 characters", field="password")
    user = session.execute(select(User).where(User.username == username, User.active.is_(True))).scalar_one_or_none()
    if user is None:
        raise NotFound(f"no active user '{username}'", field="username")
    user.password_hash = _hasher.hash(password)
    ended = end_all_sessions(session, user_id=user.id, now=now)
    events.record(session, now=now, actor=actor, entity_type="user", entity_id=user.id, action="password_changed", after={"sessions_ended": ended})
    return ended


def get_user(session: Session, *, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or not user.active:
        raise NotFound(f"user {user_id} not found")
    return user


def list_users(session: Session) -> list[dict[str, Any]]:
    return [
        {"id": u.id, "username": u.username, "full_name": u.full_name, "email": u.email, "roles": u.roles, "skills": u.skills, "active": u.active}
        for u in session.execute(select(User).order_by(User.username)).scalars()
    ]


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_client(session: Session, *, name: str, roles: list[str], now: datetime, actor: Actor) -> tuple[ApiClient, str]:
    """Create an API client and return it with its bearer token (shown once, only the hash is kept)."""
    _check_roles(roles)
    if session.execute(select(ApiClient.id).where(ApiClient.name == name)).first():
        raise Conflict(f"API client '{name}' exists", field="name")
    tok = new_token(32)
    client = ApiClient(name=name, token_hash=_hash_token(tok), roles=roles, active=True, created_at=now)
    session.add(client)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="api_client", entity_id=client.id, action="created", after={"name": name, "roles": roles})
    return client, tok


@lru_cache(maxsize=1)
def _client_lookup():  # type: ignore[no-untyped-def]
    return select(ApiClient).where(ApiClient.token_hash == bindparam("token_hash"), ApiClient.active.is_(True))  # built once: every API request runs it


def client_for_token(session: Session, *, token: str) -> ApiClient:
    client = session.execute(_client_lookup(), {"token_hash": _hash_token(token)}).scalar_one_or_none()
    if client is None:
        raise NotAuthenticated("unknown or revoked API token")
    return client
