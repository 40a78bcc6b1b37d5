"""Accounts on the declared lifecycle (reasons, events other areas react to), numbers from a database sequence,
search through the full-text index and the exact number/email/phone path, and the customers' desk cards."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from opsline.core import domain_events
from opsline.core.errors import TransitionNotAllowed
from opsline.core.events import AuditEvent
from opsline.core.ids import account_number
from opsline.core.lifecycle import ReasonRequired
from opsline.customers import home, service
from opsline.customers.models import ACCOUNT, Account
from opsline.customers.schemas import AccountIn, AccountUpdate, ContactIn, SiteIn
from opsline.db import sequences


def _new(session, now, actor, **kw):  # type: ignore[no-untyped-def]
    data = {"name": "Thabo Nkosi", "email": "thabo@example.co.za", "phone": "082 555 1234", "billing_line1": "12 Rivonia Road",
            "billing_city": "Johannesburg", "billing_postal_code": "2196"} | kw
    return service.create_account(session, data=AccountIn(**data), now=now, actor=actor)


@pytest.fixture
def published(monkeypatch):  # type: ignore[no-untyped-def]
    """The domain events published (still delivered to their subscribers)."""
    seen: list[tuple[str, dict]] = []
    real = domain_events.publish

    def spy(session, name, payload, *, now, actor):  # type: ignore[no-untyped-def]
        seen.append((name, payload))
        real(session, name, payload, now=now, actor=actor)

    monkeypatch.setattr(domain_events, "publish", spy)
    return seen


def _audit(session, acc_id, action):  # type: ignore[no-untyped-def]
    return session.execute(select(AuditEvent).where(AuditEvent.entity_type == "account", AuditEvent.entity_id == str(acc_id),
                                                    AuditEvent.action == action)).scalars().all()


def test_suspend_and_reconnect_publish_account_events_with_reason_and_audit(session, now, actor, published):
    acc = _new(session, now, actor)
    session.commit()
    assert service.transition_account(session, account_id=acc.id, action="suspend", now=now, actor=actor, reason="arrears 90 days") == ["reconnect", "close"]
    later = now + timedelta(days=3)
    assert service.transition_account(session, account_id=acc.id, action="reconnect", now=later, actor=actor, reason="paid in full") == ["suspend", "close"]
    session.commit()
    names = [(n, p["action"], p["from"], p["reason"]) for n, p in published if n.startswith("account.")]
    assert names == [("account.suspended", "suspend", "active", "arrears 90 days"), ("account.active", "reconnect", "suspended", "paid in full")]
    ev = _audit(session, acc.id, "suspend")[0]
    assert ev.before == {"status": "active"} and ev.after == {"status": "suspended"} and ev.reason == "arrears 90 days"
    assert session.get(Account, acc.id).updated_at == later


@pytest.mark.parametrize("action", ["suspend", "close"])
def test_a_status_change_without_a_reason_is_refused_and_changes_nothing(session, now, actor, action):
    acc = _new(session, now, actor)
    session.commit()
    with pytest.raises(ReasonRequired) as exc:
        service.transition_account(session, account_id=acc.id, action=action, now=now, actor=actor, reason="   ")
    assert exc.value.field == "reason" and exc.value.status == 422
    session.rollback()
    assert session.get(Account, acc.id).status == "active" and _audit(session, acc.id, action) == []


@pytest.mark.parametrize("action", ["reconnect", "activate", "explode"])
def test_an_action_the_status_does_not_allow_is_refused_with_the_allowed_ones(session, now, actor, action):
    acc = _new(session, now, actor)
    session.commit()
    with pytest.raises(TransitionNotAllowed) as exc:
        service.transition_account(session, account_id=acc.id, action=action, now=now, actor=actor, reason="because")
    assert exc.value.extra["allowed"] == ["suspend", "close"]
    session.rollback()
    assert session.get(Account, acc.id).status == "active"


def test_a_closed_account_is_final(session, now, actor):
    acc = _new(session, now, actor)
    service.transition_account(session, account_id=acc.id, action="close", now=now, actor=actor, reason="emigrated")
    session.commit()
    assert service.account_dict(session.get(Account, acc.id))["allowed_actions"] == []
    with pytest.raises(TransitionNotAllowed, match="final"):
        service.transition_account(session, account_id=acc.id, action="suspend", now=now, actor=actor, reason="x")


def test_the_status_check_constraint_comes_from_the_lifecycle():
    checks = [c for c in Account.__table__.constraints if getattr(c, "name", None) and "status" in str(c.name)]
    assert any("'suspended'" in str(c.sqltext) for c in checks)
    assert set(ACCOUNT.state_values()) == {"pending", "active", "suspended", "closed"}


def test_account_numbers_come_from_the_sequence_and_skip_numbers_typed_by_hand(session, now, actor):
    first = _new(session, now, actor, name="First")
    n = int(first.account_number[:9]) - 100_000_000
    _new(session, now, actor, name="Typed", account_number=account_number(n + 1))  # the next value, taken by hand
    third = _new(session, now, actor, name="Third")
    assert third.account_number == account_number(n + 2)
    session.commit()
    # not count(*)+1: with three accounts, the next number is still the sequence's, whatever the row count
    assert sequences.next_value(session, sequences.ACCOUNT_NUMBER) == n + 3


def test_advance_to_moves_the_sequence_past_bulk_loaded_numbers(session):
    base = sequences.next_value(session, sequences.ACCOUNT_NUMBER) + 5000
    sequences.advance_to(session, sequences.ACCOUNT_NUMBER, base)
    assert sequences.next_value(session, sequences.ACCOUNT_NUMBER) == base + 1
    sequences.advance_to(session, sequences.ACCOUNT_NUMBER, 10)  # never backwards
    assert sequences.next_value(session, sequences.ACCOUNT_NUMBER) == base + 2
    with pytest.raises(KeyError):
        sequences.next_value(session, "no_such_seq")


def _ids(session, q, **kw):  # type: ignore[no-untyped-def]
    return [i["id"] for i in service.search_accounts(session, q=q, **kw)["items"]]


def test_search_by_words_accents_sites_and_exact_number_email_and_phone(session, now, actor):
    a = _new(session, now, actor, sites=[SiteIn(line1="7 Jacaranda Crescent", suburb="Menlo Park", city="Pretoria")],
             contacts=[ContactIn(name="Lerato Accounts", email="lerato@finance.example.com", phone="011 555 0101")])
    b = _new(session, now, actor, name="Thébo Nkosinathi", email="Other@Example.com", phone="0731112222")
    session.commit()
    assert _ids(session, "thabo nkosi") == [a.id]            # every word starts a word of the name
    assert _ids(session, "nkos") == [a.id, b.id]             # word prefix, ordered by name
    assert _ids(session, "thebo") == [b.id]                  # accents folded
    assert _ids(session, "jacaranda menlo") == [a.id]        # a site's address
    assert _ids(session, a.account_number) == [a.id]         # exact account number
    assert set(_ids(session, a.account_number[:7])) == {a.id, b.id}  # a number prefix (consecutive numbers)
    assert _ids(session, "+27 82 555 1234") == [a.id]        # phone normalised to E.164
    assert _ids(session, "(082) 555-1234") == [a.id]
    assert _ids(session, "011 555 0101") == [a.id]           # a contact's phone
    assert _ids(session, "LERATO@finance.example.com") == [a.id]  # a contact's email, any case
    assert _ids(session, "other@example.com") == [b.id]      # the account's email, normalised
    assert _ids(session, "thabo@example") == [a.id]          # a partial email falls back to its words


def test_search_follows_edits_and_new_sites_through_the_index_triggers(session, now, actor):
    a = _new(session, now, actor)
    session.commit()
    service.update_account(session, account_id=a.id, data=AccountUpdate(version=a.version, name="Sipho Dlamini"), now=now, actor=actor)
    service.add_site(session, account_id=a.id, data=SiteIn(line1="3 Protea Lane", city="Durban"), now=now, actor=actor)
    session.commit()
    assert _ids(session, "sipho") == [a.id] and _ids(session, "nkosi") == []
    assert _ids(session, "protea") == [a.id]


def test_search_combines_text_with_filters_and_pages(session, now, actor):
    ids = [_new(session, now, actor, name=f"Zanele Mahlangu {i}", email=f"z{i}@example.com", phone=None).id for i in range(5)]
    service.transition_account(session, account_id=ids[0], action="suspend", now=now, actor=actor, reason="arrears")
    session.commit()
    assert _ids(session, "zanele", status="suspended") == [ids[0]]
    page1 = service.search_accounts(session, q="mahlangu", page_size=2, with_total=True)
    page3 = service.search_accounts(session, q="mahlangu", page_size=2, page=3, with_total=True)
    assert page1["has_next"] and page1["total"] == 5 and not page3["has_next"] and len(page3["items"]) == 1 and page3["total"] == 5


@pytest.mark.parametrize("q", ['"', "*", "AND OR NOT", "nkosi*)", "'; DROP TABLE account; --", "ñ", "0000000000", "@", "+"])
def test_odd_search_input_finds_nothing_or_something_but_never_fails(session, now, actor, q):
    _new(session, now, actor)
    session.commit()
    res = service.search_accounts(session, q=q)
    assert isinstance(res["items"], list)
    assert session.execute(select(func.count()).select_from(Account)).scalar_one() == 1


def test_desk_cards_count_possible_duplicates_and_suspended_accounts(session, now, actor):
    a = _new(session, now, actor)
    _new(session, now, actor, name="Thabo Nkosi Jr", email="jr@example.co.za")  # same phone
    c = _new(session, now, actor, name="Other Person", email="o@example.co.za", phone="0731112222")
    service.transition_account(session, account_id=c.id, action="suspend", now=now, actor=actor, reason="arrears")
    session.commit()
    cards = {card.title: card for card in home.home(session, now=now + timedelta(days=2), actor=actor, tz=None)}
    dup, sus = cards["Possible duplicate accounts"], cards["Accounts suspended"]
    assert dup.count == 2 and dup.href == "/accounts/duplicates"
    assert sus.count == 1 and sus.href == "/accounts?status=suspended" and "2 d" in sus.hint
    assert sus.chart and sum(sus.chart["data"]["datasets"][0]["data"]) == 3
    assert {i["id"] for i in service.search_accounts(session, status="suspended")["items"]} == {c.id}
    assert a.id not in {i["id"] for i in service.search_accounts(session, status="suspended")["items"]}


def test_a_misspelt_name_finds_nothing_but_postgresql_suggests_similar_accounts(session, now, actor):
    a = _new(session, now, actor, name="Nomvula Mahlangu")
    session.commit()
    res = service.search_accounts(session, q="Nomvula Mahlamgu")
    assert res["items"] == []
    if session.get_bind().dialect.name == "postgresql":
        assert [s["id"] for s in res["similar"]] == [a.id]
    else:
        assert res["similar"] == []


def test_bulk_loaded_accounts_are_searchable_and_later_accounts_still_indexed(engine, session, now, actor):
    import numpy as np

    from opsline.demo import DemoContext, _NoProgress, load_customers

    ctx = DemoContext(engine=engine, now=now, rng=np.random.default_rng(5), accounts=120, progress=_NoProgress())
    load_customers(ctx, chunk=50)
    some = session.execute(select(Account).where(Account.id == int(ctx.account_ids[77]))).scalar_one()
    assert some.id in _ids(session, some.name) and _ids(session, some.account_number) == [some.id]
    later = _new(session, now, actor, name="Kagiso Maseko Unique")
    session.commit()
    assert _ids(session, "kagiso maseko unique") == [later.id]
    # the next number continues after the bulk-loaded ones (PostgreSQL's sequence outlives this test's rows)
    assert int(later.account_number[:9]) - 100_000_000 > int(ctx.account_ids[-1])
