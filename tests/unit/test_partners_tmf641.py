"""TMF641 payloads we send, events we read, and webhook signatures."""

from datetime import date, datetime, timezone

import pytest

from opsline.partners.adapters import sign, verify_signature
from opsline.partners.dates import add_business_days, next_business_day
from opsline.partners.simulator import partner_ref_for
from opsline.partners.tmf641 import build_service_order, parse_state_change, state_change_event

SITE = {"id": 42, "line1": "7 Jan Smuts Avenue", "suburb": "Rosebank", "city": "Johannesburg", "province": "Gauteng", "postal_code": "2196", "country": "ZA",
        "latitude": -26.146, "longitude": 28.041}
AT = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)


def _order(**kw):  # type: ignore[no-untyped-def]
    args = dict(external_ref="OPS-SO-000123", partner_code="openserve", action="delete", requested_date=date(2026, 12, 31), product_id=9,
                line_ref="OPS-LINE-77", site=SITE, account_number="1000000017", reason="customer cancelled", created_at=AT) | kw
    return build_service_order(**args)


def test_a_service_order_carries_our_reference_the_item_action_line_id_address_and_coordinates():
    body = _order()
    assert body["externalId"] == "OPS-SO-000123" and body["@type"] == "ServiceOrder"
    assert body["requestedCompletionDate"] == "2026-12-31T00:00:00+00:00"  # TMF641 date-time: the start of the day (UTC without a zone)
    (item,) = body["serviceOrderItem"]
    assert item["action"] == "delete" and item["service"]["id"] == "OPS-LINE-77"
    chars = {c["name"]: c["value"] for c in item["service"]["serviceCharacteristic"]}
    assert chars["lineId"] == "OPS-LINE-77" and chars["siteAddress"]["city"] == "Johannesburg" and chars["siteAddress"]["postcode"] == "2196"
    assert chars["siteCoordinates"] == {"latitude": -26.146, "longitude": 28.041}
    assert item["service"]["place"][0]["role"] == "installationAddress"
    assert {p["role"] for p in body["relatedParty"]} == {"provider", "endCustomerAccount"}


def test_a_new_line_has_no_service_id_and_an_order_without_site_has_no_place():
    body = _order(action="add", site=None, line_ref=None)
    service = body["serviceOrderItem"][0]["service"]
    assert "id" not in service and "place" not in service
    with pytest.raises(ValueError):
        _order(action="suspend")


def test_a_state_change_event_round_trips():
    ev = state_change_event(partner_ref="OPE-1", external_ref="OPS-SO-000123", state="completed", completion_date=date(2026, 12, 31), reason="done")
    assert parse_state_change(ev) == {"partner_ref": "OPE-1", "external_ref": "OPS-SO-000123", "state": "completed", "completion_date": date(2026, 12, 31), "reason": "done"}


@pytest.mark.parametrize(("body", "message"), [
    ([], "JSON object"),
    ({"eventType": "Other"}, "unsupported eventType"),
    ({"eventType": "ServiceOrderStateChangeEvent", "event": {}}, "serviceOrder is missing"),
    ({"eventType": "ServiceOrderStateChangeEvent", "event": {"serviceOrder": {"id": "1", "state": "finished"}}}, "state must be one of"),
    ({"eventType": "ServiceOrderStateChangeEvent", "event": {"serviceOrder": {"state": "completed"}}}, "id or an externalId"),
    ({"eventType": "ServiceOrderStateChangeEvent", "event": {"serviceOrder": {"id": "1", "state": "completed", "completionDate": "soon"}}}, "not a date"),
])
def test_a_malformed_event_says_what_is_wrong(body, message):
    with pytest.raises(ValueError, match=message):
        parse_state_change(body)


def test_a_signature_is_the_hmac_sha256_of_the_exact_body():
    body = b'{"eventType":"ServiceOrderStateChangeEvent"}'
    sig = sign("s3cret", body)
    assert sig.startswith("sha256=") and len(sig) == 71
    assert verify_signature("s3cret", body, signature=sig)
    assert not verify_signature("s3cret", body + b" ", signature=sig)
    assert not verify_signature("other", body, signature=sig)
    assert not verify_signature(None, body, signature=sig)
    assert verify_signature("s3cret", body, authorization="Bearer s3cret")
    assert not verify_signature("s3cret", body, authorization="Bearer nope")
    assert not verify_signature("s3cret", body)


def test_business_days_skip_weekends_and_south_african_public_holidays():
    assert next_business_day(date(2026, 11, 28), holiday_country="ZA") == date(2026, 11, 30)  # Saturday -> Monday
    assert add_business_days(date(2026, 12, 23), 2, holiday_country="ZA") == date(2026, 12, 28)  # 24th, then 25th/26th holidays, weekend -> Mon 28th
    assert add_business_days(date(2026, 11, 23), 7, holiday_country="ZA") == date(2026, 12, 2)
    assert add_business_days(date(2026, 12, 23), 2, holiday_country=None) == date(2026, 12, 25)  # a partner without holidays


def test_the_simulated_partner_reference_is_stable_for_an_external_reference():
    assert partner_ref_for("vumatel", "OPS-SO-000001") == partner_ref_for("vumatel", "OPS-SO-000001") != partner_ref_for("vumatel", "OPS-SO-000002")
