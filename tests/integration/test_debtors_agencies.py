"""Hand-over of debt to collection agencies against a real database (SQLite and PostgreSQL): written-off and final-stage
accounts placed with an agency in one set-based step (dry run first), the file in each agency's layout, recalls with the
agency told, recovery files imported once and allocated (payment on debt still on the books, bad-debt recovery on
written-off debt) with commission to the cent; prescribed debt and disputed accounts never handed over; every bad
recovery line refused naming file, line and field with nothing changed."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from debtors_helpers import TODAY, at, counts, debtor
from opsline.core.errors import NotFound, StaleVersion, TransitionNotAllowed
from opsline.core.events import Actor
from opsline.core.lifecycle import ActionNotPermitted, ReasonRequired
from opsline.debtors import agencies, agencies_recoveries, agencies_report, writeoffs
from opsline.debtors.agencies_recoveries import DuplicateRecoveryFile, UnableToImportRecoveries

CLERK = Actor(name="dawie", roles=frozenset({"debtors_clerk"}))
MANAGER = Actor(name="dineo", roles=frozenset({"debtors_manager"}))
NOW = at(TODAY)
HANDED = TODAY - timedelta(days=10)


def _counts(s) -> dict:  # type: ignore[no-untyped-def]
    c = counts(s)
    for t in ("agency_batch", "agency_placement", "agency_recovery", "agency_recovery_file", "ledger_entry", "agency_terms"):
        c[t] = s.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
    c["placement_states"] = sorted(s.execute(text("SELECT id, state, recovered_minor FROM agency_placement ORDER BY id")).all())
    return c


def _written_off(s, name: str, amount: int, overdue_days: int = 200) -> dict:  # type: ignore[no-untyped-def]
    a = debtor(s, name=name, amount=amount, overdue_days=overdue_days)
    wo = writeoffs.propose(s, account_id=a["id"], amount=None, reason="uncollectable", today=TODAY - timedelta(days=16), now=NOW - timedelta(days=16), actor=CLERK)
    writeoffs.approve(s, write_off_id=wo.id, now=NOW - timedelta(days=15), actor=MANAGER)
    return a


def _final_stage(s, name: str, amount: int, overdue_days: int = 70) -> dict:  # type: ignore[no-untyped-def]
    a = debtor(s, name=name, amount=amount, overdue_days=overdue_days)
    pol = s.execute(text("SELECT id FROM dunning_policy WHERE code = 'default'")).scalar_one()
    step = s.execute(text("SELECT id FROM dunning_step WHERE policy_id = :p AND action = 'final_account'"), {"p": pol}).scalar_one()
    s.execute(text("INSERT INTO dunning_account (account_id, policy_id, position, step_id, last_step_on, next_step_from) VALUES (:a, :p, 7, :s, :d, :d)"),
              {"a": a["id"], "p": pol, "s": step, "d": TODAY - timedelta(days=5)})
    return a


def _sel(*numbers: str, **kw) -> agencies.Selection:  # type: ignore[no-untyped-def]
    return agencies.parse_selection(source=kw.get("source", "both"), accounts=" ".join(numbers), min_amount=kw.get("min_amount", ""),
                                    min_days=kw.get("min_days", "0"), currency="ZAR")


def _balance(s, acc_id: int) -> int:  # type: ignore[no-untyped-def]
    return int(s.execute(text("SELECT COALESCE(SUM(amount_minor), 0) FROM ledger_entry WHERE account_id = :a"), {"a": acc_id}).scalar_one())


def _collectco_file(*lines: tuple[str, str, str, str]) -> bytes:
    body = "ClientRef;AmountPaid;PaymentDate;ReceiptNo\n" + "".join(";".join(line) + "\n" for line in lines)
    return body.encode()


def _placement(s, acc_id: int) -> dict:  # type: ignore[no-untyped-def]
    return dict(s.execute(text("SELECT * FROM agency_placement WHERE account_id = :a ORDER BY id DESC LIMIT 1"), {"a": acc_id}).one()._mapping)


def test_written_off_and_final_stage_debt_is_handed_over_exported_recalled_and_recovered_to_the_cent(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        wo = _written_off(s, "Thabo Nkosi", 59900, overdue_days=200)  # written off in full: R 599.00, 200 days old
        fin = _final_stage(s, "Lerato Dlamini", 120000, overdue_days=70)  # still on the books: R 1,200.00
        other = _written_off(s, "Sipho Mokoena", 30000, overdue_days=400)  # 400 days: CollectCo's 25 % band
        mbd_acc = _written_off(s, "Naledi Khumalo", 45000, overdue_days=90)
        debtor(s, name="Current Customer", amount=20000, overdue_days=10)  # neither written off nor at the final stage
    with factory() as s:
        before = _counts(s)
        dry = agencies.dry_run(s, agency="collectco", selection=_sel(source="both"), today=TODAY, now=NOW)
        assert (dry["count"], dry["amount_minor"], dry["on_book_minor"], dry["written_off_minor"]) == (4, 59900 + 120000 + 30000 + 45000, 120000,
                                                                                                    59900 + 30000 + 45000)
        s.rollback()
        assert _counts(s) == before  # the dry run wrote nothing
    with factory.begin() as s:
        b = agencies.hand_over(s, agency="collectco", selection=_sel(wo["number"], fin["number"], other["number"]), today=HANDED, now=NOW - timedelta(days=10),
                               actor=CLERK, idempotency_key="form-1")
        bid = b.id
        assert (b.accounts, b.amount_minor) == (3, 59900 + 120000 + 30000)
        again = agencies.hand_over(s, agency="collectco", selection=_sel(wo["number"]), today=HANDED, now=NOW, actor=CLERK, idempotency_key="form-1")
        assert again.id == bid  # a repeated form post replays the first batch
        m = agencies.hand_over(s, agency="mbd", selection=_sel(mbd_acc["number"]), today=HANDED, now=NOW - timedelta(days=10), actor=CLERK)
        mbid = m.id
    with factory() as s:
        p_wo, p_fin, p_other = _placement(s, wo["id"]), _placement(s, fin["id"]), _placement(s, other["id"])
        assert (p_wo["amount_minor"], p_wo["written_off_minor"], p_wo["on_book_minor"], Decimal(p_wo["commission_percent"])) == (59900, 59900, 0, Decimal("20.00"))
        assert (p_fin["amount_minor"], p_fin["written_off_minor"], p_fin["on_book_minor"], Decimal(p_fin["commission_percent"])) == (120000, 0, 120000, Decimal("15.00"))
        assert Decimal(p_other["commission_percent"]) == Decimal("25.00")
        assert Decimal(_placement(s, mbd_acc["id"])["commission_percent"]) == Decimal("12.50")  # MBD: flat, the partner's rate
        memo = s.execute(text("SELECT body FROM memo WHERE account_id = :a ORDER BY id DESC LIMIT 1"), {"a": wo["id"]}).scalar_one()
        assert "Handed over to CollectCo Debt Recovery by dawie" in memo and "ZAR 599.00" in memo and "commission 20.00%" in memo
        audit = s.execute(text("SELECT COUNT(*) FROM audit_event WHERE entity_type = 'agency_placement' AND action = 'placed'")).scalar_one()
        assert audit == 4
        # CollectCo: CSV, ';', its headers in its order, dates as YYYYMMDD, money as numbers
        name, media, body = agencies.export_batch(s, batch_id=bid)
        assert name.endswith(".csv") and media.startswith("text/csv")
        table = list(csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=";"))
        assert table[0] == ["ClientRef", "AccountNo", "DebtorName", "IDNumber", "Cell", "Email", "PostalAddress", "PostCode", "Balance", "DebtDate",
                            "LastPaymentDate", "HandoverDate"]
        row = next(r for r in table[1:] if r[1] == wo["number"])
        assert row[0] == f"PL-{p_wo['id']}" and row[2] == "Thabo Nkosi" and row[8] == "599.00" and row[11] == HANDED.strftime("%Y%m%d")
        assert row[9] == (TODAY - timedelta(days=200)).strftime("%Y%m%d")
        # MBD: xlsx with its headers, dates as DD/MM/YYYY
        name, media, body = agencies.export_batch(s, batch_id=mbid)
        assert name.endswith(".xlsx") and body[:2] == b"PK"
        rows = agencies_recoveries._xlsx_rows(body, filename=name)
        assert [str(c) for c in rows[0]] == ["Account Number", "Customer Name", "ID / Reg Number", "Contact Number", "Email Address", "Address",
                                             "Outstanding Amount", "Written Off", "Oldest Invoice Date", "Date Placed", "Our Reference"]
        assert rows[1][0] == mbd_acc["number"] and rows[1][6] == Decimal("450") and rows[1][9] == HANDED.strftime("%d/%m/%Y")
        zipfile.ZipFile(io.BytesIO(body)).testzip()
    # recall the MBD placement: MBD is told by email, a memo on the account
    with factory.begin() as s:
        pid = _placement(s, mbd_acc["id"])["id"]
        res = agencies.recall(s, placement_ids=[pid], reason="customer disputes the debt with the ombud", now=NOW, actor=CLERK)
        assert res == {"recalled": 1, "left_alone": 0}
    with factory() as s:
        pl = _placement(s, mbd_acc["id"])
        assert (pl["state"], pl["closed_by"]) == ("recalled", "dawie")
        msg = s.execute(text("SELECT to_addr, subject, body, state FROM message WHERE event = 'agency.recall'")).one()
        assert msg.to_addr == "newbusiness@mbd.example" and mbd_acc["number"] in msg.body and "ombud" in msg.body and msg.state == "queued"
    # CollectCo's recovery file: R 200 on the written-off account, R 1,200 in two receipts on the final-stage account
    f = _collectco_file((f"PL-{p_wo['id']}", "200.00", (TODAY - timedelta(days=2)).strftime("%Y%m%d"), "CC-1001"),
                        (fin["number"], "1000.00", (TODAY - timedelta(days=1)).strftime("%Y%m%d"), "CC-1002"),
                        (fin["number"], "200", TODAY.strftime("%Y%m%d"), "CC-1003"))
    with factory.begin() as s:
        res = agencies_recoveries.import_recoveries(s, agency="collectco", data=f, filename="collectco-2026-11-23.csv", today=TODAY, now=NOW, actor=CLERK)
        assert (res["posted"], res["amount_minor"], res["closed_paid"]) == (3, 140000, 1)
        # commission: 20 % of R 200 = R 40.00; 15 % of R 1,000 = R 150.00 and of R 200 = R 30.00
        assert res["commission_minor"] == 4000 + 15000 + 3000
    with factory() as s:
        assert _balance(s, wo["id"]) == 0  # written off: the recovery reverses R 200 of the write-off and pays it
        assert _balance(s, fin["id"]) == 0  # on the books: paid
        entries = [tuple(r) for r in s.execute(text("""SELECT kind, amount_minor, due_date IS NOT NULL FROM ledger_entry
                                                       WHERE ref_type = 'agency_recovery' AND account_id = :a ORDER BY id"""), {"a": wo["id"]})]
        assert entries == [("write_off", 20000, True), ("payment", -20000, False)]
        fin_entries = [tuple(r) for r in s.execute(text("SELECT kind, amount_minor FROM ledger_entry WHERE ref_type = 'agency_recovery' AND account_id = :a ORDER BY id"),
                                                   {"a": fin["id"]})]
        assert sorted(fin_entries) == [("payment", -100000), ("payment", -20000)]
        p1, p2 = _placement(s, wo["id"]), _placement(s, fin["id"])
        assert (p1["state"], p1["recovered_minor"], p1["bad_debt_recovered_minor"], p1["commission_minor"]) == ("placed", 20000, 20000, 4000)
        assert (p2["state"], p2["recovered_minor"], p2["bad_debt_recovered_minor"], p2["commission_minor"]) == ("closed_paid", 120000, 0, 18000)
        memo = s.execute(text("SELECT body FROM memo WHERE account_id = :a ORDER BY id DESC LIMIT 1"), {"a": wo["id"]}).scalar_one()
        assert "Recovered through CollectCo" in memo and "written-off debt recovered" in memo
        rep = agencies_report.recoveries_report(s)
        cc = next(t for t in rep["totals"] if t["agency"] == "collectco")
        assert (cc["handed_minor"], cc["recovered_minor"], cc["commission_minor"], cc["net_minor"], cc["bad_debt_minor"]) == (209900, 140000, 22000, 118000, 20000)
        assert cc["rate_pct"] == Decimal("66.7")
        assert rep["chart"]["data"]["labels"] == [TODAY.strftime("%Y-%m")]
        detail = agencies.get_placement(s, placement_id=p1["id"], actor=CLERK)
        assert [r["agency_ref"] for r in detail["recoveries"]] == ["CC-1001"] and [b["action"] for b in detail["buttons"]] == ["recall", "return"]


def test_handing_over_prescribed_debt_is_refused_naming_the_account_and_changes_nothing(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        old = _written_off(s, "Ancient Debt", 40000, overdue_days=3 * 365 + 20)
        fresh = _written_off(s, "Fresh Debt", 30000, overdue_days=200)
    with factory() as s:
        before = _counts(s)
        with pytest.raises(agencies.UnableToHandOver) as e:
            agencies.hand_over(s, agency="collectco", selection=_sel(old["number"], fresh["number"]), today=TODAY, now=NOW, actor=CLERK)
        assert e.value.field == "accounts" and old["number"] in e.value.detail and "prescribed" in e.value.detail
        assert fresh["number"] not in e.value.detail
        s.rollback()
        assert _counts(s) == before
        # by criteria the prescribed account is left out and reported
        dry = agencies.dry_run(s, agency="collectco", selection=_sel(source="written_off"), today=TODAY, now=NOW)
        assert dry["count"] == 1 and {x["code"]: x["count"] for x in dry["excluded"]} == {"prescribed": 1}
    with factory.begin() as s:
        b = agencies.hand_over(s, agency="collectco", selection=_sel(source="written_off"), today=TODAY, now=NOW, actor=CLERK)
        assert b.accounts == 1
    with factory() as s:
        assert s.execute(text("SELECT account_id FROM agency_placement")).scalars().all() == [fresh["id"]]


def test_disputed_accounts_and_accounts_with_an_agency_are_not_handed_over(factory):  # type: ignore[no-untyped-def]
    from opsline.billing.invoicing import service as invoicing
    from opsline.billing.models import InvoiceLine
    from opsline.core.money import Money

    with factory.begin() as s:
        disputed = _final_stage(s, "Disputing Customer", 40000)
        line = s.execute(select(InvoiceLine.id).where(InvoiceLine.invoice_id == disputed["invoice_id"])).scalar_one()
        invoicing.raise_claim(s, invoice_id=disputed["invoice_id"], lines=[(line, Money.of("100", "ZAR"))], reason="wrong speed billed", channel="phone",
                              now=NOW - timedelta(days=3), actor=CLERK)
        placed = _written_off(s, "Placed Already", 30000)
        agencies.hand_over(s, agency="collectco", selection=_sel(placed["number"]), today=TODAY, now=NOW, actor=CLERK)
    with factory() as s:
        before = _counts(s)
        for acc, needle in ((placed, "already with a collection agency"), (disputed, "money in dispute")):
            with pytest.raises(agencies.UnableToHandOver) as e:  # one account with one agency at a time; never money in dispute
                agencies.hand_over(s, agency="mbd", selection=_sel(acc["number"]), today=TODAY, now=NOW, actor=CLERK)
            assert e.value.field == "accounts" and needle in e.value.detail and acc["number"] in e.value.detail
            s.rollback()
        dry = agencies.dry_run(s, agency="mbd", selection=_sel(source="both"), today=TODAY, now=NOW)
        assert dry["count"] == 0 and {x["code"] for x in dry["excluded"]} == {"in_dispute", "with_agency"}
        with pytest.raises(agencies.UnableToHandOver) as e:
            agencies.hand_over(s, agency="mbd", selection=_sel(source="both"), today=TODAY, now=NOW, actor=CLERK)
        assert e.value.field == "criteria"
        s.rollback()
        with pytest.raises(NotFound):
            agencies.hand_over(s, agency="courierguy", selection=_sel(placed["number"]), today=TODAY, now=NOW, actor=CLERK)
        s.rollback()
        assert _counts(s) == before


def test_a_recovery_line_for_an_account_not_handed_to_that_agency_is_refused_and_nothing_is_imported(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        cc = _written_off(s, "With CollectCo", 50000)
        mbd = _written_off(s, "With MBD", 50000)
        nowhere = _written_off(s, "Not Handed Over", 50000)
        agencies.hand_over(s, agency="collectco", selection=_sel(cc["number"]), today=TODAY - timedelta(days=10), now=NOW - timedelta(days=10), actor=CLERK)
        agencies.hand_over(s, agency="mbd", selection=_sel(mbd["number"]), today=TODAY - timedelta(days=10), now=NOW - timedelta(days=10), actor=CLERK)
    d = (TODAY - timedelta(days=1)).strftime("%Y%m%d")
    for bad, needle in ((mbd["number"], "is not handed over to CollectCo"), (nowhere["number"], "is not handed over to CollectCo")):
        f = _collectco_file((cc["number"], "100.00", d, "R-1"), (bad, "50.00", d, "R-2"))
        with factory() as s:
            before = _counts(s)
            with pytest.raises(UnableToImportRecoveries) as e:
                agencies_recoveries.import_recoveries(s, agency="collectco", data=f, filename="cc.csv", today=TODAY, now=NOW, actor=CLERK)
            assert e.value.line == 3 and e.value.field == "ClientRef" and needle in e.value.detail and e.value.detail.startswith("cc.csv line 3")
            s.rollback()
            assert _counts(s) == before  # the good first line was not imported either
    with factory() as s:
        mbd_pl = _placement(s, mbd["id"])["id"]
    with factory() as s:
        with pytest.raises(UnableToImportRecoveries) as e:
            agencies_recoveries.import_recoveries(s, agency="collectco", data=_collectco_file((f"PL-{mbd_pl}", "10", d, "R-9")), filename="cc.csv",
                                                  today=TODAY, now=NOW, actor=CLERK)
        assert "was not handed over to CollectCo" in e.value.detail


@pytest.mark.parametrize("line,field,needle", [
    (("{acc}", "0", "{d}", "R-1"), "AmountPaid", "more than zero"),
    (("{acc}", "-5.00", "{d}", "R-1"), "AmountPaid", "more than zero"),
    (("{acc}", "abc", "{d}", "R-1"), "AmountPaid", "not an amount"),
    (("{acc}", "10.005", "{d}", "R-1"), "AmountPaid", "more decimals"),
    (("{acc}", "10.00", "2026-11-20", "R-1"), "PaymentDate", "not a date like YYYYMMDD"),
    (("{acc}", "10.00", "20261131", "R-1"), "PaymentDate", "not a date"),
    (("{acc}", "10.00", "20301201", "R-1"), "PaymentDate", "after today"),
    (("{acc}", "10.00", "20200101", "R-1"), "PaymentDate", "after this payment"),
    (("9999999999", "10.00", "{d}", "R-1"), "ClientRef", "unknown account"),
    (("PL-987654", "10.00", "{d}", "R-1"), "ClientRef", "unknown placement reference"),
    (("{acc}", "600.00", "{d}", "R-1"), "AmountPaid", "more than the ZAR 499.00 still with"),
    (("{acc}", "10.00", "{d}", ""), "ReceiptNo", "blank"),
])
def test_bad_recovery_lines_are_refused_naming_file_line_and_field_and_change_nothing(factory, line, field, needle):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = _written_off(s, "Bad Lines", 50000)
        agencies.hand_over(s, agency="collectco", selection=_sel(a["number"]), today=TODAY - timedelta(days=10), now=NOW - timedelta(days=10), actor=CLERK)
    d = (TODAY - timedelta(days=1)).strftime("%Y%m%d")
    good = (a["number"], "1.00", d, "R-0")
    f = _collectco_file(good, tuple(x.format(acc=a["number"], d=d) for x in line))
    with factory() as s:
        before = _counts(s)
        with pytest.raises(UnableToImportRecoveries) as e:
            agencies_recoveries.import_recoveries(s, agency="collectco", data=f, filename="recoveries.csv", today=TODAY, now=NOW, actor=CLERK)
        assert (e.value.line, e.value.field) == (3, field) and needle in e.value.detail, e.value.detail
        s.rollback()
        assert _counts(s) == before


def test_a_duplicate_line_a_missing_column_an_empty_file_and_binary_data_are_refused(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = _written_off(s, "Dup Line", 50000)
        agencies.hand_over(s, agency="collectco", selection=_sel(a["number"]), today=TODAY - timedelta(days=10), now=NOW - timedelta(days=10), actor=CLERK)
    d = (TODAY - timedelta(days=1)).strftime("%Y%m%d")
    cases = [
        (_collectco_file((a["number"], "10", d, "R-1"), (a["number"], "20", d, "R-1")), 3, "duplicate line"),
        (b"ClientRef;Amount;PaymentDate;ReceiptNo\n" + f"{a['number']};10;{d};R-1\n".encode(), 1, "no column 'AmountPaid'"),
        (b"", None, "empty"),
        (b"\xff\xfe\x00binary", None, "not UTF-16"),
        (b"ClientRef;AmountPaid\n12\x0034;10\n", 2, "NUL byte"),
    ]
    with factory() as s:
        before = _counts(s)
        for data, line, needle in cases:
            with pytest.raises(UnableToImportRecoveries) as e:
                agencies_recoveries.import_recoveries(s, agency="collectco", data=data, filename="f.csv", today=TODAY, now=NOW, actor=CLERK)
            assert e.value.line == line and needle in e.value.detail, e.value.detail
            s.rollback()
        assert _counts(s) == before


def test_a_recovery_file_saved_in_windows_1252_or_utf_16_imports_like_utf_8(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = _written_off(s, "Encodings Vary", 50000)
        agencies.hand_over(s, agency="collectco", selection=_sel(a["number"]), today=TODAY - timedelta(days=10), now=NOW - timedelta(days=10), actor=CLERK)
    d = (TODAY - timedelta(days=1)).strftime("%Y%m%d")
    text = _collectco_file((a["number"], "10.00", d, "Ré-1")).decode("utf-8")
    for k, enc in enumerate(("cp1252", "utf-16")):
        with factory.begin() as s:
            out = agencies_recoveries.import_recoveries(s, agency="collectco", data=text.replace("Ré-1", f"Ré-{k}").encode(enc), filename=f"{enc}.csv",
                                                        today=TODAY, now=NOW, actor=CLERK)
        assert out["lines"] == 1 and out["posted"] == 1, out


def test_the_same_recovery_file_twice_imports_once_and_a_receipt_sent_again_is_not_posted_twice(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = _written_off(s, "Twice Sent", 50000)
        agencies.hand_over(s, agency="collectco", selection=_sel(a["number"]), today=TODAY - timedelta(days=10), now=NOW - timedelta(days=10), actor=CLERK)
    d = (TODAY - timedelta(days=1)).strftime("%Y%m%d")
    f = _collectco_file((a["number"], "100.00", d, "R-1"))
    with factory.begin() as s:
        agencies_recoveries.import_recoveries(s, agency="collectco", data=f, filename="day1.csv", today=TODAY, now=NOW, actor=CLERK)
    with factory() as s:
        before = _counts(s)
        with pytest.raises(DuplicateRecoveryFile) as e:
            agencies_recoveries.import_recoveries(s, agency="collectco", data=f, filename="day1-again.csv", today=TODAY, now=NOW, actor=CLERK)
        assert e.value.status == 409 and "already imported" in e.value.detail and e.value.field == "file"
        s.rollback()
        assert _counts(s) == before
    # the next day's cumulative file repeats R-1 and adds R-2: only R-2 is posted
    with factory.begin() as s:
        res = agencies_recoveries.import_recoveries(s, agency="collectco", data=_collectco_file((a["number"], "100.00", d, "R-1"),
                                                                                                  (a["number"], "50.00", TODAY.strftime("%Y%m%d"), "R-2")),
                                                    filename="day2.csv", today=TODAY, now=NOW + timedelta(hours=1), actor=CLERK)
        assert (res["posted"], res["already_imported"], res["amount_minor"]) == (1, 1, 5000)
    with factory() as s:
        assert _placement(s, a["id"])["recovered_minor"] == 15000
        assert s.execute(text("SELECT COUNT(*) FROM ledger_entry WHERE ref_type = 'agency_recovery' AND kind = 'payment'")).scalar_one() == 2


def test_a_payment_collected_before_a_recall_is_still_imported_but_not_one_after_it(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = _written_off(s, "Recalled Later", 50000)
        agencies.hand_over(s, agency="collectco", selection=_sel(a["number"]), today=TODAY - timedelta(days=20), now=NOW - timedelta(days=20), actor=CLERK)
        pid = _placement(s, a["id"])["id"]
        agencies.recall(s, placement_ids=[pid], reason="customer settled with us directly", now=NOW - timedelta(days=5), actor=CLERK)
    before_recall = (TODAY - timedelta(days=7)).strftime("%Y%m%d")
    after_recall = (TODAY - timedelta(days=2)).strftime("%Y%m%d")
    with factory() as s:
        with pytest.raises(UnableToImportRecoveries) as e:
            agencies_recoveries.import_recoveries(s, agency="collectco", data=_collectco_file((a["number"], "10", after_recall, "L-2")), filename="late.csv",
                                                  today=TODAY, now=NOW, actor=CLERK)
        assert "recalled on" in e.value.detail and e.value.field == "PaymentDate"
    with factory.begin() as s:
        res = agencies_recoveries.import_recoveries(s, agency="collectco", data=_collectco_file((a["number"], "10", before_recall, "L-1")),
                                                    filename="late-ok.csv", today=TODAY, now=NOW, actor=CLERK)
        assert res["posted"] == 1


def test_an_mbd_xlsx_recovery_file_is_read_in_its_layout(factory):  # type: ignore[no-untyped-def]
    from opsline.core.exports import export_table

    with factory.begin() as s:
        a = _written_off(s, "Excel Payer", 80000, overdue_days=100)
        agencies.hand_over(s, agency="mbd", selection=_sel(a["number"]), today=TODAY - timedelta(days=10), now=NOW - timedelta(days=10), actor=CLERK)
    _, _, data = export_table("xlsx", name="mbd", header=["MBD Ref", "Account Number", "Amount Collected", "Date Paid"],
                              rows=[["MBD-77", a["number"], Decimal("250.50"), (TODAY - timedelta(days=3)).strftime("%d/%m/%Y")]])
    with factory.begin() as s:
        res = agencies_recoveries.import_recoveries(s, agency="mbd", data=data, filename="mbd.xlsx", today=TODAY, now=NOW, actor=CLERK)
        # MBD charges a flat 12.5 %: 31.3125 -> R 31.31
        assert (res["posted"], res["amount_minor"], res["commission_minor"]) == (1, 25050, 3131)
    with factory() as s:
        with pytest.raises(UnableToImportRecoveries) as e:
            agencies_recoveries.import_recoveries(s, agency="mbd", data=b"MBD Ref,Account Number\n", filename="mbd.csv", today=TODAY, now=NOW, actor=CLERK)
        assert "not an xlsx" in e.value.detail


def test_bulk_recall_tells_each_agency_once_and_needs_a_reason(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        accs = [_written_off(s, f"Bulk Recall{k}", 10000 + k) for k in range(3)]
        agencies.hand_over(s, agency="collectco", selection=_sel(*[a["number"] for a in accs]), today=TODAY, now=NOW, actor=CLERK)
        ids = [_placement(s, a["id"])["id"] for a in accs]
    with factory() as s:
        before = _counts(s)
        with pytest.raises(ReasonRequired):
            agencies.recall(s, placement_ids=ids, reason=" ", now=NOW, actor=CLERK)
        s.rollback()
        with pytest.raises(NotFound):
            agencies.recall(s, placement_ids=[ids[0], 987654], reason="x", now=NOW, actor=CLERK)
        s.rollback()
        with pytest.raises(ActionNotPermitted):
            agencies.recall(s, placement_ids=ids, reason="x", now=NOW, actor=Actor(name="viewer", roles=frozenset({"second_line_agent"})))
        s.rollback()
        assert _counts(s) == before
    with factory.begin() as s:
        assert agencies.recall(s, placement_ids=ids, reason="moving the book to MBD", now=NOW, actor=CLERK) == {"recalled": 3, "left_alone": 0}
    with factory() as s:
        assert s.execute(text("SELECT COUNT(*) FROM message WHERE event = 'agency.recall'")).scalar_one() == 1
        body = s.execute(text("SELECT body FROM message WHERE event = 'agency.recall'")).scalar_one()
        assert all(a["number"] in body for a in accs)
        with pytest.raises(TransitionNotAllowed):
            agencies.recall(s, placement_ids=[ids[0]], reason="again", now=NOW, actor=CLERK)
    with factory.begin() as s:  # recalled debt can go to another agency
        assert agencies.hand_over(s, agency="mbd", selection=_sel(accs[0]["number"]), today=TODAY, now=NOW, actor=CLERK).accounts == 1


def test_agency_terms_are_edited_by_a_manager_with_every_bad_field_named(factory):  # type: ignore[no-untyped-def]
    good = {"code": "collectco", "export_format": "csv", "export_delimiter": "|", "export_date_format": "%d-%m-%Y",
            "export_columns": "account_number = Acc\nname = Debtor\namount = Owed", "commission_basis": "by_age", "bands": "0 = 10\n90 = 18.5",
            "recovery_format": "csv", "recovery_delimiter": ",", "recovery_date_format": "%Y-%m-%d",
            "recovery_columns": {"account": "Acc", "amount": "Paid", "paid_on": "Date", "agency_ref": "Receipt"}, "version": 0}
    with factory() as s:
        before = _counts(s)
        for change, field in [({"export_format": "pdf"}, "export_format"), ({"export_delimiter": "x"}, "export_delimiter"),
                              ({"export_date_format": "dd/mm"}, "export_date_format"), ({"export_columns": "nonsense = X"}, "export_columns"),
                              ({"export_columns": "name = X"}, "export_columns"), ({"bands": "30 = 10"}, "bands"), ({"bands": "0 = 150"}, "bands"),
                              ({"commission_basis": "weird"}, "commission_basis"),
                              ({"recovery_columns": {"account": "Acc", "amount": "", "paid_on": "Date", "agency_ref": "R"}}, "recovery_columns.amount")]:
            with pytest.raises(agencies.UnableToSaveTerms) as e:
                agencies.save_terms(s, **(good | change), now=NOW, actor=MANAGER)
            assert e.value.field == field
            s.rollback()
        with pytest.raises(ActionNotPermitted):
            agencies.save_terms(s, **good, now=NOW, actor=CLERK)
        s.rollback()
        assert _counts(s) == before
    with factory.begin() as s:
        t = agencies.save_terms(s, **good, now=NOW, actor=MANAGER)
        assert t["version"] == 1 and [b["percent"] for b in t["bands"]] == [Decimal("10.00"), Decimal("18.50")]
        assert agencies.commission_percent(t, 120) == Decimal("18.50") and agencies.commission_percent(t, 10) == Decimal("10.00")
    with factory() as s:
        with pytest.raises(StaleVersion):
            agencies.save_terms(s, **good, now=NOW, actor=MANAGER)  # the form showed version 0; it is 1 now
    with factory.begin() as s:
        a = _written_off(s, "New Layout", 12345)
        b = agencies.hand_over(s, agency="collectco", selection=_sel(a["number"]), today=TODAY, now=NOW, actor=CLERK)
        _, _, body = agencies.export_batch(s, batch_id=b.id)
        assert body.decode("utf-8-sig").splitlines() == ["Acc|Debtor|Owed", f"{a['number']}|New Layout|123.45"]


def test_commission_is_half_up_to_the_cent():
    assert agencies.commission_minor(25050, Decimal("12.50")) == 3131  # 3131.25
    assert agencies.commission_minor(1, Decimal("50.00")) == 1  # 0.5 -> 1
    assert agencies.commission_minor(3, Decimal("15.00")) == 0  # 0.45 -> 0
    assert agencies.commission_minor(100000, Decimal("0")) == 0
    assert agencies_report.rate_pct(2, 3) == Decimal("66.7") and agencies_report.rate_pct(0, 0) is None


def test_the_same_recovery_file_imported_twice_at_once_posts_once(factory):  # type: ignore[no-untyped-def]
    import threading

    with factory.begin() as s:
        a = _written_off(s, "Concurrent Payer", 50000)
        agencies.hand_over(s, agency="collectco", selection=_sel(a["number"]), today=TODAY - timedelta(days=10), now=NOW - timedelta(days=10), actor=CLERK)
    f = _collectco_file((a["number"], "100.00", (TODAY - timedelta(days=1)).strftime("%Y%m%d"), "RACE-1"))
    results: list[str] = []
    gate = threading.Barrier(2)

    def go(name: str) -> None:
        gate.wait()
        try:
            with factory.begin() as s:
                agencies_recoveries.import_recoveries(s, agency="collectco", data=f, filename=name, today=TODAY, now=NOW, actor=CLERK)
            results.append("imported")
        except DuplicateRecoveryFile:
            results.append("duplicate")

    threads = [threading.Thread(target=go, args=(f"race-{k}.csv",)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["duplicate", "imported"]
    with factory() as s:
        assert _placement(s, a["id"])["recovered_minor"] == 10000
        assert s.execute(text("SELECT COUNT(*) FROM ledger_entry WHERE ref_type = 'agency_recovery'")).scalar_one() == 2  # reversal + payment, once
