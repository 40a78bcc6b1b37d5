"""The account page's timeline shows money as money in the account's currency and messages with their text."""

import re

from opsline.core import events


def _account(factory, now, actor, **kw):  # type: ignore[no-untyped-def]
    from opsline.customers import service
    from opsline.customers.schemas import AccountIn

    with factory.begin() as s:
        acc = service.create_account(s, data=AccountIn(name="Thandi Nkosi", email="thandi@example.co.za", **kw), now=now, actor=actor)
        s.flush()
        return acc.id


def test_the_timeline_shows_amounts_as_money_never_minor_units(client_as, factory, now, actor):
    acc_id = _account(factory, now, actor)
    with factory.begin() as s:
        events.record(s, now=now, actor=actor, entity_type="invoice", entity_id=77, action="issued", account_id=acc_id,
                      after={"number": "INV00000077", "total_minor": 517500, "vat_minor": 67500})
        events.record(s, now=now, actor=actor, entity_type="credit_note", entity_id=5, action="issued", account_id=acc_id,
                      reason="Two days of outage", before={"balance_minor": 517500}, after={"balance_minor": 417500})
    page = client_as("debtors_clerk").get(f"/accounts/{acc_id}").text
    timeline = page[page.index('id="timeline"'):]
    assert "total: R 5,175.00" in timeline and "vat: R 675.00" in timeline
    assert "balance: R 5,175.00 → R 4,175.00" in timeline and "Why: Two days of outage" in timeline
    assert not re.search(r"\b517500\b|\b67500\b|_minor", timeline)


def test_the_timeline_uses_the_accounts_own_currency(client_as, factory, now, actor):
    acc_id = _account(factory, now, actor, currency="USD")
    with factory.begin() as s:
        events.record(s, now=now, actor=actor, entity_type="payment", entity_id=1, action="allocated", account_id=acc_id, after={"amount_minor": 12345})
    page = client_as("debtors_clerk").get(f"/accounts/{acc_id}").text
    assert "amount: $ 123.45" in page


def test_a_message_to_the_customer_shows_on_the_timeline_with_its_text(client_as, factory, now, actor):
    acc_id = _account(factory, now, actor)
    body = "Dear Thandi,\nWe have booked a technician for Tuesday. <b>not bold</b>"
    with factory.begin() as s:  # the shape notifications.service writes for every message
        events.record(s, now=now, actor=actor, entity_type="message", entity_id=9, action="queued", account_id=acc_id,
                      after={"event": "case.note_to_customer", "channel": "email", "category": "service", "to": "thandi@example.co.za",
                             "subject": "Your case CS00000042", "body": body, "state": "queued", "run_at": now.isoformat(),
                             "schedule_note": None, "subject_ref": "case:42"})
    page = client_as("second_line_agent").get(f"/accounts/{acc_id}").text
    item = re.search(r'<li data-event="\d+">.*?message queued.*?</li>', page, re.S)
    assert item, page[page.index('id="timeline"'):][:2000]
    html = item.group(0)
    assert "Your case CS00000042" in html and "We have booked a technician for Tuesday." in html and "to thandi@example.co.za" in html
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html  # the customer's text is escaped, not interpreted
