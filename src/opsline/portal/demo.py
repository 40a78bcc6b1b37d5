"""Demo customer portal logins: a consumer (an account with an invoice and a live product with a loaned router) and a
B2B company's admin contact, both with the demo password, printed at the end of `opsline demo`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, select

from opsline.cancellations.models import CancellationJourney
from opsline.core.events import Actor
from opsline.customers.models import Account
from opsline.db.session import make_sessionmaker
from opsline.inventory.models import Equipment, Product
from opsline.portal import auth
from opsline.portal.models import PortalUser

DEMO_PASSWORD = "opsline-demo"
CONSUMER_EMAIL = "customer@demo.opsline.test"
B2B_EMAIL = "b2b-admin@demo.opsline.test"


def credentials() -> list[tuple[str, str, str]]:
    """(what, email, password) for the README and the end of `opsline demo`."""
    return [("consumer", CONSUMER_EMAIL, DEMO_PASSWORD), ("B2B admin contact", B2B_EMAIL, DEMO_PASSWORD)]


def _consumer_account(session: Any) -> Any:
    from opsline.billing.models import Invoice

    journey = select(CancellationJourney.id).where(CancellationJourney.product_id == Product.id).exists()
    loaned = (select(Equipment.id).join(Product, Product.id == Equipment.product_id)
              .where(Equipment.account_id == Account.id, Equipment.owner == "isp_loaned", Product.state == "active",
                     Equipment.state.in_(("installed", "dispatched")), ~journey).exists())
    invoiced = select(Invoice.id).where(Invoice.account_id == Account.id, Invoice.number.is_not(None)).exists()
    return session.execute(select(Account.id, Account.party_id).where(Account.kind == "retail", Account.status == "active", loaned, invoiced)
                           .order_by(Account.id).limit(1)).first()


def run(ctx: Any) -> None:
    factory = make_sessionmaker(ctx.engine)
    actor = Actor.system("demo")
    made = 0
    with factory.begin() as s:
        auth.ensure_templates(s, now=ctx.now)
        if s.execute(select(exists().where(PortalUser.email.in_((CONSUMER_EMAIL, B2B_EMAIL))))).scalar():
            return
        consumer = _consumer_account(s)
        if consumer is not None:
            auth.create_user(s, email=CONSUMER_EMAIL, full_name="Demo Customer", party_id=consumer.party_id, role="holder", now=ctx.now,
                             actor=actor, password=DEMO_PASSWORD, verified=True, phone="+27820000001")
            made += 1
        company = s.execute(select(Account.party_id).where(Account.kind == "b2b").order_by(Account.id).limit(1)).scalar()
        if company is not None:
            auth.create_user(s, email=B2B_EMAIL, full_name="Demo Company Admin", party_id=company, role="admin", now=ctx.now,
                             actor=actor, password=DEMO_PASSWORD, verified=True)
            made += 1
    ctx.counts["portal_logins"] = made
