"""The engine: choose each case's policy and calendar, replay its history and measure every clock. Nothing is written.

Calendar rule: the policy's calendar applies; a queue's calendar applies only where the policy says "team hours"
(`team_hours`), so handing an ICASA complaint to a business-hours team never moves its 24x7 resolution target."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from opsline.core.calendar import CalendarIndex, calendar_from_data, index_around
from opsline.sla import policies as pol
from opsline.sla.clocks import Clock, IndexOps, ScalarOps, epoch, evaluate, from_epoch, replay
from opsline.sla.service import loading
from opsline.sla.service.common import DEFAULT_CALENDAR
from opsline.sla.service.loading import CaseRow

BULK_INDEX_FROM = 20  # cases per calendar from which a batch builds its own index rather than using the memoised one


@dataclass
class Plan:
    case: CaseRow
    policy: pol.PolicyRow | None
    calendar_key: tuple[str, str | None]  # (calendar code, site timezone or None)


def choose_calendar(policy: pol.PolicyRow | None, queue_calendar: str | None, known: Mapping[str, Any]) -> str:
    """The calendar code a case's clocks run on: the policy's, or the queue's where the policy says team hours."""
    if policy is not None and policy.team_hours and queue_calendar in known:
        return queue_calendar  # type: ignore[return-value]
    if policy is not None and policy.calendar_code in known:
        return policy.calendar_code
    if queue_calendar in known:
        return queue_calendar  # type: ignore[return-value]
    return DEFAULT_CALENDAR if DEFAULT_CALENDAR in known else next(iter(known), DEFAULT_CALENDAR)


def _calendar_payload(data: Mapping[str, Any], tz: str | None) -> dict[str, Any]:
    return dict(data) | ({"timezone": tz} if tz else {})


def plan_cases(session: Session, cases: dict[int, CaseRow], *, now: datetime, queues: dict[int, dict[str, Any]],
               cal_data: dict[str, dict[str, Any]]) -> tuple[dict[int, Plan], dict[int, tuple[int, dict[str, Any]]]]:
    """Each case's policy (pinned, else the most specific match) and calendar."""
    policies = pol.load_policies(session)
    policy_by_id = {p.id: p for p in policies}
    pinned = loading.pinned_policies(session, list(cases))
    accounts = [c.account_id for c in cases.values() if c.account_id is not None]
    tzs = loading.site_timezones(session, accounts)
    contracts = loading.contracts(session, accounts, today=now.date())
    plans: dict[int, Plan] = {}
    match_cache: dict[tuple[Any, ...], pol.PolicyRow | None] = {}
    for cid, c in cases.items():
        contract = contracts.get(c.account_id) if c.account_id is not None else None
        attrs = (c.category_code, c.priority, c.value_tier_code, c.account_id, contract[0] if contract else None, c.channel)
        p = policy_by_id.get(pinned[cid]) if pinned.get(cid) is not None else None  # type: ignore[arg-type]
        if p is None:
            if attrs not in match_cache:
                match_cache[attrs] = pol.match_policy(policies, attrs)
            p = match_cache[attrs]
        code = choose_calendar(p, (queues.get(c.queue_id) or {}).get("calendar_code"), cal_data)  # type: ignore[arg-type]
        plans[cid] = Plan(c, p, (code, tzs.get(c.account_id) if c.account_id is not None else None))
    return plans, contracts


def compute(session: Session, case_ids: Sequence[int], *, now: datetime, vectorised: bool = True) -> tuple[dict[int, CaseRow], dict[int, Plan], dict[int, list[Clock]]]:
    """Replay and measure every clock of `case_ids`; nothing is written. A batch builds one index per calendar for
    its cases; a single case (every case change) uses the memoised index of its calendar. `vectorised=False`
    measures with the scalar (day-memoised) calendar instead: the same answers, the benchmark's baseline."""
    cases = loading.load_cases(session, case_ids)
    if not cases:
        return cases, {}, {}
    queues = loading.load_queues(session)
    by_code = {q["code"]: qid for qid, q in queues.items()}
    queue_names = {str(qid): q["name"] for qid, q in queues.items()}
    cal_data = loading.calendar_data(session)
    plans, contracts = plan_cases(session, cases, now=now, queues=queues, cal_data=cal_data)
    olas = pol.load_olas(session)
    partners = pol.partner_minutes(session)
    evs = loading.load_events(session, list(cases))

    groups: dict[tuple[str, str | None], list[int]] = defaultdict(list)
    for cid, plan in plans.items():
        if plan.policy is not None and evs.get(cid):
            groups[plan.calendar_key].append(cid)
    result: dict[int, list[Clock]] = {}
    targets_memo: dict[tuple[Any, ...], Any] = {}
    for (code, tz), cids in groups.items():
        case_plans, owners = [], []
        for cid in cids:
            c = plans[cid].case
            contract = contracts.get(c.account_id) if c.account_id is not None else None
            # one PolicyTargets per (policy, priority, contract): thousands of cases share a handful
            tkey = (plans[cid].policy.id, c.priority, contract[0] if contract else None)  # type: ignore[union-attr]
            targets = targets_memo.get(tkey)
            if targets is None:
                targets = targets_memo[tkey] = pol.targets_for(plans[cid].policy, priority=c.priority, olas=olas, partners=partners,  # type: ignore[arg-type]
                                                               contract_overrides=contract[1] if contract else None)
            first_queue = next((e.data.get("queue") for e in evs[cid] if e.kind == "opened" and e.data and e.data.get("queue")), None)
            initial_queue = by_code.get(first_queue, c.queue_id) if first_queue else c.queue_id
            cps = replay(loading.normalise_queue_events(evs[cid], by_code), targets, now=now,
                         initial_queue=str(initial_queue) if initial_queue is not None else None, initial_partner=c.partner)
            case_plans.extend(cps)
            owners.extend([cid] * len(cps))
        if not case_plans:
            continue
        payload = _calendar_payload(cal_data[code], tz)
        calendar = calendar_from_data(payload)
        if not vectorised:
            ops: Any = ScalarOps(calendar)
        elif len(cids) >= BULK_INDEX_FROM:
            start = from_epoch(min(p.started_s for p in case_plans)) - timedelta(days=1)
            ops = IndexOps(CalendarIndex.build(calendar, start=start, end=now + timedelta(days=120)), calendar)
        else:
            ops = IndexOps(index_around(payload, now), calendar)
        clocks = evaluate(case_plans, ops, now_s=epoch(now), queue_names=queue_names)
        for cid, clock in zip(owners, clocks):
            result.setdefault(cid, []).append(clock)
    return cases, plans, result
