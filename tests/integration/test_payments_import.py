"""Statement import and the matching cascade: every format, idempotency, rules with evidence, suspense, ledger invariant."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from conftest import NOW
from opsline.core.events import Actor
from opsline.payments import imports
from opsline.payments.models import Allocation, Payment, SuspenseItem
from payments_helpers import account_with_invoices, assert_ledger_balances, camt053, counts, mt940

CLERK = Actor(name="clerk", roles=frozenset({"debtors_clerk"}))


@pytest.fixture
def book(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        thabo = account_with_invoices(s, now=NOW, name="Thabo Nkosi", amounts=[59900, 59900])
        lerato = account_with_invoices(s, now=NOW, name="Lerato Mokoena", amounts=[79900])
        pieter = account_with_invoices(s, now=NOW, name="Pieter van der Merwe", amounts=[123456])
        naledi = account_with_invoices(s, now=NOW, name="Naledi Khumalo", amounts=[49900, 49900])
    return {"thabo": thabo, "lerato": lerato, "pieter": pieter, "naledi": naledi}


def _typo(number: str) -> str:
    d = (int(number[4]) + 3) % 10
    return number[:4] + str(d) + number[5:]


def test_mt940_lines_are_matched_by_invoice_and_account_number_with_rule_and_evidence(factory, book):  # type: ignore[no-untyped-def]
    t, l, p, n = book["thabo"], book["lerato"], book["pieter"], book["naledi"]
    data = mt940(lines=[
        ("261120", 59900, "B001", f"/NAME/T NKOSI/ACCT/62000011111/REMI/{t['invoice_numbers'][0].lower().replace('-', ' ')}"),
        ("261120", 79900, "B002", f"/NAME/L MOKOENA/REMI/ACC {l['number'][:5]}-{l['number'][5:]}"),
        ("261121", 123456, "B003", f"/NAME/P VD MERWE/REMI/{_typo(p['number'])}"),
        ("261121", 99800, "B004", f"/NAME/N KHUMALO/REMI/{n['number']} both months"),
        ("261122", 5000, "B005", "/NAME/UNKNOWN PERSON/REMI/thanks"),
        ("261122", -1500, "B006", "Bank charges"),
    ])
    with factory.begin() as s:
        res = imports.import_statement(s, data=data, filename="fnb-20261123.sta", now=NOW, actor=CLERK)
        assert res["lines"] == 6 and res["payments"] == 5
        assert res["allocated"] == 3 and res["proposed"] == 1 and res["suspense"] == 1
        allocs = s.execute(select(Allocation).order_by(Allocation.id)).scalars().all()
        first = [a for a in allocs if a.account_id == t["id"]]
        assert [(a.invoice_id, a.amount_minor, a.state, a.rule_code) for a in first] == [(t["invoices"][0], 59900, "allocated", "invoice-number")]
        assert first[0].evidence["field"] == "reference" and t["invoice_numbers"][0] in first[0].evidence["matched"]
        combined = [a for a in allocs if a.account_id == n["id"]]
        assert sorted(a.invoice_id for a in combined) == sorted(n["invoices"]) and all(a.state == "allocated" for a in combined)
        typo = [a for a in allocs if a.account_id == p["id"]]
        assert typo and typo[0].state == "proposed" and typo[0].rule_code == "account-number-repaired" and typo[0].score == 75
        assert "check digit" in typo[0].evidence["matched"]
        item = s.execute(select(SuspenseItem)).scalar_one()
        assert item.amount_minor == 5000 and item.owner == "debtors" and item.closed_at is None
        assert_ledger_balances(s)


def test_the_same_file_twice_is_refused_and_an_overlapping_file_posts_only_new_lines(factory, book):  # type: ignore[no-untyped-def]
    t = book["thabo"]
    one = mt940(lines=[("261120", 59900, "B001", f"/REMI/{t['invoice_numbers'][0]}")])
    with factory.begin() as s:
        imports.import_statement(s, data=one, filename="a.sta", now=NOW, actor=CLERK)
    with factory() as s:
        before = counts(s)
        with pytest.raises(imports.DuplicateStatement) as exc:
            imports.import_statement(s, data=one, filename="again.sta", now=NOW, actor=CLERK)
        assert "already imported" in exc.value.detail and "again.sta" in exc.value.detail
        s.rollback()
        assert counts(s) == before
    both = mt940(lines=[("261120", 59900, "B001", f"/REMI/{t['invoice_numbers'][0]}"), ("261121", 59900, "B002", f"/REMI/{t['invoice_numbers'][1]}")],
                 opening=900_000)
    with factory.begin() as s:
        res = imports.import_statement(s, data=both, filename="b.sta", now=NOW, actor=CLERK)
        assert res["lines"] == 2 and res["new_lines"] == 1 and res["duplicates"] == 1 and res["payments"] == 1
        assert s.execute(text("SELECT COUNT(*) FROM payment")).scalar_one() == 2
        assert_ledger_balances(s)


def test_camt053_versions_and_a_known_payer_account_match(factory, book):  # type: ignore[no-untyped-def]
    t = book["thabo"]
    first = camt053(entries=[("2026-11-20", 59900, "R1", "THABO NKOSI", "1234567890", f"Invoice {t['invoice_numbers'][0]}")], version="02")
    second = camt053(entries=[("2026-11-22", 59900, "R2", "MR T NKOSI", "1234567890", "internet")], version="08")
    with factory.begin() as s:
        r1 = imports.import_statement(s, data=first, filename="camt-1.xml", now=NOW, actor=CLERK)
        r2 = imports.import_statement(s, data=second, filename="camt-2.xml", now=NOW, actor=CLERK)
        assert r1["allocated"] == 1 and r2["allocated"] == 1
        a = s.execute(select(Allocation).join(Payment, Payment.id == Allocation.payment_id).where(Payment.payer_name == "MR T NKOSI")).scalar_one()
        assert a.rule_code == "payer-account" and a.invoice_id == t["invoices"][1] and a.evidence["field"] == "payer_account"
        assert_ledger_balances(s)


def test_csv_with_a_saved_mapping_reads_decimal_commas_debit_credit_columns_and_footer(factory, book):  # type: ignore[no-untyped-def]
    l = book["lerato"]
    body = ("Valutadatum;Credit;Debit;Reference;Counterparty;Counterparty Account\r\n"
            f"20.11.2026;799,00;;{l['invoice_numbers'][0]};L MOKOENA;99887766\r\n"
            "21.11.2026;;15,50;Service fee;;\r\n"
            "Total;799,00;15,50;;;\r\n").encode("cp1252")
    with factory.begin() as s:
        res = imports.import_statement(s, data=body, filename="sb.csv", fmt="csv", mapping_name="standard-bank", now=NOW, actor=CLERK)
        assert res["lines"] == 2 and res["allocated"] == 1
        amounts = sorted(r[0] for r in s.execute(text("SELECT amount_minor FROM statement_line")))
        assert amounts == [-1550, 79900]
        assert_ledger_balances(s)


def test_a_csv_without_a_mapping_named_is_read_by_the_one_saved_mapping_that_fits_or_refused_naming_them(factory, book):  # type: ignore[no-untyped-def]
    l = book["lerato"]
    body = ("Valutadatum;Credit;Debit;Reference;Counterparty;Counterparty Account\r\n"
            f"20.11.2026;799,00;;{l['invoice_numbers'][0]};L MOKOENA;99887766\r\n"
            "Total;799,00;;;;\r\n").encode("cp1252")
    with factory.begin() as s:
        res = imports.import_statement(s, data=body, filename="sb.csv", fmt="csv", mapping_name=None, now=NOW, actor=CLERK)
        assert res["lines"] == 1 and res["allocated"] == 1
    with factory.begin() as s, pytest.raises(imports.UnableToImportStatement) as e:
        imports.import_statement(s, data=b"when,how much\n2026-11-20,5\n", filename="odd.csv", fmt="csv", mapping_name=None, now=NOW, actor=CLERK)
    assert e.value.field == "mapping" and "fnb, standard-bank" in e.value.detail and "odd.csv" in e.value.detail
    with factory() as s:
        assert s.execute(text("SELECT COUNT(*) FROM statement_file WHERE filename = 'odd.csv'")).scalar() == 0


def test_overpayment_becomes_account_credit_on_that_account_only(factory, book):  # type: ignore[no-untyped-def]
    l = book["lerato"]
    data = mt940(lines=[("261120", 100000, "B9", f"/REMI/{l['number']}")])
    with factory.begin() as s:
        imports.import_statement(s, data=data, filename="over.sta", now=NOW, actor=CLERK)
        rows = s.execute(select(Allocation.invoice_id, Allocation.amount_minor, Allocation.account_id).order_by(Allocation.id)).all()
        assert rows == [(l["invoices"][0], 79900, l["id"]), (None, 20100, l["id"])]
        assert_ledger_balances(s)


def test_payment_name_resemblance_only_ever_proposes(factory, book):  # type: ignore[no-untyped-def]
    p = book["pieter"]
    data = mt940(lines=[("261120", 123456, "B7", "/NAME/MR PIETER VAN DER MERWE/REMI/monthly")])
    with factory.begin() as s:
        s.execute(text("UPDATE payment_matching_rule SET confidence = 100 WHERE kind = 'payer_name'"))
        s.execute(text("UPDATE payment_matching_rule SET enabled = false WHERE kind = 'amount_date'"))
        res = imports.import_statement(s, data=data, filename="name.sta", now=NOW, actor=CLERK)
        assert res["allocated"] == 0 and res["proposed"] == 1
        a = s.execute(select(Allocation)).scalar_one()
        assert a.rule_code == "payer-name" and a.state == "proposed" and a.account_id == p["id"] and "%" in a.evidence["matched"]
        assert_ledger_balances(s)
