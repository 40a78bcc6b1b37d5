"""The provision, roll-rate and promises pages over HTTP, per role: figures and a chart drawn from a data attribute (no
inline script), accounts behind every amount, finance's workbook, and every bad input answered with the field named
and nothing changed."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import text

from opsline.billing import ledger
from opsline.billing.invoicing.samples import make_account
from opsline.core.events import Actor
from opsline.core.money import Money
from opsline.debtors import provision
from opsline.debtors.models import Arrangement, ArrangementInstalment
from zoneinfo import ZoneInfo

JHB = ZoneInfo("Africa/Johannesburg")
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)  # the app's clock: last month is 2026-10
MANAGER = Actor(name="dineo", roles=frozenset({"debtors_manager"}))
ROW = {"current": ("1000.00", "100.00"), "d30": ("100.00", "50.00"), "d60": ("50.00", "30.00"), "d90": ("30.00", "24.00"),
       "d120": ("24.00", "12.00"), "d120_plus": ("100.00", "10.00")}


def at(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, 10, tzinfo=timezone.utc)


def history(first: date, n: int) -> bytes:
    lines = ["month,segment,bucket,balance,rolled,stayed"]
    m = first
    for _ in range(n):
        lines += [f"{m:%Y-%m},consumer,{b},{bal},{rolled},{'80.00' if b == 'd120_plus' else ''}" for b, (bal, rolled) in ROW.items()]
        m = date(m.year + m.month // 12, m.month % 12 + 1, 1)
    return ("\n".join(lines) + "\n").encode()


def _charts(html: str) -> list[dict]:
    return [json.loads(m.replace("&#39;", "'").replace("&quot;", '"').replace("&amp;", "&")) for m in re.findall(r"data-chart='([^']*)'", html)]


def _no_inline_script(html: str) -> None:
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"\son[a-z]+=", html)


def _count(factory, table: str) -> int:  # type: ignore[no-untyped-def]
    with factory() as s:
        return s.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


@pytest.fixture
def book(factory):  # type: ignore[no-untyped-def]
    """Ten months of prior-system history to July, Opsline's ledger from August (two accounts), arrangements by two clerks."""
    with factory.begin() as s:
        a = make_account(s, now=at(2026, 1, 5), name="Thabo Nkosi")
        b = make_account(s, now=at(2026, 1, 5), name="Lerato Dube")
        for acc, minor in ((a, 50000), (b, 20000)):
            for mth in (8, 9, 10):
                ledger.post(s, account_id=acc, kind="invoice", ref_type="test", ref_id=1, amount=Money.from_minor(minor, "ZAR"), now=at(2026, mth, 1),
                            due_date=date(2026, mth, 28))
        provision.import_history(s, data=history(date(2025, 9, 1), 11), filename="prior.csv", now=NOW, tz=JHB, actor=MANAGER, default_currency="ZAR")
        for k, (who, state, amount) in enumerate((("dawie", "kept", 10000), ("dawie", "broken", 5000), ("thandi", "active", 7000))):
            g = Arrangement(account_id=a if k % 2 == 0 else b, kind="promise", state=state, amount_minor=amount, debt_minor=amount, currency="ZAR",
                            created_at=at(2026, 10, 5 + k), created_by=who, decided_by="dineo", decided_at=at(2026, 10, 5 + k))
            s.add(g)
            s.flush()
            s.add(ArrangementInstalment(arrangement_id=g.id, account_id=g.account_id, seq=1, due_date=date(2026, 10, 20), amount_minor=amount))
    return {"a": a, "b": b}


def test_the_manager_runs_last_months_provision_and_sees_figures_movement_chart_and_the_accounts_behind_a_line(client_as, book, factory):  # type: ignore[no-untyped-def]
    c = client_as("debtors_manager")
    page = c.get("/debtors/provision")
    assert page.status_code == 200 and "No provision for 2026-10 yet" in page.text
    assert "3</strong> month ends from Opsline" in page.text and "11</strong> from imported" in page.text
    r = c.post("/debtors/provision/run", data={"month": "2026-10", "lookback": "12"}, follow_redirects=False)
    assert r.status_code == 303 and "month=2026-10" in r.headers["location"]
    page = c.get(r.headers["location"])
    _no_inline_script(page.text)
    (chart,) = _charts(page.text)
    assert chart["data"]["labels"][0] == "Current"
    assert "Charge (ZAR)" in page.text and "Roll-rate matrix and loss rates" in page.text
    link = re.search(r'href="(/debtors/provision/accounts\?month=2026-10&(?:amp;)?segment=consumer&(?:amp;)?bucket=(\w+)&(?:amp;)?currency=ZAR)"', page.text)
    assert link
    drill = c.get(link.group(1).replace("&amp;", "&"))
    assert drill.status_code == 200 and f'href="/accounts/{book["a"]}"' in drill.text
    again = c.post("/debtors/provision/run", data={"month": "2026-10"}, follow_redirects=False)
    assert "already+run" in again.headers["location"] and _count(factory, "provision_run") == 1


