"""Domain events: how one area reacts to another without reaching into it.

A service publishes a named event inside its transaction (`publish(session, "invoice.finalised", {...}, now=, actor=)`).
Areas declare, in `area.py`, the events they publish (`events=(...)`; lifecycle events `<name>.<state>` are declared
by listing the lifecycle in `lifecycles=(...)`) and their subscribers (`subscribers=(Subscriber(...),)`):

- `mode="same_transaction"`: the handler runs at once, in the publisher's transaction; if it raises, the whole change
  rolls back and the caller sees the error. Use it when the effect must be atomic with the cause.
- `mode="job"`: a job is written in the same transaction (transactional outbox) and the worker calls the handler later,
  with retries; the cause commits even if the effect fails for a while.

`collect(session)` groups the events of one service call: events with the same name and id published inside it are
delivered once, at the end (a PATCH that changes a case's priority, queue and state recomputes its SLA clocks once).
"""

from __future__ import annotations

import fnmatch
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Callable, Iterator, Literal

from sqlalchemy.orm import Session

from opsline.core import jobs
from opsline.core.events import Actor

DELIVER_JOB = "domain_event.deliver"
Mode = Literal["same_transaction", "job"]


class UndeclaredEvent(RuntimeError):
    """A programming error: an event published that no area declares (a typo would otherwise be silent)."""


@dataclass(frozen=True)
class DomainEvent:
    name: str
    payload: dict[str, Any]
    occurred_at: datetime
    actor: Actor


@dataclass(frozen=True)
class Subscriber:
    """`event` is an event name or an fnmatch pattern (`case.*`). `name` must be unique (it names the outbox job)."""

    name: str
    event: str
    handler: Callable[[Session, DomainEvent, datetime], None]
    mode: Mode = "same_transaction"
    max_attempts: int = 8
    serial_key: Callable[[DomainEvent], str | None] | None = None


_PENDING = "_domain_events_pending"  # session.info: {(name, id): event} published inside the current `collect` block


@dataclass
class _Registry:
    declared: set[str] = field(default_factory=set)
    subscribers: list[Subscriber] = field(default_factory=list)
    by_name: dict[str, Subscriber] = field(default_factory=dict)
    matched: dict[str, tuple[Subscriber, ...]] = field(default_factory=dict)  # event name -> its subscribers


@lru_cache(maxsize=1)
def _registry() -> _Registry:
    from opsline.areas import load_areas  # areas discovers every area; it imports this module, not the reverse

    reg = _Registry()
    for area in load_areas():
        reg.declared.update(area.events)
        for lc in area.lifecycles:
            reg.declared.update(lc.event_names())
        for sub in area.subscribers:
            if sub.name in reg.by_name:
                raise RuntimeError(f"two subscribers are named {sub.name!r}")
            reg.subscribers.append(sub)
            reg.by_name[sub.name] = sub
    return reg


def declared_events() -> set[str]:
    return set(_registry().declared)


def all_subscribers() -> list[Subscriber]:
    return list(_registry().subscribers)


def subscribers_for(name: str) -> list[Subscriber]:
    """Matched once per event name and registry (an order publishes about eight events, and each was matched against
    every subscriber's pattern on every publish)."""
    reg = _registry()
    found = reg.matched.get(name)
    if found is None:
        found = reg.matched[name] = tuple(s for s in reg.subscribers if s.event == name or fnmatch.fnmatchcase(name, s.event))
    return list(found)


def _deliver(session: Session, ev: DomainEvent) -> None:
    for sub in subscribers_for(ev.name):
        if sub.mode == "same_transaction":
            sub.handler(session, ev, ev.occurred_at)
        else:
            jobs.enqueue(
                session,
                kind=DELIVER_JOB,
                payload={"subscriber": sub.name, "event": ev.name, "payload": ev.payload,
                         "occurred_at": ev.occurred_at.isoformat(), "actor": ev.actor.name,
                         "roles": sorted(ev.actor.roles)},
                now=ev.occurred_at,
                serial_key=sub.serial_key(ev) if sub.serial_key else None,
                max_attempts=sub.max_attempts,
            )


def publish(session: Session, name: str, payload: dict[str, Any], *, now: datetime, actor: Actor) -> None:
    """Publish `name` in the caller's transaction. Raises UndeclaredEvent for a name no area declares, and whatever
    a same-transaction subscriber raises (the caller's transaction must then roll back)."""
    if name not in _registry().declared:
        raise UndeclaredEvent(f"domain event {name!r} is not declared by any area")
    ev = DomainEvent(name=name, payload=payload, occurred_at=now, actor=actor)
    pending = session.info.get(_PENDING)
    if pending is not None:
        # one delivery per (name, id): the last one wins; events without an id (batches) are never merged
        key = (name, str(payload["id"])) if "id" in payload else (name, f"#{len(pending)}")
        pending[key] = ev
        return
    _deliver(session, ev)


def pending(session: Session, name: str, id_: Any) -> dict[str, Any] | None:
    """The payload of the `name` event for `id_` already published inside the current `collect` block, which a
    later publish of the same (name, id) replaces (None outside a block or when there is none). A publisher whose
    payload sums up several changes reads it to carry the earlier ones over (see cases' `changed`)."""
    waiting = session.info.get(_PENDING)
    ev = waiting.get((name, str(id_))) if waiting is not None else None
    return ev.payload if ev is not None else None


@contextmanager
def collect(session: Session) -> Iterator[None]:
    """Deliver the events published inside the block once each (by name and id), when the block ends normally."""
    if session.info.get(_PENDING) is not None:  # nested: the outer block delivers
        yield
        return
    pending: dict[tuple[str, str], DomainEvent] = {}
    session.info[_PENDING] = pending
    try:
        yield
    finally:
        session.info.pop(_PENDING, None)
    for ev in pending.values():
        _deliver(session, ev)


def deliver_job(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """The worker's side of a `job` subscriber: rebuild the event and call the handler."""
    sub = _registry().by_name.get(payload["subscriber"])
    if sub is None:
        raise RuntimeError(f"no subscriber named {payload['subscriber']!r}")
    ev = DomainEvent(name=payload["event"], payload=payload["payload"],
                     occurred_at=datetime.fromisoformat(payload["occurred_at"]),
                     actor=Actor(name=payload["actor"], roles=frozenset(payload.get("roles", []))))
    sub.handler(session, ev, now)
    return {"subscriber": sub.name, "event": ev.name}
