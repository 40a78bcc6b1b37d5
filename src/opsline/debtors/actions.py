"""Carrying out what a dunning run decided (in the worker): reminders by email/SMS and warnings through notifications
(contact caps and quiet hours apply there), letters of demand as PDFs, suspension through the customers account
lifecycle (products and partners follow its event); each action written to the account's memos. Also a person's
decision on a proposed action."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.billing.invoicing.documents import company_profile
from opsline.core import lifecycle
from opsline.core.errors import NotFound, OpslineError
from opsline.core.events import Actor
from opsline.core.money import Money
from opsline.customers import service as customers
from opsline.customers.models import Account, AccountStatus
from opsline.customers.schemas import MemoIn
from opsline.debtors.models import DUNNING_ACTION, ActionState, DunningAction, DunningLetter, DunningStep, StepAction
from opsline.notifications import service as notifications

SYSTEM = Actor.system("dunning")
# the letter shares the invoice PDFs' house style (billing/invoicing/pdf_templates/_style.html)
_env = Environment(loader=FileSystemLoader([str(Path(__file__).parent / "pdf_templates"), str(Path(__file__).parents[1] / "billing" / "invoicing" / "pdf_templates")]),
                   autoescape=select_autoescape(["html"]))
LABELS = {
    StepAction.REMINDER_EMAIL: "Reminder email", StepAction.REMINDER_SMS: "Reminder SMS", StepAction.LETTER_OF_DEMAND: "Letter of demand",
    StepAction.SUSPENSION_WARNING: "Suspension warning", StepAction.SUSPEND: "Suspension", StepAction.DISCONTINUANCE: "Discontinuance (proposed)",
    StepAction.FINAL_ACCOUNT: "Final account (proposed)", StepAction.WRITE_OFF_PROPOSAL: "Write-off (proposed)", StepAction.CALL: "Call the customer",
}


def _context(a: DunningAction, step: DunningStep, company: dict[str, Any]) -> dict[str, Any]:
    pay_by = a.run_date + timedelta(days=max(step.notice_days, 1))
    return {"debt": {"overdue": str(Money.from_minor(a.overdue_minor, a.currency)), "balance": str(Money.from_minor(a.balance_minor, a.currency)),
                     "days_overdue": a.days_overdue, "step": step.name, "pay_by": pay_by.isoformat(), "reference": f"DUN-{a.id}"},
            "company": {k: company.get(k) or "" for k in ("name", "phone", "email", "bank_name", "bank_account_number", "bank_branch_code")}}


def render_letter(session: Session, *, action: DunningAction, step: DunningStep) -> bytes:
    """The letter of demand as PDF bytes (WeasyPrint)."""
    from weasyprint import HTML

    acc = session.get(Account, action.account_id)
    company = company_profile(session)
    pay_by = action.run_date + timedelta(days=max(step.notice_days, 1))
    html = _env.get_template("letter_of_demand.html").render(
        company=company, account={c: getattr(acc, c) for c in ("account_number", "name", "billing_line1", "billing_suburb", "billing_city", "billing_postal_code")},
        run_date=action.run_date.strftime("%d %b %Y"), action_id=action.id, overdue=str(Money.from_minor(action.overdue_minor, action.currency)),
        balance=str(Money.from_minor(action.balance_minor, action.currency)), days_overdue=action.days_overdue, notice_days=max(step.notice_days, 1),
        pay_by=pay_by.strftime("%d %b %Y"))
    return bytes(HTML(string=html).write_pdf())


def _send(session: Session, a: DunningAction, step: DunningStep, ctx: dict[str, Any], *, now: datetime, channel: str,
          attachments: list[notifications.Attachment] | None = None) -> int:
    return notifications.send(session, event=step.template_event or "dunning.reminder", account_id=a.account_id, context=ctx, now=now, actor=SYSTEM,
                              channel=channel, category="collections", subject_ref=f"dunning_action:{a.id}", attachments=attachments,
                              idempotency_key=f"dunning-action:{a.id}:{channel}", on_opt_out="suppress")


def _perform_one(session: Session, a: DunningAction, step: DunningStep, company: dict[str, Any], *, now: datetime) -> tuple[str, str]:
    """Do one queued action; returns (lifecycle action, memo text)."""
    ctx = _context(a, step, company)
    what = LABELS.get(StepAction(a.action), a.action)
    owed = f"{ctx['debt']['overdue']} overdue {a.days_overdue} d"
    if a.action in (StepAction.REMINDER_EMAIL, StepAction.REMINDER_SMS, StepAction.SUSPENSION_WARNING):
        channel = "sms" if a.action == StepAction.REMINDER_SMS else "email"
        a.message_id = _send(session, a, step, ctx, now=now, channel=channel)
        return "perform", f"Dunning: {what} ({step.name}) queued by {channel}; {owed}. Message {a.message_id}."
    if a.action == StepAction.LETTER_OF_DEMAND:
        letter = session.execute(select(DunningLetter).where(DunningLetter.action_id == a.id)).scalar_one_or_none()
        if letter is None:
            pdf = render_letter(session, action=a, step=step)
            letter = DunningLetter(action_id=a.id, account_id=a.account_id, content=pdf, size_bytes=len(pdf), rendered_at=now)
            session.add(letter)
            session.flush()
        a.message_id = _send(session, a, step, ctx, now=now, channel="email", attachments=[notifications.Attachment(
            filename=f"letter-of-demand-DUN-{a.id}.pdf", content_type="application/pdf", ref=("dunning_letter", "content", letter.id))])
        return "perform", f"Dunning: letter of demand DUN-{a.id} sent; {owed}; pay by {ctx['debt']['pay_by']}."
    if a.action == StepAction.SUSPEND:
        status = session.execute(select(Account.status).where(Account.id == a.account_id)).scalar_one()
        if status != AccountStatus.ACTIVE:
            return "skip", f"Dunning: suspension step reached ({owed}); the account is already {status}."
        customers.transition_account(session, account_id=a.account_id, action="suspend", now=now, actor=SYSTEM,
                                     reason=f"dunning: {step.name}, {owed} (DUN-{a.id})")
        a.message_id = _send(session, a, step, ctx, now=now, channel="email")
        return "perform", f"Dunning: account suspended ({step.name}); {owed}."
    return "skip", f"Dunning: {what} needs a person."


def perform_actions(session: Session, *, run_id: int, now: datetime, from_id: int | None = None, to_id: int | None = None) -> dict[str, int]:
    """Carry out the queued actions of a run (optionally an id range: one worker job). An action that fails (no
    template, a refused transition) is marked failed with the reason and the others go on. Returns counts by outcome."""
    q = select(DunningAction).where(DunningAction.run_id == run_id, DunningAction.state == ActionState.QUEUED)
    if from_id is not None:
        q = q.where(DunningAction.id >= from_id)
    if to_id is not None:
        q = q.where(DunningAction.id <= to_id)
    todo = list(session.execute(q.order_by(DunningAction.id)).scalars())
    if not todo:
        return {}
    steps = {s.id: s for s in session.execute(select(DunningStep).where(DunningStep.id.in_({a.step_id for a in todo}))).scalars()}
    try:
        company = company_profile(session)
    except NotFound:
        company = {}
    out: dict[str, int] = {}
    for a in todo:
        step = steps[a.step_id]
        try:
            with session.begin_nested():
                move, memo = _perform_one(session, a, step, company, now=now)
                session.flush()
        except OpslineError as exc:
            move, memo = "fail", f"Dunning: {LABELS.get(StepAction(a.action), a.action)} failed: {exc.detail}"
        a.note, a.done_at = memo, now
        lifecycle.transition(session, DUNNING_ACTION, a, move, now=now, actor=SYSTEM, reason=memo if move != "perform" else None,
                             label=f"dunning action DUN-{a.id}")
        customers.add_memo(session, account_id=a.account_id, data=MemoIn(category="debtors", body=memo), now=now, actor=SYSTEM)
        out[move] = out.get(move, 0) + 1
    session.flush()
    return out


def perform_job(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    return perform_actions(session, run_id=int(payload["run_id"]), from_id=payload.get("from_id"), to_id=payload.get("to_id"), now=now)


def decide(session: Session, *, action_id: int, decision: str, reason: str | None, now: datetime, actor: Actor) -> list[str]:
    """A person accepts (done) or dismisses (with a reason) a proposed action; memo on the account.
    Raises NotFound, TransitionNotAllowed, ActionNotPermitted, ReasonRequired."""
    a = session.get(DunningAction, action_id)
    if a is None:
        raise NotFound(f"dunning action {action_id} not found", field="action_id")
    if decision not in ("accept", "dismiss"):
        from opsline.core.errors import InvalidInput

        raise InvalidInput(f"'{decision}' is not a decision (accept or dismiss)", field="decision")
    nxt = lifecycle.transition(session, DUNNING_ACTION, a, decision, now=now, actor=actor, reason=reason, label=f"dunning action DUN-{a.id}")
    a.decided_by, a.done_at = actor.name, now
    what = LABELS.get(StepAction(a.action), a.action)
    body = f"Dunning: {what} (DUN-{a.id}) {'done' if decision == 'accept' else 'dismissed'} by {actor.name}" + (f": {reason.strip()}" if reason and reason.strip() else "")
    customers.add_memo(session, account_id=a.account_id, data=MemoIn(category="debtors", body=body), now=now, actor=actor)
    session.flush()
    return nxt


def letter_pdf(session: Session, *, action_id: int) -> tuple[str, bytes]:
    """(file name, PDF) of the letter of demand an action sent. Raises NotFound."""
    letter = session.execute(select(DunningLetter).where(DunningLetter.action_id == action_id)).scalar_one_or_none()
    if letter is None:
        raise NotFound(f"no letter of demand for dunning action {action_id}", field="action_id")
    return f"letter-of-demand-DUN-{action_id}.pdf", letter.content

