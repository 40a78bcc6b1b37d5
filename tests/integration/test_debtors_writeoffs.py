"""Write-offs and prescription against a real database (SQLite and PostgreSQL): a clerk proposes, a second person (a
debtors manager) approves and the write-off is posted to the ledger oldest debt first with its VAT relief per rate;
every bad input is refused naming the field with nothing changed; bulk proposals for a filtered set approved in one
action; prescribed debt (3 years past due) flagged, left alone by the dunning run, reported and written off."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from debtors_helpers import TODAY, at, counts, debtor
from opsline.billing import ledger
from opsline.core.errors import NotFound, TransitionNotAllowed
from opsline.core.events import Actor
from opsline.core.lifecycle import ActionNotPermitted, FourEyesRequired, ReasonRequired
from opsline.core.money import Money
from opsline.debtors import prescription, runs, writeoffs
from opsline.debtors.exclusions import excluded_accounts
from opsline.debtors.models import DunningAction, WriteOff, WriteOffVat

CLERK = Actor(name="dawie", roles=frozenset({"debtors_clerk"}))
MANAGER = Actor(name="dineo", roles=frozenset({"debtors_manager"}))
MANAGER2 = Actor(name="sipho", roles=frozenset({"debtors_manager"}))
NOW = at(TODAY)


def zar(minor: int) -> Money:
    return Money.from_minor(minor, "ZAR")


def _all_counts(s) -> dict:  # type: ignore[no-untyped-def]
    c = counts(s)
    for t in ("write_off", "write_off_vat", "write_off_batch", "ledger_entry"):
        c[t] = s.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
    return c


def _vat15(minor: int) -> int:
    return writeoffs.relief(minor, Decimal("0.15"))


def test_relief_is_the_vat_fraction_rounded_half_up():
    assert writeoffs.relief(59900, Decimal("0.15")) == 7813  # 7813.04
    assert writeoffs.relief(115, Decimal("0.15")) == 15
    assert writeoffs.relief(23, Decimal("0.15")) == 3  # 3.0 exactly
    assert writeoffs.relief(1, Decimal("0.15")) == 0  # 0.13
    assert writeoffs.relief(50000, Decimal("0")) == 0


def test_a_clerk_proposes_and_a_manager_approves_and_posts_the_write_off(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Thabo Nkosi", amount=59900, overdue_days=150)
    with factory.begin() as s:
        wo = writeoffs.propose(s, account_id=a["id"], amount=None, reason="customer deceased, estate insolvent", today=TODAY, now=NOW, actor=CLERK)
        wid = wo.id
        assert (wo.state, wo.amount_minor, wo.balance_minor, wo.vat_relief_minor) == ("proposed", 59900, 59900, _vat15(59900))
    with factory.begin() as s:
        posted = writeoffs.approve(s, write_off_id=wid, now=NOW + timedelta(hours=1), actor=MANAGER)
        assert posted.state == "posted" and posted.decided_by == "dineo" and posted.ledger_entry_id is not None
    with factory() as s:
        assert ledger.balance_minor(s, account_id=a["id"]) == 0
        entry = s.execute(text("SELECT kind, amount_minor, ref_type, ref_id FROM ledger_entry WHERE id = :i"), {"i": posted.ledger_entry_id}).one()
        assert tuple(entry) == ("write_off", -59900, "write_off", wid)
        vat = s.execute(select(WriteOffVat).where(WriteOffVat.write_off_id == wid)).scalars().all()
        assert [(v.tax_rate_code, v.gross_minor, v.vat_relief_minor) for v in vat] == [("VAT15", 59900, 7813)]
        audit = [tuple(r) for r in s.execute(text("SELECT entity_type, action FROM audit_event WHERE account_id = :a AND entity_type = 'write_off' ORDER BY id"),
                                             {"a": a["id"]})]
        assert audit == [("write_off", "proposed"), ("write_off", "approve"), ("write_off", "post")]
        memos = list(s.execute(text("SELECT body FROM memo WHERE account_id = :a AND category = 'debtors' ORDER BY id"), {"a": a["id"]}).scalars())
        assert len(memos) == 2 and "proposed by dawie" in memos[0] and "approved by dineo" in memos[1] and "ZAR 78.13" in memos[1]
        detail = writeoffs.get_write_off(s, write_off_id=wid)
        assert detail["vat"][0]["vat_relief_minor"] == 7813
        assert writeoffs.vat_relief_rows(s)[0]["ref"] == f"WO-{wid}"


def test_a_partial_write_off_takes_the_oldest_debt_first_and_shows_relief_per_vat_rate(factory):  # type: ignore[no-untyped-def]
    from opsline.billing.invoicing.samples import make_finalised_invoice

    with factory.begin() as s:
        a = debtor(s, name="Lerato Dlamini", amount=11500, overdue_days=200)  # VAT15, the oldest
        # a newer zero-rated invoice of R 300
        make_finalised_invoice(s, account_id=a["id"], now=at(TODAY - timedelta(days=100)), period_start=date(2026, 7, 1), period_end=date(2026, 8, 1),
                               lines=[{"description": "Export service", "amount_minor": 30000, "tax_rate_code": "ZERO"}])
        # R 50 paid: it settled the oldest debt first
        ledger.post(s, account_id=a["id"], kind="payment", ref_type="payment", ref_id=1, amount=zar(-5000), now=at(TODAY - timedelta(days=50)))
    with factory.begin() as s:
        assert ledger.balance_minor(s, account_id=a["id"]) == 36500
        # R 100 of the balance: 65.00 left of the VAT15 invoice first, then 35.00 of the zero-rated one
        wo = writeoffs.propose(s, account_id=a["id"], amount=zar(10000), reason="goodwill settlement", today=TODAY, now=NOW, actor=CLERK)
        vat = {v.tax_rate_code: (v.gross_minor, v.vat_relief_minor) for v in s.execute(select(WriteOffVat).where(WriteOffVat.write_off_id == wo.id)).scalars()}
        assert vat == {"VAT15": (6500, _vat15(6500)), "ZERO": (3500, 0)}
        assert wo.vat_relief_minor == _vat15(6500) == 848
        preview = writeoffs.preview(s, account_id=a["id"], amount_minor=3000)
        assert [(p["tax_rate_code"], p["gross_minor"]) for p in preview] == [("VAT15", 3000)]
    with factory.begin() as s:
        writeoffs.approve(s, write_off_id=wo.id, now=NOW, actor=MANAGER)
    with factory() as s:
        assert ledger.balance_minor(s, account_id=a["id"]) == 26500


@pytest.mark.parametrize("amount,reason,field", [
    (zar(60000), "uncollectable", "amount"),  # more than the balance of R 599
    (zar(0), "uncollectable", "amount"),
    (zar(-100), "uncollectable", "amount"),
    (Money.of("10", "USD"), "uncollectable", "amount"),
    (zar(100), "   ", "reason"),
])
def test_bad_proposals_are_refused_naming_the_field_and_change_nothing(factory, amount, reason, field):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Sizwe Mokoena", amount=59900, overdue_days=150)
    with factory() as s:
        before = _all_counts(s)
        with pytest.raises(writeoffs.UnableToWriteOff) as e:
            writeoffs.propose(s, account_id=a["id"], amount=amount, reason=reason, today=TODAY, now=NOW, actor=CLERK)
        assert e.value.field == field
        s.rollback()
        assert _all_counts(s) == before


def test_an_account_owing_nothing_or_with_a_write_off_waiting_is_refused(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Naledi Khumalo", amount=59900, overdue_days=150)
        b = debtor(s, name="Paid Up", amount=10000, overdue_days=150)
        ledger.post(s, account_id=b["id"], kind="payment", ref_type="payment", ref_id=2, amount=zar(-10000), now=NOW)
    with factory.begin() as s:
        writeoffs.propose(s, account_id=a["id"], amount=zar(1000), reason="small balance", today=TODAY, now=NOW, actor=CLERK)
    with factory() as s:
        before = _all_counts(s)
        with pytest.raises(writeoffs.UnableToWriteOff) as e:
            writeoffs.propose(s, account_id=a["id"], amount=zar(1000), reason="again", today=TODAY, now=NOW, actor=CLERK)
        assert e.value.field == "account" and "already has write-off" in e.value.detail
        s.rollback()
        with pytest.raises(writeoffs.UnableToWriteOff) as e:
            writeoffs.propose(s, account_id=b["id"], amount=None, reason="nothing", today=TODAY, now=NOW, actor=CLERK)
        assert e.value.field == "amount" and "owes nothing" in e.value.detail
        s.rollback()
        with pytest.raises(NotFound):
            writeoffs.propose(s, account_id=987654, amount=None, reason="x", today=TODAY, now=NOW, actor=CLERK)
        s.rollback()
        assert _all_counts(s) == before


def test_approval_needs_a_manager_who_is_not_the_proposer_and_changes_nothing_otherwise(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Own Goal", amount=59900, overdue_days=150)
        wid = writeoffs.propose(s, account_id=a["id"], amount=None, reason="uncollectable", today=TODAY, now=NOW, actor=MANAGER).id
    with factory() as s:
        before = _all_counts(s)
        with pytest.raises(FourEyesRequired):
            writeoffs.approve(s, write_off_id=wid, now=NOW, actor=MANAGER)
        s.rollback()
        with pytest.raises(ActionNotPermitted):
            writeoffs.approve(s, write_off_id=wid, now=NOW, actor=CLERK)
        s.rollback()
        with pytest.raises(ReasonRequired):
            writeoffs.decide(s, write_off_id=wid, action="reject", reason="", now=NOW, actor=MANAGER2)
        s.rollback()
        with pytest.raises(ActionNotPermitted):
            writeoffs.decide(s, write_off_id=wid, action="reject", reason="no", now=NOW, actor=CLERK)
        s.rollback()
        assert _all_counts(s) == before
        assert s.get(WriteOff, wid).state == "proposed"
    with factory.begin() as s:
        writeoffs.decide(s, write_off_id=wid, action="reject", reason="customer is paying, see memo", now=NOW, actor=MANAGER2)
    with factory() as s:
        with pytest.raises(TransitionNotAllowed):
            writeoffs.approve(s, write_off_id=wid, now=NOW, actor=MANAGER2)
        assert s.get(WriteOff, wid).state == "rejected" and ledger.balance_minor(s, account_id=a["id"]) == 59900


def test_a_payment_before_approval_that_leaves_less_than_the_amount_blocks_posting(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Late Payer", amount=59900, overdue_days=150)
        wid = writeoffs.propose(s, account_id=a["id"], amount=None, reason="uncollectable", today=TODAY, now=NOW, actor=CLERK).id
        ledger.post(s, account_id=a["id"], kind="payment", ref_type="payment", ref_id=3, amount=zar(-20000), now=NOW)
    with factory() as s:
        before = _all_counts(s)
        with pytest.raises(writeoffs.UnableToWriteOff) as e:
            writeoffs.approve(s, write_off_id=wid, now=NOW, actor=MANAGER)
        assert e.value.field == "amount"
        s.rollback()
        assert _all_counts(s) == before and s.get(WriteOff, wid).state == "proposed"
    with factory.begin() as s:  # the proposer withdraws it
        writeoffs.decide(s, write_off_id=wid, action="cancel", reason="paid in part", now=NOW, actor=CLERK)
        assert s.get(WriteOff, wid).state == "cancelled"


def _closed(s, a) -> None:  # type: ignore[no-untyped-def]
    s.execute(text("UPDATE account SET status = 'closed' WHERE id = :a"), {"a": a["id"]})


def test_bulk_write_off_of_small_old_closed_balances_is_counted_proposed_and_approved_in_one_action(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        small = [debtor(s, name=f"Closed Small{k}", amount=5000 + k * 1000, overdue_days=200) for k in range(3)]
        for a in small:
            _closed(s, a)
        big = debtor(s, name="Closed Big", amount=500000, overdue_days=200)
        _closed(s, big)
        recent = debtor(s, name="Closed Recent", amount=5000, overdue_days=10)
        _closed(s, recent)
        active = debtor(s, name="Still Active", amount=5000, overdue_days=200)
    crit = writeoffs.parse_criteria(status="closed", max_balance="100", min_days="90", prescribed_only=False, currency="ZAR")
    with factory() as s:
        before = _all_counts(s)
        dry = writeoffs.dry_run(s, criteria=crit, today=TODAY, now=NOW)
        assert (dry["count"], dry["amount_minor"]) == (3, 5000 + 6000 + 7000)
        assert {r["account_id"] for r in dry["sample"]} == {a["id"] for a in small}
        s.rollback()
        assert _all_counts(s) == before  # the dry run wrote nothing
    with factory.begin() as s:
        batch = writeoffs.propose_batch(s, criteria=crit, reason="closed accounts under R 100, older than 90 days", today=TODAY, now=NOW, actor=CLERK)
        bid = batch.id
        assert (batch.accounts, batch.amount_minor, batch.vat_relief_minor) == (3, 18000, sum(_vat15(m) for m in (5000, 6000, 7000)))
        # one of them pays R 20 before the manager gets to it
        ledger.post(s, account_id=small[0]["id"], kind="payment", ref_type="payment", ref_id=4, amount=zar(-2000), now=NOW)
    with factory() as s:
        with pytest.raises(FourEyesRequired):
            writeoffs.approve_batch(s, batch_id=bid, now=NOW, actor=Actor(name="dawie", roles=frozenset({"debtors_manager"})))
        s.rollback()
        with pytest.raises(ActionNotPermitted):
            writeoffs.approve_batch(s, batch_id=bid, now=NOW, actor=CLERK)
        s.rollback()
        one = s.execute(select(WriteOff.id).where(WriteOff.batch_id == bid).limit(1)).scalar_one()
        with pytest.raises(TransitionNotAllowed):  # a batch is decided as one
            writeoffs.approve(s, write_off_id=one, now=NOW, actor=MANAGER)
        s.rollback()
        assert s.execute(text("SELECT COUNT(*) FROM write_off WHERE state = 'proposed'")).scalar_one() == 3
    with factory.begin() as s:
        res = writeoffs.approve_batch(s, batch_id=bid, now=NOW, actor=MANAGER)
        assert (res["posted"], res["posted_minor"], res["withdrawn"]) == (2, 13000, 1)
    with factory() as s:
        states = dict(s.execute(text("SELECT account_id, state FROM write_off WHERE batch_id = :b"), {"b": bid}).all())
        assert states == {small[0]["id"]: "cancelled", small[1]["id"]: "posted", small[2]["id"]: "posted"}
        assert ledger.balance_minor(s, account_id=small[1]["id"]) == 0 and ledger.balance_minor(s, account_id=small[0]["id"]) == 3000
        for acc in (big, recent, active):
            assert ledger.balance_minor(s, account_id=acc["id"]) > 0
        entries = s.execute(text("SELECT COUNT(*), SUM(amount_minor) FROM ledger_entry WHERE kind = 'write_off'")).one()
        assert tuple(entries) == (2, -13000)
        assert s.execute(text("SELECT state FROM write_off_batch WHERE id = :b"), {"b": bid}).scalar_one() == "posted"
        linked = s.execute(text("SELECT COUNT(*) FROM write_off w JOIN ledger_entry le ON le.id = w.ledger_entry_id WHERE w.batch_id = :b"), {"b": bid}).scalar_one()
        assert linked == 2
        acts = [tuple(r) for r in s.execute(text("SELECT action, COUNT(*) FROM audit_event WHERE entity_type = 'write_off' GROUP BY action ORDER BY action"))]
        assert acts == [("approve_in_batch", 2), ("cancel", 1), ("post", 2), ("proposed", 3)]
        memo = s.execute(text("SELECT body FROM memo WHERE account_id = :a ORDER BY id DESC LIMIT 1"), {"a": small[1]["id"]}).scalar_one()
        assert "posted" in memo and "ZAR 60.00" in memo


def test_bulk_bad_criteria_and_an_empty_selection_are_refused(factory):  # type: ignore[no-untyped-def]
    for kw, field in [({"status": "gone"}, "status"), ({"max_balance": "abc"}, "max_balance"), ({"max_balance": "-5"}, "max_balance"),
                      ({"min_days": "ten"}, "min_days")]:
        args = {"status": "closed", "max_balance": "", "min_days": "0", "prescribed_only": False, "currency": "ZAR"} | kw
        with pytest.raises(writeoffs.UnableToWriteOff) as e:
            writeoffs.parse_criteria(**args)
        assert e.value.field == field
    crit = writeoffs.parse_criteria(status="closed", max_balance="", min_days="0", prescribed_only=False, currency="ZAR")
    with factory() as s:
        before = _all_counts(s)
        with pytest.raises(writeoffs.UnableToWriteOff) as e:
            writeoffs.propose_batch(s, criteria=crit, reason="tidy up", today=TODAY, now=NOW, actor=CLERK)
        assert e.value.field == "criteria"
        with pytest.raises(writeoffs.UnableToWriteOff) as e:
            writeoffs.propose_batch(s, criteria=crit, reason="", today=TODAY, now=NOW, actor=CLERK)
        assert e.value.field == "reason"
        s.rollback()
        assert _all_counts(s) == before


def test_a_batch_rejected_by_the_manager_rejects_its_write_offs(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Closed One", amount=5000, overdue_days=200)
        _closed(s, a)
    crit = writeoffs.parse_criteria(status="closed", max_balance="", min_days="0", prescribed_only=False, currency="ZAR")
    with factory.begin() as s:
        bid = writeoffs.propose_batch(s, criteria=crit, reason="closed", today=TODAY, now=NOW, actor=CLERK).id
    with factory.begin() as s:
        writeoffs.decide_batch(s, batch_id=bid, action="reject", reason="collect through the agency instead", now=NOW, actor=MANAGER)
    with factory() as s:
        assert s.execute(text("SELECT state FROM write_off WHERE batch_id = :b"), {"b": bid}).scalar_one() == "rejected"
        assert ledger.balance_minor(s, account_id=a["id"]) == 5000


# --- prescription ---------------------------------------------------------------------------------------------------------

def test_the_cut_off_is_three_years_back_and_29_february_prescribes_on_1_march():
    assert prescription.cutoff(date(2026, 11, 23)) == date(2023, 11, 23)
    assert prescription.cutoff(date(2027, 2, 28)) == date(2024, 2, 28)  # debt due 29 Feb 2024 not yet prescribed
    assert prescription.cutoff(date(2027, 3, 1)) == date(2024, 3, 1)
    assert prescription.cutoff(date(2028, 2, 29)) == date(2025, 2, 28)


def test_prescribed_debt_is_flagged_never_dunned_reported_and_written_off(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        old = debtor(s, name="Old Debt", amount=40000, overdue_days=3 * 365 + 10)
        edge = debtor(s, name="Not Yet", amount=30000, overdue_days=3 * 365 - 5)
        fresh = debtor(s, name="Fresh Debt", amount=20000, overdue_days=30)
    with factory() as s:
        ex = excluded_accounts(s, run_date=TODAY)
        assert ex.get(old["id"]) == "prescribed" and edge["id"] not in ex and fresh["id"] not in ex
        rep = prescription.prescribed(s, today=TODAY, now=NOW)
        assert [r["account_id"] for r in rep["rows"]] == [old["id"]]
        assert rep["totals"] == [{"currency": "ZAR", "accounts": 1, "prescribed_minor": 40000, "balance_minor": 40000}]
        assert rep["rows"][0]["years_past_due"] >= 3
    with factory.begin() as s:
        res = runs.run_dunning(s, run_date=TODAY, today=TODAY, now=NOW, actor=CLERK)
        assert {e["code"]: e["count"] for e in res["excluded"]}.get("prescribed") == 1
    with factory() as s:
        acted = set(s.execute(select(DunningAction.account_id)).scalars())
        assert old["id"] not in acted and fresh["id"] in acted and edge["id"] in acted
    with factory.begin() as s:
        wo = writeoffs.propose(s, account_id=old["id"], amount=None, reason="prescribed (Prescription Act)", today=TODAY, now=NOW, actor=CLERK)
        assert wo.prescribed_minor == 40000
    with factory.begin() as s:
        writeoffs.approve(s, write_off_id=wo.id, now=NOW, actor=MANAGER)
    with factory() as s:
        assert prescription.prescribed(s, today=TODAY, now=NOW)["rows"] == []
        assert old["id"] not in excluded_accounts(s, run_date=TODAY)


def test_bulk_write_off_of_the_prescribed_part_only(factory):  # type: ignore[no-untyped-def]
    from opsline.billing.invoicing.samples import make_finalised_invoice

    with factory.begin() as s:
        a = debtor(s, name="Half Old", amount=40000, overdue_days=3 * 365 + 40)
        make_finalised_invoice(s, account_id=a["id"], now=at(TODAY - timedelta(days=60)), period_start=date(2026, 9, 1), period_end=date(2026, 10, 1),
                               lines=[{"description": "Fibre", "amount_minor": 10000}])
    crit = writeoffs.parse_criteria(status="", max_balance="", min_days="0", prescribed_only=True, currency="ZAR")
    with factory.begin() as s:
        assert writeoffs.dry_run(s, criteria=crit, today=TODAY, now=NOW)["amount_minor"] == 40000
        bid = writeoffs.propose_batch(s, criteria=crit, reason="prescribed debt", today=TODAY, now=NOW, actor=CLERK).id
    with factory.begin() as s:
        writeoffs.approve_batch(s, batch_id=bid, now=NOW, actor=MANAGER)
    with factory() as s:
        assert ledger.balance_minor(s, account_id=a["id"]) == 11500
        assert prescription.prescribed(s, today=TODAY, now=NOW)["count"] == 0


def test_a_dunning_write_off_proposal_opens_a_write_off_and_is_marked_done(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Long Overdue", amount=59900, overdue_days=130)
        pol = s.execute(text("SELECT id FROM dunning_policy WHERE code = 'default'")).scalar_one()
        step = s.execute(text("SELECT id FROM dunning_step WHERE policy_id = :p AND position = 7"), {"p": pol}).scalar_one()
        s.execute(text("INSERT INTO dunning_account (account_id, policy_id, position, step_id, last_step_on, next_step_from) VALUES (:a, :p, 7, :s, :d, :d)"),
                  {"a": a["id"], "p": pol, "s": step, "d": TODAY - timedelta(days=40)})
    with factory.begin() as s:
        runs.run_dunning(s, run_date=TODAY, today=TODAY, now=NOW, actor=CLERK)
    with factory.begin() as s:
        act = s.execute(select(DunningAction).where(DunningAction.account_id == a["id"])).scalar_one()
        assert (act.action, act.state) == ("write_off_proposal", "proposed")
        other = debtor(s, name="Other", amount=1000, overdue_days=130)
        with pytest.raises(writeoffs.UnableToWriteOff) as e:
            writeoffs.propose(s, account_id=other["id"], amount=None, reason="x", today=TODAY, now=NOW, actor=CLERK, dunning_action_id=act.id)
        assert e.value.field == "dunning_action_id"
    with factory.begin() as s:
        wo = writeoffs.propose(s, account_id=a["id"], amount=None, reason="dunning ran out of steps", today=TODAY, now=NOW, actor=CLERK,
                               dunning_action_id=act.id)
        assert wo.dunning_action_id == act.id
        assert s.get(DunningAction, act.id).state == "accepted"


def test_the_manager_sees_only_others_proposals_waiting(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="One", amount=10000, overdue_days=130)
        b = debtor(s, name="Two", amount=20000, overdue_days=130)
        writeoffs.propose(s, account_id=a["id"], amount=None, reason="x", today=TODAY, now=NOW, actor=CLERK)
        writeoffs.propose(s, account_id=b["id"], amount=None, reason="y", today=TODAY, now=NOW, actor=MANAGER)
    with factory() as s:
        assert writeoffs.waiting_for(s, actor_name="dineo") == {"count": 1, "amount_minor": 10000, "singles": 1, "batches": 0}
        listed = writeoffs.list_write_offs(s)
        assert [r["state"] for r in listed["rows"]] == ["proposed", "proposed"] and listed["rows"][0]["amount_minor"] == 20000
