"""The cancellations coordinator's collections in a real browser: the board with its recovery chart, rebooking a
failed collection from the slot picker, recording the collection and receiving the device."""

from __future__ import annotations

import pytest
from conftest import sign_in
from playwright.sync_api import expect


@pytest.mark.browser
def test_the_coordinator_rebooks_a_failed_collection_then_records_it_collected_and_received(page):
    sign_in(page, "cancel")
    page.goto("/logistics")
    expect(page.locator("h1", has_text="Collections board")).to_be_visible()
    expect(page.locator("canvas[data-chart]").first).to_be_visible()
    page.goto("/logistics/collections?state=failed")
    page.locator("table a[href^='/logistics/collections/']").first.click()
    page.wait_for_load_state("networkidle")
    expect(page.locator("h2", has_text="Rebook")).to_be_visible()
    page.locator("input[name=slot_start]").nth(1).check()
    page.fill("#rb-reason", "customer home on Thursday")
    page.locator("button", has_text="Rebook").click()
    page.wait_for_load_state("networkidle")
    expect(page.locator(".flash.ok", has_text="Collection rebooked")).to_be_visible()
    page.select_option("#outcome", "collected")
    page.locator("button", has_text="Record attempt").click()
    page.wait_for_load_state("networkidle")
    expect(page.locator("h2", has_text="Receive at the warehouse")).to_be_visible()
    page.select_option("#condition", "faulty")
    page.locator("button", has_text="Received").click()
    page.wait_for_load_state("networkidle")
    expect(page.locator(".flash.ok", has_text="Received 1 device")).to_be_visible()
    expect(page.locator("h1 .chip", has_text="received")).to_be_visible()
