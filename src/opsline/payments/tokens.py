"""What a payer's reference may name: invoice numbers and account numbers, tolerant of spaces, dashes, prefixes and case;
account numbers checked by their Luhn digit, and a mistyped digit repaired into the few numbers it could have been."""

from __future__ import annotations

import re

from opsline.core.ids import luhn_check_digit

ACCOUNT_DIGITS = 10

_INVOICE = re.compile(r"(?<![A-Za-z])([A-Za-z]{2,5})[\s\-_/.:#]*((?:19|20)\d\d)[\s\-_/.]*([A-Za-z]?)[\s\-]*(\d{1,10})(?!\d)")
_BARE_INVOICE = re.compile(r"(?<!\d)((?:19|20)\d\d)[\s\-_/.]+(\d{1,10})(?!\d)")
_DIGIT_RUN = re.compile(r"\d(?:[\s\-]?\d)+")


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
        digits = re.sub(r"\D", "", m.group())
        if len(digits) != ACCOUNT_DIGITS:
            continue
        if is_valid_account_number(digits):
            valid.add(digits)
            continue
        for cand in _repairs(digits):
            repaired.setdefault(cand, digits)
    return valid, repaired


def _repairs(digits: str) -> set[str]:
    out: set[str] = set()
    for i in range(len(digits)):
        for d in "0123456789":
            if d != digits[i]:
                cand = digits[:i] + d + digits[i + 1:]
                if is_valid_account_number(cand):
                    out.add(cand)
    for i in range(len(digits) - 1):
        if digits[i] != digits[i + 1]:
            cand = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2:]
            if is_valid_account_number(cand):
                out.add(cand)
    return out
