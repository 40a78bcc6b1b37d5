"""Customer accounts: creation, edits with optimistic versions, memos, search, duplicates, lifecycle."""

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from opsline.core.errors import Conflict, InvalidInput, NotFound, StaleVersion, TransitionNotAllowed
from opsline.core.events import AuditEvent
from opsline.customers import service
from opsline.customers.models import Account, Memo
from opsline.customers.schemas import AccountIn, AccountUpdate, MemoIn, SiteIn


def _new(session, now, actor, **kw):  # type: ignore[no-untyped-def]
    data = {"name": "Thabo Nkosi", "email": "thabo@example.co.za", "phone": "082 555 1234", "billing_line1": "12 Rivonia Road", "billing_city": "Johannesburg", "billing_postal_code": "2196"} | kw
    return service.create_account(session, data=AccountIn(**data), now=now, actor=actor)


def _count(session, model) -> int:  # type: ignore[no-untyped-def]
    return session.execute(select(func.count()).select_from(model)).scalar_one()


def test_created_account_has_a_check_digit_number_normalised_contacts_and_an_audit_event(session, now, actor):
    acc = _new(session, now, actor, sites=[SiteIn(line1="12 Rivonia Road", city="Johannesburg", fno_coverage=["vumatel"])])
    session.flush()
    assert len(acc.account_number) == 10
    assert acc.phone == "+27825551234"
    assert acc.email == "thabo@example.co.za"
    ev = session.execute(select(AuditEvent).where(AuditEvent.entity_type == "account", AuditEvent.entity_id == str(acc.id))).scalar_one()
    assert ev.action == "created" and ev.actor == "tester" and ev.account_id == acc.id
    data = service.account_360(session, account_id=acc.id)
    assert data["sites"][0]["fno_coverage"] == ["vumatel"]


def test_duplicate_account_number_is_refused_and_nothing_is_added(session, now, actor):
    _new(session, now, actor, account_number="1000000017")
    session.commit()
    before = _count(session, Account)
    with pytest.raises(Conflict):
        _new(session, now, actor, account_number="1000000017", name="Someone Else")
    session.rollback()
    assert _count(session, Account) == before


@pytest.mark.parametrize("field,value", [("email", "not-an-email"), ("phone", "12"), ("segment_code", None), ("bill_cycle_day", 31)])
def test_malformed_input_is_refused_with_the_field_named(field, value):
    data = {"name": "X", field: value} if value is not None else {"name": "X", "kind": "enterprise"}
    with pytest.raises(ValidationError) as exc:
        AccountIn(**data)
    assert (field if value is not None else "kind") in str(exc.value)


def test_unknown_segment_is_refused(session, now, actor):
    with pytest.raises(InvalidInput) as exc:
        _new(session, now, actor, segment_code="martians")
    assert exc.value.field == "segment_code"


def test_concurrent_edit_with_an_old_version_is_refused_and_keeps_the_first_edit(session, factory, now, actor):
    acc = _new(session, now, actor)
    session.commit()
    v = acc.version
    service.update_account(session, account_id=acc.id, data=AccountUpdate(version=v, name="Thabo M Nkosi", reason="customer asked"), now=now, actor=actor)
    session.commit()
    with pytest.raises(StaleVersion):
        service.update_account(session, account_id=acc.id, data=AccountUpdate(version=v, name="Overwritten"), now=now, actor=actor)
    session.rollback()
    with factory() as s2:
        assert s2.get(Account, acc.id).name == "Thabo M Nkosi"
        ev = s2.execute(select(AuditEvent).where(AuditEvent.action == "updated")).scalar_one()
        assert ev.before == {"name": "Thabo Nkosi"} and ev.after == {"name": "Thabo M Nkosi"} and ev.reason == "customer asked"


def test_unknown_account_raises_not_found(session):
    with pytest.raises(NotFound):
        service.account_360(session, account_id=999_999)


def test_memos_are_added_never_edited(session, now, actor):
    acc = _new(session, now, actor)
    memo = service.add_memo(session, account_id=acc.id, data=MemoIn(body="Promise to pay on the 25th", category="debtors"), now=now, actor=actor)
    session.commit()
    with pytest.raises(DBAPIError):
        session.execute(text("UPDATE memo SET body = 'changed' WHERE id = :id"), {"id": memo.id})
        session.flush()
    session.rollback()
    with pytest.raises(DBAPIError):
        session.execute(text("DELETE FROM memo WHERE id = :id"), {"id": memo.id})
    session.rollback()
    assert session.get(Memo, memo.id).body == "Promise to pay on the 25th"
    timeline = service.account_360(session, account_id=acc.id)["timeline"]
    assert [e["action"] for e in timeline][:1] == ["added"]


def test_audit_log_refuses_updates(session, now, actor):
    _new(session, now, actor)
    session.commit()
    with pytest.raises(DBAPIError):
        session.execute(text("UPDATE audit_event SET actor = 'someone'"))
    session.rollback()


def test_search_finds_accounts_by_name_number_email_phone_and_site_address(session, now, actor):
    a = _new(session, now, actor, sites=[SiteIn(line1="7 Jacaranda Crescent", suburb="Menlo Park", city="Pretoria")])
    _new(session, now, actor, name="Priya Naidoo", email="priya@example.com", phone="0731112222")
    session.commit()
    for q in ("thabo", a.account_number, "thabo@example", "0825551234", "jacaranda"):
        items = service.search_accounts(session, q=q)["items"]
        assert [i["id"] for i in items] == [a.id], q
    assert service.search_accounts(session, q="nobody-here")["items"] == []


def test_search_pages_through_results(session, now, actor):
    for i in range(5):
        _new(session, now, actor, name=f"Customer {i}", email=None, phone=None)
    session.commit()
    p1 = service.search_accounts(session, q="customer", page=1, page_size=2)
    p3 = service.search_accounts(session, q="customer", page=3, page_size=2)
    assert p1["has_next"] and len(p1["items"]) == 2
    assert not p3["has_next"] and len(p3["items"]) == 1


def test_duplicate_detection_pairs_similar_names_at_the_same_address_and_phone(session, now, actor):
    a = _new(session, now, actor)
    b = _new(session, now, actor, name="Thabo  Nkosi.", email="other@example.com")
    _new(session, now, actor, name="Lerato Mokoena", email="l@example.com", phone="0845550000", billing_line1="99 Long Street")
    session.commit()
    pairs = service.find_duplicates(session)
    assert len(pairs) == 1
    assert {pairs[0]["a"]["id"], pairs[0]["b"]["id"]} == {a.id, b.id}


def test_suspending_needs_a_reason_and_only_allowed_transitions_apply(session, now, actor):
    acc = _new(session, now, actor)
    with pytest.raises(InvalidInput):
        service.transition_account(session, account_id=acc.id, action="suspend", now=now, actor=actor, reason=" ")
    assert service.transition_account(session, account_id=acc.id, action="suspend", now=now, actor=actor, reason="non-payment") == ["reconnect", "close"]
    with pytest.raises(TransitionNotAllowed):
        service.transition_account(session, account_id=acc.id, action="suspend", now=now, actor=actor, reason="again")
    assert acc.status == "suspended"
