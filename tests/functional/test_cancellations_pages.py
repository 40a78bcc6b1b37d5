"""The cancellations desk over HTTP: the account panel's "Cancel service", the new-journey page with the date,
penalty and CPA notice before anything is opened, the detail page's confirm, the board with filters and the day plan,
bulk actions, and bad input answered with a clear error and nothing changed."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from opsline.cancellations.models import CancellationJourney
from opsline.catalog import service as catalog
from opsline.core.events import Actor
from opsline.core.localtime import zone
from opsline.customers import service as customers
from opsline.customers.schemas import AccountIn, SiteIn
from opsline.orders import service as orders
from opsline.orders.models import ProductOrderItem
from opsline.orders.schemas import OrderIn, OrderItemIn
from tests.conftest import NOW

TZ = zone("Africa/Johannesburg")
ACTOR = Actor(name="setup", roles=frozenset({"admin"}))


def _line(factory) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        acc = customers.create_account(s, data=AccountIn(name="Naledi Mokoena", email="naledi@example.co.za", segment_code="consumer", party_kind="person",
                                                         sites=[SiteIn(line1="3 Oxford Road", city="Johannesburg", fno_coverage=["openserve"])]), now=NOW, actor=ACTOR)
        s.flush()
        site = customers.account_360(s, account_id=acc.id)["sites"][0]["id"]
        order = orders.place_order(s, data=OrderIn(account_id=acc.id, items=[OrderItemIn(offering_id=catalog.get_offering_by_code(s, code="FIB-OS-100-100-24M").id, site_id=site)]),
                                   now=NOW, tz=TZ, actor=ACTOR)
        item = s.execute(select(ProductOrderItem).where(ProductOrderItem.order_id == order.id)).scalar_one()
        orders.on_partner_order_update(s, service_order_id=item.partner_service_order_id, order_item_id=item.id, state="completed",
                                       confirmed_date=date(2026, 9, 1), reason=None, now=NOW, tz=TZ, actor=ACTOR)
        return acc.id, int(item.result_product_id)


def _journeys(factory) -> int:  # type: ignore[no-untyped-def]
    with factory() as s:
        return s.execute(select(func.count()).select_from(CancellationJourney)).scalar_one()


def test_coordinator_sees_date_penalty_and_cpa_before_opening_then_confirms_from_the_detail_page(client_as, factory):
    acc, product = _line(factory)
    c = client_as("cancellations_coordinator")
    panel = c.get(f"/accounts/{acc}/panel/cancellations")
    assert panel.status_code == 200 and f"/cancellations/new?account_id={acc}" in panel.text
    page = c.get(f"/cancellations/new?account_id={acc}&product_id={product}")
    assert page.status_code == 200
    assert "CPA s14" in page.text and "2026-12-31" in page.text and "Early-termination fee" in page.text and "R " in page.text
    assert _journeys(factory) == 0  # the preview wrote nothing
    r = c.post("/cancellations", data={"account_id": acc, "product_id": product, "reason_code": "price", "requester": "account_holder", "verified": "1"},
               follow_redirects=False)
    assert r.status_code == 303, r.text
    detail = c.get(r.headers["location"])
    assert "Retention offer" in detail.text and "Confirm cancellation" in detail.text
    jid = int(r.headers["location"].split("/")[2].split("?")[0])
    assert c.post(f"/cancellations/{jid}/retention", data={"offer": "R100 off for 6 months", "outcome": "declined"}, follow_redirects=False).status_code == 303
    r = c.post(f"/cancellations/{jid}/confirm", data={}, follow_redirects=False)
    assert r.status_code == 303, r.text
    detail = c.get(f"/cancellations/{jid}").text
    assert "deactivation sent" in detail and "2026-12-31" in detail and "FNO deactivation" in detail
    board = c.get("/cancellations")
    assert board.status_code == 200 and "CJ-" in board.text and "Day plan" in board.text
    assert c.get("/cancellations?partner=openserve&step=fno_deactivation&breaching=1&reason=price").status_code == 200


def test_closing_with_open_steps_is_a_problem_naming_them_and_nothing_changes(client_as, factory):
    acc, product = _line(factory)
    c = client_as("cancellations_coordinator")
    r = c.post("/cancellations", data={"account_id": acc, "product_id": product, "reason_code": "deceased", "requester": "deceased_estate",
                                       "documents": "death certificate"}, follow_redirects=False)
    jid = int(r.headers["location"].split("/")[2].split("?")[0])
    r = c.post(f"/cancellations/{jid}/close", headers={"Accept": "application/problem+json"})
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    assert "open steps" in r.json()["detail"] and r.json().get("field") == "steps"
    with factory() as s:
        assert s.get(CancellationJourney, jid).state == "requested"
    r = c.post("/cancellations/bulk", data={"action": "close", "ids": [str(jid)]}, follow_redirects=False)
    assert r.status_code == 303 and "refused" in r.headers["location"]


def test_a_request_without_verification_is_refused_naming_the_field(client_as, factory):
    acc, product = _line(factory)
    c = client_as("cancellations_coordinator")
    r = c.post("/cancellations", data={"account_id": acc, "product_id": product, "reason_code": "price", "requester": "account_holder"},
               headers={"Accept": "application/problem+json"})
    assert r.status_code == 422 and r.json()["field"] == "verified"
    assert _journeys(factory) == 0


def test_a_second_line_agent_may_open_but_not_work_a_journey_and_a_billing_analyst_only_views(client_as, factory):
    acc, product = _line(factory)
    agent = client_as("second_line_agent")
    r = agent.post("/cancellations", data={"account_id": acc, "product_id": product, "reason_code": "competitor", "verified": "1"}, follow_redirects=False)
    assert r.status_code == 303
    jid = int(r.headers["location"].split("/")[2].split("?")[0])
    assert agent.post(f"/cancellations/{jid}/confirm", data={}).status_code == 403
    billing = client_as("billing_analyst")
    assert billing.get(f"/cancellations/{jid}").status_code == 200
    assert billing.post("/cancellations", data={"account_id": acc, "product_id": product}).status_code == 403
    assert billing.get(f"/cancellations/new?account_id={acc}").status_code == 403


def test_reports_show_reasons_retention_sla_and_breaches_and_export_safely(client_as, factory):
    acc, product = _line(factory)
    c = client_as("cancellations_coordinator")
    r = c.post("/cancellations", data={"account_id": acc, "product_id": product, "reason_code": "competitor", "verified": "1",
                                       "requester_name": "=HYPERLINK(\"http://x\")"}, follow_redirects=False)
    assert r.status_code == 303
    page = c.get("/cancellations/reports")
    assert page.status_code == 200 and "Competitor" in page.text and "data-chart" in page.text
    sla = c.get("/cancellations/reports/sla")
    assert sla.status_code == 200 and "SLA compliance per step" in sla.text and "SLA breaches" in sla.text
    csv = c.get("/cancellations/reports/export?format=csv")
    assert csv.status_code == 200 and csv.headers["content-disposition"].startswith("attachment") and b"Retention offer" in csv.content
    xlsx = c.get("/cancellations/reports/export?format=xlsx")
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    bad = c.get("/cancellations/reports/export?format=exe", headers={"Accept": "application/problem+json"})
    assert bad.status_code == 422 and bad.json()["field"]
