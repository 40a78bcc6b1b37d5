"""The SLA report's running totals on SQLite and PostgreSQL: journeys moved through the real services (requested,
retention declined, confirmed, FNO confirmed, equipment and final account done, withdrawn, retained), then aged by
SQL (single-row and multi-row UPDATEs, a DELETE) with breach causes recorded; the report read from the totals equals,
figure for figure, the same report counted from every step, at several clock times (including steps due earlier
today) and windows; the breach drill-down equals a brute-force filter and sort of the steps for every cause and page;
the board's counts per step under every filter, the home-card numbers and the volume report (reasons, retention, FNO
lead times) equal counting every journey; and the totals kept by the triggers equal a recount from scratch."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, select, text, update

from opsline.cancellations import prevention, reports, service, totals
from opsline.cancellations.models import CancellationJourney, CancellationStep
from opsline.cancellations.prevention import CancellationBreachCause
from opsline.cancellations.totals import CancellationJourneyTotal, CancellationStepTotal
from opsline.core.localtime import zone
from opsline.partners.models import PartnerServiceOrder
from tests.integration.test_cancellations_journey import _line, _request

TZ = zone("Africa/Johannesburg")
CS = CancellationStep
UTC = timezone.utc


def _steps(session, j):  # type: ignore[no-untyped-def]
    return {s.code: s for s in session.execute(select(CS).where(CS.journey_id == j.id)).scalars()}


def _world(session, now, actor) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Seven journeys at every stage, opened and moved with back-dated clocks, then aged so that steps are done late,
    overdue, due earlier today, due later today, and on both sides of a month's first midnight (UTC)."""
    js: dict[str, CancellationJourney] = {}
    for name, age in (("requested", 1), ("declined", 40), ("confirmed", 75), ("fno_done", 120), ("closed", 200), ("withdrawn", 12), ("retained", 6)):
        acc, _, product = _line(session, now - timedelta(days=age + 30), actor, start=(now - timedelta(days=age + 30)).date())
        js[name] = _request(session, now - timedelta(days=age), actor, acc, product)
    t = lambda name, days: now - timedelta(days=days)  # noqa: E731
    for name in ("declined", "confirmed", "fno_done", "closed", "withdrawn"):
        service.record_retention(session, journey_id=js[name].id, offer="R100 off for 6 months", outcome="declined", now=t(name, 0) - timedelta(days=1) if name == "withdrawn" else
                                 t(name, {"declined": 36, "confirmed": 70, "fno_done": 119, "closed": 199}[name]), tz=TZ, actor=actor)
    for name, days in (("confirmed", 66), ("fno_done", 118), ("closed", 199), ("withdrawn", 11)):
        service.confirm(session, journey_id=js[name].id, now=t(name, days), tz=TZ, actor=actor)
    for name, days in (("fno_done", 60), ("closed", 150)):
        j = js[name]
        on = (now - timedelta(days=days)).date()
        if j.service_order_id is not None:
            service.on_service_order_event(session, service_order_id=j.service_order_id, state="completed", confirmed_date=on, reason=None,
                                           now=t(name, days), tz=TZ, actor=actor)
    closed = js["closed"]
    for code in ("equipment", "final_account"):
        if _steps(session, closed)[code].state == "open":
            service.complete_step(session, journey_id=closed.id, code=code, note="done by hand", now=t("closed", 100), tz=TZ, actor=actor)
    service.close(session, journey_id=closed.id, now=t("closed", 100), actor=actor)
    service.withdraw(session, journey_id=js["withdrawn"].id, reason="customer changed their mind", now=t("withdrawn", 10), tz=TZ, actor=actor)
    service.record_retention(session, journey_id=js["retained"].id, offer="R100 off", outcome="accepted", now=t("retained", 5), tz=TZ, actor=actor)
    session.flush()
    # aged by SQL: a step due earlier today (open: overdue since this morning), one due later today, one done late
    # today, a whole journey's steps moved to 40 days ago in one UPDATE, steps exactly at and just before a month's start
    s = _steps(session, js["requested"])
    today0 = datetime.combine(now.astimezone(UTC).date(), datetime.min.time(), tzinfo=UTC)
    session.execute(update(CS).where(CS.id == s["retention"].id).values(due_at=today0 + timedelta(hours=2)))
    session.execute(update(CS).where(CS.id == s["notice"].id).values(due_at=now + timedelta(hours=3)))
    session.execute(update(CS).where(CS.id == s["customer_notified"].id).values(due_at=today0 + timedelta(minutes=30), state="done",
                                                                              done_at=today0 + timedelta(hours=1)))
    session.execute(update(CS).where(CS.journey_id == js["confirmed"].id, CS.due_at.is_not(None)).values(due_at=now - timedelta(days=40, hours=5)))
    month0 = datetime(now.year, now.month, 1, tzinfo=UTC)
    d = _steps(session, js["declined"])
    session.execute(update(CS).where(CS.id == d["fno_deactivation"].id).values(due_at=month0))
    session.execute(update(CS).where(CS.id == d["final_account"].id).values(due_at=month0 - timedelta(microseconds=1)))
    session.execute(delete(CS).where(CS.journey_id == js["retained"].id))  # a delete is counted out as well
    session.expire_all()
    # causes: one agreeing with the inferred one, one overriding it, one on a step with nothing inferred
    late = reports.breaches(session, since=reports._since(now, TZ, 12), now=now, tz=TZ, limit=500)
    by_code: dict[str, list[int]] = {}
    for b in late:
        by_code.setdefault(b["code"], []).append(b["step_id"])
    recorded = [(by_code.get("fno_deactivation", [None])[0], "waiting_on_fno"), (by_code.get("fno_deactivation", [None, None])[-1], "capacity"),
                (by_code.get("notice", [None])[0], "misrouted"), (by_code.get("retention", [None])[0], "capacity")]
    for step_id, cause in recorded:
        if step_id is not None:
            prevention.set_breach_cause(session, step_id=step_id, cause_code=cause, note=f"{cause} (test)", now=now, actor=actor)
    session.flush()
    return {"journeys": js, "late": late}


