"""A billing analyst's walk through the demo's bill runs in a real browser."""

from __future__ import annotations

import pytest
from conftest import sign_in


@pytest.mark.browser
def test_a_billing_analyst_opens_the_demo_draft_run_and_reads_its_review(page):
    sign_in(page, "billing")
    page.goto("/billing/runs")
    assert page.locator("text=finalised").first.is_visible()
    page.locator("tr", has_text="draft").locator("a").first.click()
    page.wait_for_load_state("networkidle")
    assert page.locator("h2", has_text="Change against last period").is_visible()
    assert page.locator("th", has_text="Why").is_visible()  # each variance carries its explanation
    assert page.locator("button", has_text="Open review").is_visible()
    page.locator("button", has_text="Open review").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("text=Done: Open review").is_visible()
    # the analyst started this run in the demo, so approval must come from someone else
    page.locator("button", has_text="Approve").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("text=a second person must approve it").is_visible()
