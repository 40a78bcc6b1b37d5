"""Server-side staff sessions: start at sign-in, look up per request by the cookie's token, end at sign-out.

The cookie carries only a random token; the database keeps its SHA-256, the user, the CSRF token and the expiry,
so any web process can check a session, sign-out revokes it everywhere, and a leaked database holds no live cookie."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from opsline.core import events
from opsline.core.errors import NotAuthenticated
from opsline.core.events import Actor
from opsline.core.ids import token as new_token
from opsline.users.models import StaffSession, User

COOKIE_NAME = "opsline_session"


class SessionExpired(NotAuthenticated):
    pass


@dataclass(frozen=True)
class ActiveSession:
    """What a request needs from its session: who, their roles, and the CSRF token forms must echo."""

    session_id: int
    user_id: int
    username: str
    full_name: str
    roles: frozenset[str]
    csrf_token: str
    created_at: datetime
    expires_at: datetime


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, *, user_id: int, now: datetime, max_age_seconds: int, ip: str | None = None, user_agent: str | None = None) -> tuple[ActiveSession, str]:
    """Open a new session for a signed-in user; returns it with the cookie token (shown once, only its hash is kept).
    A fresh token every sign-in, so a token planted before sign-in is never promoted (no session fixation).
    Expired sessions of the same user are removed on the way."""
    user = session.get(User, user_id)
    if user is None or not user.active:
        raise NotAuthenticated("please sign in")
    session.execute(delete(StaffSession).where(StaffSession.user_id == user_id, StaffSession.expires_at <= now))
    tok = new_token(32)
    row = StaffSession(token_hash=_hash(tok), user_id=user_id, csrf_token=new_token(24), created_at=now,
                       expires_at=now + timedelta(seconds=max_age_seconds), revoked_at=None,
                       ip=(ip or "")[:64] or None, user_agent=(user_agent or "")[:300] or None)
    session.add(row)
    session.flush()
    return _active(row, user), tok


@lru_cache(maxsize=1)
def _session_lookup():  # type: ignore[no-untyped-def]
    """Built once (every request runs it): columns rather than entities, a bound parameter for the token's hash."""
    return select(StaffSession.id, StaffSession.user_id, StaffSession.csrf_token, StaffSession.created_at, StaffSession.expires_at, StaffSession.revoked_at,
                  User.username, User.full_name, User.roles, User.active) \
        .join(User, User.id == StaffSession.user_id).where(StaffSession.token_hash == bindparam("token_hash"))


def load_session(session: Session, *, token: str, now: datetime) -> ActiveSession:
    """The live session for a cookie token (one query, with its user).
    Raises SessionExpired when it ran out, NotAuthenticated when unknown, revoked or its user is deactivated."""
    if not token:
        raise NotAuthenticated("please sign in")
    row = session.execute(_session_lookup(), {"token_hash": _hash(token)}).first()
    if row is None:
        raise NotAuthenticated("please sign in")
    if row.revoked_at is not None or not row.active:
        raise NotAuthenticated("you were signed out; please sign in again")
    if row.expires_at <= now:
        raise SessionExpired("your session has expired; please sign in again")
    return _active(row, row)  # the row carries the session's and the user's columns


def end_session(session: Session, *, token: str, now: datetime) -> bool:
    """Revoke the session behind a cookie token (sign-out). Returns whether a live session was ended."""
    if not token:
        return False
    result = session.execute(
        update(StaffSession).where(StaffSession.token_hash == _hash(token), StaffSession.revoked_at.is_(None)).values(revoked_at=now)
    )
    return bool(result.rowcount)


def sign_out(session: Session, *, token: str, now: datetime) -> bool:
    """End the session behind a cookie token and write the sign-out to the audit log (beside the sign-in).
    Returns False, changing nothing, when the token names no live session."""
    try:
        active = load_session(session, token=token, now=now)
    except NotAuthenticated:
        return False
    end_session(session, token=token, now=now)
    events.record(session, now=now, actor=Actor(name=active.username, user_id=active.user_id), entity_type="user",
                  entity_id=active.user_id, action="signed_out")
    return True


def end_all_sessions(session: Session, *, user_id: int, now: datetime) -> int:
    """Revoke every live session of a user (deactivation, password change, "sign out everywhere")."""
    result = session.execute(
        update(StaffSession).where(StaffSession.user_id == user_id, StaffSession.revoked_at.is_(None), StaffSession.expires_at > now).values(revoked_at=now)
    )
    return int(result.rowcount or 0)


def live_sessions(session: Session, *, user_id: int, now: datetime) -> list[dict[str, object]]:
    """A user's sessions that are still valid, newest first (for an operator to see where someone is signed in)."""
    rows = session.execute(
        select(StaffSession).where(StaffSession.user_id == user_id, StaffSession.revoked_at.is_(None), StaffSession.expires_at > now)
        .order_by(StaffSession.id.desc())
    ).scalars()
    return [{"id": r.id, "created_at": r.created_at, "expires_at": r.expires_at, "ip": r.ip, "user_agent": r.user_agent} for r in rows]


def _active(row: Any, user: Any) -> ActiveSession:
    """From a StaffSession and its User, or from one row of `_session_lookup` carrying both."""
    return ActiveSession(session_id=row.id, user_id=row.user_id, username=user.username, full_name=user.full_name,
                         roles=frozenset(user.roles or []), csrf_token=row.csrf_token, created_at=row.created_at, expires_at=row.expires_at)