def _canon(groups: list[Any]) -> dict[tuple[Any, ...], int]:
    c: Counter[tuple[Any, ...]] = Counter()
    for code, state, late, overdue, cause, n in groups:
        c[(code, state, bool(late), bool(overdue), cause)] += int(n)
    return {k: v for k, v in c.items() if v}


def _brute_breaches(session, *, since: date, now: datetime, cause: str | None) -> list[tuple[int, str | None]]:  # type: ignore[no-untyped-def]
    start = datetime.combine(since, datetime.min.time(), tzinfo=UTC)
    recorded = dict(session.execute(select(CancellationBreachCause.step_id, CancellationBreachCause.cause_code)).all())
    rows = []
    for s in session.execute(select(CS)).scalars():
        if s.due_at is None or not (start <= s.due_at < now):
            continue
        if not ((s.state == "done" and s.done_at is not None and s.done_at > s.due_at) or s.state == "open"):
            continue
        c = recorded.get(s.id) or prevention.INFERRED_CAUSE.get(s.code)
        if cause is None or (cause == "none" and c is None) or c == cause:
            rows.append((s.due_at, s.id, c))
    return [(i, c) for _, i, c in sorted(rows, reverse=True)]


def test_the_sla_report_from_running_totals_equals_counting_every_step(session, now, actor):
    w = _world(session, now, actor)
    assert len(w["late"]) >= 6  # the world has breaches of several kinds
    groups = reports._sla_groups(session, since=reports._since(now, TZ, 12), now=now)
    assert any(c == "capacity" for *_, c, _n in groups) and any(c == "waiting_on_fno" for *_, c, _n in groups)
    for at in (now, now + timedelta(hours=1), now - timedelta(hours=6, minutes=30), now + timedelta(days=3), now - timedelta(days=45)):
        for since in (reports._since(at, TZ, 12), reports._since(at, TZ, 1), date(at.year, at.month, 1)):
            fast, slow = reports._sla_groups(session, since=since, now=at), reports._sla_groups_counted(session, since=since, now=at)
            assert _canon(fast) == _canon(slow), (at, since)
            assert reports.sla_per_step(session, since=since, now=at, groups=fast) == reports.sla_per_step(session, since=since, now=at, groups=slow)
            today = at.astimezone(TZ).date()
            assert (reports.breaches_by_cause(session, since=since, now=at, today=today, groups=fast)
                    == reports.breaches_by_cause(session, since=since, now=at, today=today, groups=slow))
    sla = {r["code"]: r for r in reports.sla_per_step(session, since=reports._since(now, TZ, 12), now=now)}
    assert sla["fno_deactivation"]["done_late"] >= 1 and sla["retention"]["overdue"] >= 1 and sla["customer_notified"]["done_late"] >= 1