def test_finances_workbook_has_the_summary_roll_rates_loss_rates_provision_and_movement_sheets(client_as, book):  # type: ignore[no-untyped-def]
    c = client_as("debtors_manager")
    c.post("/debtors/provision/run", data={"month": "2026-10"})
    x = c.get("/debtors/provision/export?month=2026-10&format=xlsx")
    assert x.status_code == 200 and x.headers["content-type"].startswith("application/vnd.openxmlformats")
    wb = zipfile.ZipFile(io.BytesIO(x.content)).read("xl/workbook.xml").decode()
    assert re.findall(r'<sheet name="([^"]+)"', wb) == ["Summary", "Roll rates", "Loss rates", "Provision", "Movement", "History"]
    csv_ = c.get("/debtors/provision/export?month=2026-10&format=csv")
    assert csv_.status_code == 200 and "Forward-looking" not in csv_.text and "Month end" in csv_.text


def test_the_clerk_views_the_provision_and_reports_but_cannot_run_adjust_or_import(client_as, book, factory):  # type: ignore[no-untyped-def]
    c = client_as("debtors_clerk")
    page = c.get("/debtors/provision")
    assert page.status_code == 200 and 'action="/debtors/provision/run"' not in page.text
    for url, data in (("/debtors/provision/run", {"month": "2026-10"}), ("/debtors/provision/adjustments", {"month": "2026-10", "pct": "5", "reason": "x"})):
        assert c.post(url, data=data).status_code == 403
    assert c.post("/debtors/provision/history", files={"file": ("h.csv", history(date(2025, 9, 1), 1))}).status_code == 403
    assert _count(factory, "provision_run") == 0 and _count(factory, "provision_adjustment") == 0
    for url in ("/debtors/reports/rollrates", "/debtors/reports/promises", "/debtors/provision/history"):
        assert c.get(url).status_code == 200, url
    other = client_as("billing_analyst")
    assert other.get("/debtors/provision").status_code == 403


@pytest.mark.parametrize("form, field, words", [
    ({"month": "2026-13"}, "month", "is not a month (YYYY-MM)"),
    ({"month": "2026-11"}, "month", "has not ended yet"),
    ({"month": "2026-10", "lookback": "24"}, "month", "missing 2024-10 to 2025-08"),
    ({"month": "2026-10", "lookback": "6"}, "lookback", "12 to 36"),
])
def test_running_with_bad_input_shows_the_error_naming_the_field_and_stores_nothing(client_as, book, factory, form, field, words):  # type: ignore[no-untyped-def]
    c = client_as("debtors_manager")
    r = c.post("/debtors/provision/run", data=form)
    assert r.status_code == 422
    assert f"<strong>{field}</strong>" in r.text and words in r.text
    assert _count(factory, "provision_run") == 0


def test_an_adjustment_without_a_reason_is_refused_and_one_with_a_reason_is_audited(client_as, book, factory):  # type: ignore[no-untyped-def]
    c = client_as("debtors_manager")
    r = c.post("/debtors/provision/adjustments", data={"month": "2026-10", "segment": "", "pct": "5", "reason": " "})
    assert r.status_code == 422 and "<strong>reason</strong>" in r.text and _count(factory, "provision_adjustment") == 0
    r = c.post("/debtors/provision/adjustments", data={"month": "2026-10", "segment": "consumer", "pct": "abc", "reason": "x"})
    assert r.status_code == 422 and "<strong>pct</strong>" in r.text
    ok = c.post("/debtors/provision/adjustments", data={"month": "2026-10", "segment": "consumer", "pct": "7.5", "reason": "Fuel price"},
                follow_redirects=False)
    assert ok.status_code == 303
    with factory() as s:
        assert s.execute(text("SELECT reason FROM audit_event WHERE entity_type = 'provision_adjustment'")).scalars().all() == ["Fuel price"]
    c.post("/debtors/provision/run", data={"month": "2026-10"})
    c.post("/debtors/provision/run", data={"month": "2026-10", "reason": "Fuel price adjustment agreed"})
    page = c.get("/debtors/provision?month=2026-10")
    assert "7.5 %" in page.text
    assert "Runs of 2026-10" in page.text and "Fuel price adjustment agreed" in page.text and "superseded" in page.text


def test_a_history_upload_with_a_bad_line_imports_nothing_and_names_the_line(client_as, book, factory):  # type: ignore[no-untyped-def]
    c = client_as("debtors_manager")
    before = _count(factory, "provision_ageing")
    bad = history(date(2024, 9, 1), 2).replace(b"2024-10,consumer,d60,50.00", b"2024-10,consumer,d60,fifty")
    r = c.post("/debtors/provision/history", files={"file": ("old.csv", bad, "text/csv")})
    assert r.status_code == 422 and "old.csv line 10, balance" in r.text
    assert _count(factory, "provision_ageing") == before
    good = c.post("/debtors/provision/history", files={"file": ("old.csv", history(date(2024, 9, 1), 2), "text/csv")}, follow_redirects=False)
    assert good.status_code == 303 and _count(factory, "provision_ageing") == before + 12


