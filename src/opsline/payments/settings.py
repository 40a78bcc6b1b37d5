"""The payments policy as data: typed settings rows and the enabled matching rules in cascade order."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.billing import service as billing
from opsline.payments.models import MatchingRule, PaymentSetting


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    kind: str
    confidence: int
    params: dict[str, Any]


@dataclass(frozen=True)
class Policy:
    auto_threshold: int
    auto_amount_limit_minor: int
    refund_four_eyes_limit_minor: int
    returned_debit_fee_minor: int
    returned_debit_fee_tax_code: str
    suspense_owner: str
    invoice_prefix: str
    rules: tuple[Rule, ...]


DEFAULTS: dict[str, Any] = {"auto_confidence_threshold": 90, "auto_amount_limit_minor": 5_000_000, "refund_four_eyes_limit_minor": 100_000,
                            "returned_debit_fee_minor": 9900, "returned_debit_fee_tax_code": "VAT15", "suspense_owner": "debtors"}


def value(session: Session, key: str) -> Any:
    row = session.get(PaymentSetting, key)
    if row is None:
        return DEFAULTS.get(key)
    if row.value_type == "int":
        return int(row.value)
    if row.value_type == "decimal":
        return Decimal(row.value)
    if row.value_type == "bool":
        return row.value.strip().lower() in ("1", "true", "yes", "on")
    return row.value


def load(session: Session) -> Policy:
    rules = session.execute(select(MatchingRule).where(MatchingRule.enabled.is_(True)).order_by(MatchingRule.position, MatchingRule.id)).scalars().all()
    return Policy(
        auto_threshold=int(value(session, "auto_confidence_threshold")),
        auto_amount_limit_minor=int(value(session, "auto_amount_limit_minor")),
        refund_four_eyes_limit_minor=int(value(session, "refund_four_eyes_limit_minor")),
        returned_debit_fee_minor=int(value(session, "returned_debit_fee_minor")),
        returned_debit_fee_tax_code=str(value(session, "returned_debit_fee_tax_code")),
        suspense_owner=str(value(session, "suspense_owner")),
        invoice_prefix=str(billing.setting(session, "invoice_number_prefix", "INV")),
        rules=tuple(Rule(code=r.code, name=r.name, kind=r.kind, confidence=r.confidence, params=dict(r.params or {})) for r in rules),
    )
