"""The operator's settings for merges, data quality and risk (table customer_setting, editable under Admin), with defaults."""

from __future__ import annotations

from sqlalchemy.orm import Session

from opsline.core.errors import InvalidInput
from opsline.customers.data_models import CustomerSetting

DEFAULTS: dict[str, tuple[str, str]] = {
    "merge_undo_days": ("7", "days after a merge during which it can be undone"),
    "credit_check_limit_minor": ("5000000", "orders worth more than this (minor units: once-off + recurring over the term, 12 months without one, excl. VAT) get a credit check"),
    "credit_min_account_age_days": ("90", "accounts younger than this are referred by the rules-based credit check"),
    "credit_max_arrears_minor": ("0", "arrears above this (minor units) refer an order to review"),
    "credit_bureau": ("rules", "the credit bureau adapter orders are checked with (orders/service/risk_hold.py; 'rules' = our own ledger)"),
}


def setting_int(session: Session, key: str) -> int:
    """The setting as an integer (the default when the operator has not set it). Raises InvalidInput for a value that is not a whole number."""
    row = session.get(CustomerSetting, key)
    raw = row.value if row is not None else DEFAULTS[key][0]
    try:
        return int(raw.strip())
    except ValueError:
        raise InvalidInput(f"customer setting {key}={raw!r} is not a whole number; fix it under Admin > Customer settings", field=key) from None


def seed(session: Session) -> None:
    """Idempotent: the defaults as rows, so the operator sees and can change them."""
    for key, (value, desc) in DEFAULTS.items():
        if session.get(CustomerSetting, key) is None:
            session.add(CustomerSetting(key=key, value=value, description=desc))
