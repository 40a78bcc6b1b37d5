"""Installed products and equipment: lifecycle rules, the demo loader's invariants, and the account-page loaders."""

from datetime import date

import numpy as np
import pytest
from sqlalchemy import func, select

from opsline.catalog import service as catalog
from opsline.core.errors import TransitionNotAllowed
from opsline.customers import service as customers
from opsline.customers.schemas import AccountIn, SiteIn
from opsline.demo import DemoContext, _NoProgress, load_customers
from opsline.inventory import service
from opsline.inventory.demo import load_products
from opsline.inventory.models import Equipment, EquipmentEvent, Product


def _product(session, now, actor):  # type: ignore[no-untyped-def]
    acc = customers.create_account(session, data=AccountIn(name="Pieter Botha", sites=[SiteIn(line1="1 Main Road", city="Stellenbosch", fno_coverage=["octotel"])]), now=now, actor=actor)
    session.flush()
    off = catalog.get_offering_by_code(session, code="FIB-OC-100-100-24M")
    return service.create_product(session, account_id=acc.id, offering=off, site_id=None, order_id=None, now=now, actor=actor), off


def test_activation_sets_the_first_billable_day_and_the_contract_end(session, now, actor):
    p, _ = _product(session, now, actor)
    service.transition_product(session, product=p, action="submit", now=now, actor=actor)
    allowed = service.transition_product(session, product=p, action="activate", now=now, actor=actor, effective_date=date(2026, 1, 31))
    assert p.start_date == date(2026, 1, 31) and p.contract_end_date == date(2028, 1, 31)
    assert "suspend" in allowed and "request_termination" in allowed


def test_a_terminated_product_cannot_be_reactivated_and_stays_as_it_was(session, now, actor):
    p, _ = _product(session, now, actor)
    service.transition_product(session, product=p, action="activate", now=now, actor=actor, effective_date=date(2026, 1, 1))
    service.transition_product(session, product=p, action="terminate", now=now, actor=actor, effective_date=date(2026, 6, 1), reason="customer moved abroad")
    with pytest.raises(TransitionNotAllowed) as exc:
        service.transition_product(session, product=p, action="activate", now=now, actor=actor)
    assert "terminated" in exc.value.detail
    assert (p.state, p.start_date, p.end_date) == ("terminated", date(2026, 1, 1), date(2026, 6, 1))


def test_equipment_comes_from_stock_first_and_every_move_is_in_its_history(session, now, actor):
    p, off = _product(session, now, actor)
    router_offering = catalog.get_offering_by_code(session, code="EQ-ROUTER-AX1800")
    stock = Equipment(kind="router", model="Wi-Fi 6 router AX1800", serial_number="STOCK-0001", owner="isp_loaned", state="in_stock", created_at=now, updated_at=now)
    session.add(stock)
    session.flush()
    e = service.assign_equipment(session, account_id=p.account_id, product_id=p.id, equipment_offering=router_offering, owner="isp_loaned", now=now, actor=actor)
    assert e.id == stock.id and e.state == "dispatched" and e.account_id == p.account_id
    service.transition_equipment(session, equipment=e, action="install", now=now, actor=actor)
    service.transition_equipment(session, equipment=e, action="await_return", now=now, actor=actor, reason="cancelled")
    with pytest.raises(TransitionNotAllowed):
        service.transition_equipment(session, equipment=e, action="install", now=now, actor=actor)
    hist = session.execute(select(EquipmentEvent.from_state, EquipmentEvent.to_state).where(EquipmentEvent.equipment_id == e.id).order_by(EquipmentEvent.id)).all()
    assert hist == [("in_stock", "dispatched"), ("dispatched", "installed"), ("installed", "awaiting_return")]
    panel = service.equipment_panel(session, account_id=p.account_id, now=now)
    assert panel["equipment"][0]["serial_number"] == "STOCK-0001"


def test_the_demo_gives_each_account_a_product_matching_its_status_on_a_covered_site(engine, now):
    ctx = DemoContext(engine=engine, now=now, rng=np.random.default_rng(7), accounts=300, progress=_NoProgress())
    load_customers(ctx)
    load_products(ctx)
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        per_account = s.execute(select(func.count(func.distinct(Product.account_id)))).scalar_one()
        assert per_account == 300
        rows = s.execute(select(Product.state, Product.start_date, Product.end_date, Product.replaces_product_id, Product.partner_code, Product.site_id)).all()
        assert all(r.start_date is not None and r.start_date <= now.date() for r in rows)
        assert all(r.end_date is None or r.end_date >= r.start_date for r in rows)
        # a replaced product ends the day its successor starts
        by_id = {p.id: p for p in s.execute(select(Product)).scalars()}
        chains = [(by_id[p.replaces_product_id], p) for p in by_id.values() if p.replaces_product_id]
        assert chains and all(old.end_date == new.start_date for old, new in chains)
        from opsline.customers.models import Account, Site

        closed = s.execute(select(Product.state).join(Account, Account.id == Product.account_id).where(Account.status == "closed", Product.replaces_product_id.is_(None))).scalars().all()
        assert closed and set(closed) == {"terminated"}
        for partner, cov in s.execute(select(Product.partner_code, Site.fno_coverage).join(Site, Site.id == Product.site_id).join(Account, Account.id == Product.account_id).where(Account.kind == "retail")):
            assert partner in cov
        assert s.execute(select(func.count()).select_from(Equipment).where(Equipment.kind == "ont", Equipment.owner == "fno")).scalar_one() > 100
        assert ctx.counts["products"] == len(rows)
