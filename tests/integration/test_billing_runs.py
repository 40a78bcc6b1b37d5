"""Bill runs against a real database: proration, VAT, idempotency, lifecycle (review, four-eyes, finalise, rollback)."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from opsline.billing import billrun, review
from opsline.billing.models import BillingSetting, BillRun, Discount, Invoice, InvoiceLine, LedgerEntry, PendingCharge, UsageRecord
from opsline.billing.service import account_balance, ageing, queue_charge
from opsline.catalog.models import Price, ProductOffering
from opsline.core.errors import OpslineError
from opsline.core.events import Actor
from opsline.core.jobs import Job
from opsline.core.money import Money
from opsline.customers.models import Account, Party
from opsline.inventory.models import Product

DEC = date(2026, 12, 1)
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)
STARTER = Actor(name="bilal", roles=frozenset({"billing_analyst"}))
APPROVER = Actor(name="dineo", roles=frozenset({"debtors_manager"}))
_seq = itertools.count(1)


def new(model, now, **kw):
    """A row of another area's table with our values; any other required column gets a plain filler (their models evolve)."""
    from datetime import date as _date

    from sqlalchemy import Boolean, Date, Integer, Numeric, String, Text

    for col in model.__table__.columns:
        if col.name in kw or col.nullable or col.primary_key or col.default is not None or col.server_default is not None:
            continue
        t = col.type
        if isinstance(t, (String, Text)):
            kw[col.name] = "x"
        elif isinstance(t, Boolean):
            kw[col.name] = False
        elif isinstance(t, Date):
            kw[col.name] = _date(2020, 1, 1)
        elif isinstance(t, (Integer, Numeric)):
            kw[col.name] = 0
        else:
            kw[col.name] = now
    return model(**kw)


def make_account(s, now, *, currency="ZAR", day=1, terms=30, status="active") -> int:
    n = next(_seq)
    party = Party(kind="person", name=f"Test Person {n}", created_at=now)
    s.add(party)
    s.flush()
    acc = Account(account_number=f"T{n:09d}", party_id=party.id, name=f"Test Person {n}", kind="retail", status=status, segment_code="consumer",
                  value_tier_code="standard", currency=currency, payment_terms_days=terms, bill_cycle_day=day, created_at=now, updated_at=now)
    s.add(acc)
    s.flush()
    return acc.id


def make_offering(s, *, monthly_minor: int, currency="ZAR", one_offs=(), tax="VAT15") -> int:
    n = next(_seq)
    o = new(ProductOffering, NOW, code=f"T-OFF-{n}", name=f"Fibre {n}", kind="fibre", contract_months=0)
    s.add(o)
    s.flush()
    s.add(new(Price, NOW, offering_id=o.id, kind="recurring", name="Monthly", amount_minor=monthly_minor, currency=currency, tax_rate_code=tax,
                charge_event="monthly", valid_from=date(2020, 1, 1)))
    for event, amt in one_offs:
        s.add(new(Price, NOW, offering_id=o.id, kind="one_off", name=event.title(), amount_minor=amt, currency=currency, tax_rate_code=tax, charge_event=event, valid_from=date(2020, 1, 1)))
    s.flush()
    return o.id


def make_product(s, now, *, account_id, offering_id, start, end=None, state="active", replaces=None) -> int:
    p = new(Product, now, account_id=account_id, offering_id=offering_id, state=state, start_date=start, end_date=end, contract_months=0,
                replaces_product_id=replaces, created_at=now, updated_at=now)
    s.add(p)
    s.flush()
    return p.id


def run_draft(factory, now, cycle=DEC, actor=STARTER, shards=None) -> int:
    with factory.begin() as s:
        rid = billrun.start_bill_run(s, cycle_date=cycle, now=now, actor=actor, shards=shards).id
    billrun.drain_shards(factory, now=now)
    return rid


def finalise(factory, now, rid) -> None:
    with factory.begin() as s:
        billrun.open_review(s, bill_run_id=rid, now=now, actor=STARTER)
        billrun.approve_bill_run(s, bill_run_id=rid, now=now, actor=APPROVER)
        billrun.finalise_bill_run(s, bill_run_id=rid, now=now, actor=APPROVER)


