"""Durable job table (transactional outbox) and the worker that runs it.

Jobs are enqueued in the caller's transaction, so they exist if and only if the change that asked for
them committed. Workers claim with `FOR UPDATE SKIP LOCKED` on PostgreSQL (many workers, many machines)
and hold a short lease that a heartbeat renews while the handler runs, so a crashed worker's job is reclaimed within
seconds (30 s on PostgreSQL; 5 minutes on SQLite, a single-machine setup where one writer at a time holds the lock and
a heartbeat would queue behind the job it renews). Jobs sharing a
`serial_key` (e.g. one account) run one at a time, in order.
"""

from __future__ import annotations

import enum
import logging
import threading
import traceback
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from sqlalchemy import CheckConstraint, Engine, Index, Integer, String, Text, and_, exists, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column, sessionmaker

from opsline.db.base import Base, IdPk, JSONType
from opsline.db.session import deferred

log = logging.getLogger("opsline.jobs")


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"


class Job(Base):
    __tablename__ = "job"

    id: Mapped[IdPk]
    kind: Mapped[str] = mapped_column(String(80))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED)
    priority: Mapped[int] = mapped_column(Integer, default=100)
    run_at: Mapped[datetime]
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    lease_until: Mapped[datetime | None]
    locked_by: Mapped[str | None] = mapped_column(String(80))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    serial_key: Mapped[str | None] = mapped_column(String(120))
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    __table_args__ = (
        CheckConstraint("state IN ('queued','running','done','dead')", name="state"),
        Index("ix_job_claim", "state", "run_at", "priority"),
        # the claim's order over queued jobs only: the next job is the first due entry, whatever the backlog
        Index("ix_job_queued", "priority", "run_at", "id", postgresql_where=text("state = 'queued'"), sqlite_where=text("state = 'queued'")),
        Index("ix_job_serial", "serial_key", "state"),
    )


Handler = Callable[[Session, dict[str, Any], datetime], dict[str, Any] | None]


class Registry:
    """Job kinds to handlers. Each area registers its handlers at import time via `opsline.jobs_registry`.

    `lock` says how a handler's transaction takes SQLite's write lock (see `opsline.db.session`): "deferred" (the
    default) reads without it and takes it at the first write or `with_for_update()` read, so rendering a PDF or
    talking to an SMTP server or a partner never blocks sign-ins and pages; "immediate" holds it from the start,
    for handlers that read then write without saying FOR UPDATE."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._locks: dict[str, str] = {}

    def register(self, kind: str, *, lock: str = "deferred") -> Callable[[Handler], Handler]:
        if lock not in ("deferred", "immediate"):
            raise ValueError(f"unknown lock mode {lock!r} for job kind {kind!r}")

        def deco(fn: Handler) -> Handler:
            self._handlers[kind] = fn
            self._locks[kind] = lock
            return fn

        return deco

    def get(self, kind: str) -> Handler | None:
        return self._handlers.get(kind)

    def lock_mode(self, kind: str) -> str:
        return self._locks.get(kind, "deferred")

    def kinds(self) -> list[str]:
        return sorted(self._handlers)


def enqueue(
    session: Session,
    *,
    kind: str,
    payload: dict[str, Any],
    now: datetime,
    run_at: datetime | None = None,
    idempotency_key: str | None = None,
    serial_key: str | None = None,
    priority: int = 100,
    max_attempts: int = 8,
) -> None:
    """Add a job in the caller's transaction. A repeated idempotency key is a no-op."""
    values = dict(
        kind=kind,
        payload=payload,
        state=JobState.QUEUED.value,
        priority=priority,
        run_at=run_at or now,
        created_at=now,
        attempts=0,
        max_attempts=max_attempts,
        idempotency_key=idempotency_key,
        serial_key=serial_key,
    )
    dialect = session.get_bind().dialect.name
    if idempotency_key is None:
        session.add(Job(**values))
        return
    ins = (pg_insert if dialect == "postgresql" else sqlite_insert)(Job).values(**values)
    session.execute(ins.on_conflict_do_nothing(index_elements=["idempotency_key"]))


