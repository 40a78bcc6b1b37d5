"""Partner invoice import and reconciliation: exact findings for a hand-built October 2026 Openserve invoice, and every
bad input refused with the file, line and field named and nothing written."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from opsline.assurance import service
from opsline.assurance.models import AssuranceFinding, PartnerInvoice, PartnerInvoiceLine
from opsline.cancellations.models import CancellationJourney
from opsline.catalog.models import Price
from opsline.inventory.models import Product

from partners_helpers import line


def _product(session, now, actor, *, start, end=None, state="active"):  # type: ignore[no-untyped-def]
    _, _, pid = line(session, now, actor, partner="openserve", coverage=("openserve",), state=state)
    p = session.get(Product, pid)
    p.start_date, p.end_date = start, end
    session.flush()
    return p


def _cost(session, p) -> int:  # type: ignore[no-untyped-def]
    return session.execute(select(Price.amount_minor).where(Price.offering_id == p.offering_id, Price.kind == "wholesale_cost")).scalar_one()


@pytest.fixture
def lines(session, now, actor):  # type: ignore[no-untyped-def]
    ok = _product(session, now, actor, start=date(2026, 1, 10))  # active all October, billed right
    dear = _product(session, now, actor, start=date(2026, 2, 1))  # active all October, billed R10 more
    gone = _product(session, now, actor, start=date(2025, 5, 1), end=date(2026, 9, 30), state="terminated")  # ended in September
    half = _product(session, now, actor, start=date(2025, 5, 1), end=date(2026, 10, 11), state="terminated")  # 10 of 31 days active
    never = _product(session, now, actor, start=None, state="terminated")  # abandoned before activation
    missing = _product(session, now, actor, start=date(2026, 3, 1))  # active all October, not on the invoice
    return {"ok": ok, "dear": dear, "gone": gone, "half": half, "never": never, "missing": missing}


def _csv(rows: list[tuple[str, str, str]], header: bool = True) -> bytes:
    body = ("line_id,period,amount\n" if header else "") + "".join(f"{a},{b},{c}\n" for a, b, c in rows)
    return body.encode()


def _rand(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def test_the_reconciliation_finds_lines_billed_after_termination_overcharges_and_unbilled_lines(session, now, actor, lines):
    cost = _cost(session, lines["ok"])
    journey = CancellationJourney(reference="CJ-T1", kind="cancellation", account_id=lines["gone"].account_id, product_id=lines["gone"].id,
                                  state="closed", reason_code="price", partner_code="openserve", notice_date=date(2026, 8, 30), created_by="tester",
                                  created_at=now, updated_at=now)
    session.add(journey)
    session.flush()
    data = _csv([(lines["ok"].partner_line_ref, "2026-10", _rand(cost)), (lines["dear"].partner_line_ref, "2026-10", _rand(cost + 1000)),
                 (lines["gone"].partner_line_ref, "2026-10", _rand(cost)), (lines["half"].partner_line_ref, "2026-10", _rand(cost)),
                 (lines["never"].partner_line_ref, "2026-10", _rand(cost))])
    r = service.import_invoice(session, partner_code="openserve", period="2026-10", file_name="openserve-2026-10.csv", data=data, now=now, actor=actor)
    assert r["lines"] == 5 and r["total_minor"] == 5 * cost + 1000
    found = {f.line_ref: f for f in session.execute(select(AssuranceFinding)).scalars()}
    assert set(found) == {lines[k].partner_line_ref for k in ("dear", "gone", "half", "never", "missing")}
    half_expected = (2 * cost * 10 + 31) // 62
    assert (found[lines["dear"].partner_line_ref].kind, found[lines["dear"].partner_line_ref].amount_minor) == ("price_differs", 1000)
    gone = found[lines["gone"].partner_line_ref]
    assert (gone.kind, gone.amount_minor, gone.expected_minor, gone.journey_id) == ("billed_not_active", cost, 0, journey.id)
    assert "ended 2026-09-30" in gone.detail
    assert found[lines["half"].partner_line_ref].amount_minor == cost - half_expected
    assert "10 of 31 days" in found[lines["half"].partner_line_ref].detail
    assert "never active" in found[lines["never"].partner_line_ref].detail
    miss = found[lines["missing"].partner_line_ref]
    assert (miss.kind, miss.amount_minor, miss.billed_minor) == ("not_billed_by_partner", -cost, 0)
    assert r["leakage_minor"] == 1000 + cost + (cost - half_expected) + cost
    assert r["per_kind"]["billed_not_active"]["count"] == 3


def test_a_finding_is_disputed_and_the_fno_answer_recorded_and_an_unbilled_line_cannot_be_disputed(session, now, actor, lines):
    cost = _cost(session, lines["ok"])
    service.import_invoice(session, partner_code="openserve", period="2026-10", file_name="a.csv", now=now, actor=actor,
                           data=_csv([(lines["gone"].partner_line_ref, "2026-10", _rand(cost))]))
    gone = session.execute(select(AssuranceFinding).where(AssuranceFinding.kind == "billed_not_active")).scalar_one()
    assert service.act_on_finding(session, finding_id=gone.id, action="dispute", now=now, actor=actor) == "disputed"
    assert service.act_on_finding(session, finding_id=gone.id, action="recover", now=now, actor=actor) == "recovered"
    miss = session.execute(select(AssuranceFinding).where(AssuranceFinding.kind == "not_billed_by_partner")).scalars().first()
    with pytest.raises(service.UnableToImportInvoice) as e:
        service.act_on_finding(session, finding_id=miss.id, action="dispute", now=now, actor=actor)
    assert e.value.field == "action"


def _nothing_imported(session) -> None:  # type: ignore[no-untyped-def]
    assert session.execute(select(func.count()).select_from(PartnerInvoice)).scalar_one() == 0
    assert session.execute(select(func.count()).select_from(PartnerInvoiceLine)).scalar_one() == 0
    assert session.execute(select(func.count()).select_from(AssuranceFinding)).scalar_one() == 0


@pytest.mark.parametrize("rows,field,words", [
    ([("{ok}", "2026-09", "450.00")], "period", "line 2, field 'period'"),
    ([("{ok}", "2026-10", "450.00"), ("{ok}", "2026-10", "450.00")], "line_id", "billed twice (also on line 2)"),
    ([("{ok}", "2026-10", "four hundred")], "amount", "line 2, field 'amount'"),
    ([("OPE-NOT-OURS", "2026-10", "450.00"), ("{ok}", "2026-10", "450.00")], "line_id", "line 2, field 'line_id': Openserve line OPE-NOT-OURS"),
    ([("", "2026-10", "450.00")], "line_id", "the line id is empty"),
])
def test_a_bad_line_refuses_the_whole_file_naming_file_line_and_field(session, now, actor, lines, rows, field, words):
    rows = [(a.format(ok=lines["ok"].partner_line_ref), b, c) for a, b, c in rows]
    with pytest.raises(service.UnableToImportInvoice) as e:
        service.import_invoice(session, partner_code="openserve", period="2026-10", file_name="bad.csv", data=_csv(rows), now=now, actor=actor)
    assert e.value.field == field
    assert "bad.csv" in str(e.value) and words in str(e.value) and "nothing was imported" in str(e.value)
    _nothing_imported(session)


def test_the_same_file_twice_or_the_same_month_twice_is_refused(session, now, actor, lines):
    data = _csv([(lines["ok"].partner_line_ref, "2026-10", "450.00")])
    service.import_invoice(session, partner_code="openserve", period="2026-10", file_name="a.csv", data=data, now=now, actor=actor)
    with pytest.raises(service.UnableToImportInvoice, match="already imported") as e:
        service.import_invoice(session, partner_code="openserve", period="2026-10", file_name="a-copy.csv", data=data, now=now, actor=actor)
    assert e.value.field == "file"
    with pytest.raises(service.UnableToImportInvoice, match="already imported") as e:
        service.import_invoice(session, partner_code="openserve", period="2026-10", file_name="b.csv", now=now, actor=actor,
                               data=_csv([(lines["ok"].partner_line_ref, "2026-10", "451.00")]))
    assert e.value.field == "period"
    assert session.execute(select(func.count()).select_from(PartnerInvoice)).scalar_one() == 1


def test_an_unknown_partner_a_future_month_and_a_binary_file_are_refused(session, now, actor, lines):
    data = _csv([(lines["ok"].partner_line_ref, "2026-10", "450.00")])
    with pytest.raises(service.UnableToImportInvoice) as e:
        service.import_invoice(session, partner_code="courierguy", period="2026-10", file_name="a.csv", data=data, now=now, actor=actor)
    assert e.value.field == "partner"
    with pytest.raises(service.UnableToImportInvoice) as e:
        service.import_invoice(session, partner_code="openserve", period="2026-12", file_name="a.csv", data=data, now=now, actor=actor)
    assert e.value.field == "period"
    with pytest.raises(service.UnableToImportInvoice) as e:
        service.import_invoice(session, partner_code="openserve", period="2026-13", file_name="a.csv", data=data, now=now, actor=actor)
    assert e.value.field == "period"
    with pytest.raises(service.UnableToImportInvoice, match="NUL") as e:
        service.import_invoice(session, partner_code="openserve", period="2026-10", file_name="x.pdf", data=b"%PDF\x00\x01", now=now, actor=actor)
    _nothing_imported(session)


def test_the_demo_invoice_plants_lines_billed_after_cancellation_overcharges_and_forgotten_lines(session, now, actor, lines):
    from opsline.assurance import demo

    data, planted = demo.invoice_csv(session, period=date(2026, 10, 1))
    assert planted["ended"] == 1 and planted["forgotten"] == 0  # three lines live all October: too few to forget any
    r = service.import_invoice(session, partner_code="openserve", period="2026-10", file_name="demo.csv", data=data, now=now, actor=actor)
    assert r["lines"] == 4 and r["per_kind"]["billed_not_active"]["count"] == 1  # the line ended in September, still billed
    assert r["per_kind"]["price_differs"]["count"] == 1 and r["per_kind"]["price_differs"]["amount_minor"] == 2500


def test_our_inventory_against_our_billing_finds_active_products_not_billed_and_billed_products_not_active(session, now, actor, lines):
    from opsline.assurance import queries
    from opsline.billing.models import Invoice, InvoiceLine

    def bill(p, start, end):  # type: ignore[no-untyped-def]
        inv = Invoice(account_id=p.account_id, kind="cycle", period_start=start, period_end=end, state="new", currency="ZAR", created_at=now)
        session.add(inv)
        session.flush()
        session.add(InvoiceLine(invoice_id=inv.id, account_id=p.account_id, product_id=p.id, offering_id=p.offering_id, kind="recurring",
                                description="Monthly fibre access", period_start=start, period_end=end, amount_minor=69900, tax_rate_code="VAT15",
                                total_minor=80385, currency="ZAR"))
        session.flush()

    bill(lines["ok"], date(2026, 10, 1), date(2026, 11, 1))
    bill(lines["dear"], date(2026, 10, 1), date(2026, 11, 1))
    bill(lines["gone"], date(2026, 10, 1), date(2026, 11, 1))  # ended 30 September, billed for October
    d = queries.billing_consistency(session, period=date(2026, 10, 1))
    assert [r["product_id"] for r in d["not_billed"]] == [lines["missing"].id] and d["not_billed_count"] == 1
    assert [r["product_id"] for r in d["billed_not_active"]] == [lines["gone"].id]
    assert d["billed_not_active_minor"] == 69900
