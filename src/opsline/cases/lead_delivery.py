"""Leads to a sales partner whose integration is HTTP: the hand-over posts the lead as JSON to `<base_url>/leads` from a
job (retried with backoff by the job system; the Idempotency-Key makes a repeat return the partner's first answer)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.orm import Session

from opsline.cases.models import SalesLead
from opsline.core import events
from opsline.core.events import Actor
from opsline.core.jobs import Registry, enqueue
from opsline.partners.models import Partner

KIND = "cases.lead_handover_http"


class LeadDeliveryFailed(Exception):
    """The partner could not be reached or refused the lead with a transient error; the job retries."""


def enqueue_delivery(session: Session, *, lead_id: int, partner_code: str, now: datetime) -> None:
    enqueue(session, kind=KIND, payload={"lead_id": lead_id, "partner_code": partner_code}, now=now, idempotency_key=f"{KIND}:{lead_id}")


def payload(lead: SalesLead) -> dict[str, Any]:
    return {"externalId": f"lead-{lead.id}", "productInterest": lead.product_interest, "valueMinor": lead.value_minor, "currency": lead.currency,
            "customer": {"name": lead.contact_name, "phone": lead.contact_phone, "email": lead.contact_email},
            "consent": {"marketing": lead.consent_marketing, "channel": lead.consent_channel,
                        "at": lead.consent_at.isoformat() if lead.consent_at else None}, "notes": lead.notes}


def deliver(session: Session, *, lead_id: int, partner_code: str, now: datetime, transport: httpx.BaseTransport | None = None) -> dict[str, Any]:
    """Post the lead to the partner once. Raises LeadDeliveryFailed (unreachable, 5xx, 429: retried by the job); a 4xx is
    final: recorded on the lead's audit trail as refused."""
    lead = session.get(SalesLead, lead_id)
    p = session.get(Partner, partner_code)
    if lead is None or p is None or not p.base_url:
        return {"skipped": "lead or partner gone, or no base_url"}
    body = json.dumps(payload(lead), separators=(",", ":"), sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": f"lead-{lead.id}", "User-Agent": "opsline-leads/1"}
    if p.auth_token:
        headers["Authorization"] = f"Bearer {p.auth_token}"
    try:
        with httpx.Client(base_url=p.base_url.rstrip("/"), timeout=httpx.Timeout(float(p.timeout_seconds or 10)), transport=transport) as client:
            r = client.post("/leads", content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise LeadDeliveryFailed(f"{p.name} unreachable: {exc}") from exc
    if r.status_code >= 500 or r.status_code == 429:
        raise LeadDeliveryFailed(f"{p.name} answered {r.status_code}")
    system = Actor.system("leads")
    ok = r.status_code < 300
    ref = None
    if ok:
        try:
            ref = (r.json() or {}).get("id")
        except ValueError:
            ref = None
    events.record(session, now=now, actor=system, entity_type="lead", entity_id=lead.id, account_id=lead.account_id,
                  action="handover_delivered" if ok else "handover_refused", after={"partner": p.code, "status": r.status_code, "partner_ref": ref})
    return {"status": r.status_code, "partner_ref": ref}


def _job(session: Session, payload_: dict[str, Any], now: datetime) -> dict[str, Any]:
    try:
        return deliver(session, lead_id=int(payload_["lead_id"]), partner_code=str(payload_["partner_code"]), now=now)
    except LeadDeliveryFailed as exc:
        raise RuntimeError(str(exc)) from exc


def register(registry: Registry) -> None:
    registry.register(KIND)(_job)



