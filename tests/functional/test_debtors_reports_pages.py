"""The debtors report pages over HTTP: each page draws its chart from a data attribute (no inline script), every number
links to the accounts behind it, exports come from the one safe writer (a formula in a customer's name stays text),
and bad input is a problem+json naming the field."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from debtors_reports_helpers import build_book
from opsline.debtors.reports.views import router


@pytest.fixture
def app(app):  # type: ignore[no-untyped-def]
    """The app under test, with the reports router mounted here until the debtors area wires it (then it is already there)."""
    if not any(isinstance(c.original_route, APIRoute) and c.original_route.path == "/debtors/reports" for c in iter_route_contexts(app.routes)):
        app.include_router(router)
    return app


@pytest.fixture
def book(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        return build_book(s)


def _charts(html: str) -> list[dict]:
    return [json.loads(m.replace("&#39;", "'").replace("&quot;", '"').replace("&amp;", "&")) for m in re.findall(r"data-chart='([^']*)'", html)]


def _no_inline_script(html: str) -> None:
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"\son[a-z]+=", html)


def test_aged_debtors_page_charts_each_segment_and_links_every_amount_to_its_accounts(client_as, book):  # type: ignore[no-untyped-def]
    c = client_as("admin")
    r = c.get("/debtors/reports/aged")
    assert r.status_code == 200
    _no_inline_script(r.text)
    (chart,) = _charts(r.text)
    assert [d["label"] for d in chart["data"]["datasets"]] == ["Consumer", "SME"]
    assert "R 5,750.00" in r.text and "R 11,051.80" in r.text  # acme's 120+ and the grand total
    assert 'href="/debtors/reports/aged/accounts?segment=sme&bucket=d120_plus&currency=ZAR"' in r.text
    drill = c.get("/debtors/reports/aged/accounts?segment=sme&bucket=d120_plus&currency=ZAR")
    assert drill.status_code == 200 and f'href="/accounts/{book["acme"]}"' in drill.text and "Thabo" not in drill.text
    assert "Accounts in credit (ZAR): 1" in r.text


def test_top_10_and_top_60_pages_show_age_last_payment_dispute_and_last_action(client_as, book):  # type: ignore[no-untyped-def]
    c = client_as("admin")
    for n in (10, 60):
        r = c.get(f"/debtors/reports/top?n={n}")
        assert r.status_code == 200, r.text
        _no_inline_script(r.text)
        assert f"Top {n} debtors" in r.text and len(_charts(r.text)) == 1
    assert "146 d" in r.text and "R 1,150.00" in r.text and "memo added" in r.text and "2026-11-10" in r.text
    assert [m for m in re.findall(r'href="/accounts/(\d+)"', r.text)] == [str(book[k]) for k in ("acme", "thabo", "pieter")]


def test_collections_page_charts_billed_collected_and_dso_and_drills_into_a_month(client_as, book):  # type: ignore[no-untyped-def]
    c = client_as("admin")
    r = c.get("/debtors/reports/collections?months=6")
    assert r.status_code == 200
    _no_inline_script(r.text)
    (chart,) = _charts(r.text)
    assert chart["data"]["labels"] == ["2026-06", "2026-07", "2026-08", "2026-09", "2026-10", "2026-11"]
    assert 'href="/debtors/reports/collections/accounts?month=2026-11&measure=collected&currency=ZAR"' in r.text
    drill = c.get("/debtors/reports/collections/accounts?month=2026-11&measure=collected&currency=ZAR")
    assert drill.status_code == 200 and "R 1,000.00" in drill.text and "R 300.00" in drill.text


def test_suspense_and_overview_pages_render_with_their_charts(client_as, book):  # type: ignore[no-untyped-def]
    c = client_as("admin")
    for url in ("/debtors/reports", "/debtors/reports/suspense"):
        r = c.get(url)
        assert r.status_code == 200, url
        _no_inline_script(r.text)
        assert len(_charts(r.text)) == 1, url
    assert 'href="/payments/suspense"' in r.text


EXPORTS = ["/debtors/reports/aged/export", "/debtors/reports/aged/accounts/export?bucket=d90", "/debtors/reports/top/export?n=60",
           "/debtors/reports/collections/export?months=3", "/debtors/reports/collections/accounts/export?month=2026-11&measure=billed",
           "/debtors/reports/suspense/export"]


@pytest.mark.parametrize("url", EXPORTS)
def test_every_report_exports_csv_and_xlsx_through_the_safe_writer(client_as, book, url):  # type: ignore[no-untyped-def]
    c = client_as("admin")
    sep = "&" if "?" in url else "?"
    csv = c.get(f"{url}{sep}format=csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.headers["content-disposition"].startswith('attachment; filename="') and csv.headers["cache-control"] == "no-store"
    assert csv.content.startswith(b"\xef\xbb\xbf")
    xlsx = c.get(f"{url}{sep}format=xlsx")
    assert xlsx.status_code == 200 and xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert zipfile.ZipFile(io.BytesIO(xlsx.content)).testzip() is None


def test_a_formula_in_a_customers_name_exports_as_text_never_as_a_formula(client_as, book):  # type: ignore[no-untyped-def]
    c = client_as("admin")
    url = "/debtors/reports/collections/accounts/export?month=2026-11&measure=billed"
    csv = c.get(url + "&format=csv").content.decode("utf-8-sig")
    assert "\"'=HYPERLINK(\"\"http://x\"\") Lerato\"" in csv and "91885" not in csv and "918.85" in csv
    book_xml = zipfile.ZipFile(io.BytesIO(c.get(url + "&format=xlsx").content))
    sheet = book_xml.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet  # a string cell: the name shows as typed and never runs
    assert '=HYPERLINK("http://x") Lerato' in book_xml.read("xl/sharedStrings.xml").decode().replace("&quot;", '"')


@pytest.mark.parametrize(("url", "field"), [
    ("/debtors/reports/aged/export?format=pdf", "format"),
    ("/debtors/reports/top?n=25", "n"),
    ("/debtors/reports/aged/accounts?bucket=d45", "bucket"),
    ("/debtors/reports/aged/accounts?page=0", "page"),
    ("/debtors/reports/collections?months=120", "months"),
    ("/debtors/reports/collections/accounts?month=last&measure=billed", "month"),
    ("/debtors/reports/collections/accounts?month=2026-11&measure=owed", "measure"),
])
def test_bad_report_input_is_a_problem_naming_the_field(client_as, book, url, field):  # type: ignore[no-untyped-def]
    r = client_as("admin").get(url, headers={"Accept": "application/problem+json"})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["field"] == field


def test_a_role_without_debtors_view_is_refused_the_reports_and_their_exports(client_as, book):  # type: ignore[no-untyped-def]
    c = client_as("cancellations_coordinator")
    for url in ("/debtors/reports", "/debtors/reports/top?n=10", "/debtors/reports/aged/export?format=csv"):
        assert c.get(url).status_code == 403, url
