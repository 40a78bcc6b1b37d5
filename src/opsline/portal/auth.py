"""Customer sign-in for the portal: passwords (argon2, as staff), the same rate limit and lockout as staff sign-in,
server-side sessions, an optional one-time code by SMS, and single-use expiring links (verify, reset, invite) sent
through the notifications area."""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from opsline.core import events
from opsline.core.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from opsline.core.events import Actor
from opsline.core.ids import token as new_token
from opsline.customers.models import Account
from opsline.notifications import service as notifications
from opsline.portal.models import PORTAL_ROLES, PortalMembership, PortalSession, PortalSignInAttempt, PortalToken, PortalUser
from opsline.users.signin import SignInLimits, TooManySignInAttempts

log = logging.getLogger("opsline.portal")
_hasher = PasswordHasher()
COOKIE_NAME = "opsline_portal"
SESSION_MAX_AGE = 8 * 3600
TOKEN_HOURS = {"verify": 72, "reset": 1, "invite": 168}
CODE_MINUTES = 10
CODE_MAX_ATTEMPTS = 5
MIN_PASSWORD = 10
LINKS_PER_HOUR = 3  # reset / verification emails per login per hour (more asks get the same answer and no email)
CUSTOMER_ROLE = "portal_customer"  # the role a customer actor holds when the portal calls other areas' services

EMAILS = {
    "portal.verify_email": ("Confirm your email address for {{ company }} self-service",
                            "Hello {{ name }},\n\nConfirm your email address to start using self-service:\n{{ link }}\n\n"
                            "The link works once and expires in {{ hours }} hours.\n"),
    "portal.password_reset": ("Reset your {{ company }} self-service password",
                              "Hello {{ name }},\n\nSomeone (we hope you) asked to reset your password. Choose a new one here:\n{{ link }}\n\n"
                              "The link works once and expires in {{ hours }} hour(s). If it was not you, ignore this email.\n"),
    "portal.invite": ("{{ inviter }} invited you to {{ company }} self-service",
                      "Hello {{ name }},\n\n{{ inviter }} invited you to see {{ customer }}'s accounts as {{ role }}.\n"
                      "Choose your password here:\n{{ link }}\n\nThe link works once and expires in {{ hours }} hours.\n"),
    "portal.action": ("{{ subject }}", "Hello {{ name }},\n\n{{ text }}\n\nYou can follow this in self-service: {{ link }}\n"),
}
SMS = {"portal.sign_in_code": "Your self-service sign-in code is {{ code }}. It expires in {{ minutes }} minutes. Never share it."}


class PasswordTooWeak(InvalidInput):
    pass


class LinkNotValid(InvalidInput):
    """A verify / reset / invite link that is unknown, used or expired."""

    status = 410
    title = "Link no longer valid"
    type_slug = "link-no-longer-valid"


class EmailNotVerified(NotAuthenticated):
    pass


@dataclass(frozen=True)
class Customer:
    """Who is signed in to the portal, what they may see (party ids and role per party), and their session's CSRF token."""

    user_id: int
    email: str
    full_name: str
    parties: dict[int, str]  # party_id -> role
    csrf_token: str
    session_id: int

    @property
    def actor(self) -> Actor:
        return Actor(name=f"customer:{self.email}"[:120], roles=frozenset({CUSTOMER_ROLE}))


def actor_for(email: str) -> Actor:
    return Actor(name=f"customer:{email}"[:120], roles=frozenset({CUSTOMER_ROLE}))


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _clean_email(email: str) -> str:
    return "".join(ch for ch in (email or "") if ch.isprintable()).strip().lower()[:200]


def check_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise PasswordTooWeak(f"choose a password of at least {MIN_PASSWORD} characters", field="password")
    if len(password) > 1000:
        raise PasswordTooWeak("that password is too long", field="password")


def ensure_templates(session: Session, *, now: datetime) -> None:
    """The portal's email and SMS templates (idempotent; an operator's edits are kept)."""
    for event, (subject, body) in EMAILS.items():
        notifications.ensure_template(session, event=event, channel="email", language="en", subject=subject, body=body, now=now,
                                      description="customer self-service")
    for event, body in SMS.items():
        notifications.ensure_template(session, event=event, channel="sms", language="en", subject="", body=body, now=now,
                                      description="customer self-service")


