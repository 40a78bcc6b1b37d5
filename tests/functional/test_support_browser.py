"""The support additions in a real browser on the demo (issue 17): the service manager's trends chart draws under the
CSP and a figure drills to its cases; the lead board shows leads in every state; the brand incident is on its page."""

from __future__ import annotations

import pytest
from conftest import sign_in
from playwright.sync_api import expect


@pytest.mark.browser
def test_the_service_manager_sees_the_trends_chart_drawn_and_drills_from_a_week_to_its_cases(page):
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    sign_in(page, "service")
    page.goto("/cases/trends?weeks=8")
    expect(page.locator("canvas[data-chart]").first).to_have_attribute("data-drawn", "1")
    page.locator("section.card table tbody tr td:first-child a").first.click()  # the top reason, every week
    page.wait_for_load_state("networkidle")
    expect(page.locator("h1")).to_contain_text("Cases ·")
    assert page.locator("table tbody tr td a[href^='/cases/']").count() >= 1
    assert not [e for e in errors if "Content Security Policy" in e]


@pytest.mark.browser
def test_the_lead_board_shows_leads_in_every_state_and_the_brand_incident_has_its_timeline(page):
    sign_in(page, "support")
    page.goto("/cases/leads/board")
    for label in ("New", "Qualified", "Handed over", "Won", "Lost"):
        expect(page.locator(f"section[aria-label='{label}'] .lead").first).to_be_visible()
    page.goto("/cases/incidents")
    page.locator("table tbody tr td a").first.click()
    expect(page.locator("h1")).to_contain_text("BI")
    expect(page.locator(".timeline")).to_contain_text("raised")
