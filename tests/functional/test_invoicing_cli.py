"""`opsline import-usage FILE.csv`: loads and rates good rows and names the line and field of each bad one."""

from __future__ import annotations

from sqlalchemy import func, select
from typer.testing import CliRunner

from conftest import NOW
from opsline.billing.invoicing.models import UsageRejected
from opsline.billing.invoicing.samples import make_account, make_mobile_product
from opsline.billing.models import UsageRecord


def test_the_cli_imports_a_usage_file_and_reports_bad_lines_by_field(engine, factory, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    from opsline.cli import app
    from opsline.config import get_settings

    with factory.begin() as s:
        acc = make_account(s, now=NOW)
        make_mobile_product(s, account_id=acc, now=NOW, msisdn="27827770000")
    f = tmp_path / "nov.csv"
    f.write_text("external_id,msisdn,usage_type,started_at,quantity\n"
                 "c1,27827770000,data_mb,2026-11-02T10:00:00+02:00,1500\n"
                 "c2,27827770000,data_mb,2026-11-02T10:00:00+02:00,-3\n")
    monkeypatch.setenv("OPSLINE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        res = CliRunner().invoke(app, ["import-usage", str(f), "--strict"])
        missing = CliRunner().invoke(app, ["import-usage", str(tmp_path / "nope.csv")])
    finally:
        get_settings.cache_clear()
    assert res.exit_code == 1, res.output
    assert "nov.csv:3 field quantity: quantity -3 is negative" in res.output
    assert "1 loaded and rated" in res.output
    assert missing.exit_code == 2
    with factory() as s:
        assert s.execute(select(func.count()).select_from(UsageRecord)).scalar_one() == 1
        assert s.execute(select(func.count()).select_from(UsageRejected)).scalar_one() == 1
