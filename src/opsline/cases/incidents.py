"""Brand emergencies: a case flagged brand risk raises a brand incident with an owner and stakeholders (told by email
through notifications when it opens, at each update and when it closes), linked cases, a timeline (the audit trail), and
a closing summary. State moves through `campaign_models.BRAND_INCIDENT`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsline.cases.campaign_models import BRAND_INCIDENT, BrandIncident, BrandIncidentCase
from opsline.cases.models import SupportCase
from opsline.cases.service import common as cm
from opsline.core import events, lifecycle
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.events import Actor, AuditEvent
from opsline.notifications.service import ensure_template, send
from opsline.users.models import User

EVENT = "brand_incident.update"
TEMPLATE = ("[{{ incident.reference }}] {{ incident.title }}: {{ what }}",
            "Brand incident {{ incident.reference }} ({{ incident.state }}, severity {{ incident.severity }}), owner {{ incident.owner }}.\n\n"
            "{{ what }}\n\n{{ body }}\n\nLinked cases: {{ incident.cases }}")


class IncidentNotFound(NotFound):
    pass


class UnableToRaiseIncident(InvalidInput):
    title = "Unable to raise the brand incident"


class UnableToChangeIncident(InvalidInput):
    title = "Unable to change the brand incident"


def _emails(raw: list[str] | str) -> list[str]:
    items = raw.replace(";", ",").replace("\n", ",").split(",") if isinstance(raw, str) else raw
    out = []
    for e in (x.strip().lower() for x in items):
        if not e:
            continue
        if "@" not in e or " " in e or len(e) > 200:
            raise UnableToRaiseIncident(f"'{e}' is not an email address", field="stakeholders")
        out.append(e)
    return list(dict.fromkeys(out))


def _incident(session: Session, incident_id: int, *, for_update: bool = False) -> BrandIncident:
    q = select(BrandIncident).where(BrandIncident.id == incident_id)
    inc = session.execute(q.with_for_update() if for_update else q).scalar_one_or_none() if 0 < incident_id < 2**62 else None
    if inc is None:
        raise IncidentNotFound(f"brand incident {incident_id} not found", field="incident_id")
    return inc


def _refs(session: Session, inc: BrandIncident) -> str:
    return ", ".join(session.execute(select(SupportCase.reference).join(BrandIncidentCase, BrandIncidentCase.case_id == SupportCase.id)
                                     .where(BrandIncidentCase.incident_id == inc.id).order_by(SupportCase.id)).scalars())


def _notify(session: Session, inc: BrandIncident, *, what: str, body: str, now: datetime, actor: Actor, key: str) -> list[int]:
    ctx = {"incident": {"reference": inc.reference, "title": inc.title, "state": inc.state, "severity": inc.severity, "owner": inc.owner,
                        "cases": _refs(session, inc)}, "what": what, "body": body}
    ids = [send(session, event=EVENT, account_id=None, to=e, context=ctx, now=now, actor=actor, category="service",
                idempotency_key=f"brand-incident:{inc.id}:{key}:{e}") for e in inc.stakeholders or []]
    events.record(session, now=now, actor=actor, entity_type="brand_incident", entity_id=inc.id, action="stakeholders_notified",
                  after={"what": what, "to": list(inc.stakeholders or []), "messages": ids})
    return ids


def raise_incident(session: Session, *, case_id: int, title: str, owner: str, stakeholders: list[str] | str, now: datetime, actor: Actor,
                   severity: int = 2) -> BrandIncident:
    """Raise a brand incident from a case flagged brand risk; the case is its first linked case and the stakeholders are
    told. Raises CaseNotFound, UnableToRaiseIncident (case not flagged or already in an open incident, no title, unknown or
    inactive owner, no stakeholder or a bad address, severity not 1-3)."""
    c = cm.get_case(session, case_id=case_id, for_update=True)
    if not c.brand_risk:
        raise UnableToRaiseIncident(f"case {c.reference} is not flagged as a brand risk; flag it first", field="case_id")
    title = (title or "").strip()
    if not title:
        raise UnableToRaiseIncident("give the incident a title", field="title")
    if severity not in (1, 2, 3):
        raise UnableToRaiseIncident("severity is 1 (highest), 2 or 3", field="severity")
    u = session.execute(select(User.username, User.active).where(User.username == (owner or "").strip())).one_or_none()
    if u is None or not u.active:
        raise UnableToRaiseIncident(f"'{owner}' is not an active staff user", field="owner")
    people = _emails(stakeholders)
    if not people:
        raise UnableToRaiseIncident("name at least one stakeholder to notify", field="stakeholders")
    open_one = session.execute(select(BrandIncident.reference).join(BrandIncidentCase, BrandIncidentCase.incident_id == BrandIncident.id)
                               .where(BrandIncidentCase.case_id == c.id, BrandIncident.state != "closed")).first()
    if open_one is not None:
        raise UnableToRaiseIncident(f"case {c.reference} is already in open brand incident {open_one[0]}", field="case_id")
    inc = BrandIncident(title=title, severity=severity, state=BRAND_INCIDENT.initial, owner=u.username, stakeholders=people, raised_from_case_id=c.id,
                        opened_at=now, opened_by=actor.name, updated_at=now)
    session.add(inc)
    session.flush()
    inc.reference = f"BI{inc.id:06d}"
    session.add(BrandIncidentCase(incident_id=inc.id, case_id=c.id, linked_at=now, linked_by=actor.name))
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="brand_incident", entity_id=inc.id, action="raised",
                  after={"reference": inc.reference, "title": title, "owner": inc.owner, "severity": severity, "case": c.reference, "stakeholders": people})
    cm.audit(session, c, now=now, actor=actor, action="brand_incident_raised", after={"incident": inc.reference})
    _notify(session, inc, what="raised", body=f"Raised from case {c.reference}: {c.subject}", now=now, actor=actor, key="raised")
    return inc


def link_case(session: Session, *, incident_id: int, case_reference: str, now: datetime, actor: Actor) -> None:
    """Link another case to an open incident. Raises IncidentNotFound, UnableToChangeIncident (closed, unknown case, already linked)."""
    inc = _incident(session, incident_id, for_update=True)
    if inc.state == "closed":
        raise UnableToChangeIncident(f"{inc.reference} is closed", field="state")
    try:
        c = cm.get_case_by_reference(session, reference=(case_reference or "").strip().upper())
    except NotFound:
        raise UnableToChangeIncident(f"no case '{case_reference}'", field="case_reference") from None
    if session.execute(select(BrandIncidentCase.id).where(BrandIncidentCase.incident_id == inc.id, BrandIncidentCase.case_id == c.id)).first():
        raise UnableToChangeIncident(f"case {c.reference} is already linked", field="case_reference")
    session.add(BrandIncidentCase(incident_id=inc.id, case_id=c.id, linked_at=now, linked_by=actor.name))
    inc.updated_at = now
    events.record(session, now=now, actor=actor, entity_type="brand_incident", entity_id=inc.id, action="case_linked", after={"case": c.reference})
    cm.audit(session, c, now=now, actor=actor, action="brand_incident_linked", after={"incident": inc.reference})


def add_update(session: Session, *, incident_id: int, body: str, now: datetime, actor: Actor, notify: bool = True) -> None:
    """A timeline entry (and, by default, an email to the stakeholders). Raises IncidentNotFound, UnableToChangeIncident."""
    inc = _incident(session, incident_id, for_update=True)
    body = (body or "").strip()
    if not body:
        raise UnableToChangeIncident("write the update", field="body")
    if inc.state == "closed":
        raise UnableToChangeIncident(f"{inc.reference} is closed", field="state")
    inc.updated_at = now
    events.record(session, now=now, actor=actor, entity_type="brand_incident", entity_id=inc.id, action="update", after={"body": body})
    if notify:
        n = int(session.execute(select(func.count(AuditEvent.id)).where(AuditEvent.entity_type == "brand_incident",
                                                                         AuditEvent.entity_id == str(inc.id))).scalar_one())
        _notify(session, inc, what="update", body=body, now=now, actor=actor, key=f"update{n}")


def transition(session: Session, *, incident_id: int, action: str, now: datetime, actor: Actor, summary: str | None = None,
               reason: str | None = None) -> list[str]:
    """contain, close (with a summary, told to the stakeholders) or reopen (with a reason). Raises IncidentNotFound,
    UnableToChangeIncident (close without a summary), TransitionNotAllowed, ActionNotPermitted, ReasonRequired."""
    inc = _incident(session, incident_id, for_update=True)
    summary = (summary or "").strip()
    if action == "close" and not summary:
        raise UnableToChangeIncident(f"close {inc.reference} with a summary of what happened and what was done", field="summary")
    nxt = lifecycle.transition(session, BRAND_INCIDENT, inc, action, now=now, actor=actor, reason=reason, label=f"brand incident {inc.reference}",
                               details={"summary": summary} if summary else None)
    inc.updated_at = now
    if action == "close":
        inc.summary, inc.closed_at = summary, now
    elif action == "reopen":
        inc.closed_at = None
    _notify(session, inc, what={"close": "closed", "contain": "contained", "reopen": "reopened"}.get(action, action),
            body=summary or reason or "", now=now, actor=actor, key=f"{action}:{now.isoformat()}")
    return nxt


def list_incidents(session: Session) -> list[dict[str, Any]]:
    n = dict(session.execute(select(BrandIncidentCase.incident_id, func.count(BrandIncidentCase.id)).group_by(BrandIncidentCase.incident_id)).all())
    return [{"id": i.id, "reference": i.reference, "title": i.title, "severity": i.severity, "state": i.state, "owner": i.owner, "cases": int(n.get(i.id, 0)),
             "opened_at": i.opened_at, "closed_at": i.closed_at}
            for i in session.execute(select(BrandIncident).order_by(BrandIncident.id.desc()).limit(200)).scalars()]


def detail(session: Session, *, incident_id: int, actor: Actor) -> dict[str, Any]:
    """Raises IncidentNotFound."""
    inc = _incident(session, incident_id)
    cases = [dict(r._mapping) for r in session.execute(
        select(SupportCase.id, SupportCase.reference, SupportCase.subject, SupportCase.state, BrandIncidentCase.linked_at)
        .join(BrandIncidentCase, BrandIncidentCase.case_id == SupportCase.id).where(BrandIncidentCase.incident_id == inc.id).order_by(BrandIncidentCase.id))]
    timeline = [{"at": e.occurred_at, "actor": e.actor, "action": e.action, "reason": e.reason, "after": e.after or {}} for e in session.execute(
        select(AuditEvent).where(AuditEvent.entity_type == "brand_incident", AuditEvent.entity_id == str(inc.id)).order_by(AuditEvent.id)).scalars()]
    return {"incident": {"id": inc.id, "reference": inc.reference, "title": inc.title, "severity": inc.severity, "state": inc.state, "owner": inc.owner,
                         "stakeholders": list(inc.stakeholders or []), "summary": inc.summary, "opened_at": inc.opened_at, "opened_by": inc.opened_by,
                         "closed_at": inc.closed_at, "raised_from_case_id": inc.raised_from_case_id},
            "cases": cases, "timeline": timeline, "actions": BRAND_INCIDENT.allowed_actions(inc.state, actor=actor)}


def seed_templates(session: Session, *, now: datetime) -> None:
    sample = {"incident": {"reference": "BI000001", "title": "Viral post about outage", "state": "open", "severity": 1, "owner": "service",
                           "cases": "CS00000042"}, "what": "raised", "body": "Raised from case CS00000042."}
    ensure_template(session, event=EVENT, channel="email", language="en", subject=TEMPLATE[0], body=TEMPLATE[1], now=now,
                    description="Cases: a brand incident update to its stakeholders", sample_context=sample)
