"""The payments desk over HTTP: import, approve a batch, work suspense (split, refund), reverse, capture, panel, CLI; and
TMF676 payment/refund validated against the official v4 swagger, with the official samples posted."""

from __future__ import annotations

import json
import re

import jsonschema
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from conftest import NOW, TMF_DIR
from payments_helpers import account_with_invoices, assert_ledger_balances, mt940

TMF = TMF_DIR
SPEC = json.loads((TMF / "specs" / "TMF676-Payment-v4.0.0.swagger.json").read_text())


def _conforms(body: dict, definition: str) -> None:
    jsonschema.validate(body, {"$ref": f"#/definitions/{definition}", "definitions": SPEC["definitions"]})


def _book(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        return {"thabo": account_with_invoices(s, now=NOW, name="Thabo Nkosi", amounts=[59900, 59900]),
                "lerato": account_with_invoices(s, now=NOW, name="Lerato Mokoena", amounts=[79900])}


def _typo(number: str) -> str:
    return number[:4] + str((int(number[4]) + 3) % 10) + number[5:]


def test_a_clerk_imports_approves_works_suspense_to_zero_and_reverses(client_as, factory):  # type: ignore[no-untyped-def]
    b = _book(factory)
    t, l = b["thabo"], b["lerato"]
    clerk = client_as("debtors_clerk")
    data = mt940(lines=[("261120", 59900, "B1", f"/NAME/T NKOSI/REMI/{t['invoice_numbers'][0]}"),
                        ("261120", 59900, "B2", f"/NAME/T NKOSI/REMI/{_typo(t['number'])}"),
                        ("261121", 100000, "B3", "/NAME/MRS MOKOENA/ACCT/5544332211/REMI/for my daughter")])
    r = clerk.post("/payments/upload", files={"file": ("fnb.sta", data, "text/plain")}, data={"format": "", "mapping": ""})
    assert r.status_code == 200 and "Imported fnb.sta" in r.text and "account-number-repaired" in r.text
    again = clerk.post("/payments/upload", files={"file": ("fnb-again.sta", data, "text/plain")})
    assert again.status_code == 409 and "already imported" in again.text
    pid = re.search(r'name="payment_id" value="(\d+)"', r.text).group(1)
    r = clerk.post("/payments/proposals/approve", data={"payment_id": [pid]}, follow_redirects=False)
    assert r.status_code == 303 and "Approved+1" in r.headers["location"]
    page = clerk.get("/payments/suspense")
    assert page.status_code == 200 and "data-chart" in page.text and "MRS MOKOENA" in page.text
    item = re.search(r'href="/payments/suspense/(\d+)"', page.text).group(1)
    form = clerk.get(f"/payments/suspense/{item}?find=Mokoena&accounts={l['id']},{t['id']}")
    assert "Lerato Mokoena" in form.text
    r = clerk.post(f"/payments/suspense/{item}/allocate", data={"reason": "", "account_id": [str(l["id"])], "invoice_id": [""], "amount": ["100.00"]})
    assert r.status_code == 422 and "without a reason" in r.text
    r = clerk.post(f"/payments/suspense/{item}/allocate", data={"reason": "mother phoned: half each", "accounts": f"{l['id']},{t['id']}",
                                                                "account_id": [str(l["id"]), str(t["id"])], "invoice_id": [str(l["invoices"][0]), ""],
                                                                "amount": ["500.00", "500.00"]}, follow_redirects=False)
    assert r.status_code == 303
    assert "Suspense is empty" in clerk.get("/payments/suspense").text
    with factory() as s:
        alloc = s.execute(text("SELECT id, payment_id FROM payment_allocation WHERE invoice_id = :i AND state = 'allocated'"), {"i": t["invoices"][0]}).first()
        assert_ledger_balances(s)
    r = clerk.post(f"/payments/allocations/{alloc.id}/reverse", data={"payment_id": alloc.payment_id, "reason": "wrong customer"}, follow_redirects=False)
    assert r.status_code == 303
    detail = clerk.get(f"/payments/{alloc.payment_id}")
    assert "reversed" in detail.text and "wrong customer" in detail.text
    panel = clerk.get(f"/accounts/{t['id']}/panel/payments")
    assert panel.status_code == 200 and "Open items" in panel.text
    with factory() as s:
        assert_ledger_balances(s)


def test_a_second_line_agent_cannot_open_the_payments_desk(client_as):  # type: ignore[no-untyped-def]
    assert client_as("second_line_agent").get("/payments").status_code == 403


def test_staff_capture_refuses_an_unknown_account_and_records_cash(client_as, factory):  # type: ignore[no-untyped-def]
    t = _book(factory)["thabo"]
    clerk = client_as("debtors_clerk")
    bad = clerk.post("/payments/capture", data={"account_number": "1234", "amount": "10", "method": "cash"})
    assert bad.status_code == 422 and "no account number" in bad.text
    ok = clerk.post("/payments/capture", data={"account_number": t["number"], "amount": "599.00", "method": "cash", "received_on": "2026-11-23"},
                    follow_redirects=False)
    assert ok.status_code == 303
    assert "allocated" in clerk.get(ok.headers["location"]).text


def test_tmf676_payment_and_refund_conform_to_the_spec_and_replay_by_correlator(app, api_token, factory):  # type: ignore[no-untyped-def]
    t = _book(factory)["thabo"]
    c = TestClient(app)
    c.headers.update(api_token("debtors_manager"))
    sample = json.loads((TMF / "samples" / "TMF676-Payment.example.json").read_text())
    for k in ("id", "href", "status", "statusDate"):
        sample.pop(k, None)
    sample["account"]["id"] = str(t["id"])
    sample["amount"] = sample["totalAmount"] = {"unit": "ZAR", "value": 1500.0}
    sample["taxAmount"] = {"unit": "ZAR", "value": 0}
    sample["paymentItem"] = [{"item": {"id": str(t["invoices"][1]), "@referredType": "CustomerBill"}, "amount": {"unit": "ZAR", "value": 599.0}}]
    r = c.post("/tmf-api/paymentManagement/v4/payment", json=sample)
    assert r.status_code == 201, r.text
    body = r.json()
    _conforms(body, "Payment")
    assert body["status"] == "done" and body["paymentItem"][0]["item"]["id"] == str(t["invoices"][1])
    assert [i["amount"]["value"] for i in body["paymentItem"]] == [599.0, 599.0, 302.0]
    again = c.post("/tmf-api/paymentManagement/v4/payment", json=sample)
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    _conforms(c.get(f"/tmf-api/paymentManagement/v4/payment/{body['id']}").json(), "Payment")
    for p in c.get("/tmf-api/paymentManagement/v4/payment").json():
        _conforms(p, "Payment")
    refund = json.loads((TMF / "samples" / "TMF676-Refund.example.json").read_text())
    for k in ("id", "href", "status", "statusDate", "payment"):
        refund.pop(k, None)
    refund["account"]["id"] = str(t["id"])
    refund["amount"] = refund["totalAmount"] = {"unit": "ZAR", "value": 302.0}
    refund["paymentMethod"]["id"] = "62000011111"
    card = c.post("/tmf-api/paymentManagement/v4/refund", json=refund)  # the sample's card number and CVV are never stored
    assert card.status_code == 400 and card.json()["field"] == "paymentMethod.cardNumber"
    for k in ("cardNumber", "cvv", "expirationDate"):
        refund["paymentMethod"].pop(k)
    r = c.post("/tmf-api/paymentManagement/v4/refund", json=refund)
    assert r.status_code == 201, r.text
    assert r.json()["requestor"] == refund["requestor"] and r.json()["paymentMethod"]["brand"] == "MasterCard" and r.json()["name"] == refund["name"]
    _conforms(r.json(), "Refund")
    assert r.json()["status"] == "authorized"
    too_much = c.post("/tmf-api/paymentManagement/v4/refund", json=refund | {"correlatorId": "other"})
    assert too_much.status_code in (400, 422) and too_much.headers["content-type"].startswith("application/problem+json")
    bad = c.post("/tmf-api/paymentManagement/v4/payment", json=sample | {"correlatorId": "x2", "account": {"id": "abc"}})
    assert bad.status_code == 400 and bad.json()["field"] == "account.id"
    with factory() as s:
        assert_ledger_balances(s)


def test_the_cli_imports_a_statement_with_a_progress_bar_and_names_a_bad_line(engine, factory, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    from opsline.cli import app
    from opsline.config import get_settings

    t = _book(factory)["thabo"]
    good = tmp_path / "nov.sta"
    good.write_bytes(mt940(lines=[("261120", 59900, "B1", f"/REMI/{t['invoice_numbers'][0]}")]))
    bad = tmp_path / "bad.csv"
    bad.write_text("Valutadatum;Credit;Debit;Reference;Counterparty;Counterparty Account\n20.11.2026;abc;;x;y;z\nTotal;;;;;\n", encoding="cp1252")
    monkeypatch.setenv("OPSLINE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        res = CliRunner().invoke(app, ["import-statement", str(good)])
        err = CliRunner().invoke(app, ["import-statement", str(bad), "--format", "csv", "--mapping", "standard-bank"])
    finally:
        get_settings.cache_clear()
    assert res.exit_code == 0, res.output
    assert "1 allocated" in res.output and "invoice-number: 1" in res.output
    assert err.exit_code == 2 and "bad.csv line 2, field credit" in err.output


def test_the_shipped_sample_statements_import_with_a_realistic_match_rate(client_as, factory):  # type: ignore[no-untyped-def]
    from opsline.billing.invoicing.samples import make_finalised_invoice
    from opsline.core.ids import account_number
    from opsline.customers.models import Account, Party
    from datetime import date

    with factory.begin() as s:
        for i in range(1, 41):
            p = Party(kind="person", name=f"Customer {i}", created_at=NOW)
            s.add(p)
            s.flush()
            s.add(Account(id=i, account_number=account_number(i), party_id=p.id, name=f"Customer {i}", kind="retail", status="active", segment_code="consumer",
                          value_tier_code="standard", currency="ZAR", created_at=NOW, updated_at=NOW))
            s.flush()
            make_finalised_invoice(s, account_id=i, now=NOW, period_start=date(2026, 11, 1), period_end=date(2026, 12, 1),
                                   lines=[{"description": "Fibre", "amount_minor": 60870}])
    clerk = client_as("debtors_clerk")
    desk = clerk.get("/payments")
    names = re.findall(r'href="/payments/samples/([^"]+)"', desk.text)
    assert len(names) == 5
    results = {}
    for name in ["sample-fnb.sta", "sample-nedbank-camt053.xml", "sample-standard-bank.csv", "sample-debit-orders.csv", "sample-debit-order-unpaids.csv"]:
        data = clerk.get(f"/payments/samples/{name}").content
        r = clerk.post("/payments/upload", files={"file": (name, data)}, data={"mapping": "standard-bank" if name.endswith("bank.csv") else ""})
        assert r.status_code == 200, r.text
        results[name] = r.text
    assert "2 invoices re-opened" in results["sample-debit-order-unpaids.csv"] or "re-opened" in results["sample-debit-order-unpaids.csv"]
    with factory() as s:
        states = dict(s.execute(text("SELECT state, COUNT(*) FROM payment GROUP BY state")).all())
        assert states["allocated"] >= 20 and states.get("suspense", 0) >= 3 and states.get("returned") == 2
        assert s.execute(text("SELECT COUNT(*) FROM pending_charge")).scalar_one() == 2
        assert_ledger_balances(s)
    assert clerk.get("/payments/samples/..%2Fmodels.py").status_code == 404
