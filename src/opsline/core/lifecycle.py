"""Declared state machines: every entity with a lifecycle declares it once here-shaped, and `transition()` is the
one way its state changes (lock, validate, change, audit, publish the domain event, return the next actions).

A declaration is data:

    ORDER = Lifecycle(
        name="order", states=OrderState,
        transitions={OrderState.DRAFT: {"submit": OrderState.SUBMITTED, "cancel": OrderState.CANCELLED}, ...},
        system_actions={"complete"},            # only the system (worker, partner callback) may do these
        permissions={"approve": "orders.approve"},
        needs_reason={"cancel"},
        four_eyes={"approve": "created_by"},    # the approver must not be the person named in entity.created_by
        labels={"submit": "Submit order"},
    )

The model's CHECK constraint comes from the same declaration: `__table_args__ = (ORDER.check(),)`.
Each transition publishes the domain event `<name>.<new state>` (e.g. `invoice.finalised`) with the entity's id,
account id, action, from/to state, reason, actor and any `details` the service adds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping

from sqlalchemy import CheckConstraint, event, inspect as sa_inspect, select, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from opsline.core import domain_events, events
from opsline.core.errors import InvalidInput, PermissionDenied, TransitionNotAllowed
from opsline.core.events import Actor
from opsline.db.session import transaction_cache
from opsline.users.roles import allowed as role_allows


class ReasonRequired(InvalidInput):
    title = "Reason required"
    type_slug = "reason-required"


class FourEyesRequired(PermissionDenied):
    title = "Second person required"
    type_slug = "four-eyes-required"


class ActionNotPermitted(PermissionDenied):
    title = "Action not permitted"
    type_slug = "action-not-permitted"


def _values(states: Iterable[Any]) -> list[str]:
    return [s.value if isinstance(s, enum.Enum) else str(s) for s in states]


@dataclass(frozen=True)
class Lifecycle:
    """One entity's state machine. `name` is the audit entity type and the domain-event prefix."""

    name: str
    states: type[enum.StrEnum]
    transitions: Mapping[str, Mapping[str, str]]
    column: str = "state"
    system_actions: frozenset[str] | set[str] = frozenset()
    permissions: Mapping[str, str] = field(default_factory=dict)  # action -> permission
    needs_reason: frozenset[str] | set[str] = frozenset()
    four_eyes: Mapping[str, str] = field(default_factory=dict)  # action -> entity attribute naming the maker
    labels: Mapping[str, str] = field(default_factory=dict)  # action -> button label
    initial: str | None = None  # the state a new entity starts in (documentation and the generic test)

    def __post_init__(self) -> None:
        known = set(_values(self.states))
        for state, moves in self.transitions.items():
            if str(state) not in known:
                raise ValueError(f"lifecycle {self.name}: unknown state {state!r}")
            for action, target in moves.items():
                if str(target) not in known:
                    raise ValueError(f"lifecycle {self.name}: {state}.{action} goes to unknown state {target!r}")
        missing = known - {str(s) for s in self.transitions}
        if missing:
            raise ValueError(f"lifecycle {self.name}: states without a transitions entry: {sorted(missing)}")
        every = self.actions()
        for group, names in (("system_actions", self.system_actions), ("needs_reason", self.needs_reason),
                             ("permissions", self.permissions), ("four_eyes", self.four_eyes)):
            unknown = set(names) - every
            if unknown:
                raise ValueError(f"lifecycle {self.name}: {group} names unknown actions {sorted(unknown)}")

    # --- reading the declaration ---------------------------------------------------------------
    def state_values(self) -> list[str]:
        return _values(self.states)

    def actions(self) -> set[str]:
        return {a for moves in self.transitions.values() for a in moves}

    def target(self, state: str, action: str) -> str | None:
        nxt = self.transitions.get(str(state), {}).get(action)
        return None if nxt is None else str(nxt)

    def is_final(self, state: str) -> bool:
        return not self.transitions.get(str(state))

    def event_names(self) -> set[str]:
        return {f"{self.name}.{s}" for s in self.state_values()}

    def check(self, *, nullable: bool = False) -> CheckConstraint:
        """The CHECK constraint for the state column, generated from the declared states."""
        values = ", ".join(f"'{v}'" for v in self.state_values())
        expr = f"{self.column} IN ({values})"
        if nullable:
            expr = f"{self.column} IS NULL OR {expr}"
        return CheckConstraint(expr, name=self.column)

    def allowed_actions(self, state: str, *, actor: Actor | None = None, include_system: bool = False) -> list[str]:
        """The actions a person (or the system) may take from `state`, in declaration order. Without an actor,
        every non-system action is listed; with one, actions whose permission the actor lacks are left out."""
        out: list[str] = []
        for action in self.transitions.get(str(state), {}):
            if action in self.system_actions and not (include_system or (actor is not None and actor.is_system)):
                continue
            perm = self.permissions.get(action)
            if actor is not None and perm and not role_allows(actor.roles, perm):
                continue
            out.append(action)
        return out

    def buttons(self, state: str, *, actor: Actor | None = None) -> list[dict[str, Any]]:
        """Allowed actions with labels and what each needs, for the UI to render."""
        return [{"action": a, "label": self.labels.get(a, a.replace("_", " ").capitalize()),
                 "needs_reason": a in self.needs_reason, "four_eyes": a in self.four_eyes}
                for a in self.allowed_actions(state, actor=actor)]


