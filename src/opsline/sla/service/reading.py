"""Reading clocks: a case's clocks as of now, breach probabilities, and the per-case summary the SLA engine gives
to cases (breached and since when, the next deadline, the breach probability)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from opsline.cases.models import SupportCase as C
from opsline.sla.clocks import LABELS
from opsline.sla.models import SlaClock
from opsline.sla.risk import MIN_HISTORY, Survival, breach_probability
from opsline.sla.service import engine
from opsline.sla.service.common import AT_RISK, CUSTOMER_METRICS, OPEN_CASE_STATES, id_filters


def case_clocks(session: Session, *, case_id: int, now: datetime) -> list[dict[str, Any]]:
    """Every clock of the case as of `now`, computed from its history (earlier met next-update windows left out).

    Each dict: metric, label, team, partner, started_at, due_at, elapsed_seconds, target_seconds, percent,
    state, paused_seconds, paused (plus key, stopped_at, breached_at)."""
    _, _, clocks = engine.compute(session, [case_id], now=now)
    rows = clocks.get(case_id, [])
    windows = [c for c in rows if c.metric == "next_update"]
    last_window = windows[-1] if windows else None
    order = {m: i for i, m in enumerate(LABELS)}
    return [c.as_dict() for c in sorted(rows, key=lambda c: (order[c.metric], c.started_at))
            if not (c.metric == "next_update" and c is not last_window and c.state != "breached")]


def _durations(session: Session, *conds: Any) -> tuple[dict[tuple[Any, Any], list[int]], dict[tuple[Any, Any], list[int]]]:
    obs: dict[tuple[Any, Any], list[int]] = defaultdict(list)
    cen: dict[tuple[Any, Any], list[int]] = defaultdict(list)
    for q, cat, el, finished in session.execute(
            select(C.queue_id, C.category_code, SlaClock.elapsed_seconds, SlaClock.stopped_at.is_not(None))
            .join(SlaClock, and_(SlaClock.case_id == C.id, SlaClock.metric == "resolution")).where(*conds)):
        (obs if finished else cen)[(q, cat)].append(int(el))
    return obs, cen


def _flat(groups: dict[tuple[Any, Any], list[int]], queue: Any = None) -> list[int]:
    return [x for (q, _), v in groups.items() if queue is None or q == queue for x in v]


def _curve_for(session: Session, queue_ids: set[Any]) -> Any:
    """A function (queue, category) -> the survival curve to use: the group's, else its queue's, else everyone's
    (the overall curve is read only when some group needs it). Finished cases are observed, open ones censored."""
    obs, cen = _durations(session, C.queue_id.in_([q for q in queue_ids if q is not None]))
    cache: dict[Any, Survival | None] = {}

    def overall() -> Survival:
        if "*" not in cache:
            all_obs, all_cen = _durations(session)
            cache["*"] = Survival(_flat(all_obs), _flat(all_cen))
        return cache["*"]  # type: ignore[return-value]

    def pick(queue: Any, category: Any) -> Survival | None:
        group = Survival(obs.get((queue, category), []), cen.get((queue, category), []))
        if group.events >= MIN_HISTORY:
            return group
        if ("q", queue) not in cache:
            cache[("q", queue)] = Survival(_flat(obs, queue), _flat(cen, queue))
        by_queue = cache[("q", queue)]
        if by_queue is not None and by_queue.events >= MIN_HISTORY:
            return by_queue
        every = overall()
        return every if every.events >= MIN_HISTORY else None

    return pick


class _RiskRow(NamedTuple):
    id: int
    queue_id: Any
    category_code: Any
    elapsed_seconds: int
    target_seconds: int
    state: str


def breach_risk(session: Session, *, case_ids: list[int], now: datetime) -> dict[int, float | None]:
    """Probability (0..1) that each open case's resolution clock breaches, from the Kaplan-Meier curve of its queue and
    category (falling back to its queue, then to every case, when a group has fewer than MIN_HISTORY finished cases).
    None for a case already breached (it is breached, not at risk), without a resolution clock, or without history."""
    if not case_ids:
        return {}
    rows = []
    for cond in id_filters(session, C.id, case_ids):
        rows += [_RiskRow(*r) for r in session.execute(
            select(C.id, C.queue_id, C.category_code, SlaClock.elapsed_seconds, SlaClock.target_seconds, SlaClock.state)
            .join(SlaClock, and_(SlaClock.case_id == C.id, SlaClock.metric == "resolution")).where(cond))]
    return _risks(session, rows, case_ids)


def _risks(session: Session, rows: Sequence[_RiskRow], case_ids: Iterable[int]) -> dict[int, float | None]:
    out: dict[int, float | None] = {int(cid): None for cid in case_ids}
    if not rows:
        return out
    curve_for = _curve_for(session, {r.queue_id for r in rows})
    groups: dict[tuple[Any, Any], list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        if r.state != "breached" and r.target_seconds and r.elapsed_seconds < r.target_seconds:
            groups[(r.queue_id, r.category_code)].append(i)
    for (q, cat), idx in groups.items():
        curve = curve_for(q, cat)
        if curve is None:
            continue
        e = np.array([rows[i].elapsed_seconds for i in idx], dtype=np.float64)
        t = np.array([rows[i].target_seconds for i in idx], dtype=np.float64)
        for i, p in zip(idx, breach_probability(curve, e, t).tolist()):
            out[int(rows[i].id)] = round(float(p), 4)
    return out


# A customer clock still open, as the summary needs it: (state, due_at, breached_at, elapsed_seconds, target_seconds)
_Open = tuple[str, datetime, "datetime | None", int, int]


def case_summaries(session: Session, *, case_ids: Sequence[int], now: datetime) -> list[dict[str, Any]]:
    """Per case, from its stored clocks: 'breached' (a customer clock still open past its deadline, since when),
    'at_risk' (breach probability >= AT_RISK, or >= 75 % of a target used when there is no history) or 'ok'; the
    next deadline and the probability. Finished cases and cases without clocks get an empty summary."""
    ids = [int(x) for x in case_ids]
    if not ids:
        return []
    open_ids: set[int] = set()
    clocks: dict[int, list[_Open]] = defaultdict(list)
    for cond in id_filters(session, C.id, ids):
        open_ids |= set(session.execute(select(C.id).where(cond, C.state.in_(OPEN_CASE_STATES))).scalars())
    for cond in id_filters(session, SlaClock.case_id, ids):
        for r in session.execute(select(SlaClock.case_id, SlaClock.state, SlaClock.due_at, SlaClock.breached_at, SlaClock.elapsed_seconds, SlaClock.target_seconds)
                                 .where(cond, SlaClock.metric.in_(CUSTOMER_METRICS), SlaClock.stopped_at.is_(None))):
            clocks[r.case_id].append(tuple(r)[1:])  # type: ignore[arg-type]
    return _summarise(ids, open_ids, clocks, breach_risk(session, case_ids=sorted(open_ids), now=now))


def summaries_from_clocks(session: Session, *, cases: Mapping[int, tuple[str, Any, Any]], clocks: Iterable[Mapping[str, Any]],
                          now: datetime) -> list[dict[str, Any]]:
    """`case_summaries` of `cases` ({id: (state, queue_id, category_code)}) from clock rows the caller has just stored
    (`clocks`: every clock of those cases, as written), so a batch does not read back what it wrote. Only the
    breach-probability curves, which need every case's history, are read."""
    open_ids = {cid for cid, (state, _, _) in cases.items() if state in OPEN_CASE_STATES}
    by_case: dict[int, list[_Open]] = defaultdict(list)
    risk_rows = []
    for c in clocks:
        cid = c["case_id"]
        if cid not in open_ids:
            continue
        if c["metric"] == "resolution":
            _, queue_id, category = cases[cid]
            risk_rows.append(_RiskRow(cid, queue_id, category, c["elapsed_seconds"], c["target_seconds"], c["state"]))
        if c["metric"] in CUSTOMER_METRICS and c["stopped_at"] is None:
            by_case[cid].append((c["state"], c["due_at"], c["breached_at"], c["elapsed_seconds"], c["target_seconds"]))
    return _summarise(list(cases), open_ids, by_case, _risks(session, risk_rows, sorted(open_ids)))


