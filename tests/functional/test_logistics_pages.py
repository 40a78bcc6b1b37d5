"""Logistics over HTTP: the collections board, booking through the slot picker (bad input shown, nothing booked),
attempts and receipt from the collection page, clean-up checks with exports, the FNO exposure page and claim actions,
and who may do what."""

from __future__ import annotations

import re
import sys
from datetime import date, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from opsline.core.events import Actor
from opsline.customers.models import Account
from opsline.logistics.models import Collection
from opsline.partners.models import PartnerServiceOrder

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from logistics_helpers import equipment_state, loaned_router, next_weekday_slot  # noqa: E402
from partners_helpers import line  # noqa: E402

ACTOR = Actor(name="tester", roles=frozenset({"admin"}))


@pytest.fixture
def router(factory, now):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        account_id, _p, r = loaned_router(s, now, ACTOR)
        number = s.get(Account, account_id).account_number
        return {"account_id": account_id, "account_number": number, "equipment_id": r.id}


def _collections(factory) -> int:  # type: ignore[no-untyped-def]
    with factory() as s:
        return s.execute(select(func.count()).select_from(Collection)).scalar_one()


def test_the_coordinator_books_a_collection_from_the_slot_picker_records_a_failed_then_a_successful_attempt_and_receives_it(client_as, factory, router, now):
    c = client_as("cancellations_coordinator")
    page = c.get(f"/logistics/book?account={router['account_number']}&courier=courierguy")
    assert page.status_code == 200 and "Collection slot" in page.text
    slot = next_weekday_slot(now).astimezone(timezone.utc).isoformat()  # the picker's values are UTC instants
    assert f'value="{slot}"' in page.text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text).group(1)
    r = c.post("/logistics/book", data={"account": router["account_number"], "courier_code": "courierguy", "idempotency_key": key, "slot_start": slot,
                                        "equipment_ids": str(router["equipment_id"]), "address": "7 Jan Smuts Avenue", "contact_name": "Lerato",
                                        "contact_phone": "082 555 0101", "reference": "CXL-1"}, follow_redirects=False)
    assert r.status_code == 303 and "/logistics/collections/" in r.headers["location"], r.headers["location"]
    url = r.headers["location"].split("?")[0]
    assert c.post(f"{url}/attempt", data={"outcome": "not_home", "note": "card left"}, follow_redirects=False).status_code == 303
    detail = c.get(url)
    assert "not home" in detail.text and "Rebook" in detail.text
    rebook_slot = next_weekday_slot(now, days=2, hour=12).isoformat()
    assert c.post(f"{url}/rebook", data={"slot_start": rebook_slot, "reason": "customer asked for Wednesday"}, follow_redirects=False).status_code == 303
    c.post(f"{url}/attempt", data={"outcome": "collected"})
    done = c.post(f"{url}/receive", data={"condition": "good"}, follow_redirects=True)
    assert "Received 1 device" in done.text and "received" in done.text
    with factory() as s:
        assert equipment_state(s, router["equipment_id"]) == "returned"
    board = c.get("/logistics")
    assert board.status_code == 200 and "Collections board" in board.text and "Equipment recovery rate" in board.text


def test_a_booking_in_the_past_is_shown_as_an_error_and_nothing_is_booked(client_as, factory, router, now):
    c = client_as("cancellations_coordinator")
    r = c.post("/logistics/book", data={"account": router["account_number"], "courier_code": "courierguy", "idempotency_key": "k-past",
                                        "slot_start": next_weekday_slot(now, days=-1).isoformat(), "equipment_ids": str(router["equipment_id"]),
                                        "address": "7 Jan Smuts", "contact_name": "Lerato", "contact_phone": "082"}, follow_redirects=True)
    assert r.status_code == 200 and "in the past" in r.text and "(slot_start)" in r.text
    assert _collections(factory) == 0


def test_clean_up_checks_list_and_export_what_they_find(client_as, router):
    c = client_as("billing_analyst")
    page = c.get("/logistics/checks?key=awaiting_no_collection")
    assert page.status_code == 200 and "Equipment awaiting return, no collection booked" in page.text
    csv = c.get("/logistics/checks/awaiting_no_collection/export.csv")
    assert csv.status_code == 200 and csv.text.lstrip("\ufeff").splitlines()[0].startswith("Id,Account id")
    assert len(csv.text.strip().splitlines()) == 2
    assert c.get("/logistics/checks/nonsense/export.csv").status_code == 404
    assert c.post("/logistics/checks/run", follow_redirects=False).status_code == 303


def test_the_exposure_page_shows_a_late_fno_deactivation_and_its_claim_moves_through_the_fno_s_answer(client_as, factory, now):
    with factory.begin() as s:
        account_id, site_id, product_id = line(s, now, ACTOR, partner="openserve")
        s.add(PartnerServiceOrder(partner_code="openserve", account_id=account_id, product_id=product_id, site_id=site_id, action="delete", state="completed",
                                  external_ref="OPS-SO-X1", requested_date=date(2026, 11, 3), due_date=date(2026, 11, 3), confirmed_date=date(2026, 11, 13),
                                  attempts=1, created_at=now, updated_at=now))
    c = client_as("cancellations_coordinator")
    page = c.get("/partners/exposure")
    assert page.status_code == 200 and "R 147.95" in page.text
    c.post("/partners/claims/propose")
    page = c.get("/partners/exposure")
    assert "FC-OPS-SO-X1" in page.text
    claim_id = re.search(r'/partners/claims/(\d+)/send', page.text).group(1)
    assert c.post(f"/partners/claims/{claim_id}/send", follow_redirects=False).status_code == 303
    bad = c.post(f"/partners/claims/{claim_id}/reject", data={"reason": ""}, follow_redirects=True)
    assert "reason is required" in bad.text
    c.post(f"/partners/claims/{claim_id}/accept")
    bad = c.post(f"/partners/claims/{claim_id}/credit", data={"credited": "abc"}, follow_redirects=True)
    assert "not an amount" in bad.text
    c.post(f"/partners/claims/{claim_id}/credit", data={"credited": "147.95"})
    export = c.get("/partners/claims/export.csv")
    assert "credited" in export.text and "147.95" in export.text


