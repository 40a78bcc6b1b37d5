"""Recovery files from collection agencies: read the agency's layout (CSV or xlsx), check every line before anything is
written (a bad line refuses the whole file naming file, line and field), import each file once (file hash) and each
receipt once (the agency's reference), then allocate: the part of a recovery that pays debt still on the books is a
payment against it; the part beyond that recovers written-off debt (bad-debt recovery: the write-off is reversed for
that amount and the payment posted, so the balance stays right and finance sees the recovery). Both go through the one
ledger writer. Commission per recovery at the rate fixed at hand-over, half-up to the cent; a placement fully recovered
closes as paid."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from xml.etree import ElementTree

from sqlalchemy import bindparam, insert, select, text
from sqlalchemy.orm import Session

from opsline.core.batching import pages
from opsline.core.textfiles import UnreadableTextFile, decode_text_file
from opsline.billing import ledger
from opsline.billing.sql import dialect_of
from opsline.core import events, lifecycle
from opsline.core.errors import Conflict, InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.core.money import UnparseableAmount, parse_minor
from opsline.db.base import sqlite_utc
from opsline.db.session import lock_for_write
from opsline.debtors.agencies import _agency, _placement_memos, commission_minor, ensure_terms, get_terms, ref
from opsline.debtors.agency_models import AGENCY_PLACEMENT, AgencyPlacement, AgencyRecovery, AgencyRecoveryFile, PlacementState
from opsline.users.roles import allowed

MAX_LINES = 200_000
SYSTEM = Actor.system("agency recoveries")


class UnableToImportRecoveries(InvalidInput):
    title = "Unable to import the recovery file"
    type_slug = "unable-to-import-recoveries"

    def __init__(self, detail: str, *, filename: str, line: int | None = None, field: str | None = None) -> None:
        where = filename + (f" line {line}" if line else "") + (f", field {field}" if field else "")
        super().__init__(f"{where}: {detail}", field=field or "file", extra={"file": filename, "line": line, "column": field})
        self.filename, self.line = filename, line


class DuplicateRecoveryFile(Conflict):
    title = "Recovery file already imported"
    type_slug = "duplicate-recovery-file"


@dataclass
class RawLine:
    line_no: int
    account: str
    amount: Any  # str (CSV, xlsx text) or Decimal (xlsx number)
    paid_on: Any  # str, or Decimal (an xlsx date serial)
    agency_ref: str


# --- reading the file ---------------------------------------------------------------------------------------------------

_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_COL = re.compile(r"([A-Z]+)")


def _col_index(cell_ref: str, *, filename: str, line: int) -> int:
    m = _COL.match(cell_ref)
    if not m or len(m.group(1)) > 3:  # xlsx sheets end at column XFD
        raise UnableToImportRecoveries(f"a damaged workbook: '{cell_ref}' is not a cell reference", filename=filename, line=line, field="file")
    n = 0
    for ch in m.group(1):
        n = n * 26 + ord(ch) - 64
    if n > 16_384:
        raise UnableToImportRecoveries(f"a damaged workbook: '{cell_ref}' is not a cell reference", filename=filename, line=line, field="file")
    return n - 1


def _xlsx_rows(data: bytes, *, filename: str) -> list[list[Any]]:
    """The first sheet's rows: text cells as str, numbers as Decimal (never float). Raises UnableToImportRecoveries."""
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        if sum(i.file_size for i in z.infolist()) > 200_000_000:  # unpacked size: a zip bomb is not a recovery file
            raise UnableToImportRecoveries("the workbook unpacks to more than 200 MB; split the file", filename=filename, field="file")
        names = set(z.namelist())
        shared: list[str] = []
        if "xl/sharedStrings.xml" in names:
            for si in ElementTree.fromstring(z.read("xl/sharedStrings.xml")).iter(f"{_NS}si"):
                shared.append("".join(t.text or "" for t in si.iter(f"{_NS}t")))
        sheet = "xl/worksheets/sheet1.xml" if "xl/worksheets/sheet1.xml" in names else min(n for n in names if n.startswith("xl/worksheets/sheet"))
        root = ElementTree.fromstring(z.read(sheet))
    except (zipfile.BadZipFile, KeyError, ValueError, ElementTree.ParseError):
        raise UnableToImportRecoveries("not an xlsx workbook (or a damaged one)", filename=filename, field="file") from None
    rows: list[list[Any]] = []
    for row in root.iter(f"{_NS}row"):
        r = _xlsx_index(row.get("r") or str(len(rows) + 1), MAX_LINES + 1, filename=filename, line=len(rows) + 1, what="row number")
        while len(rows) < r - 1:
            rows.append([])
        cells: list[Any] = []
        for c in row.iter(f"{_NS}c"):
            k = _col_index(c.get("r") or "A1", filename=filename, line=r)
            while len(cells) < k:
                cells.append("")
            t = c.get("t")
            v = c.find(f"{_NS}v")
            if t == "s" and v is not None:
                val: Any = shared[_xlsx_index(v.text or "0", len(shared) - 1, filename=filename, line=r, what="shared string", low=0)]
            elif t == "inlineStr":
                val = "".join(x.text or "" for x in c.iter(f"{_NS}t"))
            elif t in ("str", "b", "e"):
                val = "" if v is None else (v.text or "")
            else:
                try:
                    val = "" if v is None or v.text is None else Decimal(v.text)
                except InvalidOperation:
                    raise UnableToImportRecoveries(f"cell {c.get('r') or '?'} holds '{v.text}', which is not a number", filename=filename, line=r,
                                                   field="file") from None
            cells.append(val)
        rows.append(cells)
    return rows


