"""Money: Decimal + currency, minor units, explicit rounding, exact splits."""

from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from opsline.core.errors import InvalidInput
from opsline.core.money import CurrencyMismatch, Money, allocate_minor


def test_money_round_trips_through_minor_units():
    m = Money.of("1234.56", "ZAR")
    assert m.minor == 123456
    assert Money.from_minor(123456, "ZAR") == m


def test_money_refuses_float_and_bad_currency():
    with pytest.raises(TypeError):
        Money(1.5, "ZAR")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        Money.of("1", "R1")


def test_adding_different_currencies_is_refused():
    with pytest.raises(CurrencyMismatch):
        Money.of("1", "ZAR") + Money.of("1", "USD")


def test_rounding_is_explicit_and_bankers_by_default():
    assert Money.of("0.125", "ZAR").rounded().amount == Decimal("0.12")
    assert Money.of("0.135", "ZAR").rounded().amount == Decimal("0.14")
    with pytest.raises(ValueError):
        _ = Money.of("0.125", "ZAR").minor


def test_zero_decimal_currency_uses_whole_units():
    assert Money.of("1500", "JPY").minor == 1500


def test_split_of_one_hundred_rand_in_three_sums_back():
    parts = Money.of("100", "ZAR").split(3)
    assert [p.amount for p in parts] == [Decimal("33.34"), Decimal("33.33"), Decimal("33.33")]
    assert sum(p.minor for p in parts) == 10000


def test_allocation_refuses_empty_and_negative_weights():
    with pytest.raises(InvalidInput):
        allocate_minor(100, [])
    with pytest.raises(InvalidInput):
        allocate_minor(100, [1, -1])
    with pytest.raises(InvalidInput):
        allocate_minor(100, [0, 0])


@given(total=st.integers(min_value=-10**12, max_value=10**12), weights=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=40).filter(lambda w: sum(w) > 0))
def test_largest_remainder_always_sums_back_exactly(total, weights):
    parts = allocate_minor(total, weights)
    assert sum(parts) == total
    assert len(parts) == len(weights)
    wsum = sum(weights)
    for p, w in zip(parts, weights):
        exact = Decimal(total) * w / wsum
        assert abs(Decimal(p) - exact) < 1


@given(st.decimals(min_value=-10**9, max_value=10**9, places=2, allow_nan=False, allow_infinity=False))
def test_minor_units_round_trip_for_any_two_place_amount(amount):
    m = Money(amount, "ZAR")
    assert Money.from_minor(m.minor, "ZAR").amount == amount
