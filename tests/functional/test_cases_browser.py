"""A second-line agent works a case in a real browser."""

from __future__ import annotations

import pytest
from conftest import sign_in


@pytest.mark.browser
def test_an_agent_opens_a_case_from_the_work_queue_adds_a_note_and_sees_it_in_the_timeline(page):
    sign_in(page, "support")
    page.goto("/cases")
    assert page.locator("nav.tabs a.active").inner_text().startswith("My cases")
    page.click("nav.tabs >> text=All open")
    page.locator("#case-rows tbody tr td:first-child a").first.click()
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").inner_text().startswith("CS")
    page.fill("#note-body", "Called the customer; FNO technician booked for Thursday.")
    page.click("#note-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "FNO technician booked for Thursday" in page.locator("#case-timeline").inner_text()