@event.listens_for(Session, "pending_to_persistent")
def _note_inserted(session: Session, instance: Any) -> None:
    transaction_cache(session, "rows_inserted")[sa_inspect(instance).key] = True


def _current_state(session: Session, lc: Lifecycle, entity: Any) -> str:
    """The row's state, re-read under a row lock on PostgreSQL (on SQLite under the database write lock), so two
    people acting at once cannot both move the same entity. A row this transaction inserted is seen by no one else
    until it commits, so its state is taken as it is (an order placed moves its new order, items and products several
    times: no lock query for each)."""
    st = sa_inspect(entity, raiseerr=False)
    if (st is None or not st.persistent or st.attrs[lc.column].history.has_changes()
            or st.key in transaction_cache(session, "rows_inserted")):
        return str(getattr(entity, lc.column))
    mapper = st.mapper
    # FOR UPDATE on every dialect: PostgreSQL locks the row; on SQLite the clause is dropped from the SQL and a
    # deferred session takes the database write lock before this read (opsline.db.session).
    q = select(mapper.columns[lc.column]).where(*[c == v for c, v in zip(mapper.primary_key, st.identity)]).with_for_update()
    fresh = session.execute(q).scalar_one()
    set_committed_value(entity, lc.column, fresh)
    return str(fresh)


