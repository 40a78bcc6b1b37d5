"""notifications.send_many: many messages queued in a few statements with the same outcome as send() one by one
(text, language, suppression, contact caps and quiet hours, timeline, delivery job), a repeated key replayed, and one
bad message returned as its error while the others go."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select, text

from debtors_helpers import debtor
from opsline.core.events import Actor
from opsline.notifications import service as notifications
from opsline.notifications.models import Message

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)  # 09:00 in Johannesburg
SYSTEM = Actor.system("dunning")
CTX = {"debt": {"overdue": "ZAR 599.00", "balance": "ZAR 599.00", "days_overdue": 12, "pay_by": "2026-11-26", "reference": "DUN-1"},
       "company": {"name": "Opsline", "bank_name": "Bank", "bank_account_number": "1", "phone": "0"}}


def _msg_row(s, mid):  # type: ignore[no-untyped-def]
    m = s.get(Message, mid)
    number = s.execute(text("SELECT account_number FROM account WHERE id = :a"), {"a": m.account_id}).scalar_one()
    return (m.event, m.channel, m.category, m.to_addr, m.subject.replace(number, "#"), m.body.replace(number, "#"), m.state, m.run_at,
            m.schedule_note, m.last_error, m.language, m.template_id)


def test_send_many_queues_what_send_would_with_one_timeline_event_and_delivery_job_each(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Thabo Nkosi")
        b = debtor(s, name="Thabo Nkosi")
        c = debtor(s, name="Nomsa Dube")
        s.execute(text("UPDATE account SET email = 'same@example.test' WHERE id IN (:a, :b)"), {"a": a["id"], "b": b["id"]})
    with factory.begin() as s:
        one = notifications.send(s, event="dunning.reminder", account_id=a["id"], context=CTX, now=NOW, actor=SYSTEM, channel="email",
                                 category="collections", subject_ref="dunning_action:1", idempotency_key="k-a", on_opt_out="suppress")
        many = notifications.send_many(s, messages=[
            notifications.Outgoing("dunning.reminder", b["id"], CTX, "email", "dunning_action:1", (), "k-b"),
            notifications.Outgoing("dunning.reminder", c["id"], CTX, "sms", "dunning_action:2", (), "k-c"),
            notifications.Outgoing("dunning.nothing", c["id"], CTX, "email", None, (), "k-d"),
            notifications.Outgoing("dunning.reminder", a["id"], CTX, "email", None, (), "k-a"),  # sent above: replayed
        ], now=NOW, actor=SYSTEM, category="collections")
    assert isinstance(many[0], int) and isinstance(many[1], int) and many[3] == one
    assert isinstance(many[2], notifications.NoTemplate)
    with factory() as s:
        assert _msg_row(s, one) == _msg_row(s, many[0])
        sms = s.get(Message, many[1])
        assert sms.state == "queued" and sms.to_addr == "+27821234567" and sms.subject == "" and "days overdue" in sms.body
        assert s.execute(text("SELECT COUNT(*) FROM message")).scalar_one() == 3
        ev = s.execute(text("SELECT action FROM audit_event WHERE entity_type = 'message' AND entity_id = :m"), {"m": str(many[0])}).scalars().all()
        assert ev == ["queue"]
        jobs = s.execute(text("SELECT COUNT(*) FROM job WHERE kind = 'notifications.deliver'")).scalar_one()
        assert jobs == 3


def test_send_many_honours_opt_outs_quiet_hours_and_contact_caps_counting_its_own_messages(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Thabo Nkosi")
        b = debtor(s, name="Nomsa Dube")
        notifications.set_preference(s, account_id=b["id"], channel="email", category="collections", opted_out=True, now=NOW,
                                     actor=Actor(name="agent", roles=frozenset({"admin"})))
        for k in range(2):  # two collections contacts this week already
            notifications.send(s, event="dunning.reminder", account_id=a["id"], context=CTX, now=NOW - timedelta(days=k + 1), actor=SYSTEM,
                               category="collections", idempotency_key=f"old-{k}")
    with factory.begin() as s:
        out = notifications.send_many(s, messages=[notifications.Outgoing("dunning.reminder", a["id"], CTX, idempotency_key=f"new-{k}") for k in range(2)]
                                      + [notifications.Outgoing("dunning.reminder", b["id"], CTX, idempotency_key="new-b")],
                                      now=NOW, actor=SYSTEM, category="collections")
    with factory() as s:
        first, second, opted = (s.get(Message, i) for i in out)
        assert first.run_at == NOW and first.state == "queued"
        # the cap of 3 in 7 days: the batch's first message was the third, so the second waits until the oldest is a week old
        assert second.run_at == NOW - timedelta(days=2) + timedelta(days=7) and "contact cap" in second.schedule_note
        assert opted.state == "suppressed" and "opted out" in opted.last_error
        night = NOW.replace(hour=19)  # 21:00 in Johannesburg: quiet hours until 08:00
    with factory.begin() as s:
        c = debtor(s, name="Late Night")
        s.execute(text("UPDATE account SET phone = NULL WHERE id = :c"), {"c": c["id"]})
        [nophone] = notifications.send_many(s, messages=[notifications.Outgoing("dunning.reminder", c["id"], CTX, "sms", idempotency_key="sms")],
                                            now=NOW, actor=SYSTEM, category="collections")
        assert s.get(Message, nophone).state == "suppressed" and "no phone number" in s.get(Message, nophone).last_error
        [mid] = notifications.send_many(s, messages=[notifications.Outgoing("dunning.reminder", c["id"], CTX, idempotency_key="night")],
                                        now=night, actor=SYSTEM, category="collections")
        m = s.get(Message, mid)
        assert m.run_at == datetime(2026, 11, 24, 6, 0, tzinfo=timezone.utc) and "quiet hours" in m.schedule_note
        assert s.execute(select(Message.id).where(Message.idempotency_key == "night")).scalar_one() == mid
