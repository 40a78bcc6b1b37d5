"""Carrying out what a dunning run decided (in the worker): reminders by email/SMS and warnings through notifications
(contact caps and quiet hours apply there), letters of demand as PDFs, suspension through the customers account
lifecycle (products and partners follow its event); each action written to the account's memos. Also a person's
decision on a proposed action."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from opsline.billing.invoicing.documents import company_profile
from opsline.core import batching, lifecycle
from opsline.core.errors import NotFound, OpslineError
from opsline.core.events import Actor
from opsline.core.money import Money
from opsline.customers import service as customers
from opsline.customers.models import Account, AccountStatus
from opsline.customers.schemas import MemoIn
from opsline.db.session import lock_for_write
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


_BATCH_LETTERS = 25  # letters laid out in one WeasyPrint document (the style sheet and fonts once), then split per letter


def _letter_html(row: Any, company: dict[str, Any], notice_days: int) -> str:
    pay_by = row.run_date + timedelta(days=max(notice_days, 1))
    return _env.get_template("letter_of_demand.html").render(
        company=company, account={c: getattr(row, c) for c in ("account_number", "name", "billing_line1", "billing_suburb", "billing_city", "billing_postal_code")},
        run_date=row.run_date.strftime("%d %b %Y"), action_id=row.id, overdue=str(Money.from_minor(row.overdue_minor, row.currency)),
        balance=str(Money.from_minor(row.balance_minor, row.currency)), days_overdue=row.days_overdue, notice_days=max(notice_days, 1),
        pay_by=pay_by.strftime("%d %b %Y"))


# In a batch the page footer's "Page n of N" would count the whole batch: each letter is laid out as "Page 1 of 1"
# and a letter that runs to a second page is rendered on its own (with its own page count).
_ONE_PAGE_FOOTER = '<style>@page { @bottom-center { content: "Page 1 of 1"; } }</style>'


def _render_one(row: Any, company: dict[str, Any], notice_days: int) -> bytes:
    from weasyprint import HTML

    return bytes(HTML(string=_letter_html(row, company, notice_days)).write_pdf())


def layout_batch(rows: list[Any], *, company: dict[str, Any], notice_days: dict[int, int]) -> tuple[Any, dict[int, list[Any]]]:
    """The letters laid out in one WeasyPrint document (each starting a page, footers as for a one-page letter):
    (document, action id -> its pages). Raises whatever WeasyPrint raises."""
    from weasyprint import HTML

    htmls = [_letter_html(r, company, notice_days[r.step_id]) for r in rows]
    head = htmls[0].split("<body>", 1)[0]
    body = "".join(f'<section id="letter-{r.id}" style="page-break-before: always">{h.split("<body>", 1)[1].rsplit("</body>", 1)[0]}</section>'
                   for r, h in zip(rows, htmls))
    doc = HTML(string=f"{head}{_ONE_PAGE_FOOTER}<body>{body}</body></html>").render()
    pages: dict[int, list[Any]] = {}
    current = None
    for page in doc.pages:
        starts = [int(a.split("-", 1)[1]) for a in page.anchors if a.startswith("letter-")]
        if starts:
            current = starts[0]
        pages.setdefault(current, []).append(page)  # type: ignore[arg-type]
    if set(pages) != {r.id for r in rows}:
        raise RuntimeError("letters and pages do not line up")
    return doc, pages


def render_letters(rows: list[Any], *, company: dict[str, Any], notice_days: dict[int, int]) -> dict[int, bytes | Exception]:
    """Letters of demand for many actions (rows with the action's and account's columns): action id -> PDF bytes, or the
    error rendering that one letter raised. A few dozen one-page letters share one WeasyPrint layout (the style sheet
    and fonts once); a longer letter, or every letter of a batch that fails, is rendered on its own, so only a bad
    letter fails."""
    out: dict[int, bytes | Exception] = {}
    for part in batching.pages(rows, _BATCH_LETTERS):
        alone = part
        try:
            doc, pages = layout_batch(part, company=company, notice_days=notice_days)
            alone = [r for r in part if len(pages[r.id]) != 1]
            for r in part:
                if len(pages[r.id]) == 1:
                    one = doc.copy(pages[r.id])
                    one.metadata.title = f"Letter of demand {r.account_number}"  # the shared document's title is the first letter's
                    out[r.id] = bytes(one.write_pdf())
        except Exception:  # noqa: BLE001  (each letter on its own below; each letter's own error is kept)
            alone = [r for r in part if r.id not in out]
        for r in alone:
            try:
                out[r.id] = _render_one(r, company, notice_days[r.step_id])
            except Exception as exc:  # noqa: BLE001
                out[r.id] = exc
    return out


def _claim(session: Session, *, run_id: int, from_id: int | None, to_id: int | None) -> list[Any]:
    """The run's queued actions in the range with what carrying them out needs (step, account), locked: on PostgreSQL
    `FOR UPDATE SKIP LOCKED`, so a second worker on the same range (a retried job) takes none of them twice; on SQLite
    the write lock. Ordered by id."""
    lock_for_write(session)
    q = select(DunningAction.id).where(DunningAction.run_id == run_id, DunningAction.state == ActionState.QUEUED)
    if from_id is not None:
        q = q.where(DunningAction.id >= from_id)
    if to_id is not None:
        q = q.where(DunningAction.id <= to_id)
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    ids = list(session.execute(q.order_by(DunningAction.id)).scalars())
    if not ids:
        return []
    return list(session.execute(
        select(DunningAction.id, DunningAction.account_id, DunningAction.step_id, DunningAction.action, DunningAction.run_date,
               DunningAction.days_overdue, DunningAction.overdue_minor, DunningAction.balance_minor, DunningAction.currency,
               DunningStep.name.label("step_name"), DunningStep.notice_days, DunningStep.template_event,
               Account.status, Account.account_number, Account.name, Account.billing_line1, Account.billing_suburb, Account.billing_city,
               Account.billing_postal_code)
        .join(DunningStep, DunningStep.id == DunningAction.step_id).join(Account, Account.id == DunningAction.account_id)
        .where(DunningAction.id.in_(ids)).order_by(DunningAction.id)).all())


def _ctx(r: Any, company: dict[str, Any]) -> dict[str, Any]:
    pay_by = r.run_date + timedelta(days=max(r.notice_days, 1))
    return {"debt": {"overdue": str(Money.from_minor(r.overdue_minor, r.currency)), "balance": str(Money.from_minor(r.balance_minor, r.currency)),
                     "days_overdue": r.days_overdue, "step": r.step_name, "pay_by": pay_by.isoformat(), "reference": f"DUN-{r.id}"},
            "company": {k: company.get(k) or "" for k in ("name", "phone", "email", "bank_name", "bank_account_number", "bank_branch_code")}}


def perform_actions(session: Session, *, run_id: int, now: datetime, from_id: int | None = None, to_id: int | None = None) -> dict[str, int]:
    """Carry out the queued actions of a run (optionally an id range: one worker job), in a few statements per kind:
    the letters of demand rendered together, every message queued through one notifications.send_many (contact caps and
    quiet hours apply there), suspensions through the customers account lifecycle (one account at a time: products
    and partners follow its event), then the actions' states (one audit event each), notes and memos set-based.

    Each action is carried out once, also with two workers on the same range (the rows are claimed locked). An action
    that fails (no template, a letter that does not render, a refused suspension) is marked failed with the reason and
    the others go on. Returns counts by outcome (perform / skip / fail)."""
    todo = _claim(session, run_id=run_id, from_id=from_id, to_id=to_id)
    if not todo:
        return {}
    try:
        company = company_profile(session)
    except NotFound:
        company = {}
    result: dict[int, tuple[str, str]] = {}  # action id -> (lifecycle action, memo)
    message_of: dict[int, int] = {}
    sends: list[tuple[Any, notifications.Outgoing]] = []

    def outgoing(r: Any, channel: str, attachments: tuple[notifications.Attachment, ...] = ()) -> notifications.Outgoing:
        return notifications.Outgoing(event=r.template_event or "dunning.reminder", account_id=r.account_id, context=_ctx(r, company),
                                      channel=channel, subject_ref=f"dunning_action:{r.id}", attachments=attachments,
                                      idempotency_key=f"dunning-action:{r.id}:{channel}")

    def owed(r: Any) -> str:
        return f"{Money.from_minor(r.overdue_minor, r.currency)} overdue {r.days_overdue} d"

    # letters: the ones a previous attempt rendered are kept; the rest rendered together and stored in one statement
    letter_rows = [r for r in todo if r.action == StepAction.LETTER_OF_DEMAND]
    letter_ids: dict[int, int] = {}
    if letter_rows:
        letter_ids = {int(a): int(i) for a, i in session.execute(select(DunningLetter.action_id, DunningLetter.id)
                                                                 .where(DunningLetter.action_id.in_([r.id for r in letter_rows]))).all()}
        missing = [r for r in letter_rows if r.id not in letter_ids]
        pdfs = render_letters(missing, company=company, notice_days={r.step_id: r.notice_days for r in missing})
        new = [{"action_id": r.id, "account_id": r.account_id, "content": pdfs[r.id], "size_bytes": len(pdfs[r.id]), "rendered_at": now}  # type: ignore[arg-type]
               for r in missing if isinstance(pdfs[r.id], bytes)]
        if new:
            letter_ids |= {int(a): int(i) for i, a in session.execute(insert(DunningLetter).returning(DunningLetter.id, DunningLetter.action_id), new).all()}
        for r in missing:
            if not isinstance(pdfs[r.id], bytes):
                result[r.id] = ("fail", f"Dunning: letter of demand failed: the PDF did not render ({pdfs[r.id]})")
    for r in todo:
        what = LABELS.get(StepAction(r.action), r.action)
        if r.id in result:
            continue
        if r.action in (StepAction.REMINDER_EMAIL, StepAction.REMINDER_SMS, StepAction.SUSPENSION_WARNING):
            channel = "sms" if r.action == StepAction.REMINDER_SMS else "email"
            sends.append((r, outgoing(r, channel)))
            result[r.id] = ("perform", f"Dunning: {what} ({r.step_name}) queued by {channel}; {owed(r)}. Message {{message}}.")
        elif r.action == StepAction.LETTER_OF_DEMAND:
            sends.append((r, outgoing(r, "email", (notifications.Attachment(filename=f"letter-of-demand-DUN-{r.id}.pdf", content_type="application/pdf",
                                                                             ref=("dunning_letter", "content", letter_ids[r.id])),))))
            result[r.id] = ("perform", f"Dunning: letter of demand DUN-{r.id} sent; {owed(r)}; pay by {_ctx(r, company)['debt']['pay_by']}.")
        elif r.action == StepAction.SUSPEND:
            if r.status != AccountStatus.ACTIVE:
                result[r.id] = ("skip", f"Dunning: suspension step reached ({owed(r)}); the account is already {r.status}.")
                continue
            try:
                with session.begin_nested():
                    customers.transition_account(session, account_id=r.account_id, action="suspend", now=now, actor=SYSTEM,
                                                 reason=f"dunning: {r.step_name}, {owed(r)} (DUN-{r.id})")
            except OpslineError as exc:
                result[r.id] = ("fail", f"Dunning: {what} failed: {exc.detail}")
                continue
            sends.append((r, outgoing(r, "email")))
            result[r.id] = ("perform", f"Dunning: account suspended ({r.step_name}); {owed(r)}.")
        else:
            result[r.id] = ("skip", f"Dunning: {what} needs a person.")
    if sends:
        sent = notifications.send_many(session, messages=[o for _, o in sends], now=now, actor=SYSTEM, category="collections")
        for (r, _), got in zip(sends, sent):
            if isinstance(got, int):
                message_of[r.id] = got
                move, memo = result[r.id]
                result[r.id] = (move, memo.replace("{message}", str(got)))
            else:
                what = LABELS.get(StepAction(r.action), r.action)
                if r.action == StepAction.SUSPEND:  # the account is suspended; only the notice failed
                    result[r.id] = ("perform", result[r.id][1] + f" The notice was not sent: {got.detail}")
                else:
                    result[r.id] = ("fail", f"Dunning: {what} failed: {got.detail}")
    # states, notes and memos, set-based
    session.execute(update(DunningAction), [{"id": r.id, "note": result[r.id][1], "done_at": now, "message_id": message_of.get(r.id)} for r in todo])
    out: dict[str, int] = {}
    by_move: dict[str, list[int]] = {}
    for r in todo:
        by_move.setdefault(result[r.id][0], []).append(r.id)
    for move, ids in by_move.items():
        if move == "perform":
            lifecycle.transition_many(session, DUNNING_ACTION, DunningAction, ids, "perform", now=now, actor=SYSTEM)
        else:  # few: each with its own reason on the timeline
            for a in session.execute(select(DunningAction).where(DunningAction.id.in_(ids)).order_by(DunningAction.id)).scalars():
                lifecycle.transition(session, DUNNING_ACTION, a, move, now=now, actor=SYSTEM, reason=result[a.id][1], label=f"dunning action DUN-{a.id}")
        out[move] = len(ids)
    customers.add_memos(session, memos=[(r.account_id, result[r.id][1]) for r in todo], category="debtors", now=now, actor=SYSTEM)
    session.flush()
    return out


def perform_job(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    return perform_actions(session, run_id=int(payload["run_id"]), from_id=payload.get("from_id"), to_id=payload.get("to_id"), now=now)


DISCONTINUE = (StepAction.DISCONTINUANCE, StepAction.FINAL_ACCOUNT)


def decide(session: Session, *, action_id: int, decision: str, reason: str | None, now: datetime, actor: Actor) -> list[str]:
    """A person accepts (done) or dismisses (with a reason) a proposed action; memo on the account.

    Accepting a discontinuance or final-account step publishes `dunning.discontinuance_accepted` in this transaction:
    the cancellations area opens (or links) a non-payment journey per live product, and the action's note and memo
    name the journeys. The action row is locked first, so a second accept (also a concurrent one) is refused and never
    opens a second journey. Nothing is changed when it raises.
    Raises NotFound, InvalidInput (decision), TransitionNotAllowed, ActionNotPermitted, ReasonRequired, and what the
    journey raises (e.g. UnableToDiscontinue: nothing live to end)."""
    if decision not in ("accept", "dismiss"):
        from opsline.core.errors import InvalidInput

        raise InvalidInput(f"'{decision}' is not a decision (accept or dismiss)", field="decision")
    with session.begin_nested():
        # populate_existing: the state another transaction committed while we waited for the lock
        q = select(DunningAction).where(DunningAction.id == action_id).execution_options(populate_existing=True)
        a = session.execute(q.with_for_update() if session.get_bind().dialect.name == "postgresql" else q).scalar_one_or_none()
        if a is None:
            raise NotFound(f"dunning action {action_id} not found", field="action_id")
        nxt = lifecycle.transition(session, DUNNING_ACTION, a, decision, now=now, actor=actor, reason=reason, label=f"dunning action DUN-{a.id}")
        a.decided_by, a.done_at = actor.name, now
        what = LABELS.get(StepAction(a.action), a.action)
        body = f"Dunning: {what} (DUN-{a.id}) {'done' if decision == 'accept' else 'dismissed'} by {actor.name}" + (f": {reason.strip()}" if reason and reason.strip() else "")
        if decision == "accept" and a.action in DISCONTINUE:
            from opsline.cancellations import dunning as discontinuance  # the read side of the journeys the event opened
            from opsline.core import domain_events

            ref = f"DUN-{a.id}"
            domain_events.publish(session, "dunning.discontinuance_accepted", {"id": a.id, "account_id": a.account_id, "action": a.action,
                                                                                "reference": ref, "decided_by": actor.name}, now=now, actor=actor)
            journeys = discontinuance.journeys_for_dunning(session, account_id=a.account_id, dunning_ref=ref)
            if journeys:
                body += "; cancellation journey " + ", ".join(f"{j['reference']} ({'opened' if j['opened'] else 'already open, linked'})" for j in journeys)
            a.note = body[:4000]
        customers.add_memo(session, account_id=a.account_id, data=MemoIn(category="debtors", body=body[:4000]), now=now, actor=actor)
        session.flush()
    return nxt


def letter_pdf(session: Session, *, action_id: int) -> tuple[str, bytes]:
    """(file name, PDF) of the letter of demand an action sent. Raises NotFound."""
    letter = session.execute(select(DunningLetter).where(DunningLetter.action_id == action_id)).scalar_one_or_none()
    if letter is None:
        raise NotFound(f"no letter of demand for dunning action {action_id}", field="action_id")
    return f"letter-of-demand-DUN-{action_id}.pdf", letter.content

