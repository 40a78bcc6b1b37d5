"""The final account pages through the app: preview from the account, issue by hand (billing analyst or cancellations
coordinator), bad input re-rendered with the field named and nothing written, the CLI's dry run and issue."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone

from sqlalchemy import func, select

from opsline.billing import billrun
from opsline.billing import final_account as fa
from opsline.billing.invoicing.models import CreditNote
from opsline.billing.models import Invoice
from opsline.core.events import Actor
from opsline.inventory.models import Product

from tests.functional.test_billing_pages import seed_customer

AT_NOV = datetime(2026, 10, 31, 22, 0, tzinfo=timezone.utc)
STARTER = Actor(name="bilal", roles=frozenset({"billing_analyst"}))
APPROVER = Actor(name="dineo", roles=frozenset({"debtors_manager"}))


def billed_and_ended(factory, now, *, end=date(2026, 11, 16)):  # type: ignore[no-untyped-def]
    """A customer whose R599.00 line was billed for November in advance and ended (FNO-confirmed) on `end`."""
    acc = seed_customer(factory, now, monthly=60000)
    with factory.begin() as s:
        rid = billrun.start_bill_run(s, cycle_date=date(2026, 11, 1), now=AT_NOV, actor=STARTER).id
    billrun.drain_shards(factory, now=AT_NOV)
    with factory.begin() as s:
        billrun.open_review(s, bill_run_id=rid, now=AT_NOV, actor=STARTER)
        billrun.approve_bill_run(s, bill_run_id=rid, now=AT_NOV, actor=APPROVER)
        billrun.finalise_bill_run(s, bill_run_id=rid, now=AT_NOV, actor=APPROVER)
        p = s.execute(select(Product).where(Product.account_id == acc)).scalar_one()
        p.end_date, p.state = end, "terminated"
        return acc, p.id


def test_the_page_previews_the_credit_and_a_coordinator_issues_the_final_account(client_as, factory, now):
    acc, pid = billed_and_ended(factory, now)
    c = client_as("cancellations_coordinator")
    page = c.get(f"/billing/accounts/{acc}/final-account", params={"product_ids": pid, "end_date": "2026-11-16"})
    assert page.status_code == 200, page.text
    # R600.00 for November; 15 of 30 days unused: R300.00 + VAT R45.00 credited
    assert "Credit: Fibre 100/100 (Vumatel)" in page.text and "credit note" in page.text and "Issue final account" in page.text
    key = re.search(r'name="key" value="([0-9a-f]+)"', page.text).group(1)
    form = {"product_ids": str(pid), "end_date": "2026-11-16", "reason": "moving to Australia", "key": key, "waive_etf_reason": ""}
    r = c.post(f"/billing/accounts/{acc}/final-account", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    detail = c.get(r.headers["location"]).text
    assert "FA-" in detail and "CN-2026-" in detail and "moving to Australia" in detail
    again = c.post(f"/billing/accounts/{acc}/final-account", data=form, follow_redirects=False)  # a double click replays
    assert again.status_code == 303 and again.headers["location"] == r.headers["location"]
    with factory() as s:
        assert s.execute(select(func.count()).select_from(CreditNote)).scalar_one() == 1
        assert s.execute(select(CreditNote.total_minor)).scalar_one() == 34500


def test_a_bad_end_date_is_shown_with_the_field_named_and_nothing_is_issued(client_as, factory, now):
    acc, pid = billed_and_ended(factory, now)
    c = client_as("billing_analyst")
    r = c.post(f"/billing/accounts/{acc}/final-account",
               data={"product_ids": str(pid), "end_date": "2020-01-01", "reason": "x", "key": "k1", "waive_etf_reason": ""})
    assert r.status_code == 422 and 'data-field="end_date"' in r.text and "activated on 2026-01-01" in r.text
    r = c.post(f"/billing/accounts/{acc}/final-account", data={"product_ids": "abc", "end_date": "2026-11-16", "reason": "x", "key": "k2"})
    assert r.status_code == 422 and 'data-field="product_ids"' in r.text
    r = c.post(f"/billing/accounts/{acc}/final-account", data={"product_ids": str(pid), "end_date": "soon", "reason": "x", "key": "k3"})
    assert r.status_code == 422 and 'data-field="end_date"' in r.text
    preview = c.get(f"/billing/accounts/{acc}/final-account", params={"product_ids": pid, "end_date": "2020-01-01"})
    assert preview.status_code == 422 and "activated on" in preview.text
    with factory() as s:
        assert s.execute(select(func.count()).select_from(fa.FinalAccount)).scalar_one() == 0
        assert s.execute(select(func.count()).select_from(CreditNote)).scalar_one() == 0


def test_a_second_line_agent_may_preview_but_not_issue(client_as, factory, now):
    acc, pid = billed_and_ended(factory, now)
    c = client_as("second_line_agent")
    page = c.get(f"/billing/accounts/{acc}/final-account", params={"product_ids": pid, "end_date": "2026-11-16"})
    assert page.status_code == 200 and "Issue final account" not in page.text
    r = c.post(f"/billing/accounts/{acc}/final-account", data={"product_ids": str(pid), "end_date": "2026-11-16", "reason": "x", "key": "k"})
    assert r.status_code == 403
    with factory() as s:
        assert s.execute(select(func.count()).select_from(fa.FinalAccount)).scalar_one() == 0


def test_the_cli_dry_run_writes_nothing_and_the_real_run_issues_once(factory, now, engine, monkeypatch):

    from opsline.cli import app
    from opsline.config import get_settings

    acc, pid = billed_and_ended(factory, now)
    monkeypatch.setenv("OPSLINE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        _cli_checks(factory, acc, pid, app)
    finally:
        get_settings.cache_clear()


def _cli_checks(factory, acc, pid, app):  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    with factory() as s:
        number = s.execute(select(Invoice.number).where(Invoice.account_id == acc)).scalar_one()
        from opsline.customers.models import Account

        acc_no = s.get(Account, acc).account_number
    runner = CliRunner()
    dry = runner.invoke(app, ["final-account", "--account", acc_no, "--end-date", "2026-11-16", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "Credit: Fibre" in dry.output and "dry run: nothing written" in dry.output and number
    with factory() as s:
        assert s.execute(select(func.count()).select_from(fa.FinalAccount)).scalar_one() == 0
    bad = runner.invoke(app, ["final-account", "--account", acc_no, "--end-date", "16/11/2026"])
    assert bad.exit_code != 0 and "--end-date" in bad.output
    real = runner.invoke(app, ["final-account", "--account", acc_no, "--end-date", "2026-11-16", "--reason", "cancelled"])
    assert real.exit_code == 0, real.output
    assert "FA-" in real.output and "CN-" in real.output
    again = runner.invoke(app, ["final-account", "--account", acc_no, "--end-date", "2026-11-16", "--reason", "cancelled", "--product", str(pid)])
    assert again.exit_code != 0 and "already final-billed" in again.output


def test_a_net_charge_becomes_a_final_invoice_whose_page_and_pdf_open_like_any_invoice(client_as, factory, now):
    from opsline.billing.service import queue_charge
    from opsline.core.money import Money

    acc, pid = billed_and_ended(factory, now, end=date(2026, 11, 28))
    with factory.begin() as s:
        queue_charge(s, account_id=acc, product_id=pid, description="Unreturned router SN-W-1", amount=Money.of("1499.00", "ZAR"), tax_rate_code="VAT15",
                     reason="not returned after the grace period", now=now, actor=STARTER, idempotency_key="unreturned:SN-W-1")
    c = client_as("billing_analyst")
    r = c.post(f"/billing/accounts/{acc}/final-account",
               data={"product_ids": str(pid), "end_date": "2026-11-28", "reason": "cancelled", "key": "web-1", "waive_etf_reason": ""}, follow_redirects=False)
    assert r.status_code == 303, r.text
    with factory() as s:
        inv = s.execute(select(Invoice).where(Invoice.account_id == acc, Invoice.kind == "final")).scalar_one()
    # 28-30 November credited (3 of 30 days of R600.00 = R60.00), the router charged R1,499.00: net R1,439.00 + VAT R215.85
    assert (inv.subtotal_minor, inv.tax_minor, inv.total_minor) == (143900, 21585, 165485)
    assert inv.number in c.get(r.headers["location"]).text
    page = c.get(f"/billing/invoices/{inv.id}")
    assert page.status_code == 200 and "Unreturned router SN-W-1" in page.text and "Credit: Fibre 100/100 (Vumatel)" in page.text
    pdf = c.get(f"/billing/invoices/{inv.id}/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