def first_account_id(session: Session, *, user_id: int) -> int | None:
    """An account the user's messages and audit lines are filed under (the first account of their first customer)."""
    return session.execute(select(func.min(Account.id)).join(PortalMembership, PortalMembership.party_id == Account.party_id)
                           .where(PortalMembership.user_id == user_id)).scalar()


def _send_email(session: Session, *, user: PortalUser, event: str, context: dict, now: datetime, actor: Actor) -> int:
    ensure_templates(session, now=now)
    return notifications.send(session, event=event, account_id=first_account_id(session, user_id=user.id), to=user.email,
                              context={"name": user.full_name, "company": "Opsline"} | context, now=now, actor=actor,
                              channel="email", category="service")


# --- users and links -----------------------------------------------------------------------------------
def create_user(session: Session, *, email: str, full_name: str, party_id: int, role: str, now: datetime, actor: Actor,
                password: str | None = None, phone: str | None = None, verified: bool = False, sms_code: bool = False) -> PortalUser:
    """A portal login for a customer (party). Raises InvalidInput (email, role), Conflict (the email has a login),
    PasswordTooWeak."""
    email = _clean_email(email)
    if "@" not in email or " " in email:
        raise InvalidInput("enter an email address", field="email")
    if role not in PORTAL_ROLES:
        raise InvalidInput(f"role must be one of {', '.join(PORTAL_ROLES)}", field="role")
    if session.execute(select(PortalUser.id).where(PortalUser.email == email)).scalar() is not None:
        raise Conflict(f"{email} already has a self-service login", field="email")
    if password is not None:
        check_password(password)
    user = PortalUser(email=email, full_name=(full_name or email).strip()[:200], phone=(phone or "").strip()[:30] or None,
                      password_hash=_hasher.hash(password) if password else None, email_verified_at=now if verified else None,
                      sms_code=sms_code, active=True, created_at=now, created_by=actor.name)
    session.add(user)
    session.flush()
    session.add(PortalMembership(user_id=user.id, party_id=party_id, role=role, created_at=now, created_by=actor.name))
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="portal_user", entity_id=user.id, action="created",
                  account_id=first_account_id(session, user_id=user.id), after={"email": email, "role": role, "party_id": party_id})
    return user


def _too_many_links(session: Session, *, user_id: int, purpose: str, now: datetime) -> bool:
    recent = session.execute(select(func.count()).select_from(PortalToken).where(
        PortalToken.user_id == user_id, PortalToken.purpose == purpose, PortalToken.created_at > now - timedelta(hours=1))).scalar_one()
    return int(recent) >= LINKS_PER_HOUR


def _issue(session: Session, *, user_id: int, purpose: str, now: datetime) -> str:
    tok = new_token(32)
    session.add(PortalToken(user_id=user_id, purpose=purpose, token_hash=_sha(tok), created_at=now,
                            expires_at=now + timedelta(hours=TOKEN_HOURS[purpose]), used_at=None))
    session.flush()
    return tok


def send_verification(session: Session, *, user_id: int, link_base: str, now: datetime, actor: Actor) -> int:
    """Email a single-use verification link. Returns the message id (0 when this login had LINKS_PER_HOUR already)."""
    user = _user(session, user_id)
    if _too_many_links(session, user_id=user.id, purpose="verify", now=now):
        log.warning("portal: verification emails for login %s held back (%s in the last hour)", user.id, LINKS_PER_HOUR)
        return 0
    tok = _issue(session, user_id=user.id, purpose="verify", now=now)
    return _send_email(session, user=user, event="portal.verify_email", now=now, actor=actor,
                       context={"link": f"{link_base}/portal/verify/{tok}", "hours": TOKEN_HOURS["verify"]})


