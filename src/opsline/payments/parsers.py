"""Statement parsers: bank CSV with a saved mapping, SWIFT MT940 (mt-940) and ISO 20022 camt.053 (lxml), and debit-order
result files. Each returns a `ParsedStatement` or raises `UnableToImportStatement` naming the file, line and field; nothing is
written here, so a bad file posts nothing."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Iterable

from opsline.core.errors import InvalidInput
from opsline.core.money import UnparseableAmount, exponent, parse_minor

# Control characters other than tab, CR and LF never appear in a genuine statement: they mean binary data or a wrong encoding.
_STRAY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")


class UnableToImportStatement(InvalidInput):
    title = "Unable to import the statement"
    type_slug = "unable-to-import-statement"

    def __init__(self, detail: str, *, filename: str, line: int | None = None, field: str | None = None) -> None:
        where = filename + (f" line {line}" if line else "") + (f", field {field}" if field else "")
        super().__init__(f"{where}: {detail}", field=field or "file", extra={"file": filename, "line": line, "column": field})
        self.filename, self.line = filename, line


@dataclass
class ParsedLine:
    line_no: int
    bank_reference: str
    value_date: date
    amount_minor: int  # + in, - out
    currency: str
    payer_name: str = ""
    payer_account: str = ""
    reference: str = ""


@dataclass
class DebitResultLine:
    line_no: int
    collection_ref: str
    account_number: str
    invoice_number: str
    amount_minor: int
    currency: str
    action_date: date
    status: str
    reason_code: str


@dataclass
class ParsedStatement:
    format: str
    filename: str
    currency: str
    bank: str = ""
    bank_account: str = ""
    statement_date: date | None = None
    opening_minor: int | None = None
    closing_minor: int | None = None
    lines: list[ParsedLine] = field(default_factory=list)
    debit_results: list[DebitResultLine] = field(default_factory=list)


@dataclass(frozen=True)
class Mapping:
    """A bank's CSV layout (the data of a `CsvMapping` row)."""

    name: str
    bank: str
    bank_account: str
    currency: str
    columns: dict[str, Any]
    encoding: str = "utf-8"
    delimiter: str = ","
    date_format: str = "%Y-%m-%d"
    decimal_comma: bool = False
    header_rows: int = 1
    footer_rows: int = 0


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode(data: bytes, *, filename: str, encoding: str) -> str:
    """Bytes → text in the declared encoding, refusing unknown encodings, undecodable bytes and stray binary characters."""
    if not data.strip():
        raise UnableToImportStatement("the file is empty", filename=filename)
    try:
        text = data.decode(encoding)
    except LookupError as exc:
        raise UnableToImportStatement(f"unknown encoding '{encoding}'", filename=filename, field="encoding") from exc
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UnableToImportStatement(f"bytes that are not {encoding} (byte 0x{data[exc.start]:02x}); check the encoding",
                                      filename=filename, line=line, field="encoding") from exc
    text = text.lstrip("\ufeff")
    m = _STRAY.search(text)
    if m:
        line = text[: m.start()].count("\n") + 1
        raise UnableToImportStatement(f"stray binary character U+{ord(m.group()):04X}: this is not a text statement",
                                      filename=filename, line=line, field="content")
    return text


_SPACE = re.compile(r"\s")
_PLAIN_DOT = re.compile(r"(-?)(\d{1,15})(?:\.(\d{1,2}))?")
_PLAIN_COMMA = re.compile(r"(-?)(\d{1,15})(?:,(\d{1,2}))?")


def to_minor(raw: str, currency: str, *, decimal_comma: bool, filename: str, line: int, field: str, cents: bool | None = None) -> int:
    """'1 234,50' / '-1,234.50' / '(99.00)' / 'R 599' → signed minor units, refusing sub-cent precision. `cents`: the caller
    already knows whether the currency has two decimals (a parser asks once per file, not once per amount)."""
    m = (_PLAIN_COMMA if decimal_comma else _PLAIN_DOT).fullmatch(raw)
    if m and (exponent(currency) == 2 if cents is None else cents):
        whole, cents = m.group(2), (m.group(3) or "").ljust(2, "0")
        v = int(whole) * 100 + int(cents)
        return -v if m.group(1) else v
    try:
        return parse_minor(raw, currency, decimal_comma=decimal_comma)
    except UnparseableAmount as exc:
        raise UnableToImportStatement(str(exc), filename=filename, line=line, field=field) from None


