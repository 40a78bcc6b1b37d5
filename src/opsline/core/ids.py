"""Identifiers: human-facing reference numbers and random tokens."""

from __future__ import annotations

import secrets


def reference(prefix: str, number: int, *, width: int = 8) -> str:
    """A stable human reference such as `CS00001234` from a database sequence number."""
    return f"{prefix}{number:0{width}d}"


def token(nbytes: int = 24) -> str:
    return secrets.token_urlsafe(nbytes)


def luhn_check_digit(digits: str) -> int:
    """Check digit so that account numbers typed by hand are caught when mistyped."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def account_number(seq: int) -> str:
    """Account numbers are 9 digits + a Luhn check digit, e.g. 1000000017."""
    body = f"{100000000 + seq:09d}"
    return body + str(luhn_check_digit(body))
