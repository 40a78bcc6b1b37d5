"""The cancellation journey end to end on SQLite and PostgreSQL: request, retention, the effective date and penalty
(CPA s14 vs juristic, the FNO's cut-off around the 15th, month ends and holidays), the FNO deactivation through the
simulator, the checklist, withdrawal, closing, escalation, and every bad input leaving nothing changed."""

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, update

from opsline.cancellations import service
from opsline.cancellations.models import CancellationJourney, CancellationStep
from opsline.cancellations.rules import UnableToCancelProduct, fno_last_day, preview
from opsline.catalog import service as catalog
from opsline.core.events import AuditEvent
from opsline.core.localtime import zone
from opsline.customers import service as customers
from opsline.customers.models import Memo
from opsline.customers.schemas import AccountIn, SiteIn
from opsline.inventory.models import Equipment, Product
from opsline.notifications.models import Message
from opsline.orders import service as orders
from opsline.orders.models import ProductOrderItem
from opsline.orders.schemas import OrderIn, OrderItemIn
from opsline.partners.models import Partner, PartnerServiceOrder
from tests.integration.partners_helpers import MovingClock, worker

TZ = zone("Africa/Johannesburg")
TODAY = date(2026, 11, 23)


def _account(session, now, actor, *, kind="retail", coverage=("openserve", "vumatel"), second_site=False):  # type: ignore[no-untyped-def]
    sites = [SiteIn(line1="12 Rivonia Road", city="Johannesburg", fno_coverage=list(coverage))]
    if second_site:
        sites.append(SiteIn(label="New home", line1="4 Kloof Street", city="Cape Town", fno_coverage=list(coverage)))
    acc = customers.create_account(session, data=AccountIn(name="Thabo Nkosi", kind=kind, email="thabo@example.co.za",
                                                           segment_code="consumer" if kind == "retail" else "sme",
                                                           party_kind="person" if kind == "retail" else "organisation", sites=sites), now=now, actor=actor)
    session.flush()
    return acc.id, [s["id"] for s in customers.account_360(session, account_id=acc.id)["sites"]]


def _line(session, now, actor, *, partner="openserve", kind="retail", second_site=False, start=TODAY - timedelta(days=60)):  # type: ignore[no-untyped-def]
    """A live fibre line on a 24-month contract, activated through the orders service and the FNO's confirmation."""
    acc, sites = _account(session, now, actor, kind=kind, second_site=second_site)
    code = {"openserve": "FIB-OS-100-100-24M", "vumatel": "FIB-VU-100-100-24M"}[partner]
    order = orders.place_order(session, data=OrderIn(account_id=acc, items=[OrderItemIn(offering_id=catalog.get_offering_by_code(session, code=code).id, site_id=sites[0])]),
                               now=now, tz=TZ, actor=actor)
    item = session.execute(select(ProductOrderItem).where(ProductOrderItem.order_id == order.id)).scalar_one()
    orders.on_partner_order_update(session, service_order_id=item.partner_service_order_id, order_item_id=item.id, state="completed",
                                   confirmed_date=start, reason=None, now=now, tz=TZ, actor=actor)
    return acc, sites, session.get(Product, item.result_product_id)


def _request(session, now, actor, acc, product, **kw):  # type: ignore[no-untyped-def]
    args = dict(reason_code="price", requester="account_holder", verified=True) | kw
    return service.request_cancellation(session, account_id=acc, product_id=product.id, now=now, tz=TZ, actor=actor, **args)


def _counts(session):  # type: ignore[no-untyped-def]
    return tuple(session.execute(select(func.count()).select_from(m)).scalar_one()
                 for m in (CancellationJourney, CancellationStep, PartnerServiceOrder, ProductOrderItem, Memo, AuditEvent, Message))


def _steps(session, j):  # type: ignore[no-untyped-def]
    return {s.code: s for s in session.execute(select(CancellationStep).where(CancellationStep.journey_id == j.id)).scalars()}


# --- dates and penalty -------------------------------------------------------------------------------------------------

def test_fno_cut_off_on_the_15th_ends_this_month_and_after_it_the_end_of_next_month():
    assert fno_last_day(notice_date=date(2026, 11, 15), cutoff_day=15, notice_days=0)[0] == date(2026, 11, 30)
    assert fno_last_day(notice_date=date(2026, 11, 16), cutoff_day=15, notice_days=0)[0] == date(2026, 12, 31)
    assert fno_last_day(notice_date=date(2026, 12, 20), cutoff_day=15, notice_days=0)[0] == date(2027, 1, 31)
    # a leap February; a cut-off past the month's last day is the last day
    assert fno_last_day(notice_date=date(2028, 1, 31), cutoff_day=15, notice_days=0)[0] == date(2028, 2, 29)
    assert fno_last_day(notice_date=date(2027, 2, 28), cutoff_day=31, notice_days=0)[0] == date(2027, 2, 28)
    assert fno_last_day(notice_date=date(2026, 11, 23), cutoff_day=None, notice_days=30)[0] == date(2026, 12, 23)
    assert fno_last_day(notice_date=date(2026, 11, 23), cutoff_day=None, notice_days=0) == (None, None)


