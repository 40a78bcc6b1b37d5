"""Desk cards, the account's money for the account page and the statement, and concurrent repeats of an import."""

from __future__ import annotations

import threading
from datetime import date
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from conftest import NOW
from opsline.core.events import Actor
from opsline.payments import home, imports, queries
from opsline.payments.parsers import UnableToImportStatement
from payments_helpers import account_with_invoices, assert_ledger_balances, mt940

CLERK = Actor(name="clerk", roles=frozenset({"debtors_clerk"}))
TZ = ZoneInfo("Africa/Johannesburg")


def test_home_cards_show_proposals_suspense_with_ageing_chart_and_unpaids(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        t = account_with_invoices(s, now=NOW, name="Thabo Nkosi", amounts=[59900])
        imports.import_statement(s, data=mt940(lines=[("261120", 1234, "B1", "/REMI/who"), ("261120", 59900, "B2", f"/REMI/{t['number'][:-1]}0")]),
                                 filename="a.sta", now=NOW, actor=CLERK)
    with factory() as s:
        cards = {c.title: c for c in home.cards(s, now=NOW, actor=CLERK, tz=TZ)}
    susp = cards["Money in suspense"]
    assert susp.count >= 1 and susp.href == "/payments/suspense" and susp.chart["type"] == "bar" and "oldest 0 d" in susp.hint
    assert set(susp.desks) == {"debtors_clerk", "debtors_manager"}
    assert cards["Debit-order unpaids today"].count == 0


def test_the_account_money_and_statement_rows_show_payments_allocations_and_open_items(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        t = account_with_invoices(s, now=NOW, name="Thabo Nkosi", amounts=[59900, 59900])
        imports.import_statement(s, data=mt940(lines=[("261120", 59900, "B1", f"/REMI/{t['number']}")]), filename="a.sta", now=NOW, actor=CLERK)
        money = queries.account_money(s, account_id=t["id"], now=NOW)
        assert money["balance"]["balance_minor"] == 59900 and [i["id"] for i in money["open_invoices"]] == [t["invoices"][1]]
        assert money["payments"][0]["state"] == "allocated" and money["allocations"][0]["rule_code"] == "account-number"
        rows = queries.statement_payment_rows(s, account_id=t["id"], date_from=date(2026, 11, 1), date_to=date(2026, 11, 30))
        assert [(r["invoice_number"], r["amount_minor"], r["state"]) for r in rows] == [(t["invoice_numbers"][0], 59900, "allocated")]
        assert_ledger_balances(s)


def test_concurrent_repeats_of_overlapping_files_post_each_bank_transaction_once(engine, factory):  # type: ignore[no-untyped-def]
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    with factory.begin() as s:
        t = account_with_invoices(s, now=NOW, name="Thabo Nkosi", amounts=[59900, 59900, 59900])
    lines = [("261120", 59900, f"B{k}", f"/REMI/{t['number']}") for k in range(3)]
    files = [mt940(lines=lines[:2]), mt940(lines=lines[1:], opening=2_000_000), mt940(lines=lines[:2])]
    barrier = threading.Barrier(len(files))
    outcome: list[str] = []

    def run(k: int) -> None:
        barrier.wait()
        try:
            with factory.begin() as s:
                r = imports.import_statement(s, data=files[k], filename=f"f{k}.sta", now=NOW, actor=CLERK)
                outcome.append(f"ok:{r['new_lines']}")
        except (imports.DuplicateStatement, UnableToImportStatement) as exc:
            outcome.append(type(exc).__name__)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(files))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(outcome).count("DuplicateStatement") == 1
    with factory() as s:
        assert s.execute(text("SELECT COUNT(*) FROM statement_line")).scalar_one() == 3
        assert s.execute(text("SELECT COUNT(*) FROM payment")).scalar_one() == 3
        assert_ledger_balances(s)
