"""What the cancellations desk shows: the board (open journeys by step, SLA colour, filters, paging), the
coordinator's day plan (steps due today, at risk, overdue), a journey's detail with its checklist and timeline, the
account panel and the home-card counts. One query per section; the board reads only indexed columns of open journeys."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from opsline.cancellations.totals import CancellationJourneyTotal
from opsline.cancellations.models import (JOURNEY, OPEN_STATES, REASONS, REQUESTERS, STEP, STEP_LABELS, STEPS, CancellationJourney,
                                          CancellationStep, StepState)
from opsline.catalog.models import ProductOffering
from opsline.core import events
from opsline.core.events import Actor
from opsline.core.localtime import local_date
from opsline.core.money import Money
from opsline.customers.models import Account
from opsline.inventory.models import Product
from opsline.billing import final_account
from opsline.core.errors import OpslineError
from opsline.partners import exposure
from opsline.partners.models import Partner

PAGE = 50
CJ, CS = CancellationJourney, CancellationStep


def _aware(d: datetime | None, tz: ZoneInfo) -> datetime | None:
    if d is None:
        return None
    return (d if d.tzinfo else d.replace(tzinfo=ZoneInfo("UTC"))).astimezone(tz)


def sla_colour(due: datetime | None, at_risk: bool, now: datetime) -> str:
    """red: overdue; amber: flagged at risk or due within a day; green otherwise."""
    if due is None:
        return "green"
    if due.tzinfo is None:
        due = due.replace(tzinfo=now.tzinfo)
    if due < now:
        return "red"
    if at_risk or due < now + timedelta(hours=24):
        return "amber"
    return "green"


def _filters(*, partner: str | None, step: str | None, breaching: bool, reason: str | None, now: datetime) -> list[Any]:
    conds: list[Any] = [CJ.state.in_(OPEN_STATES)]
    if partner:
        conds.append(CJ.partner_code == partner)
    if step:
        conds.append(CJ.current_step == step)
    if reason:
        conds.append(CJ.reason_code == reason)
    if breaching:
        conds.append((CJ.next_due_at < now) | (CJ.at_risk.is_(True)))
    return conds


def _step_counts(session: Session, *, now: datetime, partner: str | None, step: str | None, reason: str | None,
                 breaching: bool) -> list[tuple[str, int, int, int]]:
    """Open journeys per current step (count, overdue, at risk) under the board's filters, without counting them one by
    one: the counts and the at-risk ones from the running totals (totals.py), the overdue ones (due before `now`) from an
    index range scan of the open journeys by next due time. Breaching = overdue or at risk: the at-risk ones plus the
    overdue ones not at risk."""
    JT = CancellationJourneyTotal
    tconds: list[Any] = [JT.open.is_(True)]
    oconds: list[Any] = [CJ.state.in_(OPEN_STATES), CJ.next_due_at < now]
    for col_t, col_j, value in ((JT.partner_code, CJ.partner_code, partner), (JT.current_step, CJ.current_step, step),
                                (JT.reason_code, CJ.reason_code, reason)):
        if value:
            tconds.append(col_t == value)
            oconds.append(col_j == value)
    kept = {(code or None): (int(n or 0), int(r or 0)) for code, n, r in session.execute(
        select(JT.current_step, func.sum(JT.n), func.sum(case((JT.at_risk.is_(True), JT.n), else_=0))).where(*tconds).group_by(JT.current_step))}
    late = {code: (int(n), int(nr or 0)) for code, n, nr in session.execute(
        select(CJ.current_step, func.count(), func.sum(case((CJ.at_risk.is_(True), 0), else_=1))).where(*oconds).group_by(CJ.current_step))}
    out = []
    for code in set(kept) | set(late):
        n, risk = kept.get(code, (0, 0))
        overdue, overdue_not_at_risk = late.get(code, (0, 0))
        out.append((code, risk + overdue_not_at_risk if breaching else n, overdue, risk))
    return [r for r in out if r[1]]


def board(session: Session, *, now: datetime, tz: ZoneInfo, partner: str | None = None, step: str | None = None, breaching: bool = False,
          reason: str | None = None, page: int = 1) -> dict[str, Any]:
    """Open journeys: a count per current step with how many are overdue / at risk (one grouped query), and one page
    of journeys, earliest due first (one query)."""
    conds = _filters(partner=partner, step=step, breaching=breaching, reason=reason, now=now)
    by_step = {code: {"code": code, "label": label, "count": 0, "overdue": 0, "at_risk": 0} for code, label, _ in STEPS}
    rows = _step_counts(session, now=now, partner=partner, step=step, reason=reason, breaching=breaching)
    total = 0
    for code, n, overdue, risk in rows:
        total += int(n)
        if code in by_step:
            by_step[code] |= {"count": int(n), "overdue": int(overdue or 0), "at_risk": int(risk or 0)}
    page = max(1, page)
    items = session.execute(
        select(CJ.id, CJ.reference, CJ.kind, CJ.account_id, Account.account_number, Account.name, CJ.partner_code, CJ.state, CJ.reason_code,
               CJ.current_step, CJ.next_due_at, CJ.at_risk, CJ.effective_date, CJ.created_at)
        .join(Account, Account.id == CJ.account_id).where(*conds)
        .order_by(CJ.next_due_at.asc().nulls_last(), CJ.id).offset((page - 1) * PAGE).limit(PAGE)).all()
    out = [{"id": r.id, "reference": r.reference, "kind": r.kind, "account_id": r.account_id, "account_number": r.account_number, "account_name": r.name,
            "partner_code": r.partner_code, "state": r.state, "reason": REASONS.get(r.reason_code, r.reason_code), "current_step": r.current_step,
            "step_label": STEP_LABELS.get(r.current_step or "", "—"), "due_at": _aware(r.next_due_at, tz), "at_risk": r.at_risk,
            "colour": sla_colour(_aware(r.next_due_at, tz), r.at_risk, now), "effective_date": r.effective_date} for r in items]
    return {"steps": list(by_step.values()), "total": total, "items": out, "page": page, "pages": max(1, -(-total // PAGE)),
            "filters": {"partner": partner or "", "step": step or "", "breaching": breaching, "reason": reason or ""},
            "partners": [p for (p,) in session.execute(select(Partner.code).where(Partner.kind == "fno").order_by(Partner.code))],
            "reasons": REASONS, "step_choices": [(c, lbl) for c, lbl, _ in STEPS]}


def day_plan(session: Session, *, now: datetime, tz: ZoneInfo, limit: int = 50) -> dict[str, Any]:
    """The coordinator's day: open steps overdue, due today, and flagged at risk (one query for the lot, split here)."""
    today = local_date(now, tz)
    start = datetime.combine(today, datetime.min.time(), tzinfo=tz)
    end = start + timedelta(days=1)
    rows = session.execute(
        select(CS.id, CS.code, CS.owner, CS.due_at, CS.at_risk, CJ.id.label("journey_id"), CJ.reference, CJ.account_id, CJ.partner_code)
        .join(CJ, CJ.id == CS.journey_id)
        .where(CS.state == StepState.OPEN, CS.due_at.is_not(None), (CS.due_at < end) | (CS.at_risk.is_(True)), CJ.state.in_(OPEN_STATES))
        .order_by(CS.due_at, CS.id).limit(limit * 3)).all()
    plan: dict[str, list[dict[str, Any]]] = {"overdue": [], "today": [], "at_risk": []}
    for r in rows:
        due = _aware(r.due_at, tz)
        item = {"step_id": r.id, "code": r.code, "label": STEP_LABELS[r.code], "owner": r.owner, "due_at": due, "journey_id": r.journey_id,
                "reference": r.reference, "account_id": r.account_id, "partner_code": r.partner_code}
        key = "overdue" if due is not None and due < now else ("today" if due is not None and due < end else "at_risk")
        if len(plan[key]) < limit:
            plan[key].append(item)
    return plan


