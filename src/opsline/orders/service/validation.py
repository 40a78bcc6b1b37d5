"""Checking an order's items before anything is written: account, products, offerings, sites, prices, dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.catalog import service as catalog
from opsline.catalog.models import ProductOffering
from opsline.customers.models import Account, Site
from opsline.inventory import service as inventory
from opsline.inventory.models import Product, ProductState
from opsline.orders.models import OPEN_ITEM_STATES, ItemAction, ProductOrderItem
from opsline.orders.schemas import OrderItemIn
from opsline.orders.service.errors import OrderNotAllowed, UnableToPlaceOrder, WaiverReasonRequired


@dataclass
class Item:
    """A validated order line, ready to be carried out."""

    data: OrderItemIn
    offering: ProductOffering
    product: Product | None
    site_id: int | None
    relocation: bool
    price: dict[str, Any] | None = None  # catalog.price_summary on the start date for an add or modify (router charged on month-to-month only)


def check_account(session: Session, account_id: int, *, deletes_only: bool = False) -> Account:
    """Raises UnableToPlaceOrder (no such account), OrderNotAllowed (suspended or closed). A suspended account may
    still cease its lines (`deletes_only`): a discontinuance for non-payment follows the suspension."""
    acc = session.get(Account, account_id)
    if acc is None:
        raise UnableToPlaceOrder(f"account {account_id} does not exist", field="account_id")
    if acc.status not in ("active", "pending") and not (deletes_only and acc.status == "suspended"):
        raise OrderNotAllowed(f"account {acc.account_number} is {acc.status}; orders are only taken on active accounts", field="account_id")
    return acc


def _check_site(session: Session, *, site_id: int, account_id: int, offering: ProductOffering, n: int) -> Site:
    site = session.get(Site, site_id)
    if site is None or site.account_id != account_id:
        raise UnableToPlaceOrder(f"item {n}: site {site_id} is not a site of this account", field=f"items[{n}].site_id")
    if offering.partner_code and offering.partner_code not in (site.fno_coverage or []):
        covered = ", ".join(site.fno_coverage or []) or "no FNO"
        raise UnableToPlaceOrder(f"item {n}: {offering.partner_code} does not cover {site.line1}, {site.city} (covered by {covered})", field=f"items[{n}].site_id")
    return site


def _check_product(session: Session, *, it: OrderItemIn, n: int, account_id: int, touched: set[int], for_quote: bool) -> Product:
    if it.product_id is None:
        raise UnableToPlaceOrder(f"item {n}: a {it.action} needs the product to change", field=f"items[{n}].product_id")
    product = session.get(Product, it.product_id)
    if product is None or product.account_id != account_id:
        raise UnableToPlaceOrder(f"item {n}: product {it.product_id} is not a product of this account", field=f"items[{n}].product_id")
    if product.state == ProductState.TERMINATED and it.action == ItemAction.DELETE:
        ended = f" on {product.end_date.isoformat()}" if product.end_date else ""
        raise OrderNotAllowed(f"item {n}: product {product.id} was already terminated{ended}", field=f"items[{n}].product_id")
    if product.state == ProductState.PENDING_TERMINATE and it.action == ItemAction.DELETE:
        raise OrderNotAllowed(f"item {n}: product {product.id} is already being terminated", field=f"items[{n}].product_id")
    if product.state not in (ProductState.ACTIVE, ProductState.SUSPENDED):
        raise OrderNotAllowed(f"item {n}: product {product.id} is {product.state}; only active or suspended products can be changed", field=f"items[{n}].product_id")
    if product.id in touched:
        raise UnableToPlaceOrder(f"item {n}: product {product.id} appears twice in this order", field=f"items[{n}].product_id")
    touched.add(product.id)
    if not for_quote:
        busy = session.execute(
            select(ProductOrderItem.order_id).where(ProductOrderItem.product_id == product.id, ProductOrderItem.state.in_([s.value for s in OPEN_ITEM_STATES])).limit(1)
        ).scalar_one_or_none()
        if busy is not None:
            raise OrderNotAllowed(f"item {n}: product {product.id} already has open order {busy}", field=f"items[{n}].product_id")
    return product


def validate_items(session: Session, *, account_id: int, items: list[OrderItemIn], on: date, for_quote: bool = False) -> list[Item]:
    """Check every item before anything is written. Raises UnableToPlaceOrder, OrderNotAllowed, WaiverReasonRequired,
    UnableToTerminateProduct, catalog.PriceNotValid, catalog.OfferingNotFound."""
    out: list[Item] = []
    touched: set[int] = set()
    for n, it in enumerate(items):
        if it.action == ItemAction.NO_CHANGE:
            continue
        product, price = None, None
        if it.action in (ItemAction.MODIFY, ItemAction.DELETE):
            product = _check_product(session, it=it, n=n, account_id=account_id, touched=touched, for_quote=for_quote)
        if it.waive_early_termination_fee and not (it.waiver_reason or "").strip():
            raise WaiverReasonRequired(f"item {n}: waiving the early-termination fee needs a reason", field=f"items[{n}].waiver_reason")
        if it.action == ItemAction.DELETE and product is not None:
            try:
                inventory.check_termination(product, on=on)
            except inventory.UnableToTerminateProduct as exc:
                raise inventory.UnableToTerminateProduct(f"item {n}: {exc.detail}", field="requested_start_date") from exc
        offering_id = it.offering_id if it.offering_id is not None else (product.offering_id if product else None)
        if offering_id is None:
            raise UnableToPlaceOrder(f"item {n}: choose a product offering", field=f"items[{n}].offering_id")
        try:
            offering = catalog.get_offering(session, offering_id=offering_id)
        except catalog.OfferingNotFound as exc:
            raise catalog.OfferingNotFound(f"item {n}: product offering {offering_id} does not exist", field=f"items[{n}].offering_id") from exc
        if it.action == ItemAction.ADD and not offering.active:
            raise UnableToPlaceOrder(f"item {n}: {offering.code} is no longer sold", field=f"items[{n}].offering_id")
        if product is not None and it.action == ItemAction.MODIFY:
            old = session.get(ProductOffering, product.offering_id)
            if old is not None and old.kind != offering.kind:
                raise UnableToPlaceOrder(f"item {n}: cannot change a {old.kind} product into a {offering.kind} offering", field=f"items[{n}].offering_id")
        site_id = it.site_id if it.site_id is not None else (product.site_id if product else None)
        if it.action == ItemAction.MODIFY and product is not None and offering.id == product.offering_id and site_id == product.site_id:
            if it.site_id is not None:
                raise UnableToPlaceOrder(f"item {n}: product {product.id} is already at site {site_id}; a relocation needs a different site",
                                         field=f"items[{n}].site_id")
            raise UnableToPlaceOrder(f"item {n}: nothing to change (same offering and site)", field=f"items[{n}]")
        if it.action in (ItemAction.ADD, ItemAction.MODIFY):
            if offering.partner_code and site_id is None:
                raise UnableToPlaceOrder(f"item {n}: {offering.code} is delivered by {offering.partner_code} and needs a site", field=f"items[{n}].site_id")
            if site_id is not None:
                _check_site(session, site_id=site_id, account_id=account_id, offering=offering, n=n)
            try:
                price = catalog.price_summary(session, offering_id=offering.id, on=on, quantity=it.quantity, include_router=offering.contract_months == 0)
            except catalog.PriceNotValid as exc:
                raise catalog.PriceNotValid(f"item {n}: {offering.code} has no price valid on {on.isoformat()}", field=f"items[{n}].offering_id") from exc
        relocation = bool(product is not None and it.action == ItemAction.MODIFY and site_id != product.site_id)
        out.append(Item(it, offering, product, site_id, relocation, price))
    if not out:
        raise UnableToPlaceOrder("the order has no items that change anything", field="items")
    return out