def test_consumer_on_contract_gets_cpa_notice_and_the_fno_month_end_after_the_cutoff_decides(session, now, actor):
    acc, _, product = _line(session, now, actor)
    p = preview(session, product_id=product.id, notice_date=TODAY)
    assert p["cpa_applies"] and not p["juristic"] and p["notice_business_days"] == 20
    cpa = next(r for r in p["rules"] if r["rule"] == "customer_notice")
    assert cpa["last_day"] == date(2026, 12, 22)  # 20 business days, skipping the Day of Reconciliation (16 Dec)
    fno = next(r for r in p["rules"] if r["rule"] == "fno_notice")
    assert fno["last_day"] == date(2026, 12, 31) and fno["decides"]  # notice on the 23rd: after Openserve's 15th
    assert p["effective_date"] == date(2027, 1, 1) and p["last_day"] == date(2026, 12, 31)
    fee = p["fee"]
    assert fee["fee"] is not None and fee["cap"] is not None and fee["fee"] <= fee["cap"]  # reasonable-penalty cap for a consumer


def test_before_the_cutoff_the_cpa_notice_outlasts_the_fno_month_end(session, now, actor):
    acc, _, product = _line(session, now, actor, start=date(2026, 9, 1))
    p = preview(session, product_id=product.id, notice_date=date(2026, 11, 10))
    by = {r["rule"]: r for r in p["rules"]}
    assert by["fno_notice"]["last_day"] == date(2026, 11, 30)
    assert by["customer_notice"]["last_day"] == date(2026, 12, 8) and by["customer_notice"]["decides"]
    assert p["effective_date"] == date(2026, 12, 9)


def test_cpa_notice_skips_christmas_and_the_day_of_reconciliation(session, now, actor):
    acc, _, product = _line(session, now, actor)
    p = preview(session, product_id=product.id, notice_date=date(2026, 12, 1))
    assert next(r for r in p["rules"] if r["rule"] == "customer_notice")["last_day"] == date(2026, 12, 31)  # 29 Dec without holidays


def test_juristic_person_is_not_covered_by_cpa_and_pays_the_uncapped_fee(session, now, actor):
    acc, _, product = _line(session, now, actor, kind="b2b")
    p = preview(session, product_id=product.id, notice_date=TODAY)
    assert p["juristic"] and not p["cpa_applies"]
    assert "not covered by CPA" in p["rules"][0]["label"]
    assert p["fee"]["cap"] is None and not p["fee"]["capped"]


def test_a_requested_date_before_the_earliest_allowed_is_refused_naming_the_field(session, now, actor):
    acc, _, product = _line(session, now, actor)
    from opsline.cancellations.rules import UnableToRequestCancellation

    with pytest.raises(UnableToRequestCancellation) as e:
        preview(session, product_id=product.id, notice_date=TODAY, requested_date=date(2026, 12, 15))
    assert e.value.field == "requested_date"
    assert preview(session, product_id=product.id, notice_date=TODAY, requested_date=date(2027, 2, 1))["last_day"] == date(2027, 1, 31)


# --- bad input ---------------------------------------------------------------------------------------------------------

def test_cancelling_an_already_terminated_product_is_refused_and_nothing_changes(session, now, actor):
    acc, _, product = _line(session, now, actor)
    session.execute(update(Product).where(Product.id == product.id).values(state="terminated", end_date=TODAY))
    session.expire_all()
    before = _counts(session)
    with pytest.raises(UnableToCancelProduct) as e:
        _request(session, now, actor, acc, product)
    assert "already terminated" in str(e.value) and e.value.field == "product_id"
    assert _counts(session) == before


@pytest.mark.parametrize("kw,field", [({"reason_code": "bored"}, "reason_code"), ({"verified": False}, "verified"),
                                      ({"requester": "deceased_estate", "documents": ""}, "documents"), ({"requester": "neighbour"}, "requester")])
def test_a_request_with_a_bad_field_is_refused_naming_it(session, now, actor, kw, field):
    acc, _, product = _line(session, now, actor)
    before = _counts(session)
    with pytest.raises(Exception) as e:
        _request(session, now, actor, acc, product, **kw)
    assert getattr(e.value, "field", None) == field
    assert _counts(session) == before


