"""Hostile files into every importer (issue 13, item 2): bank statements (CSV with each saved mapping and without one,
MT940, camt.053, debit-order results), usage, agency recovery files (CSV and xlsx layouts) and provision history. Any
bytes, and structured-but-wrong files built by hypothesis (wrong columns, huge fields, NUL bytes, other encodings,
negative and huge amounts, bad dates), give either a clear domain error naming the file (and line and field where the
importer promises them) with no row changed, or a whole import; never another exception."""

from __future__ import annotations

import io
import os
import zipfile
from datetime import timedelta
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session, sessionmaker

from conftest import NOW
from debtors_helpers import TODAY, at, debtor
from opsline.billing.invoicing import service as invoicing
from opsline.billing.invoicing.samples import make_account, make_mobile_product
from opsline.billing.invoicing.usage import UnableToImportUsage
from opsline.core.errors import OpslineError
from opsline.core.events import Actor
from opsline.debtors import agencies, agencies_recoveries, provision, writeoffs
from opsline.debtors.agencies_recoveries import UnableToImportRecoveries
from opsline.debtors.provision import BUCKET_ALIASES, UnableToImportHistory
from opsline.payments import imports
from opsline.payments.parsers import DEBIT_RESULT_COLUMNS, UnableToImportStatement
from payments_helpers import account_with_invoices, camt053, mt940

CLERK = Actor(name="clerk", roles=frozenset({"debtors_clerk"}))
MANAGER = Actor(name="dineo", roles=frozenset({"debtors_manager"}))
ADMIN = Actor(name="tester", roles=frozenset({"admin"}))

# A slower run on PostgreSQL: the same properties, fewer examples (each example is a rolled-back import).
_PG = os.environ.get("OPSLINE_TEST_POSTGRES_URL")
FUZZ = settings(max_examples=int(os.environ.get("OPSLINE_FUZZ_EXAMPLES", "150")), deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
FUZZ_PG = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)


def _fuzz(factory: sessionmaker[Session]) -> settings:
    return FUZZ_PG if factory.kw["bind"].dialect.name == "postgresql" else FUZZ


TABLES = {
    "statement": ("statement_file", "statement_line", "payment", "payment_allocation", "ledger_entry", "suspense_item", "debit_order_result",
                  "pending_charge", "audit_event", "job"),
    "usage": ("usage_record", "usage_rejected", "ledger_entry", "audit_event", "job"),
    "recoveries": ("agency_recovery_file", "agency_recovery", "agency_placement", "ledger_entry", "audit_event", "memo", "job"),
    "history": ("provision_history_import", "provision_ageing", "audit_event", "job"),
}


def _counts(s: Session, kind: str) -> dict[str, Any]:
    have = set(inspect(s.get_bind()).get_table_names())
    out: dict[str, Any] = {t: s.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in TABLES[kind] if t in have}
    if kind == "recoveries":
        out["placements"] = sorted(tuple(r) for r in s.execute(text("SELECT id, state, recovered_minor FROM agency_placement")))
    return out


def _attempt(factory: sessionmaker[Session], kind: str, run: Callable[[Session], Any], refusal: type[OpslineError], filename: str,
             *, names_file: bool = True) -> str:
    """Run one import; it must succeed or refuse with its own error (naming the file) and change nothing. Always rolled back
    so the next example sees the same database. Returns 'imported' or 'refused'."""
    with factory() as s:
        before = _counts(s, kind)
        try:
            run(s)
            s.flush()
            outcome = "imported"
        except refusal as exc:
            assert exc.detail and exc.problem(instance="/")["status"] in (404, 409, 422), exc.detail
            if names_file:
                assert filename[:20] in exc.detail or exc.extra.get("file") == filename, exc.detail
            if getattr(exc, "line", None) is not None:
                assert isinstance(exc.line, int) and exc.line >= 0
            s.rollback()
            assert _counts(s, kind) == before, "a refused import changed rows"
            outcome = "refused"
        finally:
            s.rollback()
    return outcome


