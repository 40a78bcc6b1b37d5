"""Merging duplicate accounts: every account-pointing row moves (set-based, recorded), the ledger adds up, one audit
event and a memo on both, and an undo inside the window puts exactly the moved rows back; every refusal changes nothing."""

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, text

from opsline.billing import ledger
from opsline.billing.invoicing.samples import make_account, make_finalised_invoice
from opsline.cases import service as cases
from opsline.cases.schemas import CaseIn
from opsline.core.errors import InvalidInput
from opsline.core.events import AuditEvent
from opsline.core.money import Money
from opsline.customers import merge, service as customers
from opsline.customers.data_models import AccountMerge, CustomerSetting
from opsline.customers.models import Account, Memo
from opsline.customers.schemas import MemoIn
from opsline.payments.allocations import capture_payment


def _snapshot(s, *accounts):  # type: ignore[no-untyped-def]
    """Every account-pointing row's owner, per table (what a merge moves and an undo must restore)."""
    out = {}
    for t in merge.targets():
        rows = s.execute(text(f'SELECT "{t.pk}", "{t.column.name}" FROM "{t.table.name}" WHERE "{t.column.name}" IN ({", ".join(str(a) for a in accounts)})')).all() \
            if t.action == "move" else []
        out[t.key] = sorted((int(r[0]), int(r[1])) for r in rows)
    return out


def _pair(s, now, actor):  # type: ignore[no-untyped-def]
    a = make_account(s, now=now - timedelta(days=400), name="Thabo Nkosi")
    b = make_account(s, now=now - timedelta(days=100), name="Thabo Nkosi", email="t.nkosi@example.co.za")
    make_finalised_invoice(s, account_id=a, now=now - timedelta(days=40), period_start=date(2026, 10, 1), period_end=date(2026, 11, 1),
                           lines=[{"description": "Fibre 50/50", "amount_minor": 60000}])
    inv_b = make_finalised_invoice(s, account_id=b, now=now - timedelta(days=10), period_start=date(2026, 11, 1), period_end=date(2026, 12, 1),
                                   lines=[{"description": "Fibre 100/100", "amount_minor": 80000}])
    capture_payment(s, account_id=b, amount=Money.from_minor(30000, "ZAR"), method="eft", received_on=date(2026, 11, 20), now=now, actor=actor,
                    invoice_id=inv_b)
    cases.open_case(s, data=CaseIn(account_id=b, category_code="billing_account", subject="Two accounts for one line"), now=now, actor=actor)
    customers.add_memo(s, account_id=b, data=MemoIn(body="Called about the duplicate"), now=now, actor=actor)
    s.flush()
    return a, b


def test_merge_moves_invoices_payments_and_cases_and_undo_restores_both_exactly(session, now, actor):
    a, b = _pair(session, now, actor)
    bal_a, bal_b = ledger.balance_minor(session, account_id=a), ledger.balance_minor(session, account_id=b)
    before = _snapshot(session, a, b)
    m = merge.merge_accounts(session, survivor_id=a, merged_id=b, choices={"email": "merged"}, reason="same customer, signed up twice", now=now, actor=actor)
    session.flush()
    assert ledger.balance_minor(session, account_id=a) == bal_a + bal_b
    assert ledger.balance_minor(session, account_id=b) == 0
    after = _snapshot(session, a, b)
    assert all(owner == a for rows in after.values() for _, owner in rows)  # nothing account-pointing is left on b
    assert m.counts["invoice.account_id"] == 1 and m.counts["payment.account_id"] == 1 and m.counts["support_case.account_id"] == 1
    assert m.counts["invoice_line.account_id"] == 1 and m.counts["ledger_entry.account_id"] >= 2
    acc_a, acc_b = session.get(Account, a), session.get(Account, b)
    assert acc_b.status == "closed" and acc_a.email == "t.nkosi@example.co.za"
    assert merge.merges_of(session, account_id=b)["merged_into"]["survivor_account_id"] == a
    ev = session.execute(select(AuditEvent).where(AuditEvent.entity_type == "account_merge", AuditEvent.action == "merged")).scalars().all()
    assert len(ev) == 1 and ev[0].after["rows_moved"]["invoice.account_id"] == 1
    memos = session.execute(select(Memo.account_id).where(Memo.body.like("%merge%"))).scalars().all()
    assert sorted(memos) == sorted([a, b])
    assert session.execute(select(func.count()).select_from(Memo).where(Memo.account_id == b, Memo.body == "Called about the duplicate")).scalar_one() == 1

    back = merge.undo_merge(session, merge_id=m.id, reason="they are two people after all", now=now + timedelta(days=2), actor=actor)
    session.flush()
    assert sum(back.values()) == sum(m.counts.values())
    assert _snapshot(session, a, b) == before
    assert ledger.balance_minor(session, account_id=a) == bal_a and ledger.balance_minor(session, account_id=b) == bal_b
    acc_a, acc_b = session.get(Account, a), session.get(Account, b)
    assert acc_b.status == "active" and acc_a.email == "thabo@example.test"
    assert session.get(AccountMerge, m.id).state == "undone"


