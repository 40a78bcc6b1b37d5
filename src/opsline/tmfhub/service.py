"""Hub listeners and event deliveries: register/list/delete listeners, turn domain events into TMF events for the
matching listeners (one delivery job each, in the publisher's transaction), deliver them signed and in order per
resource, retry with backoff, and let an operator retry the dead ones."""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import logging
import secrets
import uuid
from datetime import datetime
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

import httpx
from sqlalchemy import and_, bindparam, event, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from opsline.api.tmf import api_base
from opsline.core import jobs
from opsline.core.batching import pages
from opsline.core.domain_events import DomainEvent
from opsline.core.errors import NotFound, OpslineError
from opsline.core.events import Actor, record
from opsline.db.base import sqlite_utc
from opsline.db.bulk import copy_rows
from opsline.db.session import transaction_cache, with_lock_mode
from opsline.tmfhub.catalogue import BY_NAME, RULES, resource_type
from opsline.tmfhub.models import DeliveryState, HubAttempt, HubDelivery, HubListener

log = logging.getLogger("opsline.tmfhub")

DELIVER_JOB = "tmfhub.deliver"
MAX_ATTEMPTS = 20  # backoff 2 s, 4 s ... capped at 1 h: about 9 hours of retrying before a delivery is dead
TIMEOUT_SECONDS = 10.0
SIGNATURE_HEADER = "X-Hub-Signature-256"


class InvalidListener(OpslineError):
    status = 400
    title = "Invalid listener"
    type_slug = "invalid-listener"


class ListenerNotFound(NotFound):
    title = "Listener not found"
    type_slug = "listener-not-found"


class DeliveryFailed(RuntimeError):
    """The callback did not take the event (the job is retried with backoff)."""


# --- listeners -------------------------------------------------------------------------------------------------------

def parse_query(api: str, query: str | None) -> list[tuple[str, set[str]]]:
    """`eventType=A,B&event.productOrder.state=completed` -> [(name, {values})]. Raises InvalidListener naming the part."""
    if query is None or not query.strip():
        return []
    out: list[tuple[str, set[str]]] = []
    for name, value in parse_qsl(query.strip(), keep_blank_values=True, strict_parsing=False):
        name = name.strip()
        if not name or not all(c.isalnum() or c in "._@" for c in name):
            raise InvalidListener(f"query: '{name}' is not an attribute name", field="query")
        values = {v.strip() for v in value.split(",") if v.strip()}
        if not values:
            raise InvalidListener(f"query: '{name}' needs a value", field="query")
        if name == "eventType":
            unknown = values - set(BY_NAME[api].event_types)
            if unknown:
                raise InvalidListener(f"query: {', '.join(sorted(unknown))} is not an event type of {api} (known: {', '.join(BY_NAME[api].event_types)})",
                                      field="query")
        out.append((name, values))
    if not out:
        raise InvalidListener("query: nothing to filter on", field="query")
    return out


def _check_callback(callback: str) -> str:
    callback = (callback or "").strip()
    parts = urlsplit(callback)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidListener("callback must be an absolute http(s) URL", field="callback")
    return callback


def register(session: Session, *, api: str, callback: str, query: str | None, now: datetime, actor: Actor) -> tuple[HubListener, str]:
    """A new listener on `api`'s hub; returns it and its signing secret (shown once). Raises InvalidListener."""
    if api not in BY_NAME:
        raise ListenerNotFound(f"{api} has no hub")
    callback = _check_callback(callback)
    parse_query(api, query)
    secret = secrets.token_urlsafe(32)
    listener = HubListener(api_name=api, callback=callback, query=(query or "").strip() or None, secret=secret, created_at=now, created_by=actor.name)
    session.add(listener)
    session.flush()
    record(session, now=now, actor=actor, entity_type="tmf_hub_listener", entity_id=listener.id, action="register",
           after={"api": api, "callback": callback, "query": listener.query})
    return listener, secret


