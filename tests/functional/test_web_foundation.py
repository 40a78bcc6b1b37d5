"""The staff web app over HTTP: sign-in, roles, sessions, CSRF, account pages, memos, problem+json errors."""

import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from opsline.customers.models import Account, Memo
from conftest import post_login


def _account(factory, now, actor, **kw):  # type: ignore[no-untyped-def]
    from opsline.customers import service
    from opsline.customers.schemas import AccountIn

    with factory.begin() as s:
        acc = service.create_account(s, data=AccountIn(name=kw.pop("name", "Lindiwe Dlamini"), email="lindiwe@example.co.za", **kw), now=now, actor=actor)
        s.flush()
        return acc.id


def test_pages_redirect_to_sign_in_and_api_answers_401_problem_json(app):
    c = TestClient(app)
    r = c.get("/accounts", headers={"accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    r = c.get("/tmf-api/customerManagement/v4/customer")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["title"] == "Not authenticated"


def test_wrong_password_shows_an_error_and_sets_no_session(app, make_user):
    make_user("billing_analyst", username="bilal")
    c = TestClient(app)
    r = post_login(c, "bilal", "wrong-password")
    assert r.status_code == 401 and "wrong username or password" in r.text
    assert c.get("/tmf-api/customerManagement/v4/customer").status_code == 401


def test_expired_session_must_sign_in_again(app, client_as, clock):
    from datetime import timedelta

    c = client_as("second_line_agent")
    assert c.get("/tmf-api/customerManagement/v4/customer").status_code == 200
    clock.at = clock.at + timedelta(hours=9)
    r = c.get("/tmf-api/customerManagement/v4/customer")
    assert r.status_code == 401 and "expired" in r.json()["detail"]


def test_account_360_shows_details_and_a_new_memo_appears_in_the_timeline(client_as, factory, now, actor):
    acc_id = _account(factory, now, actor)
    c = client_as("debtors_clerk")
    page = c.get(f"/accounts/{acc_id}")
    assert page.status_code == 200 and "Lindiwe Dlamini" in page.text
    r = c.post(f"/accounts/{acc_id}/memos", data={"body": "Arrangement agreed: R500 on the 1st", "category": "debtors"}, headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert "Arrangement agreed" in r.text and "memo added" in r.text
    with factory() as s:
        assert s.execute(select(func.count()).select_from(Memo)).scalar_one() == 1


def test_state_change_without_csrf_token_is_refused_and_changes_nothing(client_as, factory, now, actor):
    acc_id = _account(factory, now, actor)
    c = client_as("debtors_clerk")
    del c.headers["X-CSRF-Token"]
    r = c.post(f"/accounts/{acc_id}/memos", data={"body": "sneaky"})
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    with factory() as s:
        assert s.execute(select(func.count()).select_from(Memo)).scalar_one() == 0


def test_a_role_without_the_permission_gets_403(client_as, factory, now, actor):
    c = client_as("debtors_clerk")
    r = c.get("/accounts/new")
    assert r.status_code == 403
    r = c.post("/tmf-api/customerManagement/v4/customer", json={"name": "New Co"})
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    with factory() as s:
        assert s.execute(select(func.count()).select_from(Account)).scalar_one() == 0


def test_unknown_account_page_is_404(client_as):
    c = client_as("second_line_agent")
    r = c.get("/accounts/424242")
    assert r.status_code == 404


def test_new_account_form_shows_field_errors_and_creates_nothing(client_as, factory):
    c = client_as("billing_analyst")
    r = c.post("/accounts/new", data={"name": "Bad Email", "email": "nope", "party_kind": "person", "kind": "retail", "segment_code": "consumer", "value_tier_code": "standard"})
    assert r.status_code == 422 and "not a valid email" in r.text
    r = c.post("/accounts/new", data={"name": "Good Co", "email": "ops@good.co.za", "party_kind": "organisation", "kind": "b2b", "segment_code": "sme", "value_tier_code": "high_value", "site_line1": "1 Loop Street", "site_city": "Cape Town"}, follow_redirects=False)
    assert r.status_code == 303
    with factory() as s:
        assert s.execute(select(Account.name)).scalars().all() == ["Good Co"]


def test_edit_with_a_stale_version_is_409_and_keeps_the_data(client_as, factory, now, actor):
    acc_id = _account(factory, now, actor)
    c = client_as("second_line_agent")
    assert c.post(f"/accounts/{acc_id}/edit", data={"version": "1", "name": "First Edit"}, follow_redirects=False).status_code == 303
    r = c.post(f"/accounts/{acc_id}/edit", data={"version": "1", "name": "Second Edit"}, headers={"accept": "application/json"})
    assert r.status_code == 409
    with factory() as s:
        assert s.get(Account, acc_id).name == "First Edit"


def test_oversized_payload_is_413_problem_json(client_as):
    c = client_as("admin")
    r = c.post("/tmf-api/customerManagement/v4/customer", content=b"x" * 1_100_000, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["title"] == "Payload too large"


def test_account_list_filters_and_pages(client_as, factory, now, actor):
    for i in range(3):
        _account(factory, now, actor, name=f"Vumatel Customer {i}")
    c = client_as("second_line_agent")
    r = c.get("/accounts?q=vumatel+customer")
    assert len(re.findall(r'href="/accounts/\d+">\d{10}', r.text)) == 3
    r = c.get("/accounts?q=vumatel&status=closed")
    assert "No accounts match" in r.text


def test_admin_is_for_administrators_only(client_as):
    assert client_as("billing_analyst").get("/admin/", follow_redirects=False).status_code == 303
    assert client_as("admin").get("/admin/").status_code == 200


def test_an_exhausted_database_pool_answers_503_with_retry_after_never_a_500(app):  # type: ignore[no-untyped-def]
    """Overload (every pooled connection busy past the pool's timeout) is a 503 the client may retry, in the API's
    problem+json or as the error page, not an unforeseen crash."""
    import asyncio
    import threading

    from sqlalchemy.exc import TimeoutError as PoolTimeout
    from starlette.requests import Request

    handler = app.exception_handlers[PoolTimeout]
    for path, accept, ctype in [("/tmf-api/troubleTicket/v4/troubleTicket", "application/json", "application/problem+json"), ("/cases", "text/html", "text/html")]:
        scope = {"type": "http", "method": "GET", "path": path, "headers": [(b"accept", accept.encode())], "query_string": b"", "app": app,
                 "root_path": "", "scheme": "http", "server": ("testserver", 80), "client": ("127.0.0.1", 5000), "router": app.router}
        out: list = []  # a thread of its own: an earlier browser test may have left an event loop running in this one
        worker = threading.Thread(target=lambda: out.append(asyncio.run(handler(Request(scope), PoolTimeout("QueuePool limit of size 10 overflow 10 reached")))))
        worker.start()
        worker.join(30)
        (resp,) = out
        assert resp.status_code == 503 and resp.headers["retry-after"] == "5" and resp.headers["content-type"].startswith(ctype)
        assert b"busy" in resp.body and b"QueuePool" not in resp.body
