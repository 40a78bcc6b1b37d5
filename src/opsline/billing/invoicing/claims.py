"""Billing claims (disputes): raise against invoice lines, review, uphold (credit note), reject (customer told why), withdraw.
Open claims hold their disputed amount out of dunning (`disputed_amount`, `disputed_by_invoice`)."""

from __future__ import annotations

from opsline.config import DEFAULT_CURRENCY

from datetime import date, datetime
from typing import Any, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsline.billing.invoicing.credits import CreditItem, creditable_by_line, issue_credit_note, parse_amount
from opsline.billing.invoicing.invoices import InvoiceState, get_invoice_row
from opsline.billing.invoicing.models import CLAIM, OPEN_CLAIM_STATES, BillingClaim, BillingClaimLine, ClaimAttachment, ClaimState, CompanyProfile
from opsline.billing.models import InvoiceLine
from opsline.core import events, jobs, lifecycle
from opsline.core.calendar.days import add_business_days
from opsline.core.errors import Conflict, InvalidInput, NotFound, StaleVersion, TransitionNotAllowed
from opsline.core.events import Actor
from opsline.billing.invoicing.tz import local_zone
from opsline.core.localtime import local_date
from opsline.core.money import Money, allocate_minor

CHANNELS = ("phone", "email", "web", "walk_in", "letter", "api")

DECIDING = {"uphold", "partially_uphold", "reject"}


class UnableToRaiseClaim(InvalidInput):
    title = "Unable to raise claim"
    type_slug = "unable-to-raise-claim"


class ClaimExceedsLine(Conflict):
    title = "Claim exceeds the line"
    type_slug = "claim-exceeds-line"


class ClaimTransitionNotAllowed(TransitionNotAllowed):
    pass


class UnableToDecideClaim(InvalidInput):
    title = "Unable to decide claim"
    type_slug = "unable-to-decide-claim"


def business_days_after(now: datetime, days: int, *, country: str | None, tz: str | None = None) -> date:
    """The date `days` business days (weekdays, not the country's public holidays) after `now`'s local date."""
    return add_business_days(local_date(now, local_zone(tz)), days, holiday_country=country)


def allowed_actions(state: str, *, actor: Actor | None = None) -> list[str]:
    return CLAIM.allowed_actions(state, actor=actor)


def _profile(session: Session) -> CompanyProfile | None:
    return session.execute(select(CompanyProfile).order_by(CompanyProfile.code).limit(1)).scalar_one_or_none()


def open_disputed_by_line(session: Session, *, invoice_id: int, exclude_claim_id: int | None = None) -> dict[int, int]:
    q = (select(BillingClaimLine.invoice_line_id, func.sum(BillingClaimLine.disputed_minor))
         .join(BillingClaim, BillingClaim.id == BillingClaimLine.claim_id)
         .where(BillingClaim.invoice_id == invoice_id, BillingClaim.state.in_(OPEN_CLAIM_STATES)))
    if exclude_claim_id:
        q = q.where(BillingClaim.id != exclude_claim_id)
    return {int(a): int(b or 0) for a, b in session.execute(q.group_by(BillingClaimLine.invoice_line_id)).all()}


