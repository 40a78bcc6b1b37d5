"""Pure SLA arithmetic of B2B contracts: the union of outage intervals, rule comparison with tolerance, credit amounts
and when the monthly run is scheduled."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from opsline.b2b.jobs import next_run_at
from opsline.b2b.metrics import merged_seconds
from opsline.b2b.service import credit_amount, num, violated
from opsline.core.localtime import zone

T0 = datetime(2026, 10, 1, tzinfo=timezone.utc)
TZ = zone("Africa/Johannesburg")


def test_overlapping_and_nested_outages_count_once_and_are_clipped_to_the_month() -> None:
    h = timedelta(hours=1)
    intervals = [(T0 + 8 * h, T0 + 12 * h), (T0 + 10 * h, T0 + 14 * h), (T0 + 9 * h, T0 + 11 * h), (T0 - 5 * h, T0 + 2 * h)]
    assert merged_seconds(intervals, T0, T0 + 31 * 24 * h) == (6 + 2) * 3600
    assert merged_seconds([], T0, T0 + h) == 0


@given(st.lists(st.tuples(st.integers(0, 600), st.integers(0, 120)), max_size=12))
def test_the_union_of_outages_equals_the_minutes_covered_by_any_outage(raw: list[tuple[int, int]]) -> None:
    intervals = [(T0 + timedelta(minutes=a), T0 + timedelta(minutes=a + d)) for a, d in raw]
    covered = sum(1 for m in range(0, 500) if any(a <= T0 + timedelta(minutes=m) < b for a, b in intervals))
    assert merged_seconds(intervals, T0, T0 + timedelta(minutes=500)) == covered * 60


def test_a_tolerance_is_allowed_before_a_rule_is_violated() -> None:
    assert violated(actual=Decimal("99.3"), operator=">=", reference=Decimal("99.5"), tolerance=Decimal("0")) is True
    assert violated(actual=Decimal("99.3"), operator=">=", reference=Decimal("99.5"), tolerance=Decimal("0.2")) is False
    assert violated(actual=Decimal("3.6"), operator="<=", reference=Decimal("3"), tolerance=Decimal("0.5")) is True
    assert violated(actual=Decimal("3.5"), operator="<=", reference=Decimal("3"), tolerance=Decimal("0.5")) is False
    assert violated(actual=Decimal("95"), operator=">", reference=Decimal("95"), tolerance=Decimal("0")) is True
    assert violated(actual=Decimal("4"), operator="<", reference=Decimal("4"), tolerance=Decimal("0")) is True


def test_a_percent_credit_rounds_half_up_to_the_cent_and_a_fixed_one_is_its_amount() -> None:
    assert credit_amount(rule_consequence="credit_percent", credit_percent=Decimal("2.5"), credit_fixed_minor=None, monthly_value_minor=333333) == 8333
    assert credit_amount(rule_consequence="credit_percent", credit_percent=Decimal("10"), credit_fixed_minor=None, monthly_value_minor=5) == 1  # 0.5c up
    assert credit_amount(rule_consequence="credit_fixed", credit_percent=None, credit_fixed_minor=150000, monthly_value_minor=0) == 150000
    assert credit_amount(rule_consequence="none", credit_percent=None, credit_fixed_minor=None, monthly_value_minor=100) == 0
    assert num(Decimal("99.5000")) == "99.5" and num(Decimal("100.0000")) == "100"


def test_the_monthly_run_is_on_the_2nd_at_02_00_local_and_moves_on_once_that_has_passed() -> None:
    assert next_run_at(datetime(2026, 11, 23, 7, tzinfo=timezone.utc), TZ) == datetime(2026, 12, 2, 0, tzinfo=timezone.utc)
    assert next_run_at(datetime(2026, 12, 1, 23, tzinfo=timezone.utc), TZ) == datetime(2026, 12, 2, 0, tzinfo=timezone.utc)
    assert next_run_at(datetime(2026, 12, 2, 0, 0, 1, tzinfo=timezone.utc), TZ) == datetime(2027, 1, 2, 0, tzinfo=timezone.utc)