def _xlsx_index(raw: str, high: int, *, filename: str, line: int, what: str, low: int = 1) -> int:
    """A row number or shared-string index from the workbook's XML, refused (not trusted) when out of range."""
    if not raw.strip().isdigit() or not low <= int(raw) <= high:
        raise UnableToImportRecoveries(f"a damaged workbook: {what} '{raw}' is out of range", filename=filename, line=line, field="file")
    return int(raw)


def _csv_rows(data: bytes, *, filename: str, delimiter: str) -> list[list[Any]]:
    try:
        body, _ = decode_text_file(data)  # agencies send Windows-1252, Latin-1 or UTF-16 as often as UTF-8
    except UnreadableTextFile as exc:
        raise UnableToImportRecoveries(f"{exc}: this is not a CSV file", filename=filename, line=exc.line, field="file") from None
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=delimiter)
    try:
        return [list(r) for r in reader]
    except csv.Error as exc:  # e.g. a field past the csv module's limit: not a recovery file
        raise UnableToImportRecoveries(f"not readable as CSV ({exc})", filename=filename, line=reader.line_num, field="file") from None


def read_lines(data: bytes, *, filename: str, terms: dict[str, Any]) -> list[RawLine]:
    """The file's lines in the agency's recovery layout (header row first). Raises UnableToImportRecoveries."""
    if not data.strip():
        raise UnableToImportRecoveries("the file is empty", filename=filename)
    is_zip = data[:2] == b"PK"
    if terms["recovery_format"] == "xlsx" and not is_zip:
        raise UnableToImportRecoveries("the agency sends xlsx; this is not an xlsx workbook", filename=filename, field="file")
    rows = _xlsx_rows(data, filename=filename) if is_zip else _csv_rows(data, filename=filename, delimiter=terms["recovery_delimiter"])
    if not rows:
        raise UnableToImportRecoveries("the file is empty", filename=filename)
    header = [str(h).strip().lower() for h in rows[0]]
    idx: dict[str, int] = {}
    for key, name in terms["recovery_columns"].items():
        if name.strip().lower() not in header:
            raise UnableToImportRecoveries(f"no column '{name}' in the header row (the agency's layout names it; found: {', '.join(map(str, rows[0]))})",
                                           filename=filename, line=1, field=name)
        idx[key] = header.index(name.strip().lower())
    out = []
    for n, r in enumerate(rows[1:], start=2):
        if not any(str(c).strip() for c in r):
            continue
        cell = lambda k: r[idx[k]] if idx[k] < len(r) else ""  # noqa: E731
        out.append(RawLine(n, str(cell("account")).strip(), cell("amount"), cell("paid_on"), str(cell("agency_ref")).strip()))
    if not out:
        raise UnableToImportRecoveries("no recovery lines under the header", filename=filename, line=2)
    if len(out) > MAX_LINES:
        raise UnableToImportRecoveries(f"more than {MAX_LINES:,} lines; split the file", filename=filename)
    return out


