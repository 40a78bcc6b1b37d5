"""Issue 13's web attacks, re-run: sign-in CSRF, the Secure cookie, who may read /metrics and the API description,
API tokens on staff forms, per-action account permissions, hostile numbers, crashes, downloads and the audited admin."""

from __future__ import annotations

import re

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from sqlalchemy import select

import conftest
from conftest import post_login
from opsline.config import DEVELOPMENT_SECRET_KEY, Settings
from opsline.core.events import AuditEvent
from opsline.customers.models import Account, Memo, Segment
from opsline.users.models import StaffSession
from opsline.users.sessions import COOKIE_NAME


def _account(factory, now, actor) -> int:  # type: ignore[no-untyped-def]
    from opsline.customers import service
    from opsline.customers.schemas import AccountIn

    with factory.begin() as s:
        return service.create_account(s, data=AccountIn(name="Thabo Nkosi", email="thabo@example.co.za"), now=now, actor=actor).id


def _app(engine, clock, **overrides):  # type: ignore[no-untyped-def]
    from opsline.web.app import create_app

    settings = conftest.test_settings(engine).model_copy(update=overrides)
    return create_app(settings=settings, engine=engine, clock=clock, start_worker=False)


def test_the_sign_in_form_refuses_a_post_without_its_csrf_token_and_starts_no_session(app, make_user, factory):
    make_user("billing_analyst", username="bilal")
    c = TestClient(app)
    forged = c.post("/login", data={"username": "bilal", "password": "password123"}, follow_redirects=False)
    assert forged.status_code == 403 and "expired or came from another site" in forged.text
    other_browser = TestClient(app)
    other_browser.get("/login")
    stolen = other_browser.cookies.get("opsline_signin")
    assert c.post("/login", data={"username": "bilal", "password": "password123", "csrf_token": stolen}, follow_redirects=False).status_code == 403
    assert COOKIE_NAME not in c.cookies
    with factory() as s:
        assert s.scalars(select(StaffSession)).all() == []
    assert post_login(c, "bilal").status_code == 303


def test_the_session_cookie_is_secure_over_https_or_from_a_trusted_proxy_and_when_forced(engine, clock, make_user):
    make_user("billing_analyst", username="bilal")

    def cookie(app, base_url: str = "http://testserver", headers: dict[str, str] | None = None) -> str:
        c = TestClient(app, base_url=base_url)
        c.headers.update(headers or {})
        # the form's token from the page: a Secure sign-in cookie would not come back over this test's plain http
        tok = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)  # type: ignore[union-attr]
        c.cookies.set("opsline_signin", tok)
        r = c.post("/login", data={"username": "bilal", "password": "password123", "csrf_token": tok}, follow_redirects=False)
        assert r.status_code == 303
        return next(v for v in r.headers.get_list("set-cookie") if v.startswith(COOKIE_NAME + "="))

    auto = _app(engine, clock)
    assert "secure" not in cookie(auto).lower()
    assert "secure" in cookie(auto, base_url="https://testserver").lower()
    assert "secure" not in cookie(auto, headers={"X-Forwarded-Proto": "https"}).lower()  # anyone can send the header
    behind_proxy = _app(engine, clock, trusted_proxies="testclient")  # TestClient's peer address
    assert "secure" in cookie(behind_proxy, headers={"X-Forwarded-Proto": "https"}).lower()
    assert "secure" in cookie(_app(engine, clock, cookie_secure="true")).lower()
    assert "secure" not in cookie(_app(engine, clock, cookie_secure="false"), base_url="https://testserver").lower()


def test_metrics_need_the_scrape_token_or_a_signed_in_user_with_metrics_view(engine, clock, client_as):
    app = _app(engine, clock, metrics_token="scrape-token-0123456789abcdef")
    anonymous = TestClient(app)
    assert anonymous.get("/metrics").status_code == 401
    assert anonymous.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    scraped = anonymous.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789abcdef"})
    assert scraped.status_code == 200 and "python_info" in scraped.text


def test_metrics_are_for_administrators_among_signed_in_staff(client_as):
    assert client_as("admin").get("/metrics").status_code == 200
    assert client_as("second_line_agent").get("/metrics").status_code == 403
    assert TestClient(client_as("admin").app).get("/metrics").status_code == 401


