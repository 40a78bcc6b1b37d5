"""References as payers type them: invoice and account numbers found despite spaces, dashes, prefixes and case; a mistyped
digit is caught by the check digit and repaired into candidates that include the real number."""

from __future__ import annotations

from hypothesis import given, strategies as st

from opsline.core.ids import account_number
from opsline.payments.parsers import UnableToImportStatement, to_minor
from opsline.payments.tokens import account_tokens, invoice_tokens, is_valid_account_number


def test_invoice_numbers_are_found_in_many_spellings():
    for ref in ("INV-2026-00000042", "inv 2026 00000042", "PAYMENT INV202600000042", "Inv-2026-42 thanks", "inv - 2026 - 00000042", "2026-00000042"):
        assert "INV-2026-00000042" in invoice_tokens(ref), ref


def test_account_numbers_with_spaces_dashes_and_prefixes_are_found():
    number = account_number(1234)
    for ref in (number, f"ACC {number[:4]}-{number[4:8]}-{number[8:]}", f"a/c {number[:5]} {number[5:]}", f"Internet{number}"):
        valid, _ = account_tokens(ref)
        assert valid == {number}, ref


@given(seq=st.integers(min_value=1, max_value=899_999_999), pos=st.integers(min_value=0, max_value=9), delta=st.integers(min_value=1, max_value=9))
def test_one_mistyped_digit_fails_the_check_digit_and_the_repairs_include_the_real_number(seq, pos, delta):
    real = account_number(seq)
    typed = real[:pos] + str((int(real[pos]) + delta) % 10) + real[pos + 1:]
    assert not is_valid_account_number(typed)
    valid, repaired = account_tokens(f"ref {typed}")
    assert not valid and real in repaired and repaired[real] == typed


@given(minor=st.integers(min_value=-10**12, max_value=10**12))
def test_amounts_round_trip_in_both_decimal_styles(minor):
    sign = "-" if minor < 0 else ""
    m = abs(minor)
    assert to_minor(f"{sign}{m // 100}.{m % 100:02d}", "ZAR", decimal_comma=False, filename="f", line=1, field="amount") == minor
    assert to_minor(f"{sign}{m // 100:,}.{m % 100:02d}", "ZAR", decimal_comma=False, filename="f", line=1, field="amount") == minor
    assert to_minor(f"{sign}{m // 100:,}.{m % 100:02d}".replace(",", " ").replace(".", ","), "ZAR", decimal_comma=True, filename="f", line=1,
                    field="amount") == minor


def test_sub_cent_amounts_are_refused():
    try:
        to_minor("12.345", "ZAR", decimal_comma=False, filename="f.csv", line=7, field="amount")
    except UnableToImportStatement as exc:
        assert exc.detail == "f.csv line 7, field amount: '12.345' has more decimals than ZAR allows"
    else:
        raise AssertionError("accepted sub-cent precision")
