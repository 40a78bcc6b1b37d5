"""The final account's pro-rata arithmetic (no database): the same cumulative rounding as the bill run, so what is
kept and what is credited always add back to exactly what was billed, for any price, period and end date."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from opsline.billing.final_account import basis_period, half_up, piece, split_credit
from opsline.billing.periods import add_months

prices = st.integers(min_value=-10_000_000, max_value=10_000_000)
bill_days = st.integers(min_value=1, max_value=28)
days = st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31))


def test_half_up_rounds_halves_away_from_zero_like_the_bill_run_sql():
    assert [half_up(n, 2) for n in (1, 3, -1, -3, 4)] == [1, 2, -1, -2, 2]
    assert half_up(30000 * 9, 31) == 8710 and half_up(-30000 * 9, 31) == -8710


def test_ending_on_16_november_keeps_15_of_30_days_and_credits_the_other_15():
    assert split_credit(30000, date(2026, 11, 1), 30, date(2026, 11, 16)) == (15000, 15000)


def test_29_february_is_one_day_of_a_29_day_february():
    b0, b1 = basis_period(date(2028, 2, 29), 1)
    assert (b0, b1) == (date(2028, 2, 1), date(2028, 3, 1))
    assert piece(29000, b0, (b1 - b0).days, date(2028, 2, 29), b1) == 1000


@given(prices, bill_days, days, st.integers(min_value=0, max_value=40))
def test_kept_plus_credited_is_exactly_the_price_billed(price, day, d, offset):
    b0, b1 = basis_period(d, day)
    n = (b1 - b0).days
    end = b0 + timedelta(days=min(offset, n))
    kept, credited = split_credit(price, b0, n, end)
    assert kept + credited == price
    assert abs(kept) <= abs(price) and abs(credited) <= abs(price)


@given(prices, bill_days, days, st.lists(st.integers(min_value=0, max_value=31), min_size=1, max_size=6))
def test_pieces_that_touch_add_up_to_the_whole_period_never_a_cent_more_or_less(price, day, d, cuts):
    b0, b1 = basis_period(d, day)
    n = (b1 - b0).days
    points = sorted({b0, b1, *(b0 + timedelta(days=min(c, n)) for c in cuts)})
    assert sum(piece(price, b0, n, a, b) for a, b in zip(points, points[1:])) == price


@given(bill_days, days)
def test_a_date_lies_in_exactly_the_billing_period_basis_period_returns(day, d):
    b0, b1 = basis_period(d, day)
    assert b0 <= d < b1 and b0.day == day and b1 == add_months(b0, 1)
    assert 28 <= (b1 - b0).days <= 31


@given(prices, bill_days, days, st.integers(min_value=0, max_value=31), st.integers(min_value=0, max_value=31))
def test_a_relocation_split_bills_the_old_line_to_the_move_and_the_new_from_it_with_no_gap_or_overlap(price, day, d, move, overlap):
    b0, b1 = basis_period(d, day)
    n = (b1 - b0).days
    at = b0 + timedelta(days=min(move, n))
    old = piece(price, b0, n, b0, at)
    new = piece(price, b0, n, at, b1)
    assert old + new == price
    # with a configured overlap the old line runs that many days longer: exactly those days are billed twice
    ov_end = min(at + timedelta(days=overlap), b1)
    assert piece(price, b0, n, b0, ov_end) + new - price == piece(price, b0, n, at, ov_end)
