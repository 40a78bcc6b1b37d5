"""Reference data of the cancellation journey: policies (retention, withdrawal cut-off, at-risk window, escalation) and
the customer/staff message templates. Idempotent: rows an operator edited are kept."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.cancellations.models import CancellationPolicy
from opsline.notifications import service as notifications

# code, reason, segment, skip retention, withdraw days before, description
POLICIES = (
    ("default", None, None, False, 5, "Offer retention; withdrawal until 5 days before the effective date"),
    ("deceased", "deceased", None, True, 5, "No retention offer to a deceased estate"),
    ("emigrating", "emigrating", None, True, 5, "No retention offer to a customer leaving the country"),
    ("non-payment", "non_payment", None, True, 0, "Cancelled for non-payment: no retention offer"),
    ("moving-relocate", "moving", None, False, 5, "Moving: offer a relocation first"),
)

_SAMPLE = {"account": {"id": 1, "name": "Thandi Nkosi", "account_number": "AC000001"}, "reference": "CJ-000123", "last_day": "31 Dec 2026",
           "effective_date": "01 Jan 2027", "fee": "R 1,245.00", "fee_note": "14 month(s) left", "kind": "cancellation", "withdraw_until": "27 Dec 2026"}

TEMPLATES = (
    ("cancellation.confirmed", "email", "Your cancellation is confirmed ({{ reference }})",
     "Dear {{ account.name }},\n\nWe have confirmed your {{ kind }} (reference {{ reference }}).\n"
     "Your service ends at the end of {{ last_day }}; nothing is billed from {{ effective_date }}.\n"
     "Early-termination fee: {{ fee }}{% if fee_note %} ({{ fee_note }}){% endif %}.\n"
     "You can withdraw this cancellation until {{ withdraw_until }}.\n\nKind regards\nCustomer Care\n",
     _SAMPLE, "Cancellation confirmed: the date it takes effect and the amounts"),
    ("cancellation.collection_booked", "email", "We will collect your equipment ({{ reference }})",
     "Dear {{ account.name }},\n\nOur courier will collect your {{ equipment }} on {{ slot }} at {{ address }}.\n"
     "Please have it ready with its power supply.\n\nKind regards\nCustomer Care\n",
     _SAMPLE | {"equipment": "router", "slot": "05 Jan 2027 08:00–12:00", "address": "12 Rivonia Road"}, "Equipment collection booked"),
    ("cancellation.unreturned_equipment_warning", "email", "Please return your equipment ({{ reference }})",
     "Dear {{ account.name }},\n\nWe have not yet received your {{ equipment }}. If it is not returned by {{ due_date }}, "
     "a fee of {{ fee }} will be charged; it is credited back if the device arrives later.\n\nKind regards\nCustomer Care\n",
     _SAMPLE | {"equipment": "router", "due_date": "20 Jan 2027"}, "Unreturned equipment warning before the fee"),
    ("cancellation.step_at_risk", "email", "Cancellations at risk: {{ count }} step(s)",
     "{{ body }}\n", {"count": 3, "journeys": 2, "body": "3 steps on 2 journeys are at risk."}, "Escalation to the coordinators' manager"),
)


def seed(session: Session, *, now: datetime) -> None:
    have = set(session.execute(select(CancellationPolicy.code)).scalars())
    for code, reason, segment, skip, days, desc in POLICIES:
        if code not in have:
            session.add(CancellationPolicy(code=code, reason_code=reason, segment_code=segment, skip_retention=skip, withdraw_days_before=days,
                                           at_risk_hours=24, escalation_email="cancellations-manager@opsline.example" if code == "default" else None,
                                           holiday_country="ZA", final_account_business_days=5, equipment_grace_days=20, description=desc))
    for event, channel, subject, body, sample, desc in TEMPLATES:
        notifications.ensure_template(session, event=event, channel=channel, language="en", subject=subject, body=body, now=now, description=desc,
                                      sample_context=sample)
    session.flush()
