"""Cancellations reports: journeys by reason and month (chart), retention rate, SLA compliance per checklist step,
the breach list and breaches per cause code (recorded on the step, or inferred from it) with their prevention actions,
FNO deactivation lead times, leakage (line fees paid to FNOs after effective dates, from partners.exposure) and
equipment recovery (loaned devices due back, returned, value outstanding). One grouped query per section; exports
go through core/exports."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select, text, union_all
from sqlalchemy.orm import Session

from opsline.cancellations import prevention
from opsline.cancellations.models import REASONS, STEP_LABELS, STEPS, CancellationJourney, CancellationStep
from opsline.cancellations.prevention import CancellationBreachCause
from opsline.cancellations.totals import CancellationJourneyTotal, CancellationStepTotal
from opsline.core.localtime import local_date
from opsline.core.money import Money
from opsline.customers.models import Account
from opsline.partners import exposure

CJ, CS = CancellationJourney, CancellationStep
COLOURS = ["#0b5fff", "#137a3f", "#b36b00", "#c0262d", "#5b21b6", "#0e7490", "#9d174d", "#4d7c0f", "#6b7280"]


def _start(d: date) -> datetime:
    return datetime.combine(d, datetime.min.time(), tzinfo=ZoneInfo("UTC"))


def _month(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def _journey_totals(session: Session, *, since: date) -> list[Any]:
    """Journeys with a notice since `since` (a month's first day), summed from the running totals (totals.py) per
    kind, notice month, reason, retention outcome and FNO with its deactivation confirmed / late / waiting."""
    if since.day != 1:
        raise ValueError("the volume report starts on a month's first day")
    JT = CancellationJourneyTotal
    return list(session.execute(select(JT.kind, JT.month, JT.reason_code, JT.retention_outcome, JT.partner_code, JT.fno_confirmed, JT.fno_late,
                                       JT.fno_waiting, func.sum(JT.n))
                                .where(JT.month >= since)
                                .group_by(JT.kind, JT.month, JT.reason_code, JT.retention_outcome, JT.partner_code, JT.fno_confirmed, JT.fno_late,
                                          JT.fno_waiting)).all())


def by_reason_month(session: Session, *, since: date, rows: list[Any] | None = None) -> dict[str, Any]:
    """Journeys opened per notice month and reason (from the running totals), as a table and a stacked bar chart."""
    table: dict[str, dict[str, int]] = {}
    for kind, month, reason, *_, n in rows if rows is not None else _journey_totals(session, since=since):
        if kind != "cancellation" or not n:
            continue
        m = _month(month)
        table.setdefault(m, {})
        table[m][reason] = table[m].get(reason, 0) + int(n)
    months = sorted(table)
    datasets = [{"label": label, "data": [table[m].get(code, 0) for m in months], "backgroundColor": COLOURS[i % len(COLOURS)]}
                for i, (code, label) in enumerate(REASONS.items()) if any(table[m].get(code) for m in months)]
    chart = {"type": "bar", "data": {"labels": months, "datasets": datasets},
             "options": {"responsive": True, "maintainAspectRatio": False, "scales": {"x": {"stacked": True}, "y": {"stacked": True}}}} if months else None
    return {"months": months, "reasons": REASONS, "table": table, "chart": chart}


def retention(session: Session, *, since: date, rows: list[Any] | None = None) -> dict[str, Any]:
    """Retention outcomes of journeys opened since `since`: offered (declined or accepted), retained, skipped."""
    by: dict[str, int] = {}
    for kind, _m, _r, outcome, *_, n in rows if rows is not None else _journey_totals(session, since=since):
        if kind == "cancellation":
            by[outcome] = by.get(outcome, 0) + int(n)
    total, accepted, declined, skipped = sum(by.values()), by.get("accepted", 0), by.get("declined", 0), by.get("skipped", 0)
    offered = accepted + declined
    return {"total": total, "accepted": accepted, "declined": declined, "skipped": skipped, "offered": offered,
            "rate": round(100 * accepted / offered, 1) if offered else None}


def _sla_groups(session: Session, *, since: date, now: datetime) -> list[Any]:
    """The SLA sections' figures: rows (code, state, late, overdue, cause, n); the rows in time carry late = overdue = 0.

    Read from the running totals (totals.py: steps per UTC due date, code, state and done-late flag), so the cost does
    not grow with the steps: per (step, state) the steps due since `since`, and the late ones due on whole days before
    today (done late; open, hence overdue); today's part up to `now` from the steps' own partial indexes; the causes
    from the few steps that have one recorded (the rest take the cause inferred from their step). Equal, row for row
    in what the sections show, to counting the steps themselves (tests/integration/test_cancellations_totals.py)."""
    start = _start(since)
    today = now.astimezone(ZoneInfo("UTC")).date()
    ST = CancellationStepTotal
    is_late = ((ST.state == "done") & ST.late.is_(True)) | (ST.state == "open")
    rows = session.execute(select(ST.code, ST.state, func.sum(ST.n), func.sum(case((is_late & (ST.due_date < today), ST.n), else_=0)))
                           .where(ST.due_date >= since).group_by(ST.code, ST.state)).all()
    totals = {(code, state): int(n or 0) for code, state, n, _ in rows}
    late_n = {(code, state): int(n or 0) for code, state, _, n in rows}
    # today so far: the steps themselves (a few hours of due times, index range scans)
    part = _late_steps(since=since, now=now, start_at=max(start, _start(today)))
    for code, state, n in session.execute(select(part.c.code, part.c.state, func.count()).group_by(part.c.code, part.c.state)):
        late_n[(code, state)] = late_n.get((code, state), 0) + int(n)
    # recorded causes: a join from the (few) recorded causes to their steps, kept when the step is late in the window
    BC = CancellationBreachCause
    recorded = session.execute(select(CS.code, CS.state, BC.cause_code, func.count()).join(CS, CS.id == BC.step_id)
                               .where(CS.due_at >= start, CS.due_at < now, ((CS.state == "done") & (CS.done_at > CS.due_at)) | (CS.state == "open"))
                               .group_by(CS.code, CS.state, BC.cause_code)).all()
    out: list[Any] = [(code, state, 0, 0, None, n - late_n.get((code, state), 0)) for (code, state), n in totals.items()]
    inferred = dict(late_n)
    for code, state, c, n in recorded:
        inferred[(code, state)] -= int(n)
        out.append((code, state, 1 if state == "done" else 0, 1 if state == "open" else 0, c, int(n)))
    for (code, state), n in inferred.items():
        if n:
            out.append((code, state, 1 if state == "done" else 0, 1 if state == "open" else 0, prevention.INFERRED_CAUSE.get(code), n))
    return out


def _sla_groups_counted(session: Session, *, since: date, now: datetime) -> list[Any]:
    """The same figures as _sla_groups counted from every step (the definition; the tests compare the two)."""
    totals = session.execute(select(CS.code, CS.state, func.count()).where(CS.due_at >= _start(since)).group_by(CS.code, CS.state)).all()
    late = _late_steps(since=since, now=now)
    cause = prevention.cause_expr(late.c.code).label("cause")
    late_rows = session.execute(select(late.c.code, late.c.state, cause, func.count()).select_from(late)
                                .outerjoin(CancellationBreachCause, CancellationBreachCause.step_id == late.c.id)
                                .group_by(late.c.code, late.c.state, cause)).all()
    late_n: dict[tuple[str, str], int] = {}
    for code, state, _c, n in late_rows:
        late_n[(code, state)] = late_n.get((code, state), 0) + int(n)
    out: list[Any] = [(code, state, 0, 0, None, int(n) - late_n.get((code, state), 0)) for code, state, n in totals]
    for code, state, c, n in late_rows:
        out.append((code, state, 1 if state == "done" else 0, 1 if state == "open" else 0, c, int(n)))
    return out


def sla_per_step(session: Session, *, since: date, now: datetime, groups: list[Any] | None = None) -> list[dict[str, Any]]:
    """Per step due since `since`: done on time, done late, open overdue, open in time (one grouped query)."""
    by: dict[str, list[int]] = {}
    for code, state, late, overdue, _cause, n in groups if groups is not None else _sla_groups(session, since=since, now=now):
        v = by.setdefault(code, [0, 0, 0, 0])
        if state == "done":
            v[0] += int(n)
            v[1] += int(n) if late else 0
        elif state == "open":
            v[3] += int(n)
            v[2] += int(n) if overdue else 0
    out = []
    for code, label, _ in STEPS:
        done, done_late, overdue, open_ = by.get(code, (0, 0, 0, 0))
        measured = done + overdue
        out.append({"code": code, "label": label, "done": done, "done_late": done_late, "open": open_, "overdue": overdue,
                    "compliance": round(100 * (done - done_late) / measured, 1) if measured else None})
    return out


def _late_steps(*, since: date, now: datetime, start_at: datetime | None = None) -> Any:
    """Subquery (id, code, state, due_at) of the steps in breach, due in [since, now) (or [start_at, now)): done after
    their due time, or still open past it. Each half reads only its own partial index (index-only)."""
    start = start_at or _start(since)
    done_late = select(CS.id, CS.code, CS.state, CS.due_at).where(CS.state == "done", CS.done_at > CS.due_at, CS.due_at >= start, CS.due_at < now)
    overdue = select(CS.id, CS.code, CS.state, CS.due_at).where(CS.state == "open", CS.due_at >= start, CS.due_at < now)
    return union_all(done_late, overdue).subquery("late")


def _late(now: datetime) -> Any:
    return (CS.due_at.is_not(None)) & (((CS.state == "done") & (CS.done_at > CS.due_at)) | ((CS.state == "open") & (CS.due_at < now)))


def _late_page(*, since: date, now: datetime, cause: str | None, keep: int) -> Any:
    """Subquery (id, due_at): the latest `keep` breached steps of one cause (None: all; "none": not yet analysed), as
    a union of short branches that each read one partial index backwards, newest first, and stop after `keep` rows:
    done late / open overdue, each split into the steps whose cause is inferred from their step (no cause recorded)
    and those with the cause recorded (from the recorded causes' own index)."""
    start = _start(since)
    BC = CancellationBreachCause
    no_recorded = ~select(BC.id).where(BC.step_id == CS.id).exists()
    branches = []
    for late in ((CS.state == "done") & (CS.done_at > CS.due_at), CS.state == "open"):
        base = select(CS.id, CS.due_at).where(late, CS.due_at >= start, CS.due_at < now)
        if cause is None:
            parts = [base]
        elif cause == "none":
            parts = [base.where(CS.code.not_in(tuple(prevention.INFERRED_CAUSE)), no_recorded)]
        else:
            codes = tuple(code for code, c in prevention.INFERRED_CAUSE.items() if c == cause)
            parts = ([base.where(CS.code.in_(codes), no_recorded)] if codes else []) + [base.join(BC, BC.step_id == CS.id).where(BC.cause_code == cause)]
        for q in parts:
            sub = q.order_by(CS.due_at.desc(), CS.id.desc()).limit(keep).subquery()
            branches.append(select(sub.c.id, sub.c.due_at))
    return union_all(*branches).subquery("late_page")


def breaches(session: Session, *, since: date, now: datetime, tz: ZoneInfo, limit: int = 200, cause: str | None = None, offset: int = 0) -> list[dict[str, Any]]:
    """Steps done after their due time or still open past it, latest due first, with their cause code (recorded, or
    inferred from the step) and the note on the step. `cause` keeps one cause ("none": not yet analysed)."""
    BC = CancellationBreachCause
    page = _late_page(since=since, now=now, cause=cause, keep=offset + limit)
    page = select(page.c.id).order_by(page.c.due_at.desc(), page.c.id.desc()).offset(offset).limit(limit).subquery("page")
    rows = session.execute(select(page.c.id, prevention.cause_expr(CS.code).label("cause_code"), BC.cause_code.label("recorded"),
                                  BC.note.label("cause_note"), CS.code, CS.owner, CS.state, CS.due_at, CS.done_at,
                                  CS.note, CS.journey_id, CJ.reference, CJ.partner_code, CJ.account_id, Account.account_number)
                           .join(CS, CS.id == page.c.id).outerjoin(BC, BC.step_id == CS.id).join(CJ, CJ.id == CS.journey_id)
                           .join(Account, Account.id == CJ.account_id)
                           .order_by(CS.due_at.desc(), CS.id.desc())).all()

    def aware(d: datetime | None) -> datetime | None:
        return None if d is None else (d if d.tzinfo else d.replace(tzinfo=ZoneInfo("UTC"))).astimezone(tz)

    out = []
    for r in rows:
        due, done = aware(r.due_at), aware(r.done_at)
        end = done or now.astimezone(tz)
        hours = int((end - due).total_seconds() // 3600) if due else 0
        out.append({"step_id": r.id, "code": r.code, "label": STEP_LABELS[r.code], "owner": r.owner, "state": r.state, "due_at": due, "done_at": done,
                    "late_hours": hours, "cause": r.cause_note or r.note or "", "cause_code": r.cause_code, "cause_recorded": r.recorded is not None,
                    "journey_id": r.journey_id, "reference": r.reference, "partner_code": r.partner_code,
                    "account_id": r.account_id, "account_number": r.account_number})
    return out


def breaches_by_cause(session: Session, *, since: date, now: datetime, today: date, groups: list[Any] | None = None) -> dict[str, Any]:
    """Breaches since `since` per cause code (one grouped query, shared with the compliance section): how many, still
    open, per step; with each cause's open and overdue prevention actions (one grouped query) and a chart."""
    rows = [(cause, code, n, n if state == "open" else 0)
            for code, state, late, overdue, cause, n in (groups if groups is not None else _sla_groups(session, since=since, now=now)) if late or overdue]
    names = {c["code"]: c for c in prevention.causes(session)}
    acts = prevention.action_counts(session, today=today)
    by: dict[str, dict[str, Any]] = {}
    for code, step, n, open_ in rows:
        key = code or "none"
        c = by.setdefault(key, {"cause_code": key, "cause": names[code]["name"] if code in names else "Not yet analysed",
                                "controllable": names[code]["controllable"] if code in names else None, "count": 0, "open": 0, "steps": {}})
        c["count"] += int(n)
        c["open"] += int(open_ or 0)
        c["steps"][STEP_LABELS.get(step, step)] = c["steps"].get(STEP_LABELS.get(step, step), 0) + int(n)
    for code, a in acts["by_cause"].items():
        by.setdefault(code, {"cause_code": code, "cause": names[code]["name"] if code in names else code, "controllable": names.get(code, {}).get("controllable"),
                             "count": 0, "open": 0, "steps": {}})
    items = sorted(by.values(), key=lambda c: (-c["count"], c["cause"]))
    for c in items:
        a = acts["by_cause"].get(c["cause_code"], {"open": 0, "overdue": 0})
        c["actions_open"], c["actions_overdue"] = a["open"], a["overdue"]
    shown = [c for c in items if c["count"]]
    chart = {"type": "bar", "data": {"labels": [c["cause"] for c in shown],
                                     "datasets": [{"label": "Breaches", "data": [c["count"] for c in shown], "backgroundColor": COLOURS[3]},
                                                  {"label": "Still open", "data": [c["open"] for c in shown], "backgroundColor": COLOURS[2]}]},
             "options": {"responsive": True, "maintainAspectRatio": False, "indexAxis": "y"}} if shown else None
    return {"items": items, "total": sum(c["count"] for c in items), "chart": chart, "actions_open": acts["open"], "actions_overdue": acts["overdue"]}


def fno_lead_times(session: Session, *, since: date, rows: list[Any] | None = None) -> list[dict[str, Any]]:
    """Per FNO: deactivations confirmed, confirmed after their due date (and the days beyond it), waiting."""
    by: dict[str, list[int]] = {}
    for _k, _m, _r, _o, partner, confirmed, late, waiting, n in rows if rows is not None else _journey_totals(session, since=since):
        if partner and n:
            v = by.setdefault(partner, [0, 0, 0])
            v[0] += int(n) if confirmed else 0
            v[1] += int(n) if late else 0
            v[2] += int(n) if waiting else 0
    return [{"partner_code": p, "confirmed": c, "late": lt, "waiting": w} for p, (c, lt, w) in sorted(by.items())]


def _since(now: datetime, tz: ZoneInfo, months: int) -> date:
    today = now.astimezone(tz).date()
    return (today.replace(day=1) - timedelta(days=31 * (months - 1))).replace(day=1)


def report(session: Session, *, now: datetime, tz: ZoneInfo, months: int = 12, sections: tuple[str, ...] = ("volume", "sla"),
           breach_limit: int = 50) -> dict[str, Any]:
    """The report pages' sections: "volume" (by reason and month, retention, FNO deactivations), "sla" (compliance
    per step, breaches per cause and the latest breaches), "leakage" and "equipment". Each page reads only its own."""
    since = _since(now, tz, months)
    out: dict[str, Any] = {"since": since, "sections": sections}
    if "volume" in sections:
        rows = _journey_totals(session, since=since)
        out |= {"by_reason": by_reason_month(session, since=since, rows=rows), "retention": retention(session, since=since, rows=rows),
                "fno": fno_lead_times(session, since=since, rows=rows)}
    if "sla" in sections:
        groups = _sla_groups(session, since=since, now=now)
        out |= {"sla": sla_per_step(session, since=since, now=now, groups=groups), "breaches": breaches(session, since=since, now=now, tz=tz, limit=breach_limit),
                "causes": breaches_by_cause(session, since=since, now=now, today=local_date(now, tz), groups=groups)}
    if "leakage" in sections:
        out["leakage"] = leakage(session, now=now, tz=tz, months=months)
    if "equipment" in sections:
        out["equipment"] = equipment_recovery(session, now=now, tz=tz, months=months)
    return out


# --- leakage: line fees paid to FNOs after the effective date (partners.exposure computes every amount) ---------------

def _month_bounds(month: str, field: str) -> tuple[date, date]:
    from opsline.core.errors import InvalidInput

    try:
        y, m = (int(x) for x in month.split("-"))
        first = date(y, m, 1)
    except ValueError:
        raise InvalidInput(f"'{month[:20]}' is not a month (YYYY-MM)", field=field) from None
    return first, date(y + (m == 12), m % 12 + 1, 1)


def leakage(session: Session, *, now: datetime, tz: ZoneInfo, months: int = 12) -> dict[str, Any]:
    """Fees paid to FNOs for lines still active after their effective date, per FNO and month of the effective date,
    with what the FNO credited back on claims (one grouped query each) and a stacked chart per FNO."""
    today = local_date(now, tz)
    since = _since(now, tz, months)
    rows = exposure.exposure_by_month(session, today=today, since=since)
    pg = session.get_bind().dialect.name == "postgresql"
    month = "to_char(c.effective_date, 'YYYY-MM')" if pg else "strftime('%Y-%m', c.effective_date)"
    credited = {(r.m, r.partner_code): (int(r.claimed or 0), int(r.credited or 0)) for r in session.execute(text(
        f"""SELECT {month} AS m, c.partner_code, SUM(CASE WHEN c.state NOT IN ('withdrawn', 'rejected') THEN c.amount_minor ELSE 0 END) AS claimed,
                   SUM(COALESCE(c.credited_minor, 0)) AS credited
            FROM fno_claim c WHERE c.effective_date >= :since GROUP BY {month}, c.partner_code"""), {"since": since if pg else since.isoformat()}).all()}
    currency = rows[0]["currency"] if rows else "ZAR"
    months_ = sorted({r["month"] for r in rows})
    partners = sorted({r["partner_code"] for r in rows})
    items = []
    for r in rows:
        claimed, cred = credited.get((r["month"], r["partner_code"]), (0, 0))
        items.append(r | {"claimed": Money.from_minor(claimed, r["currency"]), "credited": Money.from_minor(cred, r["currency"]),
                          "net_minor": r["amount_minor"] - cred, "net": Money.from_minor(r["amount_minor"] - cred, r["currency"])})
    cell = {(r["month"], r["partner_code"]): r["amount_minor"] for r in items}
    datasets = [{"label": p, "data": [round(cell.get((m, p), 0) / 100, 2) for m in months_], "backgroundColor": COLOURS[i % len(COLOURS)]}
                for i, p in enumerate(partners)]
    chart = {"type": "bar", "data": {"labels": months_, "datasets": datasets},
             "options": {"responsive": True, "maintainAspectRatio": False, "scales": {"x": {"stacked": True}, "y": {"stacked": True}}}} if months_ else None
    total = sum(r["amount_minor"] for r in items if r["currency"] == currency)
    total_cred = sum(credited.get((r["month"], r["partner_code"]), (0, 0))[1] for r in items if r["currency"] == currency)
    return {"since": since, "items": items, "months": months_, "partners": partners, "chart": chart, "currency": currency,
            "total": Money.from_minor(total, currency), "credited": Money.from_minor(total_cred, currency),
            "net": Money.from_minor(total - total_cred, currency), "growing": sum(r["growing"] for r in items)}


def leakage_orders(session: Session, *, now: datetime, tz: ZoneInfo, partner_code: str, month: str, limit: int = 500) -> dict[str, Any]:
    """Drill-down: the delete orders behind one FNO-month of leakage, each with its journey and account. Raises InvalidInput (month)."""
    first, nxt = _month_bounds(month, "month")
    ex = exposure.exposure(session, today=local_date(now, tz), partner_code=partner_code or None, effective_from=first, effective_to=nxt, limit=limit)
    ids = [i["id"] for i in ex["items"]]
    journeys = dict(session.execute(select(CJ.service_order_id, CJ.id).where(CJ.service_order_id.in_(ids))).all()) if ids else {}
    refs = dict(session.execute(select(CJ.id, CJ.reference).where(CJ.id.in_(list(journeys.values()))))) if journeys else {}
    items = [i | {"journey_id": journeys.get(i["id"]), "journey_reference": refs.get(journeys.get(i["id"]))} for i in ex["items"]]
    return {"partner_code": partner_code, "month": month, "items": items, "total": ex["total"], "total_items": ex["total_items"]}


# --- equipment recovery (loaned devices due back when their product ends; logistics' definition) -------------------

_RECOVERY_FROM = """
    FROM equipment e JOIN product p ON p.id = e.product_id
    LEFT JOIN equipment_fee_rule r ON r.model = e.model
    LEFT JOIN (SELECT ci.equipment_id, MAX(ci.collection_id) AS collection_id FROM collection_item ci GROUP BY ci.equipment_id) lc
           ON lc.equipment_id = e.id
    LEFT JOIN collection c ON c.id = lc.collection_id
    WHERE e.owner = 'isp_loaned' AND p.end_date >= :first AND p.end_date <= :today
      AND e.state IN ('awaiting_return', 'lost', 'returned', 'in_stock', 'written_off')"""


def _recovery_params(session: Session, first: date, today: date) -> tuple[bool, dict[str, Any], str]:
    pg = session.get_bind().dialect.name == "postgresql"
    month = "to_char(p.end_date, 'YYYY-MM')" if pg else "strftime('%Y-%m', p.end_date)"
    return pg, {"first": first if pg else first.isoformat(), "today": today if pg else today.isoformat()}, month


def equipment_recovery(session: Session, *, now: datetime, tz: ZoneInfo, months: int = 12) -> dict[str, Any]:
    """Loaned devices due back per month (their product's end), FNO and courier (the last collection that held the
    device, or none booked): due, returned, the recovery rate and the value outstanding (the unreturned-equipment fee of
    devices still out). One grouped query; the chart per month."""
    today = local_date(now, tz)
    first = _since(now, tz, months)
    pg, params, month = _recovery_params(session, first, today)
    rows = session.execute(text(f"""SELECT {month} AS m, COALESCE(p.partner_code, '') AS fno, COALESCE(c.courier_code, '') AS courier, COUNT(*) AS due,
            SUM(CASE WHEN e.state IN ('returned', 'in_stock') THEN 1 ELSE 0 END) AS back,
            SUM(CASE WHEN e.state IN ('awaiting_return', 'lost') THEN 1 ELSE 0 END) AS out,
            SUM(CASE WHEN e.state IN ('awaiting_return', 'lost') THEN COALESCE(r.fee_minor, 0) ELSE 0 END) AS value, MIN(r.currency) AS currency
        {_RECOVERY_FROM} GROUP BY {month}, COALESCE(p.partner_code, ''), COALESCE(c.courier_code, '') ORDER BY 1, 2, 3"""), params).all()
    currency = next((r.currency for r in rows if r.currency), "ZAR")
    items = [{"month": r.m, "fno": r.fno, "courier": r.courier, "due": int(r.due), "back": int(r.back or 0), "out": int(r.out or 0),
              "value_minor": int(r.value or 0), "value": Money.from_minor(int(r.value or 0), currency),
              "rate": round(100 * int(r.back or 0) / int(r.due), 1) if r.due else None} for r in rows]
    per_month: dict[str, dict[str, int]] = {}
    for i in items:
        m = per_month.setdefault(i["month"], {"due": 0, "back": 0, "value_minor": 0})
        m["due"] += i["due"]
        m["back"] += i["back"]
        m["value_minor"] += i["value_minor"]
    labels = sorted(per_month)
    chart = {"type": "bar", "data": {"labels": labels, "datasets": [
        {"type": "bar", "label": "Due back", "data": [per_month[m]["due"] for m in labels], "yAxisID": "y", "backgroundColor": COLOURS[0]},
        {"type": "bar", "label": "Returned", "data": [per_month[m]["back"] for m in labels], "yAxisID": "y", "backgroundColor": COLOURS[1]},
        {"type": "line", "label": "Recovery rate %", "data": [round(100 * per_month[m]["back"] / per_month[m]["due"], 1) if per_month[m]["due"] else 0
                                                              for m in labels], "yAxisID": "y1", "borderColor": COLOURS[3]}]},
        "options": {"responsive": True, "maintainAspectRatio": False,
                    "scales": {"y": {"beginAtZero": True, "position": "left"}, "y1": {"beginAtZero": True, "max": 100, "position": "right"}}}} if labels else None
    due, back = sum(i["due"] for i in items), sum(i["back"] for i in items)
    value = sum(i["value_minor"] for i in items)
    return {"since": first, "items": items, "chart": chart, "due": due, "back": back, "out": sum(i["out"] for i in items),
            "rate": round(100 * back / due, 1) if due else None, "value": Money.from_minor(value, currency), "currency": currency,
            "months": [{"month": m, "due": per_month[m]["due"], "back": per_month[m]["back"],
                        "rate": round(100 * per_month[m]["back"] / per_month[m]["due"], 1) if per_month[m]["due"] else None,
                        "value": Money.from_minor(per_month[m]["value_minor"], currency)} for m in labels]}


def equipment_devices(session: Session, *, now: datetime, tz: ZoneInfo, month: str, fno: str | None = None, courier: str | None = None,
                      limit: int = 500) -> dict[str, Any]:
    """Drill-down: the loaned devices due back in a month (optionally one FNO, one courier; "" = none booked), with
    their account, journey and last collection. Raises InvalidInput (month)."""
    first, nxt = _month_bounds(month, "month")
    today = min(local_date(now, tz), nxt - timedelta(days=1))
    pg, params, _ = _recovery_params(session, first, today)
    where = ""
    if fno is not None:
        where += " AND COALESCE(p.partner_code, '') = :fno"
        params["fno"] = fno
    if courier is not None:
        where += " AND COALESCE(c.courier_code, '') = :courier"
        params["courier"] = courier
    params["limit"] = limit
    rows = session.execute(text(f"""SELECT e.id, e.serial_number, e.model, e.state, e.account_id, a.account_number, p.id AS product_id, p.end_date,
            p.partner_code, c.id AS collection_id, c.number AS collection_number, c.courier_code, c.state AS collection_state, r.fee_minor, r.currency,
            (SELECT MAX(j.id) FROM cancellation_journey j WHERE j.product_id = p.id) AS journey_id
        {_RECOVERY_FROM}{where}
        ORDER BY CASE WHEN e.state IN ('awaiting_return', 'lost') THEN 0 ELSE 1 END, p.end_date, e.id LIMIT :limit""".replace(
        "FROM equipment e JOIN product p", "FROM equipment e JOIN account a ON a.id = e.account_id JOIN product p")), params).all()
    jids = [r.journey_id for r in rows if r.journey_id]
    refs = dict(session.execute(select(CJ.id, CJ.reference).where(CJ.id.in_(jids)))) if jids else {}
    items = [{"id": r.id, "serial_number": r.serial_number, "model": r.model, "state": r.state, "account_id": r.account_id,
              "account_number": r.account_number, "product_id": r.product_id, "end_date": r.end_date, "fno": r.partner_code or "",
              "collection_id": r.collection_id, "collection_number": r.collection_number, "courier": r.courier_code or "",
              "collection_state": r.collection_state, "outstanding": r.state in ("awaiting_return", "lost"),
              "value": Money.from_minor(int(r.fee_minor), r.currency) if r.fee_minor is not None and r.currency else None,
              "journey_id": r.journey_id, "journey_reference": refs.get(r.journey_id)} for r in rows]
    return {"month": month, "fno": fno, "courier": courier, "items": items}