def _date(raw: str, fmt: str, *, filename: str, line: int, field: str) -> date:
    try:
        return datetime.strptime(raw.strip(), fmt).date()
    except ValueError:
        raise UnableToImportStatement(f"'{raw}' is not a date in the format {fmt}", filename=filename, line=line, field=field) from None


def _synthetic_ref(*parts: object) -> str:
    """Banks without a transaction reference in their CSV: a stable one from the row's content, so an overlapping export dedupes."""
    return "H" + hashlib.sha1("|".join(str(p) for p in parts).encode()).hexdigest()[:20]


def check_balances(st: ParsedStatement) -> None:
    """Opening + entries must equal closing, when the file states both."""
    if st.opening_minor is None or st.closing_minor is None:
        return
    total = sum(ln.amount_minor for ln in st.lines)
    if st.opening_minor + total != st.closing_minor:
        exp = exponent(st.currency)
        fmt = lambda m: f"{Decimal(m).scaleb(-exp):,.{exp}f}"  # noqa: E731
        raise UnableToImportStatement(
            f"the closing balance {fmt(st.closing_minor)} does not follow from the opening balance {fmt(st.opening_minor)} and the "
            f"{len(st.lines)} entries ({fmt(total)}); expected {fmt(st.opening_minor + total)}: the file is incomplete or altered",
            filename=st.filename, field="closing_balance")


def check_currency(st: ParsedStatement, expected: Iterable[str]) -> None:
    allowed = {c.upper() for c in expected}
    if st.currency.upper() not in allowed:
        raise UnableToImportStatement(f"the statement is in {st.currency}; accounts here are billed in {', '.join(sorted(allowed))}",
                                      filename=st.filename, field="currency")
    for ln in st.lines:
        if ln.currency != st.currency:
            raise UnableToImportStatement(f"entry in {ln.currency} on a {st.currency} statement", filename=st.filename, line=ln.line_no, field="currency")