def raise_claim(
    session: Session, *, invoice_id: int, lines: Sequence[tuple[int, Money]], reason: str, channel: str, now: datetime, actor: Actor,
    attachments: Sequence[tuple[str, str, bytes]] = (), owner: str | None = None, tz: str | None = None,
) -> BillingClaim:
    """Raise a claim disputing amounts (tax-inclusive) on lines of a finalised invoice; SLA due date from the company profile
    (business days). Raises NotFound, UnableToRaiseClaim (no reason/lines, draft invoice, unknown channel, attachment too big),
    ClaimExceedsLine (more than the line's remaining un-credited, un-disputed amount)."""
    reason = (reason or "").strip()
    if not reason:
        raise UnableToRaiseClaim("a claim needs a reason", field="reason")
    if channel not in CHANNELS:
        raise UnableToRaiseClaim(f"channel '{channel}' is not one of {', '.join(CHANNELS)}", field="channel")
    if not lines:
        raise UnableToRaiseClaim("choose at least one invoice line to dispute", field="lines")
    inv = get_invoice_row(session, invoice_id=invoice_id, lock=True)
    if inv.number is None or inv.state == InvoiceState.DRAFT:
        raise UnableToRaiseClaim(f"invoice {inv.id} is not finalised", field="invoice_id")
    inv_lines = {ln.id: ln for ln in session.execute(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id)).scalars()}
    remaining = creditable_by_line(session, invoice_id=invoice_id)
    disputed = open_disputed_by_line(session, invoice_id=invoice_id)
    profile = _profile(session)
    max_bytes = profile.max_attachment_bytes if profile else 2_000_000
    for fname, _ctype, content in attachments:
        if len(content) > max_bytes:
            raise UnableToRaiseClaim(f"attachment '{fname}' is {len(content):,} bytes; the limit is {max_bytes:,}", field="attachments")
    items: list[tuple[Any, int]] = []
    for line_id, amount in lines:
        ln = inv_lines.get(line_id)
        if ln is None:
            raise UnableToRaiseClaim(f"line {line_id} is not on invoice {inv.number}", field="lines")
        if amount.currency != ln.currency:
            raise UnableToRaiseClaim(f"line {line_id} is in {ln.currency}, not {amount.currency}", field="amount")
        minor = amount.rounded().minor
        if minor <= 0:
            raise UnableToRaiseClaim("the disputed amount must be more than zero", field="amount")
        if minor > ln.total_minor:
            raise ClaimExceedsLine(f"line '{ln.description}' is {Money.from_minor(ln.total_minor, ln.currency)}; {amount} cannot be disputed", field="amount",
                                   extra={"invoice_line_id": ln.id})
        open_room = remaining.get(ln.id, 0) - disputed.get(ln.id, 0)
        if minor > open_room:
            raise ClaimExceedsLine(
                f"line '{ln.description}' has {Money.from_minor(max(0, open_room), ln.currency)} left to dispute "
                f"(invoiced {Money.from_minor(ln.total_minor, ln.currency)}, credited {Money.from_minor(ln.total_minor - remaining.get(ln.id, 0), ln.currency)}, "
                f"in open claims {Money.from_minor(disputed.get(ln.id, 0), ln.currency)}); {amount} is too much", field="amount", extra={"invoice_line_id": ln.id})
        items.append((ln, minor))
    sla_days = profile.claim_sla_business_days if profile else 10
    due = business_days_after(now, sla_days, country=profile.country if profile else None, tz=tz)
    claim = BillingClaim(account_id=inv.account_id, invoice_id=inv.id, state=ClaimState.SUBMITTED, reason=reason, channel=channel, owner=owner,
                         currency=inv.currency, disputed_minor=sum(m for _, m in items), raised_at=now, raised_by=actor.name, due_date=due)
    session.add(claim)
    session.flush()
    session.add_all([BillingClaimLine(claim_id=claim.id, account_id=inv.account_id, invoice_line_id=ln.id, disputed_minor=m, currency=ln.currency) for ln, m in items])
    session.add_all([ClaimAttachment(claim_id=claim.id, account_id=inv.account_id, filename=f[:200], content_type=(c or "application/octet-stream")[:100], content=b,
                                     size_bytes=len(b), uploaded_at=now, uploaded_by=actor.name) for f, c, b in attachments])
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="billing_claim", entity_id=claim.id, action="raised", account_id=inv.account_id, reason=reason,
                  after={"invoice": inv.number, "disputed_minor": claim.disputed_minor, "currency": claim.currency, "due_date": due.isoformat(), "channel": channel})
    return claim


