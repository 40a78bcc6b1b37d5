"""The provision's arithmetic without a database: rates, the loss-rate chain, rounding, shares that add back up, the
aggregate estimate of roll amounts, and the history file's line-by-line validation (CSV and xlsx)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsline.core.exports import Sheet, xlsx_bytes
from opsline.debtors import provision
from opsline.debtors.provision import Cell, UnableToImportHistory, loss_rates, parse_history, provision_minor, rate, split_to_accounts, transition
from opsline.debtors.provision_models import BUCKETS

SEGMENTS = ("consumer", "sme")
LAST = date(2026, 10, 1)


def test_loss_rates_chain_the_roll_rates_to_write_off():
    roll = dict(zip(BUCKETS, (Decimal("0.1"), Decimal("0.5"), Decimal("0.6"), Decimal("0.8"), Decimal("0.5"), Decimal("0.1"))))
    assert loss_rates(roll, Decimal("0.8")) == dict(zip(BUCKETS, map(Decimal, ("0.006", "0.06", "0.12", "0.2", "0.25", "0.5"))))


def test_120_plus_that_never_leaves_the_bucket_is_lost_in_full():
    roll = {b: Decimal("0.5") for b in BUCKETS} | {"d120_plus": Decimal(0)}
    assert loss_rates(roll, Decimal(1))["d120_plus"] == 1


def test_the_provision_rounds_half_up_to_the_cent_and_never_exceeds_the_balance():
    assert provision_minor(1, Decimal("0.5"), Decimal(0)) == 1
    assert provision_minor(3, Decimal("0.5"), Decimal(0)) == 2
    assert provision_minor(1000, Decimal("0.9"), Decimal(50)) == 1000
    assert provision_minor(1000, Decimal("0.1"), Decimal(-100)) == 0


def test_a_rate_is_none_without_balance_and_at_most_one():
    assert rate(5, 0) is None
    assert rate(7, 5) == 1
    assert rate(1, 3) == Decimal("0.33333333")


@given(st.integers(min_value=0, max_value=10**12), st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=60))
def test_a_lines_provision_shared_over_its_accounts_sums_back_exactly(amount, balances):  # type: ignore[no-untyped-def]
    shares = split_to_accounts(amount, balances)
    assert sum(shares) == amount and len(shares) == len(balances)
    assert all(s >= 0 for s in shares)


@given(st.integers(min_value=0, max_value=10**10), st.decimals(min_value=0, max_value=1, places=8),
       st.decimals(min_value=Decimal("-99.9999"), max_value=1000, places=4))
def test_the_provision_of_a_line_stays_between_nothing_and_its_balance(balance, loss, adj):  # type: ignore[no-untyped-def]
    p = provision_minor(balance, loss, adj)
    assert 0 <= p <= balance
    assert isinstance(p, int)


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=7, max_size=7), st.lists(st.integers(min_value=0, max_value=10**9), min_size=7, max_size=7))
def test_estimated_roll_amounts_never_exceed_the_balance_they_roll_from(this, nxt):  # type: ignore[no-untyped-def]
    keys = (*BUCKETS, "written_off")
    bal, rolled, stayed = transition({k: Cell(v) for k, v in zip(keys, this)}, {k: Cell(v) for k, v in zip(keys, nxt)})
    for b in BUCKETS:
        assert 0 <= rolled[b] <= bal[b]
    assert 0 <= stayed <= bal["d120_plus"] - rolled["d120_plus"]


def test_roll_amounts_known_per_account_are_used_over_the_estimate():
    this = {"current": Cell(1000, rolled=100), "d120_plus": Cell(500, rolled=50, stayed=400)}
    bal, rolled, stayed = transition(this, {"d30": Cell(900), "d120_plus": Cell(10)})
    assert rolled["current"] == 100 and rolled["d120_plus"] == 50 and stayed == 400


def test_months_missing_are_named_as_ranges():
    ms = [date(2025, 10, 1), date(2025, 11, 1), date(2025, 12, 1), date(2026, 3, 1)]
    assert provision._ranges(ms) == "2025-10 to 2025-12, 2026-03"


def _parse(text_: str, name: str = "ageing.csv") -> list:
    return parse_history(text_.encode(), filename=name, segments=SEGMENTS, default_currency="ZAR", last_month=LAST)


def test_a_history_file_accepts_bucket_labels_decimal_commas_and_semicolons():
    rows = _parse("month;segment;bucket;balance;rolled;stayed\n2026-01;consumer;1-30;1234,50;100;\n2026-01;sme;120+;10.00;1.00;8.00\n"
                  "2026-02;sme;written off;3.00;;\n")
    assert [(r["bucket"], r["balance_minor"], r["rolled_minor"], r["stayed_minor"]) for r in rows] == [
        ("d30", 123450, 10000, None), ("d120_plus", 1000, 100, 800), ("written_off", 300, None, None)]


@pytest.mark.parametrize("line, field", [
    ("2026-13,consumer,current,1.00,,", "month"),
    ("2026-11,consumer,current,1.00,,", "month"),  # not ended
    ("2026-01,consumer,0-30,1.00,,", "bucket"),
    ("2026-01,consumer,current,-1.00,,", "balance"),
    ("2026-01,consumer,current,1.001,,", "balance"),
    ("2026-01,consumer,current,1.00,2.00,", "rolled"),
    ("2026-01,consumer,current,1.00,,0.50", "stayed"),
    ("2026-01,consumer,current,1.00,,,ZA", "currency"),
])
def test_a_bad_history_line_is_refused_naming_file_line_and_field(line, field):  # type: ignore[no-untyped-def]
    with pytest.raises(UnableToImportHistory) as e:
        _parse(f"month,segment,bucket,balance,rolled,stayed,currency\n2026-01,sme,current,5.00,,\n{line}\n")
    assert e.value.extra["errors"][0] | {"message": ""} == {"file": "ageing.csv", "line": 3, "field": field, "message": ""}


def test_a_history_file_without_the_needed_columns_or_with_a_repeated_cell_is_refused():
    with pytest.raises(UnableToImportHistory) as e:
        _parse("month,segment,amount\n2026-01,sme,1\n")
    assert e.value.field == "file" and "missing bucket, balance" in e.value.detail
    with pytest.raises(UnableToImportHistory) as e2:
        _parse("month,segment,bucket,balance\n2026-01,sme,current,1\n2026-01,sme,current,2\n")
    assert "already on line 2" in e2.value.detail and e2.value.extra["errors"][0]["line"] == 3


def test_an_xlsx_history_file_reads_like_the_csv_even_when_excel_made_the_month_a_date():
    body = xlsx_bytes([Sheet("ageing", ["month", "segment", "bucket", "balance", "rolled"],
                             [["2026-01", "consumer", "current", Decimal("1000.10"), Decimal("100.00")], [46054, "sme", "91-120", 24, None]])])
    rows = parse_history(body, filename="ageing.xlsx", segments=SEGMENTS, default_currency="ZAR", last_month=LAST)
    assert [(r["month"], r["segment_code"], r["bucket"], r["balance_minor"], r["rolled_minor"]) for r in rows] == [
        (date(2026, 1, 1), "consumer", "current", 100010, 10000), (date(2026, 2, 1), "sme", "d120", 2400, None)]


def test_a_file_named_xlsx_that_is_not_a_workbook_is_refused_naming_the_file():
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("xl/workbook.xml", "<not-xml")
    for body in (b"PK\x03\x04 broken", buf.getvalue()):
        with pytest.raises(UnableToImportHistory) as e:
            parse_history(body, filename="ageing.xlsx", segments=SEGMENTS, default_currency="ZAR", last_month=LAST)
        assert e.value.field == "file" and "ageing.xlsx: not a readable xlsx workbook" in e.value.detail
