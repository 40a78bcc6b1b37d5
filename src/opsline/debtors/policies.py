"""Dunning policies as data: validate and save a policy's steps, list policies, and say which policy an account's
segment and value tier fall under."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from opsline.config import DEFAULT_CURRENCY
from opsline.core import events
from opsline.core.errors import InvalidInput, NotFound, StaleVersion
from opsline.core.events import Actor
from opsline.customers.models import Segment, ValueTier
from opsline.debtors.models import HANDLERS, DunningPolicy, DunningStep, StepAction

MESSAGE_EVENTS = {
    StepAction.REMINDER_EMAIL: "dunning.reminder", StepAction.REMINDER_SMS: "dunning.reminder",
    StepAction.LETTER_OF_DEMAND: "dunning.letter_of_demand", StepAction.SUSPENSION_WARNING: "dunning.suspension_warning",
    StepAction.SUSPEND: "dunning.suspended",
}


class UnableToSavePolicy(InvalidInput):
    title = "Unable to save dunning policy"
    type_slug = "unable-to-save-dunning-policy"


@dataclass(frozen=True)
class StepIn:
    name: str
    action: str
    min_days_overdue: int
    min_balance_minor: int = 0
    notice_days: int = 0
    handled_by: str = "system"


def validate_steps(steps: Sequence[StepIn]) -> None:
    """Raises UnableToSavePolicy naming the field (`steps[2].min_days_overdue`) for: no steps, an unknown action or
    handler, negative numbers, or overlapping steps (each step must start at more days overdue than the one before;
    two steps on the same day would both be due at once)."""
    if not steps:
        raise UnableToSavePolicy("a policy needs at least one step", field="steps")
    actions = {a.value for a in StepAction}
    for k, s in enumerate(steps, start=1):
        f = f"steps[{k}]"
        if not (s.name or "").strip():
            raise UnableToSavePolicy(f"step {k} needs a name", field=f"{f}.name")
        if s.action not in actions:
            raise UnableToSavePolicy(f"step {k}: unknown action '{s.action}' (one of {', '.join(sorted(actions))})", field=f"{f}.action")
        if s.handled_by not in HANDLERS:
            raise UnableToSavePolicy(f"step {k}: handled by '{s.handled_by}' must be system or person", field=f"{f}.handled_by")
        for name in ("min_days_overdue", "min_balance_minor", "notice_days"):
            if getattr(s, name) < 0:
                raise UnableToSavePolicy(f"step {k}: {name.replace('_', ' ')} cannot be negative", field=f"{f}.{name}")
        if k > 1 and s.min_days_overdue <= steps[k - 2].min_days_overdue:
            raise UnableToSavePolicy(
                f"step {k} ({s.name}) overlaps step {k - 1} ({steps[k - 2].name}): it starts at {s.min_days_overdue} days overdue, "
                f"which is not after step {k - 1}'s {steps[k - 2].min_days_overdue}; each step must start later than the one before",
                field=f"{f}.min_days_overdue")


def _check_scope(session: Session, *, segment_code: str | None, value_tier_code: str | None, code: str, policy_id: int | None) -> None:
    if segment_code and session.get(Segment, segment_code) is None:
        raise UnableToSavePolicy(f"unknown segment '{segment_code}'", field="segment_code")
    if value_tier_code and session.get(ValueTier, value_tier_code) is None:
        raise UnableToSavePolicy(f"unknown value tier '{value_tier_code}'", field="value_tier_code")
    q = select(DunningPolicy).where(DunningPolicy.active.is_(True))
    q = q.where(DunningPolicy.segment_code.is_(None) if segment_code is None else DunningPolicy.segment_code == segment_code)
    q = q.where(DunningPolicy.value_tier_code.is_(None) if value_tier_code is None else DunningPolicy.value_tier_code == value_tier_code)
    for other in session.execute(q).scalars():
        if other.id != policy_id:
            raise UnableToSavePolicy(f"policy '{other.code}' already covers segment {segment_code or 'any'} / tier {value_tier_code or 'any'}",
                                     field="segment_code")
    if not code.strip():
        raise UnableToSavePolicy("a policy needs a code", field="code")


def save_policy(session: Session, *, code: str, name: str, segment_code: str | None, value_tier_code: str | None, steps: Sequence[StepIn],
                now: datetime, actor: Actor, currency: str = DEFAULT_CURRENCY, description: str = "", version: int | None = None) -> DunningPolicy:
    """Create the policy `code`, or replace its scope and steps (with `version`, refused if someone saved first).
    Raises UnableToSavePolicy (field named), StaleVersion. Nothing is changed when it raises."""
    validate_steps(steps)
    pol = session.execute(select(DunningPolicy).where(DunningPolicy.code == code)).scalar_one_or_none()
    _check_scope(session, segment_code=segment_code or None, value_tier_code=value_tier_code or None, code=code, policy_id=pol.id if pol else None)
    before = None
    if pol is None:
        pol = DunningPolicy(code=code, name=name, segment_code=segment_code or None, value_tier_code=value_tier_code or None, active=True,
                            currency=currency, description=description, created_at=now, updated_at=now, updated_by=actor.name, version=1)
        session.add(pol)
        session.flush()
    else:
        if version is not None and version != pol.version:
            raise StaleVersion(f"policy {code} was changed by someone else (version {pol.version}, you had {version}); reload and try again",
                               field="version")
        before = policy_dict(session, pol)
        pol.name, pol.segment_code, pol.value_tier_code, pol.description = name, segment_code or None, value_tier_code or None, description
        pol.updated_at, pol.updated_by, pol.version = now, actor.name, pol.version + 1
        _replace_steps(session, pol.id, steps)
    if before is None:
        _replace_steps(session, pol.id, steps)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="dunning_policy", entity_id=pol.id, action="saved",
                  before=None if before is None else {"steps": before["steps"]}, after={"steps": policy_dict(session, pol)["steps"]})
    return pol


def _replace_steps(session: Session, policy_id: int, steps: Sequence[StepIn]) -> None:
    from opsline.debtors.models import DunningAccount

    old = {s.position: s for s in session.execute(select(DunningStep).where(DunningStep.policy_id == policy_id)).scalars()}
    # steps keep their ids by position (actions and account positions refer to them); extra old steps are dropped only
    # when nothing refers to them
    for k, s in enumerate(steps, start=1):
        row = old.pop(k, None) or DunningStep(policy_id=policy_id, position=k)
        row.name, row.action, row.min_days_overdue = s.name.strip(), s.action, s.min_days_overdue
        row.min_balance_minor, row.notice_days, row.handled_by = s.min_balance_minor, s.notice_days, s.handled_by
        row.template_event = MESSAGE_EVENTS.get(StepAction(s.action))
        session.add(row)
    session.flush()
    for pos, row in old.items():
        from opsline.debtors.models import DunningAction

        used = session.execute(select(DunningAction.id).where(DunningAction.step_id == row.id).limit(1)).first()
        if used:
            raise UnableToSavePolicy(f"step {pos} ({row.name}) has been taken by dunning runs and cannot be removed; keep it or deactivate the policy",
                                     field=f"steps[{pos}]")
        session.execute(delete(DunningAccount).where(DunningAccount.step_id == row.id))
        session.delete(row)


def policy_dict(session: Session, p: DunningPolicy) -> dict[str, Any]:
    steps = session.execute(select(DunningStep).where(DunningStep.policy_id == p.id).order_by(DunningStep.position)).scalars()
    return {"id": p.id, "code": p.code, "name": p.name, "segment_code": p.segment_code, "value_tier_code": p.value_tier_code, "active": p.active,
            "currency": p.currency, "description": p.description, "version": p.version, "updated_at": p.updated_at, "updated_by": p.updated_by,
            "steps": [{"id": s.id, "position": s.position, "name": s.name, "action": s.action, "min_days_overdue": s.min_days_overdue,
                       "min_balance_minor": s.min_balance_minor, "notice_days": s.notice_days, "handled_by": s.handled_by,
                       "template_event": s.template_event} for s in steps]}


def list_policies(session: Session) -> list[dict[str, Any]]:
    pols = session.execute(select(DunningPolicy).order_by(DunningPolicy.segment_code.is_(None), DunningPolicy.segment_code,
                                                          DunningPolicy.value_tier_code.is_(None), DunningPolicy.value_tier_code, DunningPolicy.code)).scalars()
    return [policy_dict(session, p) for p in pols]


def get_policy(session: Session, *, policy_id: int) -> DunningPolicy:
    p = session.get(DunningPolicy, policy_id)
    if p is None:
        raise NotFound(f"dunning policy {policy_id} not found", field="policy_id")
    return p


def policy_map(session: Session) -> list[tuple[str, str, int]]:
    """(segment, value tier, policy id) for every segment × tier pair some active policy covers: the most specific wins
    (segment and tier, then segment only, then tier only, then the default)."""
    pols = session.execute(select(DunningPolicy.id, DunningPolicy.segment_code, DunningPolicy.value_tier_code)
                           .where(DunningPolicy.active.is_(True))).all()
    segs = list(session.execute(select(Segment.code)).scalars())
    tiers = list(session.execute(select(ValueTier.code)).scalars())
    out = []
    for seg in segs:
        for tier in tiers:
            best = None
            for pid, ps, pt in pols:
                if (ps is None or ps == seg) and (pt is None or pt == tier):
                    rank = (ps is not None) * 2 + (pt is not None)
                    if best is None or rank > best[0]:
                        best = (rank, pid)
            if best is not None:
                out.append((seg, tier, best[1]))
    return out