def _amount(raw: Any, currency: str, *, filename: str, line: int, field: str) -> int:
    try:
        minor = parse_minor(str(raw), currency)  # an xlsx number arrives as an exact Decimal; str() keeps it exact
    except UnparseableAmount as exc:
        raise UnableToImportRecoveries(str(exc), filename=filename, line=line, field=field) from None
    if minor <= 0:
        raise UnableToImportRecoveries(f"'{raw}': a recovery must be more than zero", filename=filename, line=line, field=field)
    return minor


def _day(raw: Any, fmt: str, *, filename: str, line: int, field: str) -> date:
    if isinstance(raw, Decimal):  # an Excel date serial (days since 1899-12-30)
        if raw != raw.to_integral_value() or not 1 <= raw <= 2_958_465:
            raise UnableToImportRecoveries(f"'{raw}' is not a date", filename=filename, line=line, field=field)
        return date(1899, 12, 30) + timedelta(days=int(raw))
    try:
        return datetime.strptime(str(raw).strip(), fmt).date()
    except ValueError:
        shown = fmt.replace("%Y", "YYYY").replace("%m", "MM").replace("%d", "DD")
        raise UnableToImportRecoveries(f"'{raw}' is not a date like {shown}", filename=filename, line=line, field=field) from None


# --- checking every line ------------------------------------------------------------------------------------------------

@dataclass
class Line:
    line_no: int
    placement_id: int
    account_id: int
    agency_ref: str
    paid_on: date
    amount_minor: int
    currency: str


