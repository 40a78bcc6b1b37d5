"""Shared pieces of the case operations: errors, settings, loading, history rows, audit, and `case.changed`."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, Callable, ParamSpec, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from opsline.cases.models import OPEN_STATES, CaseEvent, CaseSetting, Queue, SupportCase
from opsline.core import domain_events, events
from opsline.core.errors import Conflict, InvalidInput, NotFound, StaleVersion, TransitionNotAllowed
from opsline.core.events import Actor

CHANGED = "case.changed"
OPEN = tuple(s.value for s in OPEN_STATES)


class CaseNotFound(NotFound):
    pass


class UnableToOpenCase(InvalidInput):
    pass


class UnableToChangeCase(InvalidInput):
    pass


class CaseNotOpen(TransitionNotAllowed):
    """A change that needs an open case (hand-off, priority, retention) on a finished one."""


class NoteNotAllowed(Conflict):
    title = "Note not allowed"
    type_slug = "note-not-allowed"


class RetentionNotAllowed(Conflict):
    title = "Retention offer not allowed"
    type_slug = "retention-not-allowed"


P = ParamSpec("P")
R = TypeVar("R")


def one_call(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a service operation inside `domain_events.collect`: however many changes it makes, each case's
    `case.changed` (and every other event) is delivered once, when the operation ends."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        session = kwargs["session"] if "session" in kwargs else args[0]
        with domain_events.collect(session):  # type: ignore[arg-type]
            return fn(*args, **kwargs)

    return wrapper


def changed(session: Session, c: SupportCase, *, now: datetime, actor: Actor, what: str, clocks: bool = True) -> None:
    """Flush the case and publish `case.changed` (delivered once per service call by `one_call`).
    `clocks` False says this change cannot move an SLA clock (an internal note), so the SLA area need not recompute
    the case; it stays True when an earlier change of the same call could (the delivered event is the last one)."""
    flush(session, c)
    earlier = domain_events.pending(session, CHANGED, c.id)
    clocks = clocks or bool(earlier and earlier.get("clocks", True))
    domain_events.publish(session, CHANGED, {"id": c.id, "account_id": c.account_id, "reference": c.reference, "what": what, "clocks": clocks},
                          now=now, actor=actor)


def setting(session: Session, key: str, default: str) -> str:
    row = session.get(CaseSetting, key)
    return row.value if row is not None else default


def setting_int(session: Session, key: str, default: int) -> int:
    try:
        return int(setting(session, key, str(default)))
    except ValueError:
        return default


def get_case(session: Session, *, case_id: int, for_update: bool = False) -> SupportCase:
    """Raises CaseNotFound."""
    c = session.get(SupportCase, case_id, with_for_update=for_update or None)
    if c is None:
        raise CaseNotFound(f"case {case_id} not found")
    return c


def get_case_by_reference(session: Session, *, reference: str) -> SupportCase:
    """Raises CaseNotFound."""
    c = session.execute(select(SupportCase).where(SupportCase.reference == reference.upper())).scalar_one_or_none()
    if c is None:
        raise CaseNotFound(f"case {reference} not found")
    return c


def get_queue(session: Session, *, code: str | None = None, queue_id: int | None = None) -> Queue:
    """Raises InvalidInput for an unknown or inactive queue."""
    q = session.get(Queue, queue_id) if queue_id is not None else session.execute(select(Queue).where(Queue.code == code)).scalar_one_or_none()
    if q is None or not q.active:
        raise InvalidInput(f"unknown queue '{code if code is not None else queue_id}'", field="queue_code")
    return q


def history(session: Session, c: SupportCase, *, now: datetime, actor: Actor, kind: str, from_value: Any = None, to_value: Any = None,
            reason: str | None = None, data: dict[str, Any] | None = None) -> None:
    """One `case_event` row: the history the SLA engine replays."""
    session.add(CaseEvent(case_id=c.id, account_id=c.account_id, at=now, kind=kind, from_value=None if from_value is None else str(from_value),
                          to_value=None if to_value is None else str(to_value), reason=reason, actor=actor.name, data=data))


def audit(session: Session, c: SupportCase, *, now: datetime, actor: Actor, action: str, reason: str | None = None,
          before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
    events.record(session, now=now, actor=actor, entity_type="case", entity_id=c.id, account_id=c.account_id, action=action,
                  reason=reason, before=before, after=(after or {}) | {"reference": c.reference})


def flush(session: Session, c: SupportCase) -> None:
    """Raises StaleVersion when someone else changed the case meanwhile."""
    try:
        session.flush()
    except StaleDataError as exc:
        raise StaleVersion(f"case {c.reference} was changed by someone else; reload and try again") from exc


def check_version(c: SupportCase, version: int | None) -> None:
    """Raises StaleVersion when the caller's version is not the case's."""
    if version is not None and c.version != version:
        raise StaleVersion(f"case {c.reference} was changed by someone else (version {c.version}, you had {version}); reload and try again")


def require_open(c: SupportCase, what: str) -> None:
    """Raises CaseNotOpen."""
    if c.state not in OPEN:
        raise CaseNotOpen(f"case {c.reference} is {c.state}; reopen it before {what}")