@pytest.mark.parametrize("role,path,status", [
    ("debtors_clerk", "/logistics", 403), ("second_line_agent", "/logistics", 200), ("second_line_agent", "/logistics/book", 403),
    ("billing_analyst", "/logistics/checks", 200), ("second_line_agent", "/logistics/checks", 403), ("debtors_clerk", "/partners/exposure", 200),
])
def test_who_may_open_the_logistics_pages_follows_their_role(client_as, role, path, status):
    assert client_as(role).get(path).status_code == status


def test_only_a_coordinator_may_book_or_act_on_a_claim(client_as, router, now):
    c = client_as("billing_analyst")
    r = c.post("/logistics/book", data={"account": router["account_number"], "slot_start": next_weekday_slot(now).isoformat()})
    assert r.status_code == 403
    assert client_as("debtors_clerk").post("/partners/claims/1/send").status_code == 403


def test_the_coordinator_desk_shows_the_logistics_cards(client_as, router):
    page = client_as("cancellations_coordinator").get("/desk/cancellations_coordinator")
    assert page.status_code == 200
    assert "Devices out with no collection booked" in page.text and "FNO deactivations in jeopardy" in page.text


def test_a_courier_reports_an_attempt_through_its_signed_webhook_and_bad_or_repeated_reports_change_nothing(app, factory, router, now):
    import json

    from fastapi.testclient import TestClient

    from opsline.logistics import service
    from opsline.logistics.models import CollectionAttempt
    from opsline.partners.adapters import SIGNATURE_HEADER, sign
    from opsline.partners.models import Partner

    from logistics_helpers import TZ

    with factory.begin() as s:
        s.get(Partner, "courierguy").webhook_secret = "whsec-courier"
        col = service.book_collection(s, account_id=router["account_id"], equipment_ids=[router["equipment_id"]], slot_start=next_weekday_slot(now),
                                      address="7 Jan Smuts", contact_name="Lerato", contact_phone="082", reference=None, courier_code="courierguy",
                                      idempotency_key="hook", now=now, actor=ACTOR, tz=TZ)
    client = TestClient(app)
    url = "/api/logistics/callback/courierguy"

    def post(body: dict, secret: str = "whsec-courier"):  # type: ignore[no-untyped-def]
        raw = json.dumps(body).encode()
        return client.post(url, content=raw, headers={SIGNATURE_HEADER: sign(secret, raw), "Content-Type": "application/json"})

    event = {"externalId": col["number"], "attempt": 1, "outcome": "not_home", "note": "card left"}
    assert post(event, secret="wrong").status_code == 401
    bad = post(event | {"outcome": "on_holiday"})
    assert bad.status_code == 422 and bad.json()["field"] == "outcome"
    with factory() as s:
        assert s.execute(select(func.count()).select_from(CollectionAttempt)).scalar_one() == 0
    assert post(event).status_code == 200
    again = post(event)
    assert again.status_code == 202 and again.json()["outcome"] == "ignored"
    with factory() as s:
        assert service.get_collection(s, collection_id=col["id"])["state"] == "failed"
        assert s.execute(select(func.count()).select_from(CollectionAttempt)).scalar_one() == 1
    assert client.post("/api/logistics/callback/openserve", content=b"{}").status_code == 404


def test_a_courier_run_is_booked_from_the_board_s_slot_picker(client_as, factory, router, now):
    c = client_as("cancellations_coordinator")
    board = c.get("/logistics")
    value = re.search(r'<option value="(courierguy\|[^"]+)"', board.text).group(1)
    r = c.post("/logistics/run", data={"slot_start": value}, follow_redirects=True)
    assert "Courier run booked: 1 collections, 1 devices" in r.text
    assert _collections(factory) == 1
    again = c.get("/logistics")
    assert "Runs per courier" in again.text and "The Courier Guy" in again.text


def test_the_account_page_panel_lists_the_account_s_collections(client_as, factory, router, now):
    from opsline.logistics import service

    from logistics_helpers import TZ

    with factory.begin() as s:
        service.book_collection(s, account_id=router["account_id"], equipment_ids=[router["equipment_id"]], slot_start=next_weekday_slot(now),
                                address="7 Jan Smuts", contact_name="Lerato", contact_phone="082", reference="CXL-9", courier_code="courierguy",
                                idempotency_key="panel", now=now, actor=ACTOR, tz=TZ)
    page = client_as("cancellations_coordinator").get(f"/accounts/{router['account_id']}/panel/collections")
    assert page.status_code == 200 and "COL-" in page.text and "CXL-9" in page.text