def _summarise(ids: Sequence[int], open_ids: set[int], clocks: Mapping[int, list[_Open]], risks: Mapping[int, float | None]) -> list[dict[str, Any]]:
    out = []
    for cid in ids:
        rows = clocks.get(cid, []) if cid in open_ids else []
        if not rows:
            out.append({"id": cid, "sla_state": None, "sla_due_at": None, "sla_breached_at": None, "sla_risk": None})
            continue
        breached = [breached_at or due_at for state, due_at, breached_at, _, _ in rows if state == "breached"]
        due = [due_at for state, due_at, _, _, _ in rows if state != "breached"]
        risk = risks.get(cid)
        used = max((el / tg for state, _, _, el, tg in rows if tg and state != "breached"), default=0.0)
        state = "breached" if breached else "at_risk" if (risk is not None and risk >= AT_RISK) or (risk is None and used >= 0.75) else "ok"
        out.append({"id": cid, "sla_state": state, "sla_due_at": min(due) if due else None, "sla_breached_at": min(breached) if breached else None,
                    "sla_risk": risk})
    return out


def compliance(session: Session, *, since: datetime, until: datetime) -> dict[str, Any]:
    """Customer SLA compliance over clocks that stopped in [since, until): per metric (first response, next update,
    resolution) and overall, how many stopped and how many of those were met (never breached). One aggregate query;
    `met_pct` is None when nothing stopped."""
    from sqlalchemy import case, func

    met = func.sum(case((SlaClock.breached_at.is_(None), 1), else_=0))
    rows = session.execute(select(SlaClock.metric, func.count(), met).where(SlaClock.metric.in_(CUSTOMER_METRICS), SlaClock.stopped_at.is_not(None),
                                                                          SlaClock.stopped_at >= since, SlaClock.stopped_at < until)
                           .group_by(SlaClock.metric)).all()
    by = {m: (int(n), int(k or 0)) for m, n, k in rows}

    def pct(n: int, k: int) -> float | None:
        return round(100 * k / n, 1) if n else None

    total, total_met = sum(n for n, _ in by.values()), sum(k for _, k in by.values())
    return {"stopped": total, "met": total_met, "met_pct": pct(total, total_met),
            "by_metric": [{"metric": m, "label": LABELS.get(m, m), "stopped": by.get(m, (0, 0))[0], "met": by.get(m, (0, 0))[1],
                           "met_pct": pct(*by.get(m, (0, 0)))} for m in CUSTOMER_METRICS]}