def lines_of(factory, account_id):
    with factory() as s:
        return s.execute(select(InvoiceLine).where(InvoiceLine.account_id == account_id).order_by(InvoiceLine.id)).scalars().all()


def test_a_full_month_is_charged_in_advance_with_vat_and_an_explanation(factory, now):
    with factory.begin() as s:
        acc = make_account(s, now)
        off = make_offering(s, monthly_minor=59900)
        make_product(s, now, account_id=acc, offering_id=off, start=date(2026, 6, 1))
    rid = run_draft(factory, now)
    [line] = lines_of(factory, acc)
    assert (line.kind, line.amount_minor, line.tax_minor, line.total_minor) == ("recurring", 59900, 8985, 68885)
    assert str(line.period_start) == "2026-12-01" and str(line.period_end) == "2027-01-01"
    assert "2026-12-01 to 2026-12-31" in line.explanation and "in advance" in line.explanation
    with factory() as s:
        run = s.get(BillRun, rid)
        assert (run.state, run.shards_done, run.lines_count, run.total_minor) == ("draft", run.shard_count, 1, 68885)
        inv = s.execute(select(Invoice).where(Invoice.account_id == acc)).scalar_one()
        assert (inv.state, inv.number, inv.total_minor) == ("draft", None, 68885)


def test_activation_on_the_20th_of_a_31_day_month_charges_12_of_31_days(factory, now):
    with factory.begin() as s:
        acc = make_account(s, now)
        off = make_offering(s, monthly_minor=59900)
        make_product(s, now, account_id=acc, offering_id=off, start=date(2026, 12, 20))
    run_draft(factory, now)
    [line] = lines_of(factory, acc)
    assert line.amount_minor == 23187  # 59900 * 12 / 31 = 23187.10
    assert "pro-rata 12 of 31 days" in line.explanation and "from activation 2026-12-20" in line.explanation


def test_termination_mid_month_charges_up_to_the_exclusive_end_date(factory, now):
    with factory.begin() as s:
        acc = make_account(s, now)
        off = make_offering(s, monthly_minor=31000)
        make_product(s, now, account_id=acc, offering_id=off, start=date(2025, 1, 1), end=date(2026, 12, 11), state="pendingTerminate")
    run_draft(factory, now)
    [line] = lines_of(factory, acc)
    assert line.amount_minor == 10000  # 10 of 31 days: 1..10 December
    assert "10 of 31 days" in line.explanation and "service ends 2026-12-11" in line.explanation


def test_relocation_on_the_same_day_bills_exactly_one_month_without_gap_or_overlap(factory, now):
    with factory.begin() as s:
        acc = make_account(s, now)
        off = make_offering(s, monthly_minor=59999)
        old = make_product(s, now, account_id=acc, offering_id=off, start=date(2025, 3, 1), end=date(2026, 12, 17), state="terminated")
        make_product(s, now, account_id=acc, offering_id=off, start=date(2026, 12, 17), replaces=old)
    run_draft(factory, now)
    lines = sorted(lines_of(factory, acc), key=lambda l: str(l.period_start))
    assert len(lines) == 2
    assert sum(l.amount_minor for l in lines) == 59999
    assert str(lines[0].period_end) == str(lines[1].period_start) == "2026-12-17"


def test_29_february_2028_is_one_of_29_days(factory, now):
    with factory.begin() as s:
        acc = make_account(s, now)
        off = make_offering(s, monthly_minor=29000)
        make_product(s, now, account_id=acc, offering_id=off, start=date(2028, 2, 29))
    run_draft(factory, now, cycle=date(2028, 2, 1))
    [line] = lines_of(factory, acc)
    assert line.amount_minor == 1000 and "1 of 29 days" in line.explanation


@pytest.mark.parametrize("policy, billed", [("charge", True), ("no_charge", False)])
def test_suspended_products_follow_the_suspension_policy(factory, now, policy, billed):
    with factory.begin() as s:
        s.get(BillingSetting, "suspension_policy").value = policy
        acc = make_account(s, now)
        off = make_offering(s, monthly_minor=50000)
        make_product(s, now, account_id=acc, offering_id=off, start=date(2026, 1, 1), state="suspended")
    run_draft(factory, now)
    lines = lines_of(factory, acc)
    assert bool(lines) is billed
    if billed:
        assert "suspended" in lines[0].explanation