def test_the_api_description_and_browser_need_sign_in_or_an_api_token(app, api_token, client_as):
    anonymous = TestClient(app)
    for url in ("/openapi.json", "/api/docs"):
        r = anonymous.get(url)
        assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json"), url
    assert TestClient(app).get("/openapi.json", headers=api_token("billing_analyst")).json()["paths"]
    assert client_as("debtors_clerk").get("/api/docs").status_code == 200


def test_an_api_token_cannot_drive_a_staff_form_and_changes_nothing(app, api_token, factory, now, actor):
    acc_id = _account(factory, now, actor)
    c = TestClient(app, raise_server_exceptions=False)
    c.headers.update(api_token("admin"))
    r = c.post(f"/accounts/{acc_id}/memos", data={"body": "written by a system through a staff form", "category": "general"})
    assert r.status_code == 401 and "REST API" in r.json()["detail"]
    assert c.get(f"/accounts/{acc_id}").status_code == 401
    assert c.get("/tmf-api/customerManagement/v4/customer").status_code == 200
    with factory() as s:
        assert s.scalars(select(Memo)).all() == []


@pytest.mark.parametrize("role, action, allowed", [
    ("second_line_agent", "close", False), ("billing_analyst", "suspend", False), ("second_line_agent", "suspend", False),
    ("cancellations_coordinator", "suspend", False), ("debtors_clerk", "close", False),
    ("debtors_clerk", "suspend", True), ("cancellations_coordinator", "close", True), ("debtors_manager", "close", True),
])
def test_each_account_action_needs_its_own_permission_and_a_refusal_is_403(client_as, factory, now, actor, role, action, allowed):
    acc_id = _account(factory, now, actor)
    r = client_as(role).post(f"/accounts/{acc_id}/status", data={"action": action, "reason": "testing"}, headers={"accept": "application/json"},
                             follow_redirects=False)
    with factory() as s:
        status = s.get(Account, acc_id).status
    if allowed:
        assert r.status_code == 303 and status != "active"
    else:
        assert r.status_code == 403 and f"accounts.{action}" in r.json()["detail"] and status == "active"


@pytest.mark.parametrize("url", ["/accounts/{big}", "/accounts?page={big}", "/cases?page={big}", "/billing/invoices?page={big}",
                                 "/tmf-api/troubleTicket/v4/troubleTicket/{big}", "/tmf-api/customerManagement/v4/customer?offset={big}"])
def test_huge_integers_in_paths_and_query_parameters_are_a_422_problem_not_a_500(app, client_as, api_token, url):
    c = client_as("admin")
    c.headers.update(api_token("admin") if url.startswith("/tmf-api") else {})
    r = c.get(url.format(big="9" * 40), headers={"accept": "application/json"})
    bad_input = 400 if url.startswith("/tmf-api") else 422  # TMF630: bad input is a 400 on the TM Forum APIs
    assert r.status_code == bad_input and r.headers["content-type"].startswith("application/problem+json"), (url, r.status_code, r.text[:200])


def test_an_unforeseen_crash_answers_problem_json_or_the_error_page_never_text_plain(app, client_as):
    from opsline.web.deps import require

    router = APIRouter()

    @router.get("/boom", dependencies=[])
    def boom(_: object = require("desks.view")) -> None:
        raise RuntimeError("kaboom with a secret")

    app.include_router(router)
    c = TestClient(app, raise_server_exceptions=False)
    api = c.get("/boom")
    assert api.status_code == 500 and api.headers["content-type"].startswith("application/problem+json")
    assert api.json()["title"] == "Internal server error" and "secret" not in api.text
    page = c.get("/boom", headers={"accept": "text/html"})
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html") and "secret" not in page.text


def test_a_download_is_never_sniffed_or_run_as_a_page(app, client_as):
    from fastapi.responses import Response

    router = APIRouter()

    @router.get("/uploaded")
    def uploaded() -> Response:  # what the attachment routes do: the uploader's type, as an attachment
        return Response("<script>alert(1)</script>", media_type="text/html", headers={"Content-Disposition": 'attachment; filename="x.html"'})

    app.include_router(router)
    r = TestClient(app).get("/uploaded")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in r.headers["content-security-policy"] and "default-src 'none'" in r.headers["content-security-policy"]