def backoff(attempts: int) -> timedelta:
    """Exponential backoff: 2, 4, 8 ... seconds, capped at one hour."""
    return timedelta(seconds=min(3600, 2 ** max(1, attempts)))


@dataclass
class ClaimedJob:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int


def claim(factory: sessionmaker[Session], *, worker_id: str, now: datetime, lease: timedelta = timedelta(minutes=5), kinds: list[str] | None = None) -> ClaimedJob | None:
    """Claim the next runnable job: first a running job whose lease expired (its worker died), then the first queued
    job that is due, by priority, due time and id. Each is one walk of an index in claim order that stops at the first
    row it can take (`ix_job_queued` holds only queued jobs), so a claim costs the same with ten or a million jobs
    waiting; sorting every due job for each claim made draining a backlog quadratic."""
    with factory() as session, session.begin():
        other = aliased(Job)
        blocked_by_serial = exists().where(
            other.serial_key == Job.serial_key,
            other.id < Job.id,
            other.state.in_([JobState.QUEUED.value, JobState.RUNNING.value]),
        )
        q = select(Job).where(or_(Job.serial_key.is_(None), ~blocked_by_serial))
        if kinds:
            q = q.where(Job.kind.in_(kinds))
        q = q.order_by(Job.priority, Job.run_at, Job.id).limit(1)
        if session.get_bind().dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True, of=Job)
        job = None
        for runnable in (and_(Job.state == JobState.RUNNING.value, Job.lease_until < now), and_(Job.state == JobState.QUEUED.value, Job.run_at <= now)):
            job = session.execute(q.where(runnable)).scalar_one_or_none()
            if job is not None:
                break
        if job is None:
            return None
        job.state = JobState.RUNNING.value
        job.lease_until = now + lease
        job.locked_by = worker_id
        job.attempts += 1
        return ClaimedJob(job.id, job.kind, dict(job.payload or {}), job.attempts, job.max_attempts)


def _handler_factory(factory: sessionmaker[Session], mode: str) -> sessionmaker[Session]:
    if mode == "immediate" or not isinstance(factory.kw.get("bind"), Engine) or factory.kw["bind"].dialect.name != "sqlite":
        return factory
    return deferred(factory)


def run_claimed(factory: sessionmaker[Session], registry: Registry, job: ClaimedJob, *, worker_id: str, now: datetime) -> bool:
    """Run a claimed job; its effects and its completion commit together (one short write transaction on SQLite:
    the write lock is taken at the handler's first write, see Registry). Returns True on success."""
    handler = registry.get(job.kind)
    try:
        if handler is None:
            raise LookupError(f"no handler registered for job kind '{job.kind}'")
        with _handler_factory(factory, registry.lock_mode(job.kind))() as session, session.begin():
            result = handler(session, job.payload, now)
            done = session.execute(
                update(Job)
                .where(Job.id == job.id, Job.locked_by == worker_id, Job.state == JobState.RUNNING.value)
                .values(state=JobState.DONE.value, finished_at=now, lease_until=None, result=result, last_error=None)
            )
            if done.rowcount != 1:
                # Our lease was taken over by another worker: roll back our effects, theirs will win.
                raise _LeaseLost()
        return True
    except _LeaseLost:
        log.warning("job %s lease lost; effects rolled back", job.id)
        return False
    except Exception as exc:  # noqa: BLE001 - any handler failure is recorded and retried
        err = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        with factory() as session, session.begin():
            dead = job.attempts >= job.max_attempts
            session.execute(
                update(Job)
                .where(Job.id == job.id, Job.locked_by == worker_id)
                .values(
                    state=JobState.DEAD.value if dead else JobState.QUEUED.value,
                    run_at=now + backoff(job.attempts),
                    lease_until=None,
                    locked_by=None,
                    last_error=err[:4000],
                    finished_at=now if dead else None,
                )
            )
        log.warning("job %s (%s) failed attempt %s: %s", job.id, job.kind, job.attempts, err)
        return False