def test_vat_is_rounded_once_per_invoice_and_spread_over_lines_by_largest_remainder(factory, now):
    with factory.begin() as s:
        acc = make_account(s, now)
        for amount in (10010, 10030, 333):  # exact VAT 1501.5 + 1504.5 + 49.95 = 3055.95 -> 3056 (per line it would be 3057)
            off = make_offering(s, monthly_minor=amount)
            make_product(s, now, account_id=acc, offering_id=off, start=date(2026, 1, 1))
    run_draft(factory, now)
    lines = lines_of(factory, acc)
    # floors 1501, 1504, 49 (3054); the two cents left go to the largest remainders (.95, then the first .5)
    assert sorted(l.tax_minor for l in lines) == [50, 1502, 1504]
    with factory() as s:
        inv = s.execute(select(Invoice).where(Invoice.account_id == acc)).scalar_one()
    assert inv.subtotal_minor == sum(l.amount_minor for l in lines)
    assert inv.tax_minor == sum(l.tax_minor for l in lines)
    assert inv.total_minor == sum(l.total_minor for l in lines) == inv.subtotal_minor + inv.tax_minor


def test_a_hundred_lines_of_three_cents_carry_forty_five_cents_of_vat(factory, now):
    with factory.begin() as s:
        acc = make_account(s, now)
        off = make_offering(s, monthly_minor=3)
        for _ in range(100):
            make_product(s, now, account_id=acc, offering_id=off, start=date(2026, 1, 1))
    run_draft(factory, now)
    lines = lines_of(factory, acc)
    assert len(lines) == 100 and sum(l.tax_minor for l in lines) == 45
    assert sorted({l.tax_minor for l in lines}) == [0, 1]
    with factory() as s:
        inv = s.execute(select(Invoice).where(Invoice.account_id == acc)).scalar_one()
    assert (inv.subtotal_minor, inv.tax_minor, inv.total_minor) == (300, 45, 345)
    with factory() as s:
        run = s.execute(select(BillRun)).scalar_one()
        assert (run.lines_count, run.subtotal_minor, run.tax_minor, run.total_minor) == (100, 300, 45, 345)


def test_arrears_catch_up_bills_products_activated_after_last_months_run(factory, now):
    with factory.begin() as s:
        acc = make_account(s, now)
        off = make_offering(s, monthly_minor=30000, one_offs=[("installation", 199900), ("activation", 0)])
    rid = run_draft(factory, now, cycle=date(2026, 11, 1))
    finalise(factory, now, rid)
    with factory.begin() as s:  # activated 21 November, after the November run
        make_product(s, now, account_id=acc, offering_id=off, start=date(2026, 11, 21))
    run_draft(factory, now)
    lines = lines_of(factory, acc)
    by = {(l.kind, str(l.period_start)): l for l in lines}
    assert by[("recurring", "2026-11-21")].amount_minor == 10000  # 10 of 30 days
    assert "arrears" in by[("recurring", "2026-11-21")].explanation
    assert by[("recurring", "2026-12-01")].amount_minor == 30000
    assert by[("one_off", "2026-11-21")].amount_minor == 199900
    assert len(lines) == 3  # the zero activation fee is not a line


def test_usage_queued_charges_and_discounts_become_lines(factory, now):
    with factory.begin() as s:
        acc = make_account(s, now)
        off = make_offering(s, monthly_minor=40000)
        pid = make_product(s, now, account_id=acc, offering_id=off, start=date(2026, 1, 1))
        s.add(Discount(account_id=acc, kind="percent", value=Decimal("10"), valid_from=date(2026, 1, 1), description="Loyalty 10%"))
        for i, (mb, amt) in enumerate([(Decimal("1000"), 5000), (Decimal("532"), 2660)]):
            s.add(UsageRecord(account_id=acc, product_id=pid, usage_type="data_mb", started_at=now - timedelta(days=i + 1), quantity=mb, external_id=f"u-{acc}-{i}",
                              state="rated", rated_amount_minor=amt, currency="ZAR", tax_rate_code="VAT15", rated_at=now))
        queue_charge(s, account_id=acc, product_id=pid, description="Reconnection fee", amount=Money.of("250.00", "ZAR"), tax_rate_code="VAT15",
                     reason="reconnected after suspension", now=now, actor=STARTER, idempotency_key=f"reconnect-{acc}")
    rid = run_draft(factory, now)
    kinds = {l.kind: l for l in lines_of(factory, acc)}
    assert kinds["discount"].amount_minor == -4000
    assert kinds["usage"].amount_minor == 7660 and "1532" in kinds["usage"].explanation
    assert kinds["one_off"].amount_minor == 25000
    finalise(factory, now, rid)
    with factory() as s:
        assert set(s.execute(select(UsageRecord.state).where(UsageRecord.account_id == acc)).scalars()) == {"billed"}
        assert s.execute(select(PendingCharge.state).where(PendingCharge.account_id == acc)).scalar_one() == "billed"


