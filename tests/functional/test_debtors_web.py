"""The debtors desk over HTTP and the CLI: dry run then run (CSRF, permission), a second run the same day does nothing,
holds, proposals decided by a person, the letter PDF, desk home cards, and bad input answered with problem+json naming
the field (nothing changed); `opsline dunning-run` with a bad date and a dry run."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import text
from typer.testing import CliRunner

from conftest import NOW
from debtors_helpers import TODAY, counts, debtor


def _book(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        return {"thabo": debtor(s, name="Thabo Nkosi", amount=59900, overdue_days=22),
                "vip": debtor(s, name="Very Important", amount=250000, overdue_days=22, tier="vip")}


def test_a_clerk_dry_runs_then_runs_and_a_second_run_does_nothing(client_as, factory):  # type: ignore[no-untyped-def]
    b = _book(factory)
    clerk = client_as("debtors_clerk")
    with factory() as s:
        before = counts(s)
    page = clerk.get(f"/debtors/run?date={TODAY.isoformat()}")
    assert page.status_code == 200 and "Reminder email" in page.text and "Courtesy call" in page.text and "ZAR 599.00" in page.text
    with factory() as s:
        assert counts(s) == before  # the dry run changed nothing
    r = clerk.post("/debtors/run", data={"date": TODAY.isoformat()}, follow_redirects=False)
    assert r.status_code == 303 and "2+actions" in r.headers["location"]
    detail = clerk.get(r.headers["location"])
    assert detail.status_code == 200 and "Thabo Nkosi" in detail.text and "queued" in detail.text
    again = clerk.post("/debtors/run", data={"date": TODAY.isoformat()}, follow_redirects=False)
    assert again.status_code == 303 and "already+ran" in again.headers["location"]
    desk = clerk.get("/debtors")
    assert "Courtesy call" in desk.text and "Very Important" in desk.text
    aid = re.search(r'action="/debtors/actions/(\d+)/decide"', desk.text).group(1)
    bad = clerk.post(f"/debtors/actions/{aid}/decide", data={"decision": "dismiss", "reason": ""})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json") and bad.json()["field"] == "reason"
    ok = clerk.post(f"/debtors/actions/{aid}/decide", data={"decision": "accept", "reason": "called, pays Friday"}, follow_redirects=False)
    assert ok.status_code == 303
    home = clerk.get("/desk/debtors_clerk")
    assert home.status_code == 200 and "Last dunning run" in home.text and "Dunning steps waiting for a person" in home.text
    with factory() as s:
        assert s.execute(text("SELECT COUNT(*) FROM dunning_action")).scalar_one() == 2
        assert s.execute(text("SELECT state FROM dunning_action WHERE account_id = :a"), {"a": b["vip"]["id"]}).scalar_one() == "accepted"


def test_bad_input_gets_problem_json_naming_the_field_and_changes_nothing(client_as, factory):  # type: ignore[no-untyped-def]
    b = _book(factory)
    clerk = client_as("debtors_clerk")
    manager = client_as("debtors_manager")
    with factory() as s:
        before = counts(s)
        pol = s.execute(text("SELECT id, version FROM dunning_policy WHERE code = 'default'")).one()
    cases = [
        (clerk, "/debtors/run", {"date": "23/11/2026"}, "date"),
        (clerk, "/debtors/run", {"date": (TODAY + timedelta(days=1)).isoformat()}, "date"),
        (clerk, "/debtors/holds", {"account": b["thabo"]["number"], "reason": "", "valid_to": "2026-12-01"}, "reason"),
        (clerk, "/debtors/holds", {"account": b["thabo"]["number"], "reason": "in hospital", "valid_to": ""}, "valid_to"),
        (clerk, "/debtors/holds", {"account": b["thabo"]["number"], "reason": "in hospital", "valid_to": "1 Dec"}, "valid_to"),
        (clerk, "/debtors/holds", {"account": "0000000000", "reason": "in hospital", "valid_to": "2026-12-01"}, "account"),
        (manager, f"/debtors/policies/{pol.id}", {"version": str(pol.version), "name": ["Reminder", "SMS"], "action": ["reminder_email", "reminder_sms"],
                                                  "min_days_overdue": ["5", "5"], "min_balance": ["0", "0"], "notice_days": ["3", "3"],
                                                  "handled_by": ["system", "system"]}, "steps[2].min_days_overdue"),
        (manager, f"/debtors/policies/{pol.id}", {"version": str(pol.version), "name": ["Reminder"], "action": ["reminder_email"],
                                                  "min_days_overdue": ["five"], "min_balance": ["0"], "notice_days": ["3"], "handled_by": ["system"]},
         "steps[1].min_days_overdue"),
    ]
    for c, url, data, field in cases:
        r = c.post(url, data=data)
        assert r.status_code == 422, (url, data, r.text)
        assert r.headers["content-type"].startswith("application/problem+json") and r.json()["field"] == field, r.json()
    assert clerk.get("/debtors/run?date=2026-13-01").status_code == 422
    with factory() as s:
        assert counts(s) == before


def test_holds_and_policies_over_http_and_who_may_do_what(client_as, factory):  # type: ignore[no-untyped-def]
    b = _book(factory)
    clerk = client_as("debtors_clerk")
    r = clerk.post("/debtors/holds", data={"account": b["thabo"]["number"], "reason": "in hospital", "valid_to": "2026-12-04"}, follow_redirects=False)
    assert r.status_code == 303
    page = clerk.get("/debtors/holds")
    assert "in hospital" in page.text and "2026-12-04" in page.text
    assert clerk.post("/debtors/policies/1", data={}).status_code == 403  # a clerk cannot change policies
    assert client_as("second_line_agent").get("/debtors").status_code == 403
    manager = client_as("debtors_manager")
    pols = manager.get("/debtors/policies")
    assert pols.status_code == 200 and "Letter of demand" in pols.text
    with factory() as s:
        pol = s.execute(text("SELECT id, version FROM dunning_policy WHERE code = 'vip'")).one()
    r = manager.post(f"/debtors/policies/{pol.id}", data={"version": str(pol.version), "name": ["Courtesy call", "Letter", ""],
                                                          "action": ["call", "letter_of_demand", ""], "min_days_overdue": ["10", "30", ""],
                                                          "min_balance": ["0", "100.00", ""], "notice_days": ["7", "14", ""],
                                                          "handled_by": ["person", "person", "system"]}, follow_redirects=False)
    assert r.status_code == 303
    with factory() as s:
        assert s.execute(text("SELECT COUNT(*) FROM dunning_step WHERE policy_id = :p"), {"p": pol.id}).scalar_one() == 2
        assert s.execute(text("SELECT min_days_overdue FROM dunning_step WHERE policy_id = :p AND position = 1"), {"p": pol.id}).scalar_one() == 10
    assert clerk.get(f"/debtors/run?date={TODAY.isoformat()}").text.count("Courtesy call") == 1


def test_the_cli_refuses_a_bad_date_and_dry_runs_then_runs(engine, factory, monkeypatch):  # type: ignore[no-untyped-def]
    from opsline.cli import app
    from opsline.config import get_settings

    _book(factory)
    monkeypatch.setenv("OPSLINE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        bad = CliRunner().invoke(app, ["dunning-run", "--date", "23-11-2026"])
        with factory() as s:
            before = counts(s)
        dry = CliRunner().invoke(app, ["dunning-run", "--date", (NOW.date() - timedelta(days=400)).isoformat(), "--dry-run"])
        with factory() as s:
            assert counts(s) == before
    finally:
        get_settings.cache_clear()
    assert bad.exit_code == 2 and "use YYYY-MM-DD" in bad.output
    assert dry.exit_code == 0, dry.output
    assert "Dry run (nothing changed)" in dry.output


def test_the_account_page_collections_panel_offers_arrange_hold_and_write_off_to_those_allowed(client_as, factory):  # type: ignore[no-untyped-def]
    b = _book(factory)
    a = b["thabo"]
    clerk = client_as("debtors_clerk")
    page = clerk.get(f"/accounts/{a['id']}")
    assert page.status_code == 200 and f'hx-get="/accounts/{a["id"]}/panel/debtors"' in page.text
    panel = clerk.get(f"/accounts/{a['id']}/panel/debtors")
    assert panel.status_code == 200 and "<h2>Debt collection</h2>" in panel.text and "ZAR 599.00" in panel.text and "Never dunned." in panel.text
    assert f'href="/debtors/arrangements/new?account={a["number"]}">Arrange</a>' in panel.text
    assert f'href="/debtors/writeoffs/new?account={a["number"]}">Propose write-off</a>' in panel.text
    assert 'action="/debtors/holds"' in panel.text and 'name="csrf_token"' in panel.text
    form = clerk.get(f"/debtors/arrangements/new?account={a['number']}")  # the link opens the arrangement prefilled for the account
    assert form.status_code == 200 and a["number"] in form.text and "599.00" in form.text
    r = clerk.post("/debtors/holds", data={"account": a["number"], "reason": "customer in hospital", "valid_to": (TODAY + timedelta(days=14)).isoformat(),
                                           "back": f"/accounts/{a['id']}"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith(f"/accounts/{a['id']}?ok=")
    held = clerk.get(f"/accounts/{a['id']}/panel/debtors")
    assert "customer in hospital" in held.text and 'action="/debtors/holds"' not in held.text  # held: no second hold offered
    other = client_as("second_line_agent")
    hidden = other.get(f"/accounts/{a['id']}/panel/debtors")
    assert hidden.status_code == 200 and hidden.text == ""  # the account page answers an empty panel to those without debtors.view
    assert 'panel/debtors"' not in other.get(f"/accounts/{a['id']}").text
    evil = clerk.post("/debtors/holds", data={"account": b["vip"]["number"], "reason": "x", "valid_to": (TODAY + timedelta(days=3)).isoformat(),
                                              "back": "https://evil.example/"}, follow_redirects=False)
    assert evil.status_code == 303 and evil.headers["location"].startswith("/debtors/holds?ok=")  # never redirected off the site
