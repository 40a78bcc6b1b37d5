"""The one amount parser behind statements, agency recoveries and write-offs."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsline.core.money import MAX_MINOR, UnparseableAmount, parse_minor


@pytest.mark.parametrize(("raw", "currency", "minor"), [
    ("1 234.50", "ZAR", 123450), ("-1,234.50", "ZAR", -123450), ("(99.00)", "ZAR", -9900), ("R 599", "ZAR", 59900),
    ("12.50-", "ZAR", -1250), ("\u00a01\u00a0000", "ZAR", 100000), ("1e2", "ZAR", 10000), ("5", "JPY", 5), ("1.234", "KWD", 1234),
    ("-0", "ZAR", 0), ("10.10", "ZAR", 1010),
])
def test_parse_minor_reads_what_banks_agencies_and_people_type(raw: str, currency: str, minor: int) -> None:
    assert parse_minor(raw, currency) == minor


def test_parse_minor_reads_decimal_commas_when_told() -> None:
    assert parse_minor("1.234,50", "EUR", decimal_comma=True) == 123450
    assert parse_minor("-0,5", "EUR", decimal_comma=True) == -50


@pytest.mark.parametrize(("raw", "currency", "reason"), [
    ("12.345", "ZAR", "has more decimals than ZAR allows"), ("1.5", "JPY", "has more decimals than JPY allows"),
    ("abc", "ZAR", "is not an amount"), ("", "ZAR", "is not an amount"), ("NaN", "ZAR", "is not an amount"),
    ("Infinity", "ZAR", "is not an amount"), ("1e999999999", "ZAR", "is too large to be an amount"),
    ("1e-999999999", "ZAR", "has more decimals than ZAR allows"), ("9" * 30, "ZAR", "is too large to be an amount"),
    ("1.00000000000000000000000000001", "ZAR", "has more decimals than ZAR allows"), ("(-5)", "ZAR", "is not an amount"),
])
def test_parse_minor_refuses_what_is_not_an_amount_of_the_currency(raw: str, currency: str, reason: str) -> None:
    with pytest.raises(UnparseableAmount) as exc:
        parse_minor(raw, currency)
    assert exc.value.reason == reason
    assert str(exc.value) == f"'{raw}' {reason}"


@given(st.integers(min_value=-MAX_MINOR, max_value=MAX_MINOR))
def test_parse_minor_round_trips_every_amount_written_with_two_decimals(minor: int) -> None:
    assert parse_minor(f"{Decimal(minor).scaleb(-2):,.2f}", "ZAR") == minor


@given(st.text(max_size=40))
def test_parse_minor_answers_an_int_or_its_own_error_for_any_text(raw: str) -> None:
    try:
        v = parse_minor(raw, "ZAR")
    except UnparseableAmount:
        return
    assert isinstance(v, int) and abs(v) <= MAX_MINOR
