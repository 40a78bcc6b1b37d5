"""The customer portal over HTTP on a real database: sign-in (lockout, verification, reset, SMS code, sign-out),
isolation between customers, invoices and their PDF, billing claims, cancellation with a collection slot, cases,
contact details and preferences, B2B invitations, and the staff account page showing what the customer did."""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from opsline.billing.invoicing.samples import make_account, make_finalised_invoice
from opsline.billing.models import InvoiceLine
from opsline.cancellations.models import CancellationJourney
from opsline.catalog.models import ProductOffering
from opsline.core.events import Actor, AuditEvent
from opsline.customers.models import Account, Memo, Site
from opsline.inventory import service as inventory
from opsline.inventory.models import Product
from opsline.logistics.models import Collection
from opsline.notifications.models import Message
from opsline.portal import auth
from opsline.portal.models import PortalSession, PortalToken

PASSWORD = "correct horse battery"
SYSTEM = Actor.system("test")


def build_customer(s, now, *, name: str = "Thabo Nkosi", email: str = "thabo@example.test", login: str = "thabo@portal.test",
                   kind: str = "retail", role: str = "holder", verified: bool = True, sms: bool = False) -> dict:
    """An account with a site, a live fibre line with a loaned router, a finalised invoice of two lines, and a login."""
    acc = make_account(s, now=now, name=name, email=email, kind=kind)
    account = s.get(Account, acc)
    site = Site(account_id=acc, label="Home", line1="12 Jacaranda Street", suburb="Melville", city="Johannesburg", postal_code="2092",
                country="ZA", fno_coverage=["openserve"], created_at=now)
    s.add(site)
    s.flush()
    fibre = s.execute(select(ProductOffering).where(ProductOffering.partner_code == "openserve", ProductOffering.kind == "fibre")
                      .order_by(ProductOffering.id).limit(1)).scalar_one()
    product = Product(account_id=acc, offering_id=fibre.id, site_id=site.id, state="active", start_date=now.date() - timedelta(days=400),
                      partner_code="openserve", partner_line_ref=f"OPE-LINE-{acc}", created_at=now, updated_at=now)
    s.add(product)
    s.flush()
    router_offering = s.execute(select(ProductOffering).where(ProductOffering.code == "EQ-ROUTER-AX1800")).scalar_one()
    router = inventory.assign_equipment(s, account_id=acc, product_id=product.id, equipment_offering=router_offering, owner="isp_loaned",
                                        now=now, actor=SYSTEM, install=True)
    inv = make_finalised_invoice(s, account_id=acc, now=now - timedelta(days=5), period_start=date(2026, 11, 1), period_end=date(2026, 12, 1),
                                 lines=[{"description": "Fibre 100/50", "amount_minor": 60_000}, {"description": "Router rental", "amount_minor": 10_000}])
    lines = s.execute(select(InvoiceLine.id, InvoiceLine.total_minor).where(InvoiceLine.invoice_id == inv).order_by(InvoiceLine.id)).all()
    user = auth.create_user(s, email=login, full_name=name, party_id=account.party_id, role=role, now=now, actor=SYSTEM, password=PASSWORD,
                            verified=verified, phone="+27821234567" if sms else None, sms_code=sms)
    return {"account_id": acc, "number": account.account_number, "party_id": account.party_id, "product_id": product.id, "router_id": router.id,
            "invoice_id": inv, "lines": [(r.id, r.total_minor) for r in lines], "login": login, "user_id": user.id}