# --- strategies ------------------------------------------------------------------------------------------------------------
AMOUNTS = st.one_of(
    st.sampled_from(["599.00", "-599.00", "0", "0.00", "1e999999", "-1e30", "NaN", "Infinity", "sNaN", "1,234.56", "1.234,56", "(12.00)", "12.00-",
                     "R 1 000", "12.345", "99999999999999999999", "1E-999999", "٣٤٥", "12\x0034", "", " ", "--5", "0x10", "1_000"]),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.text(max_size=12),
)
DATES = st.one_of(
    st.sampled_from(["2026/11/20", "20.11.2026", "2026-11-20", "20261120", "2026-02-30", "2026/13/01", "0000/00/00", "9999/12/31", "", "yesterday",
                     "2026/11/20\x00", "20261131", "10000101", "99999999"]),
    st.dates().map(lambda d: d.strftime("%Y/%m/%d")),
    st.text(max_size=12),
)
CELLS = st.one_of(st.text(max_size=30), st.sampled_from(["", "\x00", "a" * 300, "=cmd|' /C calc'!A0", "\ufeff", "\r", "\"", "é", "\u202e"]),
                  st.integers(min_value=1, max_value=200_000).map(lambda n: "x" * n))
ENCODINGS = st.sampled_from(["utf-8", "latin-1", "cp1252", "utf-16", "utf-16-le", "utf-8-sig"])


def _encode(body: str, encoding: str) -> bytes:
    return body.encode(encoding, errors="replace")


def _csv(rows: list[list[str]], delimiter: str) -> str:
    return "".join(delimiter.join(r) + "\n" for r in rows)


