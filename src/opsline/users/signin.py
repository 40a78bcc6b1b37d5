"""Password sign-in with a server-side rate limit: repeated failures for one username from one address, or from one
address across usernames (password spraying), are refused for a while. Attempts live in the database, so the limit
holds across every web process and restart."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from opsline.core import events
from opsline.core.errors import NotAuthenticated, OpslineError
from opsline.core.events import Actor
from opsline.users import service as users
from opsline.users.models import SignInAttempt, User

log = logging.getLogger("opsline.users.signin")


@dataclass(frozen=True)
class SignInLimits:
    """How many failed sign-ins are tolerated inside `window_seconds` (per username and address; per address)."""

    per_user_and_ip: int = 5
    per_ip: int = 30
    window_seconds: int = 900


class TooManySignInAttempts(OpslineError):
    status = 429
    title = "Too many sign-in attempts"
    type_slug = "too-many-sign-in-attempts"

    def __init__(self, detail: str, *, retry_after_seconds: int) -> None:
        super().__init__(detail, extra={"retry_after_seconds": retry_after_seconds})
        self.retry_after_seconds = retry_after_seconds


def sign_in(session: Session, *, username: str, password: str, ip: str, now: datetime, limits: SignInLimits = SignInLimits()) -> User:
    """Check the rate limit, then the password, and record the attempt in the caller's transaction (the caller must
    commit even when this raises, so that failures count). Raises TooManySignInAttempts (nothing checked, nothing
    recorded) or NotAuthenticated (one message for unknown user and wrong password)."""
    username = "".join(ch for ch in username if ch.isprintable()).strip()[:60]  # no NUL or control characters reach SQL
    ip = (ip or "unknown")[:64]
    since = now - timedelta(seconds=limits.window_seconds)
    _refuse_if_limited(session, username=username, ip=ip, since=since, now=now, limits=limits)
    session.execute(delete(SignInAttempt).where(SignInAttempt.username == username, SignInAttempt.ip == ip, SignInAttempt.attempted_at < since))
    try:
        user = users.authenticate(session, username=username, password=password, now=now)
    except NotAuthenticated:
        attempt = SignInAttempt(username=username, ip=ip, attempted_at=now, succeeded=False)
        session.add(attempt)
        session.flush()
        known = session.execute(select(User.id).where(User.username == username)).scalar()
        events.record(session, now=now, actor=Actor(name=f"sign-in from {ip}"), entity_type="user" if known else "sign_in_attempt",
                      entity_id=known or attempt.id, action="sign_in_failed", after={"username": username, "ip": ip})
        raise
    session.add(SignInAttempt(username=username, ip=ip, attempted_at=now, succeeded=True))
    session.flush()
    return user


def _refuse_if_limited(session: Session, *, username: str, ip: str, since: datetime, now: datetime, limits: SignInLimits) -> None:
    # Failures for this username from this address inside the window and after its last success (ids, not times,
    # order attempts: several can share one instant).
    last_ok = (
        select(func.coalesce(func.max(SignInAttempt.id), 0))
        .where(SignInAttempt.username == username, SignInAttempt.ip == ip, SignInAttempt.succeeded.is_(True), SignInAttempt.attempted_at >= since)
        .scalar_subquery()
    )
    user_fail = session.execute(
        select(func.count(), func.min(SignInAttempt.attempted_at)).where(
            SignInAttempt.username == username, SignInAttempt.ip == ip, SignInAttempt.succeeded.is_(False),
            SignInAttempt.attempted_at >= since, SignInAttempt.id > last_ok,
        )
    ).one()
    ip_fail = session.execute(
        select(func.count(), func.min(SignInAttempt.attempted_at)).where(
            SignInAttempt.ip == ip, SignInAttempt.succeeded.is_(False), SignInAttempt.attempted_at >= since)
    ).one()
    for (count, oldest), limit in ((user_fail, limits.per_user_and_ip), (ip_fail, limits.per_ip)):
        if count >= limit:
            retry = max(1, math.ceil((oldest + timedelta(seconds=limits.window_seconds) - now).total_seconds()))
            log.warning("sign-in refused: %s failures for %r from %s in %s s", count, username, ip, limits.window_seconds)
            minutes = math.ceil(retry / 60)
            raise TooManySignInAttempts(
                f"too many failed sign-in attempts; try again in {minutes} minute{'s' if minutes != 1 else ''}",
                retry_after_seconds=retry,
            )
