"""Domain events: declared names only, same-transaction subscribers run at once and roll back with their cause,
job subscribers go through the outbox, and collect() delivers each (name, id) once."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from opsline.core import domain_events
from opsline.core.domain_events import DomainEvent, Subscriber, UndeclaredEvent
from opsline.core.errors import Conflict
from opsline.core.events import Actor
from opsline.core.jobs import Job
from opsline.jobs_registry import build_registry

ACTOR = Actor(name="tester", roles=frozenset({"admin"}))


@pytest.fixture
def registry(monkeypatch):  # type: ignore[no-untyped-def]
    calls: list[tuple[str, dict]] = []

    def record(session, ev: DomainEvent, now) -> None:  # type: ignore[no-untyped-def]
        calls.append((ev.name, ev.payload))

    def refuse(session, ev: DomainEvent, now) -> None:  # type: ignore[no-untyped-def]
        raise Conflict("the subscriber refuses", field="thing")

    reg = domain_events._Registry(declared={"thing.changed", "thing.refused", "thing.later"})
    for sub in (Subscriber("t.record", "thing.changed", record), Subscriber("t.refuse", "thing.refused", refuse),
                Subscriber("t.later", "thing.*", record, mode="job")):
        reg.subscribers.append(sub)
        reg.by_name[sub.name] = sub
    monkeypatch.setattr(domain_events, "_registry", lambda: reg)
    return calls


def _jobs(session) -> list[Job]:  # type: ignore[no-untyped-def]
    return list(session.execute(select(Job).where(Job.kind == domain_events.DELIVER_JOB)).scalars())


def test_an_undeclared_event_is_refused(registry, session, now):
    with pytest.raises(UndeclaredEvent):
        domain_events.publish(session, "thing.typo", {"id": 1}, now=now, actor=ACTOR)
    assert registry == [] and _jobs(session) == []


def test_same_transaction_subscribers_run_at_once_and_job_subscribers_are_queued(registry, session, now):
    domain_events.publish(session, "thing.changed", {"id": 7}, now=now, actor=ACTOR)
    assert registry == [("thing.changed", {"id": 7})]
    session.flush()
    jobs = _jobs(session)
    assert [j.payload["subscriber"] for j in jobs] == ["t.later"]
    assert jobs[0].payload["payload"] == {"id": 7}


def test_a_failing_same_transaction_subscriber_raises_to_the_publisher(registry, session, now):
    with pytest.raises(Conflict, match="refuses"):
        domain_events.publish(session, "thing.refused", {"id": 1}, now=now, actor=ACTOR)


def test_collect_delivers_each_event_once_per_name_and_id(registry, session, now):
    with domain_events.collect(session):
        for n in range(3):
            domain_events.publish(session, "thing.changed", {"id": 1, "n": n}, now=now, actor=ACTOR)
        domain_events.publish(session, "thing.changed", {"id": 2}, now=now, actor=ACTOR)
        assert registry == []
    assert registry == [("thing.changed", {"id": 1, "n": 2}), ("thing.changed", {"id": 2})]


def test_an_outbox_job_calls_its_subscriber_in_the_worker(registry, session, now):
    domain_events.publish(session, "thing.later", {"id": 9}, now=now, actor=ACTOR)
    session.flush()
    job = _jobs(session)[0]
    handler = build_registry().get(domain_events.DELIVER_JOB)
    assert handler is not None
    handler(session, job.payload, now)
    assert registry == [("thing.later", {"id": 9})]


def test_collect_never_merges_batch_events_without_an_id(registry, session, now):
    with domain_events.collect(session):
        domain_events.publish(session, "thing.changed", {"ids": [1, 2], "batch": True}, now=now, actor=ACTOR)
        domain_events.publish(session, "thing.changed", {"ids": [3], "batch": True}, now=now, actor=ACTOR)
    assert registry == [("thing.changed", {"ids": [1, 2], "batch": True}), ("thing.changed", {"ids": [3], "batch": True})]
