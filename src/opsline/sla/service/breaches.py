"""Breaches: causes, the breach list and report, and the SLA desk's dashboard."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from opsline.cases.models import Queue, SupportCase
from opsline.core import events
from opsline.core.events import Actor
from opsline.sla.clocks import LABELS
from opsline.sla.models import BreachCause, SlaBreach, SlaClock, SlaNotification
from opsline.sla.service.common import CUSTOMER_METRICS, OPEN_CASE_STATES, BreachNotFound, UnableToSetBreachCause
from opsline.sla.service.reading import breach_risk


def set_breach_cause(session: Session, *, breach_id: int, cause_code: str, note: str | None, now: datetime, actor: Actor) -> dict[str, Any]:
    """Record why a breach happened. Raises BreachNotFound, UnableToSetBreachCause (unknown cause)."""
    breach = session.get(SlaBreach, breach_id)
    if breach is None:
        raise BreachNotFound(f"breach {breach_id} not found")
    if session.get(BreachCause, cause_code) is None:
        raise UnableToSetBreachCause(f"unknown breach cause '{cause_code}'", field="cause_code")
    before = {"cause_code": breach.cause_code, "cause_note": breach.cause_note}
    breach.cause_code, breach.cause_note, breach.set_by, breach.set_at = cause_code, (note or None), actor.name, now
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="sla_breach", entity_id=breach.id, account_id=breach.account_id, action="cause_set",
                  reason=note, before=before, after={"cause_code": cause_code, "cause_note": breach.cause_note})
    return {"id": breach.id, "cause_code": cause_code, "cause_note": breach.cause_note}


def breach_causes(session: Session) -> list[dict[str, Any]]:
    return [{"code": c.code, "name": c.name, "controllable": c.controllable} for c in session.execute(select(BreachCause).order_by(BreachCause.name)).scalars()]


def list_breaches(session: Session, *, since: datetime | None = None, until: datetime | None = None, cause: str | None = None, uncaused: bool = False,
                  case_id: int | None = None, open_only: bool = False, limit: int = 200, offset: int = 0) -> dict[str, Any]:
    """Breaches newest first. `since`/`until` filter on when the deadline passed; `open_only` keeps breaches of cases
    still open (whenever they breached)."""
    q = (select(SlaBreach, SupportCase.reference, Queue.name.label("team"), BreachCause.name.label("cause_name"))
         .join(SupportCase, SupportCase.id == SlaBreach.case_id).outerjoin(Queue, Queue.id == SlaBreach.queue_id).outerjoin(BreachCause, BreachCause.code == SlaBreach.cause_code))
    cnt = select(func.count(SlaBreach.id))
    conds = []
    if since is not None:
        conds.append(SlaBreach.breached_at >= since)
    if until is not None:
        conds.append(SlaBreach.breached_at < until)
    if cause:
        conds.append(SlaBreach.cause_code == cause)
    if uncaused:
        conds.append(SlaBreach.cause_code.is_(None))
    if case_id is not None:
        conds.append(SlaBreach.case_id == case_id)
    if open_only:
        conds.append(SlaBreach.case_id.in_(select(SupportCase.id).where(SupportCase.state.in_(OPEN_CASE_STATES))))
    if conds:
        q, cnt = q.where(*conds), cnt.where(*conds)
    total = session.execute(cnt).scalar_one()
    items = []
    for b, ref, team, cause_name in session.execute(q.order_by(SlaBreach.breached_at.desc(), SlaBreach.id.desc()).limit(limit).offset(offset)):
        items.append({"id": b.id, "case_id": b.case_id, "reference": ref, "account_id": b.account_id, "metric": b.metric, "label": LABELS.get(b.metric, b.metric),
                      "team": team, "queue_id": b.queue_id, "partner_code": b.partner_code, "breached_at": b.breached_at, "due_at": b.due_at,
                      "overrun_hours": round(b.overrun_seconds / 3600, 2), "cause_code": b.cause_code, "cause_name": cause_name, "cause_note": b.cause_note,
                      "set_by": b.set_by, "set_at": b.set_at})
    return {"items": items, "total": total}


def breach_report(session: Session, *, since: datetime, until: datetime) -> dict[str, Any]:
    """Breaches in [since, until) grouped by cause and by team: counts and total overrun business hours."""
    window = and_(SlaBreach.breached_at >= since, SlaBreach.breached_at < until)
    by_cause = [
        {"cause_code": code, "cause": name or "Not yet analysed", "count": n, "overrun_hours": round((secs or 0) / 3600, 1)}
        for code, name, n, secs in session.execute(
            select(SlaBreach.cause_code, BreachCause.name, func.count(SlaBreach.id), func.sum(SlaBreach.overrun_seconds))
            .outerjoin(BreachCause, BreachCause.code == SlaBreach.cause_code).where(window).group_by(SlaBreach.cause_code, BreachCause.name)
            .order_by(func.count(SlaBreach.id).desc(), SlaBreach.cause_code))
    ]
    # A third party's breach is attributed to the partner, everything else to the team that held the case.
    merged: dict[str, dict[str, Any]] = {}
    for qid, name, partner, n, secs in session.execute(
            select(SlaBreach.queue_id, Queue.name, SlaBreach.partner_code, func.count(SlaBreach.id), func.sum(SlaBreach.overrun_seconds))
            .outerjoin(Queue, Queue.id == SlaBreach.queue_id).where(window).group_by(SlaBreach.queue_id, Queue.name, SlaBreach.partner_code)
            .order_by(SlaBreach.queue_id)):
        label = f"Partner {partner}" if partner else (name or "Unassigned")
        row = merged.setdefault(label, {"queue_id": None if partner else qid, "team": label, "partner_code": partner, "count": 0, "seconds": 0})
        row["count"] += n
        row["seconds"] += secs or 0
    by_team = sorted(({k: v for k, v in r.items() if k != "seconds"} | {"overrun_hours": round(r["seconds"] / 3600, 1)} for r in merged.values()), key=lambda r: (-r["count"], r["team"]))
    total = sum(r["count"] for r in by_cause)
    return {"since": since, "until": until, "by_cause": by_cause, "by_team": by_team, "total": total, "overrun_hours": round(sum(r["overrun_hours"] for r in by_cause), 1)}


def dashboard(session: Session, *, now: datetime, month_start: datetime) -> dict[str, Any]:
    """Open clocks by state, the clocks breaching soonest, and this month's breach report, with the two breach
    counts that answer different questions side by side: open cases past a deadline (whenever it passed; of which
    how many before this month) and deadlines missed this month (open or since resolved)."""
    by_state = {s: n for s, n in session.execute(
        select(SlaClock.state, func.count(SlaClock.id)).join(SupportCase, SupportCase.id == SlaClock.case_id)
        .where(SupportCase.state.in_(OPEN_CASE_STATES), SlaClock.stopped_at.is_(None)).group_by(SlaClock.state))}
    open_breached, before_month = session.execute(
        select(func.count(SupportCase.id), func.count(SupportCase.id).filter(SupportCase.sla_breached_at < month_start))
        .where(SupportCase.state.in_(OPEN_CASE_STATES), SupportCase.sla_state == "breached")).one()
    soon = []
    for c, ref, team, prio in session.execute(
        select(SlaClock, SupportCase.reference, Queue.name, SupportCase.priority).join(SupportCase, SupportCase.id == SlaClock.case_id).outerjoin(Queue, Queue.id == SupportCase.queue_id)
        .where(SupportCase.state.in_(OPEN_CASE_STATES), SlaClock.state == "running", SlaClock.metric.in_(CUSTOMER_METRICS))
        .order_by(SlaClock.due_at).limit(15)
    ):
        soon.append({"case_id": c.case_id, "reference": ref, "team": team, "priority": prio, "metric": c.metric, "label": LABELS[c.metric], "due_at": c.due_at,
                     "percent": round(100 * c.elapsed_seconds / c.target_seconds, 1) if c.target_seconds else 0})
    risks = breach_risk(session, case_ids=[s["case_id"] for s in soon], now=now)
    for s in soon:
        r = risks.get(s["case_id"])
        s["risk"] = None if r is None else round(100 * r)
    return {"by_state": {s: by_state.get(s, 0) for s in ("running", "paused", "breached")}, "soon": soon,
            "open_breached": int(open_breached), "open_breached_before_month": int(before_month),
            "report": breach_report(session, since=month_start, until=now + timedelta(seconds=1))}


def notifications(session: Session, *, limit: int = 50) -> list[dict[str, Any]]:
    return [{"id": n.id, "case_id": n.case_id, "message": n.message, "created_at": n.created_at, "user_id": n.user_id}
            for n in session.execute(select(SlaNotification).order_by(SlaNotification.id.desc()).limit(limit)).scalars()]