def transition_claim(
    session: Session, *, claim_id: int, action: str, now: datetime, actor: Actor, reason: str | None = None, upheld: Money | None = None,
    version: int | None = None,
) -> list[str]:
    """Move a claim along its lifecycle; returns the next allowed actions. Uphold issues a credit note for the disputed amount
    (partially_uphold: for `upheld`), linked to the claim; reject records the reason and emails it to the customer.
    Raises NotFound, StaleVersion, ClaimTransitionNotAllowed, UnableToDecideClaim (missing reason / bad partial amount)."""
    claim = session.get(BillingClaim, claim_id)
    if claim is None:
        raise NotFound(f"claim {claim_id} does not exist")
    if version is not None and version != claim.version:
        raise StaleVersion(f"claim {claim_id} was changed by someone else; reload and try again")
    target = CLAIM.target(claim.state, action)
    if target is None:
        raise ClaimTransitionNotAllowed(f"claim {claim_id} is {claim.state}; '{action}' is not allowed "
                                        f"(allowed: {', '.join(allowed_actions(claim.state)) or 'none'})", field="action")
    reason = (reason or "").strip() or None
    if action in DECIDING and not reason:
        raise UnableToDecideClaim("say why (the customer is told)", field="reason")
    upheld_minor: int | None = None
    if action == "uphold":
        upheld_minor = claim.disputed_minor
    elif action == "partially_uphold":
        if upheld is None or upheld.currency != claim.currency:
            raise UnableToDecideClaim(f"give the upheld amount in {claim.currency}", field="upheld")
        upheld_minor = upheld.rounded().minor
        if not 0 < upheld_minor < claim.disputed_minor:
            raise UnableToDecideClaim(f"a partial uphold must be more than zero and less than the disputed {Money.from_minor(claim.disputed_minor, claim.currency)}", field="upheld")
    if action == "review" and not claim.owner:
        claim.owner = actor.name
    # the lifecycle checks permission first: nothing (no credit note) is written for an actor who may not decide
    nxt = lifecycle.transition(session, CLAIM, claim, action, now=now, actor=actor, reason=reason,
                               details={"upheld_minor": upheld_minor or 0} if action in DECIDING else None)
    if upheld_minor:
        cl = list(session.execute(select(BillingClaimLine).where(BillingClaimLine.claim_id == claim.id).order_by(BillingClaimLine.id)).scalars())
        parts = allocate_minor(upheld_minor, [c.disputed_minor for c in cl])
        cn = issue_credit_note(session, invoice_id=claim.invoice_id, items=[CreditItem(c.invoice_line_id, p) for c, p in zip(cl, parts) if p > 0],
                               reason=f"Claim {claim.id} {target}: {reason}", now=now, actor=actor, source="claim", idempotency_key=f"claim:{claim.id}")
        claim.credit_note_id = cn.id
        claim.upheld_minor = upheld_minor
    if action in DECIDING:
        claim.decided_at = now
        claim.outcome = str(target)
        claim.outcome_reason = reason
        if action == "reject":
            claim.upheld_minor = 0
    session.flush()
    if action in DECIDING:
        jobs.enqueue(session, kind="invoicing.email_claim_outcome", payload={"claim_id": claim.id}, now=now, idempotency_key=f"claim-outcome:{claim.id}")
    return nxt


def claim_dict(c: BillingClaim, *, now: datetime | None = None) -> dict[str, Any]:
    return {"id": c.id, "account_id": c.account_id, "invoice_id": c.invoice_id, "state": c.state, "reason": c.reason, "channel": c.channel, "owner": c.owner,
            "currency": c.currency, "disputed_minor": c.disputed_minor, "upheld_minor": c.upheld_minor, "raised_at": c.raised_at, "raised_by": c.raised_by,
            "due_date": c.due_date, "decided_at": c.decided_at, "outcome": c.outcome, "outcome_reason": c.outcome_reason, "credit_note_id": c.credit_note_id,
            "version": c.version, "actions": allowed_actions(c.state),
            "overdue": bool(now and c.state in OPEN_CLAIM_STATES and c.due_date < now.date())}


def get_claim(session: Session, *, claim_id: int, now: datetime | None = None) -> dict[str, Any]:
    """A claim with lines and attachment names. Raises NotFound."""
    c = session.get(BillingClaim, claim_id)
    if c is None:
        raise NotFound(f"claim {claim_id} does not exist")
    lines = session.execute(select(BillingClaimLine, InvoiceLine.description, InvoiceLine.total_minor).join(InvoiceLine, InvoiceLine.id == BillingClaimLine.invoice_line_id)
                            .where(BillingClaimLine.claim_id == claim_id).order_by(BillingClaimLine.id)).all()
    atts = session.execute(select(ClaimAttachment.id, ClaimAttachment.filename, ClaimAttachment.size_bytes).where(ClaimAttachment.claim_id == claim_id)).all()
    return claim_dict(c, now=now) | {
        "lines": [{"invoice_line_id": r[0].invoice_line_id, "description": r[1], "line_total_minor": r[2], "disputed_minor": r[0].disputed_minor} for r in lines],
        "attachments": [{"id": a[0], "filename": a[1], "size_bytes": a[2]} for a in atts],
    }