def test_the_breach_drill_down_equals_a_brute_force_filter_and_sort_for_every_cause_and_page(session, now, actor):
    _world(session, now, actor)
    since = reports._since(now, TZ, 12)
    for at in (now, now - timedelta(days=45)):
        for cause in (None, "none", "waiting_on_fno", "third_party_courier", "capacity", "misrouted", "unknown_cause"):
            want = _brute_breaches(session, since=since, now=at, cause=cause)
            got = [(b["step_id"], b["cause_code"]) for b in reports.breaches(session, since=since, now=at, tz=TZ, cause=cause, limit=500)]
            assert got == want, (at, cause)
            pages = [reports.breaches(session, since=since, now=at, tz=TZ, cause=cause, limit=2, offset=o) for o in range(0, len(want) + 2, 2)]
            assert [(b["step_id"], b["cause_code"]) for p in pages for b in p] == want
    assert _brute_breaches(session, since=since, now=now, cause="capacity")  # causes were recorded and are found


def test_the_totals_kept_by_the_triggers_equal_a_recount_from_the_steps(session, now, actor):
    _world(session, now, actor)
    service.escalate(session, now=now, tz=TZ)  # a multi-row UPDATE of other columns changes no total
    session.flush()

    def kept() -> dict[tuple[Any, ...], int]:
        steps = {("step", str(r.due_date), r.code, r.state, bool(r.late)): int(r.n) for r in session.execute(select(CancellationStepTotal)).scalars() if r.n}
        return steps | {("journey", str(r.month), r.kind, r.reason_code, r.retention_outcome, r.partner_code, bool(r.fno_confirmed), bool(r.fno_late),
                         bool(r.fno_waiting), bool(r.open), r.current_step, bool(r.at_risk)): int(r.n)
                        for r in session.execute(select(CancellationJourneyTotal)).scalars() if r.n}

    before = kept()
    assert sum(v for k, v in before.items() if k[0] == "step") == session.execute(select(text("COUNT(*)")).select_from(CS).where(CS.due_at.is_not(None))).scalar_one()
    assert sum(v for k, v in before.items() if k[0] == "journey") == session.execute(select(text("COUNT(*)")).select_from(CancellationJourney)).scalar_one()
    assert all(v > 0 for v in before.values())
    totals.rebuild(session)
    session.expire_all()
    assert kept() == before
    assert session.execute(select(PartnerServiceOrder.id).limit(1)).first() is not None  # FNO orders went out through the partner path


def _brute_board(session, *, now, partner=None, step=None, reason=None, breaching=False):  # type: ignore[no-untyped-def]
    from opsline.cancellations.models import OPEN_STATES

    by: dict[Any, list[int]] = {}
    for j in session.execute(select(CancellationJourney)).scalars():
        if j.state not in OPEN_STATES or (partner and j.partner_code != partner) or (step and j.current_step != step) or (reason and j.reason_code != reason):
            continue
        overdue = j.next_due_at is not None and j.next_due_at < now
        if breaching and not (overdue or j.at_risk):
            continue
        v = by.setdefault(j.current_step, [0, 0, 0])
        v[0] += 1
        v[1] += overdue
        v[2] += bool(j.at_risk)
    return by