def _unchanged(session, a, b):  # type: ignore[no-untyped-def]
    return (_snapshot(session, a, b), session.execute(select(func.count()).select_from(AccountMerge)).scalar_one(),
            session.get(Account, a).status, session.get(Account, b).status)


def test_merging_an_account_with_itself_or_across_currencies_is_refused_and_nothing_changes(session, now, actor):
    a, b = _pair(session, now, actor)
    session.execute(text("UPDATE account SET currency = 'USD' WHERE id = :b"), {"b": b})
    before = _unchanged(session, a, b)
    with pytest.raises(InvalidInput, match="itself"):
        merge.merge_accounts(session, survivor_id=a, merged_id=a, choices={}, reason="x", now=now, actor=actor)
    with pytest.raises(merge.UnableToMerge, match="different currencies") as exc:
        merge.merge_accounts(session, survivor_id=a, merged_id=b, choices={}, reason="x", now=now, actor=actor)
    assert exc.value.status == 409
    assert _unchanged(session, a, b) == before
    assert merge.preview(session, survivor_id=a, merged_id=b)["can_merge"] is False


def test_different_legal_entities_and_a_merged_account_again_are_refused(session, now, actor):
    a, b = _pair(session, now, actor)
    c = make_account(session, now=now, name="Thabo Nkosi Holdings", kind="b2b")
    with pytest.raises(merge.UnableToMerge, match="different legal entities"):
        merge.merge_accounts(session, survivor_id=a, merged_id=c, choices={}, reason="x", now=now, actor=actor)
    merge.merge_accounts(session, survivor_id=a, merged_id=b, choices={}, reason="duplicate", now=now, actor=actor)
    session.flush()
    before = _unchanged(session, a, b)
    with pytest.raises(merge.UnableToMerge, match="already merged"):
        merge.merge_accounts(session, survivor_id=a, merged_id=b, choices={}, reason="again", now=now, actor=actor)
    with pytest.raises(InvalidInput, match="reason"):
        merge.merge_accounts(session, survivor_id=a, merged_id=c, choices={}, reason=" ", now=now, actor=actor)
    assert _unchanged(session, a, b) == before


def test_undo_after_the_window_or_after_a_payment_on_a_moved_invoice_is_refused(session, now, actor):
    session.get(CustomerSetting, "merge_undo_days").value = "3"  # the operator shortened the window
    a, b = _pair(session, now, actor)
    m = merge.merge_accounts(session, survivor_id=a, merged_id=b, choices={}, reason="duplicate", now=now, actor=actor)
    session.flush()
    with pytest.raises(merge.UnableToUndoMerge, match="undo window closed"):
        merge.undo_merge(session, merge_id=m.id, reason="too late", now=now + timedelta(days=3, minutes=1), actor=actor)
    inv_b = session.execute(text("SELECT row_id FROM account_merge_row WHERE merge_id = :m AND table_name = 'invoice'"), {"m": m.id}).scalar_one()
    capture_payment(session, account_id=a, amount=Money.from_minor(10000, "ZAR"), method="eft", received_on=date(2026, 11, 21), now=now, actor=actor,
                    invoice_id=inv_b)
    session.flush()
    snap = _snapshot(session, a, b)
    with pytest.raises(merge.UnableToUndoMerge, match="payment_allocation"):
        merge.undo_merge(session, merge_id=m.id, reason="separate", now=now + timedelta(days=1), actor=actor)
    assert _snapshot(session, a, b) == snap and session.get(AccountMerge, m.id).state == "done"


