"""The one writer for CSV and Excel exports.

Every export goes through `export_table` (or `export_sheets` for a workbook of several sheets), so that text a customer
typed can never become a live formula in the spreadsheet a clerk opens (CSV/formula injection, OWASP):
- in CSV, text cells starting with `=`, `+`, `-`, `@`, a tab or a carriage return get a leading apostrophe (what
  Excel and LibreOffice then show as literal text); numbers stay numbers;
- in xlsx, text is always written as a string cell (`write_string`), never through xlsxwriter's `write`, which turns
  a leading `=` into a formula and `http://` into a link;
- Decimal money is a number with two decimals; dates and date-times are ISO text (date-times in the zone they carry);
- CSV is UTF-8 with a byte-order mark so Excel opens accents correctly.
Unknown formats raise InvalidInput naming the `format` field.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from opsline.core.errors import InvalidInput

CSV_MEDIA = "text/csv; charset=utf-8"
XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMATS = ("csv", "xlsx")

_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")
_NAME_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def safe_text(value: str) -> str:
    """Text as a spreadsheet must show it: control characters dropped, a leading formula character neutralised."""
    value = _CONTROL.sub("", value)
    return "'" + value if value.startswith(_DANGEROUS) else value


def _plain(value: Any) -> Any:
    """A cell value as CSV writes it: None empty, numbers as numbers, dates ISO, text made safe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return safe_text(str(value))


@dataclass(frozen=True)
class Sheet:
    """One table: a title (the xlsx sheet name), a header row, rows, and which columns (0-based) are money."""

    title: str
    header: Sequence[str]
    rows: Iterable[Sequence[Any]]
    money_cols: frozenset[int] = field(default_factory=frozenset)


def _check(fmt: str) -> None:
    if fmt not in FORMATS:
        raise InvalidInput(f"format '{fmt}' is not csv or xlsx", field="format")


def file_name(stem: str, fmt: str) -> str:
    """A download name that is safe in a Content-Disposition header."""
    return f"{_NAME_BAD.sub('-', stem).strip('-') or 'export'}.{fmt}"


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]], *, delimiter: str = ",") -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter)
    w.writerow([_plain(h) for h in header])
    for r in rows:
        w.writerow([_plain(v) for v in r])
    return buf.getvalue().encode("utf-8-sig")


def xlsx_bytes(sheets: Sequence[Sheet]) -> bytes:
    import xlsxwriter

    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False})
    bold = wb.add_format({"bold": True, "bg_color": "#E8EEF4"})
    money = wb.add_format({"num_format": "#,##0.00"})
    used: set[str] = set()
    for sheet in sheets:
        title = (_SHEET_BAD.sub(" ", sheet.title).strip() or "Sheet")[:31]
        while title.lower() in used:
            title = title[:28] + f"~{len(used)}"
        used.add(title.lower())
        ws = wb.add_worksheet(title)
        for c, h in enumerate(sheet.header):
            ws.write_string(0, c, _CONTROL.sub("", str(h)), bold)
        n = 0
        for n, row in enumerate(sheet.rows, start=1):
            for c, v in enumerate(row):
                if v is None:
                    continue
                if isinstance(v, bool):
                    ws.write_boolean(n, c, v)
                elif isinstance(v, Decimal):
                    ws.write_number(n, c, float(v), money if c in sheet.money_cols else None)
                elif isinstance(v, (int, float)):
                    ws.write_number(n, c, v)
                elif isinstance(v, (date, datetime)):
                    ws.write_string(n, c, v.isoformat())
                else:  # a string cell is never evaluated: no apostrophe needed, only control characters dropped
                    ws.write_string(n, c, _CONTROL.sub("", str(v)))
        if sheet.header:
            ws.autofilter(0, 0, max(1, n), len(sheet.header) - 1)
            ws.freeze_panes(1, 0)
            ws.set_column(0, len(sheet.header) - 1, 16)
    wb.close()
    return buf.getvalue()


def export_table(fmt: str, *, name: str, header: Sequence[str], rows: Iterable[Sequence[Any]], money_cols: Iterable[int] = (),
                 delimiter: str = ",") -> tuple[str, str, bytes]:
    """(file name, media type, bytes) of one table as CSV (`delimiter`: a partner's layout may want ';' or '|') or xlsx.
    Raises InvalidInput for an unknown format or a delimiter that is not one character."""
    _check(fmt)
    if len(delimiter) != 1 or delimiter in "\r\n\"":
        raise InvalidInput(f"delimiter {delimiter!r} is not one character (not a quote or line break)", field="delimiter")
    if fmt == "csv":
        return file_name(name, fmt), CSV_MEDIA, csv_bytes(header, rows, delimiter=delimiter)
    return file_name(name, fmt), XLSX_MEDIA, xlsx_bytes([Sheet(name, header, rows, frozenset(money_cols))])


def export_sheets(fmt: str, *, name: str, sheets: Sequence[Sheet]) -> tuple[str, str, bytes]:
    """(file name, media type, bytes) of several tables: an xlsx workbook with a sheet each, or one CSV with the
    tables one after another, each under a row naming it."""
    _check(fmt)
    if fmt == "xlsx":
        return file_name(name, fmt), XLSX_MEDIA, xlsx_bytes(sheets)
    out: list[Sequence[Any]] = []
    for i, s in enumerate(sheets):
        if i:
            out.append([])
        out.append([s.title])
        out.append(list(s.header))
        out.extend(s.rows)
    return file_name(name, fmt), CSV_MEDIA, csv_bytes(out[0] if out else [], out[1:])


def download_headers(filename: str) -> dict[str, str]:
    """Response headers for an export download."""
    return {"Content-Disposition": f'attachment; filename="{filename}"', "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


__all__ = ["CSV_MEDIA", "FORMATS", "Sheet", "XLSX_MEDIA", "csv_bytes", "download_headers", "export_sheets", "export_table", "file_name", "safe_text", "xlsx_bytes"]
