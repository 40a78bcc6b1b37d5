"""Shared helpers for the support (issue 17) tests: customers with a live product, an order, a sales partner."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select

from opsline.catalog.models import ProductOffering
from opsline.customers import service as customers
from opsline.customers.schemas import AccountIn, SiteIn
from opsline.inventory.models import Product
from opsline.orders.models import ProductOrder
from opsline.partners.models import Partner


def offering(session, *, code: str | None = None) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    q = select(ProductOffering.id, ProductOffering.code).order_by(ProductOffering.id)
    if code:
        q = q.where(ProductOffering.code == code)
    r = session.execute(q.limit(1)).one()
    return int(r.id), str(r.code)


def customer(session, now: datetime, actor, *, name: str = "Lerato Dlamini", city: str = "Johannesburg", suburb: str = "Rosebank",  # type: ignore[no-untyped-def]
             contract_end: date | None = None, offering_id: int | None = None, state: str = "active", email: str | None = None) -> int:
    """An account with a site and one installed product (contract ending on `contract_end`); returns the account id."""
    acc = customers.create_account(session, data=AccountIn(name=name, email=email or f"{name.split()[0].lower()}@example.co.za", phone="082 555 0101",
                                                           sites=[SiteIn(line1="7 Jan Smuts Avenue", suburb=suburb, city=city, postal_code="2196")]),
                                   now=now, actor=actor)
    session.flush()
    site_id = customers.account_360(session, account_id=acc.id)["sites"][0]["id"]
    off = offering_id if offering_id is not None else offering(session)[0]
    session.add(Product(account_id=acc.id, offering_id=off, site_id=site_id, state=state, start_date=now.date() - timedelta(days=700),
                        contract_months=24, contract_end_date=contract_end, created_at=now, updated_at=now))
    session.flush()
    return acc.id


def order(session, now: datetime, account_id: int) -> int:  # type: ignore[no-untyped-def]
    o = ProductOrder(account_id=account_id, state="acknowledged", channel="sales", created_at=now, updated_at=now)
    session.add(o)
    session.flush()
    return o.id


def sales_partner(session, *, code: str = "fibrepro", active: bool = True, email: str | None = "leads@fibrepro.example",  # type: ignore[no-untyped-def]
                  base_url: str | None = None) -> str:
    session.add(Partner(code=code, name=code.title() + " Sales", kind="fno", active=active, contact_email=email, currency="ZAR",
                        adapter="http" if base_url else "simulator", base_url=base_url, auth_token="tok-123" if base_url else None))
    session.flush()
    return code
