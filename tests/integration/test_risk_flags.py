"""Fraud and credit risk: flags (reason, who, expiry, cleared with a reason), orders on a flagged account held until a
second person releases them, and the rules-based credit check on orders above the limit (pass, refer, decline)."""

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, text

from opsline.billing.invoicing.samples import make_finalised_invoice
from opsline.catalog import service as catalog
from opsline.core.errors import TransitionNotAllowed
from opsline.core.events import Actor, AuditEvent
from opsline.core.lifecycle import FourEyesRequired, ReasonRequired
from opsline.core.localtime import zone
from opsline.core.money import Money
from opsline.customers import risk, service as customers
from opsline.customers.data_models import CreditCheck, CustomerSetting, OrderRiskHold, RiskFlag
from opsline.customers.schemas import AccountIn, SiteIn
from opsline.debtors.models import WriteOff
from opsline.inventory.models import Product
from opsline.orders import service as orders
from opsline.orders.models import ProductOrderItem
from opsline.orders.schemas import OrderIn, OrderItemIn
from opsline.orders.service import risk_review
from opsline.payments.allocations import capture_payment

TZ = zone("Africa/Johannesburg")
AGENT = Actor(name="agent.sipho", roles=frozenset({"second_line_agent"}))
ANALYST = Actor(name="analyst.naledi", roles=frozenset({"billing_analyst"}))
MANAGER = Actor(name="manager.thandi", roles=frozenset({"service_manager"}))


def _account(session, now, *, created=None):  # type: ignore[no-untyped-def]
    acc = customers.create_account(session, data=AccountIn(name="Thabo Nkosi", sites=[SiteIn(line1="12 Rivonia Road", city="Johannesburg",
                                                                                              fno_coverage=["vumatel", "openserve"])]),
                                   now=created or now, actor=AGENT)
    session.flush()
    site = customers.account_360(session, account_id=acc.id)["sites"][0]["id"]
    return acc, site


def _fibre_order(session, now, acc, site, actor=AGENT):  # type: ignore[no-untyped-def]
    off = catalog.get_offering_by_code(session, code="FIB-VU-100-100-24M")
    return orders.place_order(session, data=OrderIn(account_id=acc.id, items=[OrderItemIn(offering_id=off.id, site_id=site)]), now=now, tz=TZ, actor=actor)


def _counts(session):  # type: ignore[no-untyped-def]
    return tuple(session.execute(select(func.count()).select_from(m)).scalar_one() for m in (RiskFlag, OrderRiskHold, AuditEvent, Product))


def test_a_flag_needs_a_kind_a_reason_and_a_future_expiry_and_nothing_changes_otherwise(session, now):
    acc, _ = _account(session, now)
    before = _counts(session)
    with pytest.raises(risk.UnableToFlag, match="reason"):
        risk.set_flag(session, account_id=acc.id, kind="fraud", reason="  ", expires_at=None, now=now, actor=AGENT)
    with pytest.raises(risk.UnableToFlag, match="flag kind"):
        risk.set_flag(session, account_id=acc.id, kind="vibes", reason="odd", expires_at=None, now=now, actor=AGENT)
    with pytest.raises(risk.UnableToFlag, match="future"):
        risk.set_flag(session, account_id=acc.id, kind="credit", reason="odd", expires_at=now - timedelta(hours=1), now=now, actor=AGENT)
    assert _counts(session) == before
    f = risk.set_flag(session, account_id=acc.id, kind="fraud", reason="ID document reported stolen", expires_at=now + timedelta(days=30), now=now, actor=AGENT)
    assert [x["id"] for x in risk.active_flags(session, account_id=acc.id, now=now)] == [f.id]
    assert risk.active_flags(session, account_id=acc.id, now=now + timedelta(days=31)) == []  # expired
    with pytest.raises(ReasonRequired):
        risk.clear_flag(session, flag_id=f.id, reason="", now=now, actor=MANAGER)
    risk.clear_flag(session, flag_id=f.id, reason="customer verified in store", now=now, actor=MANAGER)
    assert risk.active_flags(session, account_id=acc.id, now=now) == []
    assert (f.cleared_by, f.clear_reason) == ("manager.thandi", "customer verified in store")
    acts = [e.action for e in session.execute(select(AuditEvent).where(AuditEvent.entity_type == "risk_flag")).scalars()]
    assert acts == ["set", "clear"]
    with pytest.raises(TransitionNotAllowed):
        risk.clear_flag(session, flag_id=f.id, reason="again", now=now, actor=MANAGER)


def test_a_flagged_accounts_order_is_held_and_only_a_second_person_can_release_it(session, now):
    acc, site = _account(session, now)
    risk.set_flag(session, account_id=acc.id, kind="fraud", reason="card chargebacks on another account", expires_at=None, now=now, actor=MANAGER)
    order = _fibre_order(session, now, acc, site, actor=AGENT)
    session.flush()
    hold = risk_review.get_hold(session, hold_id=session.execute(select(OrderRiskHold.id)).scalar_one())
    assert order.state == "acknowledged" and hold.state == "pending" and "fraud flag set by manager.thandi" in hold.reasons[0]
    assert session.execute(select(func.count()).select_from(ProductOrderItem).where(ProductOrderItem.order_id == order.id)).scalar_one() == 0
    assert session.execute(select(func.count()).select_from(Product).where(Product.account_id == acc.id)).scalar_one() == 0
    before = _counts(session)
    with pytest.raises(FourEyesRequired, match="second person"):
        risk_review.release(session, hold_id=hold.id, reason="looks fine", now=now, tz=TZ, actor=Actor(name="agent.sipho", roles=frozenset({"admin"})))
    with pytest.raises(FourEyesRequired, match="you set the risk flag"):
        risk_review.release(session, hold_id=hold.id, reason="looks fine", now=now, tz=TZ, actor=MANAGER)
    with pytest.raises(ReasonRequired):
        risk_review.release(session, hold_id=hold.id, reason="", now=now, tz=TZ, actor=ANALYST)
    assert _counts(session) == before and hold.state == "pending"
    risk_review.release(session, hold_id=hold.id, reason="customer verified with ID in store", now=now, tz=TZ, actor=ANALYST)
    session.flush()
    (item,) = session.execute(select(ProductOrderItem).where(ProductOrderItem.order_id == order.id)).scalars()
    assert hold.state == "released" and hold.decided_by == "analyst.naledi" and order.state == "inProgress" and item.partner_service_order_id
    with pytest.raises(TransitionNotAllowed):
        risk_review.reject(session, hold_id=hold.id, reason="changed my mind", now=now, tz=TZ, actor=ANALYST)


