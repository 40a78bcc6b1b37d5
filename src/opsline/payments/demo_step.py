"""Demo: months of payments against the demo invoices, generated with realistic behaviour per segment and imported through the
real service as one file of each format (MT940, camt.053, bank CSV, debit-order results, then a file of unpaids), so the
desk shows a realistic match rate, proposals to approve and a real suspense queue."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from opsline.core.events import Actor
from opsline.db.session import make_sessionmaker
from opsline.core.money import Money
from opsline.payments import allocations, behaviour, imports, refunds
from opsline.payments.models import PaymentState
from opsline.payments.queries import bind_ts
from opsline.payments.behaviour import OpenInvoice

CLERK = Actor(name="debtors", roles=frozenset({"debtors_clerk"}))
MANAGER = Actor(name="debtorsmgr", roles=frozenset({"debtors_manager"}))
MAX_INVOICES = 1_000_000  # the oldest due first: above ~300,000 accounts this month's invoices stay open
UNPAID_REASONS = ("02", "02", "02", "04", "03", "30")


def open_invoices(session: Session, *, limit: int, currency: str) -> list[OpenInvoice]:
    """Issued invoices with money still open (total − credit notes − allocations), oldest due first."""
    rows = session.execute(text("""
        SELECT i.id, i.account_id, a.account_number, a.name, i.number, i.due_date, a.segment_code,
               i.total_minor - COALESCE(cn.s, 0) - COALESCE(al.s, 0) AS open_minor
        FROM invoice i JOIN account a ON a.id = i.account_id
        LEFT JOIN (SELECT invoice_id, SUM(total_minor) AS s FROM credit_note GROUP BY invoice_id) cn ON cn.invoice_id = i.id
        LEFT JOIN (SELECT invoice_id, SUM(amount_minor) AS s FROM payment_allocation WHERE state IN ('allocated','proposed') GROUP BY invoice_id) al
               ON al.invoice_id = i.id
        WHERE i.number IS NOT NULL AND i.due_date IS NOT NULL AND i.total_minor > 0 AND i.currency = :cur
        ORDER BY i.due_date, i.id LIMIT :n"""), {"n": limit, "cur": currency}).all()
    return [OpenInvoice(invoice_id=r.id, account_id=r.account_id, account_number=r.account_number, account_name=r.name, invoice_number=r.number,
                        open_minor=int(r.open_minor), due_date=r.due_date if isinstance(r.due_date, date) else date.fromisoformat(str(r.due_date)),
                        segment=r.segment_code) for r in rows if r.open_minor > 0]


def chronic(account_id: int) -> bool:
    """About 2 % of accounts never pay: the debtors desk's dunning, suspensions and Top 10."""
    return account_id % 47 == 5


def late(account_id: int) -> bool:
    """About 4 % pay a month late: last month's invoice still open, 30 days overdue."""
    return account_id % 23 == 3


def _files(lines: list, *, day: date, currency: str, unpaids: bool) -> list[tuple[str, bytes, str | None, str | None]]:
    """One statement per bank and one debit-order result file for a payment day's lines (plus a file of unpaids)."""
    eft = [ln for ln in lines if ln.channel != "debit_order"]
    dos = [ln for ln in lines if ln.channel == "debit_order"]
    thirds = [eft[k::3] for k in range(3)]
    files = [
        (f"fnb-{day:%Y%m%d}.sta", behaviour.mt940(thirds[0], account="250655/62012345678", opening_minor=1_250_000_00, currency=currency), None, None),
        (f"nedbank-camt053-{day:%Y%m%d}.xml", behaviour.camt053(thirds[1], account="1020304050", opening_minor=480_000_00, currency=currency), None, None),
        (f"standard-bank-{day:%Y%m%d}.csv", behaviour.standard_bank_csv(thirds[2]), "csv", "standard-bank"),
        (f"debit-orders-{day:%Y%m%d}.csv", behaviour.debit_results(dos), None, None),
    ]
    unpaid = {ln.collection_ref: UNPAID_REASONS[k % len(UNPAID_REASONS)] for k, ln in enumerate(dos) if k % 29 == 3} if unpaids else {}
    if unpaid:
        files.append((f"debit-order-unpaids-{day + timedelta(days=3):%Y%m%d}.csv", behaviour.debit_results(dos, unpaid=unpaid), None, None))
    return files


