"""Policies and business calendars: list, create, change (each change re-queues recalculation), pin a case."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import holidays as holidays_lib
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.core import events
from opsline.core.calendar import BusinessCalendar
from opsline.core.errors import NotFound
from opsline.core.events import Actor
from opsline.sla import policies as pol
from opsline.sla.models import BusinessCalendarRow, SlaCase, SlaClock, SlaPolicy
from opsline.sla.service import recalc
from opsline.sla.service.common import chunks

POLICY_FIELDS = set(pol.MATCH_FIELDS) | set(pol.TARGET_FIELDS) | {"name", "active", "calendar_code", "team_hours", "warn_percents", "escalations",
                                                                   "third_party_minutes"}


def list_policies(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(select(SlaPolicy).order_by(SlaPolicy.id)).scalars().all()
    ranked = {p.id: i + 1 for i, p in enumerate(pol.load_policies(session))}
    out = []
    for p in rows:
        crit = {f: getattr(p, f) for f in pol.MATCH_FIELDS if getattr(p, f) is not None}
        out.append({"id": p.id, "name": p.name, "active": p.active, "criteria": crit, "specificity": len(crit), "rank": ranked.get(p.id),
                    "first_response_minutes": p.first_response_minutes, "next_update_minutes": p.next_update_minutes, "resolution_minutes": p.resolution_minutes,
                    "team_minutes": p.team_minutes, "calendar_code": p.calendar_code, "team_hours": p.team_hours, "warn_percents": p.warn_percents, "escalations": p.escalations,
                    "third_party_minutes": p.third_party_minutes})
    return out


def create_policy(session: Session, *, fields: dict[str, Any], now: datetime, actor: Actor) -> int:
    """Add a policy. Raises UnableToSavePolicy for unknown category/calendar/queue or bad targets."""
    allowed = POLICY_FIELDS
    unknown = set(fields) - allowed
    if unknown:
        raise pol.UnableToSavePolicy(f"unknown policy fields: {', '.join(sorted(unknown))}")
    if not fields.get("name"):
        raise pol.UnableToSavePolicy("a policy needs a name", field="name")
    if not fields.get("calendar_code"):
        raise pol.UnableToSavePolicy("a policy needs a business calendar", field="calendar_code")
    pol.validate_policy_fields(session, fields)
    if session.execute(select(SlaPolicy.id).where(SlaPolicy.name == fields["name"])).first():
        raise pol.UnableToSavePolicy(f"a policy named '{fields['name']}' already exists", field="name")
    p = SlaPolicy(**({"warn_percents": [50, 75, 100], "escalations": [], "third_party_minutes": {}} | fields), version=1, updated_at=now)
    session.add(p)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="sla_policy", entity_id=p.id, action="created", after={k: v for k, v in fields.items()})
    return p.id


def update_policy(session: Session, *, policy_id: int, changes: dict[str, Any], now: datetime, actor: Actor, reason: str) -> int:
    """Change a policy's criteria or targets and enqueue recalculation of every open case. Returns jobs enqueued.

    Raises NotFound, UnableToSavePolicy.
    """
    p = session.get(SlaPolicy, policy_id)
    if p is None:
        raise NotFound(f"SLA policy {policy_id} not found")
    allowed = POLICY_FIELDS
    unknown = set(changes) - allowed
    if unknown:
        raise pol.UnableToSavePolicy(f"unknown policy fields: {', '.join(sorted(unknown))}")
    pol.validate_policy_fields(session, changes)
    before = {k: getattr(p, k) for k in changes}
    for k, v in changes.items():
        setattr(p, k, v)
    p.version += 1
    p.updated_at = now
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="sla_policy", entity_id=p.id, action="updated", reason=reason, before=before, after=dict(changes))
    return recalc.enqueue_recalculation(session, now=now, reason=f"policy '{p.name}' changed: {reason}", actor=actor)


def pin_policy(session: Session, *, case_id: int, policy_id: int | None, now: datetime, actor: Actor, reason: str) -> None:
    """Pin a case to a policy (None unpins) and recompute it. Raises NotFound."""
    if policy_id is not None and session.get(SlaPolicy, policy_id) is None:
        raise NotFound(f"SLA policy {policy_id} not found")
    row = session.get(SlaCase, case_id)
    if row is None:
        row = SlaCase(case_id=case_id, pinned=False)
        session.add(row)
    row.policy_id, row.pinned = policy_id, policy_id is not None
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="support_case", entity_id=case_id, account_id=row.account_id, action="sla.policy_pinned", reason=reason, after={"policy_id": policy_id})
    recalc.recalculate(session, case_ids=[case_id], now=now, reason=reason, actor=actor)


def list_calendars(session: Session) -> list[dict[str, Any]]:
    return [{"code": r.code, "name": r.name, "timezone": r.timezone, "week": pol.week_table(r.data), "closures": len(r.data.get("closures", [])), "holiday_country": r.data.get("holiday_country")}
            for r in session.execute(select(BusinessCalendarRow).order_by(BusinessCalendarRow.code)).scalars()]


def get_calendar(session: Session, *, code: str) -> BusinessCalendar:
    """Raises NotFound."""
    row = session.get(BusinessCalendarRow, code)
    if row is None:
        raise NotFound(f"business calendar '{code}' not found")
    return pol.calendar_from_row(row.data)


def calendar_view(session: Session, *, code: str, start: datetime, days: int = 60) -> dict[str, Any]:
    """Working hours per day for the next `days` days: shifts, holidays and closures shown as closed."""
    row = session.get(BusinessCalendarRow, code)
    if row is None:
        raise NotFound(f"business calendar '{code}' not found")
    cal = pol.calendar_from_row(row.data)
    tz = cal.timezone
    local = start.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    hol = holidays_lib.country_holidays(row.data["holiday_country"]) if row.data.get("holiday_country") else None
    closures = set(c for c in row.data.get("closures", []) if isinstance(c, str))
    out = []
    for d in range(days):
        day = (local + timedelta(days=d)).replace(tzinfo=None)
        lo = datetime.combine(day.date(), datetime.min.time(), tzinfo=tz)
        hi = lo + timedelta(days=1)
        ivs = cal.intervals(lo, hi)
        note = hol.get(day.date()) if hol is not None else None  # an unpopulated HolidayBase is falsy
        if day.date().isoformat() in closures:
            note = "Closure"
        out.append({"date": day.date(), "weekday": day.strftime("%a"), "hours": round(sum((b - a).total_seconds() for a, b in ivs) / 3600, 2),
                    "shifts": ", ".join(f"{a.astimezone(tz):%H:%M}–{b.astimezone(tz):%H:%M}" for a, b in ivs), "note": note})
    return {"code": row.code, "name": row.name, "timezone": row.timezone, "week": pol.week_table(row.data), "days": out, "closures": row.data.get("closures", []), "version": row.version}


def update_calendar(session: Session, *, code: str, data: dict[str, Any] | None = None, add_closures: list[Any] | None = None, remove_closures: list[Any] | None = None, now: datetime, actor: Actor, reason: str) -> int:
    """Replace a calendar's data and/or add/remove closures (dates 'YYYY-MM-DD' or [from, to] ISO pairs); records
    an event and enqueues sharded recalculation of every open case. Returns jobs enqueued.

    Raises NotFound, UnableToSaveCalendar (overlapping shifts, bad timezone, malformed closure).
    """
    row = session.get(BusinessCalendarRow, code)
    if row is None:
        raise NotFound(f"business calendar '{code}' not found")
    new = dict(data if data is not None else row.data)
    closures = list(new.get("closures", []))
    for c in add_closures or []:
        if c not in closures:
            closures.append(c)
    for c in remove_closures or []:
        if c in closures:
            closures.remove(c)
    new["closures"] = closures
    normalised = pol.validate_calendar_data(new)
    before = dict(row.data)
    row.data = normalised
    row.timezone = normalised["timezone"]
    row.version += 1
    row.updated_at = now
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="business_calendar", entity_id=code, action="updated", reason=reason, before={"closures": before.get("closures"), "week": before.get("week")}, after={"closures": normalised["closures"], "week": normalised["week"]})
    return recalc.enqueue_recalculation(session, now=now, reason=f"calendar '{code}' changed: {reason}", actor=actor)


def create_calendar(session: Session, *, code: str, name: str, data: dict[str, Any], now: datetime, actor: Actor) -> None:
    """Add a calendar. Raises UnableToSaveCalendar (overlapping shifts, bad timezone, code taken)."""
    if session.get(BusinessCalendarRow, code) is not None:
        raise pol.UnableToSaveCalendar(f"calendar '{code}' already exists", field="code")
    normalised = pol.validate_calendar_data(data)
    session.add(BusinessCalendarRow(code=code, name=name, timezone=normalised["timezone"], data=normalised, version=1, updated_at=now))
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="business_calendar", entity_id=code, action="created", after=normalised)


def stored_clocks(session: Session, *, case_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Stored clock rows (what the last recalculation wrote), for comparisons and exports."""
    out = []
    for chunk in chunks(list(case_ids)):
        for c in session.execute(select(SlaClock).where(SlaClock.case_id.in_(chunk)).order_by(SlaClock.case_id, SlaClock.metric, SlaClock.clock_key)).scalars():
            out.append({k: getattr(c, k) for k in ("case_id", "metric", "clock_key", "queue_id", "partner_code", "policy_id", "calendar_code", "started_at", "due_at", "stopped_at",
                                                     "breached_at", "elapsed_seconds", "target_seconds", "paused_seconds", "state", "paused")} | {"id": c.id, "computed_at": c.computed_at})
    return out
