"""The unreturned-equipment fee: warned before, charged once after the grace period, credited back when the device
arrives later, cancelled when it arrives before; and the clean-up checks."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from opsline.billing.models import PendingCharge
from opsline.logistics import checks, fees, service
from opsline.logistics.models import CleanupRun, UnreturnedFee
from opsline.notifications.models import Message

from logistics_helpers import TZ, loaned_router, next_weekday_slot


def _charges(session, equipment_id: int) -> list[int]:  # type: ignore[no-untyped-def]
    return list(session.execute(select(PendingCharge.amount_minor).where(PendingCharge.idempotency_key.in_(
        [f"unreturned_fee:{equipment_id}", f"unreturned_fee_credit:{equipment_id}"])).order_by(PendingCharge.id)).scalars())


def test_the_fee_is_warned_five_days_ahead_charged_once_after_twenty_days_and_credited_back_when_the_router_arrives(session, now, actor):
    account_id, _p, router = loaned_router(session, now, actor)
    assert fees.run_fees(session, now=now + timedelta(days=14), tz=TZ)["warned"] == 0
    out = fees.run_fees(session, now=now + timedelta(days=15), tz=TZ)
    assert out == {"date": "2026-12-08", "warned": 1, "charged": 0}
    assert session.execute(select(func.count()).select_from(Message).where(Message.account_id == account_id,
                                                                          Message.event == "equipment.unreturned_warning")).scalar_one() == 1
    assert fees.run_fees(session, now=now + timedelta(days=15, hours=2), tz=TZ)["warned"] == 0
    assert fees.run_fees(session, now=now + timedelta(days=19), tz=TZ)["charged"] == 0
    assert fees.run_fees(session, now=now + timedelta(days=20), tz=TZ)["charged"] == 1
    assert fees.run_fees(session, now=now + timedelta(days=21), tz=TZ) == {"date": "2026-12-14", "warned": 0, "charged": 0}
    assert _charges(session, router.id) == [149900]
    fee = session.execute(select(UnreturnedFee).where(UnreturnedFee.equipment_id == router.id)).scalar_one()
    assert fee.state == "charged" and fee.since_date.isoformat() == "2026-11-23" and fee.due_date.isoformat() == "2026-12-13"
    out = service.receive_at_warehouse(session, equipment_ids=[router.id], condition="good", note="posted back", now=now + timedelta(days=25), actor=actor, tz=TZ)
    assert out["fees_credited"] == [fee.id]
    assert _charges(session, router.id) == [149900, -149900]
    session.refresh(fee)
    assert fee.state == "credited" and fee.credit_charge_id is not None


def test_a_router_back_before_the_fee_cancels_the_warning_and_is_never_charged(session, now, actor):
    _a, _p, router = loaned_router(session, now, actor)
    fees.run_fees(session, now=now + timedelta(days=16), tz=TZ)
    c = service.book_collection(session, account_id=_a, equipment_ids=[router.id], slot_start=next_weekday_slot(now + timedelta(days=16)), address="7 Jan Smuts",
                                contact_name="Lerato", contact_phone="082", reference=None, idempotency_key="k1", now=now + timedelta(days=16), actor=actor, tz=TZ)
    service.record_attempt(session, collection_id=c["id"], outcome="collected", now=now + timedelta(days=17), actor=actor, tz=TZ)
    service.receive_at_warehouse(session, equipment_ids=[router.id], condition="good", now=now + timedelta(days=18), actor=actor, tz=TZ)
    assert fees.run_fees(session, now=now + timedelta(days=30), tz=TZ)["charged"] == 0
    assert _charges(session, router.id) == []
    assert session.execute(select(UnreturnedFee.state).where(UnreturnedFee.equipment_id == router.id)).scalar_one() == "cancelled"


def test_the_clean_up_checks_find_a_device_awaiting_return_with_no_collection_and_keep_the_counts(session, now, actor):
    _a, _p, router = loaned_router(session, now, actor)
    c = checks.counts(session)
    assert c["awaiting_no_collection"] == 1
    assert [r["entity_id"] for r in checks.rows(session, key="awaiting_no_collection")] == [router.id]
    service.book_collection(session, account_id=_a, equipment_ids=[router.id], slot_start=next_weekday_slot(now), address="7 Jan Smuts", contact_name="L",
                            contact_phone="082", reference=None, idempotency_key="k2", now=now, actor=actor, tz=TZ)
    assert checks.run(session, now=now, actor=actor)["awaiting_no_collection"] == 0
    assert session.execute(select(func.count()).select_from(CleanupRun)).scalar_one() == 1
    page = checks.page(session, key="terminated_at_fno")
    assert {c["key"] for c in page["checks"]} == set(checks.CHECKS) and page["chart"] is not None
