"""SLA policies and business calendars as data: seeds, validation, policy matching and target resolution."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.core.calendar import BusinessCalendar, InvalidCalendar, Shift, calendar_from_data
from opsline.cases.models import CaseCategory, Queue
from opsline.core.errors import InvalidInput
from opsline.partners.models import Partner
from opsline.sla.clocks import DEFAULT_WARN_PERCENTS, PolicyTargets
from opsline.sla.models import BreachCause, BusinessCalendarRow, QueueOla, SlaContract, SlaPolicy

MATCH_FIELDS = ("category_code", "priority", "value_tier_code", "account_id", "sla_contract_id", "channel")
TARGET_FIELDS = ("first_response_minutes", "next_update_minutes", "resolution_minutes", "team_minutes")
ESCALATION_ACTIONS = ("notify_manager", "reassign", "raise_priority")
# Minutes of business time in one partner "business day" when a partner's SLA is given in days.
PARTNER_DAY_MINUTES = 8 * 60


class UnableToSaveCalendar(InvalidInput):
    pass


class UnableToSavePolicy(InvalidInput):
    pass


BREACH_CAUSES = [
    ("waiting_on_fno", "Waiting on FNO", False),
    ("misrouted", "Misrouted between teams", True),
    ("capacity", "Team capacity / backlog", True),
    ("customer_unreachable", "Customer unreachable", False),
    ("system_outage", "System outage", True),
    ("third_party_courier", "Courier / third party", False),
    ("other", "Other", True),
]

_SPLIT = [["08:00", "12:00"], ["13:00", "17:00"]]
CALENDARS: list[tuple[str, str, dict[str, Any]]] = [
    ("za-support", "ZA support desk (split shift, Sat mornings)", {
        "timezone": "Africa/Johannesburg", "holiday_country": "ZA", "holiday_subdivision": None, "closures": [],
        "week": {str(d): _SPLIT for d in range(5)} | {"5": [["08:00", "12:00"]]},
    }),
    ("za-247", "24x7 (Johannesburg time)", {
        "timezone": "Africa/Johannesburg", "holiday_country": None, "holiday_subdivision": None, "closures": [],
        "week": {str(d): [["00:00", "24:00"]] for d in range(7)},
    }),
    ("b2b-extended", "B2B extended hours (07:00-19:00 weekdays)", {
        "timezone": "Africa/Johannesburg", "holiday_country": "ZA", "holiday_subdivision": None, "closures": [],
        "week": {str(d): [["07:00", "19:00"]] for d in range(5)},
    }),
]

_H = 60
_DAY24 = 24 * 60
# name, criteria, first response, next update, resolution, team (business minutes), calendar, escalations
POLICIES: list[tuple[str, dict[str, Any], int, int | None, int, int | None, str, list[dict[str, Any]]]] = [
    # ICASA: complaints acknowledged within 48 hours and resolved within 14 days (calendar time, so 24x7).
    ("ICASA complaint", {"category_code": "complaint"}, 48 * _H, 48 * _H, 14 * _DAY24, 5 * _DAY24, "za-247",
     [{"at": 75, "action": "notify_manager"}, {"at": 100, "action": "notify_manager"}]),
    ("Default P1", {"priority": 1}, 30, 2 * _H, 4 * _H, 2 * _H, "za-support",
     [{"at": 50, "action": "notify_manager"}, {"at": 75, "action": "reassign", "queue_code": "escalations"}]),
    ("Default P2", {"priority": 2}, 2 * _H, 4 * _H, 16 * _H, 8 * _H, "za-support", [{"at": 75, "action": "notify_manager"}]),
    ("Default P3", {"priority": 3}, 4 * _H, 8 * _H, 24 * _H, 16 * _H, "za-support", [{"at": 75, "action": "notify_manager"}]),
    ("Default P4", {"priority": 4}, 8 * _H, 16 * _H, 40 * _H, 24 * _H, "za-support", [{"at": 100, "action": "notify_manager"}]),
    ("VIP", {"value_tier_code": "vip"}, 15, _H, 4 * _H, 2 * _H, "za-support",
     [{"at": 50, "action": "notify_manager"}, {"at": 75, "action": "raise_priority"}]),
    ("Influencer", {"value_tier_code": "influencer"}, 15, _H, 6 * _H, 3 * _H, "za-support",
     [{"at": 50, "action": "notify_manager"}, {"at": 75, "action": "raise_priority"}]),
    ("Catch-all", {}, 8 * _H, 16 * _H, 40 * _H, 24 * _H, "za-support", []),
]
THIRD_PARTY_DEFAULT = {"*": 3 * PARTNER_DAY_MINUTES}


def calendar_from_row(data: Mapping[str, Any], *, timezone: str | None = None) -> BusinessCalendar:
    """Build a `BusinessCalendar` from stored data, optionally in another timezone (a customer's site).

    Raises InvalidInput for unusable data.
    """
    payload = dict(data)
    if timezone:
        payload["timezone"] = timezone
    try:
        return calendar_from_data(payload)
    except InvalidCalendar as exc:
        raise UnableToSaveCalendar(f"invalid calendar: {exc}", field="data") from exc


def validate_calendar_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """Normalised calendar data (`to_data()` shape). Raises UnableToSaveCalendar (overlapping shifts, bad zone ...)."""
    return calendar_from_row(data).to_data()


def seed_sla_reference(session: Session, *, now: datetime) -> None:
    """Calendars, breach causes and the default (ICASA-style) policies; idempotent, never overwrites edits."""
    for code, name, data in CALENDARS:
        if session.get(BusinessCalendarRow, code) is None:
            session.add(BusinessCalendarRow(code=code, name=name, timezone=data["timezone"], data=validate_calendar_data(data), version=1, updated_at=now))
    for code, name, controllable in BREACH_CAUSES:
        if session.get(BreachCause, code) is None:
            session.add(BreachCause(code=code, name=name, controllable=controllable))
    session.flush()
    existing = set(session.execute(select(SlaPolicy.name)).scalars())
    for name, criteria, fr, nu, res, team, cal, esc in POLICIES:
        if name in existing:
            continue
        session.add(SlaPolicy(name=name, active=True, **criteria, first_response_minutes=fr, next_update_minutes=nu, resolution_minutes=res,
                              team_minutes=team, third_party_minutes=dict(THIRD_PARTY_DEFAULT), calendar_code=cal,
                              warn_percents=list(DEFAULT_WARN_PERCENTS), escalations=esc, version=1, updated_at=now))
    session.flush()


def validate_policy_fields(session: Session, fields: Mapping[str, Any]) -> None:
    """Check a policy's criteria and targets refer to things that exist. Raises UnableToSavePolicy."""
    if "team_hours" in fields and not isinstance(fields["team_hours"], bool):
        raise UnableToSavePolicy("team_hours must be true or false", field="team_hours")
    cat = fields.get("category_code")
    if cat is not None and session.get(CaseCategory, cat) is None:
        raise UnableToSavePolicy(f"unknown case category '{cat}'", field="category_code")
    prio = fields.get("priority")
    if prio is not None and not (isinstance(prio, int) and 1 <= prio <= 4):
        raise UnableToSavePolicy(f"priority must be 1 (highest) to 4, got {prio!r}", field="priority")
    cal = fields.get("calendar_code")
    if cal is not None and session.get(BusinessCalendarRow, cal) is None:
        raise UnableToSavePolicy(f"unknown business calendar '{cal}'", field="calendar_code")
    contract = fields.get("sla_contract_id")
    if contract is not None and session.get(SlaContract, contract) is None:
        raise UnableToSavePolicy(f"unknown SLA contract {contract}", field="sla_contract_id")
    for f in TARGET_FIELDS:
        v = fields.get(f)
        if v is not None and (not isinstance(v, int) or v <= 0):
            raise UnableToSavePolicy(f"{f} must be a positive number of business minutes", field=f)
    warn = fields.get("warn_percents")
    if warn is not None and (not isinstance(warn, list) or not all(isinstance(w, int) and 0 < w <= 1000 for w in warn)):
        raise UnableToSavePolicy("warn_percents must be a list of whole percentages, e.g. [50, 75, 100]", field="warn_percents")
    for i, step in enumerate(fields.get("escalations") or []):
        if not isinstance(step, dict) or step.get("action") not in ESCALATION_ACTIONS or not isinstance(step.get("at"), int):
            raise UnableToSavePolicy(f"escalation {i + 1} needs 'at' (percent) and 'action' in {', '.join(ESCALATION_ACTIONS)}", field="escalations")
        if step["action"] == "reassign":
            q = step.get("queue_code")
            if not q or session.execute(select(Queue.id).where(Queue.code == q)).first() is None:
                raise UnableToSavePolicy(f"escalation {i + 1} reassigns to unknown queue '{q}'", field="escalations")
    for partner, minutes in (fields.get("third_party_minutes") or {}).items():
        if not isinstance(minutes, int) or minutes <= 0:
            raise UnableToSavePolicy(f"third-party target for '{partner}' must be a positive number of minutes", field="third_party_minutes")


@dataclass(frozen=True)
class PolicyRow:
    id: int
    name: str
    criteria: tuple[Any, ...]  # MATCH_FIELDS order
    specificity: int
    calendar_code: str
    fields: dict[str, Any]
    team_hours: bool = False


def load_policies(session: Session) -> list[PolicyRow]:
    rows = session.execute(select(SlaPolicy).where(SlaPolicy.active.is_(True)).order_by(SlaPolicy.id)).scalars().all()
    out = []
    for p in rows:
        crit = tuple(getattr(p, f) for f in MATCH_FIELDS)
        out.append(PolicyRow(p.id, p.name, crit, sum(c is not None for c in crit), p.calendar_code, {
            "first_response_minutes": p.first_response_minutes, "next_update_minutes": p.next_update_minutes,
            "resolution_minutes": p.resolution_minutes, "team_minutes": p.team_minutes,
            "third_party_minutes": dict(p.third_party_minutes or {}), "warn_percents": list(p.warn_percents or DEFAULT_WARN_PERCENTS),
            "escalations": list(p.escalations or []),
        }, bool(p.team_hours)))
    # Most specific first; ties to the lowest id (stable sort keeps id order).
    return sorted(out, key=lambda r: (-r.specificity, r.id))


def match_policy(policies: Sequence[PolicyRow], attrs: tuple[Any, ...]) -> PolicyRow | None:
    """The first (most specific, lowest id) policy whose every non-null criterion equals the case's value.

    `attrs` is the case's (category_code, priority, value_tier_code, account_id, sla_contract_id, channel).
    """
    for p in policies:
        if all(c is None or c == a for c, a in zip(p.criteria, attrs)):
            return p
    return None


def partner_minutes(session: Session) -> dict[str, int]:
    """Partner SLA targets (business minutes) from the partners area's table (read-only): its SLA in business days."""
    rows = session.execute(select(Partner.code, Partner.deactivation_sla_days).where(Partner.deactivation_sla_days.is_not(None))).all()
    return {str(code): int(days) * PARTNER_DAY_MINUTES for code, days in rows if days}


def load_olas(session: Session) -> dict[tuple[int, int | None], int]:
    return {(q, p): m for q, p, m in session.execute(select(QueueOla.queue_id, QueueOla.priority, QueueOla.target_minutes)).all()}


def targets_for(policy: PolicyRow, *, priority: int | None, olas: Mapping[tuple[int, int | None], int], partners: Mapping[str, int], contract_overrides: Mapping[str, Any] | None = None) -> PolicyTargets:
    """The clock targets in business seconds for one case under `policy` (contract overrides win)."""
    f = dict(policy.fields)
    for k, v in (contract_overrides or {}).items():
        if k in TARGET_FIELDS and isinstance(v, int) and v > 0:
            f[k] = v

    def sec(m: int | None) -> int | None:
        return None if m is None else int(m) * 60

    by_queue: dict[str, int] = {}
    for (q, p), m in olas.items():
        if p is None and str(q) not in by_queue:
            by_queue[str(q)] = m * 60
    for (q, p), m in olas.items():
        if p is not None and p == priority:
            by_queue[str(q)] = m * 60
    tp = f.get("third_party_minutes") or {}
    by_partner = {k: int(v) * 60 for k, v in partners.items()}
    by_partner.update({k: int(v) * 60 for k, v in tp.items() if k != "*"})
    return PolicyTargets(
        policy_id=policy.id,
        first_response_seconds=sec(f.get("first_response_minutes")),
        next_update_seconds=sec(f.get("next_update_minutes")),
        resolution_seconds=sec(f.get("resolution_minutes")),
        team_seconds=sec(f.get("team_minutes")),
        team_seconds_by_queue=by_queue,
        third_party_seconds_by_partner=by_partner,
        third_party_seconds=sec(tp.get("*")),
        warn_percents=tuple(sorted(int(w) for w in f.get("warn_percents") or DEFAULT_WARN_PERCENTS)),
    )


def week_table(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Shifts per weekday for display."""
    names = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    week = data.get("week", {})
    return [{"day": names[d], "shifts": ", ".join(f"{a}–{b}" for a, b in week.get(str(d), [])) or "closed"} for d in range(7)]


def shift(a: str, b: str) -> Shift:
    return Shift(time.fromisoformat(a), time(0) if b == "24:00" else time.fromisoformat(b))
