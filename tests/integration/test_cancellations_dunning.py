"""Discontinuance for non-payment on SQLite and PostgreSQL: a debtors person accepts a dunning discontinuance and the
cancellation journey runs (reason non_payment, retention skipped by policy, the FNO's cut-off only, linked both ways),
once; an open journey is linked; the final account issues from the journey; bad input changes nothing."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from sqlalchemy import func, select

from opsline.cancellations import dunning, followups, service
from opsline.cancellations.models import CancellationJourney, CancellationPolicy, CancellationStep
from opsline.core.errors import InvalidInput
from opsline.core.events import Actor, AuditEvent
from opsline.core.lifecycle import ReasonRequired, TransitionNotAllowed
from opsline.customers.models import Memo
from opsline.debtors import actions
from opsline.debtors.models import DunningAction, DunningRun, DunningStep
from opsline.inventory.models import Product
from opsline.partners.models import PartnerServiceOrder
from tests.integration.test_cancellations_journey import TZ, _line

CLERK = Actor(name="dawie", roles=frozenset({"debtors_clerk"}))
NOTICE = datetime(2026, 11, 10, 7, 0, tzinfo=timezone.utc)  # before Openserve's 15th: its cut-off ends the line at month end


def _proposed(session, account_id: int, action: str = "discontinuance", on: date = date(2026, 11, 10)) -> DunningAction:  # type: ignore[no-untyped-def]
    step = session.execute(select(DunningStep).where(DunningStep.action == action).order_by(DunningStep.id).limit(1)).scalar_one()
    run = session.execute(select(DunningRun).where(DunningRun.run_date == on)).scalar_one_or_none()
    if run is None:
        run = DunningRun(run_date=on, state="completed", started_at=NOTICE, finished_at=NOTICE, started_by="test", currency="ZAR", summary={})
        session.add(run)
        session.flush()
    a = DunningAction(run_id=run.id, run_date=on, account_id=account_id, policy_id=step.policy_id, step_id=step.id, position=step.position,
                      action=action, handled_by="person", state="proposed", days_overdue=50, overdue_minor=180000, balance_minor=180000,
                      currency="ZAR", created_at=NOTICE)
    session.add(a)
    session.flush()
    return a


def _journeys(session, account_id: int) -> list[CancellationJourney]:  # type: ignore[no-untyped-def]
    return list(session.execute(select(CancellationJourney).where(CancellationJourney.account_id == account_id).order_by(CancellationJourney.id)).scalars())


def _counts(session):  # type: ignore[no-untyped-def]
    return tuple(session.execute(select(func.count()).select_from(m)).scalar_one()
                 for m in (CancellationJourney, CancellationStep, PartnerServiceOrder, Memo, AuditEvent))


def test_accepting_a_discontinuance_opens_a_non_payment_journey_at_the_fno_step_dated_by_the_fno_cut_off_only(session, actor):
    acc, _, product = _line(session, NOTICE, actor)
    a = _proposed(session, acc)
    actions.decide(session, action_id=a.id, decision="accept", reason="no payment after the letter of demand", now=NOTICE, actor=CLERK)
    [j] = _journeys(session, acc)
    assert j.reason_code == "non_payment" and j.channel == "dunning" and j.retention_outcome == "skipped"
    assert f"DUN-{a.id}" in j.requester_name and "dawie" in j.requester_name and f"DUN-{a.id}" in j.notes
    # no CPA customer notice (it would run to 8 Dec): notice on the 10th, before the FNO's 15th, ends the line at month end
    assert not j.cpa_applies and j.effective_date == date(2026, 12, 1) and "non-payment" in j.date_explanation
    assert j.etf_minor and j.etf_minor > 0  # the contract is ended early: the fee is charged (capped for a consumer)
    assert j.state == "deactivation_sent" and j.current_step == "fno_deactivation"
    so = session.get(PartnerServiceOrder, j.service_order_id)
    assert so.action == "delete" and so.requested_date == date(2026, 12, 1)
    assert session.get(Product, product.id).state == "pendingTerminate"
    assert a.state == "accepted" and a.decided_by == "dawie" and j.reference in a.note and "opened" in a.note
    memo = session.execute(select(Memo.body).where(Memo.account_id == acc, Memo.category == "debtors")).scalars().all()
    assert any(j.reference in m and f"DUN-{a.id}" in m for m in memo)
    assert dunning.journeys_for_dunning(session, account_id=acc, dunning_ref=f"DUN-{a.id}") == [
        {"id": j.id, "reference": j.reference, "state": "deactivation_sent", "opened": True}]
    who = session.execute(select(AuditEvent.actor).where(AuditEvent.entity_type == "cancellation_journey", AuditEvent.entity_id == str(j.id),
                                                         AuditEvent.action == "confirm")).scalar_one()
    assert "dawie" in who and f"DUN-{a.id}" in who


@pytest.fixture
def policy(session):  # type: ignore[no-untyped-def]
    return session.execute(select(CancellationPolicy).where(CancellationPolicy.reason_code == "non_payment")).scalar_one()


def test_the_seeded_non_payment_policy_skips_retention_and_allows_no_withdrawal_window(policy):
    assert policy.skip_retention and policy.withdraw_days_before == 0


def test_a_policy_that_keeps_retention_leaves_the_journey_at_retention_for_the_coordinator(session, actor, policy):
    policy.skip_retention = False
    acc, _, product = _line(session, NOTICE, actor)
    a = _proposed(session, acc)
    actions.decide(session, action_id=a.id, decision="accept", reason=None, now=NOTICE, actor=CLERK)
    [j] = _journeys(session, acc)
    assert j.state == "requested" and j.current_step == "retention" and j.effective_date is None


def test_a_second_accept_is_refused_and_never_opens_a_second_journey(session, actor):
    acc, _, product = _line(session, NOTICE, actor)
    a = _proposed(session, acc)
    actions.decide(session, action_id=a.id, decision="accept", reason=None, now=NOTICE, actor=CLERK)
    before = _counts(session)
    with pytest.raises(TransitionNotAllowed):
        actions.decide(session, action_id=a.id, decision="accept", reason=None, now=NOTICE, actor=CLERK)
    assert _counts(session) == before and len(_journeys(session, acc)) == 1


def test_an_account_with_an_open_journey_is_linked_not_given_a_second_one(session, actor):
    acc, _, product = _line(session, NOTICE, actor)
    mine = service.request_cancellation(session, account_id=acc, product_id=product.id, reason_code="price", requester="account_holder",
                                        verified=True, now=NOTICE, tz=TZ, actor=actor)
    a = _proposed(session, acc)
    actions.decide(session, action_id=a.id, decision="accept", reason=None, now=NOTICE, actor=CLERK)
    assert [j.id for j in _journeys(session, acc)] == [mine.id]
    assert mine.reason_code == "price" and mine.state == "requested"  # the customer's own journey goes on as it was
    assert mine.reference in a.note and "linked" in a.note
    memos = session.execute(select(Memo.body).where(Memo.account_id == acc, Memo.category == "cancellations")).scalars().all()
    assert any(m.startswith(mine.reference) and f"DUN-{a.id}" in m for m in memos)


def test_accepting_the_final_account_step_after_the_discontinuance_links_the_same_journey(session, actor):
    acc, _, product = _line(session, NOTICE, actor)
    a = _proposed(session, acc)
    actions.decide(session, action_id=a.id, decision="accept", reason=None, now=NOTICE, actor=CLERK)
    fin = _proposed(session, acc, action="final_account", on=date(2026, 11, 25))
    actions.decide(session, action_id=fin.id, decision="accept", reason=None, now=NOTICE, actor=CLERK)
    [j] = _journeys(session, acc)
    assert j.reference in fin.note and dunning.journeys_for_dunning(session, account_id=acc, dunning_ref=f"DUN-{fin.id}")[0]["id"] == j.id


def test_the_journey_opened_by_dunning_issues_the_final_account_with_the_early_termination_fee(session, actor):
    acc, _, product = _line(session, NOTICE, actor)
    a = _proposed(session, acc)
    actions.decide(session, action_id=a.id, decision="accept", reason=None, now=NOTICE, actor=CLERK)
    [j] = _journeys(session, acc)
    so = session.get(PartnerServiceOrder, j.service_order_id)
    later = datetime(2026, 12, 2, 7, 0, tzinfo=timezone.utc)
    service.record_fno_confirmation(session, journey_id=j.id, line_ref=so.external_ref, confirmed_date=date(2026, 12, 1), now=later, tz=TZ, actor=actor)
    assert j.state == "equipment_collection" and session.get(Product, product.id).end_date == date(2026, 12, 1)
    q = followups.final_account_quote(session, journey_id=j.id, now=later)
    # the early-termination fee the delete order queued is on the final account; the router not yet back is shown at risk
    # (its unreturned-equipment fee follows the journey's grace period through logistics)
    assert [x["description"] for x in q["lines"] if x["group"] == "queued"] == [f"Early termination fee: {x['description']}" for x in q["lines"][:1]]
    assert q["etf"][0]["already_queued"] and q["equipment_at_risk"]
    res = followups.issue_final_account(session, journey_id=j.id, now=later, tz=TZ, actor=actor)
    assert res["document"] == "invoice" and res["number"] and res["total_minor"] == q["total"].minor
    steps = {s.code: s for s in session.execute(select(CancellationStep).where(CancellationStep.journey_id == j.id)).scalars()}
    assert steps["final_account"].state == "done" and res["reference"] in steps["final_account"].note


def test_an_account_with_nothing_live_refuses_the_accept_naming_why_and_nothing_changes(session, actor):
    acc, _, product = _line(session, NOTICE, actor)
    product.state = "terminated"
    product.end_date = date(2026, 11, 1)
    a = _proposed(session, acc)
    before = _counts(session)
    with pytest.raises(dunning.UnableToDiscontinue) as e:
        actions.decide(session, action_id=a.id, decision="accept", reason=None, now=NOTICE, actor=CLERK)
    assert e.value.field == "action_id" and "no active or suspended product" in str(e.value)
    session.refresh(a)
    assert a.state == "proposed" and a.decided_by is None and _counts(session) == before


def test_dismissing_without_a_reason_or_an_unknown_decision_is_refused_and_opens_nothing(session, actor):
    acc, _, product = _line(session, NOTICE, actor)
    a = _proposed(session, acc)
    before = _counts(session)
    with pytest.raises(ReasonRequired):
        actions.decide(session, action_id=a.id, decision="dismiss", reason="  ", now=NOTICE, actor=CLERK)
    with pytest.raises(InvalidInput) as e:
        actions.decide(session, action_id=a.id, decision="cease", reason=None, now=NOTICE, actor=CLERK)
    assert e.value.field == "decision"
    session.refresh(a)
    assert a.state == "proposed" and _counts(session) == before
    actions.decide(session, action_id=a.id, decision="dismiss", reason="paid at the branch", now=NOTICE, actor=CLERK)
    assert a.state == "dismissed" and _journeys(session, acc) == [] and a.note is None


def test_two_people_accepting_at_once_open_one_journey_and_the_second_is_refused(engine, factory, actor):
    if engine.dialect.name != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    import threading

    with factory.begin() as s:
        acc, _, product = _line(s, NOTICE, actor)
        aid = _proposed(s, acc).id
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def go(who: str) -> None:
        with factory() as s:
            barrier.wait()
            try:
                actions.decide(s, action_id=aid, decision="accept", reason=None, now=NOTICE, actor=Actor(name=who, roles=CLERK.roles))
                s.commit()
                outcomes.append("accepted")
            except TransitionNotAllowed:
                s.rollback()
                outcomes.append("refused")

    ts = [threading.Thread(target=go, args=(w,)) for w in ("dawie", "dineo")]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(outcomes) == ["accepted", "refused"]
    with factory() as s:
        assert len(_journeys(s, acc)) == 1


def test_over_http_an_accept_with_nothing_to_end_is_a_problem_naming_the_field_and_the_action_stays_proposed(client_as, factory, actor):
    with factory.begin() as s:
        acc, _, product = _line(s, NOTICE, actor)
        product = s.get(Product, product.id)
        product.state, product.end_date = "terminated", date(2026, 11, 1)
        aid = _proposed(s, acc).id
    c = client_as("debtors_clerk")
    r = c.post(f"/debtors/actions/{aid}/decide", data={"decision": "accept"}, follow_redirects=False)
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["field"] == "action_id" and "no active or suspended product" in r.json()["detail"]
    with factory() as s:
        assert s.get(DunningAction, aid).state == "proposed" and _journeys(s, acc) == []


def test_over_http_the_clerk_accepts_and_the_journey_opens_named_on_the_desk_redirect(client_as, factory, actor):
    with factory.begin() as s:
        acc, _, product = _line(s, NOTICE, actor)
        aid = _proposed(s, acc).id
    c = client_as("debtors_clerk")
    r = c.post(f"/debtors/actions/{aid}/decide", data={"decision": "accept"}, follow_redirects=False)
    assert r.status_code == 303
    with factory() as s:
        [j] = _journeys(s, acc)
        assert j.reason_code == "non_payment" and j.state == "deactivation_sent" and j.reference in s.get(DunningAction, aid).note
    page = client_as("cancellations_coordinator").get(f"/cancellations/{j.id}")
    assert page.status_code == 200 and f"opened by dunning DUN-{aid}" in page.text and "via dunning" in page.text


def test_a_line_suspended_by_dunning_is_discontinued_through_the_same_journey(session, actor):
    from opsline.customers import service as customers

    acc, _, product = _line(session, NOTICE, actor)
    customers.transition_account(session, account_id=acc, action="suspend", now=NOTICE, actor=actions.SYSTEM, reason="dunning: suspension (DUN-0)")
    session.flush()
    session.refresh(product)
    assert product.state == "suspended"
    a = _proposed(session, acc)
    actions.decide(session, action_id=a.id, decision="accept", reason=None, now=NOTICE, actor=CLERK)
    [j] = _journeys(session, acc)
    assert j.state == "deactivation_sent" and j.effective_date == date(2026, 12, 1)
    assert session.get(PartnerServiceOrder, j.service_order_id).action == "delete"
    # a suspended account may cease its lines, but still takes no new ones
    from opsline.catalog import service as catalog
    from opsline.orders import service as orders
    from opsline.orders.schemas import OrderIn, OrderItemIn

    with pytest.raises(orders.OrderNotAllowed) as e:
        orders.place_order(session, data=OrderIn(account_id=acc, items=[OrderItemIn(offering_id=catalog.get_offering_by_code(session, code="FIB-OS-100-100-24M").id,
                                                                                    site_id=product.site_id)]), now=NOTICE, tz=TZ, actor=actor)
    assert e.value.field == "account_id" and "suspended" in e.value.detail