def transition(
    session: Session,
    lc: Lifecycle,
    entity: Any,
    action: str,
    *,
    now: datetime,
    actor: Actor,
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
    entity_id: object | None = None,
    account_id: int | None = None,
    label: str | None = None,
    publish: bool = True,
) -> list[str]:
    """Apply `action` to `entity` (an ORM object, or any object with the state attribute), write the audit event,
    publish `<name>.<new state>`, and return the actions the same actor may take next.

    Raises TransitionNotAllowed (unknown or not allowed from the current state, or a system-only action by a person),
    ActionNotPermitted (the actor's roles lack the action's permission), ReasonRequired, FourEyesRequired
    (the actor is the person who made the request). Nothing is changed when it raises."""
    state = _current_state(session, lc, entity)
    what = label or f"{lc.name.replace('_', ' ')} {entity_id if entity_id is not None else getattr(entity, 'id', '')}".strip()
    target = lc.target(state, action)
    if target is None:
        allowed_now = lc.allowed_actions(state, actor=actor)
        if action not in lc.actions():
            msg = f"'{action}' is not an action of a {lc.name.replace('_', ' ')}"
        elif lc.is_final(state):
            msg = f"cannot {action} {what}: it is {state}, which is final"
        else:
            msg = f"cannot {action} {what} while it is {state}"
        raise TransitionNotAllowed(msg, field=lc.column, extra={"state": state, "allowed": allowed_now})
    if action in lc.system_actions and not actor.is_system:
        raise TransitionNotAllowed(f"'{action}' on {what} is done by the system, not by a person", field=lc.column,
                                   extra={"state": state, "allowed": lc.allowed_actions(state, actor=actor)})
    perm = lc.permissions.get(action)
    if perm and not actor.is_system and not role_allows(actor.roles, perm):
        raise ActionNotPermitted(f"your role does not allow '{perm}' (needed to {action} {what})", extra={"permission": perm})
    reason = (reason or "").strip() or None
    if action in lc.needs_reason and not reason:
        raise ReasonRequired(f"a reason is required to {action} {what}", field="reason")
    maker_attr = lc.four_eyes.get(action)
    if maker_attr:
        maker = getattr(entity, maker_attr, None)
        if maker and maker == actor.name:
            raise FourEyesRequired(f"{what} was requested by {maker}; a second person must {action} it", field="actor")
    setattr(entity, lc.column, target)
    eid = entity_id if entity_id is not None else getattr(entity, "id", None)
    acc = account_id if account_id is not None else getattr(entity, "account_id", None)
    before: dict[str, Any] = {lc.column: state}
    after: dict[str, Any] = {lc.column: target}
    if details:
        after.update({k: v for k, v in details.items()})
    events.record(session, now=now, actor=actor, entity_type=lc.name, entity_id=eid, action=action, account_id=acc,
                  reason=reason, before=before, after=after)
    if publish:
        payload: dict[str, Any] = {"id": eid, "account_id": acc, "action": action, "from": state, "to": target, "reason": reason}
        if details:
            payload["details"] = dict(details)
        domain_events.publish(session, f"{lc.name}.{target}", payload, now=now, actor=actor)
    return lc.allowed_actions(target, actor=actor)


def _table_name(table_or_model: Any) -> tuple[str, type | None]:
    """(table name, mapped class or None) for an ORM class, a Table or a table name."""
    if isinstance(table_or_model, str):
        return table_or_model, None
    mapper = sa_inspect(table_or_model, raiseerr=False)
    if mapper is not None and hasattr(mapper, "local_table"):
        return str(mapper.local_table.name), mapper.class_
    return str(table_or_model.name), None