def portal_login(client: TestClient, email: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    client.get("/portal/login")
    token = client.cookies.get("opsline_portal_form", path="/portal") or ""
    return client.post("/portal/login", data={"email": email, "password": password, "csrf_token": token}, follow_redirects=False)


def csrf(page_text: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', page_text)
    assert m, "no CSRF token on the page"
    return m.group(1)


def signed_in(app, who: dict) -> TestClient:  # type: ignore[no-untyped-def]
    c = TestClient(app)
    r = portal_login(c, who["login"])
    assert r.status_code == 303, r.text
    c.csrf = csrf(c.get(f"/portal/accounts/{who['number']}").text)  # type: ignore[attr-defined]
    return c


@pytest.fixture
def two(factory, now):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = build_customer(s, now)
        b = build_customer(s, now, name="Naledi Mokoena", email="naledi@example.test", login="naledi@portal.test")
    return a, b


def _count(factory, model, *where) -> int:  # type: ignore[no-untyped-def]
    with factory() as s:
        return int(s.execute(select(func.count()).select_from(model).where(*where)).scalar_one())


# --- sign-in and sessions -------------------------------------------------------------------------------------
def test_a_customer_signs_in_sees_their_account_and_signing_out_revokes_the_session(app, factory, two):
    a, _ = two
    c = TestClient(app)
    r = portal_login(c, a["login"])
    assert r.status_code == 303 and r.headers["location"] == "/portal"
    cookie = c.cookies.get(auth.COOKIE_NAME, path="/portal")
    page = c.get(f"/portal/accounts/{a['number']}")
    assert page.status_code == 200 and "Thabo Nkosi" in page.text and "Fibre 100/50" not in page.text
    assert a["number"] in page.text and "How to pay" in page.text
    r = c.post("/portal/logout", data={"csrf_token": csrf(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    replay = TestClient(app)
    replay.cookies.set(auth.COOKIE_NAME, cookie, path="/portal")
    assert replay.get(f"/portal/accounts/{a['number']}").status_code == 401  # the old cookie is dead server-side
    with factory() as s:
        assert s.execute(select(PortalSession.revoked_at).where(PortalSession.user_id == a["user_id"])).scalar_one() is not None


def test_a_portal_form_without_the_session_csrf_token_is_refused(app, two):
    a, _ = two
    c = signed_in(app, a)
    r = c.post(f"/portal/accounts/{a['number']}/cases", data={"category_code": "billing_account", "subject": "x"})
    assert r.status_code == 403


def test_brute_force_sign_ins_are_locked_out_even_with_the_right_password_and_audited(app, factory, two):
    a, _ = two
    c = TestClient(app)
    for _ in range(5):
        assert portal_login(c, a["login"], "wrong password!").status_code == 401
    r = portal_login(c, a["login"])  # the right password, but locked out
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert auth.COOKIE_NAME not in c.cookies
    assert _count(factory, AuditEvent, AuditEvent.action == "sign_in_failed", AuditEvent.entity_id == str(a["user_id"])) == 5


def test_an_unverified_login_is_refused_until_the_emailed_link_is_used_once(app, factory, now):
    with factory.begin() as s:
        who = build_customer(s, now, verified=False)
        auth.send_verification(s, user_id=who["user_id"], link_base="http://testserver", now=now, actor=SYSTEM)
    c = TestClient(app)
    r = portal_login(c, who["login"])
    assert r.status_code == 401 and "confirm your email" in r.text
    with factory() as s:
        body = s.execute(select(Message.body).where(Message.event == "portal.verify_email")).scalar_one()
    link = re.search(r"http://testserver(/portal/verify/\S+)", body).group(1)
    assert c.get(link).status_code == 200
    assert c.get(link).status_code == 410  # single use
    assert portal_login(c, who["login"]).status_code == 303


def test_a_reset_link_sets_a_new_password_once_and_an_expired_one_is_refused(app, factory, clock, two):
    a, _ = two
    c = TestClient(app)
    c.get("/portal/reset")
    form = c.cookies.get("opsline_portal_form", path="/portal")
    r = c.post("/portal/reset", data={"email": a["login"], "csrf_token": form})
    assert r.status_code == 200 and "If that address has a self-service login" in r.text
    r = c.post("/portal/reset", data={"email": "nobody@portal.test", "csrf_token": csrf(r.text)})
    assert r.status_code == 200 and "If that address has a self-service login" in r.text  # the same answer: no address probing
    with factory() as s:
        bodies = s.execute(select(Message.body, Message.to_addr).where(Message.event == "portal.password_reset")).all()
    assert [b.to_addr for b in bodies] == [a["login"]]
    link = re.search(r"http://testserver(/portal/reset/\S+)", bodies[0].body).group(1)
    page = c.get(link)
    assert page.status_code == 200
    r = c.post(link, data={"password": "a brand new secret", "confirm": "a brand new secret", "csrf_token": csrf(page.text)})
    assert r.status_code == 200 and "Your password is set" in r.text
    r = c.post(link, data={"password": "another new secret", "confirm": "another new secret", "csrf_token": csrf(r.text)})
    assert r.status_code == 410  # used
    assert portal_login(TestClient(app), a["login"], "a brand new secret").status_code == 303
    # an expired link: asked for, then used two hours later
    with factory.begin() as s:
        auth.request_reset(s, email=a["login"], link_base="http://testserver", now=clock.at, ip="1.2.3.4")
        body = s.execute(select(Message.body).where(Message.event == "portal.password_reset").order_by(Message.id.desc()).limit(1)).scalar_one()
    late = re.search(r"http://testserver(/portal/reset/\S+)", body).group(1)
    clock.at = clock.at + timedelta(hours=2)
    assert c.get(late).status_code == 410
    r = c.post(late, data={"password": "too late secret", "confirm": "too late secret", "csrf_token": form or "x"})
    assert r.status_code in (403, 410)
    assert portal_login(TestClient(app), a["login"], "a brand new secret").status_code == 303  # unchanged


def test_with_the_sms_code_on_the_session_is_usable_only_after_the_code(app, factory, now):
    with factory.begin() as s:
        who = build_customer(s, now, sms=True)
    c = TestClient(app)
    r = portal_login(c, who["login"])
    assert r.headers["location"] == "/portal/code"
    assert c.get(f"/portal/accounts/{who['number']}").status_code == 401  # not yet
    with factory() as s:
        sms = s.execute(select(Message.channel, Message.to_addr, Message.body).where(Message.event == "portal.sign_in_code")).one()
    assert sms.channel == "sms" and sms.to_addr == "+27821234567"
    code = re.search(r"\b(\d{6})\b", sms.body).group(1)
    page = c.get("/portal/code")
    wrong = "000000" if code != "000000" else "111111"
    r = c.post("/portal/code", data={"code": wrong, "csrf_token": csrf(page.text)})
    assert r.status_code == 401
    r = c.post("/portal/code", data={"code": code, "csrf_token": csrf(r.text)}, follow_redirects=False)
    assert r.status_code == 303
    assert c.get(f"/portal/accounts/{who['number']}").status_code == 200


# --- isolation --------------------------------------------------------------------------------------------------
def test_another_customers_invoice_or_account_url_is_404_and_logged(app, factory, two, caplog):
    a, b = two
    c = signed_in(app, a)
    with caplog.at_level(logging.WARNING, logger="opsline.portal"):
        assert c.get(f"/portal/accounts/{b['number']}").status_code == 404
        assert c.get(f"/portal/accounts/{a['number']}/invoices/{b['invoice_id']}").status_code == 404
        assert c.get(f"/portal/accounts/{a['number']}/invoices/{b['invoice_id']}/pdf").status_code == 404
        assert c.get(f"/portal/accounts/{b['number']}/invoices/{b['invoice_id']}/pdf").status_code == 404
        r = c.post(f"/portal/accounts/{a['number']}/invoices/{b['invoice_id']}/claim",
                   data={"line_id": b["lines"][0][0], "amount": "10", "reason": "not mine", "csrf_token": c.csrf})
        assert r.status_code == 404
    assert sum("refused with 404" in m for m in caplog.messages) == 5
    with factory() as s:
        refused = s.execute(select(AuditEvent.actor, AuditEvent.after).where(AuditEvent.action == "access_refused")).all()
        assert len(refused) == 5 and all(r.actor == f"customer:{a['login']}" for r in refused)
        assert str(b["invoice_id"]) in refused[1].after["url"]
    assert _count(factory, Memo, Memo.account_id == b["account_id"]) == 0


def test_a_staff_session_does_not_reach_the_portal(app, two, client_as):
    a, _ = two
    staff = client_as("admin")
    assert staff.get(f"/portal/accounts/{a['number']}").status_code == 401
    assert staff.get("/portal").status_code == 401


def test_a_customer_session_does_not_reach_staff_pages(app, two):
    a, _ = two
    c = signed_in(app, a)
    assert c.get(f"/accounts/{a['account_id']}").status_code == 401
    assert c.get("/desk").status_code in (401, 303)


# --- invoices, claims -------------------------------------------------------------------------------------------
def test_a_customer_downloads_their_invoice_pdf(app, two):
    a, _ = two
    c = signed_in(app, a)
    page = c.get(f"/portal/accounts/{a['number']}/invoices/{a['invoice_id']}")
    assert page.status_code == 200 and "Router rental" in page.text
    pdf = c.get(f"/portal/accounts/{a['number']}/invoices/{a['invoice_id']}/pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert "attachment" in pdf.headers["content-disposition"]


def test_a_claim_on_a_line_is_raised_memoed_and_emailed_and_one_above_the_line_is_refused(app, factory, two):
    a, _ = two
    c = signed_in(app, a)
    line_id, line_total = a["lines"][1]
    url = f"/portal/accounts/{a['number']}/invoices/{a['invoice_id']}/claim"
    too_much = f"{(line_total + 1) / 100:.2f}"
    r = c.post(url, data={"line_id": line_id, "amount": too_much, "reason": "charged twice", "csrf_token": c.csrf})
    assert r.status_code == 409 and "cannot be disputed" in r.text
    assert _count(factory, Memo, Memo.account_id == a["account_id"]) == 0
    r = c.post(url, data={"line_id": line_id, "amount": "50.00", "reason": "router was returned", "csrf_token": c.csrf})
    assert r.status_code == 200 and "is with us" in r.text
    with factory() as s:
        claim = s.execute(select(AuditEvent).where(AuditEvent.entity_type == "billing_claim", AuditEvent.action == "raised")).scalar_one()
        assert claim.actor == f"customer:{a['login']}" and claim.account_id == a["account_id"] and claim.after["disputed_minor"] == 5000
        memo = s.execute(select(Memo.body).where(Memo.account_id == a["account_id"])).scalar_one()
        assert "Self-service" in memo and "R 50.00" in memo
        msg = s.execute(select(Message.to_addr, Message.subject).where(Message.event == "portal.action")).one()
        assert msg.to_addr == a["login"] and "billing query" in msg.subject


# --- cancellation with a collection slot --------------------------------------------------------------------------
def test_cancellation_shows_dates_and_fee_then_books_a_collection_and_cannot_be_done_twice(app, factory, two):
    a, _ = two
    c = signed_in(app, a)
    url = f"/portal/accounts/{a['number']}/products/{a['product_id']}/cancel"
    page = c.get(url)
    assert page.status_code == 200
    assert re.search(r'id="effective-date">\d{4}-\d{2}-\d{2}<', page.text) and 'id="fee"' in page.text
    slot = re.search(r'name="slot_start" value="([^"]+)"', page.text).group(1)
    form = {"reason_code": "moving", "slot_start": slot, "address": "12 Jacaranda Street, Melville", "contact_phone": "0821234567", "csrf_token": c.csrf}
    r = c.post(url, data=form)
    assert r.status_code == 200 and "Courier collection COL-" in r.text, r.text[-2000:]
    with factory() as s:
        j = s.execute(select(CancellationJourney).where(CancellationJourney.product_id == a["product_id"])).scalar_one()
        assert j.channel == "portal" and j.effective_date is not None and j.created_by == f"customer:{a['login']}"
        col = s.execute(select(Collection).where(Collection.account_id == a["account_id"])).scalar_one()
        assert col.slot_start.isoformat() == datetime.fromisoformat(slot).isoformat() and col.reference == j.reference
    again = c.post(url, data=form)
    assert again.status_code == 409
    assert _count(factory, CancellationJourney, CancellationJourney.product_id == a["product_id"]) == 1
    assert _count(factory, Collection, Collection.account_id == a["account_id"]) == 1


# --- cases ----------------------------------------------------------------------------------------------------------
def test_a_customer_raises_a_complaint_sees_its_reference_and_due_dates_and_replies(app, factory, two):
    a, _ = two
    c = signed_in(app, a)
    r = c.post(f"/portal/accounts/{a['number']}/cases", data={"category_code": "complaint", "subject": "Line drops every evening",
                                                              "description": "Since Monday", "csrf_token": c.csrf}, follow_redirects=False)
    assert r.status_code == 303
    page = c.get(r.headers["location"])
    ref = re.search(r'id="case-reference">([^<]+)<', page.text).group(1)
    assert "Resolved by (ICASA)" in page.text
    r = c.post(f"/portal/accounts/{a['number']}/cases/{ref}/reply", data={"body": "Still dropping tonight", "csrf_token": c.csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert "Still dropping tonight" in c.get(f"/portal/accounts/{a['number']}/cases/{ref}").text
    with factory() as s:
        memos = s.execute(select(Memo.body).where(Memo.account_id == a["account_id"]).order_by(Memo.id)).scalars().all()
        assert any(ref in m for m in memos) and any("replied" in m for m in memos)
        ack = s.execute(select(Message.event).where(Message.account_id == a["account_id"], Message.event.like("case.%"))).scalars().all()
        assert ack  # the ICASA acknowledgement went through the cases area


# --- profile -----------------------------------------------------------------------------------------------------------
def test_contact_details_and_preferences_change_the_account_with_a_memo(app, factory, two):
    a, _ = two
    c = signed_in(app, a)
    r = c.post(f"/portal/accounts/{a['number']}/profile/contact", data={"email": "thabo.new@example.co.za", "phone": "0831112222", "csrf_token": c.csrf})
    assert r.status_code == 200, r.text
    allow = ["email:service", "sms:service", "email:billing", "sms:billing", "email:collections", "sms:collections", "email:marketing"]
    r = c.post(f"/portal/accounts/{a['number']}/profile/preferences", data={"allow": allow, "csrf_token": c.csrf})
    assert r.status_code == 200
    with factory() as s:
        acc = s.get(Account, a["account_id"])
        assert acc.email == "thabo.new@example.co.za"
        memos = " | ".join(s.execute(select(Memo.body).where(Memo.account_id == a["account_id"])).scalars())
        assert "thabo@example.test → thabo.new@example.co.za" in memos and "marketing by sms: off" in memos


# --- B2B --------------------------------------------------------------------------------------------------------------
def test_a_company_admin_invites_a_viewer_who_sees_the_accounts_but_cannot_raise_a_claim(app, factory, now):
    with factory.begin() as s:
        admin = build_customer(s, now, name="Acme Logistics", email="accounts@acme.test", login="admin@acme.test", kind="b2b", role="admin")
    c = signed_in(app, admin)
    page = c.get(f"/portal/company/{admin['party_id']}/users")
    assert page.status_code == 200
    r = c.post(f"/portal/company/{admin['party_id']}/users", data={"email": "viewer@acme.test", "full_name": "Vusi Viewer", "role": "viewer",
                                                                   "csrf_token": c.csrf})
    assert r.status_code == 200 and "invitation" in r.text
    with factory() as s:
        body = s.execute(select(Message.body).where(Message.event == "portal.invite")).scalar_one()
    link = re.search(r"http://testserver(/portal/invite/\S+)", body).group(1)
    v = TestClient(app)
    page = v.get(link)
    assert v.post(link, data={"password": "viewer password 1", "confirm": "viewer password 1", "csrf_token": csrf(page.text)}).status_code == 200
    assert portal_login(v, "viewer@acme.test", "viewer password 1").status_code == 303
    assert v.get(f"/portal/accounts/{admin['number']}").status_code == 200
    assert v.get(f"/portal/company/{admin['party_id']}/users").status_code == 404  # only the admin contact invites
    tok = csrf(v.get(f"/portal/accounts/{admin['number']}").text)
    r = v.post(f"/portal/accounts/{admin['number']}/invoices/{admin['invoice_id']}/claim",
               data={"line_id": admin["lines"][0][0], "amount": "1", "reason": "x", "csrf_token": tok})
    assert r.status_code == 404
    assert _count(factory, PortalToken, PortalToken.purpose == "invite", PortalToken.used_at.is_not(None)) == 1


# --- the messages arrive in a real SMTP sink ---------------------------------------------------------------------------
class _Sink:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
        self.messages.append((list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_sink(monkeypatch):  # type: ignore[no-untyped-def]
    import socket

    from aiosmtpd.controller import Controller

    from opsline.config import get_settings

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("OPSLINE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("OPSLINE_SMTP_PORT", str(port))
    get_settings.cache_clear()
    sink = _Sink()
    ctl = Controller(sink, hostname="127.0.0.1", port=port)
    ctl.start()
    yield sink
    ctl.stop()
    monkeypatch.undo()
    get_settings.cache_clear()


def test_the_claim_cancellation_collection_and_reset_emails_arrive_in_the_smtp_sink(app, factory, clock, two, smtp_sink):
    import email

    from opsline.core.jobs import Worker
    from opsline.jobs_registry import build_registry

    a, _ = two
    c = signed_in(app, a)
    c.post(f"/portal/accounts/{a['number']}/invoices/{a['invoice_id']}/claim",
           data={"line_id": a["lines"][0][0], "amount": "20", "reason": "speed was half", "csrf_token": c.csrf})
    url = f"/portal/accounts/{a['number']}/products/{a['product_id']}/cancel"
    slot = re.search(r'name="slot_start" value="([^"]+)"', c.get(url).text).group(1)
    r = c.post(url, data={"reason_code": "price", "slot_start": slot, "address": "12 Jacaranda Street", "contact_phone": "0821234567", "csrf_token": c.csrf})
    assert r.status_code == 200
    with factory.begin() as s:
        auth.request_reset(s, email=a["login"], link_base="http://testserver", now=clock.at, ip="127.0.0.1")
    Worker(factory, build_registry(), worker_id="mail", clock=clock).drain()
    got = [(rcpt, email.message_from_bytes(raw)["Subject"]) for rcpt, raw in smtp_sink.messages]
    subjects = " | ".join(s for _, s in got)
    assert (["thabo@portal.test"], f"We received your billing query on invoice {_invoice_number(factory, a)}") in got, subjects
    assert any(rcpt == ["thabo@portal.test"] and "Reset your" in s for rcpt, s in got), subjects
    # the cancellations and logistics areas tell the account's own address about the cancellation and the collection
    assert sum(rcpt == ["thabo@example.test"] for rcpt, _ in got) >= 2, got
    with factory() as s:
        on_timeline = s.execute(select(func.count()).select_from(AuditEvent).where(AuditEvent.account_id == a["account_id"],
                                                                                   AuditEvent.entity_type == "message")).scalar_one()
        assert on_timeline >= 4  # every message is on the staff account timeline too


def _invoice_number(factory, who: dict) -> str:  # type: ignore[no-untyped-def]
    from opsline.billing.models import Invoice

    with factory() as s:
        return s.get(Invoice, who["invoice_id"]).number


def test_a_browser_without_a_customer_session_is_sent_to_the_portal_sign_in(app, two):
    a, _ = two
    r = TestClient(app).get(f"/portal/accounts/{a['number']}", headers={"accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/portal/login"
    r = TestClient(app).get("/accounts", headers={"accept": "text/html"}, follow_redirects=False)
    assert r.headers["location"].startswith("/login")  # staff pages still go to the staff sign-in


def test_a_service_request_becomes_a_quote_with_a_memo_and_another_accounts_product_is_404(app, factory, two):
    from opsline.orders.models import Quote

    a, b = two
    c = signed_in(app, a)
    page = c.get(f"/portal/accounts/{a['number']}/request")
    assert page.status_code == 200
    offering = re.search(r'<option value="(\d+)">Openserve', page.text).group(1)  # the FNO whose network reaches the site
    site = re.search(r'<select id="site_id" name="site_id"><option value="">—</option><option value="(\d+)"', page.text).group(1)
    r = c.post(f"/portal/accounts/{a['number']}/request", data={"kind": "new", "offering_id": offering, "site_id": site, "note": "for the cottage",
                                                                "csrf_token": c.csrf})
    assert r.status_code == 200 and "priced as quote" in r.text, re.findall(r"p-error[^<]*", r.text)
    with factory() as s:
        quote = s.execute(select(Quote).where(Quote.account_id == a["account_id"])).scalar_one()
        assert quote.state == "inProgress" or quote.state  # priced, waiting for the sales desk
        created = s.execute(select(AuditEvent.actor).where(AuditEvent.entity_type == "quote", AuditEvent.entity_id == str(quote.id))).scalar_one()
        assert created == f"customer:{a['login']}"
        assert any("quote" in m for m in s.execute(select(Memo.body).where(Memo.account_id == a["account_id"])).scalars())
    r = c.post(f"/portal/accounts/{a['number']}/request", data={"kind": "upgrade", "product_id": b["product_id"], "offering_id": offering,
                                                                "csrf_token": c.csrf})
    assert r.status_code == 404
    assert _count(factory, Quote, Quote.account_id == b["account_id"]) == 0
    r = c.post(f"/portal/accounts/{a['number']}/request", data={"kind": "new", "csrf_token": c.csrf})
    assert r.status_code == 422 and "choose the service" in r.text


def test_a_b2b_user_sees_the_service_levels_page_and_not_another_companys_review(app, factory, now):
    with factory.begin() as s:
        admin = build_customer(s, now, name="Acme Logistics", email="accounts@acme.test", login="admin@acme.test", kind="b2b", role="admin")
    c = signed_in(app, admin)
    page = c.get(f"/portal/accounts/{admin['number']}/service")
    assert page.status_code == 200 and "Scorecard" in page.text and "Change requests" in page.text
    assert c.get(f"/portal/accounts/{admin['number']}/reviews/987654/pdf").status_code == 404


def test_the_staff_account_page_shows_the_logins_and_what_the_customer_did(app, two, client_as):
    a, _ = two
    c = signed_in(app, a)
    c.post(f"/portal/accounts/{a['number']}/invoices/{a['invoice_id']}/claim",
           data={"line_id": a["lines"][0][0], "amount": "5", "reason": "short month", "csrf_token": c.csrf})
    staff = client_as("second_line_agent")
    panel = staff.get(f"/accounts/{a['account_id']}/panel/portal")
    assert panel.status_code == 200
    assert a["login"] in panel.text and "billing claim raised" in panel.text and f"customer:{a['login']}" in panel.text
    page = staff.get(f"/accounts/{a['account_id']}")
    assert "Self-service (thabo@portal.test): raised billing claim" in page.text  # the memo


def test_reset_requests_beyond_three_an_hour_send_no_more_email_but_answer_the_same(app, factory, two):
    a, _ = two
    c = TestClient(app)
    r = c.get("/portal/reset")
    for _ in range(5):
        r = c.post("/portal/reset", data={"email": a["login"], "csrf_token": csrf(r.text)})
        assert r.status_code == 200 and "If that address has a self-service login" in r.text
    assert _count(factory, Message, Message.event == "portal.password_reset") == auth.LINKS_PER_HOUR
