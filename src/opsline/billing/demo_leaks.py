"""Demo: the revenue leaks a bill-run review exists to catch, planted through the real services.

After last month's runs are final and before this month's draft, a few add-ons (static IP, managed router) turn out to
have been live at the FNO since the month before last: the partner's activation confirmation arrived late, so last
month's run never billed them. The product is activated with its true start date; the draft bills the missed months
as catch-up, and the review flags the account ("... for products active before last period but not billed then")
for an analyst to confirm. Deterministic by account id; about one account in 300 of those billed on the 1st.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select, text

from opsline.billing.charges import dialect_of
from opsline.billing.periods import add_months
from opsline.catalog.models import ProductOffering
from opsline.core.events import Actor
from opsline.inventory import service as inventory

ADD_ONS = ("SVC-STATIC-IP", "SVC-MANAGED-ROUTER")
REASON = "FNO activation confirmation received late: line live since {start}"


def plant_late_activations(factory: Any, *, cycle: date, now: Any, every: int = 300) -> int:
    """Activate add-ons with a start date two periods back on accounts billed on `cycle`'s day that had an invoice
    last period. Returns how many were planted (none when the catalogue has no such add-on)."""
    start = add_months(cycle, -2)
    actor = Actor.system("partner-feed")
    planted = 0
    with factory.begin() as s:
        offerings = list(s.execute(select(ProductOffering).where(ProductOffering.code.in_(ADD_ONS)).order_by(ProductOffering.code)).scalars())
        if not offerings:
            return 0
        dia = dialect_of(s)
        rows = s.execute(text("""
            SELECT a.id, MIN(p.site_id) AS site_id FROM account a
            JOIN invoice i ON i.account_id = a.id AND i.period_start = :prev
            JOIN product p ON p.account_id = a.id AND p.state = 'active' AND p.site_id IS NOT NULL
            WHERE a.status = 'active' AND a.bill_cycle_day = :day AND a.id % :every = 11
            GROUP BY a.id ORDER BY a.id"""), {"prev": dia.bind_date(add_months(cycle, -1)), "day": cycle.day, "every": every}).all()
        for k, (account_id, site_id) in enumerate(rows):
            offering = offerings[k % len(offerings)]
            reason = REASON.format(start=start.isoformat())
            p = inventory.create_product(s, account_id=account_id, offering=offering, site_id=site_id, order_id=None, now=now, actor=actor, reason=reason)
            inventory.transition_product(s, product=p, action="activate", now=now, actor=actor, reason=reason, effective_date=start)
            planted += 1
    return planted
