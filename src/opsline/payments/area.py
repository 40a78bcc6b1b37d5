"""Payments area wiring."""

from __future__ import annotations

from opsline.areas import Area
from opsline.payments import models  # noqa: F401  (tables)

AREA = Area(
    name="payments",
    order=70,  # after billing (invoices, ledger)
)
