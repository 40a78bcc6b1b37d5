"""Web security: headers on every answer, server-side sessions (revocable, shared by every web process, no fixation),
a rate-limited sign-in stored server-side, CSRF and cross-site checks on every state change."""

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from opsline.customers.models import Memo
from opsline.users.models import SignInAttempt, StaffSession
from opsline.users.sessions import COOKIE_NAME
from conftest import post_login


def _sign_in(c: TestClient, username: str, password: str = "password123"):  # type: ignore[no-untyped-def]
    return post_login(c, username, password)


def _account(factory, now, actor) -> int:  # type: ignore[no-untyped-def]
    from opsline.customers import service
    from opsline.customers.schemas import AccountIn

    with factory.begin() as s:
        acc = service.create_account(s, data=AccountIn(name="Pieter Botha", email="pieter@example.co.za"), now=now, actor=actor)
        s.flush()
        return acc.id


def test_every_answer_carries_the_security_headers(client_as, app):
    c = client_as("second_line_agent")
    answers = [c.get("/desk/second_line_agent"), c.get("/tmf-api/customerManagement/v4/customer"), c.get("/static/app.css"),
               c.get("/accounts/999999"), TestClient(app).get("/login")]
    for r in answers:
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "same-origin"
        csp = r.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert answers[0].headers["cache-control"] == "no-store"  # pages with customer data are not cached


def test_pages_use_no_inline_script_so_the_policy_can_forbid_it(client_as):
    import re

    c = client_as("admin")
    for url in ("/desk/admin", "/login", "/jobs"):
        html = c.get(url).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), url
        assert not re.search(r"\son[a-z]+=", html), url


def test_the_session_cookie_is_an_opaque_http_only_token_kept_server_side(app, make_user, factory):
    make_user("debtors_clerk", username="dawie")
    c = TestClient(app)
    r = _sign_in(c, "dawie")
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=") and "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    token = c.cookies[COOKIE_NAME]
    assert "dawie" not in token and "." not in token  # nothing about the user travels in the cookie
    with factory() as s:
        rows = s.execute(select(StaffSession)).scalars().all()
    assert len(rows) == 1 and rows[0].token_hash != token and len(rows[0].token_hash) == 64 and rows[0].revoked_at is None


def test_signing_out_ends_the_session_on_the_server_so_a_copied_cookie_stops_working(app, make_user, factory):
    make_user("debtors_clerk", username="dawie")
    c = TestClient(app)
    _sign_in(c, "dawie")
    token = c.cookies[COOKIE_NAME]
    copy = TestClient(app, cookies={COOKIE_NAME: token})
    assert copy.get("/tmf-api/customerManagement/v4/customer").status_code == 200
    csrf = _csrf(c)
    assert c.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    r = copy.get("/tmf-api/customerManagement/v4/customer")
    assert r.status_code == 401 and "signed out" in r.json()["detail"]
    with factory() as s:
        assert s.execute(select(StaffSession.revoked_at)).scalar_one() is not None


def test_a_session_started_by_one_web_process_is_honoured_by_another(engine, clock, make_user):
    from conftest import test_settings

    from opsline.web.app import create_app

    make_user("billing_analyst", username="bilal")
    first = create_app(settings=test_settings(engine), engine=engine, clock=clock, start_worker=False)
    other_settings = test_settings(engine).model_copy(update={"secret_key": "a-different-secret-on-another-machine"})
    second = create_app(settings=other_settings, engine=engine, clock=clock, start_worker=False)
    c = TestClient(first)
    _sign_in(c, "bilal")
    r = TestClient(second, cookies={COOKIE_NAME: c.cookies[COOKIE_NAME]}).get("/desk/billing_analyst")
    assert r.status_code == 200 and "Billing / OTC analyst desk" in r.text


def test_a_cookie_planted_before_sign_in_is_never_promoted(app, make_user):
    make_user("debtors_clerk", username="dawie")
    c = TestClient(app, cookies={COOKIE_NAME: "planted-by-an-attacker"})
    assert c.get("/tmf-api/customerManagement/v4/customer").status_code == 401
    issued = _sign_in(c, "dawie").headers["set-cookie"]
    assert issued.startswith(f"{COOKIE_NAME}=") and "planted-by-an-attacker" not in issued
    assert TestClient(app, cookies={COOKIE_NAME: "planted-by-an-attacker"}).get("/tmf-api/customerManagement/v4/customer").status_code == 401


