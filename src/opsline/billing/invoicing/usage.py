"""Usage import (CSV, with a per-line error report; bad rows kept for correction) and set-based rating with bundle allowances."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Callable

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from opsline.billing.invoicing.models import UsageRejected
from opsline.billing.invoicing.tz import local_zone
from opsline.config import get_settings
from opsline.billing.models import UsageRecord
from opsline.catalog.models import Price
from opsline.core import events
from opsline.core.errors import InvalidInput
from opsline.core.events import Actor
from opsline.core.textfiles import UnreadableTextFile, decode_text_file
from opsline.customers.models import Account
from opsline.inventory.models import Product

USAGE_TYPES = ("data_mb", "voice_sec", "sms")
UNITS = {"data_mb": "MB", "voice_sec": "s", "sms": "SMS"}
REQUIRED = ("external_id", "usage_type", "started_at", "quantity")


class UnableToImportUsage(InvalidInput):
    title = "Unable to import usage"
    type_slug = "unable-to-import-usage"


# The widest value each column holds (usage_record / usage_rejected); a longer one is a bad row, never a database error.
FIELD_WIDTHS = {"external_id": 100, "msisdn": 20, "product_id": 18, "usage_type": 12, "started_at": 40, "quantity": 40}


def _rows(reader: "csv.DictReader[str]", filename: str):  # type: ignore[no-untyped-def]
    """The reader's rows; a line the csv module cannot read (a field past its size limit, a stray quote) is a clear
    refusal of the whole file naming the line, never a crash."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise UnableToImportUsage(f"{filename}: line {reader.line_num}: {exc}", field="file") from exc


@dataclass
class RowError:
    line: int
    field: str | None
    reason: str
    external_id: str | None = None


@dataclass
class ImportResult:
    filename: str
    total: int = 0
    loaded: int = 0
    rejected: int = 0
    rated_amount_minor: int = 0
    errors: list[RowError] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"filename": self.filename, "total": self.total, "loaded": self.loaded, "rejected": self.rejected, "rated_amount_minor": self.rated_amount_minor,
                "errors": [e.__dict__ for e in self.errors]}


def canonical_msisdn(raw: str) -> str:
    """E.164 digits without '+': '+27 82 111 0000', '27821110000' and '0821110000' are the same subscriber."""
    digits = "".join(ch for ch in raw if ch.isdigit())
    return "27" + digits[1:] if digits.startswith("0") else digits


def msisdn_variants(raw: str) -> set[str]:
    """The spellings an MSISDN may be stored under (with or without '+', national or international)."""
    c = canonical_msisdn(raw)
    return {raw, c, "+" + c, "0" + c[2:] if c.startswith("27") else c}


def _parse_started(raw: str) -> datetime:
    value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a UTC offset, e.g. 2026-11-02T10:15:00+02:00")
    return value


