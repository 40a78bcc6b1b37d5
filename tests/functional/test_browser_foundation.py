"""A new user's first minutes, in headless Chromium: sign in, find an account, open its 360 page, add a memo."""

import pytest

from conftest import sign_in

pytestmark = pytest.mark.browser


def test_admin_signs_in_opens_an_account_and_adds_a_memo_that_shows_in_the_timeline(page):
    sign_in(page, "admin")
    page.goto("/accounts")
    assert page.locator("nav.desks a", has_text="Customers").count() == 1
    first = page.locator("#account-rows tbody tr td a").first
    name = first.inner_text()
    first.click()
    page.wait_for_url("**/accounts/*")
    page.fill("#memo-body", "Customer asked for a callback after 17:00")
    page.click("#memos button[type=submit]")
    page.locator("#memos .memo", has_text="callback after 17:00").wait_for()
    assert page.locator("#timeline li", has_text="memo added").count() >= 1
    assert name


def test_search_box_narrows_the_account_list_as_you_type(page):
    sign_in(page, "support")
    page.goto("/accounts")
    page.fill("#q", "zzzz-nobody")
    page.locator("#account-rows", has_text="No accounts match").wait_for()


def test_a_wrong_password_is_told_plainly(page):
    page.goto("/login")
    page.fill("#username", "admin")
    page.fill("#password", "not-it")
    page.click("button[type=submit]")
    assert page.locator(".flash.error").inner_text() == "wrong username or password"
