"""Arrangements over HTTP: a clerk makes a promise from the account (form), a plan above the clerk's limit waits for a
manager (never the proposer), the list puts promises due today first, cancel needs a reason, bad input answers
problem+json naming the field with nothing changed, the suspended-accounts list and the desk cards."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import text

from debtors_helpers import TODAY, debtor


def _n(factory, table="arrangement"):  # type: ignore[no-untyped-def]
    with factory() as s:
        return {t: s.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in (table, "arrangement_instalment", "memo")}


def test_a_clerk_makes_a_promise_from_the_form_and_sees_it_first_in_the_list(client_as, factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Thabo Promise", amount=59900, overdue_days=22)
    clerk = client_as("debtors_clerk")
    form = clerk.get(f"/debtors/arrangements/new?account={a['number']}")
    assert form.status_code == 200 and "599.00" in form.text and 'name="due_date"' in form.text
    r = clerk.post("/debtors/arrangements", data={"account": a["number"], "kind": "promise", "due_date": [TODAY.isoformat()],
                                                  "instalment_amount": ["599.00"], "note": "pays at month end"}, follow_redirects=False)
    assert r.status_code == 303 and "active" in r.headers["location"]
    detail = clerk.get(r.headers["location"])
    assert detail.status_code == 200 and "Promise to pay" in detail.text and "Cancel arrangement" in detail.text and ">Approve</button>" not in detail.text
    listing = clerk.get("/debtors/arrangements")
    assert listing.status_code == 200 and "Thabo Promise" in listing.text and "<strong>today</strong>" in listing.text
    home = clerk.get("/desk/debtors_clerk")
    assert "Promises due today or overdue" in home.text and "Broken promises to follow up" in home.text and "Calls to make" in home.text
    assert "Approvals waiting for you" not in home.text  # a clerk approves nothing on the desk
    aid = re.search(r"/debtors/arrangements/(\d+)", r.headers["location"]).group(1)
    bad = clerk.post(f"/debtors/arrangements/{aid}/cancel", data={"reason": ""})
    assert bad.status_code == 422 and bad.json()["field"] == "reason"
    ok = clerk.post(f"/debtors/arrangements/{aid}/cancel", data={"reason": "customer changed mind"}, follow_redirects=False)
    assert ok.status_code == 303


def test_a_plan_above_the_clerks_limit_waits_for_a_manager_and_the_clerk_cannot_approve_it(client_as, factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Big Plan", amount=900000, overdue_days=40)
    clerk, manager = client_as("debtors_clerk"), client_as("debtors_manager")
    r = clerk.post("/debtors/arrangements", data={"account": a["number"], "kind": "plan",
                                                  "due_date": [(TODAY + timedelta(days=5)).isoformat(), (TODAY + timedelta(days=35)).isoformat(), ""],
                                                  "instalment_amount": ["4000", "5000", ""]}, follow_redirects=False)
    assert r.status_code == 303 and "waits+for+approval" in r.headers["location"]
    aid = re.search(r"/debtors/arrangements/(\d+)", r.headers["location"]).group(1)
    own = clerk.post(f"/debtors/arrangements/{aid}/approve")
    assert own.status_code == 403 and own.json()["field"] == "actor"
    page = manager.get(f"/debtors/arrangements/{aid}")
    assert ">Approve</button>" in page.text and "above the proposer" in page.text
    ok = manager.post(f"/debtors/arrangements/{aid}/approve", follow_redirects=False)
    assert ok.status_code == 303
    with factory() as s:
        assert s.execute(text("SELECT state FROM arrangement WHERE id = :i"), {"i": int(aid)}).scalar_one() == "active"


def test_bad_arrangements_get_problem_json_naming_the_field_and_change_nothing(client_as, factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = debtor(s, name="Bad Input", amount=59900, overdue_days=22)
    clerk = client_as("debtors_clerk")
    before = _n(factory)
    d = lambda k: (TODAY + timedelta(days=k)).isoformat()  # noqa: E731
    cases = [
        ({"kind": "plan", "due_date": [d(3), d(10)], "instalment_amount": ["100", "100"]}, "instalments"),
        ({"kind": "promise", "due_date": [d(-1)], "instalment_amount": ["599.00"]}, "due_date"),
        ({"kind": "promise", "due_date": [d(3)], "instalment_amount": ["0"]}, "amount"),
        ({"kind": "plan", "due_date": [d(3), d(10)], "instalment_amount": ["699", "-100"]}, "instalments[2].amount"),
        ({"kind": "promise", "due_date": ["31/12/2026"], "instalment_amount": ["599"]}, "due_date"),
        ({"kind": "promise", "due_date": [d(3)], "instalment_amount": ["abc"]}, "amount"),
        ({"kind": "promise", "due_date": [d(3)], "instalment_amount": ["599"], "account": "ACC-NOPE"}, "account"),
    ]
    for data, field in cases:
        r = clerk.post("/debtors/arrangements", data={"account": a["number"], **data})
        assert r.status_code == 422, (data, r.text)
        assert r.headers["content-type"].startswith("application/problem+json") and r.json()["field"] == field, (data, r.json())
    assert _n(factory) == before


def test_the_suspended_list_shows_arrears_and_days_and_a_viewer_without_the_permission_cannot_arrange(client_as, factory):  # type: ignore[no-untyped-def]
    from opsline.core.events import Actor
    from opsline.customers import service as customers
    from debtors_helpers import at

    with factory.begin() as s:
        a = debtor(s, name="Suspended Sam", amount=59900, overdue_days=40)
        customers.transition_account(s, account_id=a["id"], action="suspend", now=at(TODAY - timedelta(days=4)), actor=Actor.system("dunning"),
                                     reason="dunning: suspension")
    clerk = client_as("debtors_clerk")
    page = clerk.get("/debtors/suspended")
    assert page.status_code == 200 and "Suspended Sam" in page.text and "599.00" in page.text and ">4<" in page.text and "dunning" in page.text
    assert f"/debtors/arrangements/new?account={a['number']}" in page.text
    other = client_as("billing_analyst")
    assert other.post("/debtors/arrangements", data={"account": a["number"], "kind": "promise"}).status_code == 403