def import_usage(session: Session, *, file: bytes | str, filename: str, now: datetime, actor: Actor, progress: Callable[[int], None] | None = None) -> ImportResult:
    """Load a usage CSV (external_id, msisdn or product_id, usage_type, started_at ISO with offset, quantity), then rate it.
    Bad rows (unknown subscriber, negative quantity, bad dates, unknown usage type, duplicates in the file or already loaded)
    are reported with line numbers and kept in `usage_rejected`; an external id is never loaded (or rated) twice.
    Raises UnableToImportUsage when the file itself is unreadable or lacks required columns."""
    try:
        text = decode_text_file(file)[0] if isinstance(file, bytes) else file
    except UnreadableTextFile as exc:
        raise UnableToImportUsage(f"{filename}: {exc}", field="file") from exc
    if "\x00" in text:
        raise UnableToImportUsage(f"{filename}: line {text.count(chr(10), 0, text.index(chr(0))) + 1} contains a NUL byte", field="file")
    filename = filename[:200]  # the column's width; the report still names the file
    reader = csv.DictReader(io.StringIO(text))
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise UnableToImportUsage(f"{filename}: line 1 (header) is not CSV ({exc})", field="header") from exc
    missing = [c for c in REQUIRED if c not in header]
    if missing or ("msisdn" not in header and "product_id" not in header):
        need = missing + ([] if ("msisdn" in header or "product_id" in header) else ["msisdn or product_id"])
        raise UnableToImportUsage(f"{filename}: line 1 (header) lacks the column(s) {', '.join(need)}", field="header")
    raw_lines = text.splitlines()
    result = ImportResult(filename=filename)
    parsed: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(_rows(reader, filename)):
        line_no = reader.line_num
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        result.total += 1
        raw = raw_lines[line_no - 1] if 0 < line_no <= len(raw_lines) else ",".join(row.values())

        def bad(fld: str | None, reason: str) -> None:
            result.errors.append(RowError(line_no, fld, reason, row.get("external_id") or None))
            parsed.append({"_bad": True, "line": line_no, "raw": raw, "field": fld, "reason": reason, "external_id": row.get("external_id") or None})

        ext = row.get("external_id", "")
        if not ext:
            bad("external_id", "external_id is empty")
            continue
        too_long = next((f for f, cap in FIELD_WIDTHS.items() if len(row.get(f) or "") > cap), None)
        if too_long:
            row["external_id"] = ext[:FIELD_WIDTHS["external_id"]]
            bad(too_long, f"{too_long} is longer than {FIELD_WIDTHS[too_long]} characters")
            continue
        if ext in seen:
            bad("external_id", f"duplicate of line {seen[ext]} in this file")
            continue
        seen[ext] = line_no
        if row.get("usage_type") not in USAGE_TYPES:
            bad("usage_type", f"'{row.get('usage_type')}' is not one of {', '.join(USAGE_TYPES)}")
            continue
        try:
            started = _parse_started(row.get("started_at", ""))
        except ValueError as exc:
            bad("started_at", f"'{row.get('started_at')}' is not a valid date-time ({exc})")
            continue
        if started > now:
            bad("started_at", f"{row.get('started_at')} is in the future")
            continue
        try:
            qty = Decimal(row.get("quantity", ""))
            if not qty.is_finite():
                raise InvalidOperation
        except InvalidOperation:
            bad("quantity", f"'{row.get('quantity')}' is not a number")
            continue
        if qty < 0:
            bad("quantity", f"quantity {qty} is negative")
            continue
        pid_raw = row.get("product_id", "")
        if pid_raw and not pid_raw.isdigit():
            bad("product_id", f"'{pid_raw}' is not a product id")
            continue
        if not pid_raw and not row.get("msisdn"):
            bad("msisdn", "neither msisdn nor product_id is given")
            continue
        parsed.append({"line": line_no, "raw": raw, "external_id": ext, "usage_type": row["usage_type"], "started_at": started, "quantity": qty,
                       "product_id": int(pid_raw) if pid_raw else None, "msisdn": row.get("msisdn") or None})
        if progress and i % 500 == 0:
            progress(i)
    good = [p for p in parsed if not p.get("_bad")]
    # resolve subscribers (one query each for msisdns and product ids)
    msisdns = {p["msisdn"] for p in good if p["product_id"] is None}
    variants = {v for m in msisdns for v in msisdn_variants(m)}
    by_msisdn: dict[str, list[Any]] = {}
    found = session.execute(select(Product.id, Product.account_id, Product.msisdn, Product.start_date, Product.end_date).where(Product.msisdn.in_(variants))).all() if variants else []
    for pr in found:
        by_msisdn.setdefault(canonical_msisdn(pr.msisdn), []).append(pr)
    pids = {p["product_id"] for p in good if p["product_id"] is not None}
    by_id = {pr.id: pr for pr in session.execute(select(Product.id, Product.account_id, Product.msisdn, Product.start_date, Product.end_date).where(Product.id.in_(pids))).all()} if pids else {}
    accounts = {pr.account_id for pr in found} | {pr.account_id for pr in by_id.values()}
    currency_of = dict(session.execute(select(Account.id, Account.currency).where(Account.id.in_(accounts))).all()) if accounts else {}
    exts = [p["external_id"] for p in good]
    loaded_before: set[str] = set()
    for k in range(0, len(exts), 5000):
        loaded_before |= set(session.execute(select(UsageRecord.external_id).where(UsageRecord.external_id.in_(exts[k:k + 5000]))).scalars())
    records: list[dict[str, Any]] = []
    for p in good:
        def reject(fld: str, reason: str) -> None:
            p.update({"_bad": True, "field": fld, "reason": reason})
            result.errors.append(RowError(p["line"], fld, reason, p["external_id"]))

        if p["external_id"] in loaded_before:
            reject("external_id", f"'{p['external_id']}' was already loaded; not rated twice")
            continue
        day = p["started_at"].date()
        if p["product_id"] is not None:
            pr = by_id.get(p["product_id"])
            if pr is None:
                reject("product_id", f"no subscriber with product id {p['product_id']}")
                continue
        else:
            cands = [c for c in by_msisdn.get(canonical_msisdn(p["msisdn"]), []) if (c.start_date is None or c.start_date <= day) and (c.end_date is None or day < c.end_date)]
            if not cands:
                reject("msisdn", f"no subscriber with MSISDN {p['msisdn']} on {day}")
                continue
            pr = cands[0]
        records.append({"account_id": pr.account_id, "product_id": pr.id, "usage_type": p["usage_type"], "started_at": p["started_at"], "quantity": p["quantity"],
                        "source_file": filename, "source_line": p["line"], "external_id": p["external_id"], "state": "rated", "rated_amount_minor": 0,
                        "currency": currency_of.get(pr.account_id) or get_settings().currency, "rated_at": now, "explanation": "awaiting rating"})
    if records:
        if session.get_bind().dialect.name == "postgresql":
            from opsline.db.bulk import copy_rows

            cols = tuple(records[0])
            copy_rows(session.connection(), "usage_record", cols, (tuple(r[c] for c in cols) for r in records))
        else:
            session.execute(UsageRecord.__table__.insert(), records)
    bad_rows = [{"source_file": filename, "source_line": p["line"], "raw_line": p["raw"], "field": p.get("field"), "reason": p["reason"][:300],
                 "external_id": p.get("external_id"), "rejected_at": now} for p in parsed if p.get("_bad")]
    if bad_rows:
        session.execute(insert(UsageRejected), bad_rows)
    # a row corrected and loaded now resolves its earlier rejections
    if records:
        loaded_exts = [r["external_id"] for r in records]
        for k in range(0, len(loaded_exts), 5000):
            session.execute(update(UsageRejected).where(UsageRejected.external_id.in_(loaded_exts[k:k + 5000]), UsageRejected.resolved_at.is_(None)).values(resolved_at=now))
    result.loaded = len(records)
    result.rejected = len(bad_rows)
    result.errors.sort(key=lambda e: e.line)
    session.flush()
    if records:
        result.rated_amount_minor = rate_usage(session, now=now, source_file=filename)
    events.record(session, now=now, actor=actor, entity_type="usage_file", entity_id=filename[:60], action="imported",
                  after={"total": result.total, "loaded": result.loaded, "rejected": result.rejected})
    return result


