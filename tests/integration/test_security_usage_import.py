"""Hostile usage files: other encodings, NUL bytes, huge fields and over-long values give a clear answer (a whole
import, or a refusal naming the line and field), never a crash and never a partial post."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select

from opsline.billing.invoicing import service
from opsline.billing.invoicing.models import UsageRejected
from opsline.billing.invoicing.samples import make_account, make_mobile_product
from opsline.billing.invoicing.usage import UnableToImportUsage
from opsline.billing.models import UsageRecord

HEADER = "external_id,msisdn,product_id,usage_type,started_at,quantity\n"
ROW = "{ext},27821110000,,data_mb,2026-11-02T10:00:00+02:00,5\n"


@pytest.fixture
def subscriber(session, now):  # type: ignore[no-untyped-def]
    acc = make_account(session, now=now)
    p = make_mobile_product(session, account_id=acc, now=now, msisdn="27821110000", data_rate_minor=10, data_bundle=1000)
    session.commit()
    return p


def _counts(session) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    return (session.scalar(select(func.count()).select_from(UsageRecord)), session.scalar(select(func.count()).select_from(UsageRejected)))


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "utf-16", "utf-8-sig"])
def test_a_usage_file_in_latin1_windows1252_or_utf16_is_read_and_imported_whole(session, now, actor, subscriber, encoding):  # type: ignore[no-untyped-def]
    body = (HEADER + ROW.format(ext="café-1") + ROW.format(ext="naïve-2")).encode(encoding)
    result = service.import_usage(session, file=body, filename=f"usage-{encoding}.csv", now=now, actor=actor)
    session.commit()
    assert result.loaded == 2 and not result.errors
    assert set(session.scalars(select(UsageRecord.external_id))) == {"café-1", "naïve-2"}


@pytest.mark.parametrize("body, words", [
    ((HEADER + ROW.format(ext="a1") + "a2,2782\x00,,data_mb,2026-11-02T10:00:00+02:00,5\n").encode(), ["line 3", "NUL"]),
    (b"\x00\x01\x02\x03binary" * 100, ["line 1"]),
    ((HEADER + ROW.format(ext="a1") + "a2,27821110000,,data_mb,2026-11-02T10:00:00+02:00," + "9" * 200_000 + "\n").encode(), ["line", "field larger than field limit"]),
    (b"\xff\xfe" + "bad".encode("utf-8")[:3], ["UTF-16"]),
])
def test_nul_bytes_binary_data_and_fields_past_the_csv_limit_refuse_the_whole_file_naming_the_line(session, now, actor, subscriber, body, words):  # type: ignore[no-untyped-def]
    before = _counts(session)
    with pytest.raises(UnableToImportUsage) as exc:
        service.import_usage(session, file=body, filename="hostile.csv", now=now, actor=actor)
    session.rollback()
    assert all(w in exc.value.detail for w in words), exc.value.detail
    assert exc.value.problem(instance="/")["status"] == 422
    assert _counts(session) == before


def test_values_longer_than_their_columns_are_bad_rows_naming_the_field_and_the_rest_is_imported(session, now, actor, subscriber):  # type: ignore[no-untyped-def]
    long_name = "x" * 5000
    body = HEADER + ROW.format(ext="ok-1") + ROW.format(ext=long_name) + f"ok-2,{'2' * 300},,data_mb,2026-11-02T10:00:00+02:00,5\n"
    result = service.import_usage(session, file=body.encode(), filename="f" * 1000 + ".csv", now=now, actor=actor)
    session.commit()
    assert result.loaded == 1
    assert sorted((e.line, e.field) for e in result.errors) == [(3, "external_id"), (4, "msisdn")]
    assert session.scalar(select(func.count()).select_from(UsageRejected)) == 2


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
@given(data=st.binary(max_size=400))
def test_any_bytes_give_a_whole_import_or_a_clear_refusal_never_a_crash(factory, now, actor, data):  # type: ignore[no-untyped-def]
    with factory() as s:
        before = _counts(s)
        try:
            service.import_usage(s, file=HEADER.encode() + data, filename="fuzz.csv", now=now, actor=actor)
            s.flush()
        except UnableToImportUsage:
            s.rollback()
            assert _counts(s) == before
        finally:
            s.rollback()