def counts(session: Session, *, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """Home-card numbers in one query: running totals of open journeys, index range scans for what depends on the clock."""
    end = datetime.combine(local_date(now, tz) + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    JT = CancellationJourneyTotal
    opened = JT.open.is_(True)
    # one round trip: the running totals of open journeys; a range scan of the open journeys due before tomorrow
    # (index-only) for what depends on the clock; the oldest from its own index
    due_soon = [CJ.state.in_(OPEN_STATES), CJ.next_due_at < end]
    r = session.execute(select(
        select(func.sum(JT.n)).where(opened).scalar_subquery(),
        select(func.sum(JT.n)).where(opened, JT.at_risk.is_(True)).scalar_subquery(),
        select(func.sum(JT.n)).where(opened, JT.current_step == "fno_deactivation").scalar_subquery(),
        select(func.count()).where(*due_soon, CJ.next_due_at < now).scalar_subquery(),
        select(func.count()).where(*due_soon, CJ.next_due_at >= now).scalar_subquery(),
        select(func.count()).where(*due_soon, CJ.next_due_at < now, CJ.current_step == "fno_deactivation").scalar_subquery(),
        select(func.min(CJ.created_at)).where(CJ.state.in_(OPEN_STATES)).scalar_subquery())).one()
    kept, soon, oldest = (r[0], r[1], r[2]), (r[3], r[4], r[5]), r[6]
    return {"open": int(kept[0] or 0), "overdue": int(soon[0] or 0), "at_risk": int(kept[1] or 0), "due_today": int(soon[1] or 0),
            "at_fno": int(kept[2] or 0), "fno_late": int(soon[2] or 0), "oldest": oldest}


def detail(session: Session, *, journey_id: int, now: datetime, tz: ZoneInfo, actor: Actor | None = None) -> dict[str, Any]:
    """A journey with its checklist, amounts, references and timeline. Raises JourneyNotFound."""
    from opsline.cancellations.service import get_journey

    j = get_journey(session, journey_id=journey_id)
    acc = session.execute(select(Account.account_number, Account.name, Account.segment_code).where(Account.id == j.account_id)).one()
    prod = session.execute(select(Product.id, Product.state, Product.partner_line_ref, Product.contract_end_date, Product.end_date, ProductOffering.name)
                           .join(ProductOffering, ProductOffering.id == Product.offering_id).where(Product.id == j.product_id)).one()
    steps = session.execute(select(CS).where(CS.journey_id == j.id).order_by(CS.position)).scalars().all()
    step_rows = [{"id": s.id, "code": s.code, "label": STEP_LABELS[s.code], "owner": s.owner, "state": s.state, "due_at": _aware(s.due_at, tz),
                  "at_risk": s.at_risk, "done_at": _aware(s.done_at, tz), "done_by": s.done_by, "note": s.note,
                  "colour": "done" if s.state != StepState.OPEN else sla_colour(_aware(s.due_at, tz), s.at_risk, now),
                  "buttons": STEP.buttons(s.state, actor=actor) if s.code in ("retention", "equipment", "final_account", "customer_notified") else []}
                 for s in steps]
    step_ids = [str(s.id) for s in steps]
    timeline = session.execute(select(events.AuditEvent).where(
        ((events.AuditEvent.entity_type == JOURNEY.name) & (events.AuditEvent.entity_id == str(j.id)))
        | ((events.AuditEvent.entity_type == STEP.name) & (events.AuditEvent.entity_id.in_(step_ids))))
        .order_by(events.AuditEvent.occurred_at.desc(), events.AuditEvent.id.desc()).limit(100)).scalars().all()
    fee_exposure = None
    if j.service_order_id is not None and j.kind == "cancellation":
        fee_exposure = exposure.order_exposure(session, service_order_id=j.service_order_id, today=local_date(now, tz))
    relocation = None
    if j.kind == "relocation" and (j.fno_confirmed_date or j.effective_date):
        try:
            relocation = final_account.relocation_plan(session, old_product_id=j.product_id, new_start_date=j.fno_confirmed_date or j.effective_date)
        except OpslineError as exc:
            relocation = {"error": str(exc)}
    return {
        "relocation": relocation,
        "fee_exposure": fee_exposure,
        "id": j.id, "reference": j.reference, "kind": j.kind, "state": j.state, "account_id": j.account_id, "account_number": acc.account_number,
        "account_name": acc.name, "segment": acc.segment_code, "product_id": j.product_id, "product_name": prod.name, "product_state": prod.state,
        "line_ref": prod.partner_line_ref, "contract_end_date": prod.contract_end_date, "product_end_date": prod.end_date,
        "partner_code": j.partner_code, "reason": REASONS.get(j.reason_code, j.reason_code), "requester": REQUESTERS.get(j.requester, j.requester),
        "requester_name": j.requester_name, "documents": j.documents, "channel": j.channel, "case_id": j.case_id, "notes": j.notes,
        "notice_date": j.notice_date, "requested_date": j.requested_date, "effective_date": j.effective_date,
        "last_day": j.effective_date - timedelta(days=1) if j.effective_date else None, "juristic": j.juristic, "cpa_applies": j.cpa_applies,
        "date_explanation": j.date_explanation, "etf": Money.from_minor(j.etf_minor, j.etf_currency) if j.etf_minor and j.etf_currency else None,
        "etf_waiver_reason": j.etf_waiver_reason, "retention_outcome": j.retention_outcome, "retention_offer": j.retention_offer,
        "retention_order_id": j.retention_order_id, "order_id": j.order_id, "service_order_id": j.service_order_id, "fno_due_date": j.fno_due_date,
        "fno_confirmed_date": j.fno_confirmed_date, "at_risk": j.at_risk, "state_reason": j.state_reason, "created_by": j.created_by,
        "created_at": _aware(j.created_at, tz), "closed_at": _aware(j.closed_at, tz), "new_site_id": j.new_site_id,
        "open": j.state in OPEN_STATES, "steps": step_rows, "open_steps": [s["label"] for s in step_rows if s["state"] == StepState.OPEN],
        "buttons": JOURNEY.buttons(j.state, actor=actor),
        "timeline": [{"at": _aware(e.occurred_at, tz), "actor": e.actor, "entity": e.entity_type, "action": e.action, "reason": e.reason,
                      "after": e.after} for e in timeline],
    }


def account_panel(session: Session, *, account_id: int, now: datetime, **_: Any) -> dict[str, Any]:
    """The account page's Cancellations panel: the account's journeys and its live products (the "Cancel service" action)."""
    journeys = session.execute(select(CJ.id, CJ.reference, CJ.kind, CJ.state, CJ.product_id, CJ.effective_date, CJ.current_step, CJ.created_at)
                               .where(CJ.account_id == account_id).order_by(CJ.id.desc()).limit(20)).all()
    live = session.execute(select(Product.id, ProductOffering.name, Product.state).join(ProductOffering, ProductOffering.id == Product.offering_id)
                           .where(Product.account_id == account_id, Product.state.in_(("active", "suspended"))).order_by(Product.id)).all()
    busy = {r.product_id for r in journeys if r.state in OPEN_STATES}
    return {"account_id": account_id,
            "journeys": [{"id": r.id, "reference": r.reference, "kind": r.kind, "state": r.state, "product_id": r.product_id,
                          "effective_date": r.effective_date, "step": STEP_LABELS.get(r.current_step or "", "")} for r in journeys],
            "products": [{"id": r.id, "name": r.name, "state": r.state, "busy": r.id in busy} for r in live]}


def new_form(session: Session, *, account_id: int) -> dict[str, Any]:
    """The account and its live products, for the new-journey page. Raises AccountNotFound."""
    from opsline.customers import service as customers

    acc = customers.get_account(session, account_id=account_id)
    live = session.execute(select(Product.id, ProductOffering.name, Product.state, Product.partner_code, Product.contract_end_date, Product.site_id)
                           .join(ProductOffering, ProductOffering.id == Product.offering_id)
                           .where(Product.account_id == account_id, Product.state.in_(("active", "suspended"))).order_by(Product.id)).all()
    from opsline.customers.models import Site

    sites = session.execute(select(Site.id, Site.line1, Site.city).where(Site.account_id == account_id).order_by(Site.id)).all()
    return {"account": {"id": acc.id, "account_number": acc.account_number, "name": acc.name, "kind": acc.kind},
            "products": [{"id": r.id, "name": r.name, "state": r.state, "partner_code": r.partner_code, "contract_end_date": r.contract_end_date,
                          "site_id": r.site_id} for r in live],
            "sites": [{"id": s.id, "label": f"{s.line1}, {s.city}"} for s in sites], "reasons": REASONS, "requesters": REQUESTERS}


def today_of(now: datetime, tz: ZoneInfo) -> date:
    return local_date(now, tz)
