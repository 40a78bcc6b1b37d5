"""Merging duplicates over HTTP: from the duplicates page to the preview, the merge (everything moved, in the audit
trail, memos on both), the account panels, the refusals as problem+json, and the undo."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select, text

from opsline.billing.invoicing.samples import make_finalised_invoice
from opsline.core.events import Actor, AuditEvent
from opsline.customers.data_models import AccountMerge
from opsline.customers.models import Account


def _pair(factory, now):  # type: ignore[no-untyped-def]
    from opsline.customers import service
    from opsline.customers.schemas import AccountIn

    with factory.begin() as s:
        a = service.create_account(s, data=AccountIn(name="Ayesha Pillay", email="ayesha@example.co.za", phone="+27834445555", billing_line1="3 Oak Lane",
                                                     billing_postal_code="4001"), now=now - timedelta(days=300), actor=Actor(name="seed")).id
        b = service.create_account(s, data=AccountIn(name="Ayesha Pilay", email="ayesha.p@example.co.za", phone="+27834445555", billing_line1="3 Oak Lane",
                                                     billing_postal_code="4001"), now=now - timedelta(days=20), actor=Actor(name="seed")).id
        make_finalised_invoice(s, account_id=b, now=now - timedelta(days=5), period_start=date(2026, 11, 1), period_end=date(2026, 12, 1),
                               lines=[{"description": "Fibre 50/50", "amount_minor": 60000}])
    return a, b


def test_a_pair_from_the_duplicates_page_is_previewed_merged_shown_and_undone(client_as, factory, now):
    a, b = _pair(factory, now)
    c = client_as("second_line_agent")
    dup = c.get("/accounts/duplicates")
    assert dup.status_code == 200 and f"/merges/preview?survivor={a}&amp;merged={b}" in dup.text
    pv = c.get(f"/merges/preview?survivor={a}&merged={b}")
    assert pv.status_code == 200 and "Field by field" in pv.text and "ayesha.p@example.co.za" in pv.text and "<td>invoice</td>" in pv.text
    assert "merge the parties too" in pv.text
    r = c.post("/merges", data={"survivor_id": str(a), "merged_id": str(b), "choice_email": "merged", "reason": "same person, two sign-ups"},
               follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/accounts/{a}#panel-merges"
    with factory() as s:
        assert s.get(Account, b).status == "closed" and s.get(Account, a).email == "ayesha.p@example.co.za"
        assert s.execute(text("SELECT COUNT(*) FROM invoice WHERE account_id = :a"), {"a": a}).scalar_one() == 1
        (ev,) = s.execute(select(AuditEvent).where(AuditEvent.entity_type == "account_merge")).scalars()
        assert ev.after["rows_moved"]["invoice.account_id"] == 1 and ev.actor == c.username
        mid = s.execute(select(AccountMerge.id)).scalar_one()
    assert "was merged into" in c.get(f"/accounts/{b}/risk-banner").text
    panel = c.get(f"/accounts/{b}/panel/merges")
    assert "was merged into" in panel.text and f"/accounts/{a}" in panel.text
    assert f"/merges/{mid}/undo" in c.get(f"/accounts/{a}/panel/merges").text
    again = c.post("/merges", data={"survivor_id": str(a), "merged_id": str(b), "reason": "again"}, headers={"accept": "application/json"})
    assert again.status_code == 409 and "already merged" in again.json()["detail"]
    assert c.post(f"/merges/{mid}/undo", data={"reason": ""}, headers={"accept": "application/json"}).status_code == 422
    undo = c.post(f"/merges/{mid}/undo", data={"reason": "two different people"}, follow_redirects=False)
    assert undo.status_code == 303
    with factory() as s:
        assert s.get(Account, b).status == "active" and s.get(Account, a).email == "ayesha@example.co.za"
        assert s.execute(text("SELECT COUNT(*) FROM invoice WHERE account_id = :b"), {"b": b}).scalar_one() == 1


def test_refused_merges_answer_with_the_reason_and_change_nothing(client_as, factory, now):
    a, b = _pair(factory, now)
    with factory.begin() as s:
        s.execute(text("UPDATE account SET currency = 'USD' WHERE id = :b"), {"b": b})
    c = client_as("service_manager")
    pv = c.get(f"/merges/preview?survivor={a}&merged={b}")
    assert "different currencies" in pv.text and "disabled" in pv.text
    r = c.post("/merges", data={"survivor_id": str(a), "merged_id": str(b), "reason": "dup"}, headers={"accept": "application/json"})
    assert r.status_code == 409 and "different currencies" in r.json()["detail"]
    same = c.post("/merges", data={"survivor_id": str(a), "merged_id": str(a), "reason": "dup"}, headers={"accept": "application/json"})
    assert same.status_code == 422 and "itself" in same.json()["detail"]
    assert client_as("debtors_clerk").post("/merges", data={"survivor_id": str(a), "merged_id": str(b), "reason": "x"},
                                           headers={"accept": "application/json"}).status_code == 403
    with factory() as s:
        assert s.execute(select(func.count()).select_from(AccountMerge)).scalar_one() == 0
        assert s.get(Account, b).status == "active"
