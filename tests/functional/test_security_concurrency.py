"""Concurrency turns into the right answers, never 500s (SQLite and PostgreSQL): account numbers from the database
sequence, an Idempotency-Key sent many times at once replays the first answer, and concurrent edits of the same
version give one success and 409s."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from opsline.customers.models import Account

N = 8
BODY = {
    "name": "Mokoena Logistics (Pty) Ltd",
    "engagedParty": {"@referredType": "Organization"},
    "contactMedium": [{"mediumType": "email", "characteristic": {"emailAddress": "accounts@mokoena.co.za"}}],
    "characteristic": [{"name": "accountType", "value": "b2b"}, {"name": "segment", "value": "sme"}, {"name": "valueTier", "value": "high_value"}],
}
CUSTOMERS = "/tmf-api/customerManagement/v4/customer"


def _together(app, headers: dict[str, str], call):  # type: ignore[no-untyped-def]
    """Run `call(client, i)` from N threads, each with its own client, released at the same instant."""
    barrier = Barrier(N)

    def one(i: int):  # type: ignore[no-untyped-def]
        with TestClient(app, raise_server_exceptions=False) as c:
            c.headers.update(headers)
            barrier.wait()
            return call(c, i)

    with ThreadPoolExecutor(N) as pool:
        return list(pool.map(one, range(N)))


def test_customers_created_at_the_same_instant_get_distinct_account_numbers_from_the_sequence(app, api_token, factory):
    answers = _together(app, api_token("admin"), lambda c, i: c.post(CUSTOMERS, json=BODY | {"name": f"Concurrent {i}"}))
    assert [a.status_code for a in answers] == [201] * N, [a.text[:200] for a in answers if a.status_code != 201]
    with factory() as s:
        numbers = s.scalars(select(Account.account_number)).all()
    assert len(numbers) == N == len(set(numbers))


def test_one_idempotency_key_sent_many_times_at_once_creates_once_and_replays_the_first_answer(app, api_token, factory):
    answers = _together(app, api_token("admin") | {"Idempotency-Key": "race-1"}, lambda c, i: c.post(CUSTOMERS, json=BODY))
    assert {a.status_code for a in answers} == {201}, [a.text[:200] for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Account)) == 1


def test_concurrent_edits_of_the_same_version_give_one_success_and_409s_never_a_500(app, api_token, factory):
    headers = api_token("admin")
    with TestClient(app) as c:
        href = c.post(CUSTOMERS, json=BODY, headers=headers).json()["href"]
    answers = _together(app, headers, lambda c, i: c.patch(href, json={"name": f"Edit {i}"}, headers={"If-Match": "1"}))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [409] * (N - 1), [a.text[:200] for a in answers]
    assert all(a.headers["content-type"].startswith("application/problem+json") for a in answers if a.status_code == 409)
    winner = next(a.json()["name"] for a in answers if a.status_code == 200)
    with factory() as s:
        assert s.scalar(select(Account.name)) == winner
