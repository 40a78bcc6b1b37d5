"""The debtors clerk's work: approve proposals in a batch, reject, reverse, work suspense (allocate, split, refund, reassign),
refunds with four-eyes, debit-order results with unpaids; the ledger balances after every operation."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select, text

from conftest import NOW
from opsline.core import domain_events
from opsline.core.events import Actor
from opsline.core.lifecycle import FourEyesRequired
from opsline.core.money import Money
from opsline.payments import allocations, imports, refunds
from opsline.payments.allocations import Part
from opsline.payments.models import Allocation, Payment, Refund, SuspenseItem
from payments_helpers import account_with_invoices, assert_ledger_balances, counts, mt940

CLERK = Actor(name="clerk", roles=frozenset({"debtors_clerk"}))
MANAGER = Actor(name="manager", roles=frozenset({"debtors_manager"}))


@pytest.fixture
def published(monkeypatch):  # type: ignore[no-untyped-def]
    seen: list[tuple[str, dict]] = []
    real = domain_events._deliver

    def spy(session, ev):  # type: ignore[no-untyped-def]
        seen.append((ev.name, ev.payload))
        real(session, ev)

    monkeypatch.setattr(domain_events, "_deliver", spy)
    return seen


@pytest.fixture
def book(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        return {"thabo": account_with_invoices(s, now=NOW, name="Thabo Nkosi", amounts=[59900, 59900]),
                "lerato": account_with_invoices(s, now=NOW, name="Lerato Mokoena", amounts=[79900]),
                "pieter": account_with_invoices(s, now=NOW, name="Pieter van der Merwe", amounts=[123456])}


def _import(s, lines, name="st.sta"):  # type: ignore[no-untyped-def]
    return imports.import_statement(s, data=mt940(lines=lines), filename=name, now=NOW, actor=CLERK)


def _typo(number: str) -> str:
    return number[:4] + str((int(number[4]) + 3) % 10) + number[5:]


def test_a_clerk_approves_a_batch_of_proposals_in_one_action_and_the_invoice_is_settled(factory, book, published):  # type: ignore[no-untyped-def]
    p, t = book["pieter"], book["thabo"]
    with factory.begin() as s:
        _import(s, [("261120", 123456, "B1", f"/REMI/{_typo(p['number'])}"), ("261120", 59900, "B2", f"/REMI/{_typo(t['number'])}")])
        ids = [r[0] for r in s.execute(text("SELECT id FROM payment WHERE state = 'proposed' ORDER BY id"))]
        assert len(ids) == 2
        assert_ledger_balances(s)
    with factory.begin() as s:
        res = allocations.approve_proposals(s, payment_ids=ids, now=NOW, actor=CLERK)
        assert res == {"payments": 2, "allocations": 2}
        assert {r[0] for r in s.execute(text("SELECT state FROM payment"))} == {"allocated"}
        assert_ledger_balances(s)
    batches = [pl for name, pl in published if name == "payments.invoices_settled"]
    assert len(batches) == 1  # one event for the whole approval, not one per invoice
    assert p["invoices"][0] in batches[0]["ids"]
    assert batches[0]["account_ids"][batches[0]["ids"].index(p["invoices"][0])] == p["id"]
    assert not [name for name, _ in published if name == "payments.invoice_settled"]


def test_rejecting_a_proposal_needs_a_reason_and_puts_the_money_in_suspense(factory, book):  # type: ignore[no-untyped-def]
    p = book["pieter"]
    with factory.begin() as s:
        _import(s, [("261120", 123456, "B1", f"/REMI/{_typo(p['number'])}")])
        pid = s.execute(text("SELECT id FROM payment")).scalar_one()
    with factory() as s:
        with pytest.raises(Exception) as exc:
            allocations.reject_proposal(s, payment_id=pid, reason="", now=NOW, actor=CLERK)
        assert "reason" in str(exc.value)
        s.rollback()
    with factory.begin() as s:
        item_id = allocations.reject_proposal(s, payment_id=pid, reason="not his account", now=NOW, actor=CLERK)
        assert s.get(SuspenseItem, item_id).amount_minor == 123456
        assert s.execute(select(Allocation.state)).scalar_one() == "rejected"
        assert_ledger_balances(s)


def test_reversing_an_allocation_keeps_history_reverses_the_ledger_and_reopens_the_invoice(factory, book, published):  # type: ignore[no-untyped-def]
    l = book["lerato"]
    with factory.begin() as s:
        _import(s, [("261120", 79900, "B1", f"/REMI/{l['invoice_numbers'][0]}")])
        aid = s.execute(select(Allocation.id)).scalar_one()
    with factory.begin() as s:
        res = allocations.reverse_allocation(s, allocation_id=aid, reason="paid by a different customer in error", now=NOW, actor=CLERK)
        assert res["invoice_reopened"] is True
        a = s.get(Allocation, aid)
        assert a.state == "reversed" and a.reversal_reason.startswith("paid by")
        assert s.execute(text("SELECT COUNT(*) FROM ledger_entry WHERE ref_type = 'allocation' AND ref_id = :a"), {"a": aid}).scalar_one() == 2
        assert s.execute(select(Payment.state)).scalar_one() == "suspense"
        assert s.get(SuspenseItem, res["suspense_item_id"]).amount_minor == 79900
        assert_ledger_balances(s)
    assert ("payments.invoice_reopened", {"id": l["invoices"][0], "account_id": l["id"]}) in published


def test_suspense_is_worked_to_zero_by_a_split_over_two_accounts_and_a_refund(factory, book):  # type: ignore[no-untyped-def]
    t, l = book["thabo"], book["lerato"]
    with factory.begin() as s:
        _import(s, [("261120", 139800, "B1", "/NAME/MRS NKOSI/REMI/family"), ("261121", 25000, "B2", "/NAME/J SOAP/ACCT/4455667788/REMI/deposit")])
        items = {i.amount_minor: i.id for i in s.execute(select(SuspenseItem)).scalars()}
    with factory.begin() as s:
        ids = allocations.allocate_suspense(s, suspense_item_id=items[139800], reason="mother pays for both children (phoned in)", now=NOW, actor=CLERK,
                                            parts=[Part(account_id=t["id"], amount=Money.of("599.00", "ZAR"), invoice_id=t["invoices"][0]),
                                                   Part(account_id=l["id"], amount=Money.of("799.00", "ZAR"))])
        assert len(ids) == 2
        assert s.execute(text("SELECT invoice_id FROM payment_allocation WHERE account_id = :a"), {"a": l["id"]}).scalar_one() is None
        assert_ledger_balances(s)
    with factory.begin() as s:
        res = refunds.request_refund(s, suspense_item_id=items[25000], amount=Money.of("250.00", "ZAR"), reason="not our customer", now=NOW, actor=CLERK)
        assert res["state"] == "approved" and not res["needs_second_person"]
        assert s.execute(text("SELECT COUNT(*) FROM suspense_item WHERE closed_at IS NULL")).scalar_one() == 0
        assert {r[0] for r in s.execute(text("SELECT state FROM payment"))} == {"allocated", "refunded"}
        assert s.get(Refund, res["refund_id"]).payee_account == "4455667788"
        assert_ledger_balances(s)


def test_a_refund_of_credit_above_the_limit_needs_a_second_person(factory, book):  # type: ignore[no-untyped-def]
    l = book["lerato"]
    with factory.begin() as s:
        _import(s, [("261120", 279900, "B1", f"/REMI/{l['number']}")])
        assert refunds.available_credit_minor(s, account_id=l["id"]) == 200000
    with factory.begin() as s:
        res = refunds.request_refund(s, account_id=l["id"], amount=Money.of("2000.00", "ZAR"), reason="customer overpaid", payee_name="L Mokoena",
                                     payee_account="62000099999", now=NOW, actor=CLERK)
        assert res["state"] == "requested" and res["needs_second_person"]
    with factory() as s:
        before = counts(s)
        with pytest.raises(FourEyesRequired):
            refunds.approve_refund(s, refund_id=res["refund_id"], now=NOW, actor=CLERK)
        s.rollback()
        assert counts(s) == before and s.get(Refund, res["refund_id"]).state == "requested"
    with factory.begin() as s:
        refunds.approve_refund(s, refund_id=res["refund_id"], now=NOW, actor=MANAGER)
        assert s.execute(text("SELECT SUM(amount_minor) FROM ledger_entry WHERE account_id = :a"), {"a": l["id"]}).scalar_one() == 0
        assert_ledger_balances(s)


def test_reassigning_suspense_records_who_and_why(factory, book):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        _import(s, [("261120", 1000, "B1", "/REMI/??")])
        item = s.execute(select(SuspenseItem)).scalar_one()
        allocations.reassign_suspense(s, suspense_item_id=item.id, owner="debtorsmgr", reason="large unknown deposit", now=NOW, actor=CLERK)
        assert item.owner == "debtorsmgr"
        assert s.execute(text("SELECT reason FROM audit_event WHERE entity_type = 'suspense_item'")).scalar_one() == "large unknown deposit"


def test_staff_capture_of_a_cash_payment_allocates_to_the_invoice_named(factory, book):  # type: ignore[no-untyped-def]
    t = book["thabo"]
    with factory.begin() as s:
        res = allocations.capture_payment(s, account_id=t["id"], amount=Money.of("599.00", "ZAR"), method="cash", received_on=date(2026, 11, 23),
                                          invoice_id=t["invoices"][1], reference="receipt 77", now=NOW, actor=CLERK)
        assert res["state"] == "allocated"
        assert s.execute(select(Allocation.invoice_id)).scalar_one() == t["invoices"][1]
        assert_ledger_balances(s)


def test_debit_order_unpaid_reverses_the_allocation_reopens_the_invoice_and_charges_the_fee(factory, book, published):  # type: ignore[no-untyped-def]
    t = book["thabo"]
    head = "collection_ref,account_number,invoice_number,amount,action_date,status,reason_code\n"
    paid = (head + f"DO-1,{t['number']},{t['invoice_numbers'][0]},599.00,2026-11-20,paid,\n").encode()
    unpaid = (head + f"DO-1,{t['number']},{t['invoice_numbers'][0]},599.00,2026-11-22,unpaid,02\n").encode()
    with factory.begin() as s:
        res = imports.import_statement(s, data=paid, filename="do-results-1.csv", now=NOW, actor=CLERK)
        assert res["paid"] == 1 and res["allocated"] == 1
        assert_ledger_balances(s)
    with factory.begin() as s:
        res = imports.import_statement(s, data=unpaid, filename="do-unpaids-1.csv", now=NOW, actor=CLERK)
        assert res["unpaid"] == 1 and res["invoices_reopened"] == 1 and res["fees_charged"] == 1
        assert s.execute(select(Payment.state)).scalar_one() == "returned"
        fee = s.execute(text("SELECT amount_minor, description FROM pending_charge")).one()
        assert fee.amount_minor == 9900 and "02" in fee.description
        assert_ledger_balances(s)
    assert ("payments.invoice_reopened", {"id": t["invoices"][0], "account_id": t["id"]}) in published


def test_a_debit_order_result_delivered_twice_is_recorded_and_paid_once_with_its_payment(factory, book):  # type: ignore[no-untyped-def]
    t, lerato = book["thabo"], book["lerato"]
    head = "collection_ref,account_number,invoice_number,amount,action_date,status,reason_code\n"
    first = f"DO-1,{t['number']},{t['invoice_numbers'][0]},599.00,2026-11-20,paid,\n"
    with factory.begin() as s:
        res = imports.import_statement(s, data=(head + first).encode(), filename="do-results-1.csv", now=NOW, actor=CLERK)
        assert res["new_lines"] == 1 and res["paid"] == 1
    # the next file repeats DO-1, names DO-2 twice, and pays and returns DO-3 in the same file
    again = (head + first + f"DO-2,{t['number']},{t['invoice_numbers'][1]},599.00,2026-11-21,paid,\n"
             + f"DO-2,{t['number']},{t['invoice_numbers'][1]},599.00,2026-11-21,paid,\n"
             + f"DO-3,{lerato['number']},{lerato['invoice_numbers'][0]},799.00,2026-11-21,paid,\n"
             + f"DO-3,{lerato['number']},{lerato['invoice_numbers'][0]},799.00,2026-11-22,unpaid,02\n")
    with factory.begin() as s:
        res = imports.import_statement(s, data=again.encode(), filename="do-results-2.csv", now=NOW, actor=CLERK)
        assert (res["lines"], res["new_lines"], res["duplicates"], res["paid"], res["unpaid"]) == (5, 3, 2, 2, 1)
        rows = s.execute(text("""SELECT d.collection_ref, d.status, p.external_id, p.state FROM debit_order_result d
                                 LEFT JOIN payment p ON p.id = d.payment_id ORDER BY d.collection_ref, d.status""")).all()
        assert [tuple(r) for r in rows] == [("DO-1", "paid", "DO:DO-1", "allocated"), ("DO-2", "paid", "DO:DO-2", "allocated"),
                                            ("DO-3", "paid", "DO:DO-3", "returned"), ("DO-3", "unpaid", "DO:DO-3", "returned")]
        assert s.execute(text("SELECT COUNT(*) FROM payment")).scalar_one() == 3
        assert_ledger_balances(s)


def test_an_invoice_paid_in_two_imports_is_announced_settled_by_the_second_only(factory, book, published):  # type: ignore[no-untyped-def]
    lerato = book["lerato"]
    number = lerato["invoice_numbers"][0]
    with factory.begin() as s:
        res = _import(s, [("261120", 30000, "P1", f"/REMI/{number}")], name="st-1.sta")
        assert (res["allocated"], res["settled_invoices"]) == (1, 0)
    with factory.begin() as s:
        res = _import(s, [("261121", 49900, "P2", f"/REMI/{number}")], name="st-2.sta")
        assert (res["allocated"], res["settled_invoices"]) == (1, 1)
        assert s.execute(text("SELECT state FROM invoice WHERE id = :i"), {"i": lerato["invoices"][0]}).scalar_one() == "paid"
        assert_ledger_balances(s)
    assert [pl for name, pl in published if name == "payments.invoices_settled"] == [{"ids": [lerato["invoices"][0]], "account_ids": [lerato["id"]]}]


def test_two_clerks_refunding_the_same_credit_at_once_pay_it_out_once(engine, factory, book):  # type: ignore[no-untyped-def]
    if engine.dialect.name != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    import threading

    l = book["lerato"]
    with factory.begin() as s:
        _import(s, [("261120", 279900, "B1", f"/REMI/{l['number']}")])
    barrier, outcomes = threading.Barrier(2), []

    def go(who: str) -> None:
        with factory() as s:
            barrier.wait()
            try:
                refunds.request_refund(s, account_id=l["id"], amount=Money.of("2000.00", "ZAR"), reason="overpaid", payee_name="L Mokoena",
                                       payee_account="62000099999", now=NOW, actor=Actor(name=who, roles=CLERK.roles))
                s.commit()
                outcomes.append("requested")
            except refunds.RefundExceedsCredit:
                s.rollback()
                outcomes.append("refused")

    ts = [threading.Thread(target=go, args=(w,)) for w in ("dawie", "dineo")]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(outcomes) == ["refused", "requested"]
    with factory() as s:
        assert s.execute(select(Refund).where(Refund.account_id == l["id"])).scalars().all().__len__() == 1
        assert refunds.available_credit_minor(s, account_id=l["id"]) == 0
