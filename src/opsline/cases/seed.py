"""Reference data for cases: categories, priority rules and settings (idempotent; operators edit them in /admin)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.cases.messages import seed_templates
from opsline.cases.models import CaseCategory, CaseSetting, PriorityRule, Queue

# code, name, default priority, default queue, required skills, retention
CATEGORIES = [
    ("billing_account", "Billing & account", 3, "billing", ["billing"], False),
    ("credit_control", "Credit control", 3, "credit_control", ["credit"], False),
    ("collections", "Collections", 3, "credit_control", ["credit"], False),
    ("sales", "Sales enquiry", 4, "retentions", [], False),
    ("retentions", "Retentions (wants to cancel)", 2, "retentions", ["retention"], True),
    ("number_porting", "Number porting", 3, "porting", ["porting"], False),
    ("network_coverage", "Network & coverage", 3, "technical", ["network"], False),
    ("fraud", "Fraud", 1, "fraud", ["fraud"], False),
    ("device_technical", "Device / technical", 3, "technical", ["technical"], False),
    ("cancellations", "Cancellations", 2, "retentions", ["retention"], True),
    ("complaint", "Complaint", 2, "escalations", [], False),
]

# value tier, category, adjust, description
PRIORITY_RULES = [
    ("vip", None, -1, "VIP customers are served one level sooner"),
    ("influencer", None, -1, "Influencers are served one level sooner (brand exposure)"),
    ("high_value", "retentions", -1, "High-value customers who want to cancel go one level up"),
    ("high_value", "cancellations", -1, "High-value customers who want to cancel go one level up"),
]

# code, name, assignment, is_escalation, skills, description
QUEUES = [
    ("billing", "Billing & Accounts", "least_loaded", False, ["billing"], "Invoices, payments, debit orders, account changes"),
    ("credit_control", "Credit Control", "round_robin", False, ["credit"], "Arrears, arrangements, suspensions"),
    ("retentions", "Retentions", "round_robin", False, ["retention"], "Customers who want to cancel; sales enquiries"),
    ("technical", "Technical / Network", "least_loaded", False, [], "Faults, coverage, devices; FNO tickets"),
    ("porting", "Porting", "manual", False, ["porting"], "Number porting in and out"),
    ("fraud", "Fraud", "manual", False, ["fraud"], "Suspected fraud and identity theft"),
    ("escalations", "Escalations", "manual", True, [], "Litigation, regulator (ICASA) and brand-risk cases"),
]

SETTINGS = [
    ("autoclose_days", "7", "Days after resolution before a resolved case closes by itself"),
    ("fcr_reopen_days", "7", "A first-contact resolution counts only if not reopened within this many days"),
    ("fcr_window_minutes", "60", "Resolved within this many minutes of opening, by the opener, counts as the opening interaction"),
    ("escalation_queue_code", "escalations", "Queue that litigation / brand-risk cases are routed to"),
    ("inbound_default_category", "billing_account", "Category for new cases created from inbound email"),
    ("attachment_max_bytes", "5242880", "Largest attachment accepted"),
    ("icasa_ack_categories", "complaint", "Categories (comma-separated) whose cases get the ICASA acknowledgement with their reference when opened"),
    ("complaint_resolve_days", "14", "Days within which a complaint is resolved (said in the ICASA acknowledgement)"),
]


def seed_cases_reference(session: Session, *, now: datetime) -> None:
    for code, name, prio, queue, skills, retention in CATEGORIES:
        if session.get(CaseCategory, code) is None:
            session.add(CaseCategory(code=code, name=name, default_priority=prio, default_queue_code=queue, required_skills=skills, retention=retention))
    for key, value, desc in SETTINGS:
        if session.get(CaseSetting, key) is None:
            session.add(CaseSetting(key=key, value=value, description=desc))
    for code, name, assignment, esc, skills, desc in QUEUES:
        if session.execute(select(Queue.id).where(Queue.code == code)).first() is None:
            session.add(Queue(code=code, name=name, assignment=assignment, is_escalation=esc, skills=skills, description=desc, active=True,
                              calendar_code="za-support" if code != "escalations" else None))
    session.flush()
    seed_templates(session, now=now)
    if session.execute(select(PriorityRule.id).limit(1)).first() is None:
        for tier, cat, adjust, desc in PRIORITY_RULES:
            session.add(PriorityRule(value_tier_code=tier, category_code=cat, adjust=adjust, description=desc, active=True))