def test_a_unique_key_both_accounts_hold_refuses_the_merge_naming_the_table(session, now, actor):
    a, b = _pair(session, now, actor)
    make_finalised_invoice(session, account_id=b, now=now - timedelta(days=40), period_start=date(2026, 10, 1), period_end=date(2026, 11, 1),
                           lines=[{"description": "Fibre 50/50", "amount_minor": 60000}])
    session.flush()
    before = _unchanged(session, a, b)
    with pytest.raises(merge.UnableToMerge, match="invoice: both accounts have a row"):
        merge.merge_accounts(session, survivor_id=a, merged_id=b, choices={}, reason="duplicate", now=now, actor=actor)
    assert _unchanged(session, a, b) == before


def test_every_table_pointing_at_an_account_is_classified():
    by_action = {}
    for t in merge.targets():
        by_action.setdefault(t.action, set()).add(t.table.name)
    assert {"invoice", "invoice_line", "payment", "ledger_entry", "support_case", "product", "risk_flag"} <= by_action["move"]
    assert {"memo", "audit_event"} <= by_action["keep"]
    assert "refuse" not in by_action  # a new table without an integer id would show up here (and refuse merges naming it)


def test_a_one_per_account_row_moves_alone_but_two_open_write_offs_refuse_the_merge(session, now, actor):
    from opsline.debtors.models import WriteOff

    a, b = _pair(session, now, actor)
    session.add(WriteOff(account_id=b, amount_minor=1000, balance_minor=1000, currency="ZAR", state="proposed", reason="small", proposed_by="x", proposed_at=now))
    session.flush()
    pv = merge.preview(session, survivor_id=a, merged_id=b)
    assert pv["can_merge"] and {"table": "write_off", "column": "account_id", "rows": 1} in pv["moves"]
    assert any(k["table"] == "memo" for k in pv["kept"])
    session.add(WriteOff(account_id=a, amount_minor=2000, balance_minor=2000, currency="ZAR", state="proposed", reason="small", proposed_by="x", proposed_at=now))
    session.flush()
    with pytest.raises(merge.UnableToMerge, match="write_off: both accounts have one"):
        merge.merge_accounts(session, survivor_id=a, merged_id=b, choices={}, reason="duplicate", now=now, actor=actor)


def test_merging_the_parties_too_moves_every_account_of_the_merged_owner_and_undo_puts_them_back(session, now, actor):
    a, b = _pair(session, now, actor)
    other = make_account(session, now=now, name="Thabo Nkosi (mobile)")
    party_a, party_b = session.get(Account, a).party_id, session.get(Account, b).party_id
    session.execute(text("UPDATE account SET party_id = :p WHERE id = :o"), {"p": party_b, "o": other})  # the duplicate owner's second account
    session.expire_all()
    with pytest.raises(InvalidInput, match="same party"):
        merge.merge_accounts(session, survivor_id=b, merged_id=other, choices={}, reason="x", now=now, actor=actor, merge_parties=True)
    pv = merge.preview(session, survivor_id=a, merged_id=b)
    assert pv["parties"]["differ"] and {"table": "account", "column": "party_id", "rows": 2} in pv["parties"]["moves"]
    m = merge.merge_accounts(session, survivor_id=a, merged_id=b, choices={}, reason="one person, two sign-ups", now=now, actor=actor, merge_parties=True)
    session.flush()
    assert m.counts["account.party_id"] == 2
    assert {session.get(Account, x).party_id for x in (a, b, other)} == {party_a}
    assert session.get(Account, other).status == "active"  # only the merged account closes; the owner's other accounts carry on
    merge.undo_merge(session, merge_id=m.id, reason="two people after all", now=now, actor=actor)
    session.flush()
    assert (session.get(Account, b).party_id, session.get(Account, other).party_id, session.get(Account, a).party_id) == (party_b, party_b, party_a)
