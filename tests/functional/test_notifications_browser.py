"""A service manager signs off a held message and edits a template with a live preview, in a real browser."""

from __future__ import annotations

import re

import pytest
from conftest import sign_in
from playwright.sync_api import expect


@pytest.mark.browser
def test_a_service_manager_approves_a_held_message_and_previews_a_template_edit(page):
    sign_in(page, "service")
    page.goto("/notifications/approvals")
    first = page.locator("section.card[id^=approval-]").first
    body = first.locator("pre").inner_text()
    first.locator("text=Approve and send").click()
    page.wait_for_load_state("networkidle")
    assert "Done: approved" in page.locator(".flash.ok").inner_text()

    page.goto("/notifications/templates?event=case.acknowledged")
    page.locator("table a", has_text="case.acknowledged").first.click()
    page.wait_for_load_state("networkidle")
    assert "CS-000123" in page.locator("#preview-body").inner_text()
    page.fill("#body", "Hello {{ account.name }}, your reference is {{ reference }}.")
    page.click("#preview-button")
    expect(page.locator("#preview-body")).to_have_text(re.compile(r"^Hello"))  # no string evaluation: the CSP forbids eval
    assert page.locator("#preview-body").inner_text() == "Hello Thandi Nkosi, your reference is CS-000123."
    page.fill("#body", "Hello {{ nobody }}")
    page.click("#preview-button")
    page.wait_for_selector("#preview-error")
    assert "'nobody' is undefined" in page.locator("#preview-error").inner_text()
    page.fill("#body", "Hello {{ account.name }}, ref {{ reference }}.")
    page.click("#template-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.locator(".flash.ok").inner_text() == "Saved."
    assert body  # the approved message had text
