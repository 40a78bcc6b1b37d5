"""Bill run pages and the `opsline billrun` command, through the app and the CLI."""

from __future__ import annotations

import re
import shutil
from datetime import date

from sqlalchemy import func, select, text

from opsline.billing import billrun
from opsline.billing.models import BillRun, Invoice
from opsline.catalog.models import Price, ProductOffering
from opsline.core.events import Actor
from opsline.customers.models import Account, Party
from opsline.inventory.models import Product


def new(model, now, **kw):
    from datetime import date as _date

    from sqlalchemy import Boolean, Date, Integer, Numeric, String, Text

    for col in model.__table__.columns:
        if col.name in kw or col.nullable or col.primary_key or col.default is not None or col.server_default is not None:
            continue
        t = col.type
        kw[col.name] = "x" if isinstance(t, (String, Text)) else False if isinstance(t, Boolean) else _date(2020, 1, 1) if isinstance(t, Date) else 0 if isinstance(t, (Integer, Numeric)) else now
    return model(**kw)


def seed_customer(factory, now, *, monthly=59900) -> int:
    with factory.begin() as s:
        party = Party(kind="person", name="Lerato Nkosi", created_at=now)
        s.add(party)
        s.flush()
        acc = Account(account_number=f"P{party.id:09d}", party_id=party.id, name="Lerato Nkosi", kind="retail", status="active", segment_code="consumer",
                      value_tier_code="standard", currency="ZAR", payment_terms_days=30, bill_cycle_day=1, created_at=now, updated_at=now)
        s.add(acc)
        s.flush()
        o = new(ProductOffering, now, code=f"PG-FIBRE-{acc.id}", name="Fibre 100/100 (Vumatel)", kind="fibre", contract_months=0)
        s.add(o)
        s.flush()
        s.add(new(Price, now, offering_id=o.id, kind="recurring", name="Monthly", amount_minor=monthly, currency="ZAR", tax_rate_code="VAT15", charge_event="monthly", valid_from=date(2020, 1, 1)))
        s.add(new(Product, now, account_id=acc.id, offering_id=o.id, state="active", start_date=date(2026, 1, 1), contract_months=0, created_at=now, updated_at=now))
        return acc.id


def test_a_billing_analyst_starts_a_run_and_sees_progress_and_review(client_as, factory, now):
    acc = seed_customer(factory, now)
    c = client_as("billing_analyst")
    assert "New bill run" in c.get("/billing/runs").text
    assert 'name="cycle_date"' in c.get("/billing/runs/new").text
    r = c.post("/billing/runs/new", data={"cycle_date": "2026-12-01"}, follow_redirects=False)
    assert r.status_code == 303
    url = r.headers["location"]
    page = c.get(url).text
    assert 'hx-trigger="every 1s"' in page and "draft_running" in page
    billrun.drain_shards(factory, now=now)
    prog = c.get(url + "/progress?was=running")
    assert prog.headers.get("HX-Refresh") == "true"
    page = c.get(url).text
    assert "Fibre 100/100 (Vumatel)" in page and "Change against last period" in page and "Open review" in page
    assert "ZAR 688.85" in page
    panel = c.get(f"/accounts/{acc}/panel/billing-balance").text
    assert "Balance" in panel and "draft #" in panel


def test_a_bad_cycle_date_re_renders_the_form_with_the_error_and_starts_nothing(client_as, factory):
    c = client_as("billing_analyst")
    r = c.post("/billing/runs/new", data={"cycle_date": "2026-12-02"})
    assert r.status_code == 409 and "not a bill day" in r.text
    r = c.post("/billing/runs/new", data={"cycle_date": "soon"})
    assert r.status_code == 409 and "is not a date" in r.text
    with factory() as s:
        assert s.execute(select(func.count()).select_from(BillRun)).scalar() == 0


def test_the_starter_cannot_approve_but_a_second_person_can_and_finalise(client_as, factory, now):
    seed_customer(factory, now)
    starter = client_as("billing_analyst")
    rid = int(starter.post("/billing/runs/new", data={"cycle_date": "2026-12-01"}, follow_redirects=False).headers["location"].rsplit("/", 1)[1])
    billrun.drain_shards(factory, now=now)
    assert starter.post(f"/billing/runs/{rid}/action", data={"action": "review"}, follow_redirects=False).status_code == 303
    r = starter.post(f"/billing/runs/{rid}/action", data={"action": "approve"})
    assert r.status_code == 403 and "second person" in r.text
    with factory() as s:
        assert s.get(BillRun, rid).state == "review"
    approver = client_as("debtors_manager")
    assert approver.post(f"/billing/runs/{rid}/action", data={"action": "approve"}, follow_redirects=False).status_code == 303
    assert approver.post(f"/billing/runs/{rid}/action", data={"action": "finalise"}, follow_redirects=False).status_code == 303
    r = approver.post(f"/billing/runs/{rid}/action", data={"action": "finalise"})
    assert r.status_code == 409 and "already finalised" in r.text
    with factory() as s:
        assert s.execute(select(Invoice.number)).scalar_one() == "INV-2026-00000001"


def test_support_agents_see_runs_but_cannot_start_one(client_as):
    c = client_as("second_line_agent")
    assert c.get("/billing/runs").status_code == 200
    assert c.get("/billing/runs/new").status_code == 403


def test_the_billrun_command_drafts_approves_and_finalises_a_cycle(tmp_path, sqlite_template, monkeypatch, now):
    from typer.testing import CliRunner

    from opsline.config import get_settings
    from opsline.db.session import make_engine, make_sessionmaker
    from opsline.users.service import create_user

    path = tmp_path / "cli.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    seed_customer(factory, now)
    with factory.begin() as s:
        create_user(s, username="dineo", full_name="Dineo", email="d@example.test", password="password123", roles=["debtors_manager"], now=now, actor=Actor.system("test"))
    monkeypatch.setenv("OPSLINE_DATABASE_URL", url)
    get_settings.cache_clear()
    from opsline.cli import app

    runner = CliRunner()
    try:
        bad = runner.invoke(app, ["billrun", "--cycle", "2026-12-07"])
        assert bad.exit_code == 2 and "not a bill day" in bad.output
        r = runner.invoke(app, ["billrun", "--cycle", "2026-12-01"])
        assert r.exit_code == 0, r.output
        assert "draft" in r.output and "1 lines" in r.output and "ZAR 688.85" in r.output
        r = runner.invoke(app, ["billrun", "--cycle", "2026-12-01", "--approve-as", "dineo", "--finalise"])
        assert r.exit_code == 0, r.output
        assert "finalised: 1 invoices issued" in r.output
        again = runner.invoke(app, ["billrun", "--cycle", "2026-12-01", "--finalise"])
        assert again.exit_code == 2 and "already finalised" in again.output
    finally:
        get_settings.cache_clear()
    with factory() as s:
        assert s.execute(text("SELECT COUNT(*) FROM ledger_entry")).scalar() == 1
    engine.dispose()
    assert re.search(r"INV-\d{4}-\d{8}", "INV-2026-00000001")
