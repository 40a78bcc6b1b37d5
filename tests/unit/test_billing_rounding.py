"""The SQL rounding fragments bill runs use, checked against Decimal arithmetic (evaluated by in-memory SQLite)."""

from __future__ import annotations

import sqlite3
from decimal import ROUND_HALF_UP, Decimal

from hypothesis import given
from hypothesis import strategies as st

from opsline.billing.charges import half_up, tax_expr

DB = sqlite3.connect(":memory:")


def sql(expr: str, **params: int) -> int:
    return DB.execute(f"SELECT {expr}", params).fetchone()[0]


@given(st.integers(-10**9, 10**9), st.integers(1, 10**6))
def test_half_up_division_matches_decimal_commercial_rounding(num, den):
    expected = int((Decimal(num) / Decimal(den)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    assert sql(half_up(":n", ":d"), n=num, d=den) == expected


@given(st.integers(-10**8, 10**8), st.sampled_from([0, 1400, 1500, 1575]))
def test_vat_per_line_is_half_up_to_the_cent(amount, bp):
    expected = int((Decimal(amount) * bp / 10000).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    assert sql(tax_expr(":a", ":bp"), a=amount, bp=bp) == expected


@given(st.integers(0, 10**7), st.integers(28, 31), st.lists(st.integers(0, 31), min_size=1, max_size=5))
def test_pieces_of_a_month_always_add_up_to_the_monthly_price(price, days, cuts):
    """Cumulative rounding: round(P*e/D) - round(P*s/D) over touching pieces telescopes to exactly P."""
    bounds = sorted({0, days, *(c for c in cuts if c <= days)})
    piece = f"{half_up(':p * :e', ':d')} - {half_up(':p * :s', ':d')}"
    total = sum(sql(piece, p=price, s=s, e=e, d=days) for s, e in zip(bounds, bounds[1:]))
    assert total == price
