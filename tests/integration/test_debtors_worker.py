"""The dunning worker carrying out a run's actions in batches (SQLite and PostgreSQL): letters of demand rendered
together but one PDF each, every message queued in one go, states, notes and memos set-based; one bad action marked
failed with its reason while the others go on; two workers on the same job never carry out an action twice."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from debtors_helpers import TODAY, at, debtor
from opsline.core.events import Actor
from opsline.debtors import actions, runs
from opsline.debtors.models import DunningAccount, DunningAction, DunningPolicy, DunningStep

MANAGER = Actor(name="dineo", roles=frozenset({"debtors_manager"}))


def _at_position(s, acc, pos):  # type: ignore[no-untyped-def]
    """The account stands after step `pos - 1` of the default policy, its notice over: the run takes step `pos`."""
    pol = s.execute(select(DunningPolicy.id).where(DunningPolicy.code == "default")).scalar_one()
    steps = {p: i for p, i in s.execute(select(DunningStep.position, DunningStep.id).where(DunningStep.policy_id == pol)).all()}
    s.add(DunningAccount(account_id=acc["id"], policy_id=pol, position=pos - 1, step_id=steps[pos - 1], last_step_on=TODAY - timedelta(days=6),
                         next_step_from=TODAY - timedelta(days=1)))


def _book(factory, *, reminders: int, letters: int, suspensions: int) -> dict[str, list[dict]]:  # type: ignore[no-untyped-def]
    out: dict[str, list[dict]] = {"reminder": [], "letter": [], "suspend": []}
    with factory.begin() as s:
        for k in range(reminders):
            out["reminder"].append(debtor(s, name=f"Reminder Person{k}", amount=59900 + k, overdue_days=22))
        for k in range(letters):
            a = debtor(s, name=f"Letter Person{k}", amount=59900 + 100 * k, overdue_days=22)
            _at_position(s, a, 3)
            out["letter"].append(a)
        for k in range(suspensions):
            a = debtor(s, name=f"Suspend Person{k}", amount=59900, overdue_days=22)
            _at_position(s, a, 5)
            out["suspend"].append(a)
    return out


def _run(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        return runs.run_dunning(s, run_date=TODAY, today=TODAY, now=at(TODAY), actor=MANAGER)


def test_letters_rendered_together_are_one_pdf_each_attached_to_their_own_message(factory):  # type: ignore[no-untyped-def]
    book = _book(factory, reminders=2, letters=3, suspensions=1)
    res = _run(factory)
    with factory.begin() as s:
        assert actions.perform_actions(s, run_id=res["run_id"], now=at(TODAY)) == {"perform": 6}
    with factory() as s:
        letters = s.execute(text("SELECT l.id, l.action_id, l.account_id, l.content, l.size_bytes FROM dunning_letter l ORDER BY l.id")).all()
        assert sorted(r.account_id for r in letters) == sorted(a["id"] for a in book["letter"])
        assert len({bytes(r.content) for r in letters}) == 3 and all(bytes(r.content).startswith(b"%PDF") and r.size_bytes == len(r.content) for r in letters)
        for r in letters:
            att = s.execute(text("""SELECT m.account_id, m.event, a.ref_table, a.ref_id, a.filename FROM message_attachment a JOIN message m ON m.id = a.message_id
                                    WHERE a.ref_id = :l"""), {"l": r.id}).one()
            assert tuple(att) == (r.account_id, "dunning.letter_of_demand", "dunning_letter", r.id, f"letter-of-demand-DUN-{r.action_id}.pdf")
        acts = s.execute(text("SELECT id, account_id, state, message_id, note, done_at FROM dunning_action ORDER BY id")).all()
        assert all(a.state == "done" and a.message_id and a.note and a.done_at for a in acts)
        mids = {a.account_id: a.message_id for a in acts}
        assert s.execute(text("SELECT COUNT(*) FROM message")).scalar_one() == 6
        assert all(s.execute(text("SELECT account_id FROM message WHERE id = :m"), {"m": m}).scalar_one() == acc for acc, m in mids.items())
        memo = s.execute(text("SELECT body FROM memo WHERE account_id = :a"), {"a": book["reminder"][0]["id"]}).scalar_one()
        assert "Reminder email" in memo and f"Message {mids[book['reminder'][0]['id']]}" in memo
        assert s.execute(text("SELECT status FROM account WHERE id = :a"), {"a": book["suspend"][0]["id"]}).scalar_one() == "suspended"
        per_action = s.execute(text("SELECT entity_id, COUNT(*) FROM audit_event WHERE entity_type = 'dunning_action' AND action = 'perform' GROUP BY entity_id")).all()
        assert len(per_action) == 6 and {n for _, n in per_action} == {1}
        assert s.execute(text("SELECT COUNT(*) FROM audit_event WHERE entity_type = 'memo'")).scalar_one() == 6


def test_one_action_that_cannot_be_done_is_marked_failed_with_its_reason_and_the_others_go_on(factory):  # type: ignore[no-untyped-def]
    book = _book(factory, reminders=3, letters=1, suspensions=0)
    res = _run(factory)
    with factory.begin() as s:  # the letter's step names a template nobody wrote
        s.execute(update(DunningStep).where(DunningStep.action == "letter_of_demand").values(template_event="dunning.no_such_letter"))
    with factory.begin() as s:
        assert actions.perform_actions(s, run_id=res["run_id"], now=at(TODAY)) == {"perform": 3, "fail": 1}
    with factory() as s:
        bad = s.execute(select(DunningAction).where(DunningAction.account_id == book["letter"][0]["id"])).scalar_one()
        assert bad.state == "failed" and "no email template for event 'dunning.no_such_letter'" in bad.note and bad.message_id is None
        ev = s.execute(text("SELECT action, reason FROM audit_event WHERE entity_type = 'dunning_action' AND entity_id = :i ORDER BY id"),
                       {"i": str(bad.id)}).all()
        assert ev[-1][0] == "fail" and "no email template" in ev[-1][1]
        assert "failed" in s.execute(text("SELECT body FROM memo WHERE account_id = :a"), {"a": bad.account_id}).scalar_one()
        assert s.execute(text("SELECT COUNT(*) FROM message")).scalar_one() == 3
        assert s.execute(text("SELECT COUNT(*) FROM dunning_action WHERE state = 'done'")).scalar_one() == 3
    with factory.begin() as s:  # the template written, a person retries: the letter (already rendered) goes, nothing else twice
        s.execute(update(DunningStep).where(DunningStep.action == "letter_of_demand").values(template_event="dunning.letter_of_demand"))
        from opsline.core import lifecycle

        lifecycle.transition(s, actions.DUNNING_ACTION, s.get(DunningAction, bad.id), "retry", now=at(TODAY), actor=MANAGER)
    with factory.begin() as s:
        assert actions.perform_actions(s, run_id=res["run_id"], now=at(TODAY)) == {"perform": 1}
        assert s.execute(text("SELECT COUNT(*) FROM dunning_letter")).scalar_one() == 1
        assert s.execute(text("SELECT COUNT(*) FROM message")).scalar_one() == 4


def test_two_workers_on_the_same_job_carry_out_each_action_once(engine, factory):  # type: ignore[no-untyped-def]
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers; concurrent workers need PostgreSQL")
    _book(factory, reminders=12, letters=2, suspensions=2)
    res = _run(factory)
    barrier = threading.Barrier(2)
    outcome: list[dict] = []

    def worker() -> None:
        barrier.wait()
        with factory.begin() as s:
            outcome.append(actions.perform_actions(s, run_id=res["run_id"], now=at(TODAY)))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert sum(o.get("perform", 0) for o in outcome) == 16 and all("fail" not in o for o in outcome), outcome
    with factory() as s:
        assert s.execute(text("SELECT COUNT(*) FROM message")).scalar_one() == 16
        assert s.execute(text("SELECT COUNT(*) FROM memo")).scalar_one() == 16
        assert s.execute(text("SELECT COUNT(*) FROM dunning_letter")).scalar_one() == 2
        assert s.execute(text("SELECT COUNT(*) FROM audit_event WHERE entity_type = 'account' AND action = 'suspend'")).scalar_one() == 2
        assert s.execute(text("SELECT COUNT(*) FROM dunning_action WHERE state = 'done'")).scalar_one() == 16


def _footers(page) -> list[str]:  # type: ignore[no-untyped-def]
    out: list[str] = []

    def walk(box) -> None:  # type: ignore[no-untyped-def]
        if getattr(box, "text", None) and "Page" in box.text:
            out.append(box.text)
        for c in getattr(box, "children", None) or []:
            walk(c)

    walk(page._page_box)
    return out


def test_letters_laid_out_together_each_say_page_1_of_1_and_a_longer_letter_is_rendered_on_its_own(monkeypatch):
    from datetime import date
    from types import SimpleNamespace

    def row(k: int, name: str) -> SimpleNamespace:
        return SimpleNamespace(id=k, step_id=1, account_number=f"10000{k:05d}", name=name, billing_line1="12 Jacaranda Street", billing_suburb="Melville",
                               billing_city="Johannesburg", billing_postal_code="2092", run_date=date(2026, 11, 23), overdue_minor=59900,
                               balance_minor=59900, currency="ZAR", days_overdue=22)

    rows = [row(1, "Thabo Nkosi"), row(2, "Nomsa Dube " * 900), row(3, "Sizwe Mokoena")]  # the second runs past one page
    doc, pages = actions.layout_batch(rows, company={"name": "Opsline"}, notice_days={1: 5})
    assert [len(pages[k]) for k in (1, 2, 3)][0::2] == [1, 1] and len(pages[2]) > 1
    assert _footers(pages[1][0]) == ["Page 1 of 1"] and _footers(pages[3][0]) == ["Page 1 of 1"]
    alone: list[int] = []
    real = actions._render_one
    monkeypatch.setattr(actions, "_render_one", lambda r, c, n: alone.append(r.id) or real(r, c, n))
    out = actions.render_letters(rows, company={"name": "Opsline"}, notice_days={1: 5})
    assert alone == [2] and all(isinstance(v, bytes) and v.startswith(b"%PDF") for v in out.values())