def get_listener(session: Session, *, api: str, listener_id: int) -> HubListener:
    """Raises ListenerNotFound (unknown, deleted, or registered on another API)."""
    listener = session.get(HubListener, listener_id)
    if listener is None or listener.api_name != api or listener.deleted_at is not None:
        raise ListenerNotFound(f"listener {listener_id} is not registered on the {api} hub")
    return listener


def list_listeners(session: Session, *, api: str | None = None, offset: int = 0, limit: int = 100) -> tuple[list[HubListener], int]:
    q = select(HubListener).where(HubListener.deleted_at.is_(None))
    if api:
        q = q.where(HubListener.api_name == api)
    total = session.execute(select(func.count()).select_from(q.subquery())).scalar_one()
    rows = session.execute(q.order_by(HubListener.id).offset(offset).limit(limit)).scalars().all()
    return list(rows), total


def delete_listener(session: Session, *, api: str, listener_id: int, now: datetime, actor: Actor) -> None:
    """Stop sending to a listener; its undelivered events are cancelled (its delivery log stays). Raises ListenerNotFound."""
    listener = get_listener(session, api=api, listener_id=listener_id)
    listener.deleted_at = now
    listener.deleted_by = actor.name
    session.execute(update(HubDelivery).where(HubDelivery.listener_id == listener.id, HubDelivery.state.in_([DeliveryState.PENDING.value, DeliveryState.DEAD.value]))
                    .values(state=DeliveryState.CANCELLED.value, next_attempt_at=None))
    record(session, now=now, actor=actor, entity_type="tmf_hub_listener", entity_id=listener.id, action="delete", before={"callback": listener.callback})


def listener_out(listener: HubListener, *, secret: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": str(listener.id), "href": f"{api_base(listener.api_name)}/hub/{listener.id}", "callback": listener.callback,
                           "@type": "EventSubscription"}
    if listener.query:
        out["query"] = listener.query
    if secret:
        out["secret"] = secret  # only in the registration answer: the key of the X-Hub-Signature-256 header
    return out


# --- turning domain events into TMF events ---------------------------------------------------------------------------

def _values_at(node: Any, path: list[str]) -> list[Any]:
    if not path:
        return node if isinstance(node, list) else [node]
    if isinstance(node, list):
        return [v for item in node for v in _values_at(item, path)]
    if isinstance(node, dict) and path[0] in node:
        return _values_at(node[path[0]], path[1:])
    return []


def matches(filters: list[tuple[str, set[str]]], body: dict[str, Any], resource_key: str) -> bool:
    """Every filter holds: `eventType`, an attribute of the event (`event.productOrder.state`, `domain`) or, for short,
    of the resource (`state`, `relatedParty.id`). Values compare as strings; a comma means any of them."""
    for name, allowed in filters:
        path = name.split(".")
        if path[0] in body:
            found = _values_at(body, path)
        else:
            found = _values_at(body.get("event", {}).get(resource_key, {}), path)
        if not any(_text(v) in allowed for v in found if not isinstance(v, (dict, list))):
            return False
    return True