def test_a_price_in_another_currency_is_an_exception_not_a_line(factory, now):
    with factory.begin() as s:
        acc = make_account(s, now)
        off = make_offering(s, monthly_minor=10000, currency="USD")
        make_product(s, now, account_id=acc, offering_id=off, start=date(2026, 1, 1))
    rid = run_draft(factory, now)
    assert lines_of(factory, acc) == []
    with factory() as s:
        rev = review.review(s, bill_run_id=rid)
    assert [m["account_id"] for m in rev["exceptions"]["currency_mismatch"]] == [acc]
    assert acc in [m["account_id"] for m in rev["exceptions"]["no_lines"]]


def test_re_running_a_shard_never_duplicates(factory, now):
    with factory.begin() as s:
        accs = [make_account(s, now) for _ in range(3)]
        off = make_offering(s, monthly_minor=20000)
        for a in accs:
            make_product(s, now, account_id=a, offering_id=off, start=date(2026, 1, 1))
    rid = run_draft(factory, now, shards=2)
    with factory() as s:
        before = (s.execute(select(func.count()).select_from(Invoice)).scalar(), s.execute(select(func.count()).select_from(InvoiceLine)).scalar(), s.get(BillRun, rid).lines_count)
    for _ in range(2):
        with factory.begin() as s:
            billrun.run_shard(s, bill_run_id=rid, shard_no=0, now=now)
            billrun.run_shard(s, bill_run_id=rid, shard_no=1, now=now)
    with factory() as s:
        after = (s.execute(select(func.count()).select_from(Invoice)).scalar(), s.execute(select(func.count()).select_from(InvoiceLine)).scalar(), s.get(BillRun, rid).lines_count)
        assert s.get(BillRun, rid).shards_done == 2
        per_account = s.execute(text("SELECT account_id, COUNT(*) FROM invoice GROUP BY account_id HAVING COUNT(*) > 1")).all()
    assert before == after == (3, 3, 3)
    assert per_account == []


def test_finalise_numbers_invoices_gaplessly_across_two_runs_posts_ledger_and_queues_documents(factory, now):
    with factory.begin() as s:
        accs = [make_account(s, now, terms=t) for t in (30, 7, 30)]
        off = make_offering(s, monthly_minor=10000)
        for a in accs:
            make_product(s, now, account_id=a, offering_id=off, start=date(2026, 1, 1))
    r1 = run_draft(factory, now, cycle=date(2026, 11, 1))
    finalise(factory, now, r1)
    r2 = run_draft(factory, now)
    finalise(factory, now, r2)
    with factory() as s:
        numbers = s.execute(select(Invoice.number).order_by(Invoice.number)).scalars().all()
        assert numbers == [f"INV-2026-{i:08d}" for i in range(1, 7)]
        inv = s.execute(select(Invoice).where(Invoice.account_id == accs[1], Invoice.bill_run_id == r2)).scalar_one()
        assert (inv.state, inv.due_date, inv.issued_at) == ("new", now.date() + timedelta(days=7), now)
        assert s.execute(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "invoice")).scalar() == 6
        kinds = s.execute(select(Job.kind, func.count()).where(Job.kind.like("invoicing.%")).group_by(Job.kind)).all()
        assert dict(kinds) == {"invoicing.render_pdf": 6, "invoicing.email_invoice": 6}
        job = s.execute(select(Job).where(Job.kind == "invoicing.render_pdf").order_by(Job.id)).scalars().first()
        assert set(job.payload) == {"invoice_id"}
        bal = account_balance(s, account_id=accs[0], as_of=now)
        assert bal["balance_minor"] == 2 * 11500
        [age] = ageing(s, account_id=accs[0], as_of=now + timedelta(days=45))
        assert age["d30"] == 23000 and age["total"] == 23000