def _csv_rows(text: str, *, filename: str, delimiter: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        return list(reader)
    except csv.Error as exc:  # a field past the csv module's limit, a NUL the decoder let through: not a statement
        raise UnableToImportStatement(f"not readable as CSV ({exc})", filename=filename, line=reader.line_num, field="row") from None


# --- CSV -------------------------------------------------------------------------------------------------------------------
def parse_csv(data: bytes, *, filename: str, mapping: Mapping) -> ParsedStatement:
    """A bank CSV export read with a saved mapping. Columns are header names, or 1-based positions when given as numbers."""
    text = decode(data, filename=filename, encoding=mapping.encoding)
    rows = _csv_rows(text, filename=filename, delimiter=mapping.delimiter)
    numbered = [(i + 1, r) for i, r in enumerate(rows)]
    while numbered and not any(c.strip() for c in numbered[-1][1]):
        numbered.pop()
    if len(numbered) < mapping.header_rows + mapping.footer_rows:
        raise UnableToImportStatement("the file ends before its header and footer rows: truncated?", filename=filename)
    header = [c.strip().lower() for c in numbered[mapping.header_rows - 1][1]] if mapping.header_rows else []
    body = numbered[mapping.header_rows: len(numbered) - mapping.footer_rows]
    cols = mapping.columns

    def index_of(key: str) -> int | None:
        spec = cols.get(key)
        if spec in (None, ""):
            return None
        if isinstance(spec, int) or str(spec).isdigit():
            return int(spec) - 1
        name = str(spec).strip().lower()
        if name not in header:
            raise UnableToImportStatement(f"the header has no column '{spec}' (mapping {mapping.name}); found: {', '.join(header)}",
                                          filename=filename, line=mapping.header_rows, field=key)
        return header.index(name)

    idx = {k: index_of(k) for k in ("date", "amount", "debit", "credit", "reference", "payer_name", "payer_account", "bank_reference", "currency", "balance")}
    if idx["date"] is None or (idx["amount"] is None and idx["credit"] is None):
        raise UnableToImportStatement(f"mapping {mapping.name} needs a date and an amount (or debit/credit) column", filename=filename, field="mapping")
    width = max(i for i in idx.values() if i is not None) + 1
    dates: dict[str, date] = {}  # a statement has few distinct dates; strptime is the slow part of a row
    st = ParsedStatement(format="csv", filename=filename, currency=mapping.currency, bank=mapping.bank, bank_account=mapping.bank_account)
    seen: dict[str, int] = {}
    prev_balance: int | None = None
    cents = {mapping.currency.upper(): exponent(mapping.currency) == 2}  # per currency, asked once
    i_date, i_amount, i_cur = idx["date"], idx["amount"], idx["currency"]
    for line_no, r in body:
        if not "".join(r).strip():
            continue
        if len(r) < width:
            raise UnableToImportStatement(f"the row has {len(r)} columns, {width} expected: truncated or wrong delimiter", filename=filename, line=line_no,
                                          field="row")
        cell = lambda k: r[idx[k]].strip() if idx[k] is not None else ""  # noqa: E731
        raw_date = r[i_date].strip()
        d = dates.get(raw_date) or dates.setdefault(raw_date, _date(raw_date, mapping.date_format, filename=filename, line=line_no, field="date"))
        cur = ((r[i_cur].strip() if i_cur is not None else "") or mapping.currency).upper()
        two = cents.get(cur)
        if two is None:
            two = cents[cur] = exponent(cur) == 2
        if i_amount is not None:
            amount = to_minor(r[i_amount].strip(), cur, decimal_comma=mapping.decimal_comma, filename=filename, line=line_no, field="amount", cents=two)
        else:
            cr_, dr_ = cell("credit"), cell("debit")
            if not cr_ and not dr_:
                raise UnableToImportStatement("neither a debit nor a credit amount", filename=filename, line=line_no, field="credit")
            amount = (to_minor(cr_, cur, decimal_comma=mapping.decimal_comma, filename=filename, line=line_no, field="credit") if cr_ else 0) - (
                abs(to_minor(dr_, cur, decimal_comma=mapping.decimal_comma, filename=filename, line=line_no, field="debit")) if dr_ else 0)
        if amount == 0:
            raise UnableToImportStatement("an entry of zero", filename=filename, line=line_no, field="amount")
        if idx["balance"] is not None and cell("balance"):
            bal = to_minor(cell("balance"), cur, decimal_comma=mapping.decimal_comma, filename=filename, line=line_no, field="balance", cents=two)
            if prev_balance is None:
                st.opening_minor = bal - amount
            elif prev_balance + amount != bal:
                raise UnableToImportStatement("the running balance does not follow from the previous row and this amount", filename=filename,
                                              line=line_no, field="balance")
            prev_balance = st.closing_minor = bal
        ref = cell("bank_reference")
        if not ref:
            base = _synthetic_ref(d, amount, cell("reference"), cell("payer_name"), cell("payer_account"))
            seen[base] = seen.get(base, 0) + 1
            ref = f"{base}-{seen[base]}"
        st.lines.append(ParsedLine(line_no=line_no, bank_reference=ref[:80], value_date=d, amount_minor=amount, currency=cur,
                                   payer_name=cell("payer_name")[:200], payer_account=_SPACE.sub("", cell("payer_account"))[:40],
                                   reference=cell("reference")[:300]))
    if not st.lines:
        raise UnableToImportStatement("no entries between the header and footer rows", filename=filename)
    st.statement_date = max(ln.value_date for ln in st.lines)
    return st


# --- MT940 -----------------------------------------------------------------------------------------------------------------
_SWIFT_TAG = re.compile(r"/(NAME|ACCT|IBAN|BIC|REMI|EREF|RREF|MREF|ORDP|BENM|PURP|ULTD|ULTC|CSID|MARF|SVCL|TRTP|CDTRREFTP|CDTRREF)/")


def _details_86(details: str) -> dict[str, str]:
    """:86: in the common dialects: '/NAME/../ACCT/../REMI/..' (SWIFT structured), '?20..?32' (GVC), or free text."""
    d = details.replace("\n", "").replace("\r", "")
    out = {"payer_name": "", "payer_account": "", "reference": d}
    if "?" in d and re.search(r"\?\d\d", d):
        parts = dict((m.group(1), m.group(2)) for m in re.finditer(r"\?(\d\d)([^?]*)", d))
        out["reference"] = "".join(parts.get(f"{i}", "") for i in range(20, 30)) or d
        out["payer_name"] = (parts.get("32", "") + parts.get("33", "")).strip()
        out["payer_account"] = parts.get("31", "").strip()
    elif d.startswith("/"):
        # a value runs to the next known tag, so a reference like 'a/c 12345' keeps its slash
        pieces = _SWIFT_TAG.split(d)
        parts = {pieces[i].upper(): pieces[i + 1].strip() for i in range(1, len(pieces) - 1, 2)}
        out["reference"] = parts.get("REMI") or parts.get("EREF") or parts.get("RREF") or d
        out["payer_name"] = parts.get("NAME", "")
        out["payer_account"] = parts.get("ACCT") or parts.get("IBAN", "")
    return out


def parse_mt940(data: bytes, *, filename: str, encoding: str = "utf-8") -> ParsedStatement:
    import mt940

    text = decode(data, filename=filename, encoding=encoding).replace("\r\n", "\n")
    if ":20:" not in text or ":60" not in text:
        raise UnableToImportStatement("not an MT940 statement (no :20: or :60F: tag)", filename=filename, field=":20:")
    lines = text.split("\n")
    tag61 = [i + 1 for i, ln in enumerate(lines) if ln.startswith(":61:")]
    if not any(ln.startswith(":62") for ln in lines):
        raise UnableToImportStatement("no closing balance (:62F:): the file is truncated", filename=filename, line=len(lines), field=":62F:")
    try:
        tr = mt940.models.Transactions()
        tr.parse(text)
    except Exception as exc:  # the library raises bare ValueError/RuntimeError on malformed tags
        raise UnableToImportStatement(f"malformed MT940: {exc}", filename=filename, field="mt940") from None
    txs = list(tr)
    if len(txs) != len(tag61):
        line = tag61[len(txs)] if len(txs) < len(tag61) else None
        raise UnableToImportStatement(f"malformed :61: entry ({len(txs)} of {len(tag61)} entries could be read)", filename=filename, line=line, field=":61:")
    opening, closing = tr.data.get("final_opening_balance"), tr.data.get("final_closing_balance")
    if opening is None or closing is None:
        raise UnableToImportStatement("opening (:60F:) or closing (:62F:) balance missing", filename=filename, field=":60F:")
    cur = str(opening.amount.currency)
    st = ParsedStatement(format="mt940", filename=filename, currency=cur, bank_account=str(tr.data.get("account_identification", ""))[:40],
                         opening_minor=to_minor(str(opening.amount.amount), cur, decimal_comma=False, filename=filename, line=None or 0, field=":60F:"),
                         closing_minor=to_minor(str(closing.amount.amount), cur, decimal_comma=False, filename=filename, line=0, field=":62F:"))
    for n, t in enumerate(txs):
        line_no = tag61[n]
        dd = t.data
        amt = dd["amount"]
        det = _details_86(dd.get("transaction_details") or "")
        ref = dd.get("bank_reference") or dd.get("customer_reference") or ""
        if not ref or ref == "NONREF":
            ref = _synthetic_ref(dd["date"], amt.amount, det["reference"], n)
        st.lines.append(ParsedLine(line_no=line_no, bank_reference=str(ref)[:80], value_date=date(dd["date"].year, dd["date"].month, dd["date"].day),
                                   amount_minor=to_minor(str(amt.amount), str(amt.currency), decimal_comma=False, filename=filename, line=line_no, field=":61:"),
                                   currency=str(amt.currency), payer_name=det["payer_name"][:200], payer_account=det["payer_account"][:40],
                                   reference=det["reference"][:300]))
    st.statement_date = date(closing.date.year, closing.date.month, closing.date.day) if closing.date else None
    return st


# --- camt.053 --------------------------------------------------------------------------------------------------------------
def _x(node: Any, path: str, ns: str) -> str:
    """Text at a path of local names ('Acct/Id/IBAN') in the document's namespace, '' when absent."""
    v = node.findtext("./" + "/".join(f"{{{ns}}}{p}" if ns else p for p in path.split("/")))
    return (v or "").strip()


def _all(node: Any, name: str, ns: str) -> list[Any]:
    return node.findall(f"./{{{ns}}}{name}" if ns else f"./{name}")


def _first(node: Any, *paths: str, ns: str) -> str:
    for p in paths:
        v = _x(node, p, ns)
        if v:
            return v
    return ""


def parse_camt053(data: bytes, *, filename: str) -> ParsedStatement:
    from lxml import etree

    decode(data, filename=filename, encoding="utf-8")  # refuses binary and bad bytes with a line number
    try:
        root = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False))
    except etree.XMLSyntaxError as exc:
        raise UnableToImportStatement(f"malformed or truncated XML: {exc.msg}", filename=filename, line=exc.lineno, field="xml") from None
    ns = etree.QName(root).namespace or ""
    m = re.search(r"camt\.053\.001\.(\d\d)", ns)
    if not m:
        raise UnableToImportStatement(f"not a camt.053 document (namespace '{ns}')", filename=filename, line=root.sourceline, field="Document")
    if int(m.group(1)) < 2:
        raise UnableToImportStatement(f"camt.053.001.{m.group(1)} is not supported (versions .02 onwards)", filename=filename, line=root.sourceline,
                                      field="Document")
    X = lambda node, path: _x(node, path, ns)  # noqa: E731
    F = lambda node, *paths: _first(node, *paths, ns=ns)  # noqa: E731
    A = lambda node, name: _all(node, name, ns)  # noqa: E731
    stmts = root.findall(f".//{{{ns}}}Stmt")
    if len(stmts) != 1:
        raise UnableToImportStatement(f"expected one <Stmt>, found {len(stmts)}", filename=filename, field="Stmt")
    s = stmts[0]
    cur = F(s, "Acct/Ccy")
    st = ParsedStatement(format="camt053", filename=filename, currency=cur, bank_account=F(s, "Acct/Id/IBAN", "Acct/Id/Othr/Id")[:40],
                         bank=F(s, "Acct/Svcr/FinInstnId/Nm", "Acct/Svcr/FinInstnId/BIC", "Acct/Svcr/FinInstnId/BICFI")[:80])
    for bal in A(s, "Bal"):
        code = X(bal, "Tp/CdOrPrtry/Cd")
        amt_el = A(bal, "Amt")
        if not amt_el:
            raise UnableToImportStatement("balance without an amount", filename=filename, line=bal.sourceline, field="Bal/Amt")
        bcur = amt_el[0].get("Ccy") or cur
        cur = cur or bcur
        v = to_minor(amt_el[0].text or "", bcur, decimal_comma=False, filename=filename, line=amt_el[0].sourceline, field="Bal/Amt")
        if X(bal, "CdtDbtInd") == "DBIT":
            v = -v
        if code in ("OPBD", "PRCD"):
            st.opening_minor = v
        elif code == "CLBD":
            st.closing_minor = v
            dt = F(bal, "Dt/Dt", "Dt/DtTm")
            st.statement_date = date.fromisoformat(dt[:10]) if dt else None
    if not cur:
        raise UnableToImportStatement("the statement names no currency", filename=filename, field="Acct/Ccy")
    st.currency = cur
    for n, e in enumerate(A(s, "Ntry")):
        ln = e.sourceline
        amt_el = A(e, "Amt")
        if not amt_el:
            raise UnableToImportStatement("entry without an amount", filename=filename, line=ln, field="Ntry/Amt")
        ecur = amt_el[0].get("Ccy") or ""
        if not ecur:
            raise UnableToImportStatement("amount without a currency (Ccy)", filename=filename, line=amt_el[0].sourceline, field="Ntry/Amt/@Ccy")
        v = to_minor(amt_el[0].text or "", ecur, decimal_comma=False, filename=filename, line=amt_el[0].sourceline, field="Ntry/Amt")
        ind = X(e, "CdtDbtInd")
        if ind not in ("CRDT", "DBIT"):
            raise UnableToImportStatement(f"credit/debit indicator '{ind}' is neither CRDT nor DBIT", filename=filename, line=ln, field="Ntry/CdtDbtInd")
        v = v if ind == "CRDT" else -v
        raw_d = F(e, "ValDt/Dt", "ValDt/DtTm", "BookgDt/Dt", "BookgDt/DtTm")
        try:
            vd = date.fromisoformat(raw_d[:10])
        except ValueError:
            raise UnableToImportStatement(f"'{raw_d}' is not a date", filename=filename, line=ln, field="Ntry/ValDt") from None
        tx = [t for d in A(e, "NtryDtls") for t in A(d, "TxDtls")]
        t = tx[0] if tx else e
        party = "Dbtr" if v > 0 else "Cdtr"
        name = F(t, f"RltdPties/{party}/Nm", f"RltdPties/{party}/Pty/Nm")
        acct = F(t, f"RltdPties/{party}Acct/Id/IBAN", f"RltdPties/{party}Acct/Id/Othr/Id")
        remit = " ".join(x.text.strip() for x in [u for ri in A(t, "RmtInf") for u in A(ri, "Ustrd")] if x.text) or F(
            t, "RmtInf/Strd/CdtrRefInf/Ref") or X(e, "AddtlNtryInf")
        ref = F(e, "AcctSvcrRef", "NtryRef") or F(t, "Refs/AcctSvcrRef", "Refs/EndToEndId") or _synthetic_ref(vd, v, remit, n)
        st.lines.append(ParsedLine(line_no=ln, bank_reference=ref[:80], value_date=vd, amount_minor=v, currency=ecur, payer_name=name[:200],
                                   payer_account=acct[:40], reference=remit[:300]))
    if st.opening_minor is None or st.closing_minor is None:
        raise UnableToImportStatement("opening (OPBD) or closing (CLBD) balance missing", filename=filename, field="Bal")
    return st


