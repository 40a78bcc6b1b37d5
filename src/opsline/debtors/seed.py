"""Debtors reference data: the message templates dunning sends and the default dunning policies (idempotent: an
operator's edits are kept; policies are only created when missing)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.core.events import Actor
from opsline.debtors.models import DunningPolicy
from opsline.debtors.policies import StepIn, save_policy
from opsline.notifications import service as notifications

TEMPLATES = [
    ("dunning.reminder", "email", "Reminder: {{ debt.overdue }} overdue on account {{ account.account_number }}",
     "Dear {{ account.name }},\n\n{{ debt.overdue }} on your account {{ account.account_number }} is {{ debt.days_overdue }} days overdue "
     "(balance {{ debt.balance }}). Please pay by {{ debt.pay_by }} to {{ company.bank_name }}, account {{ company.bank_account_number }}, "
     "reference {{ account.account_number }}.\nIf you have paid already, thank you, and please ignore this message.\n\nKind regards\n{{ company.name }}\n",
     "Dunning reminder by email"),
    ("dunning.reminder", "sms", "",
     "{{ company.name }}: {{ debt.overdue }} on acc {{ account.account_number }} is {{ debt.days_overdue }} days overdue. Please pay by {{ debt.pay_by }}, "
     "ref {{ account.account_number }}. Paid? Please ignore.", "Dunning reminder by SMS"),
    ("dunning.letter_of_demand", "email", "Letter of demand: account {{ account.account_number }}",
     "Dear {{ account.name }},\n\nPlease find attached our letter of demand {{ debt.reference }} for {{ debt.overdue }}, {{ debt.days_overdue }} days overdue. "
     "Payment is due by {{ debt.pay_by }}.\nIf you cannot pay in full, call us on {{ company.phone }} to discuss an arrangement.\n\n{{ company.name }}\n",
     "The letter of demand email (the PDF is attached)"),
    ("dunning.suspension_warning", "email", "Your services will be suspended: account {{ account.account_number }}",
     "Dear {{ account.name }},\n\n{{ debt.overdue }} has been overdue for {{ debt.days_overdue }} days. Unless we receive payment by {{ debt.pay_by }}, "
     "your services will be suspended.\nPay to {{ company.bank_name }}, account {{ company.bank_account_number }}, reference {{ account.account_number }}.\n\n"
     "{{ company.name }}\n", "Suspension warning"),
    ("dunning.suspended", "email", "Your services are suspended: account {{ account.account_number }}",
     "Dear {{ account.name }},\n\nYour services were suspended because {{ debt.overdue }} is {{ debt.days_overdue }} days overdue. "
     "They are reconnected once the arrears are paid.\n\n{{ company.name }}\n", "Suspension notice"),
]

S = StepIn
DEFAULT_STEPS = [
    S("Reminder email", "reminder_email", 1, 0, 3),
    S("Reminder SMS", "reminder_sms", 5, 0, 3),
    S("Letter of demand", "letter_of_demand", 9, 10000, 5),
    S("Suspension warning", "suspension_warning", 14, 5000, 4),
    S("Suspension", "suspend", 19, 5000, 14),
    S("Discontinuance", "discontinuance", 45, 5000, 14, "person"),
    S("Final account", "final_account", 60, 5000, 30, "person"),
    S("Write-off proposal", "write_off_proposal", 120, 0, 0, "person"),
]
POLICIES = [
    ("default", "Default (consumer and SME)", None, None, DEFAULT_STEPS, "Every account no other policy covers"),
    ("high-value", "High value: later steps, suspension by a person", None, "high_value", [
        S("Reminder email", "reminder_email", 5, 0, 5),
        S("Account manager call", "call", 12, 0, 7, "person"),
        S("Letter of demand", "letter_of_demand", 21, 10000, 7),
        S("Suspension warning", "suspension_warning", 30, 10000, 7),
        S("Suspension (decided by a person)", "suspend", 40, 10000, 14, "person"),
        S("Write-off proposal", "write_off_proposal", 150, 0, 0, "person"),
    ], "High-value accounts: steps delayed, suspension routed to a person"),
    ("vip", "VIP: every step by a person", None, "vip", [
        S("Courtesy call", "call", 7, 0, 7, "person"),
        S("Letter of demand (approved by a person)", "letter_of_demand", 30, 10000, 14, "person"),
        S("Suspension (decided by a person)", "suspend", 60, 10000, 14, "person"),
    ], "VIP and influencer-grade accounts: reminders skipped, each step routed to the debtors desk"),
    ("influencer", "Influencer: every step by a person", None, "influencer", [
        S("Courtesy call", "call", 7, 0, 7, "person"),
        S("Suspension (decided by a person)", "suspend", 60, 10000, 14, "person"),
    ], "Influencers: a person decides every step"),
    ("wholesale", "Wholesale: account manager", "wholesale", None, [
        S("Reminder email", "reminder_email", 3, 0, 7),
        S("Account manager call", "call", 10, 0, 14, "person"),
        S("Letter of demand (approved by a person)", "letter_of_demand", 30, 10000, 14, "person"),
    ], "Wholesale partners: a person handles escalation"),
]


def seed(session: Session, *, now: datetime) -> None:
    for event, channel, subject, body, desc in TEMPLATES:
        notifications.ensure_template(session, event=event, channel=channel, language="en", subject=subject, body=body, now=now, description=desc)
    have = set(session.execute(select(DunningPolicy.code)).scalars())
    for code, name, segment, tier, steps, desc in POLICIES:
        if code not in have:
            save_policy(session, code=code, name=name, segment_code=segment, value_tier_code=tier, steps=steps, now=now, actor=Actor.system("seed"),
                        description=desc)