def test_one_invoice_per_account_per_period_even_for_a_second_run(factory, now):
    with factory.begin() as s:
        acc = make_account(s, now)
        make_product(s, now, account_id=acc, offering_id=make_offering(s, monthly_minor=1000), start=date(2026, 1, 1))
    rid = run_draft(factory, now)
    with factory.begin() as s:
        with pytest.raises(OpslineError, match="finish or roll it back"):
            billrun.start_bill_run(s, cycle_date=DEC, now=now, actor=STARTER)
    with factory() as s:
        assert s.execute(select(func.count()).select_from(Invoice).where(Invoice.account_id == acc)).scalar() == 1
        assert s.execute(select(func.count()).select_from(BillRun)).scalar() == 1
    assert rid


def _state(factory, rid):
    with factory() as s:
        return s.get(BillRun, rid).state, s.execute(select(func.count()).select_from(Invoice).where(Invoice.bill_run_id == rid)).scalar()


def test_finalising_twice_is_refused_and_changes_nothing(factory, now):
    with factory.begin() as s:
        acc = make_account(s, now)
        make_product(s, now, account_id=acc, offering_id=make_offering(s, monthly_minor=1000), start=date(2026, 1, 1))
    rid = run_draft(factory, now)
    finalise(factory, now, rid)
    with factory.begin() as s, pytest.raises(OpslineError, match="already finalised"):
        billrun.finalise_bill_run(s, bill_run_id=rid, now=now, actor=APPROVER)
    with factory() as s:
        assert s.execute(select(func.count()).select_from(LedgerEntry)).scalar() == 1
        assert s.execute(select(Invoice.number)).scalar_one() == "INV-2026-00000001"


def test_a_cycle_already_finalised_cannot_be_billed_again(factory, now):
    with factory.begin() as s:
        acc = make_account(s, now)
        make_product(s, now, account_id=acc, offering_id=make_offering(s, monthly_minor=1000), start=date(2026, 1, 1))
    rid = run_draft(factory, now)
    finalise(factory, now, rid)
    with factory.begin() as s, pytest.raises(OpslineError, match="already finalised"):
        billrun.start_bill_run(s, cycle_date=DEC, now=now, actor=STARTER)
    assert _state(factory, rid) == ("finalised", 1)
    with factory() as s:
        assert s.execute(select(func.count()).select_from(BillRun)).scalar() == 1


def test_the_creator_cannot_approve_their_own_run(factory, now):
    with factory.begin() as s:
        acc = make_account(s, now)
        make_product(s, now, account_id=acc, offering_id=make_offering(s, monthly_minor=1000), start=date(2026, 1, 1))
    creator = Actor(name="bilal", roles=frozenset({"billing_analyst"}))
    rid = run_draft(factory, now, actor=creator)
    with factory.begin() as s:
        billrun.open_review(s, bill_run_id=rid, now=now, actor=creator)
    with factory.begin() as s, pytest.raises(OpslineError, match="second person"):
        billrun.approve_bill_run(s, bill_run_id=rid, now=now, actor=creator)
    assert _state(factory, rid) == ("review", 1)