def _work(factory: Any, truth: dict[str, int], *, at: datetime) -> None:
    """What the clerk did with a month's leftovers: approved the proposals and, having phoned the payers, allocated the
    suspense money to the accounts it belonged to (unknown deposits stay in suspense)."""
    with factory.begin() as s:
        ids = list(s.execute(text("SELECT id FROM payment WHERE state = :st"), {"st": PaymentState.PROPOSED.value}).scalars())
        if ids:
            allocations.approve_proposals(s, payment_ids=ids, now=at, actor=CLERK)
        items = s.execute(text("""SELECT si.id, si.amount_minor, si.currency, sl.bank_reference FROM suspense_item si
                                  JOIN payment p ON p.id = si.payment_id JOIN statement_line sl ON sl.id = p.statement_line_id
                                  WHERE si.closed_at IS NULL AND si.amount_minor > 0 ORDER BY si.id""")).all()
        for item_id, amount, cur, ref in items:
            if ref in truth:
                allocations.allocate_suspense(s, suspense_item_id=item_id, parts=[allocations.Part(account_id=truth[ref], amount=Money.from_minor(amount, cur))],
                                              reason="Payer identified by phone", now=at, actor=CLERK)
        # money nobody could place for a month goes back to the payer (a second person approves above the limit)
        stale = s.execute(text("""SELECT si.id, si.amount_minor, si.currency, p.payer_name, p.payer_account FROM suspense_item si
                                  JOIN payment p ON p.id = si.payment_id
                                  WHERE si.closed_at IS NULL AND si.amount_minor > 0 AND si.opened_at < :cut AND p.payer_account <> ''
                                  ORDER BY si.id"""), {"cut": bind_ts(s, at - timedelta(days=25))}).all()
        for item_id, amount, cur, payer, payer_account in stale:
            res = refunds.request_refund(s, suspense_item_id=item_id, amount=Money.from_minor(amount, cur), payee_name=payer, payee_account=payer_account,
                                         reason="Unidentified for a month; returned to the payer", now=at, actor=CLERK)
            if res["state"] == "requested":
                refunds.approve_refund(s, refund_id=res["refund_id"], now=at, actor=MANAGER)


def run(ctx: Any) -> None:
    """Each month's invoices paid around their due date by realistic behaviour, imported as one file per bank; the
    latest month partly still open (not yet due), late payers a month behind, chronic non-payers never."""
    factory = make_sessionmaker(ctx.engine)
    with factory() as s:
        currency = s.execute(text("SELECT currency FROM account GROUP BY currency ORDER BY COUNT(*) DESC LIMIT 1")).scalar()
        invoices = open_invoices(s, limit=MAX_INVOICES, currency=currency) if currency else []
    if not invoices:
        ctx.counts["payments"] = 0
        return
    # invoices due before this month, by due month; everything due this month or later is one group: this week's files
    this_month = (ctx.now.year, ctx.now.month)
    by_month: dict[tuple[int, int], list[OpenInvoice]] = {}
    for inv in invoices:
        by_month.setdefault(min((inv.due_date.year, inv.due_date.month), this_month), []).append(inv)
    months = sorted(by_month)
    latest_day = (ctx.now - timedelta(days=3)).date()
    plan = []
    truth: dict[str, int] = {}
    seq = 1
    for k, month in enumerate(months):
        group = [inv for inv in by_month[month] if not chronic(inv.account_id)]
        if k == len(months) - 1:
            # a quarter of this month's invoices are still open (not yet due): the sample files have lines to match
            keep, day = [inv for inv in group if inv.invoice_id % 4 != 0], latest_day
        else:
            keep = [inv for inv in group if not (k == len(months) - 2 and late(inv.account_id))]
            day = min(min(inv.due_date for inv in group) + timedelta(days=1), latest_day) if group else latest_day
        # unknown deposits and bank charges: the latest statements carry the most still waiting in suspense
        noise = max(4, len(keep) // 200) if k == len(months) - 1 else max(1, len(keep) // 800)
        lines = behaviour.behave(keep, rng=ctx.rng, day=day, seq_start=seq, noise=noise)
        seq += len(keep) + len(lines) + 1
        plan += [(day, f) for f in _files(lines, day=day, currency=currency, unpaids=k == len(months) - 1)]
        if k < len(months) - 1:  # the clerk worked the older months' proposals and suspense before the next month's files
            truth.update({ln.bank_reference: ln.truth_account for ln in lines if ln.truth_account})
            plan.append((day, ("", b"", "worked", None)))
    task = ctx.progress.add_task("payments", total=len(plan))
    totals = {"payments": 0, "allocated": 0, "proposed": 0, "suspense": 0}
    for day, (name, data, fmt, mapping) in plan:
        if fmt == "worked":
            _work(factory, truth, at=datetime.combine(day + timedelta(days=2), time(9, 0), tzinfo=timezone.utc))
        elif data.count(b"\n") >= 2:
            at = datetime.combine(day + timedelta(days=3 if "unpaids" in name else 1), time(7, 0), tzinfo=timezone.utc)
            with factory.begin() as s:
                res = imports.import_statement(s, data=data, filename=name, fmt=fmt, mapping_name=mapping, now=min(at, ctx.now), actor=CLERK)
            for k in totals:
                totals[k] += int(res.get(k, 0))
        ctx.progress.advance(task)
    ctx.counts.update({f"payments_{k}": v for k, v in totals.items()})
