"""Shared builders for the debtors tests: an account owing a finalised invoice due a given number of days ago."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import text
from sqlalchemy.orm import Session

from opsline.billing.invoicing.samples import make_account, make_finalised_invoice

TODAY = date(2026, 11, 23)


def at(d: date) -> datetime:
    """07:00 UTC (09:00 in Johannesburg) on day d: inside the collections contact hours."""
    return datetime.combine(d, time(7, 0), tzinfo=timezone.utc)


def debtor(s: Session, *, name: str, amount: int = 59900, overdue_days: int = 22, tier: str = "standard", on: date = TODAY,
           segment: str | None = None) -> dict:
    """An account with one finalised invoice of `amount` (incl. VAT) due `overdue_days` before `on`."""
    due = on - timedelta(days=overdue_days)
    issued = at(due - timedelta(days=30))
    acc = make_account(s, now=issued, name=name, email=f"{name.split()[0].lower()}@example.test")
    s.execute(text("UPDATE account SET value_tier_code = :t WHERE id = :a"), {"t": tier, "a": acc})
    if segment:
        s.execute(text("UPDATE account SET segment_code = :g WHERE id = :a"), {"g": segment, "a": acc})
    start = date(due.year, due.month, 1) - timedelta(days=31)
    inv = make_finalised_invoice(s, account_id=acc, now=issued, period_start=start.replace(day=1), period_end=due,
                                 lines=[{"description": "Fibre 50/50", "amount_minor": round(amount / 1.15)}])
    s.execute(text("UPDATE invoice SET total_minor = :t WHERE id = :i"), {"t": amount, "i": inv})
    s.execute(text("UPDATE ledger_entry SET amount_minor = :t WHERE ref_type = 'invoice' AND ref_id = :i"), {"t": amount, "i": inv})
    number = s.execute(text("SELECT account_number FROM account WHERE id = :a"), {"a": acc}).scalar_one()
    return {"id": acc, "invoice_id": inv, "number": number, "name": name}


def counts(s: Session) -> dict[str, int]:
    return {t: s.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in
            ("dunning_run", "dunning_action", "dunning_account", "dunning_hold", "dunning_letter", "message", "memo", "audit_event", "job",
             "dunning_step", "dunning_policy")}