def _text(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _event_body(*, event_id: str, event_type: str, now: datetime, api: str, resource: str, resource_obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "eventTime": now.isoformat().replace("+00:00", "Z"),
        "eventType": event_type,
        "@type": event_type,
        "domain": api,
        "title": f"{event_type} {resource_type(resource)} {resource_obj.get('id', '')}".strip(),
        "href": resource_obj.get("href"),
        "event": {resource: resource_obj},
    }


def subscriber_for(pattern: str) -> Callable[[Session, DomainEvent, datetime], None]:
    """The same-transaction handler of the rules declared for `pattern` (one subscriber per pattern, so an event matched
    by two patterns, e.g. `case.changed` and `case.*`, is still turned into each TMF event once)."""

    def handler(session: Session, ev: DomainEvent, now: datetime) -> None:
        on_domain_event(session, ev, now, rules=[r for r in RULES if r.domain_event == pattern])

    handler.__name__ = f"tmfhub_{pattern}"
    return handler


def on_domain_event(session: Session, ev: DomainEvent, now: datetime, *, rules: list[Any] | None = None) -> None:
    """One delivery (and its job) per matching listener, or nothing when none listens. A batch event (`{"ids": [...]}`,
    e.g. a statement's payments) is turned into one event per id, rendered and written a page at a time."""
    rules = [r for r in (RULES if rules is None else rules) if r.domain_event == ev.name or fnmatch.fnmatchcase(ev.name, r.domain_event)]
    if "id" not in ev.payload:
        if isinstance(ev.payload.get("ids"), list):
            _on_batch(session, ev, now, rules=rules)
        return
    wanted = [(r, types) for r in rules if (types := r.event_type(ev.name, ev.payload))]
    if not wanted:
        return
    listeners = _active_listeners(session)
    for rule, event_types in wanted:
        mine = [li for li in listeners if li.api_name == rule.api]
        if not mine:
            continue
        resource_obj = _render_safely(session, rule, ev, now)
        if resource_obj is None:
            continue
        key = f"{rule.resource}:{ev.payload['id']}"
        for event_type in event_types:
            event_id = str(uuid.uuid4())
            body = _event_body(event_id=event_id, event_type=event_type, now=ev.occurred_at, api=rule.api, resource=rule.resource, resource_obj=resource_obj)
            made = []
            for listener in mine:
                if not matches(parse_query(listener.api_name, listener.query), body, rule.resource):
                    continue
                d = HubDelivery(listener_id=listener.id, event_id=event_id, event_type=event_type, resource_key=key, body=body,
                                state=DeliveryState.PENDING.value, attempts=0, created_at=now, next_attempt_at=now)
                session.add(d)
                session.flush()
                made.append(d.id)
                jobs.enqueue(session, kind=DELIVER_JOB, payload={"delivery_id": d.id}, now=now, idempotency_key=_job_key(d.id),
                             serial_key=f"hub:{listener.id}:{key}"[:120], max_attempts=MAX_ATTEMPTS)
            if made and rule.at_commit and event_type.endswith("CreateEvent"):
                _at_commit(session).append((made, rule.api, rule.resource, ev.payload["id"], now))


BATCH_PAGE = 500  # resources rendered and deliveries written per round trip


def _on_batch(session: Session, ev: DomainEvent, now: datetime, *, rules: list[Any]) -> None:
    """The batch form: nothing at all when no listener of the API is registered (a statement import pays one cached
    listener read); else, per page of ids, the resources rendered together (the API's own list rendering, a few queries per
    page) and the deliveries and their jobs written with one multi-row INSERT each."""
    from opsline.tmfhub import render

    payload = {k: v for k, v in ev.payload.items() if k != "ids"}
    wanted = [(r, types) for r in rules if (types := r.event_type(ev.name, payload))]
    listeners = _active_listeners(session) if wanted else []
    for rule, event_types in wanted:
        mine = [(li, parse_query(li.api_name, li.query)) for li in listeners if li.api_name == rule.api]
        if not mine:
            continue
        ids = [str(i) for i in ev.payload["ids"]]
        for page in pages(ids, BATCH_PAGE):
            with session.begin_nested():
                rendered = render.render_many(session, api=rule.api, resource=rule.resource, resource_ids=page, now=now)
            rows: list[dict[str, Any]] = []
            for rid in page:
                resource_obj = rendered.get(rid)
                if resource_obj is None:
                    continue
                key = f"{rule.resource}:{rid}"
                for event_type in event_types:
                    event_id = str(uuid.uuid4())
                    body = _event_body(event_id=event_id, event_type=event_type, now=ev.occurred_at, api=rule.api, resource=rule.resource,
                                       resource_obj=resource_obj)
                    rows.extend({"listener_id": li.id, "event_id": event_id, "event_type": event_type, "resource_key": key, "body": body,
                                 "state": DeliveryState.PENDING.value, "attempts": 0, "created_at": now, "next_attempt_at": now}
                                for li, filters in mine if matches(filters, body, rule.resource))
            if rows:
                _write_batch(session, rows, now=now)


_BATCH_COLUMNS = ("listener_id", "event_id", "event_type", "resource_key", "body", "state", "attempts", "created_at", "next_attempt_at")


def _write_batch(session: Session, rows: list[dict[str, Any]], *, now: datetime) -> None:
    """The deliveries by COPY (PostgreSQL; executemany on SQLite), in order, then their jobs with one INSERT ... SELECT."""
    session.flush()
    conn = session.connection()
    copy_rows(conn, HubDelivery.__table__, _BATCH_COLUMNS, ([row[c] for c in _BATCH_COLUMNS] for row in rows))
    pg = conn.dialect.name == "postgresql"
    payload = "jsonb_build_object('delivery_id', d.id)" if pg else "json_object('delivery_id', d.id)"
    at = now if pg else sqlite_utc(now)
    session.execute(text(f"""INSERT INTO job (kind, payload, state, priority, run_at, created_at, attempts, max_attempts, idempotency_key, serial_key)
                             SELECT :kind, {payload}, :state, 100, :now, :now, 0, :max, :prefix || CAST(d.id AS VARCHAR(20)),
                                    SUBSTR('hub:' || CAST(d.listener_id AS VARCHAR(20)) || ':' || d.resource_key, 1, 120)
                             FROM tmf_hub_delivery d WHERE d.event_id IN :events ORDER BY d.id""").bindparams(bindparam("events", expanding=True)),
                    {"kind": DELIVER_JOB, "state": jobs.JobState.QUEUED.value, "now": at, "max": MAX_ATTEMPTS, "prefix": _job_key(0)[:-1],
                     "events": sorted({row["event_id"] for row in rows})})


# --- a Create event rendered as its transaction commits it ---------------------------------------------------------

_AT_COMMIT = "_tmfhub_at_commit"


def _at_commit(session: Session) -> list[Any]:
    """The Create events to render when this session's (outermost) transaction commits; a rolled-back one's are forgotten."""
    txn = session.get_transaction()
    held = session.info.get(_AT_COMMIT)
    if held is None or held[0] is not txn:
        held = (txn, [])
        session.info[_AT_COMMIT] = held
    return held[1]


@event.listens_for(Session, "before_commit")
def _render_creates_at_commit(session: Session) -> None:
    """Before the publishing transaction commits, the Create events of `at_commit` rules get the resource as it stands now
    (an order with the items placed after it was announced). Their deliveries were written when published, so they keep
    their place before the later events of the same resource."""
    if session.in_nested_transaction() or _AT_COMMIT not in session.info:
        return  # a savepoint commits, or nothing waits
    txn, pending = session.info.pop(_AT_COMMIT)
    if txn is not session.get_transaction() or not pending:
        return
    from opsline.tmfhub import render

    for delivery_ids, api, resource, resource_id, now in pending:
        deliveries = [d for d in (session.get(HubDelivery, i) for i in delivery_ids) if d is not None and d.state == DeliveryState.PENDING.value]
        if not deliveries:
            continue  # a savepoint that held them was rolled back
        try:
            with session.begin_nested():
                resource_obj = render.render(session, api=api, resource=resource, resource_id=resource_id, now=now)
        except Exception:  # noqa: BLE001 - the business change must commit even if the event keeps its first rendering
            log.exception("could not render %s %s at commit", resource, resource_id)
            continue
        if resource_obj is None:
            continue
        for d in deliveries:
            d.body = {**d.body, "href": resource_obj.get("href"), "event": {resource: resource_obj}}


def _active_listeners(session: Session) -> list[HubListener]:
    """Every active listener, read once per transaction (a bill run publishes one event per invoice)."""
    cache = transaction_cache(session, "tmfhub_listeners")
    if "rows" not in cache:
        cache["rows"] = list(session.execute(select(HubListener).where(HubListener.deleted_at.is_(None)).order_by(HubListener.id)).scalars())
    return cache["rows"]


def _render_safely(session: Session, rule: Any, ev: DomainEvent, now: datetime) -> dict[str, Any] | None:
    """The resource as its API serves it; a failure to render never undoes the publisher's change (savepoint)."""
    from opsline.tmfhub import render

    try:
        with session.begin_nested():
            return render.render(session, api=rule.api, resource=rule.resource, resource_id=ev.payload["id"], now=now)
    except Exception:  # noqa: BLE001 - the business change must commit even if an event cannot be rendered
        log.exception("could not render %s %s for %s", rule.resource, ev.payload.get("id"), ev.name)
        return {"id": str(ev.payload["id"]), "href": f"{api_base(rule.api)}/{rule.resource}/{ev.payload['id']}", "@type": resource_type(rule.resource)}


def _job_key(delivery_id: int) -> str:
    return f"tmfhub.delivery:{delivery_id}"


# --- delivering ------------------------------------------------------------------------------------------------------

def sign(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value: `sha256=` + hex HMAC-SHA256 of the raw body with the listener's secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _record_failure(session: Session, delivery_id: int, *, now: datetime, status_code: int | None, error: str, outcome: str) -> None:
    """Write the failed attempt in its own short transaction: the job's own transaction rolls back when it raises."""
    factory = sessionmaker(bind=with_lock_mode(session.get_bind(), "immediate"), expire_on_commit=False)
    job = session.execute(select(jobs.Job.attempts, jobs.Job.max_attempts).where(jobs.Job.idempotency_key == _job_key(delivery_id))).one_or_none()
    attempts, max_attempts = (job[0], job[1]) if job else (1, MAX_ATTEMPTS)
    dead = attempts >= max_attempts
    with factory() as s, s.begin():
        d = s.get(HubDelivery, delivery_id)
        if d is None or d.state != DeliveryState.PENDING.value:
            return
        d.attempts += 1
        d.last_status_code = status_code
        d.last_error = error[:2000]
        d.next_attempt_at = None if dead else now + jobs.backoff(attempts)
        if dead:
            d.state = DeliveryState.DEAD.value
        s.add(HubAttempt(delivery_id=delivery_id, at=now, status_code=status_code, error=error[:2000], outcome="dead" if dead else outcome))


def deliver_job(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """The worker's side: POST the event to the listener's callback, signed. Raises DeliveryFailed (retried with backoff)
    when the callback is down or refuses, or when an earlier event on the same resource has not been delivered yet."""
    d = session.get(HubDelivery, payload["delivery_id"])
    if d is None or d.state in (DeliveryState.DELIVERED.value, DeliveryState.CANCELLED.value):
        return {"skipped": True}
    listener = session.get(HubListener, d.listener_id)
    if listener is None or listener.deleted_at is not None:
        return {"skipped": True}
    earlier = session.execute(select(HubDelivery.id).where(
        HubDelivery.listener_id == d.listener_id, HubDelivery.resource_key == d.resource_key, HubDelivery.id < d.id,
        HubDelivery.state.in_([DeliveryState.PENDING.value, DeliveryState.DEAD.value])).order_by(HubDelivery.id).limit(1)).scalar_one_or_none()
    if earlier is not None:
        msg = f"waiting for delivery {earlier} (an earlier event on {d.resource_key})"
        _record_failure(session, d.id, now=now, status_code=None, error=msg, outcome="waiting")
        raise DeliveryFailed(msg)
    raw = json.dumps(d.body, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(listener.secret, raw), "X-Opsline-Event-Id": d.event_id,
               "X-Opsline-Delivery": str(d.id), "User-Agent": "opsline-tmf-hub"}
    try:
        with httpx.Client(timeout=httpx.Timeout(TIMEOUT_SECONDS, connect=5.0)) as client:
            resp = client.post(listener.callback, content=raw, headers=headers)
    except httpx.HTTPError as exc:
        msg = f"{type(exc).__name__}: {exc}"
        _record_failure(session, d.id, now=now, status_code=None, error=msg, outcome="failed")
        raise DeliveryFailed(f"callback unreachable: {msg}") from exc
    if not 200 <= resp.status_code < 300:
        msg = f"callback answered {resp.status_code}"
        _record_failure(session, d.id, now=now, status_code=resp.status_code, error=msg + ": " + resp.text[:200], outcome="failed")
        raise DeliveryFailed(msg)
    d.state = DeliveryState.DELIVERED.value
    d.attempts += 1
    d.last_status_code = resp.status_code
    d.last_error = None
    d.next_attempt_at = None
    d.delivered_at = now
    session.add(HubAttempt(delivery_id=d.id, at=now, status_code=resp.status_code, outcome="delivered"))
    return {"delivered": d.id, "status": resp.status_code}


def retry_dead(session: Session, *, listener_id: int, now: datetime, actor: Actor) -> int:
    """Queue the listener's dead deliveries again, oldest first (their jobs keep their order). Returns how many."""
    listener = session.get(HubListener, listener_id)
    if listener is None or listener.deleted_at is not None:
        raise ListenerNotFound(f"listener {listener_id} is not registered")
    dead = session.execute(select(HubDelivery).where(HubDelivery.listener_id == listener_id, HubDelivery.state == DeliveryState.DEAD.value)
                           .order_by(HubDelivery.id).with_for_update()).scalars().all()
    for d in dead:
        d.state = DeliveryState.PENDING.value
        d.next_attempt_at = now
        session.execute(update(jobs.Job).where(jobs.Job.idempotency_key == _job_key(d.id))
                        .values(state=jobs.JobState.QUEUED.value, attempts=0, run_at=now, finished_at=None, lease_until=None, locked_by=None))
    if dead:
        record(session, now=now, actor=actor, entity_type="tmf_hub_listener", entity_id=listener_id, action="retry_dead", after={"deliveries": len(dead)})
    return len(dead)


# --- what the staff page shows ---------------------------------------------------------------------------------------

def overview(session: Session) -> list[dict[str, Any]]:
    """Every active listener with its delivery counts per state (one grouped query)."""
    listeners = session.execute(select(HubListener).where(HubListener.deleted_at.is_(None)).order_by(HubListener.api_name, HubListener.id)).scalars().all()
    counts: dict[int, dict[str, int]] = {}
    for lid, state, n in session.execute(select(HubDelivery.listener_id, HubDelivery.state, func.count()).group_by(HubDelivery.listener_id, HubDelivery.state)):
        counts.setdefault(lid, {})[state] = n
    return [{"id": li.id, "api": li.api_name, "callback": li.callback, "query": li.query or "", "created_at": li.created_at, "created_by": li.created_by,
             "counts": {s.value: counts.get(li.id, {}).get(s.value, 0) for s in DeliveryState}} for li in listeners]


def delivery_log(session: Session, *, listener_id: int, limit: int = 200) -> dict[str, Any]:
    listener = session.get(HubListener, listener_id)
    if listener is None:
        raise ListenerNotFound(f"listener {listener_id} is not registered")
    rows = session.execute(select(HubDelivery).where(HubDelivery.listener_id == listener_id).order_by(HubDelivery.id.desc()).limit(limit)).scalars().all()
    return {"listener": {"id": listener.id, "api": listener.api_name, "callback": listener.callback, "query": listener.query or "",
                         "deleted": listener.deleted_at is not None, "created_at": listener.created_at},
            "deliveries": [{"id": d.id, "event_id": d.event_id, "event_type": d.event_type, "resource": d.resource_key, "state": d.state,
                            "attempts": d.attempts, "status_code": d.last_status_code, "error": d.last_error or "",
                            "next_attempt_at": d.next_attempt_at, "created_at": d.created_at, "delivered_at": d.delivered_at} for d in rows]}


def dead_count(session: Session) -> int:
    return session.execute(select(func.count()).select_from(HubDelivery).join(HubListener, and_(HubListener.id == HubDelivery.listener_id))
                           .where(HubDelivery.state == DeliveryState.DEAD.value, HubListener.deleted_at.is_(None))).scalar_one()