def check_lines(session: Session, *, code: str, lines: list[RawLine], terms: dict[str, Any], today: date, filename: str) -> tuple[list[Line], int]:
    """Every line checked against the database (a few set-based reads, whatever the size): returns the lines to post
    and how many were imported already (same receipt reference in an earlier file). Raises UnableToImportRecoveries on
    the first bad line (file order): unknown account or reference, an account not handed to THIS agency, an amount
    of zero or less or not a number, a bad or future date or one before the hand-over, a line repeated in the file, or
    more recovered than the agency holds."""
    cols = terms["recovery_columns"]
    seen: dict[str, int] = {}
    for ln in lines:
        if not ln.agency_ref:
            raise UnableToImportRecoveries("the agency's receipt reference is blank", filename=filename, line=ln.line_no, field=cols["agency_ref"])
        if len(ln.agency_ref) > 80:
            raise UnableToImportRecoveries("a receipt reference of at most 80 characters", filename=filename, line=ln.line_no, field=cols["agency_ref"])
        if ln.agency_ref in seen:
            raise UnableToImportRecoveries(f"duplicate line: receipt '{ln.agency_ref}' is also on line {seen[ln.agency_ref]}", filename=filename,
                                           line=ln.line_no, field=cols["agency_ref"])
        seen[ln.agency_ref] = ln.line_no
        if not ln.account:
            raise UnableToImportRecoveries("no account number or placement reference", filename=filename, line=ln.line_no, field=cols["account"])
    refs = [ln.account for ln in lines]
    pl_ids = {int(r[3:]) for r in refs if re.fullmatch(r"(?i)PL-\d{1,15}", r)}
    numbers = [r for r in refs if not re.fullmatch(r"(?i)PL-\d{1,15}", r)]
    by_id: dict[int, Any] = {}
    cols_sql = "pl.id, pl.account_id, pl.partner_code, pl.state, pl.amount_minor, pl.recovered_minor, pl.currency, pl.placed_on, pl.closed_at, a.account_number"
    for part in pages(sorted(pl_ids), 5000):
        for r in session.execute(text(f"SELECT {cols_sql} FROM agency_placement pl JOIN account a ON a.id = pl.account_id WHERE pl.id IN :i")
                                 .bindparams(bindparam("i", expanding=True)), {"i": part}):
            by_id[int(r.id)] = r
    accounts: dict[str, int] = {}
    mine: dict[int, list[Any]] = {}  # account id -> this agency's placements, newest first
    for part in pages(sorted(set(numbers)), 5000):
        for n, i in session.execute(text("SELECT account_number, id FROM account WHERE account_number IN :n").bindparams(bindparam("n", expanding=True)),
                                    {"n": part}):
            accounts[n] = int(i)
    for part in pages(sorted(set(accounts.values())), 5000):
        for r in session.execute(text(f"""SELECT {cols_sql} FROM agency_placement pl JOIN account a ON a.id = pl.account_id
                                          WHERE pl.partner_code = :p AND pl.account_id IN :i ORDER BY pl.id DESC""")
                                 .bindparams(bindparam("i", expanding=True)), {"p": code, "i": part}):
            mine.setdefault(int(r.account_id), []).append(r)
    done = set()
    for part in pages(sorted(seen), 5000):
        done |= set(session.execute(text("SELECT agency_ref FROM agency_recovery WHERE partner_code = :p AND agency_ref IN :r")
                                    .bindparams(bindparam("r", expanding=True)), {"p": code, "r": part}).scalars())
    agency_name = terms["name"]
    out: list[Line] = []
    added: dict[int, int] = {}
    for ln in lines:
        where = {"filename": filename, "line": ln.line_no}
        if ln.agency_ref in done:
            continue
        key = ln.account
        if re.fullmatch(r"(?i)PL-\d{1,15}", key):
            pl = by_id.get(int(key[3:]))
            if pl is None:
                raise UnableToImportRecoveries(f"unknown placement reference '{key}'", field=cols["account"], **where)
            if pl.partner_code != code:
                raise UnableToImportRecoveries(f"{key} (account {pl.account_number}) was not handed over to {agency_name}", field=cols["account"], **where)
            candidates = [pl]
        else:
            if key not in accounts:
                raise UnableToImportRecoveries(f"unknown account '{key}'", field=cols["account"], **where)
            candidates = mine.get(accounts[key], [])
            if not candidates:
                raise UnableToImportRecoveries(f"account {key} is not handed over to {agency_name}", field=cols["account"], **where)
        cur = candidates[0].currency
        amount = _amount(ln.amount, cur, field=cols["amount"], **where)
        paid_on = _day(ln.paid_on, terms["recovery_date_format"], field=cols["paid_on"], **where)
        if paid_on > today:
            raise UnableToImportRecoveries(f"paid on {paid_on}, which is after today ({today})", field=cols["paid_on"], **where)
        pl = _choose(candidates, paid_on)
        if pl is None:
            last = candidates[0]
            why = (f"it was recalled on {_as_date(last.closed_at)}; payments after that are not {agency_name}'s"
                   if last.state == PlacementState.RECALLED else f"its placement {ref(last.id)} is {last.state.replace('_', ' ')}"
                   if last.state != PlacementState.PLACED else f"it was handed over on {_as_date(last.placed_on)}, after this payment")
            raise UnableToImportRecoveries(f"account {last.account_number}: {why}", field=cols["paid_on"], **where)
        outstanding = int(pl.amount_minor) - int(pl.recovered_minor) - added.get(int(pl.id), 0)
        if amount > outstanding:
            raise UnableToImportRecoveries(f"{_fmt(amount, cur)} is more than the {_fmt(outstanding, cur)} still with {agency_name} on {ref(pl.id)}",
                                           field=cols["amount"], **where)
        added[int(pl.id)] = added.get(int(pl.id), 0) + amount
        out.append(Line(ln.line_no, int(pl.id), int(pl.account_id), ln.agency_ref, paid_on, amount, cur))
    return out, len([ln for ln in lines if ln.agency_ref in done])


def _as_date(v: Any) -> date:
    if isinstance(v, datetime):
        return v.date()
    return v if isinstance(v, date) else date.fromisoformat(str(v)[:10])


def _choose(candidates: list[Any], paid_on: date) -> Any:
    """The placement a payment made on `paid_on` belongs to: one with the agency then (placed on or before that day and
    still placed, or recalled after it)."""
    for pl in candidates:
        if _as_date(pl.placed_on) > paid_on:
            continue
        if pl.state == PlacementState.PLACED or (pl.state == PlacementState.RECALLED and pl.closed_at is not None and _as_date(pl.closed_at) >= paid_on):
            return pl
    return None


def _fmt(minor: int, cur: str) -> str:
    from opsline.core.money import Money

    return str(Money.from_minor(minor, cur))


# --- importing ----------------------------------------------------------------------------------------------------------

