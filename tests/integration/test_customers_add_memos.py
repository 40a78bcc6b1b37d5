"""customers.add_memos: many memos in two statements, each with its audit event (the account timeline), as add_memo
writes one; an unknown account or category refused with nothing written."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import text

from opsline.billing.invoicing.samples import make_account
from opsline.core.errors import InvalidInput
from opsline.core.events import Actor
from opsline.customers import service as customers

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)
SYSTEM = Actor.system("dunning")


def test_add_memos_writes_each_memo_and_its_timeline_event_like_add_memo(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a, b = make_account(s, now=NOW, name="Thabo Nkosi"), make_account(s, now=NOW, name="Nomsa Dube")
        ids = customers.add_memos(s, memos=[(a, "first"), (b, "second"), (a, "third")], category="debtors", now=NOW, actor=SYSTEM)
    with factory() as s:
        rows = [tuple(r) for r in s.execute(text("SELECT id, account_id, author, category, body FROM memo ORDER BY id"))]
        assert rows == [(ids[0], a, "system:dunning", "debtors", "first"), (ids[1], b, "system:dunning", "debtors", "second"),
                        (ids[2], a, "system:dunning", "debtors", "third")]
        ev = [tuple(r) for r in s.execute(text("SELECT entity_id, account_id, action FROM audit_event WHERE entity_type = 'memo' ORDER BY id"))]
        assert ev == [(str(ids[0]), a, "added"), (str(ids[1]), b, "added"), (str(ids[2]), a, "added")]
        assert [m["body"] for m in customers.account_360(s, account_id=a)["memos"]] == ["third", "first"]


@pytest.mark.parametrize(("memos", "category", "field"), [([(999999, "x")], "debtors", "account_id"), ([(None, "x")], "nonsense", "category")])
def test_add_memos_refuses_an_unknown_account_or_category_and_writes_nothing(factory, memos, category, field):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = make_account(s, now=NOW, name="Thabo Nkosi")
    with factory() as s:
        with pytest.raises(InvalidInput) as e:
            customers.add_memos(s, memos=[(a, "ok")] + [(m[0] or a, m[1]) for m in memos], category=category, now=NOW, actor=SYSTEM)
        assert e.value.field == field
        s.rollback()
        assert s.execute(text("SELECT COUNT(*) FROM memo")).scalar_one() == 0
