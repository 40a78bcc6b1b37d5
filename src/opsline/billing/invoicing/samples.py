"""Small, explicit sample data builders (an account with a product, prices and a finalised invoice) for tests and the demo fallback."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsline.billing import ledger
from opsline.billing.models import Invoice, InvoiceLine
from opsline.billing.tax import TaxedLine, rates_on, spread_vat
from opsline.core.money import Money


def make_account(session: Session, *, now: datetime, name: str = "Thabo Nkosi", email: str | None = "thabo@example.test", kind: str = "retail") -> int:
    from opsline.core.ids import account_number
    from opsline.customers.models import Account, Party

    party = Party(kind="person" if kind == "retail" else "organisation", name=name, created_at=now)
    session.add(party)
    session.flush()
    n = session.execute(select(func.coalesce(func.max(Account.id), 0))).scalar_one() + 1
    acc = Account(account_number=account_number(n + 900000), party_id=party.id, name=name, kind=kind, status="active", segment_code="consumer" if kind == "retail" else "sme",
                  value_tier_code="standard", currency="ZAR", email=email, phone="+27821234567", billing_line1="12 Jacaranda Street", billing_suburb="Melville",
                  billing_city="Johannesburg", billing_postal_code="2092", vat_registered=kind != "retail", vat_number="4999999999" if kind != "retail" else None,
                  created_at=now, updated_at=now)
    session.add(acc)
    session.flush()
    return acc.id


def make_mobile_product(session: Session, *, account_id: int, now: datetime, msisdn: str = "27821110000", data_rate_minor: int = 10, data_bundle: int = 1000,
                        recurring_minor: int = 19900, valid_from: date = date(2026, 1, 1), code: str | None = None) -> dict[str, int]:
    """A mobile offering with a recurring price and a data usage price (bundle), and an active product with an MSISDN."""
    from opsline.catalog.models import Price, ProductOffering
    from opsline.inventory.models import Product

    code = code or f"MOB-{msisdn}"
    off = ProductOffering(code=code, name=f"Mobile 1GB ({code})", kind="mobile", contract_months=0, created_at=now)
    session.add(off)
    session.flush()
    rec = Price(offering_id=off.id, kind="recurring", name="Monthly subscription", amount_minor=recurring_minor, currency="ZAR", tax_rate_code="VAT15", valid_from=valid_from)
    use = Price(offering_id=off.id, kind="usage", name="Out-of-bundle data", amount_minor=data_rate_minor, currency="ZAR", tax_rate_code="VAT15", usage_type="data_mb",
                included_quantity=Decimal(data_bundle), unit="MB", valid_from=valid_from)
    session.add_all([rec, use])
    prod = Product(account_id=account_id, offering_id=off.id, state="active", start_date=valid_from, msisdn=msisdn, created_at=now, updated_at=now)
    session.add(prod)
    session.flush()
    return {"offering_id": off.id, "recurring_price_id": rec.id, "usage_price_id": use.id, "product_id": prod.id}


def make_finalised_invoice(
    session: Session, *, account_id: int, now: datetime, period_start: date, period_end: date, lines: Sequence[dict[str, Any]], number: str | None = None,
    state: str = "new", kind: str = "cycle", terms_days: int = 30,
) -> int:
    """A finalised invoice (numbered, ledger posted) with lines given as dicts (description, amount_minor, kind, product_id, ...), VAT 15%."""
    inv = Invoice(account_id=account_id, kind=kind, period_start=period_start, period_end=period_end, state=state, currency="ZAR", created_at=now,
                  issued_at=now, due_date=(now + timedelta(days=terms_days)).date(), number=None)
    session.add(inv)
    session.flush()
    inv.number = number or f"INV-{now.year}-T{inv.id:07d}"
    sub = tax = 0
    rates = rates_on(session, on=period_start)
    vat = spread_vat([TaxedLine(int(ln["amount_minor"]), ln.get("tax_rate_code", "VAT15")) for ln in lines], rates)
    for ln, t in zip(lines, vat):
        amt = int(ln["amount_minor"])
        code = ln.get("tax_rate_code", "VAT15")
        session.add(InvoiceLine(invoice_id=inv.id, account_id=account_id, product_id=ln.get("product_id"), offering_id=ln.get("offering_id"), price_id=ln.get("price_id"),
                                kind=ln.get("kind", "recurring"), description=ln["description"], period_start=ln.get("period_start", period_start),
                                period_end=ln.get("period_end", period_end), quantity=Decimal(str(ln.get("quantity", 1))), unit_amount_minor=int(ln.get("unit_amount_minor", amt)),
                                amount_minor=amt, tax_rate_code=code, tax_minor=t, total_minor=amt + t, currency="ZAR", explanation=ln.get("explanation", "")))
        sub += amt
        tax += t
    inv.subtotal_minor, inv.tax_minor, inv.total_minor = sub, tax, sub + tax
    session.flush()
    if inv.total_minor:
        ledger.post(session, account_id=account_id, kind="invoice", ref_type="invoice", ref_id=inv.id, amount=Money.from_minor(inv.total_minor, "ZAR"), now=now,
                    due_date=inv.due_date, description=f"Invoice {inv.number}")
    return inv.id
