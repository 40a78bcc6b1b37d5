"""Every bad input of issue 10: a clear error naming file, line and field, and nothing changed."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from conftest import NOW
from opsline.core.errors import NotFound
from opsline.core.events import Actor
from opsline.core.lifecycle import FourEyesRequired
from opsline.core.money import Money
from opsline.payments import allocations, imports, refunds
from opsline.payments.allocations import AllocationExceedsInvoice, AllocationExceedsPayment, Part
from opsline.payments.models import SuspenseItem
from opsline.payments.parsers import UnableToImportStatement
from payments_helpers import account_with_invoices, camt053, counts, mt940

CLERK = Actor(name="clerk", roles=frozenset({"debtors_clerk"}))
FNB_HEAD = "FNB statement\nAccount 62012345678\nDate,Amount,Balance,Description,Payer,Payer Account,Reference Number\n"


@pytest.fixture
def book(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        return {"thabo": account_with_invoices(s, now=NOW, name="Thabo Nkosi", amounts=[59900])}


def _refused(factory, data: bytes, filename: str, **kw):  # type: ignore[no-untyped-def]
    with factory() as s:
        before = counts(s)
        with pytest.raises((UnableToImportStatement, NotFound)) as exc:
            imports.import_statement(s, data=data, filename=filename, now=NOW, actor=CLERK, **kw)
        s.rollback()
        assert counts(s) == before
    return exc.value


def test_a_malformed_csv_amount_names_file_line_and_field(factory, book):  # type: ignore[no-untyped-def]
    data = (FNB_HEAD + "2026/11/20,599.00,10599.00,INV x,T NKOSI,1,R1\n2026/11/21,5 99.0.0,11198.00,x,y,2,R2\n").encode()
    err = _refused(factory, data, "fnb.csv", fmt="csv", mapping_name="fnb")
    assert err.detail.startswith("fnb.csv line 5, field amount:") and err.extra["line"] == 5


def test_a_csv_row_cut_short_is_refused(factory, book):  # type: ignore[no-untyped-def]
    data = (FNB_HEAD + "2026/11/20,599.00,10599.00,INV x,T NKOSI,1,R1\n2026/11/21,599.00\n").encode()
    assert "line 5, field row" in _refused(factory, data, "cut.csv", fmt="csv", mapping_name="fnb").detail


def test_a_truncated_mt940_without_closing_balance_is_refused(factory, book):  # type: ignore[no-untyped-def]
    data = mt940(lines=[("261120", 59900, "B1", "/REMI/x")])
    cut = data[: data.index(b":62F:")]
    assert ":62F:" in _refused(factory, cut, "cut.sta").detail


def test_a_truncated_camt053_names_the_line(factory, book):  # type: ignore[no-untyped-def]
    data = camt053(entries=[("2026-11-20", 59900, "R1", "T", "1", "x")])
    err = _refused(factory, data[: len(data) - 80], "cut.xml")
    assert "malformed or truncated XML" in err.detail and err.extra["line"]


def test_camt053_version_01_is_not_supported(factory, book):  # type: ignore[no-untyped-def]
    data = camt053(entries=[("2026-11-20", 59900, "R1", "T", "1", "x")], version="01")
    assert "versions .02 onwards" in _refused(factory, data, "old.xml").detail


def test_an_unknown_encoding_in_the_mapping_is_refused(factory, book):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        s.execute(__import__("sqlalchemy").text("UPDATE payment_csv_mapping SET encoding = 'klingon-8' WHERE name = 'fnb'"))
    err = _refused(factory, (FNB_HEAD + "2026/11/20,599.00,10599.00,x,y,1,R1\n").encode(), "enc.csv", fmt="csv", mapping_name="fnb")
    assert "unknown encoding 'klingon-8'" in err.detail and err.field == "encoding"


def test_bytes_that_are_not_the_declared_encoding_are_refused_with_the_line(factory, book):  # type: ignore[no-untyped-def]
    data = FNB_HEAD.encode() + "2026/11/20,599.00,10599.00,Caf\u00e9,y,1,R1\n".encode("latin-1")
    err = _refused(factory, data, "latin.csv", fmt="csv", mapping_name="fnb")
    assert "line 4, field encoding" in err.detail


def test_stray_binary_characters_are_refused(factory, book):  # type: ignore[no-untyped-def]
    data = (FNB_HEAD + "2026/11/20,599.00,10599.00,x\x00\x01,y,1,R1\n").encode()
    err = _refused(factory, data, "bin.csv", fmt="csv", mapping_name="fnb")
    assert "stray binary character" in err.detail and err.extra["line"] == 4


def test_a_statement_in_the_wrong_currency_is_refused(factory, book):  # type: ignore[no-untyped-def]
    data = mt940(lines=[("261120", 59900, "B1", "/REMI/x")]).replace(b"ZAR", b"USD")
    err = _refused(factory, data, "usd.sta")
    assert "in USD" in err.detail and err.field == "currency"


def test_a_closing_balance_that_does_not_follow_is_refused(factory, book):  # type: ignore[no-untyped-def]
    data = mt940(lines=[("261120", 59900, "B1", "/REMI/x")], closing=1_000_000)
    err = _refused(factory, data, "bal.sta")
    assert "does not follow from the opening balance" in err.detail and err.field == "closing_balance"


def test_an_unknown_mapping_is_refused(factory, book):  # type: ignore[no-untyped-def]
    assert "no CSV mapping named 'nope'" in _refused(factory, b"a,b\n1,2\n", "x.csv", fmt="csv", mapping_name="nope").detail


def test_a_debit_order_file_naming_an_unknown_account_posts_nothing(factory, book):  # type: ignore[no-untyped-def]
    t = book["thabo"]
    data = ("collection_ref,account_number,invoice_number,amount,action_date,status,reason_code\n"
            f"DO-1,{t['number']},,599.00,2026-11-20,paid,\nDO-2,1000000000,,10.00,2026-11-20,paid,\n").encode()
    assert "line 3, field account_number" in _refused(factory, data, "do.csv").detail


def test_allocations_exceeding_the_payment_or_the_invoice_are_refused(factory, book):  # type: ignore[no-untyped-def]
    t = book["thabo"]
    with factory.begin() as s:
        imports.import_statement(s, data=mt940(lines=[("261120", 100000, "B1", "/REMI/unknown")]), filename="s.sta", now=NOW, actor=CLERK)
        item = s.execute(select(SuspenseItem)).scalar_one().id
    for parts, err in (([Part(account_id=t["id"], amount=Money.of("1000.01", "ZAR"))], AllocationExceedsPayment),
                       ([Part(account_id=t["id"], amount=Money.of("600.00", "ZAR"), invoice_id=t["invoices"][0])], AllocationExceedsInvoice)):
        with factory() as s:
            before = counts(s)
            with pytest.raises(err) as exc:
                allocations.allocate_suspense(s, suspense_item_id=item, parts=parts, reason="phoned in", now=NOW, actor=CLERK)
            assert exc.value.field.startswith("parts")
            s.rollback()
            assert counts(s) == before


def test_approving_ones_own_refund_is_refused(factory, book):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        imports.import_statement(s, data=mt940(lines=[("261120", 500000, "B1", "/ACCT/123/REMI/unknown")]), filename="s.sta", now=NOW, actor=CLERK)
        item = s.execute(select(SuspenseItem)).scalar_one().id
        rid = refunds.request_refund(s, suspense_item_id=item, amount=Money.of("5000.00", "ZAR"), reason="not ours", now=NOW, actor=CLERK)["refund_id"]
    with factory() as s:
        before = counts(s)
        with pytest.raises(FourEyesRequired) as exc:
            refunds.approve_refund(s, refund_id=rid, now=NOW, actor=CLERK)
        assert "second person" in exc.value.detail
        s.rollback()
        assert counts(s) == before
