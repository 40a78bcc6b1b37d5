"""A relocation through the orders path with a partner's configured overlap (data: relocation_overlap), billed across
bill-run boundaries on SQLite and PostgreSQL: the old line is billed to the move date plus exactly the overlap days,
the new one from the move date, nothing billed twice beyond the overlap and no day never billed."""

from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import func, select

from opsline.billing import final_account
from opsline.billing.models import Invoice, InvoiceLine, RelocationOverlap
from opsline.core.events import Actor
from opsline.customers.models import Account
from opsline.inventory.models import Product
from opsline.orders.models import ProductOrderItem
from tests.integration.test_billing_runs import finalise, run_draft
from tests.integration.test_orders_billing_edges import _account, _complete, _fibre, _items, _order

NOV, DEC, JAN, FEB = date(2026, 11, 1), date(2026, 12, 1), date(2027, 1, 1), date(2027, 2, 1)
RUN = {c: datetime(c.year, c.month, c.day, 0, 0, tzinfo=timezone.utc) for c in (DEC, JAN, FEB)}
ORDERED = datetime(2026, 10, 20, 7, 0, tzinfo=timezone.utc)
MOVED_AT = datetime(2026, 12, 5, 7, 0, tzinfo=timezone.utc)
MOVE = date(2026, 12, 17)
ACTOR = Actor(name="tester", roles=frozenset({"admin"}))


def _billed(factory, account_id, start, end):  # type: ignore[no-untyped-def]
    """Each product's recurring and adjustment lines for days in [start, end), over every finalised bill."""
    with factory() as s:
        rows = s.execute(select(InvoiceLine.product_id, func.sum(InvoiceLine.amount_minor)).join(Invoice, Invoice.id == InvoiceLine.invoice_id)
                         .where(InvoiceLine.account_id == account_id, InvoiceLine.kind.in_(("recurring", "adjustment")),
                                InvoiceLine.period_start >= start, InvoiceLine.period_start < end)
                         .group_by(InvoiceLine.product_id)).all()
    return {int(p): int(a) for p, a in rows}


def _half_up(num: int, den: int) -> int:
    return (2 * num + den) // (2 * den)


def _relocated(factory, overlap: int):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        acc, (home, new_home) = _account(s, ORDERED, ACTOR, second_site=True)
        old = _fibre(s, ORDERED, ACTOR, acc, home, start=NOV)
        if overlap:
            s.add(RelocationOverlap(partner_code=old.partner_code, overlap_days=overlap, description="both lines live while the customer moves"))
        acc_id, old_id = acc.id, old.id
    finalise(factory, RUN[DEC], run_draft(factory, RUN[DEC], cycle=DEC))  # December billed in advance on the old line
    with factory.begin() as s:
        account = s.get(Account, acc_id)
        (item,) = _items(s, _order(s, MOVED_AT, ACTOR, account, [{"action": "modify", "product_id": old_id, "site_id": new_home}]))
        _complete(s, MOVED_AT, ACTOR, item, MOVE)
        new_id = s.get(ProductOrderItem, item.id).result_product_id
        plan = final_account.relocation_plan(s, old_product_id=old_id, new_start_date=MOVE)
        price = s.execute(select(InvoiceLine.unit_amount_minor).where(InvoiceLine.product_id == old_id, InvoiceLine.kind == "recurring").limit(1)).scalar_one()
        old_end, new_start, replaces = s.get(Product, old_id).end_date, s.get(Product, new_id).start_date, s.get(Product, new_id).replaces_product_id
    assert (old_end, new_start, replaces) == (MOVE, MOVE, old_id)  # inventory: the move date; the overlap is billing's (data)
    finalise(factory, RUN[JAN], run_draft(factory, RUN[JAN], cycle=JAN))
    finalise(factory, RUN[FEB], run_draft(factory, RUN[FEB], cycle=FEB))
    return acc_id, old_id, new_id, price, plan


def test_a_partner_overlap_bills_the_old_line_exactly_that_many_days_past_the_move_and_never_a_gap(factory):
    acc, old, new, price, plan = _relocated(factory, overlap=3)
    assert (plan["overlap_days"], plan["old_billed_to"], plan["new_billed_from"]) == (3, date(2026, 12, 20), MOVE)
    dec = _billed(factory, acc, DEC, JAN)
    assert dec[old] == _half_up(price * 19, 31)  # 1-19 December: to the move, plus the 3 days' overlap
    assert dec[new] == price - _half_up(price * 16, 31)  # 17-31 December, caught up on the January bill
    assert dec[old] + dec[new] - price == _half_up(price * 19, 31) - _half_up(price * 16, 31)  # billed twice: the 3 overlap days only
    assert _billed(factory, acc, JAN, FEB) == {new: price}  # from January the new line alone
    assert _billed(factory, acc, FEB, date(2027, 3, 1)) == {new: price}  # and the February run settles nothing twice


def test_without_an_overlap_row_the_relocation_is_billed_neither_twice_nor_never(factory):
    acc, old, new, price, plan = _relocated(factory, overlap=0)
    assert plan["overlap_days"] == 0 and plan["old_last_billed_day"] == date(2026, 12, 16)
    dec = _billed(factory, acc, DEC, JAN)
    assert dec[old] + dec[new] == price and dec[old] == _half_up(price * 16, 31)
    assert _billed(factory, acc, JAN, FEB) == {new: price}