def list_claims(session: Session, *, account_id: int | None = None, invoice_id: int | None = None, open_only: bool = False, now: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
    q = select(BillingClaim)
    if account_id is not None:
        q = q.where(BillingClaim.account_id == account_id)
    if invoice_id is not None:
        q = q.where(BillingClaim.invoice_id == invoice_id)
    if open_only:
        q = q.where(BillingClaim.state.in_(OPEN_CLAIM_STATES))
    return [claim_dict(c, now=now) for c in session.execute(q.order_by(BillingClaim.id.desc()).limit(limit)).scalars()]


def attachment(session: Session, *, attachment_id: int) -> ClaimAttachment:
    a = session.get(ClaimAttachment, attachment_id)
    if a is None:
        raise NotFound(f"attachment {attachment_id} does not exist")
    return a


def disputed_amount(session: Session, *, account_id: int, currency: str = DEFAULT_CURRENCY) -> Money:
    """What the account disputes in open claims (submitted / in review): held out of dunning."""
    v = session.execute(select(func.coalesce(func.sum(BillingClaim.disputed_minor), 0)).where(
        BillingClaim.account_id == account_id, BillingClaim.state.in_(OPEN_CLAIM_STATES), BillingClaim.currency == currency)).scalar_one()
    return Money.from_minor(int(v), currency)


def disputed_by_invoice(session: Session, *, account_id: int) -> dict[int, Money]:
    """Invoice id -> amount disputed in open claims."""
    rows = session.execute(select(BillingClaim.invoice_id, BillingClaim.currency, func.sum(BillingClaim.disputed_minor)).where(
        BillingClaim.account_id == account_id, BillingClaim.state.in_(OPEN_CLAIM_STATES)).group_by(BillingClaim.invoice_id, BillingClaim.currency)).all()
    return {int(i): Money.from_minor(int(s), c) for i, c, s in rows}


def disputed_by_account(session: Session, *, account_ids: Sequence[int] | None = None) -> dict[int, int]:
    """Account id -> open disputed minor units (one query; for dunning runs over many accounts)."""
    q = select(BillingClaim.account_id, func.sum(BillingClaim.disputed_minor)).where(BillingClaim.state.in_(OPEN_CLAIM_STATES))
    if account_ids is not None:
        q = q.where(BillingClaim.account_id.in_(list(account_ids)))
    return {int(a): int(s) for a, s in session.execute(q.group_by(BillingClaim.account_id)).all()}


def raise_claim_from_form(session: Session, *, invoice_id: int, disputes: dict[int, str], reason: str, channel: str, now: datetime, actor: Actor,
                          attachments: Sequence[tuple[str, str, bytes]] = ()) -> BillingClaim:
    """The claim form: disputed amounts typed per line id. Raises UnableToCredit (not an amount) and as raise_claim."""
    inv = get_invoice_row(session, invoice_id=invoice_id)
    lines = [(line_id, parse_amount(raw, inv.currency, "amount")) for line_id, raw in disputes.items() if raw.strip()]
    return raise_claim(session, invoice_id=invoice_id, lines=lines, reason=reason, channel=channel, now=now, actor=actor, attachments=attachments)


def decide_from_form(session: Session, *, claim_id: int, action: str, reason: str, upheld: str, version: str, now: datetime, actor: Actor) -> list[str]:
    """The claim decision form (typed upheld amount and version). Raises as transition_claim."""
    c = session.get(BillingClaim, claim_id)
    if c is None:
        raise NotFound(f"claim {claim_id} does not exist")
    amt = parse_amount(upheld, c.currency, "upheld") if upheld.strip() else None
    return transition_claim(session, claim_id=claim_id, action=action, now=now, actor=actor, reason=reason, upheld=amt,
                            version=int(version) if version.isdigit() else None)
