"""Desk home pages in headless Chromium, on demo data: every demo user lands on their own desk, charts draw under the
Content-Security-Policy, and on a 390 px wide phone the desk and its navigation work without sideways scrolling."""

import pytest

from conftest import sign_in

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser, live_server):  # type: ignore[no-untyped-def]
    ctx = browser.new_context(base_url=live_server["url"], viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    pg = ctx.new_page()
    pg.set_default_timeout(15_000)
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    pg.console_errors = errors  # type: ignore[attr-defined]
    yield pg
    ctx.close()


def _no_sideways_scroll(page) -> None:  # type: ignore[no-untyped-def]
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width} px wide on a {PHONE['width']} px screen"


def test_every_demo_user_lands_on_their_own_desk_and_it_fits_a_phone(phone):
    from opsline.demo import DEMO_USERS
    from opsline.users.roles import ROLE_LABELS, Role

    for username, _name, roles in DEMO_USERS:
        phone.context.clear_cookies()
        sign_in(phone, username)
        assert phone.url.endswith(f"/desk/{roles[0]}"), (username, phone.url)
        assert phone.locator("h1").inner_text() == f"{ROLE_LABELS[Role(roles[0])]} desk"
        assert phone.locator(".desk-unavailable").count() == 0, (username, phone.locator(".desk-unavailable").all_inner_texts())
        for canvas in phone.locator("canvas[data-chart]").all():  # Chart.js drew every chart (no CSP or script error)
            canvas.wait_for(state="attached")
            phone.wait_for_function("c => c.dataset.drawn === '1'", arg=canvas.element_handle())
        _no_sideways_scroll(phone)
    assert phone.console_errors == []  # type: ignore[attr-defined]


def test_on_a_phone_the_navigation_folds_behind_a_menu_button_and_still_takes_you_everywhere(phone):
    sign_in(phone, "debtors")
    nav = phone.locator("nav.desks")
    menu = phone.locator("button.nav-toggle")
    assert menu.is_visible() and not nav.is_visible()
    menu.click()
    assert nav.is_visible() and menu.get_attribute("aria-expanded") == "true"
    nav.get_by_role("link", name="Customers").click()
    phone.wait_for_url("**/accounts")
    _no_sideways_scroll(phone)
    phone.locator("button.nav-toggle").click()
    phone.locator("nav.desks").get_by_role("link", name="My desk").click()
    phone.wait_for_url("**/desk/debtors_clerk")
    _no_sideways_scroll(phone)


def test_a_card_number_on_a_phone_opens_the_list_behind_it(phone):
    sign_in(phone, "admin")
    assert phone.url.endswith("/desk/admin")
    _no_sideways_scroll(phone)
    counts = phone.locator(".desk-card a.count")
    if counts.count() == 0:
        pytest.fail("the admin desk shows no cards on the demo data")
    first = counts.first
    href = first.get_attribute("href")
    first.click()
    phone.wait_for_load_state("networkidle")
    assert phone.url.split("://", 1)[1].split("/", 1)[1].startswith(href.lstrip("/").split("?")[0])
    assert phone.locator("h1").count() >= 1


def test_on_a_desktop_the_navigation_is_always_shown(browser, live_server):  # type: ignore[no-untyped-def]
    ctx = browser.new_context(base_url=live_server["url"], viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    sign_in(page, "billing")
    assert page.url.endswith("/desk/billing_analyst")
    assert page.locator("nav.desks").is_visible() and not page.locator("button.nav-toggle").is_visible()
    ctx.close()


def test_confirmation_and_select_all_work_without_inline_script(phone):
    """The shared behaviours in /static/app.js (the policy forbids onclick=): data-confirm and data-select-all."""
    sign_in(phone, "service")
    phone.evaluate("""() => {
        const f = document.createElement('form'); f.id = 'probe'; f.action = '/desk'; f.method = 'get';
        f.innerHTML = '<button id="go" data-confirm="Really finalise?">Go</button>' +
                      '<input type="checkbox" id="all" data-select-all="input[name=pick]"><input type="checkbox" name="pick"><input type="checkbox" name="pick">';
        document.querySelector('main').appendChild(f);
        f.addEventListener('submit', () => { window.submitted = true; });
    }""")
    asked = []
    phone.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    phone.click("#go")
    assert asked == ["Really finalise?"] and not phone.evaluate("window.submitted === true")
    phone.click("#all")
    assert phone.evaluate("[...document.querySelectorAll('input[name=pick]')].every(b => b.checked)")


def test_when_the_session_is_gone_a_live_search_leads_back_to_sign_in(page):
    sign_in(page, "support")
    page.goto("/accounts")
    page.context.clear_cookies()  # signed out elsewhere, or the session expired
    page.fill("#q", "khumalo")
    page.wait_for_url("**/login?next=%2Faccounts**")
    assert page.locator("#username").is_visible()
