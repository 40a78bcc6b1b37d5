"""The demo's write-offs (SQLite and PostgreSQL): the clerk's single proposals end in every state (posted by the
manager, waiting, rejected, withdrawn) and one bulk batch is proposed by the clerk and approved by the manager, so
/debtors/writeoffs shows them all."""

from __future__ import annotations

from sqlalchemy import text

from debtors_helpers import TODAY, at, debtor
from opsline.debtors import demo_step


def test_the_demo_leaves_write_offs_in_every_state_and_a_batch_approved_by_a_second_person(factory):  # type: ignore[no-untyped-def]
    from zoneinfo import ZoneInfo

    with factory.begin() as s:
        for k in range(8):
            debtor(s, name=f"Chronic Payer{k}", amount=59900 + 1000 * k, overdue_days=60)
        small = [debtor(s, name=f"Closed Small{k}", amount=5000 + 100 * k, overdue_days=70) for k in range(3)]
        s.execute(text("UPDATE account SET status = 'closed' WHERE id IN (:a, :b, :c)"), {"a": small[0]["id"], "b": small[1]["id"], "c": small[2]["id"]})
    demo_step._write_offs(factory, today=TODAY, now=at(TODAY), tz=ZoneInfo("Africa/Johannesburg"))
    with factory() as s:
        singles = dict(s.execute(text("SELECT state, COUNT(*) FROM write_off WHERE batch_id IS NULL GROUP BY state")).all())
        assert singles == {"posted": 3, "proposed": 2, "rejected": 1, "cancelled": 1}
        assert s.execute(text("SELECT COUNT(*) FROM write_off WHERE state = 'posted' AND (decided_by IS NULL OR decided_by = proposed_by)")).scalar_one() == 0
        batch = s.execute(text("SELECT id, state, accounts, proposed_by, decided_by FROM write_off_batch")).one()
        assert batch.state == "posted" and batch.accounts == 3 and batch.proposed_by == "debtors" and batch.decided_by == "debtorsmgr"
        in_batch = set(s.execute(text("SELECT account_id FROM write_off WHERE batch_id = :b AND state = 'posted'"), {"b": batch.id}).scalars())
        assert in_batch == {a["id"] for a in small}
        assert s.execute(text("SELECT COUNT(*) FROM ledger_entry WHERE kind = 'write_off'")).scalar_one() == 3 + 3
