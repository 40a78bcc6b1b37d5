"""Money: a Decimal amount with an ISO 4217 currency, stored as integer minor units; explicit rounding and exact splits."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Iterable, Sequence

from opsline.core.errors import InvalidInput

# Minor-unit exponents for currencies that differ from 2 decimals; everything else uses 2.
_EXPONENTS: dict[str, int] = {"JPY": 0, "KRW": 0, "UGX": 0, "RWF": 0, "XOF": 0, "XAF": 0, "BHD": 3, "KWD": 3, "OMR": 3, "TND": 3}

ROUNDING_BANKERS = ROUND_HALF_EVEN
ROUNDING_COMMERCIAL = ROUND_HALF_UP


class CurrencyMismatch(InvalidInput):
    title = "Currency mismatch"
    type_slug = "currency-mismatch"


def exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.upper(), 2)


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in a currency. Arithmetic keeps full precision; `rounded()` quantises explicitly."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            if isinstance(self.amount, float):
                raise TypeError("Money does not accept float; pass a Decimal or a string")
            object.__setattr__(self, "amount", Decimal(self.amount))
        if len(self.currency) != 3 or not self.currency.isalpha():
            raise InvalidInput(f"'{self.currency}' is not an ISO 4217 currency code", field="currency")
        object.__setattr__(self, "currency", self.currency.upper())

    # construction -----------------------------------------------------------------
    @classmethod
    def of(cls, amount: str | int | Decimal, currency: str) -> "Money":
        try:
            return cls(Decimal(str(amount)) if not isinstance(amount, Decimal) else amount, currency)
        except InvalidOperation as exc:
            raise InvalidInput(f"'{amount}' is not a number", field="amount") from exc

    @classmethod
    def zero(cls, currency: str) -> "Money":
        return cls(Decimal(0), currency)

    @classmethod
    def from_minor(cls, minor: int, currency: str) -> "Money":
        return cls(Decimal(int(minor)).scaleb(-exponent(currency)), currency)

    # conversion -------------------------------------------------------------------
    @property
    def minor(self) -> int:
        """Integer minor units; raises if the amount has sub-minor precision (round first)."""
        q = self.amount.scaleb(exponent(self.currency))
        if q != q.to_integral_value():
            raise ValueError(f"{self} has sub-minor precision; call rounded() first")
        return int(q)

    def rounded(self, rounding: str = ROUNDING_BANKERS) -> "Money":
        quantum = Decimal(1).scaleb(-exponent(self.currency))
        return Money(self.amount.quantize(quantum, rounding=rounding), self.currency)

    # arithmetic -------------------------------------------------------------------
    def _check(self, other: "Money") -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: "Money") -> "Money":
        self._check(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: "Money") -> "Money":
        self._check(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, factor: int | Decimal) -> "Money":
        if isinstance(factor, float):
            raise TypeError("multiply Money by Decimal or int, not float")
        return Money(self.amount * Decimal(factor), self.currency)

    __rmul__ = __mul__

    def __neg__(self) -> "Money":
        return Money(-self.amount, self.currency)

    def __abs__(self) -> "Money":
        return Money(abs(self.amount), self.currency)

    def __lt__(self, other: "Money") -> bool:
        self._check(other)
        return self.amount < other.amount

    def __le__(self, other: "Money") -> bool:
        self._check(other)
        return self.amount <= other.amount

    def __gt__(self, other: "Money") -> bool:
        self._check(other)
        return self.amount > other.amount

    def __ge__(self, other: "Money") -> bool:
        self._check(other)
        return self.amount >= other.amount

    def is_zero(self) -> bool:
        return self.amount == 0

    def __str__(self) -> str:
        return f"{self.currency} {self.rounded().amount:,.{exponent(self.currency)}f}"

    def to_tmf(self) -> dict[str, object]:
        """TM Forum Money shape: {"unit": "ZAR", "value": 123.45}."""
        return {"unit": self.currency, "value": float(self.rounded().amount)}

    # splitting --------------------------------------------------------------------
    def allocate(self, weights: Sequence[int | Decimal]) -> list["Money"]:
        """Split into parts proportional to `weights` by largest remainder; the parts always sum back exactly."""
        return [Money.from_minor(m, self.currency) for m in allocate_minor(self.rounded().minor, weights)]

    def split(self, n: int) -> list["Money"]:
        return self.allocate([1] * n)


def allocate_minor(total: int, weights: Sequence[int | Decimal]) -> list[int]:
    """Largest-remainder allocation of an integer amount; ties go to the earliest part. Sum is exactly `total`."""
    if not weights:
        raise InvalidInput("cannot allocate over no parts")
    ws = [Decimal(w) for w in weights]
    if any(w < 0 for w in ws):
        raise InvalidInput("allocation weights must not be negative")
    wsum = sum(ws)
    if wsum == 0:
        raise InvalidInput("allocation weights must not all be zero")
    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    exact = [magnitude * w / wsum for w in ws]
    floors = [int(e) for e in exact]  # exact >= 0 so int() floors
    remainder = magnitude - sum(floors)
    order = sorted(range(len(ws)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:remainder]:
        floors[i] += 1
    return [sign * f for f in floors]


def total(items: Iterable[Money], currency: str) -> Money:
    acc = Money.zero(currency)
    for m in items:
        acc = acc + m
    return acc
