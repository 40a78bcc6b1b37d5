"""POPIA over HTTP: the account page's data-protection panel, the export downloads, a request recorded by one person
and approved by another, the requester refused, and the CLI doing the same."""

from __future__ import annotations

import json

from sqlalchemy import select
from typer.testing import CliRunner

from opsline.core.events import Actor
from opsline.customers.models import Account
from opsline.customers.privacy import PrivacyRequest


def _account(factory, now) -> int:  # type: ignore[no-untyped-def]
    from opsline.customers import service
    from opsline.customers.schemas import AccountIn

    with factory.begin() as s:
        return service.create_account(s, data=AccountIn(name="Ayesha Pillay", email="ayesha@example.co.za", phone="+27834445555"),
                                      now=now, actor=Actor(name="seed")).id


def test_the_panel_offers_exports_and_a_request_and_the_export_downloads_safely(client_as, factory, now):
    acc_id = _account(factory, now)
    c = client_as("second_line_agent")
    panel = c.get(f"/accounts/{acc_id}/panel/privacy")
    assert panel.status_code == 200 and f"/accounts/{acc_id}/privacy/export.xlsx" in panel.text and "Record erasure request" in panel.text
    r = c.get(f"/accounts/{acc_id}/privacy/export.json")
    assert r.status_code == 200 and r.headers["content-disposition"].startswith("attachment") and "sandbox" in r.headers["content-security-policy"]
    assert json.loads(r.content)["sections"]["Accounts"]["rows"][0].count("ayesha@example.co.za") == 1
    assert c.get(f"/accounts/{acc_id}/privacy/export.xlsx").content[:2] == b"PK"
    bad = c.get(f"/accounts/{acc_id}/privacy/export.pdf")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "format" if "errors" in bad.json() else "format" in bad.text
    assert client_as("debtors_clerk").get(f"/accounts/{acc_id}/privacy/export.json").status_code == 403


def test_one_person_records_the_request_and_another_approves_it_the_requester_cannot(client_as, factory, now):
    acc_id = _account(factory, now)
    clerk, manager = client_as("second_line_agent"), client_as("service_manager")
    assert clerk.post(f"/accounts/{acc_id}/privacy/erasure", data={"reason": ""}, headers={"accept": "application/json"}).status_code == 422
    assert clerk.post(f"/accounts/{acc_id}/privacy/erasure", data={"reason": "email of 20 Nov"}, follow_redirects=False).status_code == 303
    with factory() as s:
        rid = s.scalars(select(PrivacyRequest.id)).one()
    assert clerk.post(f"/privacy/requests/{rid}/approve", headers={"accept": "application/json"}).status_code == 403  # no privacy.approve
    assert "Approve and erase" in manager.get("/privacy/requests").text
    ok = manager.post(f"/privacy/requests/{rid}/approve", follow_redirects=False)
    assert ok.status_code == 303
    with factory() as s:
        acc = s.get(Account, acc_id)
        assert acc.email is None and "Ayesha" not in acc.name
    again = manager.post(f"/privacy/requests/{rid}/approve", headers={"accept": "application/json"})
    assert again.status_code == 409


def test_a_manager_who_recorded_the_request_cannot_approve_it_too(client_as, factory, now):
    acc_id = _account(factory, now)
    manager = client_as("service_manager")
    manager.post(f"/accounts/{acc_id}/privacy/erasure", data={"reason": "letter"})
    with factory() as s:
        rid = s.scalars(select(PrivacyRequest.id)).one()
    r = manager.post(f"/privacy/requests/{rid}/approve", headers={"accept": "application/json"})
    assert r.status_code == 403 and "second person" in r.json()["detail"]
    with factory() as s:
        assert s.get(Account, acc_id).email == "ayesha@example.co.za"


def test_the_cli_exports_and_erases_with_four_eyes(engine, factory, now, make_user, tmp_path, monkeypatch):
    from opsline.cli import _add_area_commands, app  # noqa: F401  (area commands are added at import)
    from opsline.config import get_settings

    acc_id = _account(factory, now)
    with factory() as s:
        number = s.get(Account, acc_id).account_number
    make_user("second_line_agent", "service_manager", username="sipho")  # may approve, but not his own request
    make_user("service_manager", username="naledi")
    monkeypatch.setenv("OPSLINE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        out = tmp_path / "ayesha.json"
        r = runner.invoke(app, ["privacy", "export", "--account", number, "--by", "sipho", "--out", str(out)])
        assert r.exit_code == 0, r.output
        assert "ayesha@example.co.za" in out.read_text()
        r = runner.invoke(app, ["privacy", "erase", "--account", number, "--reason", "phone call 21 Nov", "--by", "sipho"])
        assert r.exit_code == 0, r.output
        with factory() as s:
            rid = s.scalars(select(PrivacyRequest.id)).one()
        refused = runner.invoke(app, ["privacy", "approve", str(rid), "--by", "sipho"])
        assert refused.exit_code == 2 and "second person" in refused.output
        r = runner.invoke(app, ["privacy", "approve", str(rid), "--by", "naledi"])
        assert r.exit_code == 0 and "erased" in r.output, r.output
        with factory() as s:
            assert s.get(Account, acc_id).email is None
    finally:
        get_settings.cache_clear()
