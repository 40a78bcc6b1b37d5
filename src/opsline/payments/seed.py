"""Payments reference data: policy settings, the matching cascade, unpaid reason codes and bank CSV mappings (idempotent)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from opsline.payments.models import CsvMapping, MatchingRule, PaymentSetting, UnpaidReason

SETTINGS = [
    ("auto_confidence_threshold", "90", "int", "Proposals at or above this confidence are allocated without a person"),
    ("auto_amount_limit_minor", "5000000", "int", "Payments above this amount (minor units) always wait for a person"),
    ("refund_four_eyes_limit_minor", "100000", "int", "Refunds above this amount (minor units) need a second person's approval"),
    ("returned_debit_fee_minor", "9900", "int", "Returned debit-order fee (minor units, excl. tax) charged for unpaids whose reason charges a fee"),
    ("returned_debit_fee_tax_code", "VAT15", "str", "Tax rate code of the returned debit-order fee"),
    ("suspense_owner", "debtors", "str", "Who owns new suspense items until reassigned"),
]

# code, name, kind, position, confidence, params
RULES = [
    ("invoice-number", "Invoice number in the reference", "invoice_ref", 10, 99, {}),
    ("account-number", "Account number in the reference (check digit valid)", "account_ref", 20, 97, {}),
    ("payer-account", "Payer's bank account seen before on one account", "payer_account", 30, 93, {}),
    ("account-number-repaired", "Account number with one mistyped digit, amount agrees", "account_ref_check_digit", 40, 75, {}),
    ("amount-date", "Amount and date against a single account's open invoice", "amount_date", 50, 80, {"window_days": 45}),
    ("payer-name", "Payer name resembles the account holder (proposal only)", "payer_name", 60, 60, {"min_score": 88}),
]

UNPAID_REASONS = [
    ("02", "Not provided for (insufficient funds)", True),
    ("03", "Debits not allowed to this account", True),
    ("04", "Payment stopped by account holder", True),
    ("06", "Account frozen", True),
    ("08", "Account in sequestration", False),
    ("10", "Account closed", True),
    ("12", "Account transferred", True),
    ("18", "Account holder deceased", False),
    ("22", "Account effects not cleared", True),
    ("26", "No such account", True),
    ("30", "No authority to debit (disputed)", False),
    ("32", "Debit in contravention of payer's authority", False),
]

MAPPINGS = [
    dict(name="fnb", bank="First National Bank", encoding="utf-8", delimiter=",", date_format="%Y/%m/%d", decimal_comma=False, header_rows=3, footer_rows=0,
         bank_account="62012345678",
         columns={"date": "Date", "amount": "Amount", "balance": "Balance", "reference": "Description", "payer_name": "Payer", "payer_account": "Payer Account",
                  "bank_reference": "Reference Number"}),
    dict(name="standard-bank", bank="Standard Bank", encoding="cp1252", delimiter=";", date_format="%d.%m.%Y", decimal_comma=True, header_rows=1, footer_rows=1,
         bank_account="001234567",
         columns={"date": "Valutadatum", "credit": "Credit", "debit": "Debit", "reference": "Reference", "payer_name": "Counterparty",
                  "payer_account": "Counterparty Account"}),
]


def seed(session: Session, *, now: datetime, currency: str = "ZAR") -> None:
    for key, value, vtype, desc in SETTINGS:
        if session.get(PaymentSetting, key) is None:
            session.add(PaymentSetting(key=key, value=value, value_type=vtype, description=desc))
    existing = {r.code for r in session.query(MatchingRule.code)}
    for code, name, kind, pos, conf, params in RULES:
        if code not in existing:
            session.add(MatchingRule(code=code, name=name, kind=kind, position=pos, confidence=conf, enabled=True, params=params))
    for code, desc, fee in UNPAID_REASONS:
        if session.get(UnpaidReason, code) is None:
            session.add(UnpaidReason(code=code, description=desc, charge_fee=fee))
    have = {r.name for r in session.query(CsvMapping.name)}
    for m in MAPPINGS:
        if m["name"] not in have:
            session.add(CsvMapping(**m, currency=currency, created_at=now))
    session.flush()
