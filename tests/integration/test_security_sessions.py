"""Password changes revoke sessions: a new password ends every live session of that user (SQLite and PostgreSQL)."""

import pytest
from sqlalchemy import select

from opsline.core.errors import NotAuthenticated
from opsline.core.events import Actor
from opsline.users import sessions
from opsline.users.service import create_user


@pytest.fixture
def user_id(session, now) -> int:  # type: ignore[no-untyped-def]
    u = create_user(session, username="thabo", full_name="Thabo M", email="thabo@example.test", password="correct-horse",
                    roles=["debtors_clerk"], now=now, actor=Actor.system("test"))
    session.flush()
    return u.id


def test_changing_a_password_ends_every_live_session_of_that_user_and_is_audited(session, now, user_id):
    from opsline.core.events import AuditEvent
    from opsline.users.models import User
    from opsline.users.service import authenticate, change_password

    _, tok1 = sessions.start_session(session, user_id=user_id, now=now, max_age_seconds=3600)
    _, tok2 = sessions.start_session(session, user_id=user_id, now=now, max_age_seconds=3600)
    username = session.get(User, user_id).username
    assert change_password(session, username=username, password="a-new-password", now=now, actor=Actor.system("test")) == 2
    for tok in (tok1, tok2):
        with pytest.raises(NotAuthenticated):
            sessions.load_session(session, token=tok, now=now)
    assert authenticate(session, username=username, password="a-new-password", now=now).id == user_id
    ev = session.execute(select(AuditEvent).where(AuditEvent.action == "password_changed")).scalar_one()
    assert ev.after == {"sessions_ended": 2} and "a-new-password" not in str(ev.after)
