"""Default templates (ICASA acknowledgement and generic ones other areas may reuse) and contact rules."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from opsline.notifications.contacts import ensure_rule
from opsline.notifications.templates import ensure_template

_CASE_SAMPLE = {"reference": "CS-000123", "summary": "Fibre line down since Monday", "respond_by": "03 Dec 2026 10:00",
                "account": {"id": 1, "name": "Thandi Nkosi", "account_number": "AC000001"}}
_GENERIC_SAMPLE = {"subject": "Your account", "body": "We have updated your account details.",
                   "account": {"id": 1, "name": "Thandi Nkosi", "account_number": "AC000001"}}

TEMPLATES: tuple[dict, ...] = (
    {"event": "case.acknowledged", "channel": "email", "language": "en",
     "description": "ICASA: every complaint acknowledged within 48 hours with its reference",
     "subject": "We have received your complaint ({{ reference }})",
     "body": ("Dear {{ account.name }},\n\n"
              "Thank you for contacting us. We have logged your complaint with reference {{ reference }}:\n"
              "  {{ summary }}\n\n"
              "Please quote this reference in any further contact. We aim to resolve complaints within 14 days"
              "{% if respond_by is defined %}; we will be back to you by {{ respond_by }}{% endif %}.\n\n"
              "Kind regards\nCustomer Care\n"),
     "sample_context": _CASE_SAMPLE},
    {"event": "case.acknowledged", "channel": "sms", "language": "en",
     "description": "ICASA acknowledgement by SMS",
     "subject": "",
     "body": "We received your complaint, ref {{ reference }}. We aim to resolve it within 14 days. Quote the reference when you contact us.",
     "sample_context": _CASE_SAMPLE},
    {"event": "generic.notice", "channel": "email", "language": "en",
     "description": "Generic notice: caller supplies subject and body",
     "subject": "{{ subject }}",
     "body": "Dear {{ account.name }},\n\n{{ body }}\n\nKind regards\nCustomer Care\n",
     "sample_context": _GENERIC_SAMPLE},
    {"event": "generic.notice", "channel": "sms", "language": "en",
     "description": "Generic SMS notice: caller supplies the body",
     "subject": "",
     "body": "{{ body }}",
     "sample_context": _GENERIC_SAMPLE},
    {"event": "generic.reminder", "channel": "email", "language": "en",
     "description": "Generic reminder with a due date",
     "subject": "Reminder: {{ subject }}",
     "body": "Dear {{ account.name }},\n\nThis is a reminder: {{ body }}{% if due_date is defined %} (due {{ due_date }}){% endif %}.\n\nKind regards\nCustomer Care\n",
     "sample_context": _GENERIC_SAMPLE | {"due_date": "15 Dec 2026"}},
    {"event": "generic.reminder", "channel": "sms", "language": "en",
     "description": "Generic SMS reminder with a due date",
     "subject": "",
     "body": "Reminder: {{ body }}{% if due_date is defined %} (due {{ due_date }}){% endif %}",
     "sample_context": _GENERIC_SAMPLE | {"due_date": "15 Dec 2026"}},
)

RULES: tuple[dict, ...] = (
    {"code": "collections-weekly-cap", "category": "collections", "max_contacts": 3, "period_days": 7,
     "description": "At most 3 collections contacts per account in any 7 days"},
    {"code": "collections-quiet-hours", "category": "collections", "quiet_from": "20:00", "quiet_to": "08:00",
     "description": "No collections contact between 20:00 and 08:00 operator time"},
    {"code": "marketing-quiet-hours", "category": "marketing", "quiet_from": "19:00", "quiet_to": "09:00",
     "description": "No marketing between 19:00 and 09:00 operator time"},
    {"code": "marketing-weekly-cap", "category": "marketing", "max_contacts": 2, "period_days": 7,
     "description": "At most 2 marketing messages per account in any 7 days"},
)


def seed_notifications(session: Session, *, now: datetime) -> None:
    """Idempotent: existing templates (and operators' edits) and rules are kept."""
    for t in TEMPLATES:
        ensure_template(session, event=t["event"], channel=t["channel"], language=t["language"], subject=t["subject"], body=t["body"],
                        now=now, description=t["description"], sample_context=t["sample_context"])
    for r in RULES:
        ensure_rule(session, **r)
