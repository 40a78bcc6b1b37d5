"""SQL building blocks shared by the bill-run statements: the few date/number fragments where SQLite and PostgreSQL
differ, commercial rounding, and the shape of the per-shard stage table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy.orm import Session

STAGE = "billrun_stage"

@dataclass(frozen=True)
class Dialect:
    name: str

    @property
    def pg(self) -> bool:
        return self.name == "postgresql"

    def d(self, param: str) -> str:
        """A date parameter."""
        return f"CAST(:{param} AS DATE)" if self.pg else f":{param}"

    def days(self, a: str, b: str) -> str:
        """Whole days from date a to date b."""
        return f"({b} - {a})" if self.pg else f"CAST(julianday({b}) - julianday({a}) AS INTEGER)"

    def greatest(self, a: str, b: str) -> str:
        return f"GREATEST({a}, {b})" if self.pg else f"max({a}, {b})"

    def least(self, a: str, b: str) -> str:
        return f"LEAST({a}, {b})" if self.pg else f"min({a}, {b})"

    def date_text(self, x: str) -> str:
        return f"CAST({x} AS TEXT)"

    def minus_day_text(self, x: str) -> str:
        return f"CAST({x} - 1 AS TEXT)" if self.pg else f"date({x}, '-1 day')"

    def add_days(self, d: str, n: str) -> str:
        return f"({d} + {n})" if self.pg else f"date({d}, '+' || ({n}) || ' days')"

    def pad8(self, n: str) -> str:
        return f"lpad(CAST({n} AS TEXT), 8, '0')" if self.pg else f"printf('%08d', {n})"

    def json_invoice(self, col: str) -> str:
        return f"jsonb_build_object('invoice_id', {col})" if self.pg else f"json_object('invoice_id', {col})"

    def num_text(self, x: str) -> str:
        """A quantity as text without float noise."""
        return f"CAST(CAST({x} AS NUMERIC(18,2)) AS TEXT)" if self.pg else f"CAST(round({x}, 2) AS TEXT)"

    def bind_date(self, v: date) -> Any:
        return v if self.pg else v.isoformat()

    def bind_ts(self, v: datetime) -> Any:
        # the same text SQLAlchemy writes for DateTime on SQLite (always 6 fractional digits), so comparisons are exact
        return v if self.pg else v.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def dialect_of(session: Session) -> Dialect:
    return Dialect(session.get_bind().dialect.name)


def half_up(num: str, den: str) -> str:
    """Integer division of num by a positive den, rounding halves away from zero (commercial rounding)."""
    return f"(CASE WHEN ({num}) >= 0 THEN (2 * ({num}) + ({den})) / (2 * ({den})) ELSE -((-2 * ({num}) + ({den})) / (2 * ({den}))) END)"


def tax_expr(amount: str, bp: str) -> str:
    """VAT on one line in minor units, half-up to the cent; `bp` is the rate in basis points (15% = 1500)."""
    return half_up(f"{amount} * {bp}", "10000")


TAX_BP = "CAST(round(t.rate * 10000) AS BIGINT)"

STAGE_COLS = ("account_id, product_id, offering_id, price_id, kind, description, period_start, period_end, quantity, "
              "unit_amount_minor, amount_minor, tax_bp, tax_rate_code, currency, explanation, pending_charge_id, discount_id, basis_start, basis_days")