def test_signing_in_again_ends_the_browsers_previous_session(app, make_user):
    make_user("debtors_clerk", username="dawie")
    c = TestClient(app)
    _sign_in(c, "dawie")
    first = c.cookies[COOKIE_NAME]
    _sign_in(c, "dawie")
    assert c.cookies[COOKIE_NAME] != first
    assert TestClient(app, cookies={COOKIE_NAME: first}).get("/tmf-api/customerManagement/v4/customer").status_code == 401


def test_repeated_wrong_passwords_lock_that_username_from_that_address_for_a_while(app, make_user, clock, factory):
    make_user("debtors_clerk", username="dawie")
    c = TestClient(app)
    for _ in range(5):
        assert _sign_in(c, "dawie", "wrong-password").status_code == 401
    r = _sign_in(c, "dawie")  # even the right password is refused while locked
    assert r.status_code == 429 and "too many failed sign-in attempts; try again in 15 minutes" in r.text
    assert int(r.headers["retry-after"]) == 900
    assert COOKIE_NAME not in c.cookies
    elsewhere = TestClient(app, client=("10.1.2.3", 50000))  # the same user from another address is not locked out
    assert _sign_in(elsewhere, "dawie").status_code == 303
    with factory() as s:  # the attempts are kept server-side (shared by every web process)
        assert s.execute(select(func.count()).select_from(SignInAttempt).where(SignInAttempt.succeeded.is_(False))).scalar_one() == 5
    clock.at = clock.at + timedelta(minutes=15, seconds=1)
    assert _sign_in(c, "dawie").status_code == 303


def test_unknown_usernames_are_locked_the_same_way_so_the_answer_reveals_nothing(app):
    c = TestClient(app)
    for _ in range(5):
        assert _sign_in(c, "nobody-here", "guess").status_code == 401
    r = _sign_in(c, "nobody-here", "guess")
    assert r.status_code == 429 and "too many failed sign-in attempts" in r.text


def test_a_successful_sign_in_clears_the_count_of_earlier_failures(app, make_user):
    make_user("debtors_clerk", username="dawie")
    c = TestClient(app)
    for _ in range(4):
        _sign_in(c, "dawie", "wrong-password")
    assert _sign_in(c, "dawie").status_code == 303
    for _ in range(4):
        assert _sign_in(c, "dawie", "wrong-password").status_code == 401
    assert _sign_in(c, "dawie").status_code == 303


def test_password_spraying_from_one_address_is_refused_across_usernames(app, make_user):
    make_user("debtors_clerk", username="dawie")
    c = TestClient(app, client=("10.9.9.9", 40000))
    for i in range(30):
        assert _sign_in(c, f"user{i}", "Summer2026!").status_code == 401
    assert _sign_in(c, "dawie").status_code == 429
    assert _sign_in(TestClient(app), "dawie").status_code == 303


def test_a_state_change_from_another_site_is_refused_and_changes_nothing(client_as, factory, now, actor):
    acc_id = _account(factory, now, actor)
    c = client_as("debtors_clerk")
    r = c.post(f"/accounts/{acc_id}/memos", data={"body": "from evil.example"}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and "cross-site" in r.json()["detail"]
    r = c.post(f"/accounts/{acc_id}/memos", data={"body": "wrong token"}, headers={"X-CSRF-Token": "not-the-token"})
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    r = c.post(f"/accounts/{acc_id}/memos", data={"body": "odd token", "csrf_token": "tökén-ü"}, headers={"X-CSRF-Token": ""})
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]  # a non-ASCII token is refused, not a server error
    with factory() as s:
        assert s.execute(select(func.count()).select_from(Memo)).scalar_one() == 0
    same_site = c.post(f"/accounts/{acc_id}/memos", data={"body": "from our own page"}, headers={"Origin": "http://testserver", "HX-Request": "true"})
    assert same_site.status_code == 200


def test_sign_out_needs_the_csrf_token_so_another_site_cannot_sign_you_out(app, make_user):
    make_user("debtors_clerk", username="dawie")
    c = TestClient(app)
    _sign_in(c, "dawie")
    assert c.post("/logout", data={}).status_code == 403
    assert c.get("/tmf-api/customerManagement/v4/customer").status_code == 200


def test_sign_in_redirects_only_to_local_pages(app, make_user):
    make_user("debtors_clerk", username="dawie")
    for target, expected in (("/accounts", "/accounts"), ("//evil.example/x", "/"), ("https://evil.example", "/"), ("/\\evil.example", "/")):
        r = post_login(TestClient(app), "dawie", next=target)
        assert r.headers["location"] == expected, target


def _csrf(c: TestClient) -> str:
    import re

    m = re.search(r'"X-CSRF-Token": "([^"]+)"', c.get("/jobs").text)
    assert m
    return m.group(1)
