"""VAT once per invoice and tax rate, spread over the lines by largest remainder (billing.tax), and the same rule in SQL."""

from __future__ import annotations

import sqlite3
from decimal import ROUND_HALF_UP, Decimal

from hypothesis import given
from hypothesis import strategies as st

from opsline.billing.charges import spread_vat_sql
from opsline.billing.sql import STAGE, Dialect
from opsline.billing.tax import TaxedLine, invoice_vat, spread_vat, vat_on

RATES = {"VAT15": Decimal("0.1500"), "ZERO": Decimal("0"), "VAT14": Decimal("0.1400")}


def test_a_hundred_lines_of_three_cents_carry_forty_five_cents_of_vat():
    lines = [TaxedLine(3, "VAT15")] * 100
    vat = spread_vat(lines, RATES)
    assert sum(vat) == 45 == invoice_vat(lines, RATES)
    assert vat[:45] == [1] * 45 and vat[45:] == [0] * 55  # ties go to the earlier lines


def test_vat_rounds_half_up_once_per_rate():
    assert vat_on(10010, RATES["VAT15"]) == 1502  # 1501.5
    assert vat_on(-10010, RATES["VAT15"]) == -1502
    lines = [TaxedLine(10010, "VAT15"), TaxedLine(10030, "VAT15"), TaxedLine(333, "VAT15"), TaxedLine(5000, "ZERO")]
    assert spread_vat(lines, RATES) == [1502, 1504, 50, 0]


line_lists = st.lists(st.tuples(st.integers(-50_000, 500_000), st.sampled_from(sorted(RATES))), min_size=1, max_size=40)


@given(line_lists)
def test_the_lines_always_add_up_to_the_invoice_vat_and_each_is_within_a_cent_of_exact(raw):
    lines = [TaxedLine(a, c) for a, c in raw]
    vat = spread_vat(lines, RATES)
    assert sum(vat) == invoice_vat(lines, RATES)
    for ln, v in zip(lines, vat):
        exact = Decimal(ln.net_minor) * RATES[ln.tax_rate_code]
        assert abs(Decimal(v) - exact) < 1
    for code in RATES:
        net = sum(ln.net_minor for ln in lines if ln.tax_rate_code == code)
        per_code = sum(v for ln, v in zip(lines, vat) if ln.tax_rate_code == code)
        assert per_code == int((Decimal(net) * RATES[code]).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@given(st.lists(st.tuples(st.integers(1, 3), st.integers(-50_000, 500_000), st.sampled_from(sorted(RATES))), min_size=1, max_size=30))
def test_the_bill_run_sql_spreads_vat_exactly_like_the_python_rule(raw):
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE TEMP TABLE {STAGE} (seq INTEGER PRIMARY KEY, account_id INTEGER, amount_minor INTEGER, tax_bp INTEGER, tax_rate_code TEXT, tax_minor INTEGER DEFAULT 0)")
    db.executemany(f"INSERT INTO {STAGE} (account_id, amount_minor, tax_bp, tax_rate_code) VALUES (?, ?, ?, ?)",
                   [(acc, amt, int(RATES[code] * 10000), code) for acc, amt, code in raw])
    db.execute(spread_vat_sql(Dialect("sqlite")))
    got = [r[0] for r in db.execute(f"SELECT tax_minor FROM {STAGE} ORDER BY seq")]
    want: dict[int, int] = {}
    for acc in {a for a, _, _ in raw}:
        idx = [i for i, (a, _, _) in enumerate(raw) if a == acc]
        for i, v in zip(idx, spread_vat([TaxedLine(raw[i][1], raw[i][2]) for i in idx], RATES)):
            want[i] = v
    assert got == [want[i] for i in range(len(raw))]
