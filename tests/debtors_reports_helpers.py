"""A small debtors book with known ageing, payments, a credit balance, a dispute and a memo, for the debtors reports tests."""

from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import text
from sqlalchemy.orm import Session

from opsline.billing.invoicing import claims
from opsline.billing.invoicing.samples import make_account, make_finalised_invoice
from opsline.core.events import Actor
from opsline.core.money import Money
from opsline.customers import service as customers
from opsline.customers.schemas import MemoIn
from opsline.payments import allocations

CLERK = Actor(name="clerk", roles=frozenset({"debtors_clerk"}))


def at(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=timezone.utc)


def invoice(s: Session, account_id: int, *, posted: datetime, due: date, net_minor: int, period: date) -> int:
    """A finalised invoice posted at `posted`, due on `due`, for net_minor + 15% VAT."""
    return make_finalised_invoice(s, account_id=account_id, now=posted, terms_days=(due - posted.date()).days, period_start=period,
                                  period_end=date(period.year + (period.month == 12), period.month % 12 + 1, 1),
                                  lines=[{"description": "Fibre 100/100", "amount_minor": net_minor}])


def build_book(s: Session) -> dict:
    """As at 2026-11-23 (Johannesburg), days past due: 11-30 → current, 10-31 → 23, 09-30 → 54, 08-31 → 84, 08-15 → 100, 06-30 → 146.

    thabo (consumer): 3 × R 689.08 (599.20 net) due 09-30, 10-31, 11-30; paid R 300 on 11-10 (settles the oldest first).
    acme (sme, b2b):  R 5,750.00 due 06-30 and R 2,300.00 due 08-15; a claim disputes R 1,150.00; a debtors memo.
    pieter (consumer): R 1,234.56 due 08-31 (net 1,073.53 + VAT).
    lerato (consumer): R 918.85 posted 2026-10-31 23:30 UTC (1 November in Johannesburg), due 11-30; paid R 1,000 → in credit.
    """
    thabo = make_account(s, now=at(2026, 1, 5), name="Thabo Nkosi")
    acme = make_account(s, now=at(2026, 1, 5), name="Acme Logistics (Pty) Ltd", kind="b2b")
    pieter = make_account(s, now=at(2026, 1, 5), name="Pieter van der Merwe")
    lerato = make_account(s, now=at(2026, 1, 5), name="=HYPERLINK(\"http://x\") Lerato")  # a formula in a name must export as text
    inv = {
        "t_sep": invoice(s, thabo, posted=at(2026, 8, 31), due=date(2026, 9, 30), net_minor=59920, period=date(2026, 9, 1)),
        "t_oct": invoice(s, thabo, posted=at(2026, 10, 1), due=date(2026, 10, 31), net_minor=59920, period=date(2026, 10, 1)),
        "t_nov": invoice(s, thabo, posted=at(2026, 10, 31), due=date(2026, 11, 30), net_minor=59920, period=date(2026, 11, 1)),
        "a_jun": invoice(s, acme, posted=at(2026, 5, 31), due=date(2026, 6, 30), net_minor=500000, period=date(2026, 6, 1)),
        "a_aug": invoice(s, acme, posted=at(2026, 7, 16), due=date(2026, 8, 15), net_minor=200000, period=date(2026, 8, 1)),
        "p_aug": invoice(s, pieter, posted=at(2026, 8, 1), due=date(2026, 8, 31), net_minor=107353, period=date(2026, 8, 1)),
        "l_nov": invoice(s, lerato, posted=at(2026, 10, 31, 23, 30), due=date(2026, 11, 30), net_minor=79900, period=date(2026, 11, 1)),
    }
    allocations.capture_payment(s, account_id=thabo, amount=Money.of("300.00", "ZAR"), method="cash", received_on=date(2026, 11, 10),
                                now=at(2026, 11, 10, 8), actor=CLERK)
    allocations.capture_payment(s, account_id=lerato, amount=Money.of("1000.00", "ZAR"), method="eft", received_on=date(2026, 11, 20),
                                now=at(2026, 11, 20, 8), actor=CLERK)
    line = s.execute(text("SELECT id FROM invoice_line WHERE invoice_id = :i"), {"i": inv["a_jun"]}).scalar_one()
    claims.raise_claim(s, invoice_id=inv["a_jun"], lines=[(line, Money.of("1150.00", "ZAR"))], reason="Charged for a line that was never installed",
                       channel="email", now=at(2026, 7, 2), actor=CLERK)
    customers.add_memo(s, account_id=acme, data=MemoIn(body="Called the CFO; promised to pay the undisputed part by Friday", category="debtors"),
                       now=at(2026, 11, 20, 9), actor=CLERK)
    s.flush()
    return {"thabo": thabo, "acme": acme, "pieter": pieter, "lerato": lerato, "invoices": inv}