def test_rolling_back_a_draft_deletes_its_invoices_and_frees_the_cycle(factory, now):
    with factory.begin() as s:
        acc = make_account(s, now)
        pid = make_product(s, now, account_id=acc, offering_id=make_offering(s, monthly_minor=1000), start=date(2026, 1, 1))
        s.add(UsageRecord(account_id=acc, product_id=pid, usage_type="sms", started_at=now, quantity=Decimal(3), external_id=f"sms-{acc}",
                          state="rated", rated_amount_minor=150, currency="ZAR", tax_rate_code="VAT15", rated_at=now))
    rid = run_draft(factory, now)
    with factory() as s:
        assert s.execute(select(UsageRecord.invoice_id).where(UsageRecord.account_id == acc)).scalar_one() is not None
    with factory.begin() as s:
        billrun.rollback_bill_run(s, bill_run_id=rid, now=now, actor=STARTER, reason="wrong price list")
    assert _state(factory, rid) == ("rolled_back", 0)
    with factory() as s:
        assert s.execute(select(func.count()).select_from(InvoiceLine)).scalar() == 0
        assert s.execute(select(UsageRecord.invoice_id).where(UsageRecord.account_id == acc)).scalar_one() is None
    rid2 = run_draft(factory, now)
    assert _state(factory, rid2) == ("draft", 1)


def test_a_finalised_run_cannot_be_rolled_back(factory, now):
    with factory.begin() as s:
        acc = make_account(s, now)
        make_product(s, now, account_id=acc, offering_id=make_offering(s, monthly_minor=1000), start=date(2026, 1, 1))
    rid = run_draft(factory, now)
    finalise(factory, now, rid)
    with factory.begin() as s, pytest.raises(OpslineError, match="credit notes"):
        billrun.rollback_bill_run(s, bill_run_id=rid, now=now, actor=STARTER)
    assert _state(factory, rid) == ("finalised", 1)


def test_queue_charge_is_idempotent_by_key(factory, now):
    with factory.begin() as s:
        acc = make_account(s, now)
        args = dict(account_id=acc, product_id=None, description="Unreturned router", amount=Money.of("1499", "ZAR"), tax_rate_code="VAT15",
                    reason="router not returned in 30 days", now=now, actor=STARTER, idempotency_key="router-1")
        a = queue_charge(s, **args)
        b = queue_charge(s, **args)
    assert a == b
    with factory() as s:
        assert s.execute(select(func.count()).select_from(PendingCharge)).scalar() == 1


def test_queue_charge_in_the_wrong_currency_is_refused(factory, now):
    with factory.begin() as s:
        acc = make_account(s, now)
    with factory.begin() as s, pytest.raises(OpslineError, match="billed in ZAR"):
        queue_charge(s, account_id=acc, product_id=None, description="Fee", amount=Money.of("10", "USD"), tax_rate_code="VAT15",
                     reason="x", now=now, actor=STARTER, idempotency_key="usd-1")
    with factory() as s:
        assert s.execute(select(func.count()).select_from(PendingCharge)).scalar() == 0


def test_review_explains_each_variance_and_flags_only_what_no_reason_explains(factory, now):
    with factory.begin() as s:
        steady, jumped, repriced, odd = (make_account(s, now) for _ in range(4))
        off = make_offering(s, monthly_minor=10000)
        for acc in (steady, jumped, odd):
            make_product(s, now, account_id=acc, offering_id=off, start=date(2026, 1, 1))
        dear = make_offering(s, monthly_minor=10000)
        make_product(s, now, account_id=repriced, offering_id=dear, start=date(2026, 1, 1))
    finalise(factory, now, run_draft(factory, now, cycle=date(2026, 11, 1)))
    with factory.begin() as s:
        # a product added after the November run (caught up for November, billed ahead for December)
        make_product(s, now, account_id=jumped, offering_id=make_offering(s, monthly_minor=30000), start=date(2026, 11, 1))
        # a price change from December
        old_price = s.execute(select(Price).where(Price.offering_id == dear, Price.kind == "recurring")).scalar_one()
        old_price.valid_to = DEC
        s.add(new(Price, NOW, offering_id=dear, kind="recurring", name="Monthly", amount_minor=15000, currency="ZAR", tax_rate_code="VAT15",
                  charge_event="monthly", valid_from=DEC))
        # last month's line was halved by hand (same product, same price): nothing explains the difference
        prev = s.execute(select(InvoiceLine).where(InvoiceLine.account_id == odd)).scalar_one()
        prev.amount_minor = 5000
    rid = run_draft(factory, now)
    with factory() as s:
        rev = review.review(s, bill_run_id=rid)
        assert s.get(BillRun, rid).flagged_count == 1
    by = {d["account_id"]: d for d in rev["diff"]}
    assert {a for a, d in by.items() if d["flagged"]} == {odd}
    assert by[odd]["flag_reason"] == "ZAR 50.00 change on the same products at the same prices, not explained by any reason"
    assert by[jumped]["over"] and not by[jumped]["flagged"]
    assert by[jumped]["reasons"] == ["one-off, catch-up or credit lines ZAR 300.00", "products added ZAR 300.00"]
    assert by[repriced]["over"] and by[repriced]["reasons"] == ["price changes ZAR 50.00"] and not by[repriced]["flagged"]
    assert by[steady]["explanation"] == "no change" and not by[steady]["over"]
    assert (rev["flagged_count"], rev["over_threshold_count"], rev["diff_count"]) == (1, 3, 4)
    assert rev["by_segment"][0]["name"] == "consumer"


