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
from opsline.core.errors import Conflict, NotFound, OpslineError
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


def _parse_csv_any(session: Session, data: bytes, filename: str) -> ParsedStatement:
    """A CSV statement with no mapping named: the one saved mapping that reads it. Raises UnableToImportStatement when
    none or several do (naming them, so the clerk can choose)."""
    names = list(session.execute(select(CsvMapping.name).order_by(CsvMapping.name)).scalars())
    fits: list[tuple[str, ParsedStatement]] = []
    for name in names:
        try:
            fits.append((name, parsers.parse_csv(data, filename=filename, mapping=mapping(session, name))))
        except OpslineError:
            continue
    if len(fits) == 1:
        return fits[0][1]
    if not fits:
        raise UnableToImportStatement(f"no saved bank CSV mapping reads this file (tried: {', '.join(names) or 'none'}); choose or add the bank's mapping",
                                      filename=filename, field="mapping")
    raise UnableToImportStatement(f"several bank CSV mappings read this file ({', '.join(n for n, _ in fits)}); choose the bank's mapping",
                                  filename=filename, field="mapping")


def parse(session: Session, *, data: bytes, filename: str, fmt: str | None, mapping_name: str | None) -> ParsedStatement:
    """Parse and check a file without writing anything. Raises UnableToImportStatement, NotFound (mapping)."""
    fmt = fmt or parsers.detect_format(data, filename)
    billing_currencies = lambda: [r[0] for r in session.execute(text("SELECT DISTINCT currency FROM account"))]  # noqa: E731  (reads every account)
    currencies: list[str] = []
    if fmt == "csv":
        st = parsers.parse_csv(data, filename=filename, mapping=mapping(session, mapping_name)) if mapping_name else _parse_csv_any(session, data, filename)
    elif fmt == "mt940":
        st = parsers.parse_mt940(data, filename=filename)
    elif fmt == "camt053":
        st = parsers.parse_camt053(data, filename=filename)
    elif fmt == "debit_result":
        currencies = billing_currencies()
        if len(currencies) != 1:
            raise UnableToImportStatement("debit-order results need one billing currency", filename=filename, field="currency")
        st = parsers.parse_debit_results(data, filename=filename, currency=currencies[0])
    else:
        raise UnableToImportStatement(f"unknown format '{fmt}' (csv, mt940, camt053, debit_result)", filename=filename, field="format")
    if not currencies:  # one account billed in the statement's currency is enough; the full list only to say what is wrong
        known = session.execute(text("SELECT 1 FROM account WHERE currency = :c LIMIT 1"), {"c": st.currency.upper()}).first()
        currencies = [st.currency] if known else billing_currencies()
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
    # money in becomes payments, written by the matcher once it knows each one's account and state
    matching.stage_incoming(session, select_sql="""SELECT CAST(NULL AS BIGINT), id, CAST(NULL AS VARCHAR(120)), 'statement', 'eft', amount_minor, currency,
                                                   value_date, payer_name, payer_account, reference, CAST(NULL AS BIGINT)
                                                   FROM statement_line WHERE statement_file_id = :f AND amount_minor > 0 ORDER BY id""",
                            params={"f": file_id})
    tick("match", 0, total)
    summary = matching.run(session, now=now, actor=actor, incoming=True)
    session.execute(text(f"DROP TABLE IF EXISTS {matching.INCOMING}"))
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
    """Set-based: stage the rows, resolve accounts and invoices with joins (the first unknown one refuses the file), keep each
    result once (a row re-delivered in a later file, or twice in this one, is skipped), create the paid collections as payments
    and match them, then record the results with their payments; then return each unpaid collection (few) through the
    allocation service."""
    pg = session.get_bind().dialect.name == "postgresql"
    x = lambda sql, params=None: session.execute(text(sql), params or {})  # noqa: E731
    x("DROP TABLE IF EXISTS pm_do")
    x("""CREATE TEMP TABLE pm_do (line_no INTEGER, collection_ref VARCHAR(80), account_number VARCHAR(20), invoice_number VARCHAR(30),
         amount_minor BIGINT, action_date DATE, status VARCHAR(10), reason_code VARCHAR(10), keep INTEGER DEFAULT 0)""")
    copy_rows(session.connection(), "pm_do", ("line_no", "collection_ref", "account_number", "invoice_number", "amount_minor", "action_date", "status", "reason_code"),
              ((r.line_no, r.collection_ref, r.account_number, r.invoice_number, r.amount_minor, r.action_date if pg else r.action_date.isoformat(), r.status,
                r.reason_code or None) for r in st.debit_results))
    # accounts and invoices resolved once, for the checks, the payments and the results alike
    x("DROP TABLE IF EXISTS pm_dor")
    x("""CREATE TEMP TABLE pm_dor AS SELECT d.*, a.id AS acc, a.currency AS acc_currency, i.id AS inv, i.account_id AS inv_acc
         FROM pm_do d LEFT JOIN account a ON a.account_number = d.account_number
         LEFT JOIN invoice i ON i.number = d.invoice_number AND d.invoice_number <> ''""")
    x("DROP TABLE IF EXISTS pm_do")
    bad = x("""SELECT d.line_no, d.account_number, d.invoice_number, d.status, d.reason_code, d.acc, d.inv, d.inv_acc, r.code
               FROM pm_dor d LEFT JOIN payment_unpaid_reason r ON r.code = d.reason_code
               WHERE d.acc IS NULL OR (d.invoice_number <> '' AND (d.inv IS NULL OR d.inv_acc <> d.acc)) OR (d.status = 'unpaid' AND r.code IS NULL)
               ORDER BY d.line_no LIMIT 1""").first()
    if bad is not None:
        if bad.acc is None:
            raise UnableToImportStatement(f"no account {bad.account_number}", filename=st.filename, line=bad.line_no, field="account_number")
        if bad.status == "unpaid" and bad.code is None:
            raise UnableToImportStatement(f"unknown unpaid reason code '{bad.reason_code}'", filename=st.filename, line=bad.line_no, field="reason_code")
        raise UnableToImportStatement(f"invoice {bad.invoice_number} is not an invoice of account {bad.account_number}", filename=st.filename,
                                      line=bad.line_no, field="invoice_number")
    # which results are new: the first row of each (collection, status) not recorded before. Result files are imported one at a
    # time (PostgreSQL: a transaction lock; SQLite holds its write lock already), so that answer holds until this one commits.
    if pg:
        x("SELECT pg_advisory_xact_lock(hashtext('opsline.payments.debit_order_results'))")
    x("""UPDATE pm_dor SET keep = 1 WHERE line_no IN (SELECT MIN(line_no) FROM pm_dor GROUP BY collection_ref, status)
         AND NOT EXISTS (SELECT 1 FROM debit_order_result r WHERE r.collection_ref = pm_dor.collection_ref AND r.status = pm_dor.status)""")
    # the paid collections become payments, written by the matcher once it knows each one's state
    paid = matching.stage_incoming(session, select_sql="""SELECT d.acc, CAST(NULL AS BIGINT), 'DO:' || d.collection_ref, 'debit_order', 'debit_order',
                                                          d.amount_minor, d.acc_currency, d.action_date, '', '', d.collection_ref, d.inv
                                                          FROM pm_dor d WHERE d.keep = 1 AND d.status = 'paid' ORDER BY d.line_no""", params={})
    tick("match", 0, len(st.debit_results))
    summary = matching.run(session, now=now, actor=actor, incoming=True)
    tick("match", len(st.debit_results), len(st.debit_results))
    x(f"DROP TABLE IF EXISTS {matching.INCOMING}")
    # each result with its collection's payment (an unpaid one's was recorded when it was paid, in this file or before)
    inserted = x("""INSERT INTO debit_order_result (statement_file_id, line_no, collection_ref, status, account_id, invoice_id, amount_minor, currency,
                    action_date, reason_code, payment_id)
                    SELECT :f, d.line_no, d.collection_ref, d.status, d.acc, d.inv, d.amount_minor, d.acc_currency, d.action_date, d.reason_code, p.id
                    FROM pm_dor d LEFT JOIN payment p ON p.external_id = 'DO:' || d.collection_ref
                    WHERE d.keep = 1 ORDER BY d.line_no
                    ON CONFLICT (collection_ref, status) DO NOTHING""", {"f": file_id}).rowcount
    x("DROP TABLE IF EXISTS pm_dor")
    cfg = policy.load(session)
    reasons = {r.code: r for r in session.execute(select(UnpaidReason)).scalars()}
    unpaid = x("""SELECT d.id, d.collection_ref, d.account_id, d.amount_minor, d.currency, d.reason_code, d.payment_id FROM debit_order_result d
                  WHERE d.statement_file_id = :f AND d.status = 'unpaid' ORDER BY d.line_no""", {"f": file_id}).all()
    reopened = fees = 0
    for n, r in enumerate(unpaid):
        reason = reasons[r.reason_code]
        why = f"debit order {r.collection_ref} returned unpaid: {reason.code} {reason.description}"
        pay = session.get(Payment, r.payment_id) if r.payment_id else None
        if pay is not None and pay.state == "allocated":
            for a in allocations.active_allocations(session, payment_id=pay.id):
                res = allocations.reverse_allocation(session, allocation_id=a.id, reason=why, now=now, actor=actor, returned=True)
                reopened += int(res["invoice_reopened"])
        fee_id = None
        if reason.charge_fee and cfg.returned_debit_fee_minor > 0:
            fee_id = billing.queue_charge(session, account_id=r.account_id, product_id=None, description=f"Returned debit order fee ({reason.code})",
                                          amount=Money.from_minor(cfg.returned_debit_fee_minor, r.currency), tax_rate_code=cfg.returned_debit_fee_tax_code,
                                          reason=why, now=now, actor=actor, idempotency_key=f"returned-debit:{r.collection_ref}")
            fees += 1
        x("UPDATE debit_order_result SET fee_charge_id = :fee WHERE id = :id", {"fee": fee_id, "id": r.id})
        tick("unpaids", n + 1, len(unpaid))
    return _close(session, st, file_id=file_id, new_lines=int(inserted), summary=summary, now=now, actor=actor,
                  extra={"paid": int(paid), "unpaid": len(unpaid), "invoices_reopened": reopened, "fees_charged": fees})


def allocation_rows(session: Session, *, payment_id: int) -> list[Allocation]:
    return list(session.execute(select(Allocation).where(Allocation.payment_id == payment_id).order_by(Allocation.id)).scalars())
