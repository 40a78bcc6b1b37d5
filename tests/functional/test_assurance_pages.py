"""Revenue assurance and the management dashboard through the app: an analyst uploads an FNO invoice and disputes a
line billed after cancellation, a bad upload shows its error and changes nothing, the CLI imports a file, the
dashboard and its Excel export answer for a manager, and who may do what."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import date

from sqlalchemy import func, select
from typer.testing import CliRunner

from conftest import NOW
from opsline.assurance.models import AssuranceFinding, PartnerInvoice
from opsline.catalog.models import Price, ProductOffering
from opsline.customers.models import Account, Party
from opsline.inventory.models import Product


def _lines(factory, now) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Two Openserve lines: one live all October, one ended in September (with a cancellation journey)."""
    from opsline.cancellations.models import CancellationJourney

    with factory.begin() as s:
        party = Party(kind="person", name="Thandi Nkosi", created_at=now)
        s.add(party)
        s.flush()
        acc = Account(account_number=f"A{party.id:09d}", party_id=party.id, name="Thandi Nkosi", kind="retail", status="active", segment_code="consumer",
                      value_tier_code="standard", currency="ZAR", created_at=now, updated_at=now)
        s.add(acc)
        s.flush()
        off = s.execute(select(ProductOffering).where(ProductOffering.partner_code == "openserve", ProductOffering.kind == "fibre")
                        .order_by(ProductOffering.id).limit(1)).scalar_one()
        cost = s.execute(select(Price.amount_minor).where(Price.offering_id == off.id, Price.kind == "wholesale_cost")).scalar_one()
        live = Product(account_id=acc.id, offering_id=off.id, state="active", start_date=date(2026, 3, 1), partner_code="openserve",
                       partner_line_ref="OPS-LIVE-1", created_at=now, updated_at=now)
        gone = Product(account_id=acc.id, offering_id=off.id, state="terminated", start_date=date(2025, 3, 1), end_date=date(2026, 9, 30),
                       partner_code="openserve", partner_line_ref="OPS-GONE-1", created_at=now, updated_at=now)
        s.add_all([live, gone])
        s.flush()
        j = CancellationJourney(reference="CJ-F1", kind="cancellation", account_id=acc.id, product_id=gone.id, state="closed", reason_code="price",
                                partner_code="openserve", notice_date=date(2026, 8, 30), created_by="t", created_at=now, updated_at=now)
        s.add(j)
        s.flush()
        return {"cost": cost, "journey": j.id, "account": acc.id}


def _csv(cost: int, period: str = "2026-10") -> bytes:
    amount = f"{cost // 100}.{cost % 100:02d}"
    return f"line_id,period,amount\nOPS-LIVE-1,{period},{amount}\nOPS-GONE-1,{period},{amount}\n".encode()