def test_roll_rate_page_charts_each_bucket_by_month_and_drills_down_to_the_accounts_that_rolled(client_as, book, factory):  # type: ignore[no-untyped-def]
    c = client_as("debtors_clerk")
    before = c.get("/debtors/reports/rollrates?months=12")
    assert "no history yet for 2026-08, 2026-09, 2026-10" in before.text and _count(factory, "provision_snapshot") == 0  # a page reads, never writes
    assert client_as("debtors_manager").post("/debtors/provision/run", data={"month": "2026-10"}, follow_redirects=False).status_code == 303
    r = c.get("/debtors/reports/rollrates?months=12")
    assert "no history yet" not in r.text
    assert r.status_code == 200
    _no_inline_script(r.text)
    (chart,) = _charts(r.text)
    assert chart["type"] == "line" and len(chart["data"]["datasets"]) == 6
    drill = c.get("/debtors/reports/rollrates/accounts?month=2026-09&bucket=d30&currency=ZAR")
    assert drill.status_code == 200 and f'href="/accounts/{book["a"]}"' in drill.text
    x = c.get("/debtors/reports/rollrates/export?format=xlsx")
    assert x.status_code == 200
    bad = c.get("/debtors/reports/rollrates/accounts?month=2026-09&bucket=d45", headers={"accept": "application/json"})
    assert bad.status_code == 422 and bad.json()["field"] == "bucket"


def test_promises_page_counts_kept_broken_and_open_per_clerk_with_the_kept_rate_and_lists_them(client_as, book):  # type: ignore[no-untyped-def]
    c = client_as("debtors_clerk")
    r = c.get("/debtors/reports/promises?months=3&by=clerk")
    assert r.status_code == 200
    (chart,) = _charts(r.text)
    assert [d["label"] for d in chart["data"]["datasets"]] == ["Kept", "Broken", "Open", "Cancelled", "Kept rate (%)"]
    assert "50.0 %" in r.text  # dawie: one kept, one broken
    lst = c.get("/debtors/reports/promises/accounts?month=2026-10&by=clerk&person=dawie&state=broken")
    assert lst.status_code == 200 and "R 50.00" in lst.text and "R 100.00" not in lst.text
    csv_ = c.get("/debtors/reports/promises/export?months=3&by=approver&format=csv")
    assert csv_.status_code == 200 and "dineo" in csv_.text
    bad = c.get("/debtors/reports/promises?by=robot", headers={"accept": "application/json"})
    assert bad.status_code == 422 and bad.json()["field"] == "by"


def test_the_cli_runs_a_month_writes_the_workbook_and_names_the_field_of_bad_input(engine, factory, book, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from opsline.cli import app
    from opsline.config import get_settings

    monkeypatch.setenv("OPSLINE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setattr("opsline.cli.utc_now", lambda: NOW)
    get_settings.cache_clear()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"month,segment,bucket,balance\n2024-01,consumer,current,ten\n")
    try:
        wrong = CliRunner().invoke(app, ["provision", "--month", "2026/10"])
        future = CliRunner().invoke(app, ["provision", "--month", "2026-12"])
        lines = CliRunner().invoke(app, ["provision-history", str(bad)])
        noreason = CliRunner().invoke(app, ["provision-adjust", "--month", "2026-10", "--pct", "5"])
        assert _count(factory, "provision_run") == 0 and _count(factory, "provision_adjustment") == 0
        ok = CliRunner().invoke(app, ["provision", "--month", "2026-10", "--xlsx", str(tmp_path / "p.xlsx")])
        again = CliRunner().invoke(app, ["provision", "--month", "2026-10"])
    finally:
        get_settings.cache_clear()
    assert wrong.exit_code != 0 and "(field: month)" in wrong.output
    assert future.exit_code != 0 and "has not ended yet" in future.output
    assert lines.exit_code != 0 and "bad.csv line 2, balance" in lines.output
    assert noreason.exit_code != 0 and "(field: reason)" in noreason.output
    assert ok.exit_code == 0, ok.output
    assert "Provision 2026-10 (run #1" in ok.output and "charge" in ok.output and (tmp_path / "p.xlsx").stat().st_size > 1000
    assert again.exit_code == 0 and "was already run" in again.output and _count(factory, "provision_run") == 1


@pytest.mark.browser
def test_the_debtors_manager_opens_last_months_provision_in_the_demo_and_its_chart_draws(page):  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    from conftest import sign_in

    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    sign_in(page, "debtorsmgr")
    page.goto("/debtors/provision?month=2026-10")  # the live demo is built at 23 November 2026: last month is October
    expect(page.locator("h1")).to_contain_text("Bad-debt provision (IFRS 9) · 2026-10")
    expect(page.locator(".card", has_text="Provision (ZAR)")).to_be_visible()
    expect(page.locator("text=from imported prior-system history")).to_be_visible()
    expect(page.locator("canvas[data-chart]")).to_be_visible()
    page.locator("a", has_text="Roll rates").first.click()
    expect(page.locator("h1")).to_have_text("Roll rates")
    expect(page.locator("canvas[data-chart]")).to_be_visible()
    assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e]