def request_reset(session: Session, *, email: str, link_base: str, now: datetime, ip: str) -> int | None:
    """Email a reset link when the address has an active login; the same answer either way (no address probing).
    Returns the message id or None."""
    user = session.execute(select(PortalUser).where(PortalUser.email == _clean_email(email), PortalUser.active.is_(True))).scalar_one_or_none()
    if user is None:
        log.info("portal reset asked for an unknown address from %s", ip)
        return None
    if _too_many_links(session, user_id=user.id, purpose="reset", now=now):
        log.warning("portal: reset emails for login %s held back (%s in the last hour), asked from %s", user.id, LINKS_PER_HOUR, ip)
        return None
    tok = _issue(session, user_id=user.id, purpose="reset", now=now)
    events.record(session, now=now, actor=Actor(name=f"portal reset from {ip}"[:120]), entity_type="portal_user", entity_id=user.id,
                  action="reset_requested", account_id=first_account_id(session, user_id=user.id))
    return _send_email(session, user=user, event="portal.password_reset", now=now, actor=actor_for(user.email),
                       context={"link": f"{link_base}/portal/reset/{tok}", "hours": TOKEN_HOURS["reset"]})


def invite(session: Session, *, inviter: Customer, party_id: int, email: str, full_name: str, role: str, link_base: str,
           now: datetime) -> PortalUser:
    """A company's admin contact invites a user with a role (viewer, orderer, billing) who will see the company's
    accounts. Raises NotFound (not this admin's company), InvalidInput, Conflict (the address has a login)."""
    if inviter.parties.get(party_id) != "admin":
        raise NotFound("no such company")
    if role not in ("viewer", "orderer", "billing", "admin"):
        raise InvalidInput("role must be viewer, orderer, billing or admin", field="role")
    user = create_user(session, email=email, full_name=full_name, party_id=party_id, role=role, now=now, actor=inviter.actor)
    tok = _issue(session, user_id=user.id, purpose="invite", now=now)
    customer = session.execute(select(Account.name).where(Account.party_id == party_id).order_by(Account.id).limit(1)).scalar() or ""
    _send_email(session, user=user, event="portal.invite", now=now, actor=inviter.actor,
                context={"link": f"{link_base}/portal/invite/{tok}", "hours": TOKEN_HOURS["invite"], "inviter": inviter.full_name,
                         "customer": customer, "role": role})
    return user


def _user(session: Session, user_id: int) -> PortalUser:
    user = session.get(PortalUser, user_id)
    if user is None:
        raise NotFound("no such login")
    return user


def token_user(session: Session, *, token: str, purpose: str, now: datetime) -> PortalUser:
    """The user behind a link, without using it up. Raises LinkNotValid (unknown, used or expired)."""
    row = session.execute(select(PortalToken).where(PortalToken.token_hash == _sha(token or ""), PortalToken.purpose == purpose)).scalar_one_or_none()
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise LinkNotValid("this link is no longer valid (it was used, or it expired); ask for a new one")
    return _user(session, row.user_id)


def use_token(session: Session, *, token: str, purpose: str, now: datetime, password: str | None = None) -> PortalUser:
    """Use a link once: verify the email address, or (reset, invite) set the password, which also verifies the address
    and ends every session. Raises LinkNotValid, PasswordTooWeak. Nothing changes when it raises."""
    if purpose in ("reset", "invite"):
        check_password(password or "")
    found = session.execute(update(PortalToken).where(PortalToken.token_hash == _sha(token or ""), PortalToken.purpose == purpose,
                                                      PortalToken.used_at.is_(None), PortalToken.expires_at > now).values(used_at=now))
    if not found.rowcount:
        raise LinkNotValid("this link is no longer valid (it was used, or it expired); ask for a new one")
    row = session.execute(select(PortalToken).where(PortalToken.token_hash == _sha(token))).scalar_one()
    user = _user(session, row.user_id)
    if user.email_verified_at is None:
        user.email_verified_at = now
    if password is not None and purpose in ("reset", "invite"):
        user.password_hash = _hasher.hash(password)
        end_all_sessions(session, user_id=user.id, now=now)
    events.record(session, now=now, actor=actor_for(user.email), entity_type="portal_user", entity_id=user.id,
                  action={"verify": "email_verified", "reset": "password_reset", "invite": "invitation_accepted"}[purpose],
                  account_id=first_account_id(session, user_id=user.id))
    return user


