"""The debtors desk's work for today (SQLite and PostgreSQL): calls to make (steps routed to a person, letters whose
notice ran out), promises due today or overdue, broken promises to follow up, approvals waiting (a manager never sees
their own proposal), suspended accounts in arrears; biggest and oldest first, one query per section, counts for the
home cards."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event, select, text

from debtors_helpers import TODAY, at, debtor
from opsline.core.events import Actor
from opsline.debtors import actions, arrangements, desk, home, runs, writeoffs
from opsline.debtors.arrangements import InstalmentIn
from opsline.debtors.models import DunningAccount, DunningPolicy, DunningStep

CLERK = Actor(name="dawie", roles=frozenset({"debtors_clerk"}))
MANAGER = Actor(name="dineo", roles=frozenset({"debtors_manager"}))
MANAGER2 = Actor(name="sipho", roles=frozenset({"debtors_manager"}))
NOW = at(TODAY)


def _book(factory, run_day=TODAY - timedelta(days=6)) -> dict:  # type: ignore[no-untyped-def]
    """One account of every kind of today's work (and a few that are not)."""
    b: dict = {}
    with factory.begin() as s:
        b["vip"] = debtor(s, name="Vip Person", amount=59900, overdue_days=22, tier="vip")
        b["letter_big"] = debtor(s, name="Letter Big", amount=99900, overdue_days=40)
        b["letter_small"] = debtor(s, name="Letter Small", amount=29900, overdue_days=40)
        pol = s.execute(select(DunningPolicy.id).where(DunningPolicy.code == "default")).scalar_one()
        steps = {p: i for p, i in s.execute(select(DunningStep.position, DunningStep.id).where(DunningStep.policy_id == pol)).all()}
        for k in ("letter_big", "letter_small"):
            s.add(DunningAccount(account_id=b[k]["id"], policy_id=pol, position=2, step_id=steps[2], last_step_on=run_day - timedelta(days=6),
                                 next_step_from=run_day - timedelta(days=3)))
    # on run_day the run sent both letters (notice 5 days: over by today); the VIP account got its courtesy call step
    with factory.begin() as s:
        res = runs.run_dunning(s, run_date=run_day, today=run_day, now=at(run_day), actor=MANAGER)
    with factory.begin() as s:
        actions.perform_actions(s, run_id=res["run_id"], now=at(run_day))
    with factory.begin() as s:
        b["due_today"] = debtor(s, name="Promise Today", amount=59900, overdue_days=30)
        b["overdue"] = debtor(s, name="Promise Late", amount=39900, overdue_days=30)
        b["later"] = debtor(s, name="Promise Later", amount=49900, overdue_days=30)
        b["broken"] = debtor(s, name="Promise Broken", amount=69900, overdue_days=40)
        b["big_plan"] = debtor(s, name="Plan Big", amount=899900, overdue_days=40)
        b["wo_clerk"] = debtor(s, name="Writeoff Clerk", amount=19900, overdue_days=200)
        b["wo_mgr"] = debtor(s, name="Writeoff Manager", amount=29900, overdue_days=200)
        b["susp_big"] = debtor(s, name="Suspended Big", amount=89900, overdue_days=60)
        b["susp_small"] = debtor(s, name="Suspended Small", amount=19900, overdue_days=90)
        b["susp_paid"] = debtor(s, name="Suspended Paid", amount=19900, overdue_days=90)
        s.execute(text("UPDATE account SET status = 'suspended' WHERE id IN (:a, :b, :c)"),
                  {"a": b["susp_big"]["id"], "b": b["susp_small"]["id"], "c": b["susp_paid"]["id"]})
        s.execute(text("INSERT INTO ledger_entry (account_id, kind, ref_type, ref_id, amount_minor, currency, posted_at, description) "
                       "VALUES (:a, 'payment', 'payment', 1, -19900, 'ZAR', :t, 'paid')"), {"a": b["susp_paid"]["id"], "t": NOW - timedelta(days=1)})
    with factory.begin() as s:
        for k, made, due in (("due_today", TODAY - timedelta(days=3), TODAY), ("overdue", TODAY - timedelta(days=5), TODAY - timedelta(days=2)),
                             ("later", TODAY - timedelta(days=1), TODAY + timedelta(days=3)), ("broken", TODAY - timedelta(days=12), TODAY - timedelta(days=9))):
            owed = arrangements.overdue_minor(s, account_id=b[k]["id"], today=made, now=at(made))
            b[k]["arr"] = arrangements.propose(s, account_id=b[k]["id"], kind="promise", instalments=[InstalmentIn(due, owed)], today=made,
                                               now=at(made), actor=CLERK).id
        arrangements.review(s, run_date=TODAY - timedelta(days=5), now=at(TODAY - timedelta(days=5)))
        owed = arrangements.overdue_minor(s, account_id=b["big_plan"]["id"], today=TODAY, now=NOW)
        b["big_plan"]["arr"] = arrangements.propose(s, account_id=b["big_plan"]["id"], kind="plan", today=TODAY, now=NOW, actor=CLERK,
                                                    instalments=[InstalmentIn(TODAY + timedelta(days=10), owed // 2),
                                                                 InstalmentIn(TODAY + timedelta(days=40), owed - owed // 2)]).id
        b["wo_clerk"]["wo"] = writeoffs.propose(s, account_id=b["wo_clerk"]["id"], amount=None, reason="estate insolvent", today=TODAY, now=NOW, actor=CLERK).id
        b["wo_mgr"]["wo"] = writeoffs.propose(s, account_id=b["wo_mgr"]["id"], amount=None, reason="untraceable", today=TODAY, now=NOW, actor=MANAGER).id
    return b


def _work(factory, actor, **kw):  # type: ignore[no-untyped-def]
    with factory() as s:
        can = "debtors_manager" in actor.roles
        return desk.today_work(s, today=TODAY, now=NOW, actor_name=actor.name, can_approve=can,
                               arrangement_limit=arrangements.approval_limit(s, actor=actor) if can else None, **kw)


def test_each_section_lists_its_work_biggest_and_oldest_first(factory):  # type: ignore[no-untyped-def]
    b = _book(factory)
    w = _work(factory, MANAGER2)
    ids = lambda rows: [r["account_id"] for r in rows]  # noqa: E731
    assert ids(w["calls"]) == [b["letter_big"]["id"], b["vip"]["id"], b["letter_small"]["id"]]
    kinds = {r["account_id"]: r["kind"] for r in w["calls"]}
    assert kinds[b["vip"]["id"]] == "action" and kinds[b["letter_big"]["id"]] == "letter"
    vip = next(r for r in w["calls"] if r["account_id"] == b["vip"]["id"])
    assert vip["label"] == "Call the customer" and vip["phone"] == "+27821234567" and vip["tier"] == "vip"
    assert ids(w["promises"]) == [b["due_today"]["id"], b["overdue"]["id"]]  # biggest first; the one due in three days is not yet due
    late = {r["account_id"]: r["days_late"] for r in w["promises"]}
    assert late == {b["due_today"]["id"]: 0, b["overdue"]["id"]: 2}
    assert [(r["ref_id"], r["owner"]) for r in w["broken"]] == [(b["broken"]["arr"], "dawie")]
    assert [(r["kind"], r["ref_id"]) for r in w["approvals"]] == [("arrangement", b["big_plan"]["arr"]), ("write_off", b["wo_mgr"]["wo"]),
                                                                  ("write_off", b["wo_clerk"]["wo"])]
    assert w["approvals"][0]["href"] == f"/debtors/arrangements/{b['big_plan']['arr']}"
    assert ids(w["suspended"]) == [b["susp_big"]["id"], b["susp_small"]["id"]]  # the one that paid is not in arrears
    assert w["suspended"][0]["overdue_minor"] == 89900 and w["suspended"][1]["days_overdue"] == 90


def test_a_manager_never_sees_their_own_proposal_and_a_clerk_sees_no_approvals(factory):  # type: ignore[no-untyped-def]
    b = _book(factory)
    with factory.begin() as s:
        batch = writeoffs.propose_batch(s, criteria=writeoffs.BulkCriteria(status="suspended", max_balance_minor=50_000, min_days=60),
                                        reason="small suspended balances", today=TODAY, now=NOW, actor=MANAGER)
    mine = _work(factory, MANAGER)["approvals"]
    assert [(r["kind"], r["ref_id"]) for r in mine] == [("arrangement", b["big_plan"]["arr"]), ("write_off", b["wo_clerk"]["wo"])]
    other = _work(factory, MANAGER2)["approvals"]
    assert ("batch", batch.id) in [(r["kind"], r["ref_id"]) for r in other] and ("write_off", b["wo_mgr"]["wo"]) in [(r["kind"], r["ref_id"]) for r in other]
    assert _work(factory, CLERK)["approvals"] == []
    with factory() as s:
        c = desk.today_counts(s, today=TODAY, now=NOW, actor_name="dineo", can_approve=True)
        assert c["approvals"] == 2 and desk.today_counts(s, today=TODAY, now=NOW, actor_name="dawie", can_approve=False)["approvals"] is None


def test_counts_match_the_lists_and_the_home_cards_show_them_with_a_chart(factory):  # type: ignore[no-untyped-def]
    _book(factory)
    w = _work(factory, MANAGER2)
    from zoneinfo import ZoneInfo

    with factory() as s:
        c = desk.today_counts(s, today=TODAY, now=NOW, actor_name="sipho", can_approve=True)
        cards = {k.title: k for k in home.cards(s, now=NOW, actor=MANAGER2, tz=ZoneInfo("Africa/Johannesburg"))}
        clerk_cards = {k.title for k in home.cards(s, now=NOW, actor=CLERK, tz=ZoneInfo("Africa/Johannesburg"))}
    assert (c["calls"], c["promises"], c["promises_today"], c["broken"], c["approvals"], c["suspended"]) == (
        len(w["calls"]), len(w["promises"]), 1, len(w["broken"]), len(w["approvals"]), len(w["suspended"]))
    assert cards["Calls to make"].count == 3 and cards["Calls to make"].href == "/debtors#calls"
    assert cards["Promises due today or overdue"].hint == "1 due today"
    assert cards["Approvals waiting for you"].count == 3 and cards["Approvals waiting for you"].desks == ("debtors_manager",)
    today = cards["Today's debtors work"]
    assert today.chart["type"] == "bar" and sum(today.chart["data"]["datasets"][0]["data"]) == today.count == 3 + 2 + 1 + 2 + 3
    assert "Approvals waiting for you" not in clerk_cards and "Calls to make" in clerk_cards


def test_each_section_is_one_query_however_many_rows(factory, engine):  # type: ignore[no-untyped-def]
    _book(factory)
    seen: list[str] = []

    def count(conn, cursor, statement, *a):  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        _work(factory, MANAGER2)
        first = len(seen)
        seen.clear()
        _book(factory, run_day=TODAY - timedelta(days=5))  # twice the work
        seen.clear()
        w = _work(factory, MANAGER2)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(w["calls"]) == 6 and len(w["suspended"]) == 4
    sections = [q for q in seen if q.lstrip().upper().startswith(("SELECT", "WITH")) and "arrangement_approval_limit" not in q]
    assert len(seen) == first and len(sections) == 5, seen  # five sections (and the approver's limit)
