"""Money: a Decimal amount with an ISO 4217 currency, stored as integer minor units; explicit rounding and exact splits."""

from __future__ import annotations

from dataclasses import dataclass
import re
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


# Amounts people and banks type: at most this many minor units (a BIGINT holds about 9.2e18; no real amount comes near).
MAX_MINOR = 10**15
_PREFIX = re.compile(r"^[A-Za-z]{1,3}")


class UnparseableAmount(ValueError):
    """A typed or imported amount that is not one; `reason` completes "'<raw>' ..." (callers wrap it in their own error
    naming the file, line and field)."""

    def __init__(self, raw: str, reason: str) -> None:
        super().__init__(f"'{raw}' {reason}")
        self.raw, self.reason = raw, reason


def parse_minor(raw: str, currency: str, *, decimal_comma: bool = False) -> int:
    """'1 234.50' / '-1,234.50' / '(99.00)' / 'R 599' / '12.50-' (and '1.234,50' with `decimal_comma`) → signed integer
    minor units of `currency`. Spaces and thousands separators are dropped, a currency prefix of up to three letters is
    ignored, parentheses or a trailing minus mean negative. Raises UnparseableAmount for anything that is not a finite
    number, has more decimals than the currency allows, or is beyond MAX_MINOR."""
    s = str(raw).strip().replace("\u00a0", "").replace(" ", "")
    neg = s.startswith("(") and s.endswith(")")
    s = s.strip("()")
    s = _PREFIX.sub("", s)
    s = s.replace(".", "").replace(",", ".") if decimal_comma else s.replace(",", "")
    if s.endswith("-"):  # some banks print the sign after the number
        neg, s = True, s[:-1]
    try:
        value = Decimal(s)
    except InvalidOperation:
        raise UnparseableAmount(raw, "is not an amount") from None
    if not value.is_finite():
        raise UnparseableAmount(raw, "is not an amount")
    # exact integer arithmetic on the digits: Decimal's context would round a 30-digit amount before we could see its decimals
    exp = exponent(currency)
    sign, digits, e = value.as_tuple()
    if sign and neg:  # '(-5)': two signs
        raise UnparseableAmount(raw, "is not an amount")
    ds = list(digits)
    while ds and e < 0 and ds[-1] == 0:
        ds.pop()
        e += 1  # type: ignore[operator]
    if not ds or not any(ds):
        return 0
    if e + exp < 0:  # type: ignore[operator]
        raise UnparseableAmount(raw, f"has more decimals than {currency.upper()} allows")
    if len(ds) + e + exp > 16:  # type: ignore[operator]
        raise UnparseableAmount(raw, "is too large to be an amount")
    scaled = int("".join(map(str, ds))) * 10 ** (e + exp) * (-1 if sign else 1)  # type: ignore[operator]
    if abs(scaled) > MAX_MINOR:
        raise UnparseableAmount(raw, "is too large to be an amount")
    return -scaled if neg else scaled


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
