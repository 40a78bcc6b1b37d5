"""Cancellations reports: journeys by reason and month (chart), retention rate, SLA compliance per checklist step,
the breach list (steps done late or still open past their due time, with the cause recorded on the step), and the
FNO deactivation lead times. One grouped query per section; exports go through core/exports."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from opsline.cancellations.models import REASONS, STEP_LABELS, STEPS, CancellationJourney, CancellationStep
from opsline.customers.models import Account

CJ, CS = CancellationJourney, CancellationStep
COLOURS = ["#0b5fff", "#137a3f", "#b36b00", "#c0262d", "#5b21b6", "#0e7490", "#9d174d", "#4d7c0f", "#6b7280"]


def _start(d: date) -> datetime:
    return datetime.combine(d, datetime.min.time(), tzinfo=ZoneInfo("UTC"))


def _month(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def by_reason_month(session: Session, *, since: date) -> dict[str, Any]:
    """Journeys opened per notice month and reason (one grouped query), as a table and a stacked bar chart."""
    rows = session.execute(select(CJ.notice_date, CJ.reason_code, func.count()).where(CJ.notice_date >= since, CJ.kind == "cancellation")
                           .group_by(CJ.notice_date, CJ.reason_code)).all()
    table: dict[str, dict[str, int]] = {}
    for d, reason, n in rows:
        m = _month(d)
        table.setdefault(m, {})
        table[m][reason] = table[m].get(reason, 0) + int(n)
    months = sorted(table)
    datasets = [{"label": label, "data": [table[m].get(code, 0) for m in months], "backgroundColor": COLOURS[i % len(COLOURS)]}
                for i, (code, label) in enumerate(REASONS.items()) if any(table[m].get(code) for m in months)]
    chart = {"type": "bar", "data": {"labels": months, "datasets": datasets},
             "options": {"responsive": True, "maintainAspectRatio": False, "scales": {"x": {"stacked": True}, "y": {"stacked": True}}}} if months else None
    return {"months": months, "reasons": REASONS, "table": table, "chart": chart}


def retention(session: Session, *, since: date) -> dict[str, Any]:
    """Retention outcomes of journeys opened since `since`: offered (declined or accepted), retained, skipped."""
    r = session.execute(select(func.count(), func.sum(case((CJ.retention_outcome == "accepted", 1), else_=0)),
                               func.sum(case((CJ.retention_outcome == "declined", 1), else_=0)),
                               func.sum(case((CJ.retention_outcome == "skipped", 1), else_=0)))
                        .where(CJ.notice_date >= since, CJ.kind == "cancellation")).one()
    total, accepted, declined, skipped = int(r[0]), int(r[1] or 0), int(r[2] or 0), int(r[3] or 0)
    offered = accepted + declined
    return {"total": total, "accepted": accepted, "declined": declined, "skipped": skipped, "offered": offered,
            "rate": round(100 * accepted / offered, 1) if offered else None}


def sla_per_step(session: Session, *, since: date, now: datetime) -> list[dict[str, Any]]:
    """Per step due since `since`: done on time, done late, open overdue, open in time (one grouped query)."""
    late = CS.done_at > CS.due_at
    rows = session.execute(
        select(CS.code, func.sum(case((CS.state == "done", 1), else_=0)),
               func.sum(case(((CS.state == "done") & CS.due_at.is_not(None) & late, 1), else_=0)),
               func.sum(case(((CS.state == "open") & CS.due_at.is_not(None) & (CS.due_at < now), 1), else_=0)),
               func.sum(case((CS.state == "open", 1), else_=0)))
        .where(CS.due_at >= _start(since)).group_by(CS.code)).all()
    by = {code: (int(d or 0), int(lt or 0), int(od or 0), int(op or 0)) for code, d, lt, od, op in rows}
    out = []
    for code, label, _ in STEPS:
        done, done_late, overdue, open_ = by.get(code, (0, 0, 0, 0))
        measured = done + overdue
        out.append({"code": code, "label": label, "done": done, "done_late": done_late, "open": open_, "overdue": overdue,
                    "compliance": round(100 * (done - done_late) / measured, 1) if measured else None})
    return out


def breaches(session: Session, *, since: date, now: datetime, tz: ZoneInfo, limit: int = 200) -> list[dict[str, Any]]:
    """Steps done after their due time or still open past it, latest due first, with the cause noted on the step."""
    late = (CS.due_at.is_not(None)) & (((CS.state == "done") & (CS.done_at > CS.due_at)) | ((CS.state == "open") & (CS.due_at < now)))
    rows = session.execute(select(CS.id, CS.code, CS.owner, CS.state, CS.due_at, CS.done_at, CS.note, CJ.id.label("journey_id"), CJ.reference,
                                  CJ.partner_code, CJ.account_id, Account.account_number)
                           .join(CJ, CJ.id == CS.journey_id).join(Account, Account.id == CJ.account_id)
                           .where(late, CS.due_at >= _start(since), CS.due_at < now).order_by(CS.due_at.desc(), CS.id).limit(limit)).all()

    def aware(d: datetime | None) -> datetime | None:
        return None if d is None else (d if d.tzinfo else d.replace(tzinfo=ZoneInfo("UTC"))).astimezone(tz)

    out = []
    for r in rows:
        due, done = aware(r.due_at), aware(r.done_at)
        end = done or now.astimezone(tz)
        hours = int((end - due).total_seconds() // 3600) if due else 0
        out.append({"step_id": r.id, "code": r.code, "label": STEP_LABELS[r.code], "owner": r.owner, "state": r.state, "due_at": due, "done_at": done,
                    "late_hours": hours, "cause": r.note or "", "journey_id": r.journey_id, "reference": r.reference, "partner_code": r.partner_code,
                    "account_id": r.account_id, "account_number": r.account_number})
    return out


def fno_lead_times(session: Session, *, since: date) -> list[dict[str, Any]]:
    """Per FNO: deactivations confirmed, confirmed after their due date (and the days beyond it), waiting."""
    rows = session.execute(select(CJ.partner_code, func.count(CJ.fno_confirmed_date),
                                  func.sum(case((CJ.fno_confirmed_date > CJ.fno_due_date, 1), else_=0)),
                                  func.sum(case((CJ.fno_confirmed_date.is_(None) & CJ.service_order_id.is_not(None) & CJ.state.in_(("deactivation_sent",)), 1),
                                                else_=0)))
                           .where(CJ.partner_code.is_not(None), CJ.notice_date >= since).group_by(CJ.partner_code).order_by(CJ.partner_code)).all()
    return [{"partner_code": p, "confirmed": int(c or 0), "late": int(lt or 0), "waiting": int(w or 0)} for p, c, lt, w in rows]


def _since(now: datetime, tz: ZoneInfo, months: int) -> date:
    today = now.astimezone(tz).date()
    return (today.replace(day=1) - timedelta(days=31 * (months - 1))).replace(day=1)


def report(session: Session, *, now: datetime, tz: ZoneInfo, months: int = 12, sections: tuple[str, ...] = ("volume", "sla")) -> dict[str, Any]:
    """The report page's sections: "volume" (by reason and month, retention, FNO deactivations) and "sla" (compliance
    per step and the breaches). The two pages each read only their sections."""
    since = _since(now, tz, months)
    out: dict[str, Any] = {"since": since, "sections": sections}
    if "volume" in sections:
        out |= {"by_reason": by_reason_month(session, since=since), "retention": retention(session, since=since), "fno": fno_lead_times(session, since=since)}
    if "sla" in sections:
        out |= {"sla": sla_per_step(session, since=since, now=now), "breaches": breaches(session, since=since, now=now, tz=tz)}
    return out
