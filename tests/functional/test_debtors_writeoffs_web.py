"""Write-offs and prescribed debt over HTTP: the clerk proposes (VAT relief shown), the manager sees the desk card and
approves (never their own), the list shows waiting first with totals, the VAT relief export for finance; bulk with a
dry-run count first, approved in one action; the prescribed debt page and export; bad input answered with problem+json
naming the field and nothing changed."""

from __future__ import annotations

import io
import re

from sqlalchemy import text

from debtors_helpers import TODAY, counts, debtor


def _counts(factory):  # type: ignore[no-untyped-def]
    with factory() as s:
        c = counts(s)
        for t in ("write_off", "write_off_vat", "write_off_batch", "ledger_entry"):
            c[t] = s.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
        return c


def test_clerk_proposes_manager_approves_and_finance_exports_the_vat_relief(client_as, factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Thabo Nkosi", amount=59900, overdue_days=150)
    clerk = client_as("debtors_clerk")
    manager = client_as("debtors_manager")
    form = clerk.get(f"/debtors/writeoffs/new?account={a['number']}")
    assert form.status_code == 200 and "ZAR 599.00" in form.text and "ZAR 78.13" in form.text  # the VAT relief before proposing
    r = clerk.post("/debtors/writeoffs", data={"account": a["number"], "amount": "599.00", "reason": "estate insolvent"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    wid = int(re.search(r"/debtors/writeoffs/(\d+)", r.headers["location"]).group(1))
    detail = clerk.get(r.headers["location"])
    assert detail.status_code == 200 and "ZAR 78.13" in detail.text and "VAT15" in detail.text and f'/debtors/writeoffs/{wid}/approve' not in detail.text
    home = manager.get("/desk/debtors_manager")
    assert "Approvals waiting for you" in home.text
    desk = manager.get("/debtors")
    assert desk.status_code == 200 and f'href="/debtors/writeoffs/{wid}">WO-{wid}</a>' in desk.text  # on the manager's desk, linked
    assert 'id="approvals"' not in clerk.get("/debtors").text
    listing = manager.get("/debtors/writeoffs")
    assert listing.status_code == 200 and f"WO-{wid}" in listing.text and "ZAR 78.13" in listing.text
    assert clerk.post(f"/debtors/writeoffs/{wid}/approve").status_code == 403  # a clerk never approves
    ok = manager.post(f"/debtors/writeoffs/{wid}/approve", follow_redirects=False)
    assert ok.status_code == 303 and "approved+and+posted" in ok.headers["location"]
    with factory() as s:
        assert s.execute(text("SELECT SUM(amount_minor) FROM ledger_entry WHERE account_id = :a"), {"a": a["id"]}).scalar_one() == 0
    csv = manager.get("/debtors/writeoffs/export?format=csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    body = csv.content.decode("utf-8-sig")
    assert f"WO-{wid}" in body and "VAT15" in body and "78.13" in body and "599.00" in body
    xlsx = manager.get("/debtors/writeoffs/export?format=xlsx")
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    import zipfile

    sheet = zipfile.ZipFile(io.BytesIO(xlsx.content)).read("xl/worksheets/sheet1.xml").decode()
    assert "<v>78.13</v>" in sheet and "<v>599</v>" in sheet  # numbers, not text


def test_a_manager_cannot_approve_their_own_write_off_and_bad_input_changes_nothing(client_as, factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Sizwe Mokoena", amount=59900, overdue_days=150)
    manager = client_as("debtors_manager")
    r = manager.post("/debtors/writeoffs", data={"account": a["number"], "amount": "100", "reason": "small"}, follow_redirects=False)
    wid = int(re.search(r"/debtors/writeoffs/(\d+)", r.headers["location"]).group(1))
    before = _counts(factory)
    own = manager.post(f"/debtors/writeoffs/{wid}/approve")
    assert own.status_code == 403 and own.headers["content-type"].startswith("application/problem+json") and own.json()["field"] == "actor"
    cases = [
        ("/debtors/writeoffs", {"account": a["number"], "amount": "600.00", "reason": "too much"}, "amount"),
        ("/debtors/writeoffs", {"account": a["number"], "amount": "0", "reason": "zero"}, "amount"),
        ("/debtors/writeoffs", {"account": a["number"], "amount": "-5", "reason": "negative"}, "amount"),
        ("/debtors/writeoffs", {"account": a["number"], "amount": "abc", "reason": "words"}, "amount"),
        ("/debtors/writeoffs", {"account": a["number"], "amount": "", "reason": "blank"}, "amount"),
        ("/debtors/writeoffs", {"account": a["number"], "amount": "10", "reason": ""}, "reason"),
        ("/debtors/writeoffs", {"account": "0000000000", "amount": "10", "reason": "who"}, "account"),
        (f"/debtors/writeoffs/{wid}/reject", {"reason": ""}, "reason"),
        ("/debtors/writeoffs/bulk", {"status": "closed", "max_balance": "x", "min_days": "0", "reason": "r"}, "max_balance"),
        ("/debtors/writeoffs/bulk", {"status": "closed", "max_balance": "", "min_days": "-1", "reason": "r"}, "min_days"),
        ("/debtors/writeoffs/bulk", {"status": "closed", "max_balance": "", "min_days": "0", "reason": ""}, "reason"),
    ]
    for url, data, field in cases:
        r = manager.post(url, data=data)
        assert r.status_code == 422, (url, data, r.text)
        assert r.headers["content-type"].startswith("application/problem+json") and r.json()["field"] == field, (data, r.json())
    assert _counts(factory) == before


def test_bulk_dry_run_counts_first_then_one_approval_posts_them_all(client_as, factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        ids = []
        for k in range(3):
            a = debtor(s, name=f"Closed Small{k}", amount=4000, overdue_days=200)
            s.execute(text("UPDATE account SET status = 'closed' WHERE id = :a"), {"a": a["id"]})
            ids.append(a["id"])
        debtor(s, name="Open Account", amount=4000, overdue_days=200)
    clerk = client_as("debtors_clerk")
    manager = client_as("debtors_manager")
    before = _counts(factory)
    dry = clerk.get("/debtors/writeoffs/bulk?status=closed&max_balance=100&min_days=90&check=1")
    assert dry.status_code == 200 and "3 accounts" in dry.text and "ZAR 120.00" in dry.text
    assert _counts(factory) == before
    r = clerk.post("/debtors/writeoffs/bulk", data={"status": "closed", "max_balance": "100", "min_days": "90", "reason": "closed, small, old"},
                   follow_redirects=False)
    assert r.status_code == 303 and "3+accounts" in r.headers["location"]
    bid = int(re.search(r"/batches/(\d+)", r.headers["location"]).group(1))
    page = manager.get(f"/debtors/writeoffs/batches/{bid}")
    assert page.status_code == 200 and "ZAR 120.00" in page.text and "Approve and post all" in page.text
    assert clerk.post(f"/debtors/writeoffs/batches/{bid}/approve").status_code == 403
    ok = manager.post(f"/debtors/writeoffs/batches/{bid}/approve", follow_redirects=False)
    assert ok.status_code == 303 and "3+write-offs+posted" in ok.headers["location"]
    with factory() as s:
        assert s.execute(text("SELECT COUNT(*) FROM ledger_entry WHERE kind = 'write_off'")).scalar_one() == 3


def test_prescribed_debt_page_lists_it_with_totals_and_exports(client_as, factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        old = debtor(s, name="Ancient Debt", amount=40000, overdue_days=3 * 365 + 30)
        debtor(s, name="Fresh Debt", amount=20000, overdue_days=30)
    clerk = client_as("debtors_clerk")
    page = clerk.get("/debtors/prescribed")
    assert page.status_code == 200 and "Ancient Debt" in page.text and "Fresh Debt" not in page.text and "ZAR 400.00" in page.text
    assert f"/debtors/writeoffs/new?account={old['number']}" in page.text
    csv = clerk.get("/debtors/prescribed/export?format=csv").content.decode("utf-8-sig")
    assert old["number"] in csv and "400.00" in csv and "Fresh Debt" not in csv
    assert clerk.get("/debtors/prescribed/export?format=pdf").status_code == 422
    dry = clerk.get(f"/debtors/run?date={TODAY.isoformat()}")
    assert dry.status_code == 200 and "Prescribed debt" in dry.text


def test_a_dunning_write_off_proposal_opens_the_write_off_form_from_its_row(client_as, factory):  # type: ignore[no-untyped-def]
    from datetime import timedelta

    with factory.begin() as s:
        a = debtor(s, name="Long Overdue", amount=59900, overdue_days=130)
        pol = s.execute(text("SELECT id FROM dunning_policy WHERE code = 'default'")).scalar_one()
        step = s.execute(text("SELECT id FROM dunning_step WHERE policy_id = :p AND position = 7"), {"p": pol}).scalar_one()
        s.execute(text("INSERT INTO dunning_account (account_id, policy_id, position, step_id, last_step_on, next_step_from) VALUES (:a, :p, 7, :s, :d, :d)"),
                  {"a": a["id"], "p": pol, "s": step, "d": TODAY - timedelta(days=40)})
    clerk = client_as("debtors_clerk")
    assert clerk.post("/debtors/run", data={"date": TODAY.isoformat()}, follow_redirects=False).status_code == 303
    desk = clerk.get("/debtors")
    link = re.search(r'href="(/debtors/writeoffs/new\?account=[^"]+)"', desk.text).group(1).replace("&amp;", "&")
    aid = re.search(r"action_id=(\d+)", link).group(1)
    form = clerk.get(link)
    assert form.status_code == 200 and f'name="action_id" value="{aid}"' in form.text and "ZAR 599.00" in form.text
    r = clerk.post("/debtors/writeoffs", data={"account": a["number"], "amount": "599.00", "reason": "dunning ran out of steps", "action_id": aid},
                   follow_redirects=False)
    assert r.status_code == 303
    assert f"DUN-{aid}" in clerk.get(r.headers["location"]).text
    with factory() as s:
        assert s.execute(text("SELECT state FROM dunning_action WHERE id = :i"), {"i": int(aid)}).scalar_one() == "accepted"
    bad = clerk.post("/debtors/writeoffs", data={"account": a["number"], "amount": "1", "reason": "x", "action_id": "abc"})
    assert bad.status_code == 422 and bad.json()["field"] == "dunning_action_id"


def test_the_account_page_shows_the_write_off_on_its_timeline_and_memos(client_as, factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Timeline Tshabalala", amount=59900, overdue_days=150)
    clerk = client_as("debtors_clerk")
    manager = client_as("debtors_manager")
    r = clerk.post("/debtors/writeoffs", data={"account": a["number"], "amount": "599.00", "reason": "emigrated, no assets"}, follow_redirects=False)
    wid = int(re.search(r"/debtors/writeoffs/(\d+)", r.headers["location"]).group(1))
    assert manager.post(f"/debtors/writeoffs/{wid}/approve", follow_redirects=False).status_code == 303
    page = manager.get(f"/accounts/{a['id']}")
    assert page.status_code == 200
    assert f"Write-off WO-{wid} proposed by" in page.text and f"Write-off WO-{wid} approved by" in page.text


def test_a_second_proposal_for_an_account_with_one_waiting_is_a_409_already_proposed_and_changes_nothing(client_as, factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Nomsa Dube", amount=59900, overdue_days=150)
    clerk = client_as("debtors_clerk")
    assert clerk.post("/debtors/writeoffs", data={"account": a["number"], "amount": "599.00", "reason": "estate insolvent"},
                      follow_redirects=False).status_code == 303
    before = _counts(factory)
    r = clerk.post("/debtors/writeoffs", data={"account": a["number"], "amount": "100.00", "reason": "again"}, headers={"Accept": "application/json"})
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["title"] == "Write-off already proposed" and body["field"] == "account" and "WO-" in body["detail"]
    assert _counts(factory) == before
