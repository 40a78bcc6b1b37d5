"""Server-side staff sessions and the sign-in rate limit as services, on SQLite and PostgreSQL."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from opsline.core.errors import NotAuthenticated
from opsline.core.events import Actor
from opsline.users import sessions, signin
from opsline.users.models import SignInAttempt, StaffSession, User
from opsline.users.service import create_user


@pytest.fixture
def user_id(session, now) -> int:  # type: ignore[no-untyped-def]
    u = create_user(session, username="thabo", full_name="Thabo M", email="thabo@example.test", password="correct-horse",
                    roles=["debtors_clerk", "billing_analyst"], now=now, actor=Actor.system("test"))
    session.flush()
    return u.id


def test_a_session_is_found_by_its_token_with_the_users_roles_until_it_expires(session, now, user_id):
    active, tok = sessions.start_session(session, user_id=user_id, now=now, max_age_seconds=3600, ip="10.0.0.1", user_agent="pytest")
    found = sessions.load_session(session, token=tok, now=now + timedelta(minutes=59))
    assert found == active and found.roles == frozenset({"debtors_clerk", "billing_analyst"}) and len(found.csrf_token) >= 24
    with pytest.raises(sessions.SessionExpired, match="expired"):
        sessions.load_session(session, token=tok, now=now + timedelta(hours=1))


def test_an_unknown_or_empty_token_is_not_a_session(session, now, user_id):
    for tok in ("", "x" * 43):
        with pytest.raises(NotAuthenticated, match="please sign in"):
            sessions.load_session(session, token=tok, now=now)


def test_ending_a_session_revokes_it_and_ending_twice_changes_nothing(session, now, user_id):
    _, tok = sessions.start_session(session, user_id=user_id, now=now, max_age_seconds=3600)
    assert sessions.end_session(session, token=tok, now=now) is True
    assert sessions.end_session(session, token=tok, now=now + timedelta(minutes=1)) is False
    assert session.execute(select(StaffSession.revoked_at)).scalar_one() == now
    with pytest.raises(NotAuthenticated, match="signed out"):
        sessions.load_session(session, token=tok, now=now)


def test_signing_out_is_audited_beside_the_sign_in_and_a_dead_token_changes_nothing(session, now, user_id):
    from opsline.core.events import history

    _, tok = sessions.start_session(session, user_id=user_id, now=now, max_age_seconds=3600)
    assert sessions.sign_out(session, token=tok, now=now) is True
    assert sessions.sign_out(session, token=tok, now=now) is False
    assert [e["action"] for e in history(session, entity_type="user", entity_id=user_id)] == ["signed_out", "created"]


def test_signing_out_everywhere_ends_every_live_session_of_that_user(session, now, user_id):
    toks = [sessions.start_session(session, user_id=user_id, now=now, max_age_seconds=3600)[1] for _ in range(3)]
    assert len(sessions.live_sessions(session, user_id=user_id, now=now)) == 3
    assert sessions.end_all_sessions(session, user_id=user_id, now=now) == 3
    assert sessions.live_sessions(session, user_id=user_id, now=now) == []
    for tok in toks:
        with pytest.raises(NotAuthenticated):
            sessions.load_session(session, token=tok, now=now)


def test_a_deactivated_user_loses_their_sessions_and_cannot_start_one(session, now, user_id):
    _, tok = sessions.start_session(session, user_id=user_id, now=now, max_age_seconds=3600)
    session.get(User, user_id).active = False
    session.flush()
    with pytest.raises(NotAuthenticated):
        sessions.load_session(session, token=tok, now=now)
    with pytest.raises(NotAuthenticated):
        sessions.start_session(session, user_id=user_id, now=now, max_age_seconds=3600)
    assert session.execute(select(func.count()).select_from(StaffSession)).scalar_one() == 1


def test_expired_sessions_are_cleared_when_the_user_signs_in_again(session, now, user_id):
    sessions.start_session(session, user_id=user_id, now=now, max_age_seconds=60)
    sessions.start_session(session, user_id=user_id, now=now + timedelta(hours=1), max_age_seconds=60)
    assert session.execute(select(func.count()).select_from(StaffSession)).scalar_one() == 1


def test_sign_in_records_each_attempt_and_refuses_after_the_limit_without_checking_the_password(session, now, user_id):
    limits = signin.SignInLimits(per_user_and_ip=3, per_ip=100, window_seconds=600)
    for i in range(3):
        with pytest.raises(NotAuthenticated, match="wrong username or password"):
            signin.sign_in(session, username="thabo", password="nope", ip="10.0.0.1", now=now + timedelta(seconds=i), limits=limits)
    with pytest.raises(signin.TooManySignInAttempts) as refused:
        signin.sign_in(session, username="thabo", password="correct-horse", ip="10.0.0.1", now=now + timedelta(seconds=10), limits=limits)
    assert refused.value.status == 429 and refused.value.retry_after_seconds == 590
    assert refused.value.problem()["retry_after_seconds"] == 590
    assert session.execute(select(func.count()).select_from(SignInAttempt)).scalar_one() == 3  # the refused try is not recorded
    user = signin.sign_in(session, username="thabo", password="correct-horse", ip="10.0.0.1", now=now + timedelta(seconds=603), limits=limits)
    assert user.id == user_id
    # attempts older than the window are removed on the way; the success is kept
    assert session.execute(select(SignInAttempt.succeeded)).scalars().all() == [True]


def test_the_username_is_trimmed_and_capped_before_it_is_stored(session, now, user_id):
    with pytest.raises(NotAuthenticated):
        signin.sign_in(session, username="  " + "z" * 300, password="x", ip="10.0.0.1", now=now)
    assert session.execute(select(func.length(SignInAttempt.username))).scalar_one() == 60


def test_control_characters_in_a_username_are_a_wrong_sign_in_not_a_database_error(session, now, user_id):
    with pytest.raises(NotAuthenticated, match="wrong username or password"):
        signin.sign_in(session, username="tha\x00bo\n", password="nope", ip="10.0.0.1", now=now)
    assert session.execute(select(SignInAttempt.username)).scalar_one() == "thabo"
