"""Debtors reports against a real database (SQLite and PostgreSQL): aged debtors by segment, the accounts behind every
number, Top 10 / Top 60, collections effectiveness by local month with DSO, and suspense ageing as the payments desk sees it."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from conftest import NOW
from debtors_reports_helpers import CLERK, at, build_book, invoice
from opsline.billing import service as billing
from opsline.billing.invoicing.samples import make_account
from opsline.core.errors import InvalidInput
from opsline.debtors.reports import queries
from opsline.payments import imports
from opsline.payments import queries as payments_queries
from payments_helpers import mt940

JHB = ZoneInfo("Africa/Johannesburg")
BUCKETS = queries.BUCKETS


@pytest.fixture
def book(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        return build_book(s)


def test_aged_debtors_split_each_segment_by_days_past_due_with_payments_settling_the_oldest_first(factory, book):  # type: ignore[no-untyped-def]
    with factory() as s:
        aged = queries.aged_debtors(s, now=NOW, tz=JHB)
    rows = {r["segment_code"]: r for r in aged["rows"]}
    assert aged["as_of"] == date(2026, 11, 23)
    # thabo: 3 × 689.08, R 300 paid off September's; pieter: 1,234.56 due 31 August (84 days)
    assert {b: rows["consumer"][b] for b in (*BUCKETS, "total", "accounts")} == {
        "current": 68908, "d30": 68908, "d60": 68908 - 30000, "d90": 123456, "d120": 0, "d120_plus": 0, "total": 300180, "accounts": 2}
    assert {b: rows["sme"][b] for b in (*BUCKETS, "total", "accounts")} == {
        "current": 0, "d30": 0, "d60": 0, "d90": 0, "d120": 230000, "d120_plus": 575000, "total": 805000, "accounts": 1}
    assert aged["totals"] == [{"currency": "ZAR", "current": 68908, "d30": 68908, "d60": 38908, "d90": 123456, "d120": 230000, "d120_plus": 575000,
                               "total": 1105180, "accounts": 3}]
    # lerato paid R 1,000 on a R 918.85 invoice: in credit, beside the ageing rather than inside it
    assert aged["credit"] == [{"currency": "ZAR", "accounts": 1, "amount_minor": 91885 - 100000}]
    chart = aged["chart"]
    assert chart["data"]["labels"] == ["Current", "1–30 days", "31–60 days", "61–90 days", "91–120 days", "120+ days"]
    assert {d["label"]: d["data"] for d in chart["data"]["datasets"]} == {
        "Consumer": ["689.08", "689.08", "389.08", "1234.56", "0.00", "0.00"], "SME": ["0.00", "0.00", "0.00", "0.00", "2300.00", "5750.00"]}


def test_aged_debtors_and_credit_balances_reconcile_to_the_ledger_and_to_the_account_page_ageing(factory, book):  # type: ignore[no-untyped-def]
    with factory() as s:
        aged = queries.aged_debtors(s, now=NOW, tz=JHB)
        ledger = s.execute(text("SELECT SUM(amount_minor) FROM ledger_entry")).scalar_one()
        panel = billing.ageing(s, account_id=None, as_of=NOW)  # the same FIFO settlement, all accounts, by currency
        per_account = {a: billing.ageing(s, account_id=a, as_of=NOW)[0] for a in (book["thabo"], book["acme"], book["pieter"])}
    assert aged["totals"][0]["total"] + aged["credit"][0]["amount_minor"] == ledger
    assert {b: aged["totals"][0][b] for b in BUCKETS} == {b: panel[0][b] for b in BUCKETS}
    with factory() as s:
        drill = queries.aged_accounts(s, now=NOW, tz=JHB, limit=None)
    for r in drill["rows"]:
        assert {b: r[b] for b in BUCKETS} == {b: per_account[r["account_id"]][b] for b in BUCKETS}


def test_days_past_due_count_from_the_operators_date_just_after_local_midnight(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        acc = make_account(s, now=at(2026, 10, 1), name="Sipho Dlamini")
        invoice(s, acc, posted=at(2026, 10, 23), due=date(2026, 11, 22), net_minor=10000, period=date(2026, 11, 1))
    after_midnight = datetime(2026, 11, 22, 22, 30, tzinfo=timezone.utc)  # 00:30 on 23 November in Johannesburg
    with factory() as s:
        local = queries.aged_debtors(s, now=after_midnight, tz=JHB)["totals"][0]
        utc = queries.aged_debtors(s, now=after_midnight, tz=ZoneInfo("UTC"))["totals"][0]
    assert (local["current"], local["d30"]) == (0, 11500)
    assert (utc["current"], utc["d30"]) == (11500, 0)


def test_the_accounts_behind_each_aged_figure_add_up_to_it_biggest_first_and_page(factory, book):  # type: ignore[no-untyped-def]
    with factory() as s:
        aged = queries.aged_debtors(s, now=NOW, tz=JHB)
        for row in aged["rows"]:
            for b in (*BUCKETS, "total"):
                drill = queries.aged_accounts(s, now=NOW, tz=JHB, segment=row["segment_code"], bucket="" if b == "total" else b, currency="ZAR")
                assert sum(r[b] for r in drill["rows"]) == row[b], (row["segment_code"], b)
                assert drill["count"] == len(drill["rows"]) == len([r for r in drill["rows"] if r[b] > 0])
        everyone = queries.aged_accounts(s, now=NOW, tz=JHB)
        second = queries.aged_accounts(s, now=NOW, tz=JHB, limit=1, offset=1)
        beyond = queries.aged_accounts(s, now=NOW, tz=JHB, limit=1, offset=5)
    assert [r["account_id"] for r in everyone["rows"]] == [book["acme"], book["thabo"], book["pieter"]]
    assert second["count"] == 3 and [r["account_id"] for r in second["rows"]] == [book["thabo"]]
    assert beyond["rows"] == [] and beyond["count"] == 3
    assert everyone["rows"][0]["oldest_due"] == date(2026, 6, 30)


def test_top_10_ranks_by_balance_with_age_last_payment_dispute_and_last_action(factory, book):  # type: ignore[no-untyped-def]
    with factory() as s:
        top = queries.top_debtors(s, now=NOW, tz=JHB, n=10)
        sme = queries.top_debtors(s, now=NOW, tz=JHB, n=60, segment="sme")
    assert [(r["rank"], r["account_id"], r["total"]) for r in top["rows"]] == [(1, book["acme"], 805000), (2, book["thabo"], 176724),
                                                                               (3, book["pieter"], 123456)]
    acme, thabo, pieter = top["rows"]
    assert (acme["oldest_due"], acme["oldest_days"], acme["dispute_minor"], acme["last_payment_on"]) == (date(2026, 6, 30), 146, 115000, None)
    assert acme["last_action"]["what"] == "memo added" and acme["last_action"]["actor"] == "clerk"
    assert acme["last_action"]["at"] == at(2026, 11, 20, 9)
    assert (thabo["oldest_days"], thabo["last_payment_on"], thabo["last_payment_minor"], thabo["dispute_minor"]) == (54, date(2026, 11, 10), 30000, 0)
    assert (pieter["last_action"], pieter["owner"], pieter["next_step"]) == (None, None, None)
    assert top["total_minor"] == 805000 + 176724 + 123456
    assert [r["account_id"] for r in sme["rows"]] == [book["acme"]]
    assert len(top["chart"]["data"]["labels"]) == 3 and len(top["chart"]["data"]["datasets"]) == len(BUCKETS)


def test_last_payment_is_the_latest_payment_allocated_to_the_account_not_a_reversed_one(factory, book):  # type: ignore[no-untyped-def]
    from opsline.core.money import Money
    from opsline.payments import allocations

    with factory.begin() as s:
        later = allocations.capture_payment(s, account_id=book["thabo"], amount=Money.of("50.00", "ZAR"), method="cash", received_on=date(2026, 11, 21),
                                            now=at(2026, 11, 21, 8), actor=CLERK)
        alloc = s.execute(text("SELECT id FROM payment_allocation WHERE payment_id = :p"), {"p": later["payment_id"]}).scalar_one()
        allocations.reverse_allocation(s, allocation_id=alloc, reason="cheque bounced", now=at(2026, 11, 22, 8), actor=CLERK)
    with factory() as s:
        thabo = next(r for r in queries.top_debtors(s, now=NOW, tz=JHB, n=10)["rows"] if r["account_id"] == book["thabo"])
    assert (thabo["last_payment_on"], thabo["last_payment_minor"], thabo["total"]) == (date(2026, 11, 10), 30000, 176724)


@pytest.mark.parametrize(("call", "field"), [
    (lambda s: queries.top_debtors(s, now=NOW, tz=JHB, n=25), "n"),
    (lambda s: queries.aged_accounts(s, now=NOW, tz=JHB, bucket="d45"), "bucket"),
    (lambda s: queries.collections_effectiveness(s, now=NOW, tz=JHB, months=0), "months"),
    (lambda s: queries.collections_effectiveness(s, now=NOW, tz=JHB, months=37), "months"),
    (lambda s: queries.collections_accounts(s, now=NOW, tz=JHB, month="November", measure="billed"), "month"),
    (lambda s: queries.collections_accounts(s, now=NOW, tz=JHB, month="2026-11", measure="written_off"), "measure"),
])
def test_a_report_asked_for_something_it_does_not_offer_says_which_field(factory, book, call, field):  # type: ignore[no-untyped-def]
    with factory() as s:
        with pytest.raises(InvalidInput) as exc:
            call(s)
    assert exc.value.field == field


def test_collections_effectiveness_counts_billed_and_collected_per_local_month_with_rate_and_dso(factory, book):  # type: ignore[no-untyped-def]
    with factory() as s:
        data = queries.collections_effectiveness(s, now=NOW, tz=JHB, months=4)
    assert data["months"] == ["2026-08", "2026-09", "2026-10", "2026-11"]
    (series,) = data["series"]
    m = {x["month"]: x for x in series["months"]}
    # thabo's September invoice was posted on 31 August; lerato's at 23:30 UTC on 31 October, already 1 November in Johannesburg
    assert m["2026-08"]["billed_minor"] == 68908 + 123456
    assert m["2026-10"]["billed_minor"] == 68908 + 68908
    assert m["2026-11"]["billed_minor"] == 91885
    assert (m["2026-11"]["collected_minor"], m["2026-10"]["collected_minor"]) == (30000 + 100000, 0)
    assert m["2026-11"]["closing_minor"] == s_ledger(factory)
    assert m["2026-08"]["closing_minor"] == 575000 + 230000 + 68908 + 123456  # acme's June and July invoices are the opening balance
    assert m["2026-11"]["rate_pct"] == Decimal("141.5")  # 1,300.00 ÷ 918.85
    assert m["2026-11"]["dso_days"] == Decimal(1097065 * 23 / 91885).quantize(Decimal("1"))  # 23 days of November so far
    assert m["2026-09"]["rate_pct"] is None and m["2026-09"]["dso_days"] is None  # nothing billed
    assert [d["label"] for d in data["chart"]["data"]["datasets"]] == ["Billed (ZAR)", "Collected (ZAR)", "DSO (days)"]


def s_ledger(factory) -> int:  # type: ignore[no-untyped-def]
    with factory() as s:
        return int(s.execute(text("SELECT SUM(amount_minor) FROM ledger_entry")).scalar_one())


def test_the_accounts_behind_a_months_billed_and_collected_add_up_to_it(factory, book):  # type: ignore[no-untyped-def]
    with factory() as s:
        data = queries.collections_effectiveness(s, now=NOW, tz=JHB, months=6)
        for mon in data["series"][0]["months"]:
            for measure in queries.MEASURES:
                drill = queries.collections_accounts(s, now=NOW, tz=JHB, month=mon["month"], measure=measure)
                assert sum(r["amount_minor"] for r in drill["rows"]) == mon[f"{measure}_minor"], (mon["month"], measure)
        nov = queries.collections_accounts(s, now=NOW, tz=JHB, month="2026-11", measure="collected")
    assert [(r["account_id"], r["amount_minor"]) for r in nov["rows"]] == [(book["lerato"], 100000), (book["thabo"], 30000)]


def test_suspense_ageing_is_the_payments_desks_own_figures(factory, book):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        imports.import_statement(s, data=mt940(lines=[("261101", 45000, "SUS1", "/REMI/no idea who this is"),
                                                      ("261120", 12345, "SUS2", "/REMI/cash deposit")]),
                                 filename="suspense.sta", now=at(2026, 11, 1, 8), actor=CLERK)
    with factory() as s:
        report = queries.suspense_ageing(s, now=NOW, tz=JHB)
        desk = payments_queries.suspense_ageing(s, now=NOW)
        items = queries.suspense_items(s, now=NOW)
    assert report["buckets"] == desk["buckets"] and report["chart"] == desk["chart"]
    assert report["count"] == len(items) == sum(b["count"] for b in report["buckets"]) >= 2
    assert report["amount_minor"] == sum(b["amount_minor"] for b in report["buckets"]) == sum(i["amount_minor"] for i in items)


def test_top_debtors_show_the_next_dunning_step_once_a_run_has_placed_them_and_a_hold_instead(factory, book):  # type: ignore[no-untyped-def]
    from opsline.debtors import holds, runs

    today = date(2026, 11, 23)
    with factory() as s:
        before = queries.top_debtors(s, now=NOW, tz=JHB, n=10)
    assert all(r["next_step"] is None for r in before["rows"])  # no run yet: nothing placed
    with factory.begin() as s:
        runs.run_dunning(s, run_date=today, today=today, now=NOW, actor=CLERK)
        holds.place_hold(s, account_id=book["pieter"], reason="Estate being wound up; executor to pay", valid_to=date(2026, 12, 31), today=today,
                         now=NOW, actor=CLERK)
    with factory() as s:
        top = {r["account_id"]: r for r in queries.top_debtors(s, now=NOW, tz=JHB, n=10)["rows"]}
        placed = dict(s.execute(text("""SELECT da.account_id, n.name FROM dunning_account da
                                        LEFT JOIN dunning_step n ON n.policy_id = da.policy_id AND n.position = da.position + 1""")).all())
    assert top[book["pieter"]]["next_step"] == "held out of dunning until 2026-12-31"
    assert book["thabo"] in placed, "the run places an account 54 days overdue"
    for acc, nxt in placed.items():
        if acc in top and acc != book["pieter"]:
            assert top[acc]["next_step"].startswith(f"{nxt} from ") if nxt else top[acc]["next_step"].startswith("last step done")