# --- bank statements -------------------------------------------------------------------------------------------------------
@pytest.fixture
def book(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        return account_with_invoices(s, now=NOW, name="Thabo Nkosi", amounts=[59900])


def _statement(factory: sessionmaker[Session], data: bytes, filename: str, **kw: Any) -> str:
    return _attempt(factory, "statement", lambda s: imports.import_statement(s, data=data, filename=filename, now=NOW, actor=CLERK, **kw),
                    OpslineError, filename, names_file=False)


def test_any_bytes_as_any_statement_format_import_whole_or_are_refused_with_nothing_posted(factory, book):  # type: ignore[no-untyped-def]
    @_fuzz(factory)
    @given(data=st.binary(max_size=600), how=st.sampled_from([("s.csv", "csv", "fnb"), ("s.csv", "csv", "standard-bank"), ("s.csv", "csv", None),
                                                           ("s.sta", None, None), ("s.xml", None, None), ("s.csv", "debit_result", None),
                                                           ("s.bin", None, None)]))
    def run(data: bytes, how: tuple[str, str | None, str | None]) -> None:
        name, fmt, mapping = how
        _statement(factory, data, name, fmt=fmt, mapping_name=mapping)

    run()


FNB_HEAD = ["FNB statement", "Account 62012345678", "Date,Amount,Balance,Description,Payer,Payer Account,Reference Number"]


def test_fnb_and_standard_bank_csvs_with_wrong_columns_huge_fields_and_bad_values_are_refused_naming_the_line(factory, book):  # type: ignore[no-untyped-def]
    @_fuzz(factory)
    @given(rows=st.lists(st.tuples(DATES, AMOUNTS, AMOUNTS, CELLS, CELLS, CELLS, CELLS), min_size=1, max_size=6),
           extra_cols=st.lists(CELLS, max_size=3), drop=st.integers(min_value=0, max_value=7), bank=st.sampled_from(["fnb", "standard-bank"]),
           encoding=ENCODINGS)
    def run(rows: list[tuple[str, ...]], extra_cols: list[str], drop: int, bank: str, encoding: str) -> None:
        if bank == "fnb":
            body = "\n".join(FNB_HEAD) + "\n" + _csv([list(r[:drop] + r[drop + 1:]) + extra_cols if drop < 7 else list(r) for r in rows], ",")
        else:
            head = "Valutadatum;Credit;Debit;Reference;Counterparty;Counterparty Account;X\n"
            body = head + _csv([list(r) + extra_cols for r in rows], ";") + "Totals;;;;;;\n"
        _statement(factory, _encode(body, encoding), f"{bank}.csv", fmt="csv", mapping_name=bank)

    run()


def test_mt940_and_camt053_with_hostile_amounts_dates_and_details_import_whole_or_are_refused(factory, book):  # type: ignore[no-untyped-def]
    @_fuzz(factory)
    @given(amount=st.integers(min_value=-(10**19), max_value=10**19), opening=st.integers(min_value=-(10**19), max_value=10**19),
           details=CELLS, day=st.sampled_from(["261120", "261131", "999999", "26112", "abcdef"]), xml=st.booleans(), cut=st.integers(min_value=0, max_value=400),
           iso=st.sampled_from(["2026-11-20", "2026-02-30", "20261120", "", "x"]))
    def run(amount: int, opening: int, details: str, day: str, xml: bool, cut: int, iso: str) -> None:
        if xml:
            data = camt053(entries=[(iso, amount or 1, "R1", details[:50].replace("<", "&lt;"), "1", details[:80].replace("<", "&lt;"))], opening=opening)
            name = "s.xml"
        else:
            data = mt940(lines=[(day, amount or 1, "B1", details[:200])], opening=abs(opening))
            name = "s.sta"
        if cut:  # a file cut short somewhere
            data = data[: max(1, len(data) - cut)]
        _statement(factory, data, name)

    run()


def test_debit_order_result_files_with_hostile_rows_import_whole_or_are_refused(factory, book):  # type: ignore[no-untyped-def]
    @_fuzz(factory)
    @given(rows=st.lists(st.tuples(CELLS, st.just(book["number"]) | CELLS, st.just(book["invoice_numbers"][0]) | CELLS, AMOUNTS, DATES,
                                   st.sampled_from(["paid", "unpaid", "PAID", "", "maybe"]), st.sampled_from(["", "02", "\x00"])), min_size=1, max_size=5))
    def run(rows: list[tuple[str, ...]]) -> None:
        body = ",".join(DEBIT_RESULT_COLUMNS) + "\n" + _csv([list(r) for r in rows], ",")
        _statement(factory, body.encode("utf-8", errors="replace"), "results.csv", fmt="debit_result")

    run()


def test_a_refused_statement_names_file_line_and_field():
    """The statement error carries file, line and field for the fuzzers' refusals to be useful (checked once, plainly)."""
    err = UnableToImportStatement("x", filename="f.csv", line=3, field="amount")
    assert err.extra == {"file": "f.csv", "line": 3, "column": "amount"} and err.detail == "f.csv line 3, field amount: x"


# --- usage -----------------------------------------------------------------------------------------------------------------
USAGE_HEAD = ["external_id", "msisdn", "product_id", "usage_type", "started_at", "quantity"]


@pytest.fixture
def subscriber(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        acc = make_account(s, now=NOW)
        return make_mobile_product(s, account_id=acc, now=NOW, msisdn="27821110000", data_rate_minor=10, data_bundle=1000)


def _usage(factory: sessionmaker[Session], data: bytes) -> str:
    return _attempt(factory, "usage", lambda s: invoicing.import_usage(s, file=data, filename="usage.csv", now=NOW, actor=ADMIN), UnableToImportUsage,
                    "usage.csv")


def test_any_bytes_as_a_usage_file_import_whole_or_are_refused(factory, subscriber):  # type: ignore[no-untyped-def]
    @_fuzz(factory)
    @given(data=st.binary(max_size=600), with_header=st.booleans())
    def run(data: bytes, with_header: bool) -> None:
        _usage(factory, (",".join(USAGE_HEAD) + "\n").encode() + data if with_header else data)

    run()


def test_usage_files_with_wrong_columns_huge_fields_and_bad_values_import_whole_or_are_refused(factory, subscriber):  # type: ignore[no-untyped-def]
    @_fuzz(factory)
    @given(header=st.permutations(USAGE_HEAD + ["extra"]).map(lambda h: h[: len(h) - 1]) | st.lists(CELLS, max_size=6),
           rows=st.lists(st.tuples(CELLS, st.just("27821110000") | CELLS, st.just(str(subscriber)) | CELLS,
                                   st.sampled_from(["data_mb", "voice_min", "sms", "", "x"]) | CELLS,
                                   st.sampled_from(["2026-11-02T10:00:00+02:00", "2026-11-02T10:00:00", "2026-02-30T00:00:00Z", "", "9999-12-31T23:59:59+14:00"])
                                   | DATES, AMOUNTS), max_size=5),
           encoding=ENCODINGS)
    def run(header: list[str], rows: list[tuple[str, ...]], encoding: str) -> None:
        _usage(factory, _encode(_csv([header] + [list(r) for r in rows], ","), encoding))

    run()


# --- agency recovery files -------------------------------------------------------------------------------------------------
@pytest.fixture
def placed(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Fuzz Placed", amount=50000, overdue_days=200)
        wo = writeoffs.propose(s, account_id=a["id"], amount=None, reason="uncollectable", today=TODAY - timedelta(days=16), now=at(TODAY) - timedelta(days=16),
                               actor=CLERK)
        writeoffs.approve(s, write_off_id=wo.id, now=at(TODAY) - timedelta(days=15), actor=MANAGER)
        sel = agencies.parse_selection(source="both", accounts=a["number"], min_amount="", min_days="0", currency="ZAR")
        agencies.hand_over(s, agency="collectco", selection=sel, today=TODAY - timedelta(days=10), now=at(TODAY) - timedelta(days=10), actor=CLERK)
        pl = s.execute(text("SELECT id FROM agency_placement WHERE account_id = :a"), {"a": a["id"]}).scalar_one()
        return {"number": a["number"], "ref": agencies.ref(pl)}


def _recoveries(factory: sessionmaker[Session], data: bytes, agency: str = "collectco", filename: str = "recoveries.csv") -> str:
    return _attempt(factory, "recoveries", lambda s: agencies_recoveries.import_recoveries(s, agency=agency, data=data, filename=filename, today=TODAY,
                                                                                             now=at(TODAY), actor=CLERK),
                    UnableToImportRecoveries, filename)


def test_any_bytes_as_an_agency_recovery_file_import_whole_or_are_refused(factory, placed):  # type: ignore[no-untyped-def]
    @_fuzz(factory)
    @given(data=st.binary(max_size=600), with_header=st.booleans(), agency=st.sampled_from(["collectco", "mbd"]))
    def run(data: bytes, with_header: bool, agency: str) -> None:
        head = b"ClientRef;AmountPaid;PaymentDate;ReceiptNo\n" if with_header else b""
        _recoveries(factory, head + data, agency=agency)

    run()


def test_recovery_csvs_with_hostile_amounts_dates_and_fields_import_whole_or_are_refused_naming_the_line(factory, placed):  # type: ignore[no-untyped-def]
    d = (TODAY - timedelta(days=1)).strftime("%Y%m%d")

    @_fuzz(factory)
    @given(rows=st.lists(st.tuples(st.sampled_from([placed["number"], placed["ref"]]) | CELLS, AMOUNTS, st.just(d) | DATES, CELLS), min_size=1, max_size=5),
           header=st.just(["ClientRef", "AmountPaid", "PaymentDate", "ReceiptNo"]) | st.lists(CELLS, max_size=5), encoding=ENCODINGS)
    def run(rows: list[tuple[str, ...]], header: list[str], encoding: str) -> None:
        _recoveries(factory, _encode(_csv([header] + [list(r) for r in rows], ";"), encoding))

    run()


def _xlsx(sheet_xml: str, shared: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("xl/worksheets/sheet1.xml", sheet_xml)
        if shared is not None:
            z.writestr("xl/sharedStrings.xml", shared)
    return buf.getvalue()


NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'


def test_damaged_xlsx_recovery_workbooks_are_refused_not_crashed(factory, placed):  # type: ignore[no-untyped-def]
    @_fuzz(factory)
    @given(cell_type=st.sampled_from(["s", "n", "inlineStr", "str", "b", "e", None]), value=st.sampled_from(["0", "7", "-1", "1e5", "x", "", "NaN", "1.5", "99"]),
           ref=st.sampled_from(["A1", "B2", "a1", "1", "", "ZZZZZZ1", "A"]), row=st.sampled_from(["1", "2", "x", "", "-3", "100000000"]),
           shared=st.sampled_from([None, f"<sst {NS}><si><t>ClientRef</t></si></sst>", "<sst", ""]))
    def run(cell_type: str | None, value: str, ref: str, row: str, shared: str | None) -> None:
        t = f' t="{cell_type}"' if cell_type else ""
        r = f' r="{row}"' if row else ""
        sheet = f'<worksheet {NS}><sheetData><row{r}><c r="{ref}"{t}><v>{value}</v></c></row></sheetData></worksheet>'
        _recoveries(factory, _xlsx(sheet, shared), agency="mbd", filename="mbd.xlsx")

    run()


# --- provision history -----------------------------------------------------------------------------------------------------
def _history(factory: sessionmaker[Session], data: bytes, filename: str = "prior.csv") -> str:
    from zoneinfo import ZoneInfo

    return _attempt(factory, "history", lambda s: provision.import_history(s, data=data, filename=filename, now=NOW, tz=ZoneInfo("Africa/Johannesburg"),
                                                                           actor=MANAGER, default_currency="ZAR"),
                    UnableToImportHistory, filename, names_file=False)


def test_any_bytes_as_provision_history_import_whole_or_are_refused(factory):  # type: ignore[no-untyped-def]
    @_fuzz(factory)
    @given(data=st.binary(max_size=600), with_header=st.booleans(), name=st.sampled_from(["prior.csv", "prior.xlsx"]))
    def run(data: bytes, with_header: bool, name: str) -> None:
        _history(factory, (b"month,segment,bucket,balance,rolled,stayed,currency\n" if with_header else b"") + data, name)

    run()


def test_provision_history_with_hostile_months_amounts_and_buckets_imports_whole_or_is_refused(factory):  # type: ignore[no-untyped-def]
    with factory() as s:
        segments = list(s.execute(text("SELECT code FROM segment")).scalars()) or ["consumer"]

    @_fuzz(factory)
    @given(rows=st.lists(st.tuples(st.sampled_from(["2026-09", "2026-10", "2026-13", "2099-01", "45900", "99999", "0000-00", "2026-02-30"]) | CELLS,
                                   st.sampled_from(segments) | CELLS, st.sampled_from(sorted(BUCKET_ALIASES)) | CELLS, AMOUNTS, AMOUNTS | st.just(""),
                                   AMOUNTS | st.just(""), st.sampled_from(["ZAR", "", "zar", "XXXX", "JPY"]) | CELLS), min_size=1, max_size=5),
           encoding=ENCODINGS, delimiter=st.sampled_from([",", ";"]))
    def run(rows: list[tuple[str, ...]], encoding: str, delimiter: str) -> None:
        head = ["month", "segment", "bucket", "balance", "rolled", "stayed", "currency"]
        _history(factory, _encode(_csv([head] + [list(r) for r in rows], delimiter), encoding))

    run()


def test_one_good_file_per_importer_imports_whole(factory, book, subscriber, placed):  # type: ignore[no-untyped-def]
    """The fuzzers' other half: a well-formed file of each kind is imported, so 'refused' is not the only outcome they see."""
    fnb = "\n".join(FNB_HEAD) + "\n2026/11/20,599.00,10599.00,INV x,T NKOSI,1,R1\n"
    assert _statement(factory, fnb.encode(), "fnb.csv", fmt="csv", mapping_name="fnb") == "imported"
    assert _statement(factory, mt940(lines=[("261120", 59900, "B1", "/REMI/x")]), "s.sta") == "imported"
    assert _usage(factory, (",".join(USAGE_HEAD) + "\nu1,27821110000,,data_mb,2026-11-02T10:00:00+02:00,5\n").encode()) == "imported"
    d = (TODAY - timedelta(days=1)).strftime("%Y%m%d")
    assert _recoveries(factory, f"ClientRef;AmountPaid;PaymentDate;ReceiptNo\n{placed['number']};10.00;{d};R-1\n".encode()) == "imported"
    with factory() as s:
        seg = s.execute(text("SELECT code FROM segment ORDER BY code")).scalars().first()
    assert _history(factory, f"month,segment,bucket,balance\n2026-09,{seg},current,100.00\n".encode()) == "imported"