def import_recoveries(session: Session, *, agency: str, data: bytes, filename: str, today: date, now: datetime, actor: Actor) -> dict[str, Any]:
    """Import one recovery file of `agency` in the caller's transaction: all of it or nothing. Raises NotFound (agency),
    UnableToImportRecoveries (naming file, line and field), DuplicateRecoveryFile (these bytes were imported already),
    ActionNotPermitted."""
    if not actor.is_system and not allowed(actor.roles, "debtors.handover"):
        raise lifecycle.ActionNotPermitted("your role does not allow 'debtors.handover'", extra={"permission": "debtors.handover"})
    p = _agency(session, agency)
    filename = (filename or "upload")[:200]
    digest = hashlib.sha256(data).hexdigest()
    lock_for_write(session)
    if dialect_of(session).pg:  # one import per agency at a time: the checks below (outstanding, receipts seen) hold until it commits
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"opsline.agency_recoveries.{p.code}"})
    _duplicate(session, code=p.code, digest=digest, filename=filename)
    ensure_terms(session, now=now)
    terms = get_terms(session, code=p.code)
    lines, skipped = check_lines(session, code=p.code, lines=read_lines(data, filename=filename, terms=terms), terms=terms, today=today,
                                 filename=filename)
    d = dialect_of(session)
    ts = now if d.pg else sqlite_utc(now)
    pct = dict(session.execute(select(AgencyPlacement.id, AgencyPlacement.commission_percent)
                               .where(AgencyPlacement.id.in_(sorted({ln.placement_id for ln in lines}) or [0]))).all())
    rows = [{"line": ln, "commission": commission_minor(ln.amount_minor, Decimal(pct[ln.placement_id]))} for ln in lines]
    currency = lines[0].currency if lines else p.currency
    new_id = session.execute(text("""INSERT INTO agency_recovery_file (partner_code, filename, sha256, lines, new_lines, amount_minor, commission_minor,
                                                                         currency, imported_at, imported_by)
                                     VALUES (:p, :fn, :h, :n, :new, :amt, :com, :cur, :now, :by)
                                     ON CONFLICT (partner_code, sha256) DO NOTHING RETURNING id"""),
                             {"p": p.code, "fn": filename, "h": digest, "n": len(lines) + skipped, "new": len(lines),
                              "amt": sum(ln.amount_minor for ln in lines), "com": sum(r["commission"] for r in rows), "cur": currency,
                              "now": ts, "by": actor.name}).scalar()
    if new_id is None:  # a concurrent import of the same bytes committed first
        _duplicate(session, code=p.code, digest=digest, filename=filename)
    file_id = int(new_id)
    if rows:
        _post(session, file_id=file_id, code=p.code, agency_name=p.name, rows=rows, now=now, actor=actor)
    result = {"file_id": file_id, "filename": filename, "agency": p.code, "agency_name": p.name, "lines": len(lines) + skipped, "posted": len(lines),
              "already_imported": skipped, "amount_minor": sum(ln.amount_minor for ln in lines),
              "commission_minor": sum(r["commission"] for r in rows), "currency": currency,
              "closed_paid": _close_paid(session, file_id=file_id, now=now)}
    events.record(session, now=now, actor=actor, entity_type="agency_recovery_file", entity_id=file_id, action="imported", after=result)
    session.flush()
    return result


def _duplicate(session: Session, *, code: str, digest: str, filename: str) -> None:
    first = session.execute(select(AgencyRecoveryFile).where(AgencyRecoveryFile.partner_code == code, AgencyRecoveryFile.sha256 == digest)).scalar_one_or_none()
    if first is not None:
        raise DuplicateRecoveryFile(f"{filename}: this file was already imported on {first.imported_at:%Y-%m-%d %H:%M} UTC as '{first.filename}' by "
                                    f"{first.imported_by} ({first.new_lines} recoveries); nothing was posted again", field="file",
                                    extra={"recovery_file_id": first.id})


