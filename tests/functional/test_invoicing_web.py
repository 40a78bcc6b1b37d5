"""Invoice pages: list and detail, credit and claim forms (good and bad input), claim decisions, statement, usage upload, 360 panel."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from conftest import NOW
from opsline.billing.invoicing.models import BillingClaim, ClaimAttachment, CreditNote, UsageRejected
from opsline.billing.invoicing.samples import make_account, make_finalised_invoice, make_mobile_product
from opsline.billing.models import InvoiceLine, UsageRecord


@pytest.fixture
def invoice(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        acc = make_account(s, now=NOW, name="Lerato Mokoena")
        make_mobile_product(s, account_id=acc, now=NOW, msisdn="27825550000")
        inv = make_finalised_invoice(s, account_id=acc, now=NOW, period_start=date(2026, 11, 1), period_end=date(2026, 12, 1), number="INV-2026-00000007", lines=[
            {"description": "Fibre 100/100", "amount_minor": 80000, "explanation": "Full month at R800.00"},
            {"description": "Router rental", "amount_minor": 10000},
        ])
        lines = s.execute(select(InvoiceLine.id).where(InvoiceLine.invoice_id == inv).order_by(InvoiceLine.id)).scalars().all()
    return {"account_id": acc, "invoice_id": inv, "lines": lines}


def _count(factory, model) -> int:  # type: ignore[no-untyped-def]
    with factory() as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def test_the_invoice_list_filters_and_links_to_the_detail_with_explanations(client_as, invoice):  # type: ignore[no-untyped-def]
    c = client_as("billing_analyst")
    r = c.get("/billing/invoices", params={"state": "new", "account": invoice["account_id"]})
    assert r.status_code == 200 and "INV-2026-00000007" in r.text and "Lerato Mokoena" in r.text
    assert "INV-2026-00000007" not in c.get("/billing/invoices", params={"state": "settled"}).text
    d = c.get(f"/billing/invoices/{invoice['invoice_id']}")
    assert d.status_code == 200 and "why was I charged this" in d.text and "Full month at R800.00" in d.text
    assert "Issue credit note" in d.text and "Raise claim" in d.text and "Put on hold" in d.text


def test_a_second_line_agent_sees_no_credit_form_and_cannot_post_one(client_as, invoice, factory):  # type: ignore[no-untyped-def]
    c = client_as("second_line_agent")
    d = c.get(f"/billing/invoices/{invoice['invoice_id']}")
    assert "Issue credit note" not in d.text and "Raise claim" in d.text
    r = c.post(f"/billing/invoices/{invoice['invoice_id']}/credit", data={"line": invoice["lines"][0], "amount": "10", "reason": "x"})
    assert r.status_code == 403
    assert _count(factory, CreditNote) == 0


def test_crediting_too_much_shows_the_limit_and_changes_nothing(client_as, invoice, factory):  # type: ignore[no-untyped-def]
    c = client_as("billing_analyst")
    r = c.post(f"/billing/invoices/{invoice['invoice_id']}/credit", data={"line": invoice["lines"][1], "amount": "200", "reason": "Goodwill"})
    assert r.status_code == 409 and "at most ZAR 115.00" in r.text
    r = c.post(f"/billing/invoices/{invoice['invoice_id']}/credit", data={"line": invoice["lines"][1], "amount": "abc", "reason": "Goodwill"})
    assert r.status_code == 422 and "not an amount" in r.text
    assert _count(factory, CreditNote) == 0
    r = c.post(f"/billing/invoices/{invoice['invoice_id']}/credit", data={"line": invoice["lines"][1], "amount": "57.50", "reason": "Goodwill"}, follow_redirects=True)
    assert r.status_code == 200 and "CN-2026-00000001" in r.text
    assert _count(factory, CreditNote) == 1


def test_a_claim_with_evidence_is_raised_upheld_and_shows_on_the_statement(client_as, invoice, factory):  # type: ignore[no-untyped-def]
    c = client_as("billing_analyst")
    r = c.post(f"/billing/invoices/{invoice['invoice_id']}/claims", data={f"dispute_{invoice['lines'][1]}": "115.00", "reason": "Router returned", "channel": "email"},
               files={"evidence": ("waybill.txt", b"waybill 123", "text/plain")}, follow_redirects=True)
    assert r.status_code == 200 and "Router returned" in r.text and "waybill.txt" in r.text
    with factory() as s:
        claim = s.execute(select(BillingClaim)).scalar_one()
        att = s.execute(select(ClaimAttachment.id)).scalar_one()
    assert c.get(f"/billing/claims/attachments/{att}").content == b"waybill 123"
    st = c.get(f"/billing/accounts/{invoice['account_id']}/statement")
    assert st.status_code == 200 and "Disputed (held from dunning)" in st.text and "115.00" in st.text
    panel = c.get(f"/accounts/{invoice['account_id']}/panel/invoices-claims")
    assert "Claim {}".format(claim.id) in panel.text
    r = c.post(f"/billing/claims/{claim.id}/transition", data={"action": "uphold", "reason": "", "version": claim.version})
    assert r.status_code == 422 and "say why" in r.text
    r = c.post(f"/billing/claims/{claim.id}/transition", data={"action": "uphold", "reason": "Waybill confirms", "version": claim.version}, follow_redirects=True)
    assert r.status_code == 200 and "upheld" in r.text
    st = c.get(f"/billing/accounts/{invoice['account_id']}/statement")
    assert "Credit note CN-2026-00000001" in st.text
    pdf = c.get(f"/billing/accounts/{invoice['account_id']}/statement", params={"format": "pdf"})
    assert pdf.content.startswith(b"%PDF")


def test_a_claim_for_more_than_the_line_is_refused_on_the_page(client_as, invoice, factory):  # type: ignore[no-untyped-def]
    c = client_as("second_line_agent")
    r = c.post(f"/billing/invoices/{invoice['invoice_id']}/claims", data={f"dispute_{invoice['lines'][1]}": "116.00", "reason": "x", "channel": "phone"})
    assert r.status_code == 409 and "cannot be disputed" in r.text
    assert _count(factory, BillingClaim) == 0


def test_uploading_a_usage_file_shows_the_report_with_line_numbers(client_as, invoice, factory):  # type: ignore[no-untyped-def]
    c = client_as("billing_analyst")
    body = ("external_id,msisdn,usage_type,started_at,quantity\n"
            "w1,27825550000,data_mb,2026-11-02T10:00:00+02:00,1200\n"
            "w2,27820000001,data_mb,2026-11-02T10:00:00+02:00,5\n")
    r = c.post("/billing/usage", files={"file": ("nov.csv", body.encode(), "text/csv")})
    assert r.status_code == 200 and "Loaded &amp; rated" in r.text
    assert "no subscriber with MSISDN 27820000001" in r.text and "<td>3</td>" in r.text
    assert _count(factory, UsageRecord) == 1 and _count(factory, UsageRejected) == 1
    r = c.post("/billing/usage", files={"file": ("bad.csv", b"a,b\n", "text/csv")})
    assert r.status_code == 422 and "lacks the column" in r.text
