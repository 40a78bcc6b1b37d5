"""Monthly service reviews per B2B customer: generated set-based after month close, read live from the month's data
(scorecard target vs actual with a 12-month trend, incidents and breaches with causes, orders delivered, billing and
claims, violations and credits, the service improvement plan carried month to month), released by a manager and then
emailed to the customer's contacts through notifications with the PDF attached."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import func, literal, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from opsline.b2b import metrics
from opsline.b2b.models import (ACTION_STATUSES, METRICS, REVIEW, B2BContract, B2BImprovementAction, B2BReview, B2BServiceCredit, B2BSlaRule,
                                B2BViolation, ContractState, ReviewState)
from opsline.b2b.service import metric_settings, month_start, num, violated
from opsline.billing.invoicing.models import BillingClaim, CreditNote
from opsline.billing.models import Invoice
from opsline.cases.models import SupportCase
from opsline.core import events, lifecycle
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.core.exports import Sheet
from opsline.core.localtime import local_date
from opsline.core.money import Money
from opsline.core.pdf import render_pdf
from opsline.customers.models import Account, Contact
from opsline.notifications import service as notifications
from opsline.notifications.templates import ensure_template
from opsline.orders.models import ProductOrder
from opsline.sla.models import SlaBreach

RELEASED_EVENT = "b2b.review_released"
_pdf_env = Environment(loader=FileSystemLoader(str(Path(__file__).parent / "pdf_templates")), autoescape=select_autoescape(["html"]))


class UnableToManageReview(InvalidInput):
    title = "Unable to manage the service review"
    type_slug = "b2b-review-invalid"


def seed_templates(session: Session, *, now: datetime) -> None:
    ensure_template(session, event=RELEASED_EVENT, channel="email", language="en", now=now,
                    subject="Your service review for {{ period }} ({{ contract }})",
                    body="Dear {{ contact_name }},\n\nAttached is {{ account.name }}'s monthly service review for {{ period }} under contract "
                         "{{ contract }}: {{ met }} of {{ rules }} service levels met.\n\nKind regards,\nYour service manager",
                    description="A B2B customer's monthly service review, released by the service manager (PDF attached)",
                    sample_context={"period": "November 2026", "contract": "SC-000001", "contact_name": "Naledi", "met": 5, "rules": 6})


def _closed(period: date, now: datetime, tz: ZoneInfo) -> date:
    period = month_start(period)
    if period >= local_date(now, tz).replace(day=1):
        raise InvalidInput(f"{period:%Y-%m} is not closed yet; its review is generated after the month ends", field="period")
    return period


def generate(session: Session, *, period: date, now: datetime, tz: ZoneInfo, actor: Actor) -> int:
    """A draft review for every B2B customer with an active contract in the month (one INSERT ... SELECT; a customer who
    already has one keeps it). Returns how many were created. Raises InvalidInput (`period` not closed)."""
    period = _closed(period, now, tz)
    _, _, nxt = metrics.month_bounds(period, tz)
    t = B2BReview.__table__.c
    src = (select(B2BContract.account_id, func.min(B2BContract.id), literal(period, t.period.type), literal(ReviewState.DRAFT.value, t.state.type),
                  literal(now, t.generated_at.type), literal(actor.name, t.generated_by.type), literal(0, t.messages_sent.type))
           .where(B2BContract.state == ContractState.ACTIVE, B2BContract.valid_from < nxt,
                  or_(B2BContract.valid_to.is_(None), B2BContract.valid_to > period))
           .group_by(B2BContract.account_id))
    before = session.execute(select(func.count()).select_from(B2BReview).where(B2BReview.period == period)).scalar_one()
    ins = (pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert)(B2BReview).from_select(
        ["account_id", "contract_id", "period", "state", "generated_at", "generated_by", "messages_sent"], src)
    session.execute(ins.on_conflict_do_nothing(index_elements=["account_id", "period"]))
    made = int(session.execute(select(func.count()).select_from(B2BReview).where(B2BReview.period == period)).scalar_one()) - int(before)
    events.record(session, now=now, actor=actor, entity_type="b2b_review", entity_id=f"{period:%Y-%m}", action="generated", after={"created": made})
    return made


def _months_back(period: date, n: int) -> list[date]:
    out, y, m = [], period.year, period.month
    for _ in range(n):
        out.append(date(y, m, 1))
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return list(reversed(out))


def pack(session: Session, *, review_id: int, tz: ZoneInfo) -> dict[str, Any]:
    """Everything the review shows (page, PDF, xlsx), as plain data. Raises NotFound."""
    rv = session.get(B2BReview, review_id)
    if rv is None:
        raise NotFound(f"service review {review_id} not found", field="review_id")
    acc = session.get(Account, rv.account_id)
    c = session.get(B2BContract, rv.contract_id)
    assert acc is not None and c is not None
    period = rv.period
    start, end, nxt = metrics.month_bounds(period, tz)
    settings = metric_settings(session)
    months = _months_back(period, 12)
    history = {m: metrics.measure(session, account_ids=[acc.id], period=m, tz=tz, settings=settings).get(acc.id, {}) for m in months}
    rules = session.execute(select(B2BSlaRule).where(B2BSlaRule.contract_id == c.id).order_by(B2BSlaRule.id)).scalars().all()
    scorecard = []
    for r in rules:
        got = history[period].get(r.metric)
        actual = got[0] if got else None
        ok = None if actual is None else not violated(actual=actual, operator=r.operator, reference=Decimal(r.reference_value), tolerance=Decimal(r.tolerance))
        trend = [float(history[m][r.metric][0]) if r.metric in history[m] else None for m in months]
        chart = {"type": "line", "data": {"labels": [f"{m:%b %y}" for m in months], "datasets": [
            {"label": "Actual", "data": trend, "borderColor": "#2c7be5", "spanGaps": True},
            {"label": "Target", "data": [float(r.reference_value)] * len(months), "borderColor": "#c0392b", "borderDash": [6, 4], "pointRadius": 0}]},
            "options": {"plugins": {"legend": {"position": "bottom"}}}}
        scorecard.append({"metric": r.metric, "label": METRICS[r.metric][1], "unit": r.unit, "target": f"{r.operator} {num(r.reference_value)}",
                          "actual": num(actual) if actual is not None else None, "met": ok, "sample": got[1] if got else 0,
                          "trend": [(f"{m:%Y-%m}", None if v is None else num(v)) for m, v in zip(months, trend)], "chart": chart})
    cases = [dict(r._mapping) for r in session.execute(
        select(SupportCase.id, SupportCase.reference, SupportCase.subject, SupportCase.category_code, SupportCase.opened_at, SupportCase.resolved_at,
               SupportCase.state).where(SupportCase.account_id == acc.id, SupportCase.opened_at < end,
                                       or_(SupportCase.resolved_at.is_(None), SupportCase.resolved_at >= start))
        .order_by(SupportCase.opened_at)).all()]
    for x in cases:
        x["outage"] = x["category_code"] in settings.outage_categories
        o, rz = metrics._utc(x["opened_at"]), metrics._utc(x["resolved_at"])
        x["hours"] = num(Decimal((rz - o).total_seconds()) / 3600) if rz and o else None
    breaches = [dict(r._mapping) for r in session.execute(
        select(SlaBreach.case_id, SlaBreach.metric, SlaBreach.breached_at, SlaBreach.overrun_seconds, SlaBreach.cause_code, SlaBreach.cause_note)
        .where(SlaBreach.account_id == acc.id, SlaBreach.breached_at >= start, SlaBreach.breached_at < end).order_by(SlaBreach.breached_at)).all()]
    orders = [dict(r._mapping) for r in session.execute(
        select(ProductOrder.id, ProductOrder.description, ProductOrder.requested_completion_date, ProductOrder.completion_date)
        .where(ProductOrder.account_id == acc.id, ProductOrder.completion_date >= period, ProductOrder.completion_date < nxt)
        .order_by(ProductOrder.completion_date)).all()]
    for o in orders:
        o["on_time"] = None if o["requested_completion_date"] is None else o["completion_date"] <= o["requested_completion_date"]
    invoices = [dict(r._mapping) for r in session.execute(
        select(Invoice.number, Invoice.issued_at, Invoice.total_minor, Invoice.currency, Invoice.state)
        .where(Invoice.account_id == acc.id, Invoice.issued_at >= start, Invoice.issued_at < end).order_by(Invoice.issued_at)).all()]
    notes = [dict(r._mapping) for r in session.execute(
        select(CreditNote.number, CreditNote.issued_at, CreditNote.total_minor, CreditNote.currency, CreditNote.reason)
        .where(CreditNote.account_id == acc.id, CreditNote.issued_at >= start, CreditNote.issued_at < end)).all()]
    claims = [dict(r._mapping) for r in session.execute(
        select(BillingClaim.id, BillingClaim.state, BillingClaim.reason, BillingClaim.disputed_minor, BillingClaim.currency, BillingClaim.raised_at,
               BillingClaim.due_date, BillingClaim.decided_at, BillingClaim.outcome)
        .where(BillingClaim.account_id == acc.id, or_(BillingClaim.raised_at.between(start, end), BillingClaim.decided_at.between(start, end)))).all()]
    violations = [dict(r._mapping) for r in session.execute(
        select(B2BViolation.id, B2BViolation.metric, B2BViolation.cause, B2BServiceCredit.amount_minor, B2BServiceCredit.state)
        .outerjoin(B2BServiceCredit, B2BServiceCredit.violation_id == B2BViolation.id)
        .where(B2BViolation.account_id == acc.id, B2BViolation.period == period)).all()]
    actions = [dict(r._mapping) for r in session.execute(
        select(B2BImprovementAction.id, B2BImprovementAction.title, B2BImprovementAction.owner, B2BImprovementAction.due_date,
               B2BImprovementAction.status, B2BImprovementAction.opened_period)
        .where(B2BImprovementAction.account_id == acc.id, B2BImprovementAction.opened_period <= period,
               or_(B2BImprovementAction.closed_period.is_(None), B2BImprovementAction.closed_period >= period))
        .order_by(B2BImprovementAction.due_date, B2BImprovementAction.id)).all()]
    for a in actions:
        a["carried"] = a["opened_period"] < period
        a["overdue"] = a["status"] in ("open", "in_progress") and a["due_date"] < nxt - timedelta(days=1)
    services = metrics.availability_by_service(session, account_id=acc.id, period=period, tz=tz, settings=settings)
    for x in services:
        x["availability"], x["down_hours"] = num(x["availability"]), num(x["down_hours"])
    cur = c.currency
    return {"services": services, "review": {"id": rv.id, "state": rv.state, "period": period, "period_label": f"{period:%B %Y}", "released_at": rv.released_at,
                       "released_by": rv.released_by, "messages_sent": rv.messages_sent, "buttons": REVIEW.buttons(rv.state)},
            "account": {"id": acc.id, "name": acc.name, "account_number": acc.account_number},
            "contract": {"id": c.id, "reference": c.reference, "name": c.name, "currency": cur, "credit_cap_minor": c.credit_cap_minor},
            "scorecard": scorecard, "met": sum(1 for s in scorecard if s["met"]), "measured": sum(1 for s in scorecard if s["met"] is not None),
            "cases": cases, "breaches": breaches, "orders": orders, "invoices": invoices, "credit_notes": notes, "claims": claims,
            "violations": violations, "actions": actions, "action_statuses": ACTION_STATUSES,
            "billed_minor": sum(int(i["total_minor"]) for i in invoices), "credited_minor": sum(int(n["total_minor"]) for n in notes),
            "credits_minor": sum(int(v["amount_minor"] or 0) for v in violations if v["state"] == "approved")}


def pdf(session: Session, *, review_id: int, tz: ZoneInfo) -> tuple[str, bytes]:
    p = pack(session, review_id=review_id, tz=tz)
    html = _pdf_env.get_template("review.html").render(p=p, money=lambda m, c: str(Money.from_minor(int(m), c)))
    return f"service-review-{p['account']['account_number']}-{p['review']['period']:%Y-%m}.pdf", render_pdf(html)


def sheets(session: Session, *, review_id: int, tz: ZoneInfo) -> tuple[str, list[Sheet]]:
    p = pack(session, review_id=review_id, tz=tz)
    cur = p["contract"]["currency"]
    months = [m for m, _ in p["scorecard"][0]["trend"]] if p["scorecard"] else []
    out = [
        Sheet("Scorecard", ["metric", "unit", "target", "actual", "met", "measured"],
              [[s["label"], s["unit"], s["target"], s["actual"] or "", "" if s["met"] is None else ("yes" if s["met"] else "no"), s["sample"]] for s in p["scorecard"]]),
        Sheet("Trend", ["metric"] + months, [[s["label"]] + [v or "" for _, v in s["trend"]] for s in p["scorecard"]]),
        Sheet("Availability per service", ["product", "service", "site", "outages", "hours down", "availability %"],
              [[x["product_id"], x["service"], x["site"], x["outages"], x["down_hours"], x["availability"]] for x in p["services"]]),
        Sheet("Incidents", ["case", "subject", "category", "outage", "opened", "resolved", "hours"],
              [[x["reference"], x["subject"], x["category_code"], "yes" if x["outage"] else "no", str(x["opened_at"]), str(x["resolved_at"] or ""), x["hours"] or ""]
               for x in p["cases"]]),
        Sheet("Breaches", ["case", "clock", "breached", "overrun hours", "cause", "note"],
              [[b["case_id"], b["metric"], str(b["breached_at"]), round(int(b["overrun_seconds"] or 0) / 3600, 2), b["cause_code"] or "", b["cause_note"] or ""]
               for b in p["breaches"]]),
        Sheet("Violations", ["metric", "cause", "credit", "credit state"],
              [[METRICS[v["metric"]][1], v["cause"] or "", float(Money.from_minor(int(v["amount_minor"]), cur).amount) if v["amount_minor"] else "", v["state"] or ""]
               for v in p["violations"]]),
        Sheet("Orders delivered", ["order", "committed", "delivered", "on time"],
              [[o["id"], str(o["requested_completion_date"] or ""), str(o["completion_date"]), "" if o["on_time"] is None else ("yes" if o["on_time"] else "no")]
               for o in p["orders"]]),
        Sheet("Billing", ["document", "number", "issued", "amount", "currency"],
              [["invoice", i["number"] or "", str(i["issued_at"]), float(Money.from_minor(int(i["total_minor"]), i["currency"]).amount), i["currency"]] for i in p["invoices"]]
              + [["credit note", n["number"], str(n["issued_at"]), -float(Money.from_minor(int(n["total_minor"]), n["currency"]).amount), n["currency"]]
                 for n in p["credit_notes"]]),
        Sheet("Claims", ["claim", "state", "reason", "disputed", "due", "outcome"],
              [[c["id"], c["state"], c["reason"], float(Money.from_minor(int(c["disputed_minor"]), c["currency"]).amount), str(c["due_date"]), c["outcome"] or ""]
               for c in p["claims"]]),
        Sheet("Improvement plan", ["action", "owner", "due", "status", "carried from"],
              [[a["title"], a["owner"], str(a["due_date"]), a["status"], f"{a['opened_period']:%Y-%m}"] for a in p["actions"]]),
    ]
    return f"service-review-{p['account']['account_number']}-{p['review']['period']:%Y-%m}", out


def release(session: Session, *, review_id: int, now: datetime, tz: ZoneInfo, actor: Actor) -> int:
    """Release a draft review and email it (PDF attached) to every contact of the customer with an email address (the
    account's own address when it has none). Returns the number of messages. Raises NotFound, ActionNotPermitted,
    TransitionNotAllowed (already released), UnableToManageReview (field `contacts`: nobody to send it to),
    PdfUnavailable. Nothing is changed when it raises."""
    rv = session.get(B2BReview, review_id)
    if rv is None:
        raise NotFound(f"service review {review_id} not found", field="review_id")
    contacts = [(r.name, r.email) for r in session.execute(select(Contact.name, Contact.email).where(Contact.account_id == rv.account_id,
                                                                                                       Contact.email.is_not(None))).all() if r.email]
    if not contacts:
        acc = session.get(Account, rv.account_id)
        if acc is not None and acc.email:
            contacts = [(acc.name, acc.email)]
    if not contacts:
        raise UnableToManageReview("the customer has no contact with an email address to send the review to", field="contacts")
    filename, data = pdf(session, review_id=review_id, tz=tz)  # before any change: a PDF failure changes nothing
    p = pack(session, review_id=review_id, tz=tz)
    lifecycle.transition(session, REVIEW, rv, "release", now=now, actor=actor, label=f"service review {rv.id}",
                         details={"period": f"{rv.period:%Y-%m}", "contacts": len(contacts)})
    sent = 0
    for name, email in contacts:
        notifications.send(session, event=RELEASED_EVENT, account_id=rv.account_id, to=email, now=now, actor=actor, category="service", tz=tz,
                           context={"period": p["review"]["period_label"], "contract": p["contract"]["reference"], "contact_name": name,
                                    "met": p["met"], "rules": len(p["scorecard"])},
                           attachments=[notifications.Attachment(filename=filename, content_type="application/pdf", data=data)],
                           subject_ref=f"b2b_review:{rv.id}", idempotency_key=f"b2b-review:{rv.id}:{email.lower()}")
        sent += 1
    rv.released_at, rv.released_by, rv.messages_sent = now, actor.name, sent
    session.flush()
    return sent


# --- service improvement plan -------------------------------------------------------------------------------------
def add_action(session: Session, *, account_id: int, period: date, title: str, owner: str, due_date: date | None, now: datetime,
               actor: Actor) -> int:
    """Add an action to a customer's improvement plan from month `period` on. Raises UnableToManageReview naming
    `title`, `owner` or `due_date`."""
    if not (title or "").strip():
        raise UnableToManageReview("an action needs a title", field="title")
    if not (owner or "").strip():
        raise UnableToManageReview("an action needs an owner", field="owner")
    if due_date is None:
        raise UnableToManageReview("an action needs a due date", field="due_date")
    a = B2BImprovementAction(account_id=account_id, title=title.strip()[:300], owner=owner.strip()[:120], due_date=due_date, status="open",
                             opened_period=month_start(period), created_at=now, created_by=actor.name, updated_at=now)
    session.add(a)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="b2b_improvement_action", entity_id=a.id, action="added", account_id=account_id,
                  after={"title": a.title, "owner": a.owner, "due_date": due_date.isoformat()})
    return int(a.id)


def set_action_status(session: Session, *, action_id: int, status: str, period: date, now: datetime, actor: Actor) -> None:
    """Move an action to `status`; done or cancelled closes it from `period` on (it still shows on that month's review).
    Raises NotFound, UnableToManageReview (field `status`)."""
    a = session.get(B2BImprovementAction, action_id)
    if a is None:
        raise NotFound(f"improvement action {action_id} not found", field="action_id")
    if status not in ACTION_STATUSES:
        raise UnableToManageReview(f"unknown status '{status}'; one of {', '.join(ACTION_STATUSES)}", field="status")
    before = a.status
    a.status, a.updated_at = status, now
    a.closed_period = month_start(period) if status in ("done", "cancelled") else None
    events.record(session, now=now, actor=actor, entity_type="b2b_improvement_action", entity_id=a.id, action="status_changed",
                  account_id=a.account_id, before={"status": before}, after={"status": status})