def _post(session: Session, *, file_id: int, code: str, agency_name: str, rows: list[dict[str, Any]], now: datetime, actor: Actor) -> None:
    """Allocate each line (debt on the books first, then written-off debt) in file order by payment date, store the
    recoveries, post them to the ledger, and update each placement's totals; a few statements whatever the size."""
    d = dialect_of(session)
    ts = now if d.pg else sqlite_utc(now)
    ids = sorted({r["line"].placement_id for r in rows})
    left = {int(i): int(ob) - (int(rec) - int(bd)) for i, ob, rec, bd in session.execute(
        select(AgencyPlacement.id, AgencyPlacement.on_book_minor, AgencyPlacement.recovered_minor, AgencyPlacement.bad_debt_recovered_minor)
        .where(AgencyPlacement.id.in_(ids)))}
    values = []
    for r in sorted(rows, key=lambda r: (r["line"].paid_on, r["line"].line_no)):
        ln: Line = r["line"]
        on_book = min(ln.amount_minor, max(0, left[ln.placement_id]))
        left[ln.placement_id] -= on_book
        values.append({"file_id": file_id, "placement_id": ln.placement_id, "account_id": ln.account_id, "partner_code": code, "line_no": ln.line_no,
                       "agency_ref": ln.agency_ref, "paid_on": ln.paid_on, "amount_minor": ln.amount_minor, "on_book_minor": on_book,
                       "bad_debt_minor": ln.amount_minor - on_book, "commission_minor": r["commission"], "currency": ln.currency, "posted_at": now})
    session.execute(insert(AgencyRecovery), values)
    now_sql = "CAST(:now AS TIMESTAMPTZ)" if d.pg else ":now"
    params = {"now": d.bind_ts(now), "f": file_id, "who": agency_name}
    # the written-off part: the write-off is reversed for it (dated as the debt it reinstates, so ageing stays oldest-first)
    ledger.post_select(session, select_sql=f"""
        SELECT r.account_id, 'write_off' AS kind, 'agency_recovery' AS ref_type, r.id AS ref_id, r.bad_debt_minor AS amount_minor, r.currency,
               {now_sql} AS posted_at, pl.oldest_due AS due_date,
               'Bad-debt recovery through ' || CAST(:who AS TEXT) || ' (receipt ' || r.agency_ref || ', PL-' || CAST(pl.id AS VARCHAR(20)) || '): write-off reversed' AS description
        FROM agency_recovery r JOIN agency_placement pl ON pl.id = r.placement_id WHERE r.file_id = :f AND r.bad_debt_minor > 0 ORDER BY r.id""", params=params)
    ledger.post_select(session, select_sql=f"""
        SELECT r.account_id, 'payment' AS kind, 'agency_recovery' AS ref_type, r.id AS ref_id, -r.amount_minor AS amount_minor, r.currency,
               {now_sql} AS posted_at, CAST(NULL AS DATE) AS due_date,
               'Paid through ' || CAST(:who AS TEXT) || ' on ' || CAST(r.paid_on AS VARCHAR(10)) || ' (receipt ' || r.agency_ref || ', PL-' || CAST(r.placement_id AS VARCHAR(20)) || ')' AS description
        FROM agency_recovery r WHERE r.file_id = :f ORDER BY r.id""", params=params)
    session.execute(text("""UPDATE agency_placement SET
                               recovered_minor = recovered_minor + (SELECT SUM(r.amount_minor) FROM agency_recovery r WHERE r.file_id = :f AND r.placement_id = agency_placement.id),
                               bad_debt_recovered_minor = bad_debt_recovered_minor + (SELECT SUM(r.bad_debt_minor) FROM agency_recovery r WHERE r.file_id = :f AND r.placement_id = agency_placement.id),
                               commission_minor = commission_minor + (SELECT SUM(r.commission_minor) FROM agency_recovery r WHERE r.file_id = :f AND r.placement_id = agency_placement.id)
                            WHERE id IN (SELECT placement_id FROM agency_recovery WHERE file_id = :f)"""), {"f": file_id})
    obj = "jsonb_build_object" if d.pg else "json_object"
    session.execute(text(f"""INSERT INTO audit_event (occurred_at, actor, entity_type, entity_id, account_id, action, reason, "before", "after")
                             SELECT :now, :by, 'agency_recovery', CAST(r.id AS VARCHAR(60)), r.account_id, 'posted', NULL, NULL,
                                    {obj}('placement_id', r.placement_id, 'agency', r.partner_code, 'agency_ref', r.agency_ref, 'amount_minor', r.amount_minor,
                                          'on_book_minor', r.on_book_minor, 'bad_debt_minor', r.bad_debt_minor, 'commission_minor', r.commission_minor,
                                          'currency', r.currency, 'file_id', r.file_id)
                             FROM agency_recovery r WHERE r.file_id = :f ORDER BY r.id"""), {"now": ts, "by": actor.name, "f": file_id})
    amount = "CAST(CAST(r.amount_minor / 100.0 AS NUMERIC(18,2)) AS TEXT)" if d.pg else "printf('%.2f', r.amount_minor / 100.0)"
    bad = "CAST(CAST(r.bad_debt_minor / 100.0 AS NUMERIC(18,2)) AS TEXT)" if d.pg else "printf('%.2f', r.bad_debt_minor / 100.0)"
    session.execute(text(f"""INSERT INTO memo (account_id, created_at, author, category, body)
                             SELECT r.account_id, :now, :by, 'debtors', 'Recovered through ' || CAST(:who AS TEXT) || ': ' || r.currency || ' ' || {amount}
                                    || ' paid on ' || CAST(r.paid_on AS VARCHAR(10)) || ' (receipt ' || r.agency_ref || ', PL-' || CAST(r.placement_id AS VARCHAR(20)) || ')'
                                    || CASE WHEN r.bad_debt_minor > 0 THEN '; of it ' || r.currency || ' ' || {bad} || ' written-off debt recovered' ELSE '' END || '.'
                             FROM agency_recovery r WHERE r.file_id = :f ORDER BY r.id"""), {"now": ts, "by": actor.name, "f": file_id, "who": agency_name})
    session.expire_all()


