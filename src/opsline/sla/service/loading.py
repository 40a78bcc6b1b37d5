"""What the SLA engine reads before computing: cases and their histories (cases' tables, read-only), queues, site
timezones, contracts, calendars. Set-based, in chunks."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import case, func, null, or_, select
from sqlalchemy.orm import Session

from opsline.cases.models import CaseEvent, Queue, SupportCase
from opsline.customers.models import Site
from opsline.sla.clocks import Event
from opsline.sla.models import BusinessCalendarRow, SlaCase, SlaContract
from opsline.sla.service.common import id_filters


@dataclass
class CaseRow:
    id: int
    account_id: int | None
    category_code: str | None
    channel: str | None
    state: str
    priority: int
    value_tier_code: str | None
    queue_id: int | None
    partner: str | None
    sla_policy_id: int | None


def load_cases(session: Session, case_ids: Sequence[int]) -> dict[int, CaseRow]:
    C = SupportCase
    out: dict[int, CaseRow] = {}
    for cond in id_filters(session, C.id, case_ids):
        for r in session.execute(select(C.id, C.account_id, C.category_code, C.channel, C.state, C.priority, C.value_tier_code, C.queue_id,
                                        C.third_party_partner_code, C.sla_policy_id).where(cond)):
            out[r[0]] = CaseRow(*r)
    return out


def load_events(session: Session, case_ids: Sequence[int]) -> dict[int, list[Event]]:
    """Each case's history as the replay reads it, in order. Only what the replay uses of `data` is read: the
    whole object for state changes (the partner) and notes (visibility), the queue of 'opened'; nothing for
    the rest (parsing every row's JSON was a third of the read)."""
    E = CaseEvent
    out: dict[int, list[Event]] = defaultdict(list)
    data = case((E.kind.in_(("state", "note")), E.data), else_=null())
    opened_queue = case((E.kind == "opened", E.data["queue"].as_string()), else_=null())
    for cond in id_filters(session, E.case_id, case_ids):
        q = select(E.case_id, E.at, E.kind, E.from_value, E.to_value, data, opened_queue).where(cond, E.kind != "policy").order_by(E.case_id, E.at, E.id)
        for cid, at, kind, fv, tv, d, queue in session.execute(q):
            out[cid].append(Event(at=at, kind=kind, from_value=fv, to_value=tv, data={"queue": queue} if queue is not None else d))
    return out


def load_queues(session: Session) -> dict[int, dict[str, Any]]:
    return {r.id: {"id": r.id, "code": r.code, "name": r.name, "calendar_code": r.calendar_code, "manager_user_id": r.manager_user_id, "is_escalation": r.is_escalation}
            for r in session.execute(select(Queue.id, Queue.code, Queue.name, Queue.calendar_code, Queue.manager_user_id, Queue.is_escalation))}


def normalise_queue_events(evs: list[Event], by_code: dict[str, int]) -> list[Event]:
    """Queue events may name queues by id or code; the replay keys team clocks by queue id."""
    out = []
    for e in evs:
        if e.kind == "queue":
            fv = str(by_code.get(e.from_value, e.from_value)) if e.from_value else None
            tv = str(by_code.get(e.to_value, e.to_value)) if e.to_value else None
            e = Event(at=e.at, kind=e.kind, from_value=fv, to_value=tv, data=e.data)
        out.append(e)
    return out


def site_timezones(session: Session, account_ids: Iterable[int]) -> dict[int, str]:
    ids = sorted({int(a) for a in account_ids if a is not None})
    out: dict[int, str] = {}
    for cond in id_filters(session, Site.account_id, ids):
        for acc, tz in session.execute(select(Site.account_id, func.min(Site.timezone)).where(cond, Site.timezone.is_not(None)).group_by(Site.account_id)):
            out[int(acc)] = tz
    return out


def contracts(session: Session, account_ids: Iterable[int], *, today: date) -> dict[int, tuple[int, dict[str, Any]]]:
    ids = sorted({int(a) for a in account_ids if a is not None})
    out: dict[int, tuple[int, dict[str, Any]]] = {}
    for cond in id_filters(session, SlaContract.account_id, ids):
        q = select(SlaContract.account_id, SlaContract.id, SlaContract.overrides).where(
            cond, SlaContract.valid_from <= today, or_(SlaContract.valid_to.is_(None), SlaContract.valid_to > today)
        ).order_by(SlaContract.id)
        for acc, cid, overrides in session.execute(q):
            out.setdefault(int(acc), (int(cid), dict(overrides or {})))
    return out


def pinned_policies(session: Session, case_ids: Sequence[int]) -> dict[int, int | None]:
    out: dict[int, int | None] = {}
    for cond in id_filters(session, SlaCase.case_id, case_ids):
        out.update(dict(session.execute(select(SlaCase.case_id, SlaCase.policy_id).where(SlaCase.pinned.is_(True), cond)).tuples().all()))
    return out


def calendar_data(session: Session) -> dict[str, dict[str, Any]]:
    return {r.code: dict(r.data) for r in session.execute(select(BusinessCalendarRow.code, BusinessCalendarRow.data))}