def _sqlite_shift(now: datetime) -> str:
    """The operator timezone's UTC offset at `now` as an SQLite date modifier (SQLite has no time zones)."""
    off = now.astimezone(local_zone()).utcoffset()
    minutes = int(off.total_seconds() // 60) if off else 0
    return f"{'+' if minutes >= 0 else '-'}{abs(minutes)} minutes"


def _month_key(session: Session, now: datetime) -> Any:
    """The billing month of a usage record, in the operator's local time."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone(local_zone().key, UsageRecord.started_at), "YYYY-MM")
    return func.strftime("%Y-%m", UsageRecord.started_at, _sqlite_shift(now))


def rate_usage(session: Session, *, now: datetime, source_file: str | None = None, account_id: int | None = None, include_billed: bool = False) -> int:
    """Rate unbilled usage of the products touched by `source_file` (or of one account), set-based: per product, usage type
    and month the bundle allowance (price.included_quantity) is used first, then the per-unit usage price valid at started_at.
    The result stays beside the raw record (rated_amount_minor, explanation). Returns the rated total in minor units
    of the rows it rated. `include_billed` re-rates billed rows too (re-rating; their invoice is not touched)."""
    month_expr = _month_key(session, now)
    month = month_expr.label("month")
    scope = select(UsageRecord.product_id)
    if source_file is not None:
        scope = scope.where(UsageRecord.source_file == source_file)
    if account_id is not None:
        scope = scope.where(UsageRecord.account_id == account_id)
    cum = func.sum(UsageRecord.quantity).over(partition_by=(UsageRecord.product_id, UsageRecord.usage_type, month_expr), order_by=(UsageRecord.started_at, UsageRecord.id))
    base = (
        select(UsageRecord.id, UsageRecord.product_id, UsageRecord.usage_type, UsageRecord.quantity, UsageRecord.state, UsageRecord.started_at, month, cum.label("cum"))
        .where(UsageRecord.product_id.in_(scope.distinct().scalar_subquery()), UsageRecord.state != "rejected")
        .subquery()
    )
    date_of = (func.date(base.c.started_at, _sqlite_shift(now)) if session.get_bind().dialect.name == "sqlite"
               else func.date(func.timezone(local_zone().key, base.c.started_at)))
    q = (
        select(base, Price.id.label("price_id"), Price.amount_minor, Price.included_quantity, Price.currency, Price.tax_rate_code, Price.name.label("price_name"))
        .join(Product, Product.id == base.c.product_id)
        .outerjoin(Price, and_(Price.offering_id == Product.offering_id, Price.kind == "usage", Price.usage_type == base.c.usage_type,
                               Price.valid_from <= date_of, or_(Price.valid_to.is_(None), Price.valid_to > date_of)))
    )
    states = ("rated", "billed") if include_billed else ("rated",)
    updates: list[dict[str, Any]] = []
    total = 0
    seen: set[int] = set()
    for r in session.execute(q.order_by(base.c.id)).all():
        if r.state not in states or r.id in seen:
            continue
        seen.add(r.id)
        unit = UNITS[r.usage_type]
        qty, cumq = Decimal(r.quantity), Decimal(r.cum)
        if r.price_id is None:
            updates.append({"id": r.id, "state": "rejected", "rated_amount_minor": 0, "rated_at": now, "explanation": f"no usage price for {r.usage_type} on this product at {r.started_at:%Y-%m-%d}"})
            continue
        incl = Decimal(r.included_quantity or 0)
        before = cumq - qty
        chargeable = max(Decimal(0), cumq - incl) - max(Decimal(0), before - incl)
        amount = int((chargeable * Decimal(r.amount_minor)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
        total += amount
        if incl and chargeable < qty:
            expl = f"{qty.normalize():f} {unit} in {r.month}; bundle {incl.normalize():f} {unit}/month, {min(before, incl).normalize():f} used before this record"
        else:
            expl = f"{qty.normalize():f} {unit} in {r.month}"
        expl += f"; {chargeable.normalize():f} {unit} charged at {Decimal(r.amount_minor) / 100:.2f} {r.currency} per {unit} ({r.price_name}) = {Decimal(amount) / 100:.2f} {r.currency} excl. tax"
        updates.append({"id": r.id, "rated_amount_minor": amount, "currency": r.currency, "tax_rate_code": r.tax_rate_code, "rated_at": now, "explanation": expl})
    _write_ratings(session, updates, now=now)
    session.flush()
    return total


def _write_ratings(session: Session, updates: list[dict[str, Any]], *, now: datetime) -> None:
    """Write rating results in one statement per batch: COPY into a temp table + UPDATE ... FROM on PostgreSQL, executemany on SQLite."""
    if not updates:
        return
    if session.get_bind().dialect.name == "postgresql":
        from opsline.db.bulk import copy_rows

        conn = session.connection()
        conn.exec_driver_sql("CREATE TEMP TABLE IF NOT EXISTS usage_rating_tmp (id bigint, state text, rated_amount_minor bigint, currency text, "
                             "tax_rate_code text, explanation text) ON COMMIT DROP")
        conn.exec_driver_sql("TRUNCATE usage_rating_tmp")
        copy_rows(conn, "usage_rating_tmp", ("id", "state", "rated_amount_minor", "currency", "tax_rate_code", "explanation"),
                  ((u["id"], u.get("state"), u["rated_amount_minor"], u.get("currency"), u.get("tax_rate_code"), u["explanation"]) for u in updates))
        conn.exec_driver_sql(
            "UPDATE usage_record u SET state = COALESCE(r.state, u.state), rated_amount_minor = r.rated_amount_minor, currency = COALESCE(r.currency, u.currency), "
            "tax_rate_code = COALESCE(r.tax_rate_code, u.tax_rate_code), explanation = r.explanation, rated_at = %(now)s FROM usage_rating_tmp r WHERE u.id = r.id",
            {"now": now})
        return
    t = UsageRecord.__table__
    priced = [u for u in updates if "state" not in u]
    unpriced = [u for u in updates if "state" in u]
    if priced:
        session.execute(t.update().where(t.c.id == bindparam("_id")).values(rated_amount_minor=bindparam("rated_amount_minor"), currency=bindparam("currency"),
                        tax_rate_code=bindparam("tax_rate_code"), rated_at=bindparam("rated_at"), explanation=bindparam("explanation")),
                        [{**u, "_id": u["id"]} for u in priced])
    if unpriced:
        session.execute(t.update().where(t.c.id == bindparam("_id")).values(state=bindparam("state"), rated_amount_minor=bindparam("rated_amount_minor"),
                        rated_at=bindparam("rated_at"), explanation=bindparam("explanation")), [{**u, "_id": u["id"]} for u in unpriced])


def rate_usage_for_account(session: Session, *, account_id: int, now: datetime, include_billed: bool = False) -> int:
    return rate_usage(session, now=now, account_id=account_id, include_billed=include_billed)


def usage_totals(session: Session, *, account_id: int, start: date, end: date, tz: str | None = None) -> dict[int, dict[str, Any]]:
    """Product id -> rated usage amount (ex tax) for usage started in [start, end) (local dates)."""
    zi = local_zone(tz)
    start_at = datetime.combine(start, datetime.min.time()).replace(tzinfo=zi)
    end_at = datetime.combine(end, datetime.min.time()).replace(tzinfo=zi)
    rows = session.execute(
        select(UsageRecord.product_id, func.sum(UsageRecord.rated_amount_minor), func.max(UsageRecord.tax_rate_code))
        .where(UsageRecord.account_id == account_id, UsageRecord.state != "rejected", UsageRecord.started_at >= start_at, UsageRecord.started_at < end_at)
        .group_by(UsageRecord.product_id)
    ).all()
    return {int(r[0]): {"amount_minor": int(r[1] or 0), "tax_rate_code": r[2]} for r in rows if r[0] is not None}




def list_rejected(session: Session, *, source_file: str | None = None, open_only: bool = True, limit: int = 500) -> list[dict[str, Any]]:
    q = select(UsageRejected)
    if source_file:
        q = q.where(UsageRejected.source_file == source_file)
    if open_only:
        q = q.where(UsageRejected.resolved_at.is_(None))
    return [{"id": r.id, "source_file": r.source_file, "source_line": r.source_line, "raw_line": r.raw_line, "field": r.field, "reason": r.reason,
             "external_id": r.external_id, "rejected_at": r.rejected_at, "resolved_at": r.resolved_at}
            for r in session.execute(q.order_by(UsageRejected.rejected_at.desc(), UsageRejected.source_file, UsageRejected.source_line).limit(limit)).scalars()]


def usage_for_line(session: Session, *, invoice_id: int, product_id: int | None, limit: int = 200) -> list[dict[str, Any]]:
    """The rated usage records behind an invoice's usage line ("why was I charged this")."""
    q = select(UsageRecord).where(UsageRecord.invoice_id == invoice_id)
    if product_id is not None:
        q = q.where(UsageRecord.product_id == product_id)
    return [{"id": u.id, "usage_type": u.usage_type, "started_at": u.started_at, "quantity": u.quantity, "rated_amount_minor": u.rated_amount_minor,
             "currency": u.currency, "explanation": u.explanation, "external_id": u.external_id}
            for u in session.execute(q.order_by(UsageRecord.started_at).limit(limit)).scalars()]
