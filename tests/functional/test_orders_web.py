"""Orders desk, order entry with inline errors, quote page, catalog page and the account Products/Equipment panels."""

import re

from sqlalchemy import func, select

from opsline.catalog import service as catalog
from opsline.core.events import Actor
from opsline.customers import service as customers
from opsline.customers.schemas import AccountIn, SiteIn
from opsline.orders.models import ProductOrder, Quote


def _setup(factory, now):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        acc = customers.create_account(s, data=AccountIn(name="Naledi Khumalo", sites=[SiteIn(line1="7 Kingsway", city="Durban", fno_coverage=["openserve"]),
                                                                                        SiteIn(label="Office", line1="3 Long Street", city="Cape Town", fno_coverage=["octotel"])]), now=now, actor=Actor.system("t"))
        s.flush()
        sites = [x["id"] for x in customers.account_360(s, account_id=acc.id)["sites"]]
        return acc.id, sites, catalog.get_offering_by_code(s, code="FIB-OS-50-25").id


def _orders(factory):  # type: ignore[no-untyped-def]
    with factory() as s:
        return s.execute(select(func.count()).select_from(ProductOrder)).scalar_one()


def test_an_agent_places_an_order_from_the_form_and_sees_it_on_the_desk_and_account(client_as, factory, now):
    acc, (site, _), offering = _setup(factory, now)
    c = client_as("second_line_agent")
    form = c.get(f"/orders/new?account_id={acc}")
    assert form.status_code == 200 and "Naledi Khumalo" in form.text and "Openserve Fibre 50/25 Mbps (month-to-month) · ZAR 599.00 pm" in form.text
    r = c.post("/orders/new", data={"account_id": acc, "items-0-action": "add", "items-0-offering_id": offering, "items-0-site_id": site, "external_id": "DESK-1"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    detail = c.get(r.headers["location"])
    assert "inProgress" in detail.text and "openserve" in detail.text
    desk = c.get("/orders?open=1")
    assert "DESK-1" in desk.text and re.search(r"Age \(days\)", desk.text)
    panel = c.get(f"/accounts/{acc}/panel/products")
    assert "pendingActive" in panel.text and "FIB-OS-50-25" not in panel.text and "Openserve Fibre 50/25" in panel.text
    eq = c.get(f"/accounts/{acc}/panel/equipment")
    assert "dispatched" in eq.text and "AXR" in eq.text


def test_an_order_to_an_uncovered_site_shows_the_error_inline_and_creates_nothing(client_as, factory, now):
    acc, (_, octotel_site), offering = _setup(factory, now)
    c = client_as("second_line_agent")
    r = c.post("/orders/new", data={"account_id": acc, "items-0-action": "add", "items-0-offering_id": offering, "items-0-site_id": octotel_site})
    assert r.status_code == 422 and "openserve does not cover 3 Long Street" in r.text
    assert 'selected' in r.text  # the agent's choices are kept
    assert _orders(factory) == 0


def test_a_clerk_cannot_open_the_order_form(client_as, factory, now):
    acc, _, _ = _setup(factory, now)
    assert client_as("debtors_clerk").get(f"/orders/new?account_id={acc}").status_code == 403


def test_saving_as_a_quote_shows_vat_totals_and_accepting_places_the_order(client_as, factory, now):
    acc, (site, _), offering = _setup(factory, now)
    c = client_as("billing_analyst")
    r = c.post("/orders/new", data={"account_id": acc, "items-0-action": "add", "items-0-offering_id": offering, "items-0-site_id": site, "as_quote": "1"}, follow_redirects=False)
    assert r.status_code == 303 and "/quotes/" in r.headers["location"]
    page = c.get(r.headers["location"])
    assert "ZAR 688.85 per month" in page.text  # R599 + 15 % VAT
    r = c.post(r.headers["location"] + "/action", data={"action": "accept"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/orders/")
    with factory() as s:
        assert s.execute(select(Quote.state)).scalar_one() == "accepted"


def test_cancelling_from_the_order_page_needs_a_reason_then_cancels(client_as, factory, now):
    acc, (site, _), offering = _setup(factory, now)
    c = client_as("cancellations_coordinator")
    r = c.post("/orders/new", data={"account_id": acc, "items-0-offering_id": offering, "items-0-site_id": site}, follow_redirects=False)
    url = r.headers["location"]
    r = c.post(url + "/action", data={"action": "cancel", "reason": ""})
    assert r.status_code == 422 and "a reason is required" in r.text
    r = c.post(url + "/action", data={"action": "cancel", "reason": "duplicate order"}, follow_redirects=True)
    assert "cancelled" in r.text and "assessingCancellation" in r.text


def test_the_catalog_page_lists_current_prices_and_the_offering_page_the_history(client_as):
    c = client_as("debtors_clerk")
    r = c.get("/catalog?kind=fibre&partner=vumatel")
    assert r.status_code == 200 and "Vumatel Fibre 1000/500" in r.text and "ZAR 1,419.00" in r.text
    oid = re.search(r'href="/catalog/(\d+)"', r.text).group(1)
    detail = c.get(f"/catalog/{oid}")
    assert "2026-03-01" in detail.text and "Wi-Fi 6 router" in detail.text
