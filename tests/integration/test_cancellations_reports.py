"""Cancellations reports on SQLite and PostgreSQL, on hand-built data as of Monday 23 November 2026: breaches grouped
by cause code (inferred from the step until a cause is recorded), prevention actions through their lifecycle with
overdue ones flagged, leakage per FNO and month agreeing with partners.exposure, and equipment recovery per month,
FNO and courier agreeing with logistics' own recovery figure."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, update

from opsline.cancellations import prevention, reports, service
from opsline.cancellations.models import CancellationStep
from opsline.cancellations.prevention import CancellationBreachCause, CancellationPreventionAction
from opsline.catalog import service as catalog
from opsline.core.errors import TransitionNotAllowed
from opsline.core.events import AuditEvent
from opsline.core.lifecycle import ReasonRequired
from opsline.core.localtime import zone
from opsline.customers import service as customers
from opsline.customers.schemas import AccountIn, SiteIn
from opsline.inventory.models import Equipment, Product
from opsline.logistics import queries as logistics_queries
from opsline.logistics.models import EquipmentFeeRule
from opsline.orders import service as orders
from opsline.orders.models import ProductOrderItem
from opsline.orders.schemas import OrderIn, OrderItemIn
from opsline.partners import exposure
from opsline.partners.models import PartnerServiceOrder

from logistics_helpers import loaned_router
from partners_helpers import line

TZ = zone("Africa/Johannesburg")
TODAY = date(2026, 11, 23)


def _journey(session, now, actor):  # type: ignore[no-untyped-def]
    acc = customers.create_account(session, data=AccountIn(name="Thabo Nkosi", email="thabo@example.co.za", segment_code="consumer", party_kind="person",
                                                           sites=[SiteIn(line1="12 Rivonia Road", city="Johannesburg", fno_coverage=["openserve"])]),
                                   now=now, actor=actor)
    session.flush()
    site = customers.account_360(session, account_id=acc.id)["sites"][0]["id"]
    order = orders.place_order(session, data=OrderIn(account_id=acc.id, items=[OrderItemIn(offering_id=catalog.get_offering_by_code(session, code="FIB-OS-100-100-24M").id,
                                                                                          site_id=site)]), now=now, tz=TZ, actor=actor)
    item = session.execute(select(ProductOrderItem).where(ProductOrderItem.order_id == order.id)).scalar_one()
    orders.on_partner_order_update(session, service_order_id=item.partner_service_order_id, order_item_id=item.id, state="completed",
                                   confirmed_date=TODAY - timedelta(days=60), reason=None, now=now, tz=TZ, actor=actor)
    j = service.request_cancellation(session, account_id=acc.id, product_id=item.result_product_id, reason_code="price", requester="account_holder",
                                     verified=True, now=now, tz=TZ, actor=actor)
    session.flush()
    return j


def _steps(session, j):  # type: ignore[no-untyped-def]
    return {s.code: s for s in session.execute(select(CancellationStep).where(CancellationStep.journey_id == j.id)).scalars()}


def _late(session, step, hours: int, now) -> None:  # type: ignore[no-untyped-def]
    session.execute(update(CancellationStep).where(CancellationStep.id == step.id).values(due_at=now - timedelta(hours=hours)))
    session.expire_all()


def _since(now):  # type: ignore[no-untyped-def]
    return reports._since(now, TZ, 12)


def test_breaches_are_grouped_by_inferred_cause_until_a_cause_is_recorded_on_the_step(session, now, actor):
    j = _journey(session, now, actor)
    steps = _steps(session, j)
    _late(session, steps["notice"], 30, now)
    _late(session, steps["fno_deactivation"], 5, now)
    by = {c["cause_code"]: c for c in reports.breaches_by_cause(session, since=_since(now), now=now, today=TODAY)["items"]}
    assert (by["none"]["count"], by["none"]["cause"], by["waiting_on_fno"]["count"]) == (1, "Not yet analysed", 1)
    assert [b["cause_code"] for b in reports.breaches(session, since=_since(now), now=now, tz=TZ, cause="waiting_on_fno")] == ["waiting_on_fno"]
    audits = session.execute(select(func.count(AuditEvent.id))).scalar_one()
    prevention.set_breach_cause(session, step_id=steps["notice"].id, cause_code="capacity", note="two coordinators on leave", now=now, actor=actor)
    session.flush()
    by = {c["cause_code"]: c for c in reports.breaches_by_cause(session, since=_since(now), now=now, today=TODAY)["items"]}
    assert "none" not in by and by["capacity"]["count"] == 1 and by["capacity"]["open"] == 1 and by["capacity"]["steps"] == {"Notice & penalty confirmed": 1}
    rows = reports.breaches(session, since=_since(now), now=now, tz=TZ, cause="capacity")
    assert [(r["step_id"], r["cause_recorded"], r["cause"], r["late_hours"]) for r in rows] == [(steps["notice"].id, True, "two coordinators on leave", 30)]
    assert session.execute(select(func.count(AuditEvent.id))).scalar_one() == audits + 1
    # changed later: one row per step, the change audited with its before
    prevention.set_breach_cause(session, step_id=steps["notice"].id, cause_code="misrouted", note=None, now=now, actor=actor)
    session.flush()
    assert session.execute(select(func.count(CancellationBreachCause.id))).scalar_one() == 1
    last = session.execute(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).scalar_one()
    assert (last.action, last.before["cause_code"], last.after["cause_code"]) == ("breach_cause_set", "capacity", "misrouted")


@pytest.mark.parametrize("case,field", [("in_time", "step_id"), ("unknown_cause", "cause_code"), ("no_step", "step_id"), ("blank", "cause_code")])
def test_a_cause_for_a_step_not_in_breach_or_an_unknown_cause_is_refused_and_nothing_changes(session, now, actor, case, field):
    j = _journey(session, now, actor)
    steps = _steps(session, j)
    _late(session, steps["notice"], 3, now)
    step_id = {"in_time": steps["final_account"].id, "no_step": 987654}.get(case, steps["notice"].id)
    cause = {"unknown_cause": "gremlins", "blank": " "}.get(case, "capacity")
    before = session.execute(select(func.count(AuditEvent.id))).scalar_one()
    with pytest.raises(prevention.UnableToSetBreachCause) as err:
        prevention.set_breach_cause(session, step_id=step_id, cause_code=cause, note="x", now=now, actor=actor)
    assert err.value.field == field
    assert session.execute(select(func.count(CancellationBreachCause.id))).scalar_one() == 0
    assert session.execute(select(func.count(AuditEvent.id))).scalar_one() == before


def test_a_prevention_action_goes_open_in_progress_done_audited_and_shows_overdue_until_done(session, now, actor):
    a = prevention.add_action(session, cause_code="waiting_on_fno", step_code="fno_deactivation", title="Weekly call with Openserve on late deactivations",
                              owner="Lerato (coordinator lead)", due_date=TODAY - timedelta(days=2), now=now, actor=actor)
    later = prevention.add_action(session, cause_code="capacity", title="Cross-train two billing analysts", owner="Sipho", due_date=TODAY + timedelta(days=9),
                                  now=now, actor=actor)
    session.flush()
    items = prevention.list_actions(session, today=TODAY)
    assert [(i["id"], i["overdue"]) for i in items] == [(a["id"], True), (later["id"], False)]
    assert prevention.action_counts(session, today=TODAY) == {"by_cause": {"waiting_on_fno": {"open": 1, "overdue": 1}, "capacity": {"open": 1, "overdue": 0}},
                                                             "open": 2, "overdue": 1}
    by = {c["cause_code"]: c for c in reports.breaches_by_cause(session, since=_since(now), now=now, today=TODAY)["items"]}
    assert (by["waiting_on_fno"]["actions_open"], by["waiting_on_fno"]["actions_overdue"], by["waiting_on_fno"]["count"]) == (1, 1, 0)
    moved = prevention.update_action(session, action_id=a["id"], title=a["title"], owner="Lerato", due_date=TODAY + timedelta(days=7), now=now, actor=actor)
    assert moved["owner"] == "Lerato" and moved["due_date"] == TODAY + timedelta(days=7)
    assert prevention.act(session, action_id=a["id"], action="start", reason=None, now=now, actor=actor)["state"] == "in_progress"
    done = prevention.act(session, action_id=a["id"], action="complete", reason="FNO escalation path agreed", now=now, actor=actor)
    assert (done["state"], done["outcome"], done["buttons"]) == ("done", "FNO escalation path agreed", [])
    session.flush()
    trail = session.execute(select(AuditEvent.action).where(AuditEvent.entity_type == "cancellation_prevention_action", AuditEvent.entity_id == str(a["id"]))
                            .order_by(AuditEvent.id)).scalars().all()
    assert trail == ["created", "updated", "start", "complete"]
    with pytest.raises(TransitionNotAllowed):
        prevention.act(session, action_id=a["id"], action="drop", reason="too late", now=now, actor=actor)
    with pytest.raises(prevention.UnableToSavePreventionAction) as err:
        prevention.update_action(session, action_id=a["id"], title="x", owner="y", due_date=TODAY, now=now, actor=actor)
    assert err.value.field == "action_id"
    with pytest.raises(ReasonRequired):
        prevention.act(session, action_id=later["id"], action="drop", reason="  ", now=now, actor=actor)
    assert session.get(CancellationPreventionAction, later["id"]).state == "open"


@pytest.mark.parametrize("kw,field", [({"cause_code": "gremlins"}, "cause_code"), ({"title": "  "}, "title"), ({"owner": ""}, "owner"),
                                      ({"due_date": None}, "due_date"), ({"step_code": "teleport"}, "step_code"), ({"title": "x" * 301}, "title")])
def test_a_prevention_action_with_a_bad_field_is_refused_naming_it_and_nothing_is_saved(session, now, actor, kw, field):
    args = dict(cause_code="capacity", title="Hire a temp", owner="Sipho", due_date=TODAY) | kw
    before = session.execute(select(func.count(AuditEvent.id))).scalar_one()
    with pytest.raises(prevention.UnableToSavePreventionAction) as err:
        prevention.add_action(session, now=now, actor=actor, **args)
    assert err.value.field == field
    assert session.execute(select(func.count(CancellationPreventionAction.id))).scalar_one() == 0
    assert session.execute(select(func.count(AuditEvent.id))).scalar_one() == before


def _delete_order(session, now, actor, *, partner, requested, due=None, confirmed=None, state="completed"):  # type: ignore[no-untyped-def]
    account_id, site_id, product_id = line(session, now, actor, partner=partner, coverage=(partner,))
    so = PartnerServiceOrder(partner_code=partner, account_id=account_id, product_id=product_id, site_id=site_id, action="delete", state=state,
                             external_ref=f"OPS-SO-T{product_id}", requested_date=requested, due_date=due or requested, confirmed_date=confirmed,
                             attempts=1, created_at=now, updated_at=now)
    session.add(so)
    session.flush()
    return so


def test_leakage_per_fno_and_month_is_partners_exposure_split_by_effective_month_with_drill_down(session, now, actor):
    oct_os = _delete_order(session, now, actor, partner="openserve", requested=date(2026, 10, 26), confirmed=date(2026, 11, 5))
    nov_os = _delete_order(session, now, actor, partner="openserve", requested=date(2026, 11, 3), confirmed=date(2026, 11, 13))
    nov_ff = _delete_order(session, now, actor, partner="frogfoot", requested=date(2026, 11, 18), due=date(2026, 11, 20), state="inProgress")
    _delete_order(session, now, actor, partner="openserve", requested=date(2026, 11, 10), confirmed=date(2026, 11, 10))  # on time: no leakage
    r = reports.leakage(session, now=now, tz=TZ)
    cells = {(i["month"], i["partner_code"]): (i["orders"], i["amount_minor"], i["growing"]) for i in r["items"]}
    ex = {i["id"]: i["amount_minor"] for i in exposure.exposure(session, today=TODAY)["items"]}
    assert cells == {("2026-10", "openserve"): (1, ex[oct_os.id], 0), ("2026-11", "openserve"): (1, ex[nov_os.id], 0), ("2026-11", "frogfoot"): (1, 8000, 1)}
    assert ex[nov_os.id] == 14795  # R450 a month, 10 days: partners.exposure's own worked figure
    assert r["total"].minor == exposure.exposure(session, today=TODAY)["total_minor"] and r["growing"] == 1
    assert r["chart"]["data"]["labels"] == ["2026-10", "2026-11"]
    d = reports.leakage_orders(session, now=now, tz=TZ, partner_code="openserve", month="2026-11")
    assert [i["id"] for i in d["items"]] == [nov_os.id] and d["total"].minor == 14795
    with pytest.raises(Exception) as err:
        reports.leakage_orders(session, now=now, tz=TZ, partner_code="openserve", month="November")
    assert getattr(err.value, "field", None) == "month"
    assert nov_ff.id in ex


def test_equipment_recovery_per_month_fno_and_courier_agrees_with_logistics_and_values_what_is_still_out(session, now, actor):
    devices = []
    for partner, end, state in (("openserve", date(2026, 10, 31), "returned"), ("openserve", date(2026, 10, 31), "awaiting_return"),
                                ("vumatel", date(2026, 11, 15), "awaiting_return"), ("vumatel", date(2026, 11, 15), "in_stock")):
        _acc, product_id, router = loaned_router(session, now, actor, partner=partner)
        session.execute(update(Product).where(Product.id == product_id).values(end_date=end, state="terminated"))
        session.execute(update(Equipment).where(Equipment.id == router.id).values(state=state))
        devices.append(router)
    session.flush()
    r = reports.equipment_recovery(session, now=now, tz=TZ)
    cells = {(i["month"], i["fno"], i["courier"]): (i["due"], i["back"], i["out"]) for i in r["items"]}
    assert cells == {("2026-10", "openserve", ""): (2, 1, 1), ("2026-11", "vumatel", ""): (2, 1, 1)}
    assert (r["due"], r["back"], r["rate"]) == (4, 2, 50.0)
    theirs = logistics_queries.recovery_chart(session, today=TODAY, tz=TZ)
    assert (theirs["due"], theirs["back"], theirs["rate"]) == (r["due"], r["back"], r["rate"])
    fee = session.execute(select(EquipmentFeeRule.fee_minor).where(EquipmentFeeRule.model == devices[0].model)).scalar_one()
    assert fee > 0 and r["value"].minor == 2 * fee  # two routers still out, each valued at its unreturned-equipment fee
    d = reports.equipment_devices(session, now=now, tz=TZ, month="2026-10", fno="openserve", courier="")
    assert [(i["id"], i["outstanding"]) for i in d["items"]] == [(devices[1].id, True), (devices[0].id, False)]