def test_a_rejected_hold_rejects_the_order_and_deletes_are_never_held(session, now):
    acc, site = _account(session, now)
    risk.set_flag(session, account_id=acc.id, kind="credit", reason="bank reports debit orders returned", expires_at=None, now=now, actor=MANAGER)
    order = _fibre_order(session, now, acc, site)
    hold = session.execute(select(OrderRiskHold)).scalar_one()
    risk_review.reject(session, hold_id=hold.id, reason="identity could not be confirmed", now=now, tz=TZ, actor=ANALYST)
    assert order.state == "rejected" and "identity could not be confirmed" in order.state_reason
    assert session.execute(select(func.count()).select_from(Product).where(Product.account_id == acc.id)).scalar_one() == 0
    p = Product(account_id=acc.id, offering_id=catalog.get_offering_by_code(session, code="SVC-STATIC-IP").id, state="active",
                start_date=date(2025, 1, 1), contract_months=0, created_at=now, updated_at=now)
    session.add(p)
    session.flush()
    cease = orders.place_order(session, data=OrderIn(account_id=acc.id, items=[OrderItemIn(action="delete", product_id=p.id)]), now=now, tz=TZ, actor=AGENT)
    assert cease.state != "acknowledged" and session.execute(select(func.count()).select_from(OrderRiskHold)).scalar_one() == 1


def _limit(session, minor):  # type: ignore[no-untyped-def]
    session.get(CustomerSetting, "credit_check_limit_minor").value = str(minor)


def test_credit_check_refers_a_young_account_and_passes_an_established_payer(session, now):
    _limit(session, 100_000)
    young, site = _account(session, now)
    order = _fibre_order(session, now, young, site)
    check = session.execute(select(CreditCheck).where(CreditCheck.order_id == order.id)).scalar_one()
    assert check.outcome == "refer" and check.bureau == "rules" and check.order_value_minor > 100_000
    assert any("days old" in r for r in check.reasons)
    hold = session.execute(select(OrderRiskHold).where(OrderRiskHold.order_id == order.id)).scalar_one()
    assert hold.state == "pending" and hold.reasons[0].startswith("credit check referred")

    old, site2 = _account(session, now, created=now - timedelta(days=400))
    inv = make_finalised_invoice(session, account_id=old.id, now=now - timedelta(days=60), period_start=date(2026, 9, 1), period_end=date(2026, 10, 1),
                                 lines=[{"description": "Fibre", "amount_minor": 50000}])
    total = session.execute(text("SELECT total_minor FROM invoice WHERE id = :i"), {"i": inv}).scalar_one()
    capture_payment(session, account_id=old.id, amount=Money.from_minor(total, "ZAR"), method="eft", received_on=date(2026, 10, 20), now=now, actor=AGENT,
                    invoice_id=inv)
    order2 = _fibre_order(session, now, old, site2)
    check2 = session.execute(select(CreditCheck).where(CreditCheck.order_id == order2.id)).scalar_one()
    assert check2.outcome == "pass" and check2.score == 100 and order2.state == "inProgress"
    assert session.execute(select(func.count()).select_from(OrderRiskHold).where(OrderRiskHold.order_id == order2.id)).scalar_one() == 0


def test_credit_check_declines_an_account_with_arrears_and_a_write_off_and_the_refusal_is_audited(session, now):
    _limit(session, 100_000)
    acc, site = _account(session, now, created=now - timedelta(days=800))
    make_finalised_invoice(session, account_id=acc.id, now=now - timedelta(days=120), period_start=date(2026, 7, 1), period_end=date(2026, 8, 1),
                           lines=[{"description": "Fibre", "amount_minor": 50000}])
    # a write-off proposed by the debtors desk (the table the debtors area writes; only its existence matters here)
    wo = {"account_id": acc.id, "amount_minor": 57500, "balance_minor": 57500, "currency": "ZAR", "state": "proposed", "reason": "absconded",
          "proposed_by": "debtors.clerk", "proposed_at": now}
    session.add(WriteOff(**wo))
    session.flush()
    order = _fibre_order(session, now, acc, site)
    check = session.execute(select(CreditCheck).where(CreditCheck.order_id == order.id)).scalar_one()
    assert check.outcome == "decline" and order.state == "rejected"
    assert "write-off" in order.state_reason and "arrears" in order.state_reason
    assert session.execute(select(func.count()).select_from(Product).where(Product.account_id == acc.id)).scalar_one() == 0
    ev = session.execute(select(AuditEvent).where(AuditEvent.entity_type == "product_order", AuditEvent.action == "credit_checked")).scalar_one()
    assert ev.after["outcome"] == "decline"
