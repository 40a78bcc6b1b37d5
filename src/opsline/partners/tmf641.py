"""TMF641 Service Ordering shapes: the outbound serviceOrder and cancelServiceOrder bodies and the state-change event we receive back."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Any
from zoneinfo import ZoneInfo

# our action -> TMF641 serviceOrderItem action
TMF_ACTIONS = {"add": "add", "modify": "modify", "delete": "delete"}
TMF_SERVICE_STATES = {"suspended": "inactive", "active": "active"}  # our line state -> TMF ServiceStateType
TMF_STATES = ("acknowledged", "held", "inProgress", "completed", "failed", "rejected", "cancelled")


def build_service_order(
    *, external_ref: str, partner_code: str, action: str, requested_date: date, product_id: int, line_ref: str | None,
    site: dict[str, Any] | None, account_number: str | None, reason: str | None, created_at: datetime, service_state: str | None = None,
    tz: ZoneInfo | None = None,
) -> dict[str, Any]:
    """The TMF641 ServiceOrder_Create body for one line (valid against the official v4 definition). `externalId` is our
    idempotent reference: a partner that has seen it answers with the order it already has, so re-delivery is safe. The
    requested date goes as the TMF `date-time` of the start of that day in `tz` (the company's zone; UTC when not given)."""
    if action not in TMF_ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    chars: list[dict[str, Any]] = [{"name": "opslineProductId", "valueType": "string", "value": str(product_id)}]
    if line_ref:
        chars.append({"name": "lineId", "valueType": "string", "value": line_ref})
    place: list[dict[str, Any]] = []
    if site:
        address = {k: v for k, v in {
            "streetName": site.get("line1"), "streetNr": None, "locality": site.get("suburb"), "city": site.get("city"),
            "stateOrProvince": site.get("province"), "postcode": site.get("postal_code"), "country": site.get("country") or "ZA",
        }.items() if v}
        chars.append({"name": "siteAddress", "valueType": "object", "value": address})
        if site.get("latitude") is not None and site.get("longitude") is not None:
            chars.append({"name": "siteCoordinates", "valueType": "object", "value": {"latitude": site["latitude"], "longitude": site["longitude"]}})
        place.append({"id": str(site.get("id")), "role": "installationAddress", "@referredType": "GeographicAddress", **address})
    service: dict[str, Any] = {"serviceType": "fibreLine", "serviceCharacteristic": chars}
    if line_ref and action != "add":
        service["id"] = line_ref
    if service_state is not None:  # suspend / resume the line: a modify of the service's state only (TMF638 states)
        service["state"] = TMF_SERVICE_STATES[service_state]
        service["isServiceEnabled"] = service_state == "active"
    item = {"id": "1", "action": TMF_ACTIONS[action], "service": service, "@type": "ServiceOrderItem"}
    start = datetime.combine(requested_date, time.min, tzinfo=tz or timezone.utc).isoformat()
    body: dict[str, Any] = {
        "externalId": external_ref,
        "category": "wholesaleFibre",
        "description": reason or f"{action} line",
        "priority": "4",
        "orderDate": created_at.isoformat(),
        "requestedStartDate": start,
        "requestedCompletionDate": start,
        "relatedParty": [{"id": partner_code, "role": "provider", "@referredType": "Organization", "@type": "RelatedParty"}],
        "serviceOrderItem": [item],
        "@type": "ServiceOrder",
    }
    if place:
        item["service"]["place"] = place
    if account_number:
        body["relatedParty"].append({"id": account_number, "role": "endCustomerAccount", "@referredType": "BillingAccount", "@type": "RelatedParty"})
    return body


def build_cancel_service_order(*, partner_ref: str | None, external_ref: str, reason: str, requested_at: datetime) -> dict[str, Any]:
    """The TMF641 CancelServiceOrder_Create body asking a partner to cancel an order it has (valid against the official v4
    definition): the partner's id of the order (our externalId while it gave none), why, and from when (now)."""
    return {
        "serviceOrder": {"id": partner_ref or external_ref, "name": external_ref, "@referredType": "ServiceOrder"},
        "cancellationReason": reason,
        "requestedCancellationDate": requested_at.isoformat(),
        "@type": "CancelServiceOrder",
    }


def state_change_event(*, partner_ref: str | None, external_ref: str | None, state: str, completion_date: date | None = None,
                       reason: str | None = None, event_id: str | None = None, at: datetime | None = None) -> dict[str, Any]:
    """A ServiceOrderStateChangeEvent as a partner sends it (used by the simulator, tests and the fake FNO)."""
    so: dict[str, Any] = {"id": partner_ref, "externalId": external_ref, "state": state}
    if completion_date is not None:
        so["completionDate"] = completion_date.isoformat()
    if reason:
        so["stateChangeReason"] = reason
    ev: dict[str, Any] = {"eventType": "ServiceOrderStateChangeEvent", "event": {"serviceOrder": so}}
    if event_id:
        ev["eventId"] = event_id
    if at is not None:
        ev["eventTime"] = at.isoformat()
    return ev


def parse_state_change(body: Any) -> dict[str, Any]:
    """Pull (partner_ref, external_ref, state, completion_date, reason) from an event. Raises ValueError with what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    if body.get("eventType") not in ("ServiceOrderStateChangeEvent", "ServiceOrderAttributeValueChangeEvent"):
        raise ValueError(f"unsupported eventType {body.get('eventType')!r}")
    so = (body.get("event") or {}).get("serviceOrder")
    if not isinstance(so, dict):
        raise ValueError("event.serviceOrder is missing")
    state = so.get("state")
    if state not in TMF_STATES:
        raise ValueError(f"event.serviceOrder.state must be one of {', '.join(TMF_STATES)}")
    completion = so.get("completionDate")
    completion_date = None
    if completion:
        try:
            completion_date = date.fromisoformat(str(completion)[:10])
        except ValueError as exc:
            raise ValueError("event.serviceOrder.completionDate is not a date") from exc
    if not so.get("id") and not so.get("externalId"):
        raise ValueError("event.serviceOrder needs an id or an externalId")
    return {
        "partner_ref": str(so["id"]) if so.get("id") else None, "external_ref": so.get("externalId"), "state": state,
        "completion_date": completion_date, "reason": so.get("stateChangeReason") or so.get("description"),
    }