def test_the_board_counts_home_cards_and_volume_report_from_running_totals_equal_counting_every_journey(session, now, actor):
    from opsline.cancellations import queries
    from opsline.cancellations.models import OPEN_STATES

    w = _world(session, now, actor)
    js = w["journeys"]
    # a journey at risk, one with no partner line's step left open, one overdue on the FNO step
    session.execute(update(CancellationJourney).where(CancellationJourney.id == js["declined"].id).values(at_risk=True))
    session.execute(update(CancellationJourney).where(CancellationJourney.id == js["confirmed"].id).values(next_due_at=now - timedelta(hours=2),
                                                                                                     current_step="fno_deactivation"))
    session.expire_all()
    for at in (now, now - timedelta(days=30), now + timedelta(days=20)):
        for kw in ({}, {"breaching": True}, {"partner": "openserve"}, {"step": "fno_deactivation"}, {"reason": "price"}, {"partner": "vumatel"},
                   {"breaching": True, "partner": "openserve"}):
            b = queries.board(session, now=at, tz=TZ, **kw)
            want = _brute_board(session, now=at, **kw)
            got = {s["code"]: [s["count"], s["overdue"], s["at_risk"]] for s in b["steps"] if s["count"]}
            assert got == {k: v for k, v in want.items() if k is not None}, (at, kw)
            assert b["total"] == sum(v[0] for v in want.values())
            assert len(b["items"]) == min(b["total"], queries.PAGE)
        c = queries.counts(session, now=at, tz=TZ)
        opened = [j for j in session.execute(select(CancellationJourney)).scalars() if j.state in OPEN_STATES]
        end = datetime.combine(at.astimezone(TZ).date() + timedelta(days=1), datetime.min.time(), tzinfo=TZ)
        assert c == {"open": len(opened), "overdue": sum(1 for j in opened if j.next_due_at and j.next_due_at < at),
                     "at_risk": sum(1 for j in opened if j.at_risk), "due_today": sum(1 for j in opened if j.next_due_at and at <= j.next_due_at < end),
                     "at_fno": sum(1 for j in opened if j.current_step == "fno_deactivation"),
                     "fno_late": sum(1 for j in opened if j.current_step == "fno_deactivation" and j.next_due_at and j.next_due_at < at),
                     "oldest": min(j.created_at for j in opened)}
    assert queries.counts(session, now=now, tz=TZ)["at_risk"] >= 1
    for since in (reports._since(now, TZ, 12), reports._since(now, TZ, 3), reports._since(now, TZ, 1)):
        journeys = [j for j in session.execute(select(CancellationJourney)).scalars() if j.notice_date >= since]
        table: dict[str, dict[str, int]] = {}
        for j in journeys:
            if j.kind == "cancellation":
                m = table.setdefault(f"{j.notice_date:%Y-%m}", {})
                m[j.reason_code] = m.get(j.reason_code, 0) + 1
        assert reports.by_reason_month(session, since=since)["table"] == table
        outcomes = Counter(j.retention_outcome for j in journeys if j.kind == "cancellation")
        r = reports.retention(session, since=since)
        assert (r["total"], r["accepted"], r["declined"], r["skipped"]) == (sum(outcomes.values()), outcomes["accepted"], outcomes["declined"], outcomes["skipped"])
        fno: dict[str, list[int]] = {}
        for j in journeys:
            if j.partner_code:
                v = fno.setdefault(j.partner_code, [0, 0, 0])
                v[0] += j.fno_confirmed_date is not None
                v[1] += bool(j.fno_confirmed_date and j.fno_due_date and j.fno_confirmed_date > j.fno_due_date)
                v[2] += j.fno_confirmed_date is None and j.service_order_id is not None and j.state == "deactivation_sent"
        assert [(f["partner_code"], [f["confirmed"], f["late"], f["waiting"]]) for f in reports.fno_lead_times(session, since=since)] == sorted(fno.items())
