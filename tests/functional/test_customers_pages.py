"""Account pages over HTTP: search by number, email and phone from the list page; status changes need a reason."""

from sqlalchemy import select

from opsline.core.events import AuditEvent
from opsline.customers import service
from opsline.customers.models import Account
from opsline.customers.schemas import AccountIn


def _account(factory, now, actor, **kw):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        acc = service.create_account(s, data=AccountIn(**({"name": "Ayesha Pillay", "email": "ayesha@example.co.za", "phone": "083 444 5555"} | kw)),
                                     now=now, actor=actor)
        return acc.id, acc.account_number


def test_the_account_list_finds_an_account_by_number_email_and_phone(client_as, factory, now, actor):
    acc_id, number = _account(factory, now, actor)
    c = client_as("second_line_agent")
    for q in (number, "AYESHA@example.co.za", "+27 83 444 5555", "pillay"):
        page = c.get("/accounts", params={"q": q})
        assert page.status_code == 200 and f"/accounts/{acc_id}" in page.text, q
    assert f"/accounts/{acc_id}" not in c.get("/accounts", params={"q": "nobody-like-this"}).text


def test_suspending_without_a_reason_is_refused_and_the_account_stays_active(client_as, factory, now, actor):
    acc_id, _ = _account(factory, now, actor)
    c = client_as("debtors_clerk")
    r = c.post(f"/accounts/{acc_id}/status", data={"action": "suspend", "reason": ""}, headers={"accept": "application/json"},
               follow_redirects=False)
    assert r.status_code == 422 and "reason" in r.text
    with factory() as s:
        assert s.get(Account, acc_id).status == "active"
        assert s.execute(select(AuditEvent).where(AuditEvent.entity_type == "account", AuditEvent.action == "suspend")).first() is None
    ok = c.post(f"/accounts/{acc_id}/status", data={"action": "suspend", "reason": "arrears"}, follow_redirects=False)
    assert ok.status_code == 303
    with factory() as s:
        assert s.get(Account, acc_id).status == "suspended"
    page = c.get(f"/accounts/{acc_id}")
    assert "reconnect" in page.text
