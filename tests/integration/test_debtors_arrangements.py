"""Arrangements against a real database (SQLite and PostgreSQL): promises and pay-off plans, approval limits by role and
four eyes, the run's review (a missed date or short payment breaks, payment in full keeps), dunning resuming from where the
account stood, the under_arrangement exclusion, reconnection when the arrears are cleared, and every bad input refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from debtors_helpers import TODAY, at, debtor
from opsline.core import domain_events
from opsline.core.events import Actor
from opsline.core.lifecycle import FourEyesRequired
from opsline.customers import service as customers
from opsline.customers.models import Account
from opsline.debtors import arrangements as arr
from opsline.debtors import reconnect, runs
from opsline.debtors.arrangements import ArrangementNotAllowed, InstalmentIn, UnableToArrange
from opsline.debtors.exclusions import excluded_accounts
from opsline.debtors.models import Arrangement, DunningAccount, DunningAction, DunningPolicy, DunningStep

CLERK = Actor(name="dawie", roles=frozenset({"debtors_clerk"}))
CLERK2 = Actor(name="thandi", roles=frozenset({"debtors_clerk"}))
MANAGER = Actor(name="dineo", roles=frozenset({"debtors_manager"}))


def _pay(s, account_id, amount, day):  # type: ignore[no-untyped-def]
    s.execute(text("INSERT INTO ledger_entry (account_id, kind, ref_type, ref_id, amount_minor, currency, posted_at, description) "
                   "VALUES (:a, 'payment', 'payment', 7, :m, 'ZAR', :t, 'EFT')"), {"a": account_id, "m": -amount, "t": at(day)})


def _promise(s, a, *, amount=59900, due=TODAY + timedelta(days=7), actor=CLERK, day=TODAY):  # type: ignore[no-untyped-def]
    return arr.propose(s, account_id=a["id"], kind="promise", instalments=[InstalmentIn(due, amount)], today=day, now=at(day), actor=actor)


def _counts(s):  # type: ignore[no-untyped-def]
    return {t: s.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in ("arrangement", "arrangement_instalment", "memo", "audit_event", "job")}


def test_a_promise_within_the_clerks_limit_is_active_at_once_and_keeps_dunning_away(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Thabo Promise", amount=59900, overdue_days=22)
        g = _promise(s, a)
        assert (g.state, g.needs_approval, g.decided_by, g.debt_minor) == ("active", False, "dawie", 59900)
    with factory() as s:
        assert excluded_accounts(s, run_date=TODAY)[a["id"]] == "under_arrangement"
        assert s.execute(text("SELECT COUNT(*) FROM memo WHERE account_id = :a AND body LIKE 'Promise to pay ARR-%'"), {"a": a["id"]}).scalar_one() == 1
    with factory.begin() as s:
        res = runs.run_dunning(s, run_date=TODAY, today=TODAY, now=at(TODAY), actor=MANAGER)
    assert res["actions"] == 0 and {e["code"]: e["count"] for e in res["excluded"]} == {"under_arrangement": 1}


def test_above_the_clerks_limit_it_waits_for_a_manager_and_never_for_the_proposer(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Big Debtor", amount=900000, overdue_days=40)
        g = arr.propose(s, account_id=a["id"], kind="plan", today=TODAY, now=at(TODAY), actor=CLERK,
                        instalments=[InstalmentIn(TODAY + timedelta(days=10), 300000), InstalmentIn(TODAY + timedelta(days=40), 600000)])
        gid = g.id
        assert (g.state, g.needs_approval) == ("proposed", True)
    with factory() as s:
        assert a["id"] not in excluded_accounts(s, run_date=TODAY)  # only an active arrangement keeps dunning away
        before = _counts(s)
    for who, exc, field in ((CLERK, FourEyesRequired, "actor"), (CLERK2, ArrangementNotAllowed, "amount")):
        with pytest.raises(exc) as e, factory.begin() as s:
            arr.approve(s, arrangement_id=gid, now=at(TODAY), actor=who)
        assert e.value.field == field
        with factory() as s:
            assert _counts(s) == before and s.get(Arrangement, gid).state == "proposed"
    mgr_proposed = None
    with factory.begin() as s:
        assert arr.approve(s, arrangement_id=gid, now=at(TODAY), actor=MANAGER) == ["cancel"]
        assert s.get(Arrangement, gid).decided_by == "dineo"
        b = debtor(s, name="Manager Own", amount=900000, overdue_days=40)
        mgr_proposed = _promise(s, b, amount=900000, actor=MANAGER)  # within a manager's (unlimited) limit
        assert mgr_proposed.state == "active"
    with factory() as s:
        assert s.execute(text("SELECT COUNT(*) FROM audit_event WHERE entity_type = 'arrangement' AND entity_id = :i AND action = 'approve'"),
                         {"i": str(gid)}).scalar_one() == 1


@pytest.mark.parametrize("kind,instalments,amount,field", [
    ("plan", [(5, 20000), (20, 20000)], None, "instalments"),                          # 400.00 is not the 599.00 overdue
    ("promise", [(-1, 59900)], None, "due_date"),                                      # yesterday
    ("promise", [(5, 0)], None, "amount"),                                             # zero
    ("plan", [(5, 69900), (20, -10000)], None, "instalments[2].amount"),               # negative
    ("plan", [(20, 29900), (5, 30000)], None, "instalments[2].due_date"),              # out of order
    ("promise", [(5, 30000)], 40000, "amount"),                                        # not the stated amount
    ("promise", [(5, 30000)], -5, "amount"),                                           # stated amount negative
    ("promise", [(None, 59900)], None, "due_date"),                                    # no date
    ("loan", [(5, 59900)], None, "kind"),
])
def test_bad_arrangements_are_refused_naming_the_field_and_nothing_changes(factory, kind, instalments, amount, field):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Bad Input", amount=59900, overdue_days=22)
    with factory() as s:
        before = _counts(s)
    with pytest.raises(UnableToArrange) as e, factory.begin() as s:
        arr.propose(s, account_id=a["id"], kind=kind, amount_minor=amount, today=TODAY, now=at(TODAY), actor=CLERK,
                    instalments=[InstalmentIn(None if d is None else TODAY + timedelta(days=d), m) for d, m in instalments])
    assert e.value.field == field
    with factory() as s:
        assert _counts(s) == before


def test_a_second_open_arrangement_and_one_for_an_account_with_nothing_overdue_are_refused(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Twice Over", amount=59900, overdue_days=22)
        paid = debtor(s, name="All Paid", amount=59900, overdue_days=22)
        _pay(s, paid["id"], 59900, TODAY - timedelta(days=1))
        _promise(s, a)
    for acc in (a, paid):
        with pytest.raises(UnableToArrange) as e, factory.begin() as s:
            _promise(s, acc)
        assert e.value.field == "account"


def _at_step(s, a, pos, *, next_from):  # type: ignore[no-untyped-def]
    pol = s.execute(select(DunningPolicy.id).where(DunningPolicy.code == "default")).scalar_one()
    step = s.execute(select(DunningStep.id).where(DunningStep.policy_id == pol, DunningStep.position == pos)).scalar_one()
    s.add(DunningAccount(account_id=a["id"], policy_id=pol, position=pos, step_id=step, last_step_on=TODAY - timedelta(days=10), next_step_from=next_from))


def test_a_missed_date_breaks_the_promise_and_dunning_resumes_from_the_next_step(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Missed Date", amount=59900, overdue_days=30)
        _at_step(s, a, 2, next_from=TODAY - timedelta(days=3))
        gid = _promise(s, a, due=TODAY + timedelta(days=2)).id
    with factory.begin() as s:  # within the promise: nothing happens
        res = runs.run_dunning(s, run_date=TODAY + timedelta(days=2), today=TODAY + timedelta(days=2), now=at(TODAY + timedelta(days=2)), actor=MANAGER)
        assert res["actions"] == 0 and res["arrangements"] == {"broken": 0, "kept": 0}
    day = TODAY + timedelta(days=3)
    with factory.begin() as s:
        res = runs.run_dunning(s, run_date=day, today=day, now=at(day), actor=MANAGER)
    assert res["arrangements"] == {"broken": 1, "kept": 0}
    with factory() as s:
        g = s.get(Arrangement, gid)
        assert (g.state, g.closed_on) == ("broken", day)
        assert [x.position for x in s.execute(select(DunningAction).where(DunningAction.account_id == a["id"])).scalars()] == [3]  # not 1
        assert s.execute(text("SELECT COUNT(*) FROM memo WHERE account_id = :a AND body LIKE 'Arrangement ARR-% broken%'"), {"a": a["id"]}).scalar_one() == 1
        assert s.execute(text("SELECT COUNT(*) FROM audit_event WHERE entity_type = 'arrangement' AND action = 'break' AND account_id = :a"),
                         {"a": a["id"]}).scalar_one() == 1


def test_a_short_payment_by_an_instalment_date_breaks_the_plan_while_the_notice_period_still_holds(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Short Payer", amount=60000, overdue_days=30)
        _at_step(s, a, 2, next_from=TODAY + timedelta(days=10))  # the last step's notice period is still running
        gid = arr.propose(s, account_id=a["id"], kind="plan", today=TODAY, now=at(TODAY), actor=CLERK,
                          instalments=[InstalmentIn(TODAY + timedelta(days=1), 30000), InstalmentIn(TODAY + timedelta(days=30), 30000)]).id
        _pay(s, a["id"], 20000, TODAY + timedelta(days=1))
    day = TODAY + timedelta(days=2)
    with factory.begin() as s:
        res = runs.run_dunning(s, run_date=day, today=day, now=at(day), actor=MANAGER)
    assert res["arrangements"]["broken"] == 1 and res["actions"] == 0  # broken, but the next step waits for its notice period
    with factory() as s:
        assert s.get(Arrangement, gid).state == "broken"
        assert s.get(DunningAccount, a["id"]).position == 2


def test_an_instalment_paid_on_time_keeps_the_plan_going_and_payment_in_full_keeps_it(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Good Payer", amount=60000, overdue_days=30)
        gid = arr.propose(s, account_id=a["id"], kind="plan", today=TODAY, now=at(TODAY), actor=CLERK,
                          instalments=[InstalmentIn(TODAY + timedelta(days=1), 30000), InstalmentIn(TODAY + timedelta(days=8), 30000)]).id
        _pay(s, a["id"], 30000, TODAY + timedelta(days=1))
    day = TODAY + timedelta(days=3)
    with factory.begin() as s:
        assert runs.run_dunning(s, run_date=day, today=day, now=at(day), actor=MANAGER)["arrangements"] == {"broken": 0, "kept": 0}
    with factory() as s:
        d = arr.detail(s, arrangement_id=gid, now=at(day))
        assert [i["met"] for i in d["instalments"]] == [True, False] and d["paid"] == "R 300.00" or d["paid"].endswith("300.00")
    with factory.begin() as s:
        _pay(s, a["id"], 30000, TODAY + timedelta(days=7))
    day = TODAY + timedelta(days=9)
    with factory.begin() as s:
        assert runs.run_dunning(s, run_date=day, today=day, now=at(day), actor=MANAGER)["arrangements"] == {"broken": 0, "kept": 1}
    with factory() as s:
        assert s.get(Arrangement, gid).state == "kept"


def test_cancelling_needs_a_reason_and_lets_dunning_resume(factory):  # type: ignore[no-untyped-def]
    from opsline.core.lifecycle import ReasonRequired

    with factory.begin() as s:
        a = debtor(s, name="Cancel Me", amount=59900, overdue_days=22)
        gid = _promise(s, a).id
    with pytest.raises(ReasonRequired), factory.begin() as s:
        arr.cancel(s, arrangement_id=gid, reason=" ", today=TODAY, now=at(TODAY), actor=CLERK)
    with factory.begin() as s:
        arr.cancel(s, arrangement_id=gid, reason="customer withdrew", today=TODAY, now=at(TODAY), actor=CLERK)
    with factory() as s:
        assert s.get(Arrangement, gid).state == "cancelled" and a["id"] not in excluded_accounts(s, run_date=TODAY)


def _suspend_by_dunning(s, a):  # type: ignore[no-untyped-def]
    customers.transition_account(s, account_id=a["id"], action="suspend", now=at(TODAY - timedelta(days=5)), actor=Actor.system("dunning"),
                                 reason="dunning: suspension")


def _deliver_jobs(factory, kind_like="%"):  # type: ignore[no-untyped-def]
    """Run the outbox jobs of the debtors reconnect subscribers (what the worker does)."""
    with factory.begin() as s:
        rows = s.execute(text("SELECT id, payload FROM job WHERE kind = :k ORDER BY id"), {"k": domain_events.DELIVER_JOB}).all()
        for r in rows:
            payload = r.payload if isinstance(r.payload, dict) else __import__("json").loads(r.payload)
            if payload["subscriber"].startswith("debtors.reconnect"):
                domain_events.deliver_job(s, payload, at(TODAY))


def test_paying_a_suspended_account_up_reconnects_it_through_the_account_lifecycle(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Suspended Payer", amount=59900, overdue_days=40)
        other = debtor(s, name="Suspended By Hand", amount=59900, overdue_days=40)
        part = debtor(s, name="Partly Paid", amount=59900, overdue_days=40)
        _suspend_by_dunning(s, a)
        _suspend_by_dunning(s, part)
        customers.transition_account(s, account_id=other["id"], action="suspend", now=at(TODAY), actor=MANAGER, reason="fraud check")
    with factory() as s:
        listed = {r["id"]: r for r in reconnect.suspended_accounts(s, today=TODAY, now=at(TODAY))}
        assert listed[a["id"]]["days_suspended"] == 5 and listed[a["id"]]["overdue_minor"] == 59900 and listed[a["id"]]["by_dunning"]
        assert listed[other["id"]]["by_dunning"] is False
    with factory.begin() as s:
        for acc in (a, other):
            _pay(s, acc["id"], 59900, TODAY)
        _pay(s, part["id"], 10000, TODAY)
        domain_events.publish(s, "payments.invoices_settled", {"ids": [a["invoice_id"], other["invoice_id"]], "account_ids": [a["id"], other["id"]]},
                              now=at(TODAY), actor=Actor.system("payments"))
        domain_events.publish(s, "payments.invoice_settled", {"id": part["invoice_id"], "account_id": part["id"]}, now=at(TODAY), actor=Actor.system("payments"))
    _deliver_jobs(factory)
    with factory() as s:
        assert s.get(Account, a["id"]).status == "active"
        assert s.get(Account, other["id"]).status == "suspended"  # suspended by a person, not for non-payment
        assert s.get(Account, part["id"]).status == "suspended"   # arrears left
        assert s.execute(text("SELECT COUNT(*) FROM audit_event WHERE entity_type = 'account' AND action = 'reconnect' AND account_id = :a"),
                         {"a": a["id"]}).scalar_one() == 1
        # the account lifecycle's followers did their part (billing closes the suspension interval, fee per policy)
        assert s.execute(text("SELECT COUNT(*) FROM billing_suspension WHERE account_id = :a AND resumed_on IS NOT NULL"), {"a": a["id"]}).scalar_one() == 1
    _deliver_jobs(factory)  # a repeat delivery changes nothing
    with factory() as s:
        assert s.execute(text("SELECT COUNT(*) FROM audit_event WHERE action = 'reconnect' AND account_id = :a"), {"a": a["id"]}).scalar_one() == 1


def test_a_settlement_of_several_suspended_accounts_reconnects_each_in_its_own_job(factory):  # type: ignore[no-untyped-def]
    """A statement import settles many accounts at once: each suspended one gets its own reconnection job (a short
    transaction of its own), accounts not suspended get none, and running a job twice changes nothing."""
    from opsline.jobs_registry import build_registry

    with factory.begin() as s:
        payers = [debtor(s, name=f"Bulk Payer {k}", amount=59900, overdue_days=40) for k in range(3)]
        active = debtor(s, name="Never Suspended", amount=59900, overdue_days=40)
        for a in payers:
            _suspend_by_dunning(s, a)
        for a in payers + [active]:
            _pay(s, a["id"], 59900, TODAY)
        domain_events.publish(s, "payments.invoices_settled", {"ids": [a["invoice_id"] for a in payers + [active]],
                                                               "account_ids": [a["id"] for a in payers + [active]]}, now=at(TODAY), actor=Actor.system("payments"))
    _deliver_jobs(factory)
    with factory() as s:
        assert {s.get(Account, a["id"]).status for a in payers} == {"suspended"}  # nothing reconnected in the delivery itself
        queued = s.execute(text("SELECT payload FROM job WHERE kind = :k ORDER BY id"), {"k": reconnect.RECONNECT_JOB}).scalars().all()
        payloads = [p if isinstance(p, dict) else __import__("json").loads(p) for p in queued]
        assert sorted(p["account_id"] for p in payloads) == sorted(a["id"] for a in payers)
    handler = build_registry().get(reconnect.RECONNECT_JOB)
    assert handler is reconnect.reconnect_job
    for _ in range(2):  # a repeat changes nothing
        for p in payloads:
            with factory.begin() as s:
                handler(s, p, at(TODAY))
    with factory() as s:
        assert {s.get(Account, a["id"]).status for a in payers} == {"active"}
        assert s.execute(text("SELECT COUNT(*) FROM audit_event WHERE entity_type = 'account' AND action = 'reconnect' AND account_id IN (:a, :b, :c)"),
                         dict(zip("abc", [a["id"] for a in payers]))).scalar_one() == 3


def test_an_approved_arrangement_reconnects_a_suspended_account(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Arranged Suspended", amount=59900, overdue_days=40)
        _suspend_by_dunning(s, a)
        _promise(s, a)
    _deliver_jobs(factory)
    with factory() as s:
        assert s.get(Account, a["id"]).status == "active"
        assert s.execute(text("SELECT COUNT(*) FROM memo WHERE account_id = :a AND body LIKE 'Reconnection queued: arrangement ARR-%'"),
                         {"a": a["id"]}).scalar_one() == 1


def test_a_dry_run_already_counts_a_missed_promise_as_dunned_not_excluded(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Dry Missed", amount=59900, overdue_days=22)
        gid = _promise(s, a, due=TODAY + timedelta(days=1)).id
    day = TODAY + timedelta(days=2)
    with factory.begin() as s:
        preview = runs.dry_run(s, run_date=day, today=day, now=at(day))
    assert preview["actions"] == 1 and preview["excluded"] == []
    with factory() as s:
        assert s.get(Arrangement, gid).state == "active"  # the dry run changed nothing
        assert a["id"] in excluded_accounts(s, run_date=TODAY) and a["id"] not in excluded_accounts(s, run_date=day)
