"""Partner invoice import and reconciliation: an FNO's monthly CSV (line id, period, amount) is checked line by line
(any bad line refuses the whole file, naming file, line and field), stored, and reconciled against our inventory in
set-based SQL: lines billed for days they were not active with us (terminated, never active), active lines billed at
another price than the wholesale cost, lines active with us all month that the FNO did not bill. Each finding carries
the amount at stake and links to its line, product and cancellation journey; the overbilled ones can be disputed.

Expected cost of a line for the month: the offering's wholesale cost valid on the 1st (else the partner's monthly line
cost), pro rata to the days any product on that line was active in the month, rounded half up once per line."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from opsline.assurance.models import DISPUTABLE, FINDING, AssuranceFinding, FindingKind, PartnerInvoice, PartnerInvoiceLine
from opsline.billing.sql import dialect_of, half_up
from opsline.core import events, lifecycle
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.core.money import UnparseableAmount, parse_minor
from opsline.core.textfiles import UnreadableTextFile, decode_text_file
from opsline.partners.models import Partner

MAX_LINES = 200_000
_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")
_HEADER = {"line_id", "line id", "line", "line_ref", "circuit", "circuit_id"}


class UnableToImportInvoice(InvalidInput):
    title = "Cannot import the partner invoice"
    type_slug = "unable-to-import-partner-invoice"


def parse_period(raw: str, *, field: str = "period") -> date:
    """'2026-11' -> date(2026, 11, 1). Raises UnableToImportInvoice naming `field`."""
    m = _PERIOD.match((raw or "").strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise UnableToImportInvoice(f"'{(raw or '')[:20]}' is not a month (YYYY-MM)", field=field)
    return date(int(m.group(1)), int(m.group(2)), 1)


def next_month(d: date) -> date:
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)


def parse_invoice(data: bytes, *, file_name: str, period: date, currency: str) -> tuple[list[tuple[int, str, int]], str]:
    """The lines of an invoice file as (file line number, line id, amount in minor units) and the encoding read.
    A first row naming the columns (line id, period, amount) is skipped. Raises UnableToImportInvoice naming the file,
    the line and the field of the first problem: unreadable bytes, a row without three fields, an empty or too long
    line id, another month than `period`, an amount that is not money, a line id billed twice, or no line at all."""
    try:
        body, encoding = decode_text_file(data)
    except UnreadableTextFile as exc:
        raise UnableToImportInvoice(f"{file_name}: {exc}", field="file", extra={"line": exc.line}) from None
    want = f"{period:%Y-%m}"
    seen: dict[str, int] = {}
    out: list[tuple[int, str, int]] = []
    delimiter = ";" if body.split("\n", 1)[0].count(";") > body.split("\n", 1)[0].count(",") else ","

    def bad(n: int, fld: str, why: str) -> UnableToImportInvoice:
        return UnableToImportInvoice(f"{file_name}, line {n}, field '{fld}': {why}; nothing was imported", field=fld,
                                     extra={"file": file_name, "line": n})

    for n, row in enumerate(csv.reader(io.StringIO(body), delimiter=delimiter), start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if n == 1 and row[0].strip().lower() in _HEADER:
            continue
        if len(row) != 3:
            raise bad(n, "line", f"expected 3 fields (line id, period, amount), found {len(row)}")
        ref, per, amount = (c.strip() for c in row)
        if not ref:
            raise bad(n, "line_id", "the line id is empty")
        if len(ref) > 80:
            raise bad(n, "line_id", "the line id is longer than 80 characters")
        if per != want:
            raise bad(n, "period", f"'{per[:20]}' is not the invoice's month {want}")
        try:
            minor = parse_minor(amount, currency)
        except UnparseableAmount as exc:
            raise bad(n, "amount", f"'{amount[:30]}' is not an amount in {currency} ({exc.reason})") from None
        if ref in seen:
            raise bad(n, "line_id", f"line {ref} is billed twice (also on line {seen[ref]})")
        seen[ref] = n
        out.append((n, ref, minor))
        if len(out) > MAX_LINES:
            raise bad(n, "file", f"more than {MAX_LINES} lines")
    if not out:
        raise UnableToImportInvoice(f"{file_name}: the file has no invoice lines; nothing was imported", field="file")
    return out, encoding


def import_invoice(session: Session, *, partner_code: str, period: str | date, file_name: str, data: bytes, now: datetime,
                   actor: Actor) -> dict[str, Any]:
    """Import an FNO's invoice for a month and reconcile it; returns the invoice summary with its findings per kind.
    Raises UnableToImportInvoice (field `partner`: unknown or not an FNO; `period`; `file`: the same file or the same
    partner and month already imported; a bad line naming file, line and field; `line_id`: lines we never had with
    that FNO). Nothing is written when it raises."""
    per = parse_period(period) if isinstance(period, str) else period.replace(day=1)
    if per > now.date().replace(day=1):
        raise UnableToImportInvoice(f"{per:%Y-%m} has not started yet: an invoice is for a month already begun", field="period")
    partner = session.get(Partner, (partner_code or "").strip())
    if partner is None or partner.kind != "fno":
        raise UnableToImportInvoice(f"'{(partner_code or '')[:30]}' is not an FNO partner code", field="partner")
    digest = hashlib.sha256(data).hexdigest()
    same = session.execute(select(PartnerInvoice.id, PartnerInvoice.partner_code, PartnerInvoice.period, PartnerInvoice.imported_at)
                           .where(PartnerInvoice.file_sha256 == digest)).first()
    if same is not None:
        raise UnableToImportInvoice(f"{file_name}: this file was already imported (invoice {same.id}, {same.partner_code} "
                                    f"{same.period:%Y-%m}, on {same.imported_at:%Y-%m-%d}); nothing was imported", field="file")
    prior = session.execute(select(PartnerInvoice.id).where(PartnerInvoice.partner_code == partner.code, PartnerInvoice.period == per)).scalar()
    if prior is not None:
        raise UnableToImportInvoice(f"{partner.name}'s invoice for {per:%Y-%m} is already imported (invoice {prior}); nothing was imported",
                                    field="period")
    lines, encoding = parse_invoice(data, file_name=file_name, period=per, currency=partner.currency)
    with session.begin_nested():  # a refusal below leaves nothing behind
        inv = PartnerInvoice(partner_code=partner.code, period=per, file_name=file_name[:200], file_sha256=digest, encoding=encoding,
                             lines_count=len(lines), total_minor=sum(a for _, _, a in lines), currency=partner.currency,
                             imported_at=now, imported_by=actor.name)
        session.add(inv)
        session.flush()
        session.execute(insert(PartnerInvoiceLine), [{"invoice_id": inv.id, "line_no": n, "line_ref": ref, "amount_minor": a} for n, ref, a in lines])
        session.execute(text("UPDATE partner_invoice_line SET product_id = (SELECT MAX(p.id) FROM product p WHERE p.partner_code = :pc "
                             "AND p.partner_line_ref = partner_invoice_line.line_ref) WHERE invoice_id = :inv"), {"pc": partner.code, "inv": inv.id})
        unknown = session.execute(select(PartnerInvoiceLine.line_no, PartnerInvoiceLine.line_ref)
                                  .where(PartnerInvoiceLine.invoice_id == inv.id, PartnerInvoiceLine.product_id.is_(None))
                                  .order_by(PartnerInvoiceLine.line_no).limit(6)).all()
        if unknown:
            n_unknown = session.execute(select(func.count()).where(PartnerInvoiceLine.invoice_id == inv.id,
                                                                  PartnerInvoiceLine.product_id.is_(None))).scalar_one()
            first = unknown[0]
            raise UnableToImportInvoice(
                f"{file_name}, line {first.line_no}, field 'line_id': {partner.name} line {first.line_ref} is not a line we have or had with "
                f"{partner.name}" + (f" ({n_unknown} such lines: " + ", ".join(f"line {u.line_no} {u.line_ref}" for u in unknown[:5])
                                     + (", …" if n_unknown > 5 else "") + ")" if n_unknown > 1 else "") + "; nothing was imported",
                field="line_id", extra={"file": file_name, "line": first.line_no, "unknown": n_unknown})
        counts = reconcile(session, invoice_id=inv.id, now=now)
        events.record(session, now=now, actor=actor, entity_type="partner_invoice", entity_id=inv.id, action="import",
                      after={"partner": partner.code, "period": f"{per:%Y-%m}", "file": inv.file_name, "lines": inv.lines_count,
                             "total_minor": inv.total_minor, "findings": counts, "leakage_minor": inv.leakage_minor})
    return invoice_summary(session, invoice_id=inv.id)


def _line_days_sql(dia: Any) -> str:
    start = dia.greatest("q.start_date", dia.d("ps"))
    end = dia.least(f"COALESCE(q.end_date, {dia.d('pe')})", dia.d("pe"))
    return (f"CASE WHEN q.start_date IS NOT NULL AND q.start_date < {dia.d('pe')} AND (q.end_date IS NULL OR q.end_date > {dia.d('ps')}) "
            f"THEN {dia.days(start, end)} ELSE 0 END")


def reconcile(session: Session, *, invoice_id: int, now: datetime) -> dict[str, int]:
    """Write the invoice's findings (three INSERT ... SELECT statements) and its leakage; returns counts per kind."""
    inv = session.get(PartnerInvoice, invoice_id)
    if inv is None:
        raise NotFound(f"partner invoice {invoice_id} not found", field="invoice_id")
    partner = session.get(Partner, inv.partner_code)
    assert partner is not None
    dia = dialect_of(session)
    ps, pe = inv.period, next_month(inv.period)
    mdays = (pe - ps).days
    params = {"inv": inv.id, "pc": inv.partner_code, "ps": dia.bind_date(ps), "pe": dia.bind_date(pe), "mdays": mdays,
              "fallback": partner.monthly_line_cost_minor, "cur": inv.currency, "now": dia.bind_ts(now), "per": dia.bind_date(ps)}
    cost = (f"COALESCE((SELECT pr.amount_minor FROM price pr WHERE pr.offering_id = p.offering_id AND pr.kind = 'wholesale_cost' "
            f"AND pr.valid_from <= {dia.d('ps')} AND (pr.valid_to IS NULL OR pr.valid_to > {dia.d('ps')}) ORDER BY pr.valid_from DESC LIMIT 1), :fallback)")
    journey = "(SELECT MAX(j.id) FROM cancellation_journey j WHERE j.product_id = p.id)"
    cols = ("invoice_id, partner_code, period, kind, line_ref, invoice_line_id, product_id, account_id, journey_id, billed_minor, expected_minor, "
            "amount_minor, currency, detail, state, created_at, updated_at")
    # billed lines: days active in the month over every product on the line, priced at the latest product's offering
    session.execute(text(f"""
        INSERT INTO assurance_finding ({cols})
        SELECT CAST(:inv AS BIGINT), CAST(:pc AS VARCHAR(30)), {dia.d('per')}, CASE WHEN x.days < :mdays THEN 'billed_not_active' ELSE 'price_differs' END, x.line_ref, x.id, x.product_id,
               x.account_id, x.journey_id, x.billed, x.expected, x.billed - x.expected, CAST(:cur AS VARCHAR(3)),
               CASE WHEN x.days = 0 AND x.start_date IS NULL THEN 'never active with us (product ' || x.state || ')'
                    WHEN x.days = 0 THEN 'not active with us in the month (ended ' || COALESCE({dia.date_text('x.end_date')}, '?') || ')'
                    WHEN x.days < :mdays THEN 'active ' || CAST(x.days AS VARCHAR(10)) || ' of ' || CAST(CAST(:mdays AS INTEGER) AS VARCHAR(10)) || ' days'
                         || COALESCE(' (ended ' || {dia.date_text('x.end_date')} || ')', '')
                    ELSE 'billed at another price than the wholesale cost' END,
               'open', :now, :now
        FROM (SELECT l.id, l.line_ref, l.amount_minor AS billed, l.product_id, p.account_id, p.state, p.start_date, p.end_date, {journey} AS journey_id,
                     a.days, CASE WHEN a.days >= :mdays THEN {cost} ELSE {half_up(f'{cost} * a.days', ':mdays')} END AS expected
              FROM partner_invoice_line l
              JOIN product p ON p.id = l.product_id
              JOIN (SELECT l2.id AS line_id, SUM({_line_days_sql(dia)}) AS days
                    FROM partner_invoice_line l2 JOIN product q ON q.partner_code = :pc AND q.partner_line_ref = l2.line_ref
                    WHERE l2.invoice_id = :inv GROUP BY l2.id) a ON a.line_id = l.id
              WHERE l.invoice_id = :inv) x
        WHERE (x.days < :mdays AND x.billed > x.expected) OR (x.days >= :mdays AND x.billed <> x.expected)
    """), params)
    # lines active with us the whole month that the FNO did not bill (one per line: its latest product)
    session.execute(text(f"""
        INSERT INTO assurance_finding ({cols})
        SELECT CAST(:inv AS BIGINT), CAST(:pc AS VARCHAR(30)), {dia.d('per')}, 'not_billed_by_partner', p.partner_line_ref, NULL, p.id, p.account_id, {journey}, 0, {cost}, -{cost}, CAST(:cur AS VARCHAR(3)),
               'active with us all month, not on the invoice', 'open', :now, :now
        FROM product p
        WHERE p.id IN (SELECT MAX(q.id) FROM product q WHERE q.partner_code = :pc AND q.partner_line_ref IS NOT NULL
                         AND q.start_date <= {dia.d('ps')} AND (q.end_date IS NULL OR q.end_date >= {dia.d('pe')})
                         AND NOT EXISTS (SELECT 1 FROM partner_invoice_line l WHERE l.invoice_id = :inv AND l.line_ref = q.partner_line_ref)
                       GROUP BY q.partner_line_ref)
    """), params)
    rows = session.execute(select(AssuranceFinding.kind, func.count(), func.sum(AssuranceFinding.amount_minor))
                           .where(AssuranceFinding.invoice_id == inv.id).group_by(AssuranceFinding.kind)).all()
    counts = {k.value: 0 for k in FindingKind}
    for kind, n, _amount in rows:
        counts[kind] = int(n)
    leakage = session.execute(select(func.coalesce(func.sum(AssuranceFinding.amount_minor), 0))
                              .where(AssuranceFinding.invoice_id == inv.id, AssuranceFinding.kind.in_(DISPUTABLE),
                                     AssuranceFinding.amount_minor > 0)).scalar_one()
    inv.findings_count, inv.leakage_minor = sum(counts.values()), int(leakage)
    session.flush()
    return counts