# --- sign-in ------------------------------------------------------------------------------------------
def _refuse_if_limited(session: Session, *, email: str, ip: str, since: datetime, now: datetime, limits: SignInLimits) -> None:
    last_ok = (select(func.coalesce(func.max(PortalSignInAttempt.id), 0))
               .where(PortalSignInAttempt.email == email, PortalSignInAttempt.ip == ip, PortalSignInAttempt.succeeded.is_(True),
                      PortalSignInAttempt.attempted_at >= since).scalar_subquery())
    user_fail = session.execute(select(func.count(), func.min(PortalSignInAttempt.attempted_at)).where(
        PortalSignInAttempt.email == email, PortalSignInAttempt.ip == ip, PortalSignInAttempt.succeeded.is_(False),
        PortalSignInAttempt.attempted_at >= since, PortalSignInAttempt.id > last_ok)).one()
    ip_fail = session.execute(select(func.count(), func.min(PortalSignInAttempt.attempted_at)).where(
        PortalSignInAttempt.ip == ip, PortalSignInAttempt.succeeded.is_(False), PortalSignInAttempt.attempted_at >= since)).one()
    for (count, oldest), limit in ((user_fail, limits.per_user_and_ip), (ip_fail, limits.per_ip)):
        if count >= limit:
            retry = max(1, math.ceil((oldest + timedelta(seconds=limits.window_seconds) - now).total_seconds()))
            log.warning("portal sign-in refused: %s failures for %r from %s", count, email, ip)
            minutes = math.ceil(retry / 60)
            raise TooManySignInAttempts(f"too many failed sign-in attempts; try again in {minutes} minute{'s' if minutes != 1 else ''}",
                                        retry_after_seconds=retry)


def sign_in(session: Session, *, email: str, password: str, ip: str, now: datetime, limits: SignInLimits = SignInLimits()) -> PortalUser:
    """Check the rate limit, then the password; record the attempt (the caller commits even when this raises, so
    failures count) and audit a failure. Raises TooManySignInAttempts, NotAuthenticated (one message for an unknown
    address and a wrong password), EmailNotVerified."""
    email = _clean_email(email)
    ip = (ip or "unknown")[:64]
    since = now - timedelta(seconds=limits.window_seconds)
    _refuse_if_limited(session, email=email, ip=ip, since=since, now=now, limits=limits)
    session.execute(delete(PortalSignInAttempt).where(PortalSignInAttempt.email == email, PortalSignInAttempt.ip == ip,
                                                      PortalSignInAttempt.attempted_at < since))
    user = session.execute(select(PortalUser).where(PortalUser.email == email)).scalar_one_or_none()
    ok = False
    try:
        if user is None or not user.active or not user.password_hash:
            _hasher.hash(password)  # same cost either way: timing does not reveal which addresses have a login
        else:
            ok = _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        ok = False
    attempt = PortalSignInAttempt(email=email, ip=ip, attempted_at=now, succeeded=ok)
    session.add(attempt)
    session.flush()
    if not ok or user is None:
        events.record(session, now=now, actor=Actor(name=f"portal sign-in from {ip}"[:120]),
                      entity_type="portal_user" if user else "portal_sign_in_attempt", entity_id=user.id if user else attempt.id,
                      action="sign_in_failed", account_id=first_account_id(session, user_id=user.id) if user else None,
                      after={"email": email, "ip": ip})
        raise NotAuthenticated("wrong email address or password")
    if user.email_verified_at is None:
        raise EmailNotVerified("confirm your email address first: use the link we emailed you (or ask for a new one)")
    return user


def start_session(session: Session, *, user: PortalUser, now: datetime, ip: str | None, user_agent: str | None) -> tuple[PortalSession, str, int | None]:
    """A new session (fresh token: no fixation). With the SMS code switched on it waits for the code, which is sent by
    SMS through the notifications area. Returns (session, cookie token, SMS message id or None)."""
    session.execute(delete(PortalSession).where(PortalSession.user_id == user.id, PortalSession.expires_at <= now))
    tok = new_token(32)
    row = PortalSession(token_hash=_sha(tok), user_id=user.id, csrf_token=new_token(24), created_at=now,
                        expires_at=now + timedelta(seconds=SESSION_MAX_AGE), revoked_at=None, ip=(ip or "")[:64] or None,
                        user_agent=(user_agent or "")[:300] or None, code_attempts=0)
    message_id = None
    if user.sms_code and user.phone:
        code = f"{secrets.randbelow(1_000_000):06d}"
        row.code_hash, row.code_expires_at = _sha(f"{tok}:{code}"), now + timedelta(minutes=CODE_MINUTES)
        ensure_templates(session, now=now)
        message_id = notifications.send(session, event="portal.sign_in_code", account_id=first_account_id(session, user_id=user.id),
                                        to=user.phone, channel="sms", category="service", context={"code": code, "minutes": CODE_MINUTES},
                                        now=now, actor=actor_for(user.email))
    session.add(row)
    session.flush()
    events.record(session, now=now, actor=actor_for(user.email), entity_type="portal_user", entity_id=user.id, action="signed_in",
                  account_id=first_account_id(session, user_id=user.id), after={"ip": row.ip, "sms_code": bool(row.code_hash)})
    return row, tok, message_id