def _close_paid(session: Session, *, file_id: int, now: datetime) -> int:
    ids = [int(i) for i in session.execute(text("""SELECT id FROM agency_placement WHERE state = 'placed' AND recovered_minor >= amount_minor
                                                  AND id IN (SELECT placement_id FROM agency_recovery WHERE file_id = :f)"""), {"f": file_id}).scalars()]
    if not ids:
        return 0
    changed = lifecycle.transition_many(session, AGENCY_PLACEMENT, AgencyPlacement, ids, "close_paid", now=now, actor=SYSTEM,
                                        reason="fully recovered by the agency")
    d = dialect_of(session)
    session.execute(text(f"UPDATE agency_placement SET closed_at = :now, closed_by = 'system', close_reason = 'fully recovered' "
                         f"WHERE id IN ({','.join(str(i) for i in changed)})"), {"now": now if d.pg else sqlite_utc(now)})
    _placement_memos(session, f"pl.id IN ({','.join(str(i) for i in changed)})", "Fully recovered by the agency; placement closed as paid: ", "",
                     now=now, actor=SYSTEM)
    return len(changed)


# --- reading ------------------------------------------------------------------------------------------------------------

def list_files(session: Session, *, limit: int = 50) -> list[dict[str, Any]]:
    from opsline.partners.models import Partner

    rows = session.execute(select(AgencyRecoveryFile, Partner.name).join(Partner, Partner.code == AgencyRecoveryFile.partner_code)
                           .order_by(AgencyRecoveryFile.id.desc()).limit(limit)).all()
    return [_file_dict(f, n) for f, n in rows]


def _file_dict(f: AgencyRecoveryFile, agency_name: str) -> dict[str, Any]:
    return {"id": f.id, "agency": f.partner_code, "agency_name": agency_name, "filename": f.filename, "lines": f.lines, "new_lines": f.new_lines,
            "amount_minor": f.amount_minor, "commission_minor": f.commission_minor, "currency": f.currency, "imported_at": f.imported_at,
            "imported_by": f.imported_by}


def get_file(session: Session, *, file_id: int) -> dict[str, Any]:
    """One imported file with its recoveries (line order). Raises NotFound."""
    from opsline.partners.models import Partner

    f = session.get(AgencyRecoveryFile, file_id)
    if f is None:
        raise NotFound(f"recovery file {file_id} not found", field="file_id")
    p = session.get(Partner, f.partner_code)
    rows = session.execute(text("""SELECT r.id, r.line_no, r.agency_ref, r.paid_on, r.amount_minor, r.on_book_minor, r.bad_debt_minor, r.commission_minor,
                                          r.currency, r.placement_id, r.account_id, a.account_number, a.name, pl.state AS placement_state
                                   FROM agency_recovery r JOIN account a ON a.id = r.account_id JOIN agency_placement pl ON pl.id = r.placement_id
                                   WHERE r.file_id = :f ORDER BY r.line_no"""), {"f": f.id}).all()
    return _file_dict(f, p.name if p else f.partner_code) | {"rows": [dict(r._mapping) | {"placement_ref": ref(r.placement_id)} for r in rows]}


__all__ = ["DuplicateRecoveryFile", "UnableToImportRecoveries", "check_lines", "get_file", "import_recoveries", "list_files", "read_lines"]
