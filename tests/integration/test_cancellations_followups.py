"""The "done when" journey: a consumer's fibre line under contract is cancelled, the FNO confirms, the courier is
booked through logistics, a failed and then a successful attempt, the router received at the warehouse, the final
account issued by billing to the confirmed date, the journey closed; collection bad input changes nothing."""

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from opsline.billing.final_account import FinalAccount
from opsline.cancellations import followups, service
from opsline.cancellations.models import CancellationStep
from opsline.inventory.models import Equipment
from opsline.logistics import service as logistics
from tests.integration.test_cancellations_journey import TZ, _line, _request, _steps


def _confirmed(session, now, actor):  # type: ignore[no-untyped-def]
    acc, _, product = _line(session, now, actor)
    j = _request(session, now, actor, acc, product, reason_code="emigrating")
    service.confirm(session, journey_id=j.id, now=now, tz=TZ, actor=actor)
    service.record_fno_confirmation(session, journey_id=j.id, line_ref=product.partner_line_ref, confirmed_date=date(2026, 12, 31), now=now, tz=TZ, actor=actor)
    assert j.state == "equipment_collection"
    return acc, product, j


def test_collection_attempts_warehouse_receipt_and_final_account_close_the_journey(session, now, actor):
    acc, product, j = _confirmed(session, now, actor)
    later = datetime(2027, 1, 4, 7, 0, tzinfo=timezone.utc)
    form = followups.collection_form(session, journey_id=j.id, now=later, tz=TZ)
    assert form["slots"] and form["equipment_ids"] and form["address"]
    slot = datetime.fromisoformat(form["slots"][0]["start"])
    c = followups.book_collection(session, journey_id=j.id, slot_start=slot, address=form["address"], contact_name="Thabo", contact_phone="082 555 0101",
                                  courier_code=form["slots"][0]["courier"], now=later, tz=TZ, actor=actor)
    assert c["reference"] == j.reference
    assert "booked" in _steps(session, j)["equipment"].note
    logistics.record_attempt(session, collection_id=c["id"], outcome="not_home", now=slot + timedelta(hours=1), actor=actor, tz=TZ)
    step = _steps(session, j)["equipment"]
    assert step.at_risk and "not home" in step.note and j.at_risk
    again = next(s for s in followups.collection_form(session, journey_id=j.id, now=slot, tz=TZ)["slots"] if datetime.fromisoformat(s["start"]) > slot)
    logistics.rebook_collection(session, collection_id=c["id"], slot_start=datetime.fromisoformat(again["start"]), now=slot + timedelta(hours=2), actor=actor, tz=TZ)
    logistics.record_attempt(session, collection_id=c["id"], outcome="collected", now=datetime.fromisoformat(again["start"]) + timedelta(hours=1), actor=actor, tz=TZ)
    router = session.execute(select(Equipment).where(Equipment.product_id == product.id, Equipment.owner == "isp_loaned")).scalar_one()
    logistics.receive_at_warehouse(session, equipment_ids=[router.id], condition="good", now=later + timedelta(days=3), actor=actor, tz=TZ, collection_id=c["id"])
    session.refresh(j)
    assert _steps(session, j)["equipment"].state == "done" and j.state == "final_billing"
    quote = followups.final_account_quote(session, journey_id=j.id, now=later + timedelta(days=3))
    assert quote is not None and quote["end_date"] == date(2026, 12, 31)
    res = followups.issue_final_account(session, journey_id=j.id, now=later + timedelta(days=3), tz=TZ, actor=actor)
    assert res["end_date"] == date(2026, 12, 31) and _steps(session, j)["final_account"].state == "done"
    assert followups.issue_final_account.__doc__ and session.execute(select(func.count()).select_from(FinalAccount)).scalar_one() == 1
    service.close(session, journey_id=j.id, now=later + timedelta(days=3), actor=actor)
    assert j.state == "closed"


def test_a_collection_slot_in_the_past_is_refused_and_nothing_changes(session, now, actor):
    acc, product, j = _confirmed(session, now, actor)
    before = session.execute(select(func.count()).select_from(CancellationStep).where(CancellationStep.note.is_not(None))).scalar_one()
    with pytest.raises(Exception) as e:
        followups.book_collection(session, journey_id=j.id, slot_start=now - timedelta(days=1), address="12 Rivonia Road", contact_name="Thabo",
                                  contact_phone="082", courier_code=None, now=now, tz=TZ, actor=actor)
    assert getattr(e.value, "field", None) == "slot_start"
    assert session.execute(select(func.count()).select_from(CancellationStep).where(CancellationStep.note.is_not(None))).scalar_one() == before
    assert _steps(session, j)["equipment"].state == "open"
