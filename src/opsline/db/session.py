"""Engines and sessions. One service call runs in one transaction (`transaction()`).

SQLite runs in WAL mode (readers never wait for the writer), `synchronous=NORMAL` and a busy timeout. How a
transaction takes SQLite's single write lock is a session option (`make_sessionmaker(engine, lock=...)`):

- `"immediate"` (the default, for services that read then write): `BEGIN IMMEDIATE` up front, so a read-then-write
  service sees no change between its reads and its writes; concurrent writers queue on the busy timeout.
- `"deferred"` (pages, reports, worker jobs that render or send before they write): reads run without any lock, each
  statement on the latest committed data (like PostgreSQL's READ COMMITTED). The write lock is taken lazily, just
  before the first INSERT/UPDATE/DELETE, or before a `SELECT ... FOR UPDATE` (written with `with_for_update()`; SQLite
  drops the clause from the SQL, we take the lock instead), or explicitly with `lock_for_write(session)`. From then on
  the transaction holds the lock until it ends, so a row read FOR UPDATE stays as read, as on PostgreSQL.

PostgreSQL ignores the option (row locks via FOR UPDATE, READ COMMITTED).
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Iterator, Literal

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

LockMode = Literal["immediate", "deferred"]
_LOCK_OPTION = "opsline_sqlite_lock"
_READ_ONLY_SQL = re.compile(r"^\s*(SELECT|PRAGMA|EXPLAIN|VALUES)\b", re.IGNORECASE)
_TXN_CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|END|ROLLBACK|RELEASE)\b", re.IGNORECASE)
_WITH_WRITE = re.compile(r"\b(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


def _is_write(statement: str, context: Any) -> bool:
    """Does this statement need the write lock? DML and DDL do; so does a compiled SELECT ... FOR UPDATE."""
    compiled = getattr(context, "compiled", None)
    if compiled is not None:
        if getattr(context, "isinsert", False) or getattr(context, "isupdate", False) or getattr(context, "isdelete", False):
            return True
        stmt = getattr(compiled, "statement", None)
        if getattr(stmt, "_for_update_arg", None) is not None:
            return True
    head = statement.lstrip()[:6].upper()
    if head.startswith("WITH"):
        return bool(_WITH_WRITE.search(statement))
    return not _READ_ONLY_SQL.match(statement)


def _sqlite_engine(url: str, **kwargs: object) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
    file_db = ":memory:" not in url and url not in ("sqlite://", "sqlite:///")

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        # pysqlite's own transaction handling would BEGIN lazily behind our back; we issue BEGIN ourselves.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        if file_db:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA cache_size=-65536")  # 64 MB page cache per connection
        cur.execute("PRAGMA temp_store=MEMORY")
        if file_db:
            cur.execute("PRAGMA mmap_size=268435456")
            # A long-lived connection: let SQLite gather the statistics it is missing, cheaply (SQLite >= 3.46
            # understands the 0x10002 mask; older versions treat it as a plain, bounded PRAGMA optimize).
            cur.execute("PRAGMA optimize=0x10002")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        if conn.get_execution_options().get(_LOCK_OPTION, "immediate") == "immediate":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        # deferred: no BEGIN yet; the first write takes the lock (below)

    @event.listens_for(engine, "before_cursor_execute")
    def _lazy_write_lock(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        raw = conn.connection.driver_connection
        if raw is None or raw.in_transaction or not conn.in_transaction() or _TXN_CONTROL.match(statement):
            return
        if _is_write(statement, context):  # (a SAVEPOINT counts: it would otherwise open a deferred transaction)
            raw.execute("BEGIN IMMEDIATE")

    return engine


def make_engine(url: str, **kwargs: object) -> Engine:
    """Create an engine with per-dialect settings: SQLite gets foreign keys, WAL, synchronous=NORMAL and a busy timeout."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    return create_engine(url, **kwargs)


def with_lock_mode(engine: Engine, lock: LockMode) -> Engine:
    """The same engine (same pool) whose transactions take SQLite's write lock as `lock` says."""
    if lock not in ("immediate", "deferred"):
        raise ValueError(f"unknown lock mode {lock!r}")
    return _option_engine(engine, lock)


