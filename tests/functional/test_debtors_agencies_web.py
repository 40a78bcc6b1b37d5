"""Collection agency hand-over over HTTP: the clerk counts (dry run) and hands written-off debt over, downloads the file
in each agency's layout, recalls a placement, uploads a recovery file (a bad one shows its error naming file, line
and field with nothing imported; the same file twice is refused); the manager edits the terms; the report and the
placement list render with their exports for the roles that may see them, and the desk links to them."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

from sqlalchemy import text

from debtors_helpers import TODAY, at, counts, debtor
from opsline.core.events import Actor
from opsline.debtors import writeoffs

CLERK = Actor(name="dawie", roles=frozenset({"debtors_clerk"}))
MANAGER = Actor(name="dineo", roles=frozenset({"debtors_manager"}))


def _counts(factory):  # type: ignore[no-untyped-def]
    with factory() as s:
        c = counts(s)
        for t in ("agency_batch", "agency_placement", "agency_recovery", "agency_recovery_file", "ledger_entry", "agency_terms"):
            c[t] = s.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
        return c


def _written_off(s, name: str, amount: int) -> dict:  # type: ignore[no-untyped-def]
    a = debtor(s, name=name, amount=amount, overdue_days=200)
    wo = writeoffs.propose(s, account_id=a["id"], amount=None, reason="uncollectable", today=TODAY - timedelta(days=30), now=at(TODAY - timedelta(days=30)),
                           actor=CLERK)
    writeoffs.approve(s, write_off_id=wo.id, now=at(TODAY - timedelta(days=30)), actor=MANAGER)
    return a


def test_clerk_hands_over_downloads_recalls_and_imports_recoveries(client_as, factory, clock):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = _written_off(s, "Thabo Nkosi", 59900)
        b = _written_off(s, "Lerato Dlamini", 30000)
        old = debtor(s, name="Ancient Debt", amount=40000, overdue_days=3 * 365 + 30)
        wo = writeoffs.propose(s, account_id=old["id"], amount=None, reason="old", today=TODAY - timedelta(days=30), now=at(TODAY - timedelta(days=30)), actor=CLERK)
        writeoffs.approve(s, write_off_id=wo.id, now=at(TODAY - timedelta(days=30)), actor=MANAGER)
    clerk = client_as("debtors_clerk")
    before = _counts(factory)
    dry = clerk.get("/debtors/agencies/handover?check=1&agency=collectco&source=written_off&min_days=0")
    assert dry.status_code == 200 and "Dry run: 2 accounts" in dry.text and "ZAR 899.00" in dry.text and "Prescribed debt" in dry.text
    assert _counts(factory) == before
    token = re.search(r'name="token" value="([^"]+)"', dry.text).group(1)
    # naming the prescribed account refuses the hand-over, naming it
    bad = clerk.post("/debtors/agencies/handover", data={"agency": "collectco", "source": "both", "accounts": f"{a['number']} {old['number']}"})
    assert bad.status_code == 422 and bad.json()["field"] == "accounts" and old["number"] in bad.json()["detail"] and "prescribed" in bad.json()["detail"]
    assert _counts(factory) == before
    form = {"agency": "collectco", "source": "written_off", "min_amount": "", "min_days": "0", "accounts": "", "token": token}
    r = clerk.post("/debtors/agencies/handover", data=form, follow_redirects=False)
    assert r.status_code == 303 and "2+accounts+handed+over" in r.headers["location"], r.text
    again = clerk.post("/debtors/agencies/handover", data=form, follow_redirects=False)  # the same form twice: one batch
    assert again.headers["location"].split("?")[0] == r.headers["location"].split("?")[0]
    batch = int(re.search(r"/batches/(\d+)", r.headers["location"]).group(1))
    page = clerk.get(r.headers["location"])
    assert page.status_code == 200 and a["number"] in page.text and f"/debtors/agencies/batches/{batch}/export" in page.text
    f = clerk.get(f"/debtors/agencies/batches/{batch}/export")
    assert f.status_code == 200 and f.headers["content-type"].startswith("text/csv") and "attachment" in f.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(f.content.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:3] == ["ClientRef", "AccountNo", "DebtorName"] and len(rows) == 3
    xlsx = clerk.get(f"/debtors/agencies/batches/{batch}/export?format=xlsx")
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    assert clerk.get(f"/debtors/agencies/batches/{batch}/export?format=pdf").status_code == 422
    # the desk list, a placement, a recall
    listing = clerk.get("/debtors/agencies?agency=collectco")
    assert listing.status_code == 200 and "Thabo Nkosi" in listing.text and "ZAR 899.00" in listing.text
    with factory() as s:
        pid_a = s.execute(text("SELECT id FROM agency_placement WHERE account_id = :a"), {"a": a["id"]}).scalar_one()
        pid_b = s.execute(text("SELECT id FROM agency_placement WHERE account_id = :a"), {"a": b["id"]}).scalar_one()
    detail = clerk.get(f"/debtors/agencies/placements/{pid_b}")
    assert detail.status_code == 200 and "Recall from the agency" in detail.text
    assert clerk.post(f"/debtors/agencies/placements/{pid_b}/recall", data={"reason": ""}).status_code == 422
    rc = clerk.post(f"/debtors/agencies/placements/{pid_b}/recall", data={"reason": "paying us directly"}, follow_redirects=False)
    assert rc.status_code == 303
    with factory() as s:
        assert s.execute(text("SELECT to_addr FROM message WHERE event = 'agency.recall'")).scalar_one() == "handover@collectco.example"
    # a recovery file with a good line and a line for an unknown account: refused on the page, nothing imported
    day = TODAY.strftime("%Y%m%d")
    bad_file = f"ClientRef;AmountPaid;PaymentDate;ReceiptNo\nPL-{pid_a};100.00;{day};CC-1\n9999999999;5.00;{day};CC-2\n".encode()
    before = _counts(factory)
    up = clerk.post("/debtors/agencies/recoveries", data={"agency": "collectco"}, files={"file": ("cc-bad.csv", bad_file, "text/csv")})
    assert up.status_code == 422 and "cc-bad.csv line 3, field ClientRef: unknown account" in up.text and "Nothing was imported" in up.text
    assert _counts(factory) == before
    good = f"ClientRef;AmountPaid;PaymentDate;ReceiptNo\nPL-{pid_a};100.00;{day};CC-1\n".encode()
    ok = clerk.post("/debtors/agencies/recoveries", data={"agency": "collectco"}, files={"file": ("cc.csv", good, "text/csv")})
    assert ok.status_code == 200 and "1 recoveries posted" in ok.text and "ZAR 100.00" in ok.text and "commission ZAR 20.00" in ok.text
    dup = clerk.post("/debtors/agencies/recoveries", data={"agency": "collectco"}, files={"file": ("cc-again.csv", good, "text/csv")})
    assert dup.status_code == 409 and "already imported" in dup.text
    file_id = int(re.search(r"/debtors/agencies/recoveries/(\d+)", ok.text).group(1))
    fp = clerk.get(f"/debtors/agencies/recoveries/{file_id}")
    assert fp.status_code == 200 and "CC-1" in fp.text and f"PL-{pid_a}" in fp.text
    # the report, its drill-down and exports
    rep = clerk.get("/debtors/reports/handover")
    assert rep.status_code == 200 and "CollectCo Debt Recovery" in rep.text and "data-chart" in rep.text and "11.1 %" in rep.text
    assert f"/debtors/agencies?agency=collectco&amp;month={TODAY:%Y-%m}" in rep.text
    csv_rep = clerk.get("/debtors/reports/handover/export?format=csv").content.decode("utf-8-sig")
    assert "CollectCo Debt Recovery" in csv_rep and "899.00" in csv_rep and "100.00" in csv_rep and "20.00" in csv_rep
    assert clerk.get("/debtors/reports/handover/export?format=xlsx").content[:2] == b"PK"
    pl_csv = clerk.get("/debtors/agencies/export?agency=collectco&format=csv").content.decode("utf-8-sig")
    assert a["number"] in pl_csv and "recalled" in pl_csv
    assert clerk.get("/debtors/agencies?month=2026-13").status_code == 422


def test_the_manager_edits_agency_terms_and_a_clerk_may_not(client_as, factory):  # type: ignore[no-untyped-def]
    clerk = client_as("debtors_clerk")
    manager = client_as("debtors_manager")
    terms = clerk.get("/debtors/agencies/terms")
    assert terms.status_code == 200 and "ClientRef" in terms.text and "MBD Ref" in terms.text and "/debtors/agencies/terms/mbd" not in terms.text
    assert clerk.get("/debtors/agencies/terms/mbd").status_code == 403
    form = manager.get("/debtors/agencies/terms/mbd")
    assert form.status_code == 200 and "Outstanding Amount" in form.text
    data = {"export_format": "xlsx", "export_delimiter": ",", "export_date_format": "%d/%m/%Y", "export_columns": "account_number = Acc No\namount = Owed",
            "commission_basis": "flat", "bands": "", "recovery_format": "xlsx", "recovery_delimiter": ",", "recovery_date_format": "%d/%m/%Y",
            "recovery_account": "Acc No", "recovery_amount": "Paid", "recovery_paid_on": "Date", "recovery_agency_ref": "Ref", "version": "0"}
    assert clerk.post("/debtors/agencies/terms/mbd", data=data).status_code == 403
    before = _counts(factory)
    bad = manager.post("/debtors/agencies/terms/mbd", data=data | {"export_columns": "colour = Colour"})
    assert bad.status_code == 422 and bad.json()["field"] == "export_columns"
    assert manager.post("/debtors/agencies/terms/nosuch", data=data).status_code == 404
    assert _counts(factory) == before
    ok = manager.post("/debtors/agencies/terms/mbd", data=data, follow_redirects=False)
    assert ok.status_code == 303 and "version+1" in ok.headers["location"]
    stale = manager.post("/debtors/agencies/terms/mbd", data=data)
    assert stale.status_code == 409 and stale.json()["field"] == "version"
    assert "Acc No, Owed" in manager.get("/debtors/agencies/terms").text


def test_pages_render_for_debtors_roles_and_are_refused_to_others(client_as, factory):  # type: ignore[no-untyped-def]
    clerk = client_as("debtors_clerk")
    manager = client_as("debtors_manager")
    other = client_as("second_line_agent")
    for url in ("/debtors/agencies", "/debtors/agencies/recoveries", "/debtors/agencies/terms", "/debtors/reports/handover",
                "/debtors/agencies/handover"):
        for c in (clerk, manager):
            r = c.get(url)
            assert r.status_code == 200, (url, r.text[:300])
        assert other.get(url).status_code == 403, url
    desk = clerk.get("/debtors")
    assert 'href="/debtors/agencies"' in desk.text
    assert 'href="/debtors/reports/handover"' in clerk.get("/debtors/reports").text
    empty = clerk.get("/debtors/agencies/handover?check=1&agency=collectco&source=both")
    assert empty.status_code == 200 and "Dry run: 0 accounts" in empty.text
    assert clerk.get("/debtors/agencies/handover?check=1&agency=collectco&source=everything").status_code == 422
    assert clerk.get("/debtors/agencies/placements/987654").status_code == 404


def test_the_cli_imports_a_recovery_file_once_and_names_a_bad_line(engine, factory, monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from opsline.cli import app
    from opsline.config import get_settings
    from opsline.debtors import agencies

    with factory.begin() as s:
        a = _written_off(s, "Cli Payer", 50000)
        agencies.hand_over(s, agency="collectco", selection=agencies.parse_selection(source="written_off", accounts="", min_amount="", min_days="0",
                                                                                      currency="ZAR"),
                           today=TODAY - timedelta(days=20), now=at(TODAY - timedelta(days=20)), actor=CLERK)
    day = (TODAY - timedelta(days=2)).strftime("%Y%m%d")
    good, bad = tmp_path / "cc.csv", tmp_path / "cc-bad.csv"
    good.write_text(f"ClientRef;AmountPaid;PaymentDate;ReceiptNo\n{a['number']};120.00;{day};CLI-1\n")
    bad.write_text(f"ClientRef;AmountPaid;PaymentDate;ReceiptNo\n{a['number']};12,0.0.0;{day};CLI-9\n")
    monkeypatch.setenv("OPSLINE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        before = _counts(factory)
        refused = CliRunner().invoke(app, ["agency-recoveries", str(bad), "--agency", "collectco"])
        assert _counts(factory) == before
        ok = CliRunner().invoke(app, ["agency-recoveries", str(good), "--agency", "collectco"])
        again = CliRunner().invoke(app, ["agency-recoveries", str(good), "--agency", "collectco"])
        unknown = CliRunner().invoke(app, ["agency-recoveries", str(good), "--agency", "nosuch"])
    finally:
        get_settings.cache_clear()
    assert refused.exit_code == 2 and "cc-bad.csv line 2, field AmountPaid" in refused.output
    assert ok.exit_code == 0 and "1 recoveries posted" in ok.output and "ZAR 120.00" in ok.output, ok.output
    assert again.exit_code == 2 and "already imported" in again.output
    assert unknown.exit_code == 2 and "no collection agency 'nosuch'" in unknown.output
    with factory() as s:
        assert s.execute(text("SELECT COUNT(*) FROM agency_recovery")).scalar_one() == 1
