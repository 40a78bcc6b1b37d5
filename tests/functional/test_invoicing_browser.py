"""A billing analyst's journey in headless Chromium: invoices desk → invoice detail → PDF link → claims."""

import pytest

from conftest import sign_in

pytestmark = pytest.mark.browser


def test_a_billing_analyst_opens_an_invoice_from_the_desk_and_sees_why_each_line_was_charged(page):  # type: ignore[no-untyped-def]
    sign_in(page, "billing")
    page.click("text=Invoices")
    page.wait_for_url("**/billing/invoices")
    page.locator("table a[href^='/billing/invoices/']", has_text="INV-").first.click()  # a finalised one (drafts have no PDF yet)
    page.wait_for_load_state("networkidle")
    assert page.locator("h2", has_text="why was I charged this").is_visible()
    assert page.locator("a.button", has_text="PDF").is_visible()
    page.goto("/billing/claims?open=0")
    assert page.locator("h1", has_text="Billing claims").is_visible()
    assert page.locator("td a[href^='/billing/claims/']").count() >= 1