def test_a_product_live_before_last_period_but_not_billed_then_is_flagged_however_small(factory, now):
    """A late activation confirmation (the line was live since October, the November run never billed it) is a revenue
    leak: flagged with its amount even though the account's change is under the variance threshold."""
    with factory.begin() as s:
        acc = make_account(s, now)
        make_product(s, now, account_id=acc, offering_id=make_offering(s, monthly_minor=500000), start=date(2026, 1, 1))
    finalise(factory, now, run_draft(factory, now, cycle=date(2026, 11, 1)))
    with factory.begin() as s:
        make_product(s, now, account_id=acc, offering_id=make_offering(s, monthly_minor=9900), start=date(2026, 10, 1))
    rid = run_draft(factory, now)
    with factory() as s:
        rev = review.review(s, bill_run_id=rid)
        assert s.get(BillRun, rid).flagged_count == 1
    [d] = rev["diff"]
    assert d["flagged"] and d["flag_reason"] == "ZAR 99.00 for products active before last period but not billed then"
    assert not d["over"] and d["explanation"] != "no change"


def test_ageing_applies_credits_to_the_oldest_debt_first(factory, now):
    with factory.begin() as s:
        acc, other = make_account(s, now), make_account(s, now)
        for a, amount, due_days_ago, kind in [(acc, 100000, 100, "invoice"), (acc, 50000, 10, "invoice"), (acc, -120000, 0, "payment"), (other, 7000, 150, "invoice")]:
            s.add(LedgerEntry(account_id=a, kind=kind, ref_type=kind, ref_id=1, amount_minor=amount, currency="ZAR", posted_at=now - timedelta(days=max(due_days_ago, 1)),
                              due_date=(now - timedelta(days=due_days_ago)).date() if amount > 0 else None, description=kind))
    with factory() as s:
        [mine] = ageing(s, account_id=acc, as_of=now)
        [everyone] = ageing(s, account_id=None, as_of=now)
        bal = account_balance(s, account_id=acc, as_of=now)
    assert bal["balance_minor"] == 30000
    assert (mine["d120"], mine["d30"], mine["total"]) == (0, 30000, 30000)
    assert (everyone["d120_plus"], everyone["d30"], everyone["accounts"]) == (7000, 30000, 2)


def test_a_single_invoice_takes_the_next_number_of_the_same_gapless_sequence(factory, now):
    from opsline.billing.service import finalise_invoice

    with factory.begin() as s:
        acc = make_account(s, now, terms=14)
        make_product(s, now, account_id=acc, offering_id=make_offering(s, monthly_minor=1000), start=date(2026, 1, 1))
    finalise(factory, now, run_draft(factory, now))
    with factory.begin() as s:
        inv = Invoice(account_id=acc, kind="adhoc", period_start=date(2026, 11, 23), period_end=date(2026, 11, 24), state="draft", currency="ZAR",
                      subtotal_minor=100, tax_minor=15, total_minor=115, created_at=now, version=1)
        s.add(inv)
        s.flush()
        out = finalise_invoice(s, invoice_id=inv.id, now=now, actor=APPROVER)
    assert out["number"] == "INV-2026-00000002" and out["due_date"] == date(2026, 12, 7)
    with factory.begin() as s, pytest.raises(OpslineError, match="already issued"):
        finalise_invoice(s, invoice_id=inv.id, now=now, actor=APPROVER)
    with factory() as s:
        assert s.execute(select(func.count()).select_from(LedgerEntry)).scalar() == 2