def transition_many(
    session: Session,
    lc: Lifecycle,
    table_or_model: Any,
    ids: Iterable[int],
    action: str,
    *,
    now: datetime,
    actor: Actor,
    reason: str | None = None,
    account_col: str | None = "account_id",
) -> list[int]:
    """Apply `action` to many rows of `table_or_model` (an ORM class, a Table or a table name with an integer `id`) in a
    few statements: the rows whose current state allows `action` move to the declared target, one audit event each (the
    shape `transition()` writes), and ONE domain event `<name>.<target>` per target state is published with payload
    {"ids": [...], "batch": True, "action", "from": [state per id], "to": target, "reason"}. Rows in a state that does not
    allow the action (or missing) are left alone and not returned. Returns the changed ids, ascending.

    Raises like `transition()`: TransitionNotAllowed (unknown action, a system-only action by a person), ActionNotPermitted,
    ReasonRequired; FourEyesRequired for a four-eyes action (a second person must decide each one; never in bulk).
    Nothing is changed when it raises."""
    if action not in lc.actions():
        raise TransitionNotAllowed(f"'{action}' is not an action of a {lc.name.replace('_', ' ')}", field=lc.column)
    what = f"{lc.name.replace('_', ' ')}s"
    if action in lc.system_actions and not actor.is_system:
        raise TransitionNotAllowed(f"'{action}' on {what} is done by the system, not by a person", field=lc.column)
    perm = lc.permissions.get(action)
    if perm and not actor.is_system and not role_allows(actor.roles, perm):
        raise ActionNotPermitted(f"your role does not allow '{perm}' (needed to {action} {what})", extra={"permission": perm})
    reason = (reason or "").strip() or None
    if action in lc.needs_reason and not reason:
        raise ReasonRequired(f"a reason is required to {action} {what}", field="reason")
    if action in lc.four_eyes:
        raise FourEyesRequired(f"'{action}' needs a second person for each {lc.name.replace('_', ' ')}; it cannot be done in bulk",
                               field="action")
    wanted = sorted({int(i) for i in ids})
    if not wanted:
        return []
    by_target: dict[str, list[str]] = {}
    for state, moves in lc.transitions.items():
        if action in moves:
            by_target.setdefault(str(moves[action]), []).append(str(state))
    from_states = sorted({s for states in by_target.values() for s in states})

    from opsline.db.base import sqlite_utc
    from opsline.db.bulk import copy_rows
    from opsline.db.session import lock_for_write

    session.flush()  # pending ORM changes to these rows reach the database before the set-based statements
    lock_for_write(session)  # SQLite: hold the write lock from the read of the states to the update
    conn = session.connection()
    pg = conn.dialect.name == "postgresql"
    name, model = _table_name(table_or_model)
    col = lc.column
    acc = f't."{account_col}"' if account_col else "NULL"
    x = lambda sql, params=None: session.execute(text(sql), params or {})  # noqa: E731
    x("DROP TABLE IF EXISTS lc_many_ids")
    x("DROP TABLE IF EXISTS lc_many_rows")
    x("CREATE TEMP TABLE lc_many_ids (id BIGINT PRIMARY KEY)")
    x("CREATE TEMP TABLE lc_many_rows (id BIGINT PRIMARY KEY, account_id BIGINT, before_state VARCHAR(60))")
    # on an error the caller's transaction rolls back, and the temp tables with it
    copy_rows(conn, "lc_many_ids", ("id",), ((i,) for i in wanted))
    marks = ", ".join(f":s{k}" for k in range(len(from_states)))
    states = {f"s{k}": s for k, s in enumerate(from_states)}
    # the rows that will change, locked (PostgreSQL) in id order so two batches cannot deadlock
    x(f"""INSERT INTO lc_many_rows (id, account_id, before_state)
          SELECT t.id, {acc}, t."{col}" FROM "{name}" t JOIN lc_many_ids i ON i.id = t.id
          WHERE t."{col}" IN ({marks}) ORDER BY t.id{' FOR UPDATE OF t' if pg else ''}""", states)
    changed = x("SELECT id, before_state FROM lc_many_rows ORDER BY id").all()
    occurred = now if pg else sqlite_utc(now)
    as_json = "jsonb_build_object" if pg else "json_object"
    for target, sources in by_target.items() if changed else ():
        smarks = ", ".join(f":s{k}" for k in range(len(sources)))
        sp = {f"s{k}": s for k, s in enumerate(sources)}
        x(f"""UPDATE "{name}" SET "{col}" = :target
              WHERE id IN (SELECT id FROM lc_many_rows WHERE before_state IN ({smarks}))""", {"target": target, **sp})
        x(f"""INSERT INTO audit_event (occurred_at, actor, entity_type, entity_id, account_id, action, reason, "before", "after")
              SELECT :now, :actor, :etype, CAST(r.id AS VARCHAR(60)), r.account_id, :action, :reason,
                     {as_json}(CAST(:col AS VARCHAR(60)), r.before_state), {as_json}(CAST(:col AS VARCHAR(60)), CAST(:target AS VARCHAR(60)))
              FROM lc_many_rows r WHERE r.before_state IN ({smarks}) ORDER BY r.id""",
          {"now": occurred, "actor": actor.name, "etype": lc.name, "action": action, "reason": reason, "col": col,
           "target": target, **sp})
    x("DROP TABLE lc_many_ids")
    x("DROP TABLE lc_many_rows")
    done = {int(r.id) for r in changed}
    if model is not None:  # loaded objects must not keep the old state
        for obj in list(session.identity_map.values()):
            if isinstance(obj, model) and getattr(obj, "id", None) in done:
                session.expire(obj, [col])
    source_target = {s: t for t, sources in by_target.items() for s in sources}
    for target in by_target:
        moved = [r for r in changed if source_target[str(r.before_state)] == target]
        if moved:
            domain_events.publish(session, f"{lc.name}.{target}",
                                  {"ids": [int(r.id) for r in moved], "batch": True, "action": action,
                                   "from": [str(r.before_state) for r in moved], "to": target, "reason": reason},
                                  now=now, actor=actor)
    return [int(r.id) for r in changed]
