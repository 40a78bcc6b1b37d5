"""Data quality over HTTP: the page with counts and worklists, exports through the safe writer, the phone fix, the
desk card, and "confirm or update details" from a case leaving a memo."""

from __future__ import annotations

from sqlalchemy import select, text

from opsline.core.events import Actor
from opsline.customers.models import Account, Memo


def _accounts(factory, now):  # type: ignore[no-untyped-def]
    from opsline.customers import service
    from opsline.customers.schemas import AccountIn

    with factory.begin() as s:
        a = service.create_account(s, data=AccountIn(name="Zanele Khumalo", email="zanele@example.co.za", phone="+27834441111"), now=now, actor=Actor(name="seed")).id
        b = service.create_account(s, data=AccountIn(name="Pieter Botha", phone="+27834442222"), now=now, actor=Actor(name="seed")).id
        s.execute(text("UPDATE account SET phone = '083 444 1111' WHERE id = :a"), {"a": a})
    return a, b


def test_the_page_lists_each_check_exports_it_and_fixes_phones(client_as, factory, now):
    a, b = _accounts(factory, now)
    c = client_as("second_line_agent")
    page = c.get("/data-quality?check=invalid_phone")
    assert page.status_code == 200 and "083 444 1111" in page.text and "Write as +27834441111" in page.text
    assert "Pieter Botha" in c.get("/data-quality?check=missing_email").text
    csv = c.get("/data-quality/missing_email/export.csv")
    assert csv.status_code == 200 and csv.headers["content-disposition"].startswith("attachment") and "Pieter Botha" in csv.content.decode("utf-8-sig")
    assert c.get("/data-quality/missing_email/export.xlsx").content[:2] == b"PK"
    assert c.get("/data-quality?check=nonsense", headers={"accept": "application/json"}).status_code == 422
    assert "Invalid phone numbers" in c.get("/desk").text
    r = c.post("/data-quality/phones/normalise", data={"account_id": str(a)}, follow_redirects=False)
    assert r.status_code == 303 and "fixed+1" in r.headers["location"]
    with factory() as s:
        assert s.get(Account, a).phone == "+27834441111"
    assert client_as("debtors_clerk").get("/data-quality").status_code == 403


def test_details_confirmed_from_a_case_are_saved_with_a_memo_and_bad_input_changes_nothing(client_as, factory, now):
    a, b = _accounts(factory, now)
    c = client_as("second_line_agent")
    banner = c.get(f"/accounts/{b}/risk-banner?contact=case+C-000007&back=/cases/7")
    assert "Confirm or update" in banner.text and 'value="/cases/7"' in banner.text
    with factory() as s:
        version = s.get(Account, b).version
    bad = c.post(f"/accounts/{b}/details/confirm", data={"version": str(version), "email": "nope", "contact": "case C-000007"},
                 headers={"accept": "application/json"})
    assert bad.status_code == 422
    ok = c.post(f"/accounts/{b}/details/confirm", data={"version": str(version), "email": "pieter@example.co.za", "phone": "+27834442222",
                                                        "contact": "case C-000007", "back": "/cases/7"}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/cases/7"
    with factory() as s:
        assert s.get(Account, b).email == "pieter@example.co.za"
        (memo,) = s.execute(select(Memo).where(Memo.account_id == b)).scalars()
        assert "case C-000007" in memo.body and "email — → pieter@example.co.za" in memo.body
    assert "Confirm details" in c.get(f"/accounts/{b}/panel/details_check").text
