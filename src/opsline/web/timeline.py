"""How an audit event reads on the account timeline: money as money ("R 5,175.00", never minor units), field changes
as "before → after", and a customer message as the text the customer got."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from opsline.core.money import Money, exponent

# Display symbols; an unknown currency shows its ISO code ("KES 1,200.00").
SYMBOLS = {"ZAR": "R", "USD": "$", "EUR": "€", "GBP": "£", "NAD": "N$", "BWP": "P", "KES": "KSh", "NGN": "₦",
           "AUD": "A$", "CAD": "C$", "NZD": "NZ$", "INR": "₹", "JPY": "¥"}
HIDDEN_KEYS = {"body", "subject", "currency", "csrf_token", "password", "password_hash", "token", "token_hash"}
MESSAGE_TYPES = {"message"}


def display_money(money: Money) -> str:
    """`R 5,175.00`, `-R 12.50`, `KES 1,200.00`: the currency's symbol and its own number of decimals."""
    rounded = money.rounded()
    digits = exponent(money.currency)
    symbol = SYMBOLS.get(money.currency, money.currency)
    text = f"{symbol} {abs(rounded.amount):,.{digits}f}"
    return f"-{text}" if rounded.amount < 0 else text


def _label(key: str) -> str:
    base = key[: -len("_minor")] if key.endswith("_minor") else key
    return base.replace("_", " ")


def _value(key: str, value: Any, currency: str | None) -> str:
    if value is None:
        return "—"
    if key.endswith("_minor") and isinstance(value, int) and not isinstance(value, bool) and currency:
        return display_money(Money.from_minor(value, currency))
    if isinstance(value, dict):
        if set(value) == {"amount", "currency"}:
            return display_money(Money.of(Decimal(str(value["amount"])), str(value["currency"])))
        if set(value) == {"value", "unit"}:  # TM Forum Money
            return display_money(Money.of(Decimal(str(value["value"])), str(value["unit"])))
        return ", ".join(f"{_label(k)}: {_value(k, v, currency)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_value(key, v, currency) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def present_event(event: dict[str, Any], *, currency: str | None) -> dict[str, Any]:
    """One timeline line from an audit event dict (`core.events.as_dict`). `currency` is the account's; a `currency`
    recorded in the event itself wins. Returns plain data for the template."""
    before = event.get("before") or {}
    after = event.get("after") or {}
    cur = str(after.get("currency") or before.get("currency") or currency or "") or None
    changes = []
    for key in list(dict.fromkeys([*after.keys(), *before.keys()])):
        if key in HIDDEN_KEYS:
            continue
        if key in after:
            changes.append({"field": _label(key), "before": _value(key, before[key], cur) if key in before else None,
                            "after": _value(key, after[key], cur)})
        else:
            changes.append({"field": _label(key), "before": _value(key, before[key], cur), "after": "—"})
    message = None
    if event.get("entity_type") in MESSAGE_TYPES and ("body" in after or "subject" in after):
        message = {"kind": "message", "subject": after.get("subject") or "", "body": after.get("body") or "",
                   "channel": after.get("channel"), "to": after.get("to")}
        changes = [c for c in changes if c["field"] in ("state", "channel", "to", "event")]
    elif after.get("body"):  # memos and notes keep their words
        message = {"kind": "note", "subject": "", "body": str(after["body"]), "channel": None, "to": None}
    return {
        "id": event.get("id"),
        "occurred_at": event.get("occurred_at"),
        "actor": event.get("actor"),
        "title": f"{str(event.get('entity_type', '')).replace('_', ' ')} {str(event.get('action', '')).replace('_', ' ')}".strip(),
        "reason": event.get("reason"),
        "changes": changes,
        "message": message,
    }
