"""How audit events read on the account timeline: money as money, changes as before → after, messages as text."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from opsline.core.money import Money
from opsline.web.timeline import display_money, present_event


def test_money_is_shown_with_the_currency_symbol_grouping_and_its_own_decimals():
    assert display_money(Money.from_minor(517500, "ZAR")) == "R 5,175.00"
    assert display_money(Money.from_minor(-1250, "ZAR")) == "-R 12.50"
    assert display_money(Money.from_minor(1500, "JPY")) == "¥ 1,500"
    assert display_money(Money.from_minor(120000, "KES")) == "KSh 1,200.00"
    assert display_money(Money.from_minor(1234567, "BHD")) == "BHD 1,234.567"


@given(st.integers(min_value=-10**12, max_value=10**12))
def test_any_minor_amount_reads_back_to_the_same_value(minor):
    shown = display_money(Money.from_minor(minor, "ZAR"))
    sign = -1 if shown.startswith("-") else 1
    assert int(Decimal(shown.lstrip("-").removeprefix("R ").replace(",", "")) * 100) * sign == minor


def test_minor_unit_fields_become_money_in_the_accounts_currency():
    e = {"id": 1, "entity_type": "invoice", "action": "issued", "before": None,
         "after": {"total_minor": 517500, "vat_minor": 67500, "lines": 3, "state": "issued"}}
    t = present_event(e, currency="ZAR")
    assert t["title"] == "invoice issued"
    assert {c["field"]: c["after"] for c in t["changes"]} == {"total": "R 5,175.00", "vat": "R 675.00", "lines": "3", "state": "issued"}


def test_a_currency_recorded_in_the_event_wins_over_the_accounts():
    e = {"entity_type": "payment", "action": "received", "after": {"amount_minor": 10000, "currency": "USD"}}
    assert present_event(e, currency="ZAR")["changes"] == [{"field": "amount", "before": None, "after": "$ 100.00"}]


def test_before_and_after_amounts_show_as_a_change_and_money_dicts_are_money():
    e = {"entity_type": "arrangement", "action": "changed", "before": {"instalment_minor": 50000},
         "after": {"instalment_minor": 75000, "limit": {"amount": "1000.00", "currency": "ZAR"}, "fee": {"value": 99.0, "unit": "ZAR"}}}
    changes = {c["field"]: (c["before"], c["after"]) for c in present_event(e, currency="ZAR")["changes"]}
    assert changes == {"instalment": ("R 500.00", "R 750.00"), "limit": (None, "R 1,000.00"), "fee": (None, "R 99.00")}


def test_a_field_only_in_before_shows_as_removed_and_secrets_are_never_shown():
    e = {"entity_type": "user", "action": "changed", "before": {"email": "a@x.co", "password_hash": "argon2$..."}, "after": {"token": "abc"}}
    assert present_event(e, currency=None)["changes"] == [{"field": "email", "before": "a@x.co", "after": "—"}]


def test_a_message_event_shows_the_text_the_customer_got():
    e = {"entity_type": "message", "action": "queued", "after": {
        "event": "case.note_to_customer", "channel": "email", "to": "thandi@example.co.za", "subject": "Your case CS00000042",
        "body": "Dear Thandi,\nYour router is on its way.", "state": "queued", "run_at": "2026-11-23T07:00:00+00:00", "amount_minor": 5}}
    t = present_event(e, currency="ZAR")
    assert t["message"] == {"kind": "message", "subject": "Your case CS00000042", "body": "Dear Thandi,\nYour router is on its way.",
                            "channel": "email", "to": "thandi@example.co.za"}
    assert {c["field"] for c in t["changes"]} == {"event", "channel", "to", "state"}


def test_a_message_state_change_without_text_is_a_plain_change():
    t = present_event({"entity_type": "message", "action": "deliver", "before": {"state": "queued"}, "after": {"state": "sent"}}, currency="ZAR")
    assert t["message"] is None and t["changes"] == [{"field": "state", "before": "queued", "after": "sent"}]