# --- debit-order results ---------------------------------------------------------------------------------------------------
DEBIT_RESULT_COLUMNS = ("collection_ref", "account_number", "invoice_number", "amount", "action_date", "status", "reason_code")


def parse_debit_results(data: bytes, *, filename: str, currency: str) -> ParsedStatement:
    """The collection house's result file: one row per debit order, `status` paid or unpaid (with a reason code)."""
    text = decode(data, filename=filename, encoding="utf-8")
    rows = [(i + 1, r) for i, r in enumerate(_csv_rows(text, filename=filename, delimiter=",")) if any(c.strip() for c in r)]
    if not rows or [c.strip().lower() for c in rows[0][1]] != list(DEBIT_RESULT_COLUMNS):
        raise UnableToImportStatement(f"the header must be {','.join(DEBIT_RESULT_COLUMNS)}", filename=filename, line=1, field="header")
    st = ParsedStatement(format="debit_result", filename=filename, currency=currency, bank="debit orders")
    two = exponent(currency) == 2
    dates: dict[str, date] = {}  # few distinct action dates; strptime is the slow part of a row
    for line_no, r in rows[1:]:
        if len(r) != len(DEBIT_RESULT_COLUMNS):
            raise UnableToImportStatement(f"the row has {len(r)} columns, {len(DEBIT_RESULT_COLUMNS)} expected", filename=filename, line=line_no, field="row")
        ref, accno, invno, amount, when, status, reason = (c.strip() for c in r)
        if not ref:
            raise UnableToImportStatement("collection_ref is empty", filename=filename, line=line_no, field="collection_ref")
        status = status.lower()
        if status not in ("paid", "unpaid"):
            raise UnableToImportStatement(f"status '{status}' is neither paid nor unpaid", filename=filename, line=line_no, field="status")
        if status == "unpaid" and not reason:
            raise UnableToImportStatement("an unpaid needs its reason code", filename=filename, line=line_no, field="reason_code")
        minor = to_minor(amount, currency, decimal_comma=False, filename=filename, line=line_no, field="amount", cents=two)
        if minor <= 0:
            raise UnableToImportStatement("the amount must be positive", filename=filename, line=line_no, field="amount")
        st.debit_results.append(DebitResultLine(line_no=line_no, collection_ref=ref[:80], account_number=accno, invoice_number=invno, amount_minor=minor,
                                                currency=currency, action_date=dates.get(when) or dates.setdefault(
                                                    when, _date(when, "%Y-%m-%d", filename=filename, line=line_no, field="action_date")),
                                                status=status, reason_code=reason))
    if not st.debit_results:
        raise UnableToImportStatement("no result rows", filename=filename)
    return st


def detect_format(data: bytes, filename: str) -> str:
    head = data[:2000].lstrip()
    if head.startswith(b"<?xml") or head.startswith(b"<Document") or b"camt.053" in head:
        return "camt053"
    if b":20:" in head and (b":60F:" in data or b":60M:" in data or b":25:" in head):
        return "mt940"
    if head.lower().startswith(",".join(DEBIT_RESULT_COLUMNS).encode()):
        return "debit_result"
    low = filename.lower()
    if low.endswith((".sta", ".mt940", ".940")):
        return "mt940"
    if low.endswith(".xml"):
        return "camt053"
    return "csv"
