"""Tax rates (billing owns them: dated rows in `tax_rate`) and VAT arithmetic: VAT is computed once per invoice and
tax rate (net x rate, rounded half-up) and spread over the lines by largest remainder, so the lines add up to it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.billing.models import TaxRate
from opsline.core.errors import InvalidInput


class UnknownTaxRate(InvalidInput):
    title = "Unknown tax rate"
    type_slug = "unknown-tax-rate"


def rate_for(session: Session, *, code: str, on: date) -> Decimal:
    """The rate (e.g. Decimal('0.1500')) of tax code `code` valid on `on`. Raises UnknownTaxRate (unknown code, or
    not valid on that date)."""
    row = session.execute(select(TaxRate).where(TaxRate.code == code)).scalar_one_or_none()
    if row is None:
        raise UnknownTaxRate(f"unknown tax rate '{code}'", field="tax_rate_code")
    if row.valid_from > on or (row.valid_to is not None and row.valid_to <= on):
        raise UnknownTaxRate(f"tax rate '{code}' is not valid on {on.isoformat()}", field="tax_rate_code")
    return Decimal(row.rate)


def rates_on(session: Session, *, on: date) -> dict[str, Decimal]:
    """Every tax code valid on `on` -> its rate (one query)."""
    rows = session.execute(select(TaxRate).where(TaxRate.valid_from <= on, (TaxRate.valid_to.is_(None)) | (TaxRate.valid_to > on))).scalars()
    return {r.code: Decimal(r.rate) for r in rows}


def vat_on(net_minor: int, rate: Decimal) -> int:
    """VAT on a net amount in minor units, rounded once, half-up (away from zero for credits)."""
    return int((Decimal(net_minor) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class TaxedLine:
    net_minor: int
    tax_rate_code: str


def spread_vat(lines: Sequence[TaxedLine], rates: dict[str, Decimal]) -> list[int]:
    """Per-line VAT for one invoice: for each tax code, VAT = round_half_up(sum(net) x rate), split over that code's
    lines in proportion to each line's exact VAT by largest remainder (ties to the earlier line). The result sums to the
    invoice VAT exactly (100 lines of 3c at 15 % -> 45c, not 0c). Raises UnknownTaxRate for a code without a rate."""
    out = [0] * len(lines)
    by_code: dict[str, list[int]] = {}
    for i, ln in enumerate(lines):
        by_code.setdefault(ln.tax_rate_code, []).append(i)
    for code, idx in by_code.items():
        if code not in rates:
            raise UnknownTaxRate(f"unknown tax rate '{code}'", field="tax_rate_code")
        rate = rates[code]
        total = vat_on(sum(lines[i].net_minor for i in idx), rate)
        exact = [Decimal(lines[i].net_minor) * rate for i in idx]
        floors = [int(e.to_integral_value(rounding="ROUND_FLOOR")) for e in exact]
        left = total - sum(floors)
        order = sorted(range(len(idx)), key=lambda k: (-(exact[k] - floors[k]), k))
        if left < 0:  # only with negative lines: take from the smallest remainders
            order = sorted(range(len(idx)), key=lambda k: ((exact[k] - floors[k]), k))
        step = 1 if left >= 0 else -1
        for n in range(abs(left)):
            floors[order[n % len(order)]] += step
        for k, i in enumerate(idx):
            out[i] = floors[k]
    return out


def invoice_vat(lines: Iterable[TaxedLine], rates: dict[str, Decimal]) -> int:
    """An invoice's VAT: the sum over tax codes of round_half_up(net per code x rate)."""
    nets: dict[str, int] = {}
    for ln in lines:
        nets[ln.tax_rate_code] = nets.get(ln.tax_rate_code, 0) + ln.net_minor
    return sum(vat_on(n, rates[c]) for c, n in nets.items())