def check_code(session: Session, *, token: str, code: str, now: datetime) -> None:
    """The SMS code for a session waiting for one. Raises NotAuthenticated (wrong, expired, or too many tries: the
    session then ends)."""
    row = session.execute(select(PortalSession).where(PortalSession.token_hash == _sha(token or ""), PortalSession.revoked_at.is_(None))).scalar_one_or_none()
    if row is None or row.code_hash is None:
        raise NotAuthenticated("please sign in")
    if row.code_expires_at is None or row.code_expires_at <= now or row.code_attempts >= CODE_MAX_ATTEMPTS:
        row.revoked_at = now
        raise NotAuthenticated("the code expired or was entered wrongly too often; please sign in again")
    if not hmac.compare_digest(row.code_hash, _sha(f"{token}:{(code or '').strip()}")):
        row.code_attempts += 1
        events.record(session, now=now, actor=Actor(name="portal sign-in code"), entity_type="portal_user", entity_id=row.user_id,
                      action="sign_in_code_failed", account_id=first_account_id(session, user_id=row.user_id))
        raise NotAuthenticated("that code is not right")
    row.code_hash, row.code_expires_at = None, None


def pending_code(session: Session, *, token: str, now: datetime) -> bool:
    row = session.execute(select(PortalSession.code_hash).where(PortalSession.token_hash == _sha(token or ""), PortalSession.revoked_at.is_(None),
                                                                 PortalSession.expires_at > now)).first()
    return bool(row and row[0])


def load_customer(session: Session, *, token: str, now: datetime) -> Customer:
    """The signed-in customer behind a cookie token. Raises NotAuthenticated (none, unknown, revoked, expired,
    waiting for its SMS code, login deactivated)."""
    if not token:
        raise NotAuthenticated("please sign in")
    found = session.execute(select(PortalSession, PortalUser).join(PortalUser, PortalUser.id == PortalSession.user_id)
                            .where(PortalSession.token_hash == _sha(token))).first()
    if found is None:
        raise NotAuthenticated("please sign in")
    row, user = found
    if row.revoked_at is not None or not user.active or row.expires_at <= now or row.code_hash is not None:
        raise NotAuthenticated("please sign in again")
    parties = dict(session.execute(select(PortalMembership.party_id, PortalMembership.role).where(PortalMembership.user_id == user.id)).all())
    return Customer(user_id=user.id, email=user.email, full_name=user.full_name, parties={int(k): str(v) for k, v in parties.items()},
                    csrf_token=row.csrf_token, session_id=row.id)


def sign_out(session: Session, *, token: str, now: datetime) -> bool:
    """Revoke the session behind a cookie token and audit it. Returns whether a live session ended."""
    row = session.execute(select(PortalSession).where(PortalSession.token_hash == _sha(token or ""), PortalSession.revoked_at.is_(None))).scalar_one_or_none()
    if row is None:
        return False
    row.revoked_at = now
    user = _user(session, row.user_id)
    events.record(session, now=now, actor=actor_for(user.email), entity_type="portal_user", entity_id=user.id, action="signed_out",
                  account_id=first_account_id(session, user_id=user.id))
    return True


def end_all_sessions(session: Session, *, user_id: int, now: datetime) -> int:
    result = session.execute(update(PortalSession).where(PortalSession.user_id == user_id, PortalSession.revoked_at.is_(None)).values(revoked_at=now))
    return int(result.rowcount or 0)


def unverified_user(session: Session, *, email: str) -> PortalUser | None:
    return session.execute(select(PortalUser).where(PortalUser.email == _clean_email(email), PortalUser.active.is_(True),
                                                    PortalUser.email_verified_at.is_(None))).scalar_one_or_none()