def test_a_second_journey_for_the_same_product_is_refused(session, now, actor):
    acc, _, product = _line(session, now, actor)
    j = _request(session, now, actor, acc, product)
    before = _counts(session)
    with pytest.raises(UnableToCancelProduct) as e:
        _request(session, now, actor, acc, product)
    assert j.reference in str(e.value)
    assert _counts(session) == before


def test_closing_with_an_open_step_is_refused_naming_the_steps(session, now, actor):
    acc, _, product = _line(session, now, actor)
    j = _request(session, now, actor, acc, product, reason_code="deceased", requester="deceased_estate", documents="death certificate; executor letter")
    before = _counts(session)
    with pytest.raises(service.JourneyNotClosable) as e:
        service.close(session, journey_id=j.id, now=now, actor=actor)
    assert "Notice & penalty confirmed" in str(e.value) and "FNO deactivation" in str(e.value)
    assert _counts(session) == before and j.state == "requested"


# --- the journey -------------------------------------------------------------------------------------------------------

def test_retention_is_skipped_by_policy_for_a_deceased_estate_and_offered_for_price(session, now, actor):
    acc, _, product = _line(session, now, actor)
    j = _request(session, now, actor, acc, product, reason_code="deceased", requester="deceased_estate", documents="death certificate")
    assert j.retention_outcome == "skipped" and _steps(session, j)["retention"].state == "skipped"
    acc2, _, product2 = _line(session, now, actor)
    j2 = _request(session, now, actor, acc2, product2)
    assert j2.retention_outcome is None and _steps(session, j2)["retention"].state == "open" and j2.current_step == "retention"
    with pytest.raises(service.UnableToConfirmCancellation) as e:
        service.confirm(session, journey_id=j2.id, now=now, tz=TZ, actor=actor)
    assert e.value.field == "retention"


def test_an_accepted_downgrade_retains_the_customer_and_places_the_change_order(session, now, actor):
    acc, _, product = _line(session, now, actor)
    j = _request(session, now, actor, acc, product)
    offers = service.retention_offers(session, product_id=product.id, on=TODAY)
    down = next(o for o in offers if o["kind"] == "downgrade")
    service.record_retention(session, journey_id=j.id, offer="", outcome="accepted", offering_id=down["offering_id"], now=now, tz=TZ, actor=actor)
    assert j.state == "retained" and j.retention_outcome == "accepted" and j.retention_order_id
    item = session.execute(select(ProductOrderItem).where(ProductOrderItem.order_id == j.retention_order_id)).scalar_one()
    assert item.action == "modify" and item.offering_id == down["offering_id"]
    assert all(s.state != "open" for s in _steps(session, j).values())


def test_happy_path_through_the_fno_simulator_to_close(session, factory, now, actor):
    session.execute(update(Partner).where(Partner.code == "openserve").values(simulator_reject_percent=0, simulator_outage=False))
    acc, _, product = _line(session, now, actor)
    j = _request(session, now, actor, acc, product)
    service.record_retention(session, journey_id=j.id, offer="R100 off for 6 months", outcome="declined", now=now, tz=TZ, actor=actor)
    service.confirm(session, journey_id=j.id, now=now, tz=TZ, actor=actor)
    assert j.state == "deactivation_sent" and j.effective_date == date(2027, 1, 1) and j.cpa_applies and j.etf_minor
    so = session.get(PartnerServiceOrder, j.service_order_id)
    assert so.action == "delete" and so.requested_date == date(2027, 1, 1) and product.state == "pendingTerminate"
    steps = _steps(session, j)
    assert steps["notice"].state == "done" and steps["customer_notified"].state == "done"
    assert steps["fno_deactivation"].owner == "openserve" and steps["fno_deactivation"].due_at is not None
    msg = session.execute(select(Message).where(Message.account_id == acc, Message.event == "cancellation.confirmed")).scalar_one()
    assert "31 Dec 2026" in msg.body and "R" in msg.body
    jid, pid = j.id, product.id
    session.commit()
    clock = MovingClock(now)
    w = worker(factory, clock)
    for _ in range(4):
        w.drain()
        clock.advance(seconds=40)
    session.expire_all()
    j = session.get(CancellationJourney, jid)
    so = session.get(PartnerServiceOrder, j.service_order_id)
    assert so.state == "completed" and so.confirmed_date == date(2027, 1, 4)  # the simulator: the next business day after New Year
    assert j.state == "equipment_collection" and j.fno_confirmed_date == so.confirmed_date
    assert session.get(Product, pid).state == "terminated" and session.get(Product, pid).end_date == so.confirmed_date
    steps = _steps(session, j)
    assert steps["fno_deactivation"].state == "done" and "openserve" in steps["fno_deactivation"].note
    assert steps["equipment"].due_at is not None and j.current_step == "equipment"
    router = session.execute(select(Equipment).where(Equipment.product_id == pid, Equipment.owner == "isp_loaned")).scalar_one()
    assert router.state == "awaiting_return"
    with pytest.raises(service.JourneyNotClosable):
        service.close(session, journey_id=jid, now=clock.at, actor=actor)
    service.complete_step(session, journey_id=jid, code="equipment", note="router received at the warehouse", now=clock.at, tz=TZ, actor=actor)
    assert j.state == "final_billing"
    service.complete_step(session, journey_id=jid, code="final_account", note="final invoice issued", now=clock.at, tz=TZ, actor=actor)
    service.close(session, journey_id=jid, now=clock.at, actor=actor)
    assert j.state == "closed" and j.current_step is None and j.closed_at
    memos = session.execute(select(Memo.body).where(Memo.account_id == acc, Memo.category == "cancellations")).scalars().all()
    assert len(memos) >= 6 and all(m.startswith(j.reference) for m in memos)
    acts = session.execute(select(AuditEvent.action).where(AuditEvent.entity_type == "cancellation_journey", AuditEvent.entity_id == str(jid))).scalars().all()
    assert {"requested", "start_retention", "confirm", "send_deactivation", "confirm_deactivation", "collect_equipment", "bill_final", "close"} <= set(acts)


