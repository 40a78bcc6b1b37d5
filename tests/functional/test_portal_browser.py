"""The customer portal and the staff pages on a 390×844 phone in headless Chromium, on demo data: the demo customer
signs in, downloads an invoice, raises a claim, cancels with a collection slot and raises a case, each main page
screenshot and free of sideways scrolling; the staff account, case and list pages fit the same phone, and the staff
account page shows what the customer did."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from conftest import sign_in

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
WIDEST = """() => [...document.querySelectorAll('body *')].map(e => [e.getBoundingClientRect().right, e.tagName + '.' + e.className])
                 .filter(x => x[0] > 392).sort((a, b) => b[0] - a[0]).slice(0, 5)"""


@pytest.fixture
def phone(browser, live_server):  # type: ignore[no-untyped-def]
    ctx = browser.new_context(base_url=live_server["url"], viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, accept_downloads=True)
    pg = ctx.new_page()
    pg.set_default_timeout(15_000)
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.console_errors = errors  # type: ignore[attr-defined]
    yield pg
    ctx.close()


def fits(page, shots, name: str) -> None:  # type: ignore[no-untyped-def]
    """Screenshot the page and check it is no wider than the phone."""
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"], f"{name} ({page.url}) is {width} px wide on a {PHONE['width']} px phone; widest: {page.evaluate(WIDEST)}"


def portal_sign_in(page, email: str, password: str = "opsline-demo") -> None:  # type: ignore[no-untyped-def]
    page.goto("/portal/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def test_the_demo_customer_does_the_done_when_journey_on_a_phone(phone, live_server, tmp_path_factory):
    from opsline.portal.demo import CONSUMER_EMAIL

    shots = tmp_path_factory.mktemp("portal-phone")
    phone.goto("/portal/login")
    fits(phone, shots, "login")
    portal_sign_in(phone, CONSUMER_EMAIL)
    assert "/portal/accounts/" in phone.url, phone.url
    number = phone.url.rstrip("/").rsplit("/", 1)[1]
    fits(phone, shots, "account")

    # an invoice and its PDF
    phone.locator("a[href*='/invoices/']:not(.p-pdf)").first.click()
    phone.wait_for_load_state("networkidle")
    fits(phone, shots, "invoice")
    with phone.expect_download() as dl:
        phone.click("text=Download PDF")
    assert dl.value.suggested_filename.endswith(".pdf")

    # a claim on the first line, for one rand
    phone.locator("details summary", has_text="Query this line").first.click()
    form = phone.locator("form[action$='/claim']").first
    form.locator("input[name=amount]").fill("1.00")
    form.locator("textarea[name=reason]").fill("I was charged for a day without service")
    form.locator("button[type=submit]").click()
    phone.wait_for_load_state("networkidle")
    assert "is with us" in phone.locator(".p-notice").inner_text()
    fits(phone, shots, "invoice-claimed")

    phone.goto(f"/portal/accounts/{number}/statement")
    fits(phone, shots, "statement")

    # a case
    phone.goto(f"/portal/accounts/{number}/cases")
    fits(phone, shots, "cases")
    phone.select_option("#category_code", "complaint")
    phone.fill("#subject", "Slow in the evenings")
    phone.click("form[action$='/cases'] button[type=submit]")
    phone.wait_for_load_state("networkidle")
    reference = phone.locator("#case-reference").inner_text()
    fits(phone, shots, "case")

    phone.goto(f"/portal/accounts/{number}/profile")
    fits(phone, shots, "profile")
    phone.goto(f"/portal/accounts/{number}/request")
    fits(phone, shots, "request")

    # cancel the first cancellable product with the first free collection slot
    phone.goto(f"/portal/accounts/{number}")
    links = [a.get_attribute("href") for a in phone.locator("a.p-link", has_text="Cancel").all()]
    for href in links:  # the product with the loaned router (its page offers collection slots)
        phone.goto(href)
        if phone.locator("input[name=slot_start]").count():
            break
    assert re.match(r"\d{4}-\d{2}-\d{2}", phone.locator("#effective-date").inner_text())
    fits(phone, shots, "cancel")
    assert phone.locator("input[name=slot_start]").count() > 0, "no collection slot offered"
    phone.once("dialog", lambda d: d.accept())
    phone.click("button.p-danger")
    phone.wait_for_load_state("networkidle")
    notice = phone.locator(".p-msg").first.inner_text()
    assert "confirmed" in notice and "Courier collection COL-" in notice, notice
    fits(phone, shots, "account-after")
    assert phone.console_errors == []  # type: ignore[attr-defined]

    # the staff account page shows what the customer did
    from opsline.customers.models import Account
    from opsline.db.session import make_sessionmaker

    with make_sessionmaker(live_server["engine"])() as s:
        account_id = s.execute(select(Account.id).where(Account.account_number == number)).scalar_one()
    phone.context.clear_cookies()
    sign_in(phone, "admin")
    phone.goto(f"/accounts/{account_id}")
    text = phone.locator("main").inner_text()
    assert "Self-service" in text and "billing claim" in text and reference in text and "cancelled product" in text
    fits(phone, shots, "staff-account")
    assert len(list(shots.glob("*.png"))) >= 12


def test_the_staff_account_case_and_list_pages_fit_a_phone(phone, live_server, tmp_path_factory):
    from opsline.cases.models import SupportCase
    from opsline.db.session import make_sessionmaker

    shots = tmp_path_factory.mktemp("staff-phone")
    with make_sessionmaker(live_server["engine"])() as s:
        case_id, account_id = s.execute(select(SupportCase.id, SupportCase.account_id).where(SupportCase.account_id.is_not(None))
                                        .order_by(SupportCase.id).limit(1)).one()
    sign_in(phone, "admin")
    for name, url in (("accounts-list", "/accounts"), ("account", f"/accounts/{account_id}"), ("case", f"/cases/{case_id}")):
        phone.goto(url)
        phone.wait_for_load_state("networkidle")
        fits(phone, shots, name)


def test_a_b2b_admin_contact_sees_the_company_and_its_users_page_fits_a_phone(phone, tmp_path_factory):
    from opsline.portal.demo import B2B_EMAIL

    shots = tmp_path_factory.mktemp("b2b-phone")
    portal_sign_in(phone, B2B_EMAIL)
    assert "/portal" in phone.url
    phone.goto("/portal?all=1")
    fits(phone, shots, "b2b-home")
    phone.click("text=Your company's users")
    phone.wait_for_load_state("networkidle")
    assert "Invite someone" in phone.locator("main").inner_text()
    fits(phone, shots, "b2b-users")
    phone.goto("/portal?all=1")
    phone.locator(".p-card a").first.click()
    phone.wait_for_load_state("networkidle")
    fits(phone, shots, "b2b-account")
    phone.click("nav.p-tabs >> text=Service levels")
    phone.wait_for_load_state("networkidle")
    assert "Scorecard" in phone.locator("main").inner_text()
    fits(phone, shots, "b2b-service-levels")
