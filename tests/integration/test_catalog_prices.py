"""The seeded catalog and its price rules: validity windows, VAT from billing's tax rates, wholesale margins."""

from datetime import date

import pytest
from sqlalchemy import select

from opsline.catalog import service
from opsline.catalog.models import Price, ProductOffering
from opsline.catalog.seed import seed_catalog


def test_seeding_twice_adds_nothing_and_keeps_operator_edits(session, now):
    off = service.get_offering_by_code(session, code="FIB-VU-100-100")
    off.name = "Vumatel 100 (promo)"
    n = len(session.execute(select(Price.id)).all())
    seed_catalog(session, now=now)
    assert len(session.execute(select(Price.id)).all()) == n and session.get(ProductOffering, off.id).name == "Vumatel 100 (promo)"


def test_prices_follow_the_annual_increase_on_the_first_of_march(session):
    off = service.get_offering_by_code(session, code="FIB-OS-100-100")
    before = service.price_summary(session, offering_id=off.id, on=date(2026, 2, 28))
    after = service.price_summary(session, offering_id=off.id, on=date(2026, 3, 1))
    assert (before["recurring_minor"], after["recurring_minor"]) == (84_900, 89_900)


def test_wholesale_cost_is_between_55_and_65_percent_of_retail_for_every_fno_line(session):
    offs = service.list_offerings(session, on=date(2026, 11, 23), kind="fibre", limit=1000)
    assert len(offs) == 60
    for o in offs:
        cost = next(p["amount_minor"] for p in o["prices"] if p["kind"] == "wholesale_cost")
        assert 0.54 <= cost / o["recurring_minor"] <= 0.66, o["code"]


def test_an_offering_without_a_price_on_the_date_is_refused(session):
    off = service.get_offering_by_code(session, code="FIB-VU-25-25")
    with pytest.raises(service.PriceNotValid):
        service.price_summary(session, offering_id=off.id, on=date(2022, 12, 31))


def test_an_unknown_tax_code_is_refused_clearly(session):
    off = service.get_offering_by_code(session, code="SVC-STATIC-IP")
    for p in session.execute(select(Price).where(Price.offering_id == off.id)).scalars():
        p.tax_rate_code = "MOON"
    with pytest.raises(service.UnknownTaxRate) as exc:
        service.price_summary(session, offering_id=off.id, on=date(2026, 11, 23))
    assert "MOON" in exc.value.detail


def test_mobile_bundles_carry_usage_rates_and_allowances(session):
    o = service.offering_detail(session, offering_id=service.get_offering_by_code(session, code="MOB-SMART-L-24").id, on=date(2026, 11, 23))
    usage = {p["usage_type"]: (p["amount_minor"], p["included_quantity"]) for p in o["prices"] if p["kind"] == "usage"}
    assert usage == {"data_mb": (29, 20480), "voice_sec": (1, 30000), "sms": (50, 500)}
    assert [e["equipment_kind"] for e in o["equipment"]] == ["sim"]