def test_an_fno_confirmation_for_another_line_is_refused_and_the_right_one_applies(session, now, actor):
    acc, _, product = _line(session, now, actor)
    j = _request(session, now, actor, acc, product, reason_code="emigrating")
    service.confirm(session, journey_id=j.id, now=now, tz=TZ, actor=actor)
    _, _, other = _line(session, now, actor)
    before = _counts(session)
    with pytest.raises(service.UnableToRecordConfirmation) as e:
        service.record_fno_confirmation(session, journey_id=j.id, line_ref=other.partner_line_ref, confirmed_date=date(2027, 1, 1), now=now, tz=TZ, actor=actor)
    assert e.value.field == "line_ref" and product.partner_line_ref in str(e.value)
    assert _counts(session) == before and j.state == "deactivation_sent"
    # an FNO event for another line's service order leaves this journey alone
    service.on_service_order_event(session, service_order_id=j.service_order_id + 999, state="completed", confirmed_date=date(2027, 1, 1), reason=None,
                                   now=now, tz=TZ, actor=actor)
    assert j.state == "deactivation_sent"
    service.record_fno_confirmation(session, journey_id=j.id, line_ref=product.partner_line_ref, confirmed_date=date(2027, 1, 2), now=now, tz=TZ, actor=actor)
    session.expire_all()
    assert j.state == "equipment_collection" and j.fno_confirmed_date == date(2027, 1, 2) and product.state == "terminated"
    assert j.current_step == "equipment" and j.next_due_at is not None  # the board's columns follow the checklist


def test_withdrawal_before_the_cutoff_keeps_the_line_and_after_it_is_refused(session, now, actor):
    acc, _, product = _line(session, now, actor)
    j = _request(session, now, actor, acc, product, reason_code="emigrating")
    service.confirm(session, journey_id=j.id, now=now, tz=TZ, actor=actor)
    late = datetime(2026, 12, 28, 8, 0, tzinfo=timezone.utc)  # effective 1 Jan, cut-off 5 days before: 27 Dec
    before = _counts(session)
    with pytest.raises(service.WithdrawalNotAllowed) as e:
        service.withdraw(session, journey_id=j.id, reason="changed my mind", now=late, tz=TZ, actor=actor)
    assert e.value.field == "effective_date" and "2026-12-27" in str(e.value)
    assert _counts(session) == before and j.state == "deactivation_sent" and product.state == "pendingTerminate"
    service.withdraw(session, journey_id=j.id, reason="changed my mind", now=now + timedelta(days=3), tz=TZ, actor=actor)
    assert j.state == "withdrawn" and product.state == "active"
    assert all(s.state != "open" for s in _steps(session, j).values())


