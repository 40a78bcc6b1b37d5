"""Statement import: parse a whole file (or refuse it naming file, line and field), record it once (file hash), post each bank
transaction once (unique bank transaction, ON CONFLICT DO NOTHING, so overlapping files and concurrent repeats post nothing
twice), create payments for the money in and run the matching cascade. Debit-order result files record collections and
reverse unpaids (invoice re-opened, returned-debit fee charged per policy)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from opsline.billing import service as billing
from opsline.core import events
from opsline.core.errors import Conflict, NotFound
from opsline.core.events import Actor
from opsline.core.money import Money
from opsline.db.base import sqlite_utc
from opsline.db.bulk import copy_rows
from opsline.payments import allocations, matching, parsers
from opsline.payments import settings as policy
from opsline.payments.models import Allocation, CsvMapping, Payment, StatementFile, UnpaidReason
from opsline.payments.parsers import ParsedStatement, UnableToImportStatement

Progress = Callable[[str, int, int], None]  # (stage, done, total)


class DuplicateStatement(Conflict):
    title = "Statement already imported"
    type_slug = "duplicate-statement"


def mapping(session: Session, name: str) -> parsers.Mapping:
    row = session.execute(select(CsvMapping).where(CsvMapping.name == name)).scalar_one_or_none()
    if row is None:
        known = ", ".join(session.execute(select(CsvMapping.name).order_by(CsvMapping.name)).scalars())
        raise NotFound(f"no CSV mapping named '{name}' (known: {known or 'none'})", field="mapping")
    return parsers.Mapping(name=row.name, bank=row.bank, bank_account=row.bank_account, currency=row.currency, columns=dict(row.columns),
                           encoding=row.encoding, delimiter=row.delimiter, date_format=row.date_format, decimal_comma=row.decimal_comma,
                           header_rows=row.header_rows, footer_rows=row.footer_rows)


def parse(session: Session, *, data: bytes, filename: str, fmt: str | None, mapping_name: str | None) -> ParsedStatement:
    """Parse and check a file without writing anything. Raises UnableToImportStatement, NotFound (mapping)."""
    fmt = fmt or parsers.detect_format(data, filename)
    currencies = [r[0] for r in session.execute(text("SELECT DISTINCT currency FROM account"))]
    if fmt == "csv":
        if not mapping_name:
            raise UnableToImportStatement("a CSV statement needs the bank's mapping (--mapping NAME)", filename=filename, field="mapping")
        st = parsers.parse_csv(data, filename=filename, mapping=mapping(session, mapping_name))
    elif fmt == "mt940":
        st = parsers.parse_mt940(data, filename=filename)
    elif fmt == "camt053":
        st = parsers.parse_camt053(data, filename=filename)
    elif fmt == "debit_result":
        if len(currencies) != 1:
            raise UnableToImportStatement("debit-order results need one billing currency", filename=filename, field="currency")
        st = parsers.parse_debit_results(data, filename=filename, currency=currencies[0])
    else:
        raise UnableToImportStatement(f"unknown format '{fmt}' (csv, mt940, camt053, debit_result)", filename=filename, field="format")
    parsers.check_currency(st, currencies or [st.currency])
    parsers.check_balances(st)
    return st


def _file_row(session: Session, st: ParsedStatement, *, data: bytes, mapping_name: str | None, now: datetime, actor: Actor) -> int:
    digest = parsers.sha256(data)
    pg = session.get_bind().dialect.name == "postgresql"
    new_id = session.execute(text("""INSERT INTO statement_file (filename, sha256, format, bank, bank_account, currency, mapping_name, statement_date,
                                     opening_minor, closing_minor, lines_count, new_lines_count, matched_count, proposed_count, suspense_count,
                                     imported_at, imported_by)
                                     VALUES (:fn, :h, :fmt, :bank, :ba, :cur, :map, :sd, :op, :cl, :n, 0, 0, 0, 0, :now, :who)
                                     ON CONFLICT (sha256) DO NOTHING RETURNING id"""),
                             {"fn": st.filename[:200], "h": digest, "fmt": st.format, "bank": st.bank[:80], "ba": (st.bank_account or st.bank)[:40], "cur": st.currency,
                              "map": mapping_name, "sd": st.statement_date if pg or st.statement_date is None else st.statement_date.isoformat(),
                              "op": st.opening_minor, "cl": st.closing_minor, "n": len(st.lines) or len(st.debit_results),
                              "now": now if pg else sqlite_utc(now), "who": actor.name}).scalar()
    if new_id is None:
        first = session.execute(select(StatementFile).where(StatementFile.sha256 == digest)).scalar_one()
        raise DuplicateStatement(f"{st.filename}: this file was already imported on {first.imported_at:%Y-%m-%d %H:%M} UTC as '{first.filename}' "
                                 f"by {first.imported_by}; nothing was posted", field="file", extra={"statement_file_id": first.id})
    return int(new_id)


def import_statement(session: Session, *, data: bytes, filename: str, fmt: str | None = None, mapping_name: str | None = None, now: datetime,
                     actor: Actor, progress: Progress | None = None) -> dict[str, Any]:
    """Import one statement or debit-order result file in the caller's transaction: all of it or nothing.
    Raises UnableToImportStatement (naming file, line and field), DuplicateStatement, NotFound (mapping)."""
    tick = progress or (lambda stage, done, total: None)
    tick("parse", 0, 1)
    st = parse(session, data=data, filename=filename, fmt=fmt, mapping_name=mapping_name)
    tick("parse", 1, 1)
    file_id = _file_row(session, st, data=data, mapping_name=mapping_name, now=now, actor=actor)
    if st.format == "debit_result":
        return _debit_results(session, st, file_id=file_id, now=now, actor=actor, tick=tick)
    pg = session.get_bind().dialect.name == "postgresql"
    session.execute(text("DROP TABLE IF EXISTS pm_stage"))
    session.execute(text("""CREATE TEMP TABLE pm_stage (line_no INTEGER, bank_reference VARCHAR(80), value_date DATE, amount_minor BIGINT,
                            currency VARCHAR(3), payer_name VARCHAR(200), payer_account VARCHAR(40), reference VARCHAR(300))"""))
    bank_account = (st.bank_account or st.bank or "unknown")[:40]
    total = len(st.lines)
    copy_rows(session.connection(), "pm_stage", ("line_no", "bank_reference", "value_date", "amount_minor", "currency", "payer_name", "payer_account", "reference"),
              ((ln.line_no, ln.bank_reference, ln.value_date if pg else ln.value_date.isoformat(), ln.amount_minor, ln.currency, ln.payer_name,
                ln.payer_account, ln.reference) for ln in st.lines))
    tick("store", total, total)
    new = session.execute(text("""INSERT INTO statement_line (statement_file_id, line_no, bank_account, bank_reference, value_date, amount_minor, currency,
                                  payer_name, payer_account, reference)
                                  SELECT :f, line_no, :ba, bank_reference, value_date, amount_minor, currency, payer_name, payer_account, reference
                                  FROM pm_stage WHERE 1 = 1
                                  ON CONFLICT (bank_account, bank_reference, value_date, amount_minor) DO NOTHING"""), {"f": file_id, "ba": bank_account}).rowcount
    session.execute(text("DROP TABLE IF EXISTS pm_stage"))
    session.execute(text("""INSERT INTO payment (statement_line_id, source, method, state, amount_minor, currency, received_on, payer_name, payer_account,
                            reference, created_at, created_by)
                            SELECT id, 'statement', 'eft', 'received', amount_minor, currency, value_date, payer_name, payer_account, reference, :now, :who
                            FROM statement_line WHERE statement_file_id = :f AND amount_minor > 0"""),
                    {"f": file_id, "now": now if pg else sqlite_utc(now), "who": actor.name})
    tick("match", 0, total)
    summary = matching.run(session, now=now, actor=actor)
    tick("match", total, total)
    return _close(session, st, file_id=file_id, new_lines=int(new), summary=summary, now=now, actor=actor)


def _close(session: Session, st: ParsedStatement, *, file_id: int, new_lines: int, summary: matching.MatchSummary, now: datetime, actor: Actor,
           extra: dict[str, Any] | None = None) -> dict[str, Any]:
    f = session.get(StatementFile, file_id)
    assert f is not None
    f.new_lines_count, f.matched_count, f.proposed_count, f.suspense_count = new_lines, summary.allocated, summary.proposed, summary.suspense
    result = {"statement_file_id": file_id, "filename": st.filename, "format": st.format, "lines": f.lines_count, "new_lines": new_lines,
              "duplicates": f.lines_count - new_lines, "payments": summary.payments, "allocated": summary.allocated, "proposed": summary.proposed,
              "suspense": summary.suspense, "allocated_minor": summary.allocated_minor, "currency": st.currency, "by_rule": summary.by_rule,
              "settled_invoices": summary.settled_invoices, **(extra or {})}
    events.record(session, now=now, actor=actor, entity_type="statement_file", entity_id=file_id, action="imported",
                  after={k: v for k, v in result.items() if k != "by_rule"} | {"by_rule": summary.by_rule})
    return result


def _debit_results(session: Session, st: ParsedStatement, *, file_id: int, now: datetime, actor: Actor, tick: Progress) -> dict[str, Any]:
    rows = st.debit_results
    accs = {r.account_number: (r.id, r.currency) for r in session.execute(
        text(f"SELECT id, account_number, currency FROM account WHERE account_number IN ({','.join(':a' + str(i) for i in range(len(rows)))})"),
        {f"a{i}": r.account_number for i, r in enumerate(rows)})}
    invs = {r.number: (r.id, r.account_id) for r in session.execute(
        text(f"SELECT id, number, account_id FROM invoice WHERE number IN ({','.join(':n' + str(i) for i in range(len(rows)))})"),
        {f"n{i}": r.invoice_number for i, r in enumerate(rows)})}
    reasons = {r.code: r for r in session.execute(select(UnpaidReason)).scalars()}
    for r in rows:
        if r.account_number not in accs:
            raise UnableToImportStatement(f"no account {r.account_number}", filename=st.filename, line=r.line_no, field="account_number")
        if r.invoice_number and (r.invoice_number not in invs or invs[r.invoice_number][1] != accs[r.account_number][0]):
            raise UnableToImportStatement(f"invoice {r.invoice_number} is not an invoice of account {r.account_number}", filename=st.filename, line=r.line_no,
                                          field="invoice_number")
        if r.status == "unpaid" and r.reason_code not in reasons:
            raise UnableToImportStatement(f"unknown unpaid reason code '{r.reason_code}'", filename=st.filename, line=r.line_no, field="reason_code")
    pg = session.get_bind().dialect.name == "postgresql"
    inserted: list[tuple[Any, ...]] = []
    for r in rows:  # a result re-delivered in a later file is skipped, not posted again
        rid = session.execute(text("""INSERT INTO debit_order_result (statement_file_id, line_no, collection_ref, status, account_id, invoice_id, amount_minor,
                                      currency, action_date, reason_code) VALUES (:f, :ln, :ref, :st, :a, :i, :amt, :cur, :d, :rc)
                                      ON CONFLICT (collection_ref, status) DO NOTHING RETURNING id"""),
                              {"f": file_id, "ln": r.line_no, "ref": r.collection_ref, "st": r.status, "a": accs[r.account_number][0],
                               "i": invs[r.invoice_number][0] if r.invoice_number else None, "amt": r.amount_minor, "cur": r.currency,
                               "d": r.action_date if pg else r.action_date.isoformat(), "rc": r.reason_code or None}).scalar()
        if rid is not None:
            inserted.append((rid, r))
    paid = [(rid, r) for rid, r in inserted if r.status == "paid"]
    for rid, r in paid:
        session.add(Payment(account_id=accs[r.account_number][0], external_id=f"DO:{r.collection_ref}", source="debit_order", method="debit_order",
                            state="received", amount_minor=r.amount_minor, currency=r.currency, received_on=r.action_date, reference=r.collection_ref,
                            named_invoice_id=invs[r.invoice_number][0] if r.invoice_number else None, created_at=now, created_by=actor.name))
    session.flush()
    summary = matching.run(session, now=now, actor=actor)
    session.execute(text("""UPDATE debit_order_result SET payment_id = (SELECT p.id FROM payment p WHERE p.external_id = 'DO:' || debit_order_result.collection_ref)
                            WHERE statement_file_id = :f AND status = 'paid'"""), {"f": file_id})
    cfg = policy.load(session)
    unpaid = [(rid, r) for rid, r in inserted if r.status == "unpaid"]
    reopened = fees = 0
    for n, (rid, r) in enumerate(unpaid):
        reason = reasons[r.reason_code]
        pay = session.execute(select(Payment).where(Payment.external_id == f"DO:{r.collection_ref}")).scalar_one_or_none()
        why = f"debit order {r.collection_ref} returned unpaid: {reason.code} {reason.description}"
        if pay is not None and pay.state == "allocated":
            for a in allocations.active_allocations(session, payment_id=pay.id):
                res = allocations.reverse_allocation(session, allocation_id=a.id, reason=why, now=now, actor=actor, returned=True)
                reopened += int(res["invoice_reopened"])
        fee_id = None
        if reason.charge_fee and cfg.returned_debit_fee_minor > 0:
            fee_id = billing.queue_charge(session, account_id=accs[r.account_number][0], product_id=None, description=f"Returned debit order fee ({reason.code})",
                                          amount=Money.from_minor(cfg.returned_debit_fee_minor, r.currency), tax_rate_code=cfg.returned_debit_fee_tax_code,
                                          reason=why, now=now, actor=actor, idempotency_key=f"returned-debit:{r.collection_ref}")
            fees += 1
        session.execute(text("UPDATE debit_order_result SET payment_id = :p, fee_charge_id = :fee WHERE id = :id"),
                        {"p": pay.id if pay else None, "fee": fee_id, "id": rid})
        tick("unpaids", n + 1, len(unpaid))
    return _close(session, st, file_id=file_id, new_lines=len(inserted), summary=summary, now=now, actor=actor,
                  extra={"paid": len(paid), "unpaid": len(unpaid), "invoices_reopened": reopened, "fees_charged": fees})


def allocation_rows(session: Session, *, payment_id: int) -> list[Allocation]:
    return list(session.execute(select(Allocation).where(Allocation.payment_id == payment_id).order_by(Allocation.id)).scalars())
