"""Usage import and rating: every bad-row kind reported by line and kept for correction; nothing rated twice; bundles first."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from opsline.billing.invoicing import service
from opsline.billing.invoicing.models import UsageRejected
from opsline.billing.invoicing.samples import make_account, make_finalised_invoice, make_mobile_product
from opsline.billing.invoicing.usage import UnableToImportUsage
from opsline.billing.models import Invoice, UsageRecord

HEADER = "external_id,msisdn,product_id,usage_type,started_at,quantity\n"


@pytest.fixture
def subscriber(session, now):  # type: ignore[no-untyped-def]
    acc = make_account(session, now=now)
    p = make_mobile_product(session, account_id=acc, now=now, msisdn="27821110000", data_rate_minor=10, data_bundle=1000)
    session.commit()
    return {"account_id": acc, **p}


def test_every_bad_row_kind_is_reported_by_line_and_kept_for_correction(session, now, actor, subscriber):  # type: ignore[no-untyped-def]
    pid = subscriber["product_id"]
    body = HEADER + "\n".join([
        "u1,27821110000,,data_mb,2026-11-02T10:00:00+02:00,600",       # 2 good
        "u2,,%d,data_mb,2026-11-03T10:00:00+02:00,600" % pid,           # 3 good (by product id)
        "u3,27829999999,,data_mb,2026-11-03T10:00:00+02:00,10",         # 4 unknown subscriber
        "u4,27821110000,,data_mb,2026-11-03T10:00:00+02:00,-5",         # 5 negative quantity
        "u5,27821110000,,data_mb,2026-13-03T10:00:00+02:00,5",          # 6 bad date
        "u6,27821110000,,data_mb,2026-11-03T10:00:00,5",                # 7 no offset
        "u1,27821110000,,data_mb,2026-11-04T10:00:00+02:00,5",          # 8 duplicate in file
        "u7,27821110000,,fax,2026-11-04T10:00:00+02:00,5",              # 9 unknown usage type
        "u8,27821110000,,data_mb,2026-11-04T10:00:00+02:00,abc",        # 10 quantity not a number
        ",27821110000,,data_mb,2026-11-04T10:00:00+02:00,5",            # 11 no external id
    ]) + "\n"
    res = service.import_usage(session, file=body.encode(), filename="nov.csv", now=now, actor=actor)
    session.commit()
    assert (res.total, res.loaded, res.rejected) == (10, 2, 8)
    got = {(e.line, e.field) for e in res.errors}
    assert got == {(4, "msisdn"), (5, "quantity"), (6, "started_at"), (7, "started_at"), (8, "external_id"), (9, "usage_type"), (10, "quantity"), (11, "external_id")}
    assert "duplicate of line 2" in next(e.reason for e in res.errors if e.line == 8)
    kept = session.execute(select(UsageRejected.source_line, UsageRejected.raw_line).order_by(UsageRejected.source_line)).all()
    assert [k[0] for k in kept] == [4, 5, 6, 7, 8, 9, 10, 11]
    assert kept[0][1].startswith("u3,27829999999")
    # bundle of 1000 MB first: 600 free, then 400 free + 200 charged at 10c = R20.00
    rated = dict(session.execute(select(UsageRecord.external_id, UsageRecord.rated_amount_minor)).all())
    assert rated == {"u1": 0, "u2": 2000}
    expl = session.execute(select(UsageRecord.explanation).where(UsageRecord.external_id == "u2")).scalar_one()
    assert "bundle 1000 MB/month" in expl and "200 MB charged" in expl


def test_reimporting_the_same_file_rates_nothing_twice_and_a_corrected_row_resolves_its_rejection(session, now, actor, subscriber):  # type: ignore[no-untyped-def]
    body = HEADER + "a1,27821110000,,data_mb,2026-11-02T10:00:00+02:00,1500\na2,27821110000,,data_mb,2026-11-02T11:00:00+02:00,-1\n"
    service.import_usage(session, file=body, filename="f.csv", now=now, actor=actor)
    session.commit()
    again = service.import_usage(session, file=body, filename="f.csv", now=now, actor=actor)
    session.commit()
    assert again.loaded == 0 and {e.line for e in again.errors} == {2, 3}
    assert "already loaded" in again.errors[0].reason
    assert session.execute(select(func.count()).select_from(UsageRecord)).scalar_one() == 1
    assert session.execute(select(func.sum(UsageRecord.rated_amount_minor))).scalar_one() == 5000
    fixed = service.import_usage(session, file=HEADER + "a2,27821110000,,data_mb,2026-11-02T11:00:00+02:00,1\n", filename="f-fixed.csv", now=now, actor=actor)
    session.commit()
    assert fixed.loaded == 1
    still_open = service.list_rejected(session, source_file="f.csv")
    assert [(r["external_id"], r["source_line"]) for r in still_open] == [("a1", 2)]  # a2's rejections resolved by the corrected load


def test_a_file_without_required_columns_is_refused_naming_the_header(session, now, actor):  # type: ignore[no-untyped-def]
    with pytest.raises(UnableToImportUsage, match="line 1 .*quantity"):
        service.import_usage(session, file="external_id,msisdn,usage_type,started_at\n", filename="bad.csv", now=now, actor=actor)
    assert session.execute(select(func.count()).select_from(UsageRecord)).scalar_one() == 0


def test_rerating_after_late_usage_raises_a_debit_not_an_edit(session, now, actor, subscriber):  # type: ignore[no-untyped-def]
    service.import_usage(session, file=HEADER + "b1,27821110000,,data_mb,2026-10-05T10:00:00+02:00,1200\n", filename="oct.csv", now=now, actor=actor)
    inv_id = make_finalised_invoice(session, account_id=subscriber["account_id"], now=now, period_start=date(2026, 10, 1), period_end=date(2026, 11, 1), lines=[
        {"description": "Data out of bundle", "kind": "usage", "amount_minor": 2000, "product_id": subscriber["product_id"], "offering_id": subscriber["offering_id"]},
    ])
    session.commit()
    # a late record for October arrives: 300 MB more, all out of bundle = R30.00
    service.import_usage(session, file=HEADER + "b2,27821110000,,data_mb,2026-10-20T10:00:00+02:00,300\n", filename="oct-late.csv", now=now, actor=actor)
    res = service.rerate_period(session, account_id=subscriber["account_id"], period_start=date(2026, 10, 1), now=now, actor=actor, reason="late CDRs")
    session.commit()
    assert res["debit_invoice_id"] and res["credit_note"] is None
    assert session.get(Invoice, inv_id).total_minor == 2300
    debit = session.get(Invoice, res["debit_invoice_id"])
    assert debit.kind == "adhoc" and debit.subtotal_minor == 3000 and debit.number.startswith("INV-2026-")
    again = service.rerate_period(session, account_id=subscriber["account_id"], period_start=date(2026, 10, 1), now=now, actor=actor, reason="again")
    assert again["differences"] == []


def test_msisdns_match_in_national_or_international_spelling(session, now, actor, subscriber):  # type: ignore[no-untyped-def]
    body = HEADER + "n1,0821110000,,sms,2026-11-02T10:00:00+02:00,1\nn2,+27 82 111 0000,,sms,2026-11-02T10:01:00+02:00,1\n"
    res = service.import_usage(session, file=body, filename="sms.csv", now=now, actor=actor)
    assert (res.loaded, res.rejected) == (2, 0)
    assert session.execute(select(UsageRecord.state, UsageRecord.explanation).where(UsageRecord.external_id == "n1")).one()[0] == "rejected"  # no SMS price on this offering
