"""Breach causes and prevention actions of the cancellation journey: the cause code recorded on a breached checklist
step (or inferred from the step: a late FNO deactivation waits on the FNO, a late collection on the courier), and the
actions taken per cause so it does not happen again (owner, due date, open -> in progress -> done | dropped)."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, case, func, literal, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsline.cancellations.models import OPEN_SQL, STEP_CODES, STEP_LABELS, CancellationJourney, CancellationStep
from opsline.core import events, lifecycle
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.core.lifecycle import Lifecycle
from opsline.db.base import Base, IdPk, sql_in
from opsline.sla.models import BreachCause

CS = CancellationStep
CJ = CancellationJourney

# Indexes for the desk and its reports at 50,000 open journeys (issue 12, Speed): the board's and home cards' counts
# read only an index of open journeys; the volume reports read journeys by notice date from an index; SLA compliance
# reads steps by due time from an index; done-late breaches have their own small partial index. Declared here, with the
# migration that creates them (0021), so the journey tables' own module stays as it was.
_OPEN = text(f"state IN ({OPEN_SQL})")
DESK_INDEXES = (
    Index("ix_cancellation_journey_open_board", CJ.current_step, CJ.partner_code, CJ.reason_code, CJ.next_due_at, CJ.at_risk, CJ.created_at,
          postgresql_where=_OPEN, sqlite_where=_OPEN),
    Index("ix_cancellation_journey_notice", CJ.notice_date, CJ.kind, CJ.reason_code, CJ.retention_outcome, CJ.partner_code, CJ.state,
          CJ.fno_confirmed_date, CJ.fno_due_date, CJ.service_order_id),
    Index("ix_cancellation_step_due_cover", CS.due_at, CS.code, CS.state, CS.done_at),
    Index("ix_cancellation_step_done_late", CS.due_at, CS.id, CS.code, postgresql_where=text("state = 'done' AND done_at > due_at"),
          sqlite_where=text("state = 'done' AND done_at > due_at")),
    Index("ix_cancellation_step_open_late", CS.due_at, CS.id, CS.code, postgresql_where=text("state = 'open'"), sqlite_where=text("state = 'open'")),
)


class ActionState(enum.StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    DROPPED = "dropped"


A = ActionState

PREVENTION_ACTION = Lifecycle(
    name="cancellation_prevention_action",
    states=ActionState,
    initial=A.OPEN,
    transitions={
        A.OPEN: {"start": A.IN_PROGRESS, "complete": A.DONE, "drop": A.DROPPED},
        A.IN_PROGRESS: {"complete": A.DONE, "drop": A.DROPPED},
        A.DONE: {}, A.DROPPED: {},
    },
    permissions={"start": "cancellations.work", "complete": "cancellations.work", "drop": "cancellations.work"},
    needs_reason={"drop"},
    labels={"start": "Start", "complete": "Done", "drop": "Drop"},
)
OPEN_ACTION_STATES = (A.OPEN.value, A.IN_PROGRESS.value)

# Without a recorded cause, a breached step's owner says where it waited (the rest stay "not yet analysed").
INFERRED_CAUSE = {"fno_deactivation": "waiting_on_fno", "equipment": "third_party_courier"}


class CancellationBreachCause(Base):
    """The cause code recorded on a breached journey step (one per step; changing it is audited)."""

    __tablename__ = "cancellation_breach_cause"

    id: Mapped[IdPk]
    step_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("cancellation_step.id"), unique=True)
    journey_id: Mapped[int] = mapped_column(BigInteger)
    account_id: Mapped[int] = mapped_column(BigInteger)
    cause_code: Mapped[str] = mapped_column(String(40), ForeignKey("breach_cause.code"))
    note: Mapped[str | None] = mapped_column(Text)
    set_by: Mapped[str] = mapped_column(String(120))
    set_at: Mapped[datetime]

    __table_args__ = (Index("ix_cancellation_breach_cause_cause", "cause_code"),)


class CancellationPreventionAction(Base):
    """What is done about a breach cause so it stops recurring: an owner, a due date and a state."""

    __tablename__ = "cancellation_prevention_action"

    id: Mapped[IdPk]
    cause_code: Mapped[str] = mapped_column(String(40), ForeignKey("breach_cause.code"))
    step_code: Mapped[str | None] = mapped_column(String(30))  # the checklist step it is about, if one
    title: Mapped[str] = mapped_column(String(300))
    owner: Mapped[str] = mapped_column(String(120))
    due_date: Mapped[date] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(20), default=ActionState.OPEN)
    outcome: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        PREVENTION_ACTION.check(),
        CheckConstraint("step_code IS NULL OR " + sql_in("step_code", STEP_CODES), name="step_code"),
        Index("ix_cancellation_prevention_action_state_due", "state", "due_date"),
        Index("ix_cancellation_prevention_action_cause", "cause_code", "state"),
    )


class UnableToSavePreventionAction(InvalidInput):
    title = "Cannot save the prevention action"
    type_slug = "unable-to-save-prevention-action"


class UnableToSetBreachCause(InvalidInput):
    title = "Cannot set the breach cause"
    type_slug = "unable-to-set-breach-cause"


class PreventionActionNotFound(NotFound):
    pass


def cause_expr(code_col: Any = None) -> Any:
    """SQL: a breached step's cause code, recorded or inferred from its step code (`code_col`, the step's code column
    by default); NULL: not yet analysed. Join CancellationBreachCause (outer) on the step first."""
    code_col = CS.code if code_col is None else code_col
    inferred = case(*[(code_col == step, literal(code)) for step, code in INFERRED_CAUSE.items()], else_=None)
    return func.coalesce(CancellationBreachCause.cause_code, inferred)


def causes(session: Session) -> list[dict[str, Any]]:
    """The breach cause codes (reference data shared with the SLA desk), by name."""
    return [{"code": c, "name": n, "controllable": bool(k)}
            for c, n, k in session.execute(select(BreachCause.code, BreachCause.name, BreachCause.controllable).order_by(BreachCause.name))]


def _cause_ok(session: Session, code: str, field: str, exc: type[InvalidInput]) -> str:
    code = (code or "").strip()
    if not code:
        raise exc("choose a cause", field=field)
    if session.get(BreachCause, code) is None:
        raise exc(f"unknown cause '{code[:40]}'", field=field)
    return code


def _text(raw: str | None, field: str, what: str, max_len: int) -> str:
    value = (raw or "").strip()
    if not value:
        raise UnableToSavePreventionAction(f"give the {what}", field=field)
    if len(value) > max_len:
        raise UnableToSavePreventionAction(f"the {what} is longer than {max_len} characters", field=field)
    return value


def set_breach_cause(session: Session, *, step_id: int, cause_code: str, note: str | None, now: datetime, actor: Actor) -> dict[str, Any]:
    """Record (or change) the cause of a breached step: one done after its due time or still open past it.
    Raises UnableToSetBreachCause (unknown step or cause, a step that is not in breach)."""
    step = session.get(CS, step_id) if 0 < step_id < 2**62 else None
    if step is None:
        raise UnableToSetBreachCause(f"step {step_id} not found", field="step_id")
    code = _cause_ok(session, cause_code, "cause_code", UnableToSetBreachCause)
    due, done = step.due_at, step.done_at
    if due is not None and due.tzinfo is None:
        due = due.replace(tzinfo=now.tzinfo)
    if done is not None and done.tzinfo is None:
        done = done.replace(tzinfo=now.tzinfo)
    breached = due is not None and ((step.state == "done" and done is not None and done > due) or (step.state == "open" and due < now))
    if not breached:
        raise UnableToSetBreachCause("this step is not in breach: it was done in time or is not yet due", field="step_id")
    note = (note or "").strip()[:2000] or None
    row = session.execute(select(CancellationBreachCause).where(CancellationBreachCause.step_id == step.id).with_for_update()).scalar_one_or_none()
    before = {"cause_code": row.cause_code, "note": row.note} if row else None
    if row is None:
        row = CancellationBreachCause(step_id=step.id, journey_id=step.journey_id, account_id=step.account_id, cause_code=code, note=note,
                                      set_by=actor.name, set_at=now)
        session.add(row)
    else:
        row.cause_code, row.note, row.set_by, row.set_at = code, note, actor.name, now
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="cancellation_step", entity_id=step.id, account_id=step.account_id, action="breach_cause_set",
                  reason=note, before=before, after={"cause_code": code, "note": note})
    return {"step_id": step.id, "journey_id": step.journey_id, "cause_code": code, "note": note}


def add_action(session: Session, *, cause_code: str, title: str, owner: str, due_date: date | None, step_code: str | None = None, now: datetime,
               actor: Actor) -> dict[str, Any]:
    """A new prevention action for a cause (open). Raises UnableToSavePreventionAction naming the field."""
    code = _cause_ok(session, cause_code, "cause_code", UnableToSavePreventionAction)
    title = _text(title, "title", "action", 300)
    owner = _text(owner, "owner", "owner", 120)
    if due_date is None:
        raise UnableToSavePreventionAction("give the due date", field="due_date")
    step_code = (step_code or "").strip() or None
    if step_code is not None and step_code not in STEP_CODES:
        raise UnableToSavePreventionAction(f"unknown step '{step_code[:30]}'", field="step_code")
    a = CancellationPreventionAction(cause_code=code, step_code=step_code, title=title, owner=owner, due_date=due_date, state=A.OPEN,
                                     created_by=actor.name, created_at=now, updated_at=now)
    session.add(a)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type=PREVENTION_ACTION.name, entity_id=a.id, action="created",
                  after={"cause_code": code, "step_code": step_code, "title": title, "owner": owner, "due_date": due_date.isoformat(), "state": a.state})
    return action_dict(a)


def _get(session: Session, action_id: int) -> CancellationPreventionAction:
    a = session.execute(select(CancellationPreventionAction).where(CancellationPreventionAction.id == action_id).with_for_update()).scalar_one_or_none() \
        if 0 < action_id < 2**62 else None
    if a is None:
        raise PreventionActionNotFound(f"prevention action {action_id} not found", field="action_id")
    return a


def update_action(session: Session, *, action_id: int, title: str, owner: str, due_date: date | None, now: datetime, actor: Actor) -> dict[str, Any]:
    """Change an open action's title, owner or due date (audited with before and after). Raises PreventionActionNotFound,
    UnableToSavePreventionAction (a field, or an action already done or dropped)."""
    a = _get(session, action_id)
    if a.state not in OPEN_ACTION_STATES:
        raise UnableToSavePreventionAction(f"the action is {a.state.replace('_', ' ')}; it can no longer be changed", field="action_id")
    title = _text(title, "title", "action", 300)
    owner = _text(owner, "owner", "owner", 120)
    if due_date is None:
        raise UnableToSavePreventionAction("give the due date", field="due_date")
    before = {"title": a.title, "owner": a.owner, "due_date": a.due_date.isoformat()}
    after = {"title": title, "owner": owner, "due_date": due_date.isoformat()}
    if before == after:
        return action_dict(a)
    a.title, a.owner, a.due_date, a.updated_at = title, owner, due_date, now
    events.record(session, now=now, actor=actor, entity_type=PREVENTION_ACTION.name, entity_id=a.id, action="updated", before=before, after=after)
    return action_dict(a)


def act(session: Session, *, action_id: int, action: str, reason: str | None, now: datetime, actor: Actor) -> dict[str, Any]:
    """Move an action through its lifecycle: start, complete (an optional outcome), drop (a reason). Raises
    PreventionActionNotFound, TransitionNotAllowed, ActionNotPermitted, ReasonRequired."""
    a = _get(session, action_id)
    lifecycle.transition(session, PREVENTION_ACTION, a, action, now=now, actor=actor, reason=(reason or "").strip() or None,
                         details={"cause_code": a.cause_code, "title": a.title}, label=f"prevention action {a.id}")
    if (reason or "").strip() and action in ("complete", "drop"):
        a.outcome = reason.strip()[:2000]
    a.updated_at = now
    return action_dict(a)


def action_dict(a: CancellationPreventionAction, *, today: date | None = None, actor: Actor | None = None, cause_name: str | None = None) -> dict[str, Any]:
    return {"id": a.id, "cause_code": a.cause_code, "cause": cause_name or a.cause_code, "step_code": a.step_code,
            "step": STEP_LABELS.get(a.step_code or "", ""), "title": a.title, "owner": a.owner, "due_date": a.due_date, "state": a.state,
            "outcome": a.outcome, "created_by": a.created_by, "created_at": a.created_at, "updated_at": a.updated_at,
            "overdue": today is not None and a.state in OPEN_ACTION_STATES and a.due_date < today,
            "buttons": PREVENTION_ACTION.buttons(a.state, actor=actor)}


def list_actions(session: Session, *, today: date, cause_code: str | None = None, state: str | None = None, actor: Actor | None = None,
                 limit: int = 300) -> list[dict[str, Any]]:
    """Actions, the open ones first by due date (overdue flagged), then the closed ones newest first. One query."""
    q = (select(CancellationPreventionAction, BreachCause.name).join(BreachCause, BreachCause.code == CancellationPreventionAction.cause_code)
         .order_by(case((CancellationPreventionAction.state.in_(OPEN_ACTION_STATES), 0), else_=1), CancellationPreventionAction.due_date,
                   CancellationPreventionAction.id.desc()).limit(limit))
    if cause_code:
        q = q.where(CancellationPreventionAction.cause_code == cause_code)
    if state == "open":
        q = q.where(CancellationPreventionAction.state.in_(OPEN_ACTION_STATES))
    elif state:
        q = q.where(CancellationPreventionAction.state == state)
    return [action_dict(a, today=today, actor=actor, cause_name=name) for a, name in session.execute(q).all()]


def action_counts(session: Session, *, today: date) -> dict[str, Any]:
    """Per cause: open and overdue actions (one grouped query), and the totals, for the report and the home card."""
    rows = session.execute(select(CancellationPreventionAction.cause_code, func.count(),
                                  func.sum(case((CancellationPreventionAction.due_date < today, 1), else_=0)))
                           .where(CancellationPreventionAction.state.in_(OPEN_ACTION_STATES)).group_by(CancellationPreventionAction.cause_code)).all()
    by = {c: {"open": int(n), "overdue": int(o or 0)} for c, n, o in rows}
    return {"by_cause": by, "open": sum(v["open"] for v in by.values()), "overdue": sum(v["overdue"] for v in by.values())}