@lru_cache(maxsize=64)
def _option_engine(engine: Engine, lock: str) -> Engine:
    return engine.execution_options(**{_LOCK_OPTION: lock})


KEEP_LOADED = "opsline.keep_loaded"  # session.info: strong references to what a request's session loaded


def keep_loaded(session: Session) -> None:
    """Hold every object `session` loads until the session is dropped. SQLAlchemy's identity map holds objects weakly,
    so a row one service read and let go was read again by the next service's `session.get` (an order placed read
    its account three times). For a web request's short session only: a batch job holding every row it touched
    would grow without bound."""
    session.info[KEEP_LOADED] = []


@event.listens_for(Session, "loaded_as_persistent")
def _hold_loaded(session: Session, instance: Any) -> None:
    held = session.info.get(KEEP_LOADED)
    if held is not None:
        held.append(instance)


_TRANSACTION_CACHE = "opsline.transaction_cache"  # session.info: {name: dict} for the current transaction


def transaction_cache(session: Session, name: str) -> dict[Any, Any]:
    """A dict named `name` that lives as long as the session's current transaction: emptied when the transaction
    ends, and on any rollback (a rolled-back savepoint may have taken back what it holds). For what a transaction may
    read once (tax rates) or knows about itself (the rows it inserted)."""
    return session.info.setdefault(_TRANSACTION_CACHE, {}).setdefault(name, {})


@event.listens_for(Session, "after_soft_rollback")
def _forget_on_rollback(session: Session, previous_transaction: Any) -> None:
    session.info.pop(_TRANSACTION_CACHE, None)


@event.listens_for(Session, "after_transaction_end")
def _forget_at_end(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop(_TRANSACTION_CACHE, None)


def make_sessionmaker(engine: Engine, *, lock: LockMode = "immediate") -> sessionmaker[Session]:
    """Sessions on `engine`. `lock="deferred"` for readers (pages, reports) and jobs that work before they write."""
    return sessionmaker(bind=with_lock_mode(engine, lock) if lock != "immediate" else engine, expire_on_commit=False, future=True)


def deferred(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """A sessionmaker like `factory` whose sessions take SQLite's write lock only at their first write."""
    bind = factory.kw.get("bind")
    if not isinstance(bind, Engine):
        raise TypeError("the sessionmaker has no engine bound")
    return sessionmaker(class_=factory.class_, **(factory.kw | {"bind": with_lock_mode(bind, "deferred")}))


def lock_for_write(session: Session) -> None:
    """Take the write lock now (SQLite; a no-op on PostgreSQL and when already held): for a deferred session about
    to read what it will then change."""
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        return
    raw = conn.connection.driver_connection
    if raw is not None and not raw.in_transaction:
        raw.execute("BEGIN IMMEDIATE")


def holds_write_lock(session: Session) -> bool:
    """True when the session's SQLite connection is inside a write transaction (always True on PostgreSQL)."""
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        return True
    raw = conn.connection.driver_connection
    return bool(raw is not None and raw.in_transaction)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Open a session, commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def read_transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A transaction for reading (and the odd write, which takes the lock when it comes): never waits for the writer."""
    with transaction(deferred(factory)) as session:
        yield session


@contextmanager
def write_transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A transaction that takes the write lock up front (read-then-write services)."""
    with transaction(factory) as session:
        lock_for_write(session)
        yield session


def optimize(engine: Engine, *, analyze: bool = False) -> None:
    """Refresh the planner's statistics: `PRAGMA optimize` (or a full ANALYZE) on SQLite, ANALYZE on PostgreSQL.
    Run after bulk loads (the demo) and on a schedule (the `db.optimize` job)."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            if analyze:
                conn.exec_driver_sql("PRAGMA analysis_limit=2000")  # sampled: seconds, not minutes, at a million rows
                conn.exec_driver_sql("ANALYZE")
            else:
                conn.exec_driver_sql("PRAGMA optimize")
            conn.commit()
        return
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))


def vacuum(engine: Engine) -> None:
    """After a bulk load: VACUUM ANALYZE on PostgreSQL (visibility map for index-only scans, statistics), ANALYZE on
    SQLite (a VACUUM there would rewrite the whole file for nothing)."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE)"))
    else:
        optimize(engine, analyze=True)
