"""What a payer's reference may name: invoice numbers and account numbers, tolerant of spaces, dashes, prefixes and case;
account numbers checked by their Luhn digit, and a mistyped digit repaired into the few numbers it could have been."""

from __future__ import annotations

import re

from opsline.core.ids import luhn_check_digit

ACCOUNT_DIGITS = 10

_INVOICE = re.compile(r"(?<![A-Za-z])([A-Za-z]{2,5})[\s\-_/.:#]*((?:19|20)\d\d)[\s\-_/.]*([A-Za-z]?)[\s\-]*(\d{1,10})(?!\d)")
_BARE_INVOICE = re.compile(r"(?<!\d)((?:19|20)\d\d)[\s\-_/.]+(\d{1,10})(?!\d)")
_DIGIT_RUN = re.compile(r"\d(?:[\s\-]?\d)+")
_NON_DIGIT = re.compile(r"\D")


def is_valid_account_number(number: str) -> bool:
    """True when `number` is an account number whose last digit is the Luhn check digit of the rest (core.ids.account_number)."""
    return len(number) == ACCOUNT_DIGITS and number.isdigit() and luhn_check_digit(number[:-1]) == int(number[-1])


def invoice_tokens(reference: str, *, default_prefix: str = "INV", width: int = 8) -> set[str]:
    """Invoice numbers a reference may name, rendered the way invoices are numbered (PREFIX-YYYY-NNNNNNNN)."""
    out: set[str] = set()
    for prefix, year, letter, seq in _INVOICE.findall(reference):
        letter = letter.upper()
        out.add(f"{prefix.upper()}-{year}-{letter}{seq.zfill(width - len(letter))}")
    for year, seq in _BARE_INVOICE.findall(reference):
        out.add(f"{default_prefix}-{year}-{seq.zfill(width)}")
    return out


def account_tokens(reference: str) -> tuple[set[str], dict[str, str]]:
    """(valid account numbers, {repaired candidate: as typed}) from the digit runs of a reference. A run of ten digits whose
    check digit fails is a typo; its repairs are every number one substituted digit or one swap of neighbours away that passes."""
    valid: set[str] = set()
    repaired: dict[str, str] = {}
    for m in _DIGIT_RUN.finditer(reference):
        digits = _NON_DIGIT.sub("", m.group())
        if len(digits) != ACCOUNT_DIGITS:
            continue
        if is_valid_account_number(digits):
            valid.add(digits)
            continue
        for cand in _repairs(digits):
            repaired.setdefault(cand, digits)
    return valid, repaired


_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # Luhn: a doubled digit, its two digits summed


def _repairs(digits: str) -> set[str]:
    """The Luhn sum of the ten digits is kept and changed per candidate (one digit or one neighbour pair), instead of
    recomputing the check digit of ~100 candidate strings: same candidates, a tenth of the work."""
    n = len(digits)
    values = [int(ch) for ch in digits]
    # the check digit (rightmost) counts as is, every second digit to its left doubled
    part = [_DOUBLED[v] if (n - 1 - i) % 2 else v for i, v in enumerate(values)]
    total = sum(part)
    out: set[str] = set()
    for i in range(n):
        doubled = (n - 1 - i) % 2
        rest = total - part[i]
        for d in range(10):
            if d != values[i] and (rest + (_DOUBLED[d] if doubled else d)) % 10 == 0:
                out.add(digits[:i] + str(d) + digits[i + 1:])
    for i in range(n - 1):
        if digits[i] != digits[i + 1]:
            a, b = values[i + 1], values[i]  # swapped into positions i, i + 1
            doubled = (n - 1 - i) % 2
            new = (_DOUBLED[a] if doubled else a) + (b if doubled else _DOUBLED[b])
            if (total - part[i] - part[i + 1] + new) % 10 == 0:
                out.add(digits[:i] + digits[i + 1] + digits[i] + digits[i + 2:])
    return out
