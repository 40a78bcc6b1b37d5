"""Calendar arithmetic for billing periods (a bill run covers [cycle date, cycle date + 1 month))."""

from __future__ import annotations

import calendar
from datetime import date


def add_months(d: date, n: int) -> date:
    """`d` moved by `n` months, clamped to the last day of a shorter month (31 January + 1 month = 28/29 February)."""
    m = d.month - 1 + n
    y = d.year + m // 12
    m = m % 12 + 1
    return date(y, m, min(d.day, calendar.monthrange(y, m)[1]))
