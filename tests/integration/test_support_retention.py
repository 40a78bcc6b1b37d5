"""Retention joined up (issue 17): an accepted plan change places its change order with the outcome, a declined offer
opens the cancellation journey, every refusal leaves nothing behind, retention rate by reason and agent — on SQLite
and PostgreSQL."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from opsline.cases import retention, service
from opsline.cases.models import CaseLink, RetentionOffer
from opsline.cases.schemas import CaseIn
from opsline.core.errors import OpslineError
from opsline.core.events import Actor
from opsline.core.localtime import zone
from opsline.inventory.models import Product
from opsline.orders.models import ProductOrder

sys.path.insert(0, str(Path(__file__).parent))
from support_helpers import customer, offering  # noqa: E402

TZ = zone("Africa/Johannesburg")


def _setup(session, now, actor, name="Ayanda One"):  # type: ignore[no-untyped-def]
    acc = customer(session, now, actor, name=name, offering_id=offering(session, code="MOB-SMART-L-24")[0])
    pid = session.execute(select(Product.id).where(Product.account_id == acc)).scalar_one()
    c = service.open_case(session, data=CaseIn(account_id=acc, category_code="retentions", subject="Wants to cancel: too expensive"), now=now, actor=actor)
    return acc, pid, c


def _counts(session):  # type: ignore[no-untyped-def]
    return tuple(session.execute(select(func.count()).select_from(m)).scalar_one() for m in (RetentionOffer, ProductOrder, CaseLink))


def test_an_accepted_plan_change_places_the_change_order_with_the_outcome_and_links_it_to_the_case(session, now, actor):
    acc, pid, c = _setup(session, now, actor)
    cheaper = offering(session, code="MOB-DATA-10GB")[0]
    row = retention.record(session, case_id=c.id, offer="Move to 10 GB data at R199", outcome="accepted", reason_code="price", product_id=pid,
                           offering_id=cheaper, now=now, tz=TZ, actor=actor)
    order = session.get(ProductOrder, row.change_order_id)
    assert (row.outcome, row.reason_code, order.account_id, order.channel) == ("accepted", "price", acc, "retention")
    link = session.execute(select(CaseLink).where(CaseLink.case_id == c.id, CaseLink.target_type == "order")).scalar_one()
    assert link.target_ref == str(order.id)
    new = session.execute(select(Product).where(Product.replaces_product_id == pid)).scalar_one()
    assert new.offering_id == cheaper


def test_a_declined_offer_opens_the_cancellation_journey_in_the_same_action(session, now, actor):
    from opsline.cancellations.models import CancellationJourney

    _acc, _pid, c = _setup(session, now, actor)
    retention.record(session, case_id=c.id, offer="3 months at half price", outcome="declined", reason_code="competitor", now=now, tz=TZ, actor=actor)
    assert session.execute(select(func.count()).select_from(CancellationJourney).where(CancellationJourney.case_id == c.id)).scalar_one() == 1
    assert session.execute(select(CaseLink.target_type).where(CaseLink.case_id == c.id)).scalars().all().count("cancellation") == 1


def test_bad_retention_input_names_the_field_and_nothing_is_recorded_or_ordered(session, now, actor):
    _acc, pid, c = _setup(session, now, actor)
    other_acc, other_pid, _ = _setup(session, now, actor, name="Bongi Two")
    cheaper = offering(session, code="MOB-DATA-10GB")[0]
    session.commit()
    before = _counts(session)
    for kw, field in [(dict(outcome="accepted", reason_code="bored"), "reason_code"),
                      (dict(outcome="accepted", reason_code="price", product_id=pid), "offering_id"),
                      (dict(outcome="declined", reason_code="price", product_id=pid, offering_id=cheaper), "outcome")]:
        with pytest.raises(retention.UnableToRecordRetention) as e:
            retention.record(session, case_id=c.id, offer="x", now=now, tz=TZ, actor=actor, **kw)
        assert e.value.field == field
        session.rollback()
    with pytest.raises(OpslineError):  # another account's product: the order is refused, and the outcome with it
        retention.record(session, case_id=c.id, offer="x", outcome="accepted", reason_code="price", product_id=other_pid, offering_id=cheaper,
                         now=now, tz=TZ, actor=actor)
    session.rollback()
    assert _counts(session) == before


def test_retention_rate_by_reason_and_agent_counts_accepted_over_decided(session, now, actor):
    _acc, pid, c = _setup(session, now, actor)
    lindiwe = Actor(name="lindiwe", roles=frozenset({"admin"}))
    for who, outcome, reason in [(actor, "accepted", "price"), (actor, "declined", "price"), (actor, "offer_made", "price"),
                                 (lindiwe, "accepted", "competitor"), (lindiwe, "accepted", "price")]:
        retention.record(session, case_id=c.id, offer="an offer", outcome=outcome, reason_code=reason, now=now, tz=TZ, actor=who)
        if outcome == "declined":  # the journey is open now; later offers go on a fresh case
            c = _setup(session, now, actor, name=f"Next {reason}")[2]
    r = retention.report(session)
    reason = {x["key"]: x for x in r["by_reason"]}
    assert (reason["price"]["accepted"], reason["price"]["declined"], reason["price"]["rate"]) == (2, 1, 0.667)
    assert (reason["competitor"]["decided"], reason["competitor"]["rate"]) == (1, 1.0)
    agent = {x["key"]: x for x in r["by_agent"]}
    assert (agent["tester"]["rate"], agent["lindiwe"]["rate"]) == (0.5, 1.0)
