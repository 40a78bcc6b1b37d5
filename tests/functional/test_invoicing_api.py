"""TMF678 customerBill / appliedCustomerBillingRate over HTTP, invoice PDF, e-mail delivery via a real SMTP server, exports."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from conftest import NOW, free_port, run_schemathesis, TMF_SPECS
from opsline.billing.invoicing.models import InvoiceDelivery, InvoiceDocument
from opsline.billing.invoicing.samples import make_account, make_finalised_invoice
from opsline.billing.models import Invoice
from opsline.notifications.models import Message, MessageAttachment
from opsline.billing.models import InvoiceLine as InvoiceLineModel

BILL = "/tmf-api/customerBillManagement/v4/customerBill"
RATE = "/tmf-api/customerBillManagement/v4/appliedCustomerBillingRate"


@pytest.fixture
def invoice(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        acc = make_account(s, now=NOW, name="Mokoena Logistics (Pty) Ltd", email="accounts@mokoena.test", kind="b2b")
        inv = make_finalised_invoice(s, account_id=acc, now=NOW, period_start=date(2026, 11, 1), period_end=date(2026, 12, 1), number="INV-2026-00000042", lines=[
            {"description": "Business fibre 200/200", "amount_minor": 150000, "explanation": "Monthly subscription, 1 Nov to 30 Nov"},
            {"description": "Static IP", "amount_minor": 9900},
        ])
    return {"account_id": acc, "invoice_id": inv}


def _api(app, headers):  # type: ignore[no-untyped-def]
    c = TestClient(app)
    c.headers.update(headers)
    return c


def test_a_system_lists_and_reads_customer_bills_in_tmf678_shape(app, api_token, invoice):  # type: ignore[no-untyped-def]
    c = _api(app, api_token("billing_analyst"))
    r = c.get(BILL, params={"billingAccount.id": invoice["account_id"]})
    assert r.status_code == 200 and r.headers["X-Result-Count"] == "1" and r.headers["X-Total-Count"] == "1"
    bill = r.json()[0]
    assert bill["billNo"] == "INV-2026-00000042" and bill["state"] == "new" and bill["@type"] == "CustomerBill"
    assert bill["taxIncludedAmount"] == {"unit": "ZAR", "value": 1838.85}
    assert bill["taxExcludedAmount"]["value"] == 1599.0
    assert bill["taxItem"] == [{"taxCategory": "VAT15", "taxRate": 0.15, "taxAmount": {"unit": "ZAR", "value": 239.85}}]
    assert c.get(f"{BILL}/{invoice['invoice_id']}").json()["billingAccount"]["id"] == str(invoice["account_id"])
    assert c.get(BILL, params={"state": "settled"}).json() == []
    lines = c.get(RATE, params={"bill.id": invoice["invoice_id"]}).json()
    assert [ln["name"] for ln in lines] == ["Business fibre 200/200", "Static IP"]
    first = lines[0]
    assert first["appliedTax"][0]["taxAmount"] == {"unit": "ZAR", "value": 225.0}
    assert first["bill"]["id"] == str(invoice["invoice_id"]) and first["periodCoverage"]["startDateTime"].startswith("2026-11-01")
    assert {"name": "explanation", "value": "Monthly subscription, 1 Nov to 30 Nov"} in first["characteristic"]
    assert c.get(f"{RATE}/{first['id']}").json()["taxIncludedAmount"]["value"] == 1725.0


def test_patching_a_bill_puts_it_on_hold_and_refuses_settling_with_a_problem(app, api_token, invoice, factory):  # type: ignore[no-untyped-def]
    c = _api(app, api_token("billing_analyst"))
    r = c.patch(f"{BILL}/{invoice['invoice_id']}", json={"state": "onHold"})
    assert r.status_code == 200 and r.json()["state"] == "onHold"
    r = c.patch(f"{BILL}/{invoice['invoice_id']}", json={"state": "validated"})
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    assert "'to:validated' is not allowed" in r.json()["detail"] or "not allowed" in r.json()["detail"]
    r = c.patch(f"{BILL}/{invoice['invoice_id']}", json={"state": "settled"})
    assert r.status_code == 400
    with factory() as s:
        assert s.get(Invoice, invoice["invoice_id"]).state == "onHold"


def test_a_second_line_agent_may_read_bills_but_not_change_them(app, api_token, invoice):  # type: ignore[no-untyped-def]
    c = _api(app, api_token("second_line_agent"))
    assert c.get(BILL).status_code == 200
    assert c.patch(f"{BILL}/{invoice['invoice_id']}", json={"state": "onHold"}).status_code == 403


def test_tmf678_endpoints_conform_to_their_openapi_schema(app, api_token, invoice):  # type: ignore[no-untyped-def]
    n = run_schemathesis(app, api_token("admin"), r"^/tmf-api/customerBillManagement/", max_examples=8)
    assert n >= 6  # customerBill list/get/patch/document, appliedCustomerBillingRate list/get (+ the hub)


TMF678 = str(TMF_SPECS / "TMF678-CustomerBill-v4.0.0.swagger.json")


def test_customer_bills_and_billing_rates_validate_against_the_official_tmf678_document(app, api_token, invoice, factory):  # type: ignore[no-untyped-def]
    from opsline.api.tmf_spec import list_path, resource_validator

    assert list_path(TMF678, "customerBill") == BILL and list_path(TMF678, "appliedCustomerBillingRate") == RATE
    c = _api(app, api_token("billing_analyst"))
    bills = c.get(BILL).json()
    assert bills and resource_validator(TMF678, "CustomerBill")(bills) == []
    assert resource_validator(TMF678, "CustomerBill")(c.get(f"{BILL}/{invoice['invoice_id']}").json()) == []
    rates = c.get(RATE, params={"bill.id": invoice["invoice_id"]}).json()
    assert rates and resource_validator(TMF678, "AppliedCustomerBillingRate")(rates) == []
    with factory.begin() as s:  # a paid invoice is "settled" in TMF678 terms (the lifecycle calls it paid)
        s.get(Invoice, invoice["invoice_id"]).state = "paid"
    paid = c.get(BILL, params={"state": "settled"}).json()
    assert [b["id"] for b in paid] == [str(invoice["invoice_id"])] and paid[0]["state"] == "settled"
    assert resource_validator(TMF678, "CustomerBill")(paid) == []


def test_the_invoice_pdf_is_rendered_once_and_served(app, client_as, invoice, factory):  # type: ignore[no-untyped-def]
    c = client_as("billing_analyst")
    r = c.get(f"/billing/invoices/{invoice['invoice_id']}/pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF") and len(r.content) > 5000
    assert b"/Title (Tax Invoice INV-2026-00000042)" in _pdf_objects(r.content)
    again = c.get(f"/billing/invoices/{invoice['invoice_id']}/pdf")
    assert again.content == r.content
    with factory() as s:
        assert s.execute(select(func.count()).select_from(InvoiceDocument)).scalar_one() == 1


def test_the_tax_invoice_template_carries_what_sa_vat_requires(factory, invoice):  # type: ignore[no-untyped-def]
    from opsline.billing.invoicing.documents import _env, invoice_context

    with factory() as s:
        html = _env.get_template("invoice.html").render(**invoice_context(s, invoice_id=invoice["invoice_id"]))
    for needle in ("Tax Invoice", "Opsline Demo ISP (Pty) Ltd", "VAT no. 4123456789", "Customer VAT no. 4999999999", "INV-2026-00000042", "Due date",
                   "Balance brought forward", "Amount due", "Reference: <strong>", "VAT 15% (15.00%)", "Monthly subscription, 1 Nov to 30 Nov"):
        assert needle in html, needle


def _pdf_objects(pdf: bytes) -> bytes:
    """The PDF with its compressed object streams inflated (no pdftotext/pypdf here): enough to find the document title."""
    import re
    import zlib

    out = [pdf]
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            out.append(zlib.decompress(m.group(1)))
        except zlib.error:
            pass
    return b"".join(out)


class _Sink:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(envelope)
        return "250 OK"


def test_the_email_job_sends_the_invoice_once_through_notifications_over_smtp_and_marks_it_sent(factory, invoice, monkeypatch):  # type: ignore[no-untyped-def]
    from aiosmtpd.controller import Controller

    from opsline.config import get_settings
    from opsline.core import jobs
    from opsline.jobs_registry import build_registry

    sink = _Sink()
    port = free_port()
    ctl = Controller(sink, hostname="127.0.0.1", port=port)
    ctl.start()
    monkeypatch.setenv("OPSLINE_SMTP_PORT", str(port))
    get_settings.cache_clear()
    try:
        with factory.begin() as s:
            for kind in ("invoicing.render_pdf", "invoicing.email_invoice"):
                jobs.enqueue(s, kind=kind, payload={"invoice_id": invoice["invoice_id"]}, now=NOW, idempotency_key=f"{kind}:{invoice['invoice_id']}")
            jobs.enqueue(s, kind="invoicing.email_invoice", payload={"invoice_id": invoice["invoice_id"]}, now=NOW, idempotency_key="again")
        worker = jobs.Worker(factory, build_registry(), worker_id="t", clock=lambda: NOW)
        assert worker.drain() == 4  # render, email (queues one notification), the repeat (skipped), the delivery
    finally:
        ctl.stop()
        get_settings.cache_clear()
    assert len(sink.messages) == 1
    msg = sink.messages[0]
    assert msg.rcpt_tos == ["accounts@mokoena.test"]
    assert b"Tax invoice INV-2026-00000042" in msg.content and b"application/pdf" in msg.content
    with factory() as s:
        assert s.get(Invoice, invoice["invoice_id"]).state == "sent"
        assert s.execute(select(func.count()).select_from(InvoiceDelivery)).scalar_one() == 1
        msg_row = s.execute(select(Message)).scalar_one()
        assert (msg_row.event, msg_row.category, msg_row.state, msg_row.subject_ref) == ("invoice.issued", "billing", "sent", f"invoice:{invoice['invoice_id']}")
        att = s.execute(select(MessageAttachment)).scalar_one()
        assert (att.ref_table, att.ref_column, att.data) == ("invoice_document", "content", None)
        states = s.execute(select(jobs.Job.state)).scalars().all()
    assert set(states) == {"done"}


def test_invoice_and_line_exports_in_csv_and_xlsx(client_as, invoice):  # type: ignore[no-untyped-def]
    c = client_as("billing_analyst")
    r = c.get("/billing/invoices/export.csv", params={"account": invoice["account_id"]})
    assert r.status_code == 200
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["number", "account_number", "account_name"] and rows[1][0] == "INV-2026-00000042" and rows[1][-1] == "1838.85"
    r = c.get("/billing/invoices/export.xlsx")
    assert r.status_code == 200 and r.content[:2] == b"PK"
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        assert "INV-2026-00000042" in z.read("xl/sharedStrings.xml").decode()
    r = c.get(f"/billing/invoices/{invoice['invoice_id']}/lines.csv")
    lines = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [ln[3] for ln in lines[1:]] == ["Business fibre 200/200", "Static IP"] and lines[1][-1] == "Monthly subscription, 1 Nov to 30 Nov"
    r = c.get(f"/billing/invoices/{invoice['invoice_id']}/lines.xlsx")
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        assert "Static IP" in z.read("xl/sharedStrings.xml").decode()
    assert c.get("/billing/invoices/export.pdf").status_code == 422


def test_a_held_invoice_is_not_emailed_until_released_and_a_rejected_claim_is_explained_by_email(factory, invoice, monkeypatch):  # type: ignore[no-untyped-def]
    from aiosmtpd.controller import Controller

    from opsline.billing.invoicing import service
    from opsline.config import get_settings
    from opsline.core import jobs
    from opsline.core.events import Actor
    from opsline.core.money import Money
    from opsline.jobs_registry import build_registry

    actor = Actor(name="billing", roles=frozenset({"billing_analyst"}))
    sink = _Sink()
    port = free_port()
    ctl = Controller(sink, hostname="127.0.0.1", port=port)
    ctl.start()
    monkeypatch.setenv("OPSLINE_SMTP_PORT", str(port))
    get_settings.cache_clear()
    worker = jobs.Worker(factory, build_registry(), worker_id="t", clock=lambda: NOW)
    try:
        with factory.begin() as s:
            service.transition(s, invoice_id=invoice["invoice_id"], action="hold", now=NOW, actor=actor, manual=True)
            jobs.enqueue(s, kind="invoicing.email_invoice", payload={"invoice_id": invoice["invoice_id"]}, now=NOW, idempotency_key="first")
        worker.drain()
        assert sink.messages == []
        with factory.begin() as s:
            service.transition(s, invoice_id=invoice["invoice_id"], action="release", now=NOW, actor=actor, manual=True)
            line = s.execute(select(InvoiceLineModel.id).where(InvoiceLineModel.invoice_id == invoice["invoice_id"]).order_by(InvoiceLineModel.id)).scalars().first()
            claim = service.raise_claim(s, invoice_id=invoice["invoice_id"], lines=[(line, Money.of("100", "ZAR"))], reason="Slow", channel="phone", now=NOW, actor=actor)
            service.transition_claim(s, claim_id=claim.id, action="reject", reason="Speed tests at the FNO were within contract", now=NOW, actor=actor)
        worker.drain()
    finally:
        ctl.stop()
        get_settings.cache_clear()
    subjects = sorted(m.content.split(b"Subject: ")[1].split(b"\r\n")[0] for m in sink.messages)
    assert subjects == [b"Tax invoice INV-2026-00000042 from Opsline Demo ISP (Pty) Ltd", b"Your billing query 1 on invoice INV-2026-00000042: not upheld"]
    assert b"Speed tests at the FNO were within contract" in next(m.content for m in sink.messages if b"billing query" in m.content)


def test_an_account_that_opted_out_of_billing_email_gets_no_invoice_email_and_the_job_does_not_retry(factory, invoice):  # type: ignore[no-untyped-def]
    from opsline.billing.invoicing import documents
    from opsline.core.events import Actor
    from opsline.notifications.contacts import set_preference

    with factory.begin() as s:
        set_preference(s, account_id=invoice["account_id"], channel="email", category="billing", opted_out=True, now=NOW, actor=Actor.system("test"))
    with factory.begin() as s:
        out = documents.email_invoice(s, invoice_id=invoice["invoice_id"], now=NOW, actor=Actor.system("invoice-mailer"))
    assert out == {"skipped": "the account opted out of billing email"}
    with factory() as s:
        assert s.execute(select(func.count()).select_from(Message)).scalar_one() == 0
        assert s.execute(select(func.count()).select_from(InvoiceDelivery)).scalar_one() == 0
        assert s.get(Invoice, invoice["invoice_id"]).state == "new"