def invoice_summary(session: Session, *, invoice_id: int) -> dict[str, Any]:
    inv = session.get(PartnerInvoice, invoice_id)
    if inv is None:
        raise NotFound(f"partner invoice {invoice_id} not found", field="invoice_id")
    per_kind = {k.value: {"count": 0, "amount_minor": 0} for k in FindingKind}
    for kind, n, amount in session.execute(select(AssuranceFinding.kind, func.count(), func.coalesce(func.sum(AssuranceFinding.amount_minor), 0))
                                           .where(AssuranceFinding.invoice_id == invoice_id).group_by(AssuranceFinding.kind)).all():
        per_kind[kind] = {"count": int(n), "amount_minor": int(amount)}
    partner_name = session.execute(select(Partner.name).where(Partner.code == inv.partner_code)).scalar_one()
    return {"id": inv.id, "partner_code": inv.partner_code, "partner_name": partner_name, "period": inv.period, "file_name": inv.file_name,
            "lines": inv.lines_count, "total_minor": inv.total_minor, "currency": inv.currency, "findings": inv.findings_count,
            "leakage_minor": inv.leakage_minor, "imported_at": inv.imported_at, "imported_by": inv.imported_by, "per_kind": per_kind}


def act_on_finding(session: Session, *, finding_id: int, action: str, now: datetime, actor: Actor, reason: str | None = None) -> str:
    """Dispute a finding with the FNO (only overbilling: billed for inactive days or above the cost), record the FNO's
    answer, or dismiss it. Returns the new state. Raises NotFound, UnableToImportInvoice (field `action`: a finding
    that is not ours to dispute), TransitionNotAllowed, ReasonRequired."""
    f = session.get(AssuranceFinding, finding_id)
    if f is None:
        raise NotFound(f"finding {finding_id} not found", field="finding_id")
    if action == "dispute" and (f.kind not in DISPUTABLE or f.amount_minor <= 0):
        raise UnableToImportInvoice("only an amount the FNO billed us too much can be disputed", field="action")
    lifecycle.transition(session, FINDING, f, action, now=now, actor=actor, reason=reason, account_id=f.account_id,
                         label=f"finding {f.id} ({f.line_ref})", details={"amount_minor": f.amount_minor, "partner": f.partner_code})
    if reason:
        f.state_reason = reason
    f.updated_at = now
    session.flush()
    return f.state
