"""Swapping a faulty loaned device over HTTP, from the account's equipment panel: the panel links the swap, the booking
page opens with that device chosen, the swap dispatches a replacement and books the faulty one's collection, and both
devices keep their history; a swap without the fault changes nothing; who sees the action."""

from __future__ import annotations

import re
import sys
from datetime import timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from opsline.core.events import Actor, AuditEvent
from opsline.customers.models import Account
from opsline.inventory.models import Equipment
from opsline.logistics.models import Collection, EquipmentSwap

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from logistics_helpers import loaned_router, next_weekday_slot  # noqa: E402

ACTOR = Actor(name="tester", roles=frozenset({"admin"}))


@pytest.fixture
def router(factory, now):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        account_id, product_id, r = loaned_router(s, now, ACTOR, awaiting=False)
        return {"account_id": account_id, "account_number": s.get(Account, account_id).account_number, "equipment_id": r.id,
                "serial": r.serial_number, "product_id": product_id}


def _swap_form(c, router, now, **over):  # type: ignore[no-untyped-def]
    page = c.get(f"/logistics/book?account={router['account_id']}&swap={router['equipment_id']}")
    assert page.status_code == 200
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text).group(1)
    data = {"account": router["account_number"], "courier_code": "courierguy", "idempotency_key": key,
            "slot_start": next_weekday_slot(now).astimezone(timezone.utc).isoformat(), "equipment_ids": str(router["equipment_id"]),
            "address": "7 Jan Smuts Avenue", "contact_name": "Lerato", "contact_phone": "082 555 0101",
            "swap_reason": "Wi-Fi drops several times a day"} | over
    return page, data


def test_the_equipment_panel_links_the_swap_and_the_swap_keeps_both_devices_histories(client_as, factory, router, now):
    c = client_as("cancellations_coordinator")
    panel = c.get(f"/accounts/{router['account_id']}/panel/equipment")
    assert panel.status_code == 200 and router["serial"] in panel.text
    link = f"/logistics/book?account={router['account_id']}&amp;swap={router['equipment_id']}"
    assert link in panel.text and "swap (faulty)" in panel.text
    page, data = _swap_form(c, router, now)
    # the device from the panel is the one chosen, and the fault is asked for
    assert re.search(rf'value="{router["equipment_id"]}" checked', page.text) and 'id="swap_reason"' in page.text and "required autofocus" in page.text
    r = c.post("/logistics/book", data=data, follow_redirects=False)
    assert r.status_code == 303 and "/logistics/collections/" in r.headers["location"], r.headers["location"]
    again = c.post("/logistics/book", data=data, follow_redirects=False)  # the same form sent twice: one swap
    assert again.headers["location"].split("?")[0] == r.headers["location"].split("?")[0]
    with factory() as s:
        sw = s.execute(select(EquipmentSwap)).scalar_one()
        old, new = s.get(Equipment, sw.old_equipment_id), s.get(Equipment, sw.new_equipment_id)
        assert old.id == router["equipment_id"] and old.serial_number == router["serial"] and new.serial_number != old.serial_number
        assert new.product_id == old.product_id == router["product_id"] and new.model == old.model and new.account_id == router["account_id"]
        col = s.get(Collection, sw.collection_id)
        assert col.purpose == "swap" and sw.reason == "Wi-Fi drops several times a day"
        history = s.execute(select(AuditEvent.action).where(AuditEvent.entity_type == "equipment", AuditEvent.entity_id == str(old.id))
                            .order_by(AuditEvent.id)).scalars().all()
        assert history[0] != "swapped" and "swapped" in history  # the old unit's earlier history stays, the swap added to it
        assert s.execute(select(func.count()).select_from(AuditEvent).where(AuditEvent.entity_type == "equipment",
                                                                          AuditEvent.entity_id == str(new.id))).scalar_one() >= 1
    after = c.get(f"/accounts/{router['account_id']}/panel/equipment")
    assert router["serial"] in after.text and new.serial_number in after.text  # both devices listed on the account
    collections = c.get(f"/accounts/{router['account_id']}/panel/collections")
    assert "swap" in collections.text and col.number in collections.text


def test_a_swap_without_the_fault_or_with_two_devices_is_refused_naming_the_field_and_nothing_changes(client_as, factory, router, now):
    c = client_as("cancellations_coordinator")
    _, data = _swap_form(c, router, now, swap_reason="")
    data["swap_reason"] = "   "
    r = c.post("/logistics/book", data=data, follow_redirects=True)
    assert r.status_code == 200 and "a reason (the fault) is required" in r.text and "(reason)" in r.text
    _, data = _swap_form(c, router, now)
    r = c.post("/logistics/book", data=data | {"equipment_ids": [str(router["equipment_id"]), "999999"]}, follow_redirects=True)
    assert r.status_code == 200 and "a swap replaces one device" in r.text and "(equipment_ids)" in r.text
    with factory() as s:
        assert s.execute(select(func.count()).select_from(EquipmentSwap)).scalar_one() == 0
        assert s.execute(select(func.count()).select_from(Collection)).scalar_one() == 0


def test_the_swap_action_is_shown_only_to_those_who_may_book(client_as, router):
    viewer = client_as("billing_analyst")
    panel = viewer.get(f"/accounts/{router['account_id']}/panel/equipment")
    assert panel.status_code == 200 and router["serial"] in panel.text and "swap (faulty)" not in panel.text
    assert viewer.get(f"/logistics/book?account={router['account_id']}&swap={router['equipment_id']}").status_code == 403