def test_a_case_attachment_is_downloaded_as_an_attachment_with_nosniff_and_a_sandbox(client_as, factory, now, actor):
    from opsline.cases import service as cases
    from opsline.cases.models import CaseCategory
    from opsline.cases.schemas import CaseIn

    acc_id = _account(factory, now, actor)
    with factory.begin() as s:
        category = s.scalars(select(CaseCategory.code)).first()
        case = cases.open_case(s, data=CaseIn(account_id=acc_id, category_code=category, subject="no sync"), now=now, actor=actor)
        att = cases.add_attachment(s, case_id=case.id, filename="evil.html", content_type="text/html", data=b"<script>alert(1)</script>", now=now, actor=actor)
        case_id, att_id = case.id, att.id
    r = client_as("second_line_agent").get(f"/cases/{case_id}/attachments/{att_id}")
    assert r.status_code == 200 and r.headers["content-disposition"].startswith("attachment")
    assert r.headers["x-content-type-options"] == "nosniff" and "sandbox" in r.headers["content-security-policy"]


def _admin_token(c: TestClient, url: str) -> str:
    m = re.search(r'name="csrftoken"[^>]*value="([^"]+)"', c.get(url).text)
    assert m, "no csrftoken on the admin form"
    return m.group(1)


def test_the_admin_create_form_takes_the_code_of_a_code_keyed_table_and_every_change_is_audited(client_as, factory):
    c = client_as("admin")
    form = c.get("/admin/segment/create").text
    assert 'name="code"' in form
    tok = _admin_token(c, "/admin/segment/create")
    made = c.post("/admin/segment/create", data={"code": "popia_test", "name": "POPIA test", "csrftoken": tok}, follow_redirects=False)
    assert made.status_code == 303
    edited = c.post("/admin/segment/edit?pk=popia_test", data={"name": "POPIA renamed", "csrftoken": tok}, follow_redirects=False)
    assert edited.status_code == 303
    assert 'name="code"' not in c.get("/admin/segment/edit?pk=popia_test").text  # the key is never edited (rows refer to it)
    with factory() as s:
        assert s.get(Segment, "popia_test").name == "POPIA renamed"
        trail = s.execute(select(AuditEvent.action, AuditEvent.actor, AuditEvent.before, AuditEvent.after)
                          .where(AuditEvent.entity_type == "segment", AuditEvent.entity_id == "popia_test").order_by(AuditEvent.id)).all()
    assert [(a, b, aft) for a, _, b, aft in trail] == [("admin_created", None, {"code": "popia_test", "name": "POPIA test"}),
                                                       ("admin_edited", {"name": "POPIA test"}, {"name": "POPIA renamed"})]
    assert {actor for _, actor, _, _ in trail} == {c.username}  # type: ignore[attr-defined]


def test_a_failed_sign_in_is_audited_with_the_address_but_never_the_password(app, make_user, factory):
    make_user("billing_analyst", username="bilal")
    assert post_login(TestClient(app), "bilal", "not-my-password").status_code == 401
    assert post_login(TestClient(app), "nobody-here", "guess").status_code == 401
    with factory() as s:
        rows = s.execute(select(AuditEvent.entity_type, AuditEvent.action, AuditEvent.after).where(AuditEvent.action == "sign_in_failed")).all()
    assert sorted(r.entity_type for r in rows) == ["sign_in_attempt", "user"]
    assert all("password" not in str(r.after) and "guess" not in str(r.after) and r.after["ip"] for r in rows)


def test_production_refuses_the_development_secret_key(monkeypatch):
    with pytest.raises(ValueError, match="OPSLINE_SECRET_KEY"):
        Settings(env="production")
    with pytest.raises(ValueError, match="OPSLINE_SECRET_KEY"):
        Settings(env="production", secret_key="short-but-sixteen")
    monkeypatch.setenv("OPSLINE_ENV", "production")
    monkeypatch.setenv("OPSLINE_SECRET_KEY", "x" * 48)
    assert Settings().secret_key != DEVELOPMENT_SECRET_KEY
    assert Settings(env="development").secret_key  # a laptop runs with the development value
