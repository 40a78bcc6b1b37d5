"""Demo step: a dozen collections through the real service (attempts in every outcome, rebooking, receipts; swaps of
faulty routers when few devices are due back),
one courier run, unreturned-equipment warnings and fees (one credited back when the router arrives late), a few FNO
deactivations confirmed late (claims proposed) or still open past their date (jeopardy, growing exposure), the
clean-up checks and the daily job. Bounded work whatever the demo size (samples, slot capacity), so it stays fast."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import text

from opsline.config import get_settings
from opsline.core.events import Actor
from opsline.core.localtime import local_date, zone
from opsline.db.session import make_sessionmaker
from opsline.logistics import checks, daily, fees, service
from opsline.partners import exposure

BOOKINGS = 12
# what happens to each demo booking, in turn
PLAN = ["collected_received", "not_home_rebooked", "refused", "wrong_address", "collected", "booked", "collected_received_faulty", "not_home",
        "booked", "collected", "refused", "booked"]


def _late_fno_deactivations(s: Any, *, today: Any) -> None:
    """Shape a few of the demo's completed FNO deactivations: four confirmed days late although sent in time (claims),
    three still unconfirmed days after their effective date (jeopardy, exposure growing daily)."""
    pg = s.get_bind().dialect.name == "postgresql"
    ids = [r[0] for r in s.execute(text("""SELECT so.id FROM partner_service_order so JOIN partner p ON p.code = so.partner_code AND p.kind = 'fno'
        WHERE so.action = 'delete' AND so.state = 'completed' AND so.requested_date >= :since AND so.requested_date <= :until ORDER BY so.id DESC LIMIT 7"""),
        {"since": today - timedelta(days=120), "until": today - timedelta(days=12)}).all()]
    for k, so_id in enumerate(ids[:4]):
        s.execute(text("UPDATE partner_service_order SET due_date = requested_date, confirmed_date = requested_date + " +
                       ("CAST(:d AS INTEGER)" if pg else "0") + (" WHERE id = :id" if pg else ", confirmed_date = date(requested_date, '+' || :d || ' days') WHERE id = :id")),
                  {"d": 3 + 2 * k, "id": so_id})
    for k, so_id in enumerate(ids[4:]):
        requested = today - timedelta(days=2 + 3 * k)
        s.execute(text("UPDATE partner_service_order SET state = 'inProgress', confirmed_date = NULL, requested_date = :r, due_date = :r WHERE id = :id"),
                  {"r": requested if pg else requested.isoformat(), "id": so_id})


def run(ctx: Any) -> None:
    tz = zone(get_settings().timezone)
    now = ctx.now
    today = local_date(now, tz)
    actor = Actor.system("demo")
    factory = make_sessionmaker(ctx.engine)
    with factory.begin() as s:
        pairs = s.execute(service.awaiting_without_booking(s, limit=BOOKINGS * 3)).all()
        accounts: dict[int, list[int]] = {}
        for eid, acc in pairs:
            if acc in accounts or len(accounts) < BOOKINGS:
                accounts.setdefault(acc, []).append(eid)
        free = [x for x in service.slots(s, courier_code="courierguy", from_date=today, days=10, tz=tz) if x["start"] > now + timedelta(hours=2) and x["free"]]
        jobs: list[tuple[int, list[int], str]] = [(acc, eids, "return") for acc, eids in accounts.items()]
        if len(jobs) < BOOKINGS:  # a small demo has few devices due back: swap some faulty routers too
            for eid, acc in s.execute(text("""SELECT e.id, e.account_id FROM equipment e WHERE e.kind = 'router' AND e.owner = 'isp_loaned'
                    AND e.state = 'installed' AND e.account_id IS NOT NULL AND e.offering_id IS NOT NULL ORDER BY e.id LIMIT :n"""),
                                       {"n": BOOKINGS - len(jobs)}).all():
                if acc not in accounts:
                    jobs.append((acc, [eid], "swap"))
        made = 0
        for i, (acc, eids, purpose) in enumerate(jobs):
            if not free:
                break
            who = s.execute(text("SELECT name, phone FROM account WHERE id = :a"), {"a": acc}).one()
            common = dict(slot_start=free[i % len(free)]["start"], address="on file: see the account's site", contact_name=who.name or "account holder",
                          contact_phone=who.phone or "-", courier_code="courierguy", idempotency_key=f"demo:collection:{acc}", now=now, actor=actor, tz=tz)
            if purpose == "swap":
                cid = service.swap_faulty_equipment(s, equipment_id=eids[0], reason="Wi-Fi drops several times a day", reference=f"DEMO-{i + 1:03d}",
                                                    **common)["collection_id"]
            else:
                cid = service.book_collection(s, account_id=acc, equipment_ids=eids, reference=f"DEMO-{i + 1:03d}", **common)["id"]
            plan = PLAN[i % len(PLAN)]
            if plan.startswith("collected"):
                service.record_attempt(s, collection_id=cid, outcome="collected", now=now, actor=actor, tz=tz, source="courier")
                if plan != "collected":
                    service.receive_at_warehouse(s, equipment_ids=eids, condition="faulty" if plan.endswith("faulty") else "good", collection_id=cid,
                                                 now=now, actor=actor, tz=tz)
            elif plan in ("not_home", "refused", "wrong_address", "not_home_rebooked"):
                outcome = "not_home" if plan.startswith("not_home") else plan
                rebook = free[(i + 3) % len(free)]["start"] if plan == "not_home_rebooked" else None
                service.record_attempt(s, collection_id=cid, outcome=outcome, note="demo", now=now, actor=actor, tz=tz, source="courier",
                                       rebook_slot_start=rebook)
            made += 1
        run_slot = next((x for x in free if x["start"] > now + timedelta(days=1)), None)
        run = service.book_courier_run(s, courier_code="courierguy", slot_start=run_slot["start"], now=now, actor=actor, tz=tz) if run_slot else {"booked": 0}
    with factory.begin() as s:
        # a week ago the run warned a sample of customers; today it charges those whose grace period is over
        first = fees.run_fees(s, now=now - timedelta(days=6), tz=tz, actor=actor, warn_limit=12)
        second = fees.run_fees(s, now=now, tz=tz, actor=actor, warn_limit=6)
        late = s.execute(text("SELECT equipment_id FROM unreturned_fee WHERE state = 'charged' ORDER BY id LIMIT 1")).scalar()
        if late is not None:  # this router arrived by post after the fee: credited back
            service.receive_at_warehouse(s, equipment_ids=[int(late)], condition="good", note="arrived by post", now=now, actor=actor, tz=tz)
        _late_fno_deactivations(s, today=today)
        claims = exposure.propose_claims(s, today=today, now=now, actor=actor)
        checks.run(s, now=now, actor=actor)
        daily.schedule(s, now=now, tz=tz)
    ctx.counts["collections"] = made + int(run.get("booked", 0))
    ctx.counts["unreturned_fees_warned"] = first["warned"] + second["warned"]
    ctx.counts["unreturned_fees_charged"] = first["charged"] + second["charged"]
    ctx.counts["fno_claims"] = claims["proposed"]
