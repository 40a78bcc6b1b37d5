"""A cancellations coordinator works a journey in a real browser: the board and day plan, a retention offer declined,
the date, penalty and CPA notice shown before confirming, and the FNO order sent on confirmation."""

from __future__ import annotations

import re

import pytest
from conftest import sign_in
from playwright.sync_api import expect


@pytest.mark.browser
def test_a_coordinator_declines_retention_sees_the_penalty_and_confirms_the_cancellation(page):
    sign_in(page, "cancel")
    page.goto("/cancellations")
    expect(page.locator("#day-plan")).to_contain_text("Day plan")
    expect(page.locator("#by-step")).to_contain_text("Retention offer")
    page.goto("/cancellations?step=retention")
    page.locator("#board tbody tr td:nth-child(2) a").first.click()
    expect(page.locator("h1")).to_contain_text("CJ-")
    page.fill("#r-offer", "R100 off for 6 months")
    page.select_option("#r-outcome", "declined")
    page.get_by_role("button", name="Record").click()
    expect(page.locator(".flash.ok")).to_contain_text("Retention declined")
    preview = page.locator("table.preview")
    expect(preview).to_contain_text("Last day of service")
    expect(preview).to_contain_text("Early-termination fee")
    expect(preview).to_contain_text("CPA s14")
    page.get_by_role("button", name="Confirm cancellation").click()
    expect(page.locator(".flash.ok")).to_contain_text("Confirmed: effective")
    expect(page.locator("h1")).to_contain_text(re.compile("deactivation sent|deactivation confirmed|equipment collection|final billing"))
    expect(page.locator("#checklist")).to_contain_text("Notice & penalty confirmed")