def test_an_analyst_imports_an_fno_invoice_and_disputes_the_line_billed_after_cancellation(client_as, factory, now) -> None:
    d = _lines(factory, now)
    c = client_as("billing_analyst")
    assert "Import an FNO invoice" in c.get("/assurance").text
    r = c.post("/assurance/invoices", data={"partner": "openserve", "period": "2026-10"},
               files={"file": ("openserve-oct.csv", _csv(d["cost"]), "text/csv")}, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = c.get(r.headers["location"]).text
    assert "OPS-GONE-1" in page and f'href="/cancellations/{d["journey"]}"' in page and "ended 2026-09-30" in page
    assert 'href="/assurance/lines/openserve/OPS-GONE-1"' in page and f'href="/accounts/{d["account"]}' in page
    line = c.get("/assurance/lines/openserve/OPS-GONE-1")
    assert line.status_code == 200 and "CJ-F1" not in line.text and f"journey {d['journey']}" in line.text
    with factory() as s:
        f = s.execute(select(AssuranceFinding)).scalar_one()
        assert (f.kind, f.amount_minor) == ("billed_not_active", d["cost"])
    # the finding's product link lands on that product's row of the account page
    assert f'href="/accounts/{d["account"]}#product-{f.product_id}"' in page
    assert f'id="product-{f.product_id}"' in c.get(f"/accounts/{d['account']}/panel/products").text
    r = c.post(f"/assurance/findings/{f.id}/dispute", data={"back": r.headers["location"].split("?")[0]}, follow_redirects=False)
    assert r.status_code == 303
    with factory() as s:
        assert s.get(AssuranceFinding, f.id).state == "disputed"
    inv_id = re.search(r"/assurance/invoices/(\d+)", page).group(1)  # type: ignore[union-attr]
    x = c.get(f"/assurance/invoices/{inv_id}/export?format=xlsx")
    assert x.status_code == 200 and "OPS-GONE-1" in zipfile.ZipFile(io.BytesIO(x.content)).read("xl/sharedStrings.xml").decode()
    rows = list(csv.reader(io.StringIO(c.get(f"/assurance/invoices/{inv_id}/export?format=csv").content.decode("utf-8-sig"))))
    assert rows[2][2] == "OPS-GONE-1" and rows[2][6] == str(d["journey"])
    desk = c.get("/assurance").text
    assert "Openserve" in desk and "data-chart" in desk


def test_a_bad_upload_shows_file_line_and_field_and_imports_nothing_and_others_may_not_import(client_as, factory, now) -> None:
    d = _lines(factory, now)
    c = client_as("billing_analyst")
    r = c.post("/assurance/invoices", data={"partner": "openserve", "period": "2026-10"},
               files={"file": ("wrong.csv", _csv(d["cost"], period="2026-09"), "text/csv")})
    assert r.status_code == 422
    assert "wrong.csv, line 2, field &#39;period&#39;" in r.text or "wrong.csv, line 2, field 'period'" in r.text
    with factory() as s:
        assert s.execute(select(func.count()).select_from(PartnerInvoice)).scalar_one() == 0
    sm = client_as("service_manager")
    assert sm.get("/assurance").status_code == 200
    assert sm.post("/assurance/invoices", data={"partner": "openserve", "period": "2026-10"},
                   files={"file": ("a.csv", _csv(d["cost"]), "text/csv")}).status_code == 403
    assert client_as("second_line_agent").get("/assurance/dashboard").status_code == 403


def test_the_cli_imports_a_partner_invoice_and_refuses_it_twice(engine, factory, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from opsline.cli import app
    from opsline.config import get_settings

    d = _lines(factory, NOW)
    f = tmp_path / "openserve-2026-10.csv"
    f.write_bytes(_csv(d["cost"]))
    monkeypatch.setenv("OPSLINE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        ok = CliRunner().invoke(app, ["import-partner-invoice", str(f), "--partner", "openserve", "--period", "2026-10"])
        again = CliRunner().invoke(app, ["import-partner-invoice", str(f), "--partner", "openserve", "--period", "2026-10"])
    finally:
        get_settings.cache_clear()
    assert ok.exit_code == 0, ok.output
    assert "2 lines" in ok.output and "1 finding(s)" in ok.output
    assert again.exit_code == 1 and "already imported" in again.output
    with factory() as s:
        assert s.execute(select(func.count()).select_from(PartnerInvoice)).scalar_one() == 1


def test_the_management_dashboard_shows_every_section_and_exports_a_workbook(client_as, factory, now) -> None:
    _lines(factory, now)
    c = client_as("debtors_manager")
    page = c.get("/assurance/dashboard")
    assert page.status_code == 200
    for title in ("Open work by desk", "SLA compliance", "Case SLAs met this month", "Cancellations and retention", "Collections", "Top 10 debtors",
                  "Bill runs", "Partner performance"):
        assert title in page.text
    x = c.get("/assurance/dashboard/export?format=xlsx")
    assert x.status_code == 200
    book = zipfile.ZipFile(io.BytesIO(x.content)).read("xl/workbook.xml").decode()
    for sheet in ("Open work", "SLA", "Top 10 debtors", "Cash vs billed", "Revenue", "FNO leakage"):
        assert f'name="{sheet}"' in book


def test_the_desk_offers_a_sample_fno_file_for_a_month_not_yet_imported_and_it_imports_with_findings(client_as, factory, now) -> None:
    _lines(factory, now)
    c = client_as("billing_analyst")
    desk = c.get("/assurance").text
    assert 'href="/assurance/sample.csv?partner=openserve"' in desk and "Openserve 2026-10" in desk  # NOW is November: October has ended
    r = c.get("/assurance/sample.csv?partner=openserve")
    assert r.status_code == 200 and r.headers["content-disposition"] == 'attachment; filename="sample-openserve-invoice-2026-10.csv"'
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["line_id", "period", "amount"] and {row[0] for row in rows[1:]} == {"OPS-LIVE-1", "OPS-GONE-1"}
    up = c.post("/assurance/invoices", data={"partner": "openserve", "period": "2026-10"}, files={"file": ("sample.csv", r.content, "text/csv")},
                follow_redirects=False)
    assert up.status_code == 303, up.text
    with factory() as s:
        # the line we cancelled in September is still billed (with one live line there is nothing to forget or overcharge)
        assert [(f.kind, f.line_ref) for f in s.execute(select(AssuranceFinding)).scalars()] == [("billed_not_active", "OPS-GONE-1")]
    # that month is taken now: the next sample is for the month before, which can still be imported
    assert "Openserve 2026-09" in c.get("/assurance").text
    assert 'filename="sample-openserve-invoice-2026-09.csv"' in c.get("/assurance/sample.csv?partner=openserve").headers["content-disposition"]
    assert c.get("/assurance/sample.csv?partner=nobody").status_code == 404
    assert client_as("service_manager").get("/assurance/sample.csv?partner=openserve").status_code == 403
