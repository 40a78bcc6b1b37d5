"""Demo product orders and quotes: a few dozen orders in every state (new fibre, upgrades, cancellations, failures,
holds, cancelled orders) placed through the real service on a sample of accounts, with ages over the last weeks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from opsline.catalog.models import ProductOffering
from opsline.config import get_settings
from opsline.core.localtime import zone
from opsline.core.errors import OpslineError
from opsline.core.events import Actor
from opsline.customers.models import Account, Site
from opsline.db.session import make_sessionmaker
from opsline.inventory.models import Product
from opsline.orders import service
from opsline.orders.models import ProductOrderItem
from opsline.orders.schemas import OrderIn, OrderItemIn, QuoteIn
from opsline.partners import service as partners
from opsline.partners.models import PartnerServiceOrder


def _partner_says(session: Any, item: ProductOrderItem, action: str, when: Any, reason: str) -> None:
    """Move the partner's service order (its `partner_service_order.*` event tells the orders area, as a real callback would)."""
    so = session.get(PartnerServiceOrder, item.partner_service_order_id)
    if so is None:
        return
    partners.transition(session, so=so, action=action, now=when, actor=Actor.system(f"partner:{so.partner_code}"), reason=reason,
                        confirmed_date=when.date() if action == "complete" else None)


def load_orders(ctx: Any) -> None:
    """Up to ~120 orders (scaled to the account count) and a handful of quotes, through orders.service."""
    if len(ctx.account_ids) == 0:
        return
    n_orders = max(6, min(120, len(ctx.account_ids) // 15))
    factory = make_sessionmaker(ctx.engine)
    actor = Actor.system("demo")
    tz = zone(get_settings().timezone)
    lo, hi = int(ctx.account_ids[0]), int(ctx.account_ids[-1])
    with factory() as s:
        offerings = {o.code: o.id for o in s.execute(select(ProductOffering).where(ProductOffering.active.is_(True))).scalars()}
        fibre_by_partner: dict[str, list[int]] = {}
        for o in s.execute(select(ProductOffering).where(ProductOffering.kind == "fibre", ProductOffering.active.is_(True)).order_by(ProductOffering.id)).scalars():
            fibre_by_partner.setdefault(o.partner_code or "", []).append(o.id)
        candidates = s.execute(
            select(Account.id, Site.id, Site.fno_coverage).join(Site, Site.account_id == Account.id)
            .where(Account.id.between(lo, hi), Account.status == "active", Account.kind == "retail").order_by(Account.id).limit(n_orders * 3)
        ).all()
        products = s.execute(
            select(Product.id, Product.account_id, Product.offering_id, Product.partner_code, Product.site_id)
            .where(Product.account_id.between(lo, hi), Product.state == "active", Product.partner_code.is_not(None)).order_by(Product.id.desc()).limit(n_orders * 3)
        ).all()
    rng = ctx.rng
    placed = 0
    scenario = 0
    for k in range(n_orders):
        scenario = k % 8
        days_ago = int(rng.integers(0, 30))
        when = ctx.now - timedelta(days=days_ago, hours=int(rng.integers(0, 8)))
        try:
            with factory.begin() as s:
                if scenario in (0, 1, 2, 5, 6) and k < len(candidates):
                    acc, site, cov = candidates[k]
                    fnos = [p for p in (cov or []) if p in fibre_by_partner]
                    if not fnos:
                        continue
                    offering = fibre_by_partner[fnos[k % len(fnos)]][k % 12]
                    order = service.place_order(s, data=OrderIn(account_id=acc, channel=["web", "desk", "api"][k % 3], external_id=f"WEB-{20000 + k}",
                                                                items=[OrderItemIn(offering_id=offering, site_id=site)]), now=when, tz=tz, actor=actor)
                    item = s.execute(select(ProductOrderItem).where(ProductOrderItem.order_id == order.id)).scalar_one()
                    if scenario == 1 and days_ago > 3:
                        _partner_says(s, item, "complete", when + timedelta(days=3), "installed")
                    elif scenario == 2:
                        _partner_says(s, item, "reject", when + timedelta(days=1), "no fibre in the complex yet (build planned Q2)")
                    elif scenario == 5:
                        service.order_action(s, order_id=order.id, action="hold", now=when + timedelta(hours=2), tz=tz, actor=actor, reason="awaiting body-corporate approval")
                    elif scenario == 6:
                        service.order_action(s, order_id=order.id, action="cancel", now=when + timedelta(hours=5), tz=tz, actor=actor, reason="customer chose a competitor")
                elif scenario in (3, 4, 7) and k < len(products):
                    pid, acc, off, partner, site = products[k]
                    if scenario == 3:
                        service.place_order(s, data=OrderIn(account_id=acc, channel="desk", items=[OrderItemIn(action="delete", product_id=pid)]), now=when, tz=tz, actor=actor)
                    else:
                        options = fibre_by_partner.get(partner or "", [])
                        new = next((o for o in options if o != off), None)
                        if new is None:
                            continue
                        service.place_order(s, data=OrderIn(account_id=acc, channel="desk", description="speed change", items=[OrderItemIn(action="modify", product_id=pid, offering_id=new)]), now=when, tz=tz, actor=actor)
                else:
                    continue
            placed += 1
        except OpslineError:
            continue  # e.g. the sampled product already has an open order: skip, the demo only needs a realistic mix
    quotes = 0
    for k, (acc, site, cov) in enumerate(candidates[-min(len(candidates), 8):]):
        fnos = [p for p in (cov or []) if p in fibre_by_partner]
        if not fnos:
            continue
        try:
            with factory.begin() as s:
                q = service.create_quote(s, data=QuoteIn(account_id=acc, description="Fibre upgrade quote", items=[OrderItemIn(offering_id=fibre_by_partner[fnos[0]][(k * 5) % 12], site_id=site),
                                                                                                                      OrderItemIn(offering_id=offerings["SVC-STATIC-IP"])]), now=ctx.now - timedelta(days=k), tz=tz, actor=actor)
                if k % 3 == 1:
                    service.quote_action(s, quote_id=q.id, action="approve", now=ctx.now - timedelta(days=k), tz=tz, actor=actor)
            quotes += 1
        except OpslineError:
            continue
    ctx.counts["orders"] = placed
    ctx.counts["quotes"] = quotes
