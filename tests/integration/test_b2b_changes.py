"""Change requests against a B2B contract: scope and price checked, a second person approves, an out-of-scope change
becomes a quote, the delivering order is linked and its completion delivers the change."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from opsline.b2b import changes, service
from opsline.b2b.models import B2BChangeRequest
from opsline.catalog.models import ProductOffering
from opsline.core import lifecycle
from opsline.core.errors import InvalidInput, OpslineError
from opsline.core.events import Actor
from opsline.core.lifecycle import FourEyesRequired
from opsline.core.localtime import zone
from opsline.core.money import Money
from opsline.customers.models import Account, Party, Site
from opsline.orders.models import ORDER, ProductOrder, Quote

TZ = zone("Africa/Johannesburg")
MGR1 = Actor(name="mgr1", roles=frozenset({"service_manager"}))
MGR2 = Actor(name="mgr2", roles=frozenset({"service_manager"}))


def _contract(s, now) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    p = Party(kind="organisation", name="Sizwe Retail Group", created_at=now)
    s.add(p)
    s.flush()
    a = Account(account_number=f"B{p.id:09d}", party_id=p.id, name="Sizwe Retail Group", kind="b2b", status="active", segment_code="enterprise",
                value_tier_code="standard", currency="ZAR", created_at=now, updated_at=now)
    s.add(a)
    s.flush()
    cid = service.create_contract(s, account_id=a.id, name="Stores WAN", valid_from=date(2026, 1, 1), valid_to=None, monthly_value=Money.of("80000", "ZAR"),
                                  credit_cap=Money.of("8000", "ZAR"), terms=None, now=now, actor=MGR1)
    return int(a.id), cid


@pytest.mark.parametrize(("scope", "price", "impact", "field"), [
    ("", None, "two stores", "scope"),
    ("sideways", None, "two stores", "scope"),
    ("out_of_scope", None, "two stores", "price"),
    ("out_of_scope", Money.of("100", "USD"), "two stores", "price"),
    ("in_scope", Money.of("500", "ZAR"), "two stores", "price"),
    ("in_scope", None, "  ", "impact"),
])
def test_a_change_request_without_scope_price_or_impact_is_refused_naming_the_field(session, now, scope, price, impact, field) -> None:  # type: ignore[no-untyped-def]
    _, cid = _contract(session, now)
    with pytest.raises(InvalidInput) as err:
        changes.create(session, contract_id=cid, title="Add two stores", description=None, scope=scope, impact=impact, price=price, now=now, actor=MGR1)
    assert err.value.field == field
    assert session.execute(select(func.count()).select_from(B2BChangeRequest)).scalar_one() == 0


def test_an_out_of_scope_change_is_approved_by_a_second_person_and_turned_into_a_quote(session, now) -> None:
    acc, cid = _contract(session, now)
    crid = changes.create(session, contract_id=cid, title="SD-WAN at two new stores", description="Soweto and Mthatha", scope="out_of_scope",
                          impact="Two new sites; no downtime at existing sites", price=Money.of("24500", "ZAR"), now=now, actor=MGR1)
    cr = session.get(B2BChangeRequest, crid)
    assert cr is not None and cr.reference == f"CR-{crid:06d}" and cr.price_minor == 2450000 and cr.state == "submitted"
    with pytest.raises(FourEyesRequired):
        changes.act(session, change_id=crid, action="approve", reason=None, now=now, actor=MGR1)
    with pytest.raises(InvalidInput) as early:
        changes.to_quote(session, change_id=crid, offering_id=1, site_id=None, now=now, tz=TZ, actor=MGR1)
    assert early.value.field == "state"
    changes.act(session, change_id=crid, action="approve", reason=None, now=now, actor=MGR2)
    offering = session.execute(select(ProductOffering.id).where(ProductOffering.kind == "b2b_link").order_by(ProductOffering.id).limit(1)).scalar_one()
    site = Site(account_id=acc, label="Soweto store", line1="1 Chris Hani Rd", city="Soweto", country="ZA", fno_coverage=["frogfoot", "openserve", "vumatel"],
                created_at=now)
    session.add(site)
    session.flush()
    qid = changes.to_quote(session, change_id=crid, offering_id=offering, site_id=site.id, now=now, tz=TZ, actor=MGR1)
    q = session.get(Quote, qid)
    assert q is not None and q.account_id == acc and cr.reference in (q.description or "")
    assert cr.state == "quoted" and cr.quote_id == qid and cr.decided_by == "mgr2"


def test_an_in_scope_change_is_delivered_when_its_linked_order_completes(session, now) -> None:
    acc, cid = _contract(session, now)
    crid = changes.create(session, contract_id=cid, title="Raise head-office bandwidth to 500 Mbps", description=None, scope="in_scope",
                          impact="Router reconfiguration at head office, 10 minutes at night", price=None, now=now, actor=MGR1)
    changes.act(session, change_id=crid, action="approve", reason=None, now=now, actor=MGR2)
    with pytest.raises(InvalidInput) as err:
        changes.to_quote(session, change_id=crid, offering_id=1, site_id=None, now=now, tz=TZ, actor=MGR1)
    assert err.value.field == "scope"
    order = ProductOrder(account_id=acc, state="inProgress", priority=4, created_at=now, updated_at=now, requested_completion_date=date(2026, 12, 1))
    session.add(order)
    session.flush()
    changes.link_order(session, change_id=crid, order_id=order.id, now=now, actor=MGR1)
    cr = session.get(B2BChangeRequest, crid)
    assert cr is not None and cr.state == "in_delivery" and cr.order_id == order.id
    lifecycle.transition(session, ORDER, order, "complete", now=now, actor=Actor.system("test"))  # orders publishes product_order.completed
    assert cr.state == "delivered" and cr.delivered_at == now
    with pytest.raises(OpslineError):
        changes.act(session, change_id=crid, action="withdraw", reason="too late", now=now, actor=MGR1)
