"""Dunning runs against a real database (SQLite and PostgreSQL): one step per account per run, idempotent per day, missed
days caught up without skipping a notice period, every exclusion, holds, VIP routing, dry runs that change nothing, the
worker's actions (messages, letter PDF, suspension through the account lifecycle, memos), and bad input refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from debtors_helpers import TODAY, at, counts, debtor
from opsline.billing.invoicing.models import BillingClaim
from opsline.core.errors import InvalidInput
from opsline.core.events import Actor
from opsline.core.lifecycle import ReasonRequired
from opsline.customers.models import Account
from opsline.debtors import actions, holds, policies, runs
from opsline.debtors.exclusions import excluded_accounts
from opsline.debtors.models import DunningAccount, DunningAction, DunningPolicy, DunningStep
from opsline.notifications.models import Message

CLERK = Actor(name="dawie", roles=frozenset({"debtors_clerk"}))
MANAGER = Actor(name="dineo", roles=frozenset({"debtors_manager"}))


def _run(factory, day, **kw):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        return runs.run_dunning(s, run_date=day, today=day, now=at(day), actor=MANAGER, **kw)


def _steps(factory, account_id):  # type: ignore[no-untyped-def]
    with factory() as s:
        return [(str(r.run_date), r.position, r.action, r.state) for r in s.execute(
            select(DunningAction).where(DunningAction.account_id == account_id).order_by(DunningAction.id)).scalars()]


def test_a_run_takes_the_first_step_and_a_second_run_the_same_day_does_nothing(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Thabo Nkosi", amount=59900, overdue_days=22)
        paid = debtor(s, name="Lerato Paid", amount=59900, overdue_days=22)
        s.execute(text("INSERT INTO ledger_entry (account_id, kind, ref_type, ref_id, amount_minor, currency, posted_at, description) "
                       "SELECT account_id, 'payment', 'payment', 1, -amount_minor, currency, posted_at, 'paid' FROM ledger_entry WHERE account_id = :a"),
                  {"a": paid["id"]})
    first = _run(factory, TODAY)
    assert first["already_run"] is False
    assert _steps(factory, a["id"]) == [(str(TODAY), 1, "reminder_email", "queued")]  # 22 days overdue, yet step 1 first
    assert _steps(factory, paid["id"]) == []
    assert first["actions"] == 1 and first["actions_minor"] == 59900 and first["overdue_accounts"] == 1
    with factory() as s:
        before = counts(s)
    second = _run(factory, TODAY)
    assert second["already_run"] is True and second["run_id"] == first["run_id"]
    with factory() as s:
        assert counts(s) == before


def test_missed_days_are_caught_up_one_step_at_a_time_after_each_notice_period(factory):  # type: ignore[no-untyped-def]
    start = TODAY - timedelta(days=20)
    with factory.begin() as s:
        a = debtor(s, name="Sipho Dlamini", amount=120000, overdue_days=40, on=start)
    _run(factory, start)                              # step 1 (reminder email, 3 notice days)
    assert _run(factory, start + timedelta(days=1))["actions"] == 0  # still within the notice period
    _run(factory, start + timedelta(days=3))          # step 2 (SMS, 3 notice days)
    late = _run(factory, start + timedelta(days=12))  # 8 missed days: one step, not a jump to suspension
    assert late["missed_days"] == 8
    assert [p for _, p, _, _ in _steps(factory, a["id"])] == [1, 2, 3]
    assert _steps(factory, a["id"])[-1][2] == "letter_of_demand"
    with factory() as s:
        da = s.get(DunningAccount, a["id"])
        assert (da.position, da.next_step_from) == (3, start + timedelta(days=12 + 5))


def test_a_paid_up_account_starts_again_at_the_first_step(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Naledi Reset", amount=59900, overdue_days=22)
    _run(factory, TODAY - timedelta(days=5))
    with factory.begin() as s:
        s.execute(text("INSERT INTO ledger_entry (account_id, kind, ref_type, ref_id, amount_minor, currency, posted_at, description) "
                       "VALUES (:a, 'payment', 'payment', 9, -59900, 'ZAR', :t, 'paid')"), {"a": a["id"], "t": str(at(TODAY - timedelta(days=4)))[:19]})
    _run(factory, TODAY - timedelta(days=3))
    with factory() as s:
        assert s.get(DunningAccount, a["id"]) is None


def _claim(s, a):  # type: ignore[no-untyped-def]
    s.add(BillingClaim(account_id=a["id"], invoice_id=a["invoice_id"], state="submitted", reason="charged twice", channel="phone", currency="ZAR",
                       disputed_minor=10000, raised_at=at(TODAY - timedelta(days=2)), raised_by="agent", due_date=TODAY + timedelta(days=10)))


def _proposal(s, a):  # type: ignore[no-untyped-def]
    s.execute(text("INSERT INTO payment (source, method, state, amount_minor, currency, received_on, payer_name, payer_account, reference, created_at, created_by) "
                   "VALUES ('statement', 'eft', 'proposed', 59900, 'ZAR', :d, 'T NKOSI', '', 'thanks', :t, 'test')"),
              {"d": str(TODAY - timedelta(days=1)), "t": str(at(TODAY))[:19]})
    pid = s.execute(text("SELECT MAX(id) FROM payment")).scalar_one()
    s.execute(text("INSERT INTO payment_allocation (payment_id, account_id, invoice_id, amount_minor, currency, state, rule_code, score, evidence, created_at, created_by) "
                   "VALUES (:p, :a, :i, 59900, 'ZAR', 'proposed', 'payer-name', 60, '{}', :t, 'test')"),
              {"p": pid, "a": a["id"], "i": a["invoice_id"], "t": str(at(TODAY))[:19]})


def _suspense(s, a):  # type: ignore[no-untyped-def]
    s.execute(text("INSERT INTO payment (source, method, state, amount_minor, currency, received_on, payer_name, payer_account, reference, created_at, created_by) "
                   "VALUES ('statement', 'eft', 'suspense', 30000, 'ZAR', :d, 'MRS X', '99887766', :ref, :t, 'test')"),
              {"d": str(TODAY - timedelta(days=1)), "t": str(at(TODAY))[:19], "ref": f"acc {a['number']} thank you"})
    pid = s.execute(text("SELECT MAX(id) FROM payment")).scalar_one()
    s.execute(text("INSERT INTO suspense_item (payment_id, amount_minor, currency, owner, opened_at, opened_reason) VALUES (:p, 30000, 'ZAR', 'debtors', :t, 'no match')"),
              {"p": pid, "t": str(at(TODAY))[:19]})


def _hold(s, a):  # type: ignore[no-untyped-def]
    holds.place_hold(s, account_id=a["id"], reason="customer in hospital", valid_to=TODAY + timedelta(days=7), today=TODAY, now=at(TODAY), actor=CLERK)


@pytest.mark.parametrize("how,code", [(_claim, "in_dispute"), (_proposal, "unallocated_money"), (_suspense, "unallocated_money"), (_hold, "on_hold")],
                         ids=["open-claim", "payment-proposal", "suspense-naming-the-account", "hold"])
def test_each_exclusion_leaves_the_account_alone_and_is_counted(factory, how, code):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Excluded Person", amount=59900, overdue_days=22)
        other = debtor(s, name="Other Person", amount=59900, overdue_days=22)
        how(s, a)
    with factory() as s:
        assert excluded_accounts(s, run_date=TODAY).get(a["id"]) == code
    res = _run(factory, TODAY)
    assert _steps(factory, a["id"]) == [] and len(_steps(factory, other["id"])) == 1
    assert [(e["code"], e["count"], e["amount_minor"]) for e in res["excluded"]] == [(code, 1, 59900)]


def test_a_hold_ends_on_its_end_date_and_can_be_released_with_a_reason(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Held Person", amount=59900, overdue_days=22, on=TODAY - timedelta(days=7))
        h = holds.place_hold(s, account_id=a["id"], reason="salary moved to the 25th", valid_to=TODAY - timedelta(days=3),
                             today=TODAY - timedelta(days=7), now=at(TODAY - timedelta(days=7)), actor=CLERK)
        hid = h.id
    assert _run(factory, TODAY - timedelta(days=4))["actions"] == 0
    assert _run(factory, TODAY - timedelta(days=3))["actions"] == 1  # dunning resumes on the end date
    with factory.begin() as s:
        with pytest.raises(ReasonRequired):
            holds.release_hold(s, hold_id=hid, reason=" ", now=at(TODAY), actor=CLERK)
    with factory.begin() as s:
        holds.release_hold(s, hold_id=hid, reason="paid in part", now=at(TODAY), actor=CLERK)
        memos = s.execute(text("SELECT body FROM memo WHERE account_id = :a ORDER BY id"), {"a": a["id"]}).scalars().all()
    assert memos[0].startswith("Dunning hold until") and memos[-1] == "Dunning hold released: paid in part"


def test_a_vip_account_is_routed_to_a_person_and_skips_the_reminders(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        vip = debtor(s, name="Very Important", amount=250000, overdue_days=22, tier="vip")
        early = debtor(s, name="Early Vip", amount=250000, overdue_days=3, tier="vip")
    res = _run(factory, TODAY)
    assert _steps(factory, vip["id"]) == [(str(TODAY), 1, "call", "proposed")]
    assert _steps(factory, early["id"]) == []  # reminders skipped; the first VIP step waits 7 days
    assert res["by_action"] == {"person": {"count": 1, "amount_minor": 250000}}
    with factory.begin() as s:
        assert actions.perform_actions(s, run_id=res["run_id"], now=at(TODAY)) == {}  # nothing for the worker
        aid = s.execute(select(DunningAction.id).where(DunningAction.account_id == vip["id"])).scalar_one()
        with pytest.raises(ReasonRequired):
            actions.decide(s, action_id=aid, decision="dismiss", reason="", now=at(TODAY), actor=CLERK)
    with factory.begin() as s:
        actions.decide(s, action_id=aid, decision="accept", reason="called; pays Friday", now=at(TODAY), actor=CLERK)
    with factory() as s:
        assert s.get(DunningAction, aid).state == "accepted"
        assert "called; pays Friday" in s.execute(text("SELECT body FROM memo WHERE account_id = :a"), {"a": vip["id"]}).scalar_one()


def test_a_dry_run_shows_counts_and_amounts_per_step_and_changes_nothing(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        debtor(s, name="One Person", amount=59900, overdue_days=22)
        debtor(s, name="Two Person", amount=40000, overdue_days=2)
        debtor(s, name="Vip Person", amount=99900, overdue_days=10, tier="vip")
    with factory() as s:
        before = counts(s)
    with factory.begin() as s:
        res = runs.dry_run(s, run_date=TODAY, today=TODAY, now=at(TODAY))
    with factory() as s:
        assert counts(s) == before
    assert [(st["policy"], st["position"], st["count"], st["amount_minor"]) for st in res["steps"]] == [("default", 1, 2, 99900), ("vip", 1, 1, 99900)]
    assert res["dry_run"] is True and res["already_run"] is False


def test_the_worker_sends_reminders_renders_the_letter_and_suspends_through_the_account_lifecycle(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        rem = debtor(s, name="Reminder Person", amount=59900, overdue_days=22)
        let = debtor(s, name="Letter Person", amount=59900, overdue_days=22)
        sus = debtor(s, name="Suspend Person", amount=59900, overdue_days=22)
        pol = s.execute(select(DunningPolicy.id).where(DunningPolicy.code == "default")).scalar_one()
        steps = {p: i for p, i in s.execute(select(DunningStep.position, DunningStep.id).where(DunningStep.policy_id == pol)).all()}
        for acc, pos in ((let, 2), (sus, 4)):
            s.add(DunningAccount(account_id=acc["id"], policy_id=pol, position=pos, step_id=steps[pos], last_step_on=TODAY - timedelta(days=6),
                                 next_step_from=TODAY - timedelta(days=1)))
    res = _run(factory, TODAY)
    assert res["jobs_queued"] == 1
    with factory.begin() as s:
        done = actions.perform_actions(s, run_id=res["run_id"], now=at(TODAY))
    assert done == {"perform": 3}
    with factory() as s:
        msgs = {m.account_id: m for m in s.execute(select(Message)).scalars()}
        assert msgs[rem["id"]].category == "collections" and msgs[rem["id"]].event == "dunning.reminder" and msgs[rem["id"]].state == "queued"
        assert "22 days overdue" in msgs[rem["id"]].body
        assert msgs[let["id"]].event == "dunning.letter_of_demand"
        letter_action = s.execute(select(DunningAction.id).where(DunningAction.account_id == let["id"])).scalar_one()
        name, pdf = actions.letter_pdf(s, action_id=letter_action)
        assert pdf.startswith(b"%PDF") and name.endswith(".pdf")
        assert s.get(Account, sus["id"]).status == "suspended"
        assert s.execute(text("SELECT COUNT(*) FROM audit_event WHERE entity_type = 'account' AND action = 'suspend' AND account_id = :a"),
                         {"a": sus["id"]}).scalar_one() == 1
        for acc in (rem, let, sus):
            assert s.execute(text("SELECT COUNT(*) FROM memo WHERE account_id = :a AND category = 'debtors'"), {"a": acc["id"]}).scalar_one() == 1
            assert s.execute(text("SELECT COUNT(*) FROM audit_event WHERE entity_type = 'dunning_action' AND account_id = :a"), {"a": acc["id"]}).scalar_one() == 2
    with factory.begin() as s:  # the job again (a retry) does nothing twice
        assert actions.perform_actions(s, run_id=res["run_id"], now=at(TODAY)) == {}


def test_reminders_honour_the_collections_quiet_hours(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Night Owl", amount=59900, overdue_days=22)
    night = at(TODAY).replace(hour=20)  # 22:00 in Johannesburg
    with factory.begin() as s:
        res = runs.run_dunning(s, run_date=TODAY, today=TODAY, now=night, actor=MANAGER)
        actions.perform_actions(s, run_id=res["run_id"], now=night)
    with factory() as s:
        m = s.execute(select(Message).where(Message.account_id == a["id"])).scalar_one()
        assert m.run_at > night and "quiet hours" in (m.schedule_note or "")


def test_overlapping_steps_are_refused_naming_the_field_and_nothing_changes(factory):  # type: ignore[no-untyped-def]
    with factory() as s:
        before = counts(s)
        pol = s.execute(select(DunningPolicy).where(DunningPolicy.code == "default")).scalar_one()
        steps_before = policies.policy_dict(s, pol)["steps"]
    bad = [policies.StepIn("Reminder", "reminder_email", 5), policies.StepIn("SMS", "reminder_sms", 5)]
    with factory.begin() as s, pytest.raises(policies.UnableToSavePolicy) as exc:
        policies.save_policy(s, code="default", name="Default", segment_code=None, value_tier_code=None, steps=bad, now=at(TODAY), actor=MANAGER)
    assert exc.value.field == "steps[2].min_days_overdue" and "overlaps step 1" in exc.value.detail
    for steps, field in (([], "steps"), ([policies.StepIn("X", "shout", 1)], "steps[1].action"), ([policies.StepIn("X", "reminder_email", -1)], "steps[1].min_days_overdue")):
        with factory.begin() as s, pytest.raises(policies.UnableToSavePolicy) as exc:
            policies.save_policy(s, code="default", name="Default", segment_code=None, value_tier_code=None, steps=steps, now=at(TODAY), actor=MANAGER)
        assert exc.value.field == field
    with factory() as s:
        assert counts(s) == before
        pol = s.execute(select(DunningPolicy).where(DunningPolicy.code == "default")).scalar_one()
        assert policies.policy_dict(s, pol)["steps"] == steps_before


def test_a_hold_without_a_reason_or_end_date_and_bad_run_dates_are_refused(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Bad Input", amount=59900, overdue_days=22)
    with factory() as s:
        before = counts(s)
    cases = [dict(reason="", valid_to=TODAY + timedelta(days=3)), dict(reason="why", valid_to=None), dict(reason="why", valid_to=TODAY)]
    fields = []
    for kw in cases:
        with factory.begin() as s, pytest.raises(holds.UnableToHold) as exc:
            holds.place_hold(s, account_id=a["id"], today=TODAY, now=at(TODAY), actor=CLERK, **kw)
        fields.append(exc.value.field)
    assert fields == ["reason", "valid_to", "valid_to"]
    with pytest.raises(InvalidInput) as exc:
        runs.parse_run_date("23/11/2026")
    assert exc.value.field == "date" and "YYYY-MM-DD" in exc.value.detail
    with factory.begin() as s, pytest.raises(runs.UnableToRunDunning) as exc:
        runs.run_dunning(s, run_date=TODAY + timedelta(days=1), today=TODAY, now=at(TODAY), actor=MANAGER)
    assert "future" in exc.value.detail
    _run(factory, TODAY)
    with factory.begin() as s, pytest.raises(runs.UnableToRunDunning) as exc:
        runs.run_dunning(s, run_date=TODAY - timedelta(days=1), today=TODAY, now=at(TODAY), actor=MANAGER)
    assert "runs go forward" in exc.value.detail
    with factory() as s:
        after = counts(s)
    assert after["dunning_hold"] == before["dunning_hold"] and after["dunning_run"] == before["dunning_run"] + 1