def test_relocation_journey_moves_the_line_without_gap_or_overlap(session, now, actor):
    acc, sites, product = _line(session, now, actor, second_site=True)
    j = _request(session, now, actor, acc, product, reason_code="moving", kind="relocation", new_site_id=sites[1])
    assert j.retention_outcome == "skipped"
    service.confirm(session, journey_id=j.id, now=now, tz=TZ, actor=actor)
    assert j.etf_minor is None and j.state == "deactivation_sent"
    item = session.get(ProductOrderItem, j.order_item_id)
    assert item.action == "modify"
    service.record_fno_confirmation(session, journey_id=j.id, line_ref=session.get(PartnerServiceOrder, j.service_order_id).external_ref,
                                    confirmed_date=date(2027, 1, 1), now=now, tz=TZ, actor=actor)
    new = session.get(Product, item.result_product_id)
    assert product.end_date == new.start_date == date(2027, 1, 1)
    assert j.state == "deactivation_confirmed"
    service.close(session, journey_id=j.id, now=now, actor=actor)
    assert j.state == "closed"


def test_escalation_flags_steps_due_within_a_day_once_and_tells_the_manager(session, now, actor):
    acc, _, product = _line(session, now, actor)
    j = _request(session, now, actor, acc, product)
    later = now + timedelta(days=2)
    res = service.escalate(session, now=later, tz=TZ)
    assert res["flagged"] == 3 and res["journeys"] == 1 and res["message_id"]
    session.refresh(j)
    assert j.at_risk and _steps(session, j)["retention"].at_risk
    assert service.escalate(session, now=later, tz=TZ)["flagged"] == 0


def test_a_declined_retention_offer_on_a_case_opens_the_journey_in_the_same_action(session, now, actor):
    from opsline.cases import service as cases
    from opsline.cases.schemas import CaseIn

    acc, _, product = _line(session, now, actor)
    c = cases.open_case(session, data=CaseIn(category_code="retentions", subject="Wants to cancel: too expensive", channel="call", account_id=acc),
                        now=now, actor=actor)
    cases.record_retention(session, case_id=c.id, offer="3 months at 50%", outcome="declined", now=now, actor=actor)
    j = session.execute(select(CancellationJourney).where(CancellationJourney.product_id == product.id)).scalar_one()
    assert j.channel == "case" and j.case_id == c.id and j.retention_outcome == "declined" and j.retention_offer == "3 months at 50%"
    assert _steps(session, j)["retention"].state == "done" and j.current_step == "notice"
    # a second declined offer finds the product busy and opens nothing more (the case's own change still stands)
    cases.record_retention(session, case_id=c.id, offer="free router upgrade", outcome="declined", now=now, actor=actor)
    assert session.execute(select(func.count()).select_from(CancellationJourney)).scalar_one() == 1


def test_the_hourly_escalation_job_flags_and_schedules_its_next_run_once(session, now, actor):
    from opsline.core.jobs import Job

    acc, _, product = _line(session, now, actor)
    _request(session, now, actor, acc, product)
    later = now + timedelta(days=2, minutes=7)
    out = service.escalation_job(session, {}, later, tz=TZ)
    service.escalation_job(session, {}, later, tz=TZ)
    assert out["flagged"] == 3
    nxt = session.execute(select(Job).where(Job.kind == service.ESCALATE_JOB, Job.run_at > later)).scalars().all()
    assert len(nxt) == 1


def test_a_relocation_journey_shows_billing_dates_neither_twice_nor_never(session, now, actor):
    from opsline.cancellations import queries

    acc, sites, product = _line(session, now, actor, second_site=True)
    j = _request(session, now, actor, acc, product, reason_code="moving", kind="relocation", new_site_id=sites[1])
    service.confirm(session, journey_id=j.id, now=now, tz=TZ, actor=actor)
    d = queries.detail(session, journey_id=j.id, now=now, tz=TZ)
    plan = d["relocation"]
    assert plan["new_billed_from"] == j.effective_date and plan["old_last_billed_day"] == j.effective_date - timedelta(days=1 - plan["overlap_days"])


from hypothesis import given, strategies as st  # noqa: E402


@given(st.dates(min_value=date(2024, 1, 1), max_value=date(2032, 12, 31)), st.integers(min_value=1, max_value=31), st.integers(min_value=0, max_value=60))
def test_the_fno_last_day_is_always_a_month_end_after_the_notice_and_at_most_the_next_one(notice, cutoff, notice_days):
    last, why = fno_last_day(notice_date=notice, cutoff_day=cutoff, notice_days=notice_days)
    earliest = notice + timedelta(days=notice_days)
    assert last >= earliest and (last + timedelta(days=1)).day == 1 and why
    months = (last.year - earliest.year) * 12 + last.month - earliest.month
    assert months in (0, 1)
    import calendar

    assert (months == 0) == (earliest.day <= min(cutoff, calendar.monthrange(earliest.year, earliest.month)[1]))
