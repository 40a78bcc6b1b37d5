"""SLA engine against a real database: policy matching, exact recalculation, warnings, breaches and causes."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from opsline.cases import service as cases_service
from opsline.cases.models import CaseEvent, Queue, SupportCase
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.jobs import Job
from opsline.sla import service
from opsline.sla.models import BusinessCalendarRow, SlaBreach, SlaCase, SlaClock, SlaNotification, SlaPolicy, SlaWarning

SAST = ZoneInfo("Africa/Johannesburg")


def at(*a: int) -> datetime:
    return datetime(*a, tzinfo=SAST)


@pytest.fixture
def queues(session):  # type: ignore[no-untyped-def]
    rows = {}
    for code, name in (("billing", "Billing"), ("technical", "Technical"), ("escalations", "Escalations")):
        q = session.execute(select(Queue).where(Queue.code == code)).scalar_one_or_none()
        if q is None:
            q = Queue(code=code, name=name, is_escalation=code == "escalations", assignment="manual", skills=[], active=True)
            session.add(q)
        q.name, q.calendar_code = name, None
        rows[code] = q
    session.flush()
    return rows


_seq = iter(range(1, 100_000))


def make_case(session, queues, *, opened: datetime, events=(), priority: int = 3, category: str = "billing_account", state: str = "acknowledged", queue: str = "billing", tier: str | None = None) -> int:  # type: ignore[no-untyped-def]
    """A case row plus its event history, written the way the cases service writes them."""
    n = next(_seq)
    c = SupportCase(reference=f"CS-T{n:05d}", category_code=category, channel="call", subject="Slow line", state=state, priority=priority, value_tier_code=tier,
                    queue_id=queues[queue].id, opened_at=opened, updated_at=opened, reopen_count=0)
    session.add(c)
    session.flush()
    session.add(CaseEvent(case_id=c.id, at=opened, kind="opened", to_value="acknowledged", actor="t", data={"queue": queues[queue].code, "priority": priority}))
    for when, kind, fv, tv, data in events:
        session.add(CaseEvent(case_id=c.id, at=when, kind=kind, from_value=fv, to_value=tv, actor="t", data=data))
    session.flush()
    return c.id


def clock(session, case_id: int, metric: str) -> SlaClock:  # type: ignore[no-untyped-def]
    return session.execute(select(SlaClock).where(SlaClock.case_id == case_id, SlaClock.metric == metric)).scalars().one()


def test_most_specific_policy_wins_and_ties_go_to_the_lowest_id(session, queues, now, actor) -> None:  # type: ignore[no-untyped-def]
    plain = make_case(session, queues, opened=now - timedelta(hours=1), priority=2)
    vip = make_case(session, queues, opened=now - timedelta(hours=1), priority=2, tier="vip")
    complaint = make_case(session, queues, opened=now - timedelta(hours=1), priority=2, category="complaint")
    service.recalculate(session, case_ids=[plain, vip, complaint], now=now, reason="test", actor=actor)
    name = {p.id: p.name for p in session.execute(select(SlaPolicy)).scalars()}
    policy_of = dict(session.execute(select(SupportCase.id, SupportCase.sla_policy_id)).all())
    assert name[policy_of[plain]] == "Default P2"
    assert name[policy_of[vip]] in ("VIP", "Default P2")  # both match one criterion: the lower id wins
    first = min((p.id for p in session.execute(select(SlaPolicy).where(SlaPolicy.name.in_(["VIP", "Default P2"]))).scalars()))
    assert policy_of[vip] == first
    a = service.create_policy(session, fields={"name": "VIP P2", "value_tier_code": "vip", "priority": 2, "first_response_minutes": 10, "resolution_minutes": 120, "calendar_code": "za-support"}, now=now, actor=actor)
    service.recalculate(session, case_ids=[vip], now=now, reason="new policy", actor=actor)
    assert session.get(SupportCase, vip).sla_policy_id == a
    assert name[session.get(SupportCase, complaint).sla_policy_id] == "ICASA complaint"
    assert clock(session, complaint, "first_response").target_seconds == 48 * 3600
    # the change of policy is part of the case's history
    assert session.execute(select(func.count()).select_from(CaseEvent).where(CaseEvent.case_id == vip, CaseEvent.kind == "policy")).scalar_one() == 2


def test_raising_priority_mid_case_gives_the_deadline_of_a_case_that_always_had_it(session, queues, now, actor) -> None:  # type: ignore[no-untyped-def]
    opened = at(2026, 11, 20, 10, 0)
    raised = make_case(session, queues, opened=opened, priority=1, events=[(at(2026, 11, 20, 15, 0), "priority", "3", "1", None)])
    always = make_case(session, queues, opened=opened, priority=1)
    service.recalculate(session, case_ids=[raised, always], now=now, reason="test", actor=actor)
    for metric in ("first_response", "resolution"):
        a, b = clock(session, raised, metric), clock(session, always, metric)
        assert (a.due_at, a.elapsed_seconds, a.state, a.target_seconds) == (b.due_at, b.elapsed_seconds, b.state, b.target_seconds)
    assert clock(session, raised, "resolution").target_seconds == 4 * 3600


def test_adding_a_holiday_moves_the_due_time_as_if_it_had_always_been_there(session, queues, now, actor, factory) -> None:  # type: ignore[no-untyped-def]
    opened = now - timedelta(hours=1)  # Monday 08:00 SAST
    case_id = make_case(session, queues, opened=opened, priority=4)
    service.recalculate(session, case_ids=[case_id], now=now, reason="test", actor=actor)
    before = clock(session, case_id, "resolution").due_at
    jobs = service.update_calendar(session, code="za-support", add_closures=["2026-11-25"], now=now, actor=actor, reason="office closed for strike")
    assert jobs == 1
    assert session.execute(select(Job.kind).where(Job.kind == "sla.recalculate")).scalars().all() == ["sla.recalculate"]
    job = session.execute(select(Job).where(Job.kind == "sla.recalculate")).scalars().one()
    service.run_recalculate_job(session, job.payload, now)
    after = clock(session, case_id, "resolution").due_at
    expected = service.get_calendar(session, code="za-support").add(opened, timedelta(hours=40))
    assert after == expected and after - before >= timedelta(days=1)


def test_recomputing_twice_yields_identical_rows(session, queues, now, actor) -> None:  # type: ignore[no-untyped-def]
    ids = [make_case(session, queues, opened=now - timedelta(days=d), events=[(now - timedelta(days=d) + timedelta(hours=2), "queue", "billing", "technical", None)]) for d in range(1, 5)]
    service.recalculate(session, case_ids=ids, now=now, reason="first", actor=actor)
    first = service.stored_clocks(session, case_ids=ids)
    breaches = session.execute(select(SlaBreach.id, SlaBreach.due_at).order_by(SlaBreach.id)).all()
    counts = service.recalculate(session, case_ids=ids, now=now, reason="second", actor=actor)
    assert service.stored_clocks(session, case_ids=ids) == first
    assert session.execute(select(SlaBreach.id, SlaBreach.due_at).order_by(SlaBreach.id)).all() == breaches
    assert counts["breaches"] == 0 and counts["warnings"] == 0 and counts["policy_changes"] == 0


def test_on_case_changed_matches_batch_recalculation(session, queues, now, actor) -> None:  # type: ignore[no-untyped-def]
    ids = [make_case(session, queues, opened=now - timedelta(hours=h), events=[(now - timedelta(hours=h) + timedelta(minutes=30), "state", "acknowledged", "held", {"partner_code": "openserve"})]) for h in range(2, 30, 1)]
    service.recalculate(session, case_ids=ids, now=now, reason="batch", actor=actor)
    batch = [{k: v for k, v in r.items() if k not in ("id", "computed_at")} for r in service.stored_clocks(session, case_ids=ids)]
    for cid in ids:
        service.recompute_case(session, case_id=cid, now=now)
    single = [{k: v for k, v in r.items() if k not in ("id", "computed_at")} for r in service.stored_clocks(session, case_ids=ids)]
    assert single == batch
    tp = [c for c in service.case_clocks(session, case_id=ids[0], now=now) if c["metric"] == "third_party"]
    assert tp and tp[0]["partner"] == "openserve"


def test_scan_records_each_warning_once_and_escalates(session, queues, now, actor) -> None:  # type: ignore[no-untyped-def]
    case_id = make_case(session, queues, opened=now - timedelta(minutes=20), priority=1)  # P1: first response 30 min
    service.recalculate(session, case_ids=[case_id], now=now - timedelta(minutes=10), reason="t", actor=actor)
    assert session.execute(select(SlaWarning.threshold).where(SlaWarning.case_id == case_id)).scalars().all() == []
    service.scan(session, now=now)  # 20 business minutes of 30 = 66%
    thresholds = sorted(session.execute(select(SlaWarning.threshold).where(SlaWarning.case_id == case_id, SlaWarning.metric == "first_response")).scalars())
    assert thresholds == [50]
    service.scan(session, now=now + timedelta(seconds=30))
    service.scan(session, now=now + timedelta(minutes=15))  # 35 minutes: 75 and 100 crossed, breach recorded
    thresholds = sorted(session.execute(select(SlaWarning.threshold).where(SlaWarning.case_id == case_id, SlaWarning.metric == "first_response")).scalars())
    assert thresholds == [50, 75, 100]
    assert session.execute(select(func.count()).select_from(SlaNotification).where(SlaNotification.case_id == case_id)).scalar_one() >= 1
    breach = session.execute(select(SlaBreach).where(SlaBreach.case_id == case_id, SlaBreach.metric == "first_response")).scalars().one()
    assert breach.due_at == now + timedelta(minutes=10)
    # the 75% step of the P1 policy reassigns to the escalations queue through the cases service
    assert session.get(SupportCase, case_id).queue_id == queues["escalations"].id


def test_setting_a_breach_cause_records_who_and_why(session, queues, now, actor) -> None:  # type: ignore[no-untyped-def]
    case_id = make_case(session, queues, opened=now - timedelta(days=10), priority=1)
    service.recalculate(session, case_ids=[case_id], now=now, reason="t", actor=actor)
    breach = session.execute(select(SlaBreach).where(SlaBreach.case_id == case_id, SlaBreach.metric == "resolution")).scalars().one()
    service.set_breach_cause(session, breach_id=breach.id, cause_code="waiting_on_fno", note="Openserve fault ticket", now=now, actor=actor)
    session.refresh(breach)
    assert (breach.cause_code, breach.set_by, breach.set_at) == ("waiting_on_fno", "tester", now)


def test_an_unknown_breach_cause_is_refused_and_nothing_changes(session, queues, now, actor) -> None:  # type: ignore[no-untyped-def]
    case_id = make_case(session, queues, opened=now - timedelta(days=10), priority=1)
    service.recalculate(session, case_ids=[case_id], now=now, reason="t", actor=actor)
    breach = session.execute(select(SlaBreach).where(SlaBreach.case_id == case_id)).scalars().first()
    with pytest.raises(InvalidInput, match="unknown breach cause 'gremlins'"):
        service.set_breach_cause(session, breach_id=breach.id, cause_code="gremlins", note=None, now=now, actor=actor)
    session.refresh(breach)
    assert breach.cause_code is None and breach.set_by is None
    with pytest.raises(NotFound):
        service.set_breach_cause(session, breach_id=999_999, cause_code="other", note=None, now=now, actor=actor)


def test_breach_report_groups_by_cause_and_team_with_overrun_hours(session, queues, now, actor) -> None:  # type: ignore[no-untyped-def]
    a = make_case(session, queues, opened=now - timedelta(days=6), priority=1)
    b = make_case(session, queues, opened=now - timedelta(days=6), priority=1, queue="technical")
    service.recalculate(session, case_ids=[a, b], now=now, reason="t", actor=actor)
    for bid in session.execute(select(SlaBreach.id).where(SlaBreach.case_id == a)).scalars():
        service.set_breach_cause(session, breach_id=bid, cause_code="capacity", note=None, now=now, actor=actor)
    report = service.breach_report(session, since=now - timedelta(days=30), until=now + timedelta(seconds=1))
    causes = {r["cause_code"]: r for r in report["by_cause"]}
    n_a = session.execute(select(func.count()).select_from(SlaBreach).where(SlaBreach.case_id == a)).scalar_one()
    assert causes["capacity"]["count"] == n_a and causes[None]["count"] == report["total"] - n_a
    teams = {r["team"]: r for r in report["by_team"]}
    assert {"Billing", "Technical"} <= set(teams)
    assert teams["Billing"]["overrun_hours"] > 0
    assert report["total"] == sum(r["count"] for r in report["by_team"])


def test_overlapping_shifts_are_refused_and_the_calendar_is_unchanged(session, now, actor) -> None:  # type: ignore[no-untyped-def]
    before = dict(session.get(BusinessCalendarRow, "za-support").data)
    bad = before | {"week": {"0": [["08:00", "13:00"], ["12:00", "17:00"]]}}
    with pytest.raises(InvalidInput, match="overlapping shifts"):
        service.update_calendar(session, code="za-support", data=bad, now=now, actor=actor, reason="t")
    session.expire_all()
    assert session.get(BusinessCalendarRow, "za-support").data == before
    with pytest.raises(InvalidInput, match="overlapping shifts"):
        service.create_calendar(session, code="bad", name="Bad", data=bad, now=now, actor=actor)
    assert session.get(BusinessCalendarRow, "bad") is None


def test_a_policy_naming_an_unknown_category_or_queue_is_refused(session, queues, now, actor) -> None:  # type: ignore[no-untyped-def]
    n = session.execute(select(func.count()).select_from(SlaPolicy)).scalar_one()
    with pytest.raises(InvalidInput, match="unknown case category 'nope'"):
        service.create_policy(session, fields={"name": "X", "category_code": "nope", "calendar_code": "za-support"}, now=now, actor=actor)
    with pytest.raises(InvalidInput, match="unknown queue 'ghosts'"):
        service.create_policy(session, fields={"name": "Y", "calendar_code": "za-support", "escalations": [{"at": 75, "action": "reassign", "queue_code": "ghosts"}]}, now=now, actor=actor)
    with pytest.raises(InvalidInput, match="unknown business calendar"):
        service.create_policy(session, fields={"name": "Z", "calendar_code": "mars"}, now=now, actor=actor)
    assert session.execute(select(func.count()).select_from(SlaPolicy)).scalar_one() == n


def test_a_breached_case_is_shown_breached_and_since_when_not_as_a_100_percent_risk(session, queues, now, actor) -> None:  # type: ignore[no-untyped-def]
    history = [make_case(session, queues, opened=now - timedelta(days=20 + i), state="resolved", events=[(now - timedelta(days=20 + i) + timedelta(hours=2 + i % 5), "state", "acknowledged", "resolved", None)]) for i in range(12)]
    fresh = make_case(session, queues, opened=now - timedelta(minutes=5), priority=4)
    late = make_case(session, queues, opened=now - timedelta(days=10), priority=4)
    service.recalculate(session, case_ids=history + [fresh, late], now=now, reason="t", actor=actor)
    risk = service.breach_risk(session, case_ids=[fresh, late], now=now)
    assert risk[fresh] is not None and 0.0 <= risk[fresh] < 0.5 and risk[late] is None
    session.expire_all()
    f, lt = session.get(SupportCase, fresh), session.get(SupportCase, late)
    assert (f.sla_state, f.sla_breached_at) == ("ok", None) and f.sla_due_at is not None and f.sla_risk == risk[fresh]
    first_breach = min(c.breached_at for c in session.execute(select(SlaClock).where(SlaClock.case_id == late, SlaClock.state == "breached")).scalars())
    assert (lt.sla_state, lt.sla_breached_at, lt.sla_risk) == ("breached", first_breach, None)


def test_the_policy_calendar_wins_over_the_queue_calendar_unless_the_policy_says_team_hours(session, queues, now, actor) -> None:  # type: ignore[no-untyped-def]
    # Issue 9: a complaint handed to a business-hours team kept the team's calendar and moved the 14-day target by weeks.
    queues["technical"].calendar_code = "za-support"
    opened = now - timedelta(days=1)
    cid = make_case(session, queues, opened=opened, category="complaint", priority=2, queue="technical",
                    events=[(opened + timedelta(hours=1), "queue", "billing", "technical", None)])
    service.recalculate(session, case_ids=[cid], now=now, reason="t", actor=actor)
    res = clock(session, cid, "resolution")
    assert res.calendar_code == "za-247" and res.due_at == opened + timedelta(days=14)
    icasa = session.execute(select(SlaPolicy).where(SlaPolicy.name == "ICASA complaint")).scalar_one()
    icasa.team_hours = True
    session.flush()
    service.recalculate(session, case_ids=[cid], now=now, reason="t", actor=actor)
    assert clock(session, cid, "resolution").calendar_code == "za-support"


def test_choosing_a_calendar_follows_the_policy_then_team_hours_then_a_default():
    from opsline.sla.policies import PolicyRow

    known = {"za-247": {}, "za-support": {}, "b2b": {}}
    p = PolicyRow(1, "P", (), 0, "za-247", {}, team_hours=False)
    assert service.choose_calendar(p, "b2b", known) == "za-247"
    assert service.choose_calendar(PolicyRow(1, "P", (), 0, "za-247", {}, team_hours=True), "b2b", known) == "b2b"
    assert service.choose_calendar(PolicyRow(1, "P", (), 0, "za-247", {}, team_hours=True), None, known) == "za-247"
    assert service.choose_calendar(None, None, known) == "za-support"


def test_a_patch_of_priority_queue_and_state_recomputes_the_clocks_exactly_once(session, queues, now, actor, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from opsline.cases import service as cases
    from opsline.cases.schemas import CaseIn
    from opsline.sla.service import recalc

    c = cases.open_case(session, data=CaseIn(category_code="billing_account", subject="Wrong invoice", queue_code="billing"), now=now, actor=actor)
    calls: list[int] = []
    real = recalc.recompute_case

    def counting(session, *, case_id, now):  # type: ignore[no-untyped-def]
        calls.append(case_id)
        real(session, case_id=case_id, now=now)

    monkeypatch.setattr(recalc, "recompute_case", counting)
    later = now + timedelta(minutes=20)
    cases.update_case(session, case_id=c.id, now=later, actor=actor, status="inProgress", priority=1, queue_code="technical",
                      notes=[("line tested", None), ("customer called back", None)], reason="escalated by phone")
    assert calls == [c.id]
    session.expire_all()
    assert clock(session, c.id, "first_response").target_seconds == 30 * 60  # the P1 policy, from the one recomputation
    assert session.execute(select(func.count()).select_from(SlaClock).where(SlaClock.case_id == c.id, SlaClock.metric == "team")).scalar_one() == 2


def test_a_refused_patch_changes_nothing_and_recomputes_nothing(session, queues, now, actor, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from opsline.cases import service as cases
    from opsline.cases.schemas import CaseIn
    from opsline.core.lifecycle import ReasonRequired
    from opsline.sla.service import recalc

    c = cases.open_case(session, data=CaseIn(category_code="billing_account", subject="Wrong invoice", queue_code="billing"), now=now, actor=actor)
    session.commit()
    calls: list[int] = []
    monkeypatch.setattr(recalc, "recompute_case", lambda session, *, case_id, now: calls.append(case_id))
    with pytest.raises(ReasonRequired):
        cases.update_case(session, case_id=c.id, now=now, actor=actor, priority=1, status="pending")
    session.rollback()
    assert calls == []
    assert session.get(SupportCase, c.id).priority != 1


def test_cases_service_changes_recompute_the_clocks_in_the_same_transaction(session, queues, now, actor) -> None:  # type: ignore[no-untyped-def]
    from opsline.cases import service as cases
    from opsline.cases.schemas import CaseIn

    c = cases.open_case(session, data=CaseIn(category_code="billing_account", subject="Wrong invoice", queue_code="billing"), now=now, actor=actor)
    fr = clock(session, c.id, "first_response")
    assert fr.state == "running" and fr.started_at == now
    cases.change_priority(session, case_id=c.id, priority=1, now=now + timedelta(minutes=5), actor=actor, reason="customer is a hospital")
    session.expire_all()
    assert clock(session, c.id, "first_response").target_seconds == 30 * 60
    assert session.get(SupportCase, c.id).sla_policy_id == session.execute(select(SlaPolicy.id).where(SlaPolicy.name == "Default P1")).scalar_one()


def test_a_business_hours_clock_skips_a_public_holiday(session, queues, now, actor) -> None:  # type: ignore[no-untyped-def]
    # Tuesday 15 December 2026 16:00; the 16th is the Day of Reconciliation. P3 first response: 4 business hours.
    opened = at(2026, 12, 15, 16, 0)
    cid = make_case(session, queues, opened=opened, priority=3)
    service.recalculate(session, case_ids=[cid], now=opened + timedelta(minutes=5), reason="t", actor=actor)
    assert clock(session, cid, "first_response").due_at == at(2026, 12, 17, 11, 0)  # 1 h on the 15th, 3 h on the 17th


def test_a_24x7_complaint_clock_runs_across_month_end_in_calendar_time(session, queues, now, actor) -> None:  # type: ignore[no-untyped-def]
    opened = at(2026, 11, 30, 23, 30)
    cid = make_case(session, queues, opened=opened, category="complaint", priority=2)
    service.recalculate(session, case_ids=[cid], now=opened + timedelta(hours=1), reason="t", actor=actor)
    assert clock(session, cid, "first_response").due_at == at(2026, 12, 2, 23, 30)
    assert clock(session, cid, "resolution").due_at == at(2026, 12, 14, 23, 30)


def test_a_24x7_clock_in_a_site_timezone_loses_no_hour_over_the_dst_change(session, queues, now, actor) -> None:  # type: ignore[no-untyped-def]
    from opsline.customers.models import Account, Party, Site

    p = Party(kind="person", name="Ama Mensah", created_at=now)
    session.add(p)
    session.flush()
    acc = Account(account_number="4000000001", party_id=p.id, name="Ama Mensah", kind="retail", status="active", segment_code="consumer",
                  value_tier_code="standard", currency="ZAR", created_at=now, updated_at=now)
    session.add(acc)
    session.flush()
    session.add(Site(account_id=acc.id, line1="1 High St", city="London", country="GB", timezone="Europe/London", created_at=now))
    opened = datetime(2026, 3, 28, 12, 0, tzinfo=ZoneInfo("UTC"))  # the clocks go forward in London on Sunday 29 March
    cid = make_case(session, queues, opened=opened, category="complaint", priority=2)
    session.get(SupportCase, cid).account_id = acc.id
    session.flush()
    service.recalculate(session, case_ids=[cid], now=opened + timedelta(hours=1), reason="t", actor=actor)
    fr = clock(session, cid, "first_response")
    assert fr.calendar_code == "za-247" and fr.due_at == opened + timedelta(hours=48)
    assert session.execute(select(SlaCase.timezone).where(SlaCase.case_id == cid)).scalar_one() == "Europe/London"


def test_a_single_case_change_recomputes_only_that_case_on_the_memoised_index(session, queues, now, actor, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from opsline.core.calendar import CalendarIndex, memo
    from opsline.sla.service import engine, loading

    ids = [make_case(session, queues, opened=now - timedelta(hours=h)) for h in range(1, 6)]
    service.recompute_case(session, case_id=ids[0], now=now)  # warms the memoised index of its calendar
    loaded: list[list[int]] = []
    builds: list[object] = []
    real_load, real_build = loading.load_cases, CalendarIndex.build
    monkeypatch.setattr(loading, "load_cases", lambda s, case_ids: loaded.append(list(case_ids)) or real_load(s, case_ids))
    monkeypatch.setattr(engine.CalendarIndex, "build", classmethod(lambda cls, *a, **k: builds.append(a) or real_build(*a, **k)))
    assert memo.CalendarIndex is engine.CalendarIndex
    service.recompute_case(session, case_id=ids[1], now=now + timedelta(minutes=1))
    assert loaded == [[ids[1]]] and builds == []
    assert session.execute(select(func.count()).select_from(SlaClock).where(SlaClock.case_id.in_(ids[2:]))).scalar_one() == 0


def test_a_batch_gives_cases_the_summaries_it_would_read_back_from_its_stored_clocks(session, queues, now, actor) -> None:  # type: ignore[no-untyped-def]
    ids = [make_case(session, queues, opened=now - timedelta(hours=h), priority=1 + h % 4,
                     events=[(now - timedelta(hours=h) + timedelta(minutes=20), "state", "acknowledged", "pending" if h % 3 else "held", {"partner_code": "openserve"})])
           for h in range(1, 60, 3)]
    ids.append(make_case(session, queues, opened=now - timedelta(days=2), state="resolved", events=[(now - timedelta(days=1), "state", "acknowledged", "resolved", None)]))
    service.recalculate(session, case_ids=ids, now=now, reason="t", actor=actor)
    stored = {r.id: {"id": r.id, "sla_state": r.sla_state, "sla_due_at": r.sla_due_at, "sla_breached_at": r.sla_breached_at, "sla_risk": r.sla_risk}
              for r in session.execute(select(SupportCase).where(SupportCase.id.in_(ids))).scalars()}
    read_back = {r["id"]: r for r in service.case_summaries(session, case_ids=ids, now=now)}
    assert stored == read_back
    assert {r["sla_state"] for r in read_back.values()} >= {"breached", None} and len({r["sla_state"] for r in read_back.values()}) >= 3


def test_a_policy_change_without_its_case_summary_is_refused_and_nothing_changes(session, queues, now, actor) -> None:  # type: ignore[no-untyped-def]
    case_id = make_case(session, queues, opened=now - timedelta(hours=2))
    service.recalculate(session, case_ids=[case_id], now=now, reason="t", actor=actor)
    session.commit()
    before = session.execute(select(SupportCase.sla_policy_id, SupportCase.sla_state, SupportCase.sla_as_of).where(SupportCase.id == case_id)).one()
    history = session.execute(select(func.count()).select_from(CaseEvent).where(CaseEvent.case_id == case_id)).scalar_one()
    change = {"id": case_id, "account_id": None, "from": before.sla_policy_id, "to": None, "name": None}
    with pytest.raises(InvalidInput, match="policy change without a matching summary row"):
        cases_service.record_sla_recalculation(session, rows=[{"id": case_id, "sla_state": "ok", "sla_policy_id": before.sla_policy_id}], policy_changes=[change],
                                               now=now + timedelta(hours=1), actor=actor, reason="t")
    session.rollback()
    assert session.execute(select(SupportCase.sla_policy_id, SupportCase.sla_state, SupportCase.sla_as_of).where(SupportCase.id == case_id)).one() == before
    assert session.execute(select(func.count()).select_from(CaseEvent).where(CaseEvent.case_id == case_id)).scalar_one() == history
