"""IFRS 9 provision against a real database (SQLite and PostgreSQL): month-end snapshots reconstructed from the ledger
as it stood, account-level roll amounts, imported prior-system history, a hand-computed provision, the forward-looking
adjustment, movement against last month's run, reproducibility after new postings, idempotent runs, and every bad
input refused naming the field with nothing changed."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from opsline.billing import ledger
from opsline.billing.invoicing.samples import make_account
from opsline.core.events import Actor
from opsline.core.money import Money
from opsline.debtors import provision
from opsline.debtors.provision_models import BUCKETS, ProvisionAgeing, ProvisionLine, ProvisionRun

JHB = ZoneInfo("Africa/Johannesburg")
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)  # last ended month: 2026-10
MANAGER = Actor(name="dineo", roles=frozenset({"debtors_manager"}))
# a month: balance and what rolled on, per bucket (major units); 120+ rolls to written off and 80.00 of 100.00 stays
STEADY = {"current": ("1000.00", "100.00"), "d30": ("100.00", "50.00"), "d60": ("50.00", "30.00"), "d90": ("30.00", "24.00"),
          "d120": ("24.00", "12.00"), "d120_plus": ("100.00", "10.00")}


def at(y: int, m: int, d: int, hh: int = 10) -> datetime:
    return datetime(y, m, d, hh, 0, tzinfo=timezone.utc)


def month(y: int, m: int) -> date:
    return date(y, m, 1)


def history(first: date, n: int, *, segment: str = "consumer", cells: dict[str, tuple[str, str]] = STEADY) -> bytes:
    lines = ["month,segment,bucket,balance,rolled,stayed"]
    m = first
    for _ in range(n):
        for b, (bal, rolled) in cells.items():
            lines.append(f"{m:%Y-%m},{segment},{b},{bal},{rolled},{'80.00' if b == 'd120_plus' else ''}")
        m = date(m.year + m.month // 12, m.month % 12 + 1, 1)
    return ("\n".join(lines) + "\n").encode()


def imp(s, data: bytes, now: datetime = NOW, name: str = "prior.csv") -> dict:  # type: ignore[no-untyped-def]
    return provision.import_history(s, data=data, filename=name, now=now, tz=JHB, actor=MANAGER, default_currency="ZAR")


def debit(s, acc: int, *, posted: datetime, due: date, minor: int) -> None:  # type: ignore[no-untyped-def]
    ledger.post(s, account_id=acc, kind="invoice", ref_type="test", ref_id=1, amount=Money.from_minor(minor, "ZAR"), now=posted, due_date=due)


def credit(s, acc: int, *, posted: datetime, minor: int, kind: str = "payment") -> None:  # type: ignore[no-untyped-def]
    ledger.post(s, account_id=acc, kind=kind, ref_type="test", ref_id=1, amount=Money.from_minor(-minor, "ZAR"), now=posted)


def counts(s) -> dict:  # type: ignore[no-untyped-def]
    return {t: s.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
            for t in ("provision_ageing", "provision_history_import", "provision_adjustment", "provision_run", "provision_line", "audit_event")}


def test_the_provision_of_a_hand_computed_book_matches_to_the_cent(factory):  # type: ignore[no-untyped-def]
    # 13 month ends of steady history: roll rates 10 %, 50 %, 60 %, 80 %, 50 %; 120+ written off 10 % a month, 80 % stays
    # loss 120+ = 0.10 / (1 - 0.80) = 0.5; 91-120 0.25; 61-90 0.2; 31-60 0.12; 1-30 0.06; current 0.006
    with factory.begin() as s:
        imp(s, history(month(2025, 10), 13))
        rep = provision.run_provision(s, month=month(2026, 10), now=NOW, tz=JHB, actor=MANAGER)
    m = next(x for x in rep["matrix"] if x["segment_code"] == "consumer")
    assert m["roll"] == {"current": Decimal("0.1"), "d30": Decimal("0.5"), "d60": Decimal("0.6"), "d90": Decimal("0.8"), "d120": Decimal("0.5"),
                         "d120_plus": Decimal("0.1")}
    assert m["stayed"] == Decimal("0.8")
    assert m["loss"] == {"current": Decimal("0.006"), "d30": Decimal("0.06"), "d60": Decimal("0.12"), "d90": Decimal("0.2"), "d120": Decimal("0.25"),
                         "d120_plus": Decimal("0.5")}
    got = {ln["bucket"]: (ln["balance_minor"], ln["provision_minor"]) for ln in rep["lines"]}
    assert got == {"current": (100000, 600), "d30": (10000, 600), "d60": (5000, 600), "d90": (3000, 600), "d120": (2400, 600), "d120_plus": (10000, 5000)}
    assert rep["totals"]["ZAR"]["provision_minor"] == 8000
    assert rep["inputs"]["imported_months"] == 13 and rep["inputs"]["ledger_months"] == 0
    # last month (2026-09) has only 12 month ends of history: nothing to compare with, the whole provision is the charge
    assert rep["previous"]["basis"] == "none" and rep["totals"]["ZAR"]["movement_minor"] == 8000


def test_a_forward_looking_adjustment_scales_the_loss_rates_with_its_reason_audited_and_a_segment_overrides_the_overall(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        imp(s, history(month(2025, 10), 13) + history(month(2025, 10), 13, segment="sme").split(b"\n", 1)[1])
        provision.set_adjustment(s, month=month(2026, 9), segment_code="", pct=Decimal("10"), reason="Repo rate outlook", now=NOW, tz=JHB, actor=MANAGER)
        provision.set_adjustment(s, month=month(2026, 10), segment_code="sme", pct=Decimal("-50"), reason="SME book insured from October",
                                 now=NOW, tz=JHB, actor=MANAGER)
        provision.set_adjustment(s, month=month(2026, 11), segment_code="", pct=Decimal("90"), reason="Not yet in effect for October",
                                 now=NOW, tz=JHB, actor=MANAGER)
        rep = provision.run_provision(s, month=month(2026, 10), now=NOW, tz=JHB, actor=MANAGER)
        audit = s.execute(text("SELECT reason FROM audit_event WHERE entity_type = 'provision_adjustment' ORDER BY id")).scalars().all()
    seg = {x["key"]: x["provision_minor"] for x in rep["by_segment"]}
    assert seg == {"consumer": 660 * 5 + 5500, "sme": 300 * 5 + 2500}
    assert {ln["adjustment_pct"] for ln in rep["lines"] if ln["segment_code"] == "sme"} == {Decimal("-50")}
    assert audit == ["Repo rate outlook", "SME book insured from October", "Not yet in effect for October"]


def test_month_end_snapshots_read_the_ledger_as_it_stood_and_roll_amounts_are_measured_per_account(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        a = make_account(s, now=at(2026, 1, 5), name="A")
        b = make_account(s, now=at(2026, 1, 5), name="B")
        c = make_account(s, now=at(2026, 1, 5), name="C")
        d = make_account(s, now=at(2026, 1, 5), name="D")
        debit(s, a, posted=at(2026, 9, 1), due=date(2026, 9, 15), minor=10000)  # 15 days past due at 30 Sep, 46 at 31 Oct
        debit(s, b, posted=at(2026, 9, 1), due=date(2026, 9, 20), minor=20000)
        credit(s, b, posted=at(2026, 10, 10), minor=5000)  # 150.00 of it rolls to 31-60
        debit(s, c, posted=at(2026, 9, 25), due=date(2026, 10, 20), minor=5000)  # current at 30 Sep, 1-30 at 31 Oct
        debit(s, d, posted=at(2026, 4, 15), due=date(2026, 5, 15), minor=30000)  # 138 days at 30 Sep
        credit(s, d, posted=at(2026, 10, 15), minor=30000, kind="write_off")
        # posted after 31 October (22:00 UTC on the 31st is 1 November in Johannesburg): not in October's ageing
        debit(s, a, posted=datetime(2026, 10, 31, 22, 30, tzinfo=timezone.utc), due=date(2026, 11, 30), minor=99900)
        provision.take_snapshot(s, month=month(2026, 9), now=NOW, tz=JHB)
        provision.take_snapshot(s, month=month(2026, 10), now=NOW, tz=JHB)
        rows = {(r.month_end, r.bucket): r for r in s.execute(select(ProvisionAgeing).where(ProvisionAgeing.source == "ledger")).scalars()}
        snap = {(r[0], r[1]): r[2:] for r in s.execute(text(
            "SELECT month_end, account_id, current, d30, d60, d90, d120, d120_plus, written_off_minor FROM provision_account_snapshot"))}
    sep, oct_ = date(2026, 9, 30), date(2026, 10, 31)

    def key(dd: date, acc: int):  # type: ignore[no-untyped-def]
        return next(k for k in snap if str(k[0])[:10] == dd.isoformat() and k[1] == acc)

    assert snap[key(sep, a)] == (0, 10000, 0, 0, 0, 0, 0)
    assert snap[key(oct_, a)] == (0, 0, 10000, 0, 0, 0, 0)
    assert snap[key(oct_, b)] == (0, 0, 15000, 0, 0, 0, 0)
    assert snap[key(sep, d)] == (0, 0, 0, 0, 0, 30000, 0)
    assert snap[key(oct_, d)] == (0, 0, 0, 0, 0, 0, 30000)

    def cell(dd: date, bucket: str) -> ProvisionAgeing:
        return next(r for (m, bk), r in rows.items() if str(m)[:10] == dd.isoformat() and bk == bucket)

    assert (cell(sep, "current").balance_minor, cell(sep, "current").rolled_minor) == (5000, 5000)
    assert (cell(sep, "d30").balance_minor, cell(sep, "d30").rolled_minor, cell(sep, "d30").accounts) == (30000, 25000, 2)
    assert (cell(sep, "d120_plus").balance_minor, cell(sep, "d120_plus").rolled_minor, cell(sep, "d120_plus").stayed_minor) == (30000, 30000, 0)
    assert cell(oct_, "written_off").balance_minor == 30000
    assert cell(oct_, "d30").rolled_minor is None  # November's snapshot is not taken (November has not ended)


def _ledger_book(s) -> dict:  # type: ignore[no-untyped-def]
    a = make_account(s, now=at(2026, 1, 5), name="A")
    b = make_account(s, now=at(2026, 1, 5), name="B", kind="b2b")
    debit(s, a, posted=at(2026, 8, 1), due=date(2026, 8, 31), minor=50000)
    debit(s, a, posted=at(2026, 9, 1), due=date(2026, 9, 30), minor=50000)
    debit(s, a, posted=at(2026, 10, 1), due=date(2026, 10, 31), minor=50000)
    debit(s, b, posted=at(2026, 8, 1), due=date(2026, 8, 31), minor=200000)
    credit(s, b, posted=at(2026, 9, 10), minor=200000)
    debit(s, b, posted=at(2026, 10, 1), due=date(2026, 11, 1), minor=200000)
    return {"a": a, "b": b}


def test_a_past_month_run_twice_gives_identical_figures_even_after_new_postings_and_last_months_run_gives_the_movement(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        book = _ledger_book(s)
        # the prior system's history up to July; Opsline's ledger holds August to October
        imp(s, history(month(2025, 9), 11) + history(month(2025, 9), 11, segment="sme").split(b"\n", 1)[1])
        sep = provision.run_provision(s, month=month(2026, 9), now=NOW, tz=JHB, actor=MANAGER)
        first = provision.run_provision(s, month=month(2026, 10), now=NOW, tz=JHB, actor=MANAGER)
    assert first["inputs"]["ledger_months"] == 3 and first["inputs"]["imported_months"] == 10
    assert first["previous"]["basis"] == "run"
    prev = {(ln["segment_code"], ln["bucket"]): ln["provision_minor"] for ln in sep["lines"]}
    for ln in first["lines"]:
        assert ln["previous_minor"] == prev.get((ln["segment_code"], ln["bucket"]), 0)
        assert ln["movement_minor"] == ln["provision_minor"] - ln["previous_minor"]
    assert first["totals"]["ZAR"]["movement_minor"] == first["totals"]["ZAR"]["provision_minor"] - sep["totals"]["ZAR"]["provision_minor"]
    with factory.begin() as s:  # November: a payment, a new invoice, a write-off — none of it was there at 31 October
        credit(s, book["a"], posted=NOW, minor=150000)
        debit(s, book["b"], posted=NOW, due=date(2026, 12, 1), minor=99900)
        credit(s, book["b"], posted=NOW, minor=1000, kind="write_off")
        provision.take_snapshot(s, month=month(2026, 10), now=NOW, tz=JHB)  # even a retaken snapshot reads the ledger as it stood
        again = provision.run_provision(s, month=month(2026, 10), now=NOW, tz=JHB, actor=MANAGER, reason="auditor asked to recompute")

    def figures(rep: dict) -> list:
        return [(ln["segment_code"], ln["bucket"], ln["balance_minor"], ln["loss_rate"], ln["provision_minor"], ln["previous_minor"]) for ln in rep["lines"]]

    assert figures(again) == figures(first)
    assert [m["roll"] for m in again["matrix"]] == [m["roll"] for m in first["matrix"]]
    assert (again["seq"], first["seq"]) == (2, 1)


def test_a_month_already_run_replays_its_stored_run_and_a_rerun_needs_a_reason_and_supersedes_it(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        imp(s, history(month(2025, 10), 13))
        one = provision.run_provision(s, month=month(2026, 10), now=NOW, tz=JHB, actor=MANAGER)
    with factory.begin() as s:
        before = counts(s)
        same = provision.run_provision(s, month=month(2026, 10), now=NOW, tz=JHB, actor=MANAGER, reason="   ")
        assert counts(s) == before
    assert same["replayed"] and same["run_id"] == one["run_id"]
    with factory.begin() as s:
        provision.set_adjustment(s, month=month(2026, 10), segment_code="", pct=Decimal("10"), reason="Outlook worse", now=NOW, tz=JHB, actor=MANAGER)
        two = provision.run_provision(s, month=month(2026, 10), now=NOW, tz=JHB, actor=MANAGER, reason="October adjustment agreed with finance")
    with factory() as s:
        runs = s.execute(select(ProvisionRun).order_by(ProvisionRun.seq)).scalars().all()
        ev = s.execute(text("SELECT action, reason FROM audit_event WHERE entity_type = 'provision_run' ORDER BY id")).all()
        current = provision.get_report(s, month=month(2026, 10))
    assert [(r.seq, r.is_current) for r in runs] == [(1, False), (2, True)]
    assert two["totals"]["ZAR"]["provision_minor"] == 8800 and one["totals"]["ZAR"]["provision_minor"] == 8000
    assert current["run_id"] == two["run_id"]
    assert [tuple(e) for e in ev] == [("run", None), ("rerun", "October adjustment agreed with finance")]


def test_a_segment_without_history_in_a_bucket_takes_the_all_segments_rate(factory):  # type: ignore[no-untyped-def]
    only_current = {"current": ("500.00", "50.00"), "d30": ("0", "0")}
    with factory.begin() as s:
        imp(s, history(month(2025, 10), 13) + history(month(2025, 10), 13, segment="sme", cells=only_current).split(b"\n", 1)[1])
        rep = provision.run_provision(s, month=month(2026, 10), now=NOW, tz=JHB, actor=MANAGER)
    sme = next(x for x in rep["matrix"] if x["segment_code"] == "sme")
    allm = next(x for x in rep["matrix"] if x["segment_code"] == "")
    assert sme["roll"]["current"] == Decimal("0.1") and sme["basis"]["current"] == "segment"
    assert sme["basis"]["d60"] == "all segments" and sme["roll"]["d60"] == allm["roll"]["d60"]


# --- bad input: the error names the field, nothing changes -------------------------------------------------------------

@pytest.mark.parametrize("raw", ["2026-13", "11/2026", "", "2026-1"])
def test_a_month_that_is_not_yyyy_mm_is_refused_naming_the_month(raw):  # type: ignore[no-untyped-def]
    with pytest.raises(provision.UnableToProvide) as e:
        provision.parse_month(raw)
    assert e.value.field == "month"


@pytest.mark.parametrize("m", [month(2026, 11), month(2027, 1)])
def test_a_month_that_has_not_ended_is_refused_and_nothing_is_stored(factory, m):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        imp(s, history(month(2025, 10), 13))
    with factory.begin() as s:
        before = counts(s)
        with pytest.raises(provision.UnableToProvide) as e:
            provision.run_provision(s, month=m, now=NOW, tz=JHB, actor=MANAGER)
        assert e.value.field == "month" and "not ended" in e.value.detail
        assert counts(s) == before


def test_fewer_than_twelve_months_of_history_is_refused_naming_the_missing_months(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        imp(s, history(month(2026, 3), 8))  # March to October
    with factory.begin() as s:
        before = counts(s)
        with pytest.raises(provision.UnableToProvide) as e:
            provision.run_provision(s, month=month(2026, 10), now=NOW, tz=JHB, actor=MANAGER)
        assert counts(s) == before
    assert e.value.field == "month"
    assert "needs 12 months of history" in e.value.detail and "missing 2025-10 to 2026-02" in e.value.detail and "8 are there" in e.value.detail


def test_a_history_file_with_one_bad_line_imports_nothing_and_names_file_line_and_field(factory):  # type: ignore[no-untyped-def]
    good = history(month(2025, 10), 13).decode().splitlines()
    bad = good[:5] + ["2026-02,consumer,1-30,12x.00,,"] + good[5:9] + ["2026-03,nosuchsegment,current,10.00,,"] + good[9:]
    with factory.begin() as s:
        before = counts(s)
        with pytest.raises(provision.UnableToImportHistory) as e:
            imp(s, ("\n".join(bad) + "\n").encode(), name="ageing.csv")
        assert counts(s) == before
    errs = e.value.extra["errors"]
    assert [(x["file"], x["line"], x["field"]) for x in errs] == [("ageing.csv", 6, "balance"), ("ageing.csv", 11, "segment")]
    assert "nothing imported" in e.value.detail and "ageing.csv line 6, balance" in e.value.detail


def test_an_adjustment_without_a_reason_or_for_an_unknown_segment_is_refused_and_nothing_is_stored(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        before = counts(s)
        with pytest.raises(provision.UnableToProvide) as e:
            provision.set_adjustment(s, month=month(2026, 10), segment_code="", pct=Decimal("5"), reason="  ", now=NOW, tz=JHB, actor=MANAGER)
        assert e.value.field == "reason"
        with pytest.raises(provision.UnableToProvide) as e2:
            provision.set_adjustment(s, month=month(2026, 10), segment_code="nope", pct=Decimal("5"), reason="x", now=NOW, tz=JHB, actor=MANAGER)
        assert e2.value.field == "segment"
        assert counts(s) == before


def test_importing_a_month_again_replaces_that_months_earlier_import(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        imp(s, history(month(2025, 10), 13))
        imp(s, history(month(2026, 10), 1, cells={"current": ("2000.00", "")}))
        rows = s.execute(select(ProvisionAgeing.bucket, ProvisionAgeing.balance_minor, ProvisionAgeing.rolled_minor)
                         .where(ProvisionAgeing.month_end == date(2026, 10, 31))).all()
        summary = provision.history_summary(s, now=NOW, tz=JHB)
    assert [tuple(r) for r in rows] == [("current", 200000, None)]
    assert summary["imported"] == 13 and summary["ledger"] == 0


def test_provision_lines_for_a_ledger_month_share_out_to_accounts_exactly(factory):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        _ledger_book(s)
        imp(s, history(month(2025, 9), 11) + history(month(2025, 9), 11, segment="sme").split(b"\n", 1)[1])
        rep = provision.run_provision(s, month=month(2026, 10), now=NOW, tz=JHB, actor=MANAGER)
        for ln in rep["lines"]:
            acc = provision.line_accounts(s, month=month(2026, 10), currency="ZAR", segment=ln["segment_code"], bucket=ln["bucket"], limit=None)
            assert acc["source"] == "ledger"
            assert sum(r["provision_minor"] for r in acc["rows"]) == ln["provision_minor"]
            assert sum(r["balance_minor"] for r in acc["rows"]) == ln["balance_minor"]
        lines = s.execute(select(ProvisionLine)).scalars().all()
    assert {ln.bucket for ln in lines} <= set(BUCKETS)


def test_two_runs_of_the_same_month_at_the_same_moment_store_one_run(factory):  # type: ignore[no-untyped-def]
    import threading

    with factory.begin() as s:
        _ledger_book(s)
        imp(s, history(month(2025, 9), 11))
    barrier = threading.Barrier(2)
    out: list = []

    def go() -> None:
        with factory.begin() as s:
            barrier.wait()
            out.append(provision.run_provision(s, month=month(2026, 10), now=NOW, tz=JHB, actor=MANAGER))

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    with factory() as s:
        runs = s.execute(select(ProvisionRun)).scalars().all()
        snaps = s.execute(text("SELECT COUNT(*) FROM provision_snapshot")).scalar_one()
    assert len(out) == 2 and len(runs) == 1
    assert sorted(r["replayed"] for r in out) == [False, True] and {r["run_id"] for r in out} == {runs[0].id}
    assert snaps == 3


def test_imported_120_plus_written_off_without_a_stayed_amount_keeps_the_written_off_and_estimates_what_stayed(factory):  # type: ignore[no-untyped-def]
    # 120+ of 100.00 every month, 10.00 written off each month (given), stayed not given: estimated from the next month's
    # 120+ (100.00) less what rolled in from 91-120 (12.00, given) = 88.00 → loss 120+ = 0.1 / (1 - 0.88)
    lines = ["month,segment,bucket,balance,rolled"]
    m = month(2025, 10)
    for _ in range(13):
        lines += [f"{m:%Y-%m},consumer,{b},{bal},{rolled}" for b, (bal, rolled) in STEADY.items()]
        m = date(m.year + m.month // 12, m.month % 12 + 1, 1)
    with factory.begin() as s:
        imp(s, ("\n".join(lines) + "\n").encode())
        rep = provision.run_provision(s, month=month(2026, 10), now=NOW, tz=JHB, actor=MANAGER)
    cm = next(x for x in rep["matrix"] if x["segment_code"] == "consumer")
    assert cm["roll"]["d120_plus"] == Decimal("0.1") and cm["stayed"] == Decimal("0.88")
    assert cm["loss"]["d120_plus"] == Decimal("0.83333333")