class _LeaseLost(Exception):
    pass


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


LEASE_POSTGRESQL = timedelta(seconds=30)
LEASE_SQLITE = timedelta(minutes=5)


def default_lease(factory: sessionmaker[Session]) -> timedelta:
    bind = factory.kw.get("bind")
    return LEASE_POSTGRESQL if isinstance(bind, Engine) and bind.dialect.name == "postgresql" else LEASE_SQLITE


def renew_lease(factory: sessionmaker[Session], *, job_id: int, worker_id: str, until: datetime) -> bool:
    """Extend a running job's lease while its worker still holds it; False when another worker took it over."""
    with factory() as session, session.begin():
        done = session.execute(update(Job).where(Job.id == job_id, Job.locked_by == worker_id, Job.state == JobState.RUNNING.value)
                               .values(lease_until=until))
        return done.rowcount == 1


class Worker:
    """Claims and runs jobs until stopped. The clock is injected so tests can drive time. While a handler runs, a
    heartbeat thread renews the job's lease every third of it, so only a dead worker's job is ever reclaimed."""

    def __init__(self, factory: sessionmaker[Session], registry: Registry, *, worker_id: str, clock: Callable[[], datetime] = utc_now, poll_seconds: float = 1.0,
                 lease: timedelta | None = None) -> None:
        self.factory = factory
        self.registry = registry
        self.worker_id = worker_id
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.lease = lease or default_lease(factory)
        self._stop = threading.Event()

    def _heartbeat(self, job_id: int, done: threading.Event) -> None:
        while not done.wait(self.lease.total_seconds() / 3):
            try:
                if not renew_lease(self.factory, job_id=job_id, worker_id=self.worker_id, until=self.clock() + self.lease):
                    return
            except Exception:  # noqa: BLE001 - a missed beat is retried at the next; the lease still has two thirds left
                log.warning("job %s lease renewal failed", job_id, exc_info=True)

    def run_once(self) -> bool:
        job = claim(self.factory, worker_id=self.worker_id, now=self.clock(), lease=self.lease)
        if job is None:
            return False
        done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job.id, done), name=f"opsline-lease-{job.id}", daemon=True)
        beat.start()
        try:
            run_claimed(self.factory, self.registry, job, worker_id=self.worker_id, now=self.clock())
        finally:
            done.set()
            beat.join()
        return True

    def drain(self, *, max_jobs: int = 10_000) -> int:
        """Run jobs until none is due; returns how many ran (used by tests and the CLI)."""
        n = 0
        while n < max_jobs and self.run_once():
            n += 1
        return n

    def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.run_once():
                    self._stop.wait(self.poll_seconds)
            except Exception:  # noqa: BLE001 - keep the worker alive across database hiccups
                log.exception("worker loop error")
                self._stop.wait(self.poll_seconds * 5)

    def start_thread(self) -> threading.Thread:
        t = threading.Thread(target=self.run_forever, name=f"opsline-worker-{self.worker_id}", daemon=True)
        t.start()
        return t

    def stop(self) -> None:
        self._stop.set()


def stuck_jobs(session: Session, *, now: datetime, kinds_prefix: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Jobs that are dead or retrying (attempts > 1): what the UI shows as stuck."""
    q = select(Job).where(or_(Job.state == JobState.DEAD.value, and_(Job.state == JobState.QUEUED.value, Job.attempts > 0)))
    if kinds_prefix:
        q = q.where(Job.kind.like(f"{kinds_prefix}%"))
    rows = session.execute(q.order_by(Job.id.desc()).limit(limit)).scalars()
    return [
        {"id": j.id, "kind": j.kind, "state": j.state, "attempts": j.attempts, "last_error": j.last_error, "run_at": j.run_at, "payload": j.payload}
        for j in rows
    ]


