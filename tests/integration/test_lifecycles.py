"""One generic walk over every declared lifecycle: every allowed transition works and writes its audit event, every
other move is refused with TransitionNotAllowed and changes nothing; reasons, system-only actions, permissions and
four-eyes are enforced as declared; each lifecycle's CHECK constraint is on its table."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

import opsline.models  # noqa: F401
from opsline.areas import load_areas
from opsline.core import domain_events
from opsline.core.errors import TransitionNotAllowed
from opsline.core.events import Actor, AuditEvent
from opsline.core.lifecycle import ActionNotPermitted, FourEyesRequired, Lifecycle, ReasonRequired, transition
from opsline.db.base import metadata

LIFECYCLES: list[Lifecycle] = [lc for area in load_areas() for lc in area.lifecycles]
PERSON = Actor(name="tester", roles=frozenset({"admin"}))
SYSTEM = Actor.system("test")


def _ids(lc: Lifecycle) -> str:
    return lc.name


def _audit_count(session) -> int:  # type: ignore[no-untyped-def]
    return session.execute(select(func.count(AuditEvent.id))).scalar_one()


def _entity(lc: Lifecycle, state: str) -> SimpleNamespace:
    e = SimpleNamespace(id=1, account_id=None, **{lc.column: state})
    for attr in lc.four_eyes.values():
        setattr(e, attr, "someone-else")
    return e


@pytest.fixture(autouse=True)
def _no_subscribers(monkeypatch):  # type: ignore[no-untyped-def]
    """The walk tests the state machines themselves; reactions are tested by each area on real rows."""
    monkeypatch.setattr(domain_events, "subscribers_for", lambda name: [])


def test_every_area_declares_its_lifecycles():
    names = {lc.name for lc in LIFECYCLES}
    assert len(names) == len(LIFECYCLES), "two lifecycles share a name"
    assert names, "no lifecycle is declared"


@pytest.mark.parametrize("lc", LIFECYCLES, ids=_ids)
def test_every_allowed_transition_works_and_every_other_is_refused_without_change(lc: Lifecycle, session, now):
    for state in lc.state_values():
        for action in sorted(lc.actions()):
            entity = _entity(lc, state)
            actor = SYSTEM if action in lc.system_actions else PERSON
            before = _audit_count(session)
            target = lc.target(state, action)
            if target is None:
                with pytest.raises(TransitionNotAllowed):
                    transition(session, lc, entity, action, now=now, actor=actor, reason="walk")
                assert getattr(entity, lc.column) == state
                session.flush()
                assert _audit_count(session) == before
            else:
                nxt = transition(session, lc, entity, action, now=now, actor=actor, reason="walk")
                assert getattr(entity, lc.column) == target
                assert set(nxt) <= set(lc.transitions[target])
                session.flush()
                assert _audit_count(session) == before + 1
                ev = session.execute(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).scalar_one()
                assert (ev.entity_type, ev.action, ev.before, ev.after[lc.column]) == (lc.name, action, {lc.column: state}, target)


@pytest.mark.parametrize("lc", LIFECYCLES, ids=_ids)
def test_declared_rules_are_enforced_and_change_nothing(lc: Lifecycle, session, now):
    for state, moves in lc.transitions.items():
        for action in moves:
            entity = _entity(lc, str(state))
            if action in lc.needs_reason:
                actor = SYSTEM if action in lc.system_actions else PERSON
                with pytest.raises(ReasonRequired):
                    transition(session, lc, entity, action, now=now, actor=actor, reason="  ")
                assert getattr(entity, lc.column) == str(state)
            if action in lc.system_actions:
                with pytest.raises(TransitionNotAllowed):
                    transition(session, lc, entity, action, now=now, actor=PERSON, reason="walk")
                assert getattr(entity, lc.column) == str(state)
                assert action not in lc.allowed_actions(str(state), actor=PERSON)
            if action in lc.permissions and action not in lc.system_actions:
                nobody = Actor(name="nobody", roles=frozenset({"no_such_role"}))
                with pytest.raises(ActionNotPermitted):
                    transition(session, lc, entity, action, now=now, actor=nobody, reason="walk")
                assert getattr(entity, lc.column) == str(state)
                assert action not in lc.allowed_actions(str(state), actor=nobody)
            if action in lc.four_eyes and action not in lc.system_actions:
                setattr(entity, lc.four_eyes[action], PERSON.name)
                with pytest.raises(FourEyesRequired):
                    transition(session, lc, entity, action, now=now, actor=PERSON, reason="walk")
                assert getattr(entity, lc.column) == str(state)


@pytest.mark.parametrize("lc", LIFECYCLES, ids=_ids)
def test_the_state_check_constraint_comes_from_the_declaration(lc: Lifecycle):
    wanted = str(lc.check().sqltext)
    found = [t.name for t in metadata.tables.values() for c in t.constraints
             if getattr(c, "sqltext", None) is not None and str(c.sqltext) in (wanted, str(lc.check(nullable=True).sqltext))]
    assert found, f"no table carries the CHECK generated from lifecycle {lc.name}: {wanted}"


def test_every_subscriber_listens_to_a_declared_event():
    declared = domain_events.declared_events()
    import fnmatch

    for sub in domain_events._registry().subscribers:
        assert any(sub.event == d or fnmatch.fnmatchcase(d, sub.event) for d in declared), f"{sub.name} listens to {sub.event}, which nobody publishes"
