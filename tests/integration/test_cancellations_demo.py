"""The demo's late journey (the FNO holds its delete order) on SQLite and PostgreSQL: its effective date is weeks past,
so the journey shows its FNO step overdue (jeopardy), the wholesale fees paid since the effective date (fee exposure,
growing a day at a time) and the breach in the report under the cause inferred from the step."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from opsline.cancellations import demo, queries, reports
from opsline.cancellations.models import CancellationJourney
from opsline.core.localtime import zone
from tests.integration.test_cancellations_journey import _line

TZ = zone("Africa/Johannesburg")


def test_the_demo_late_journey_shows_jeopardy_growing_fee_exposure_and_its_breach_with_a_cause(session, now, actor):
    _, _, product = _line(session, now - timedelta(days=200), actor, start=(now - timedelta(days=190)).date())
    demo._one(session, stage="late", product_id=product.id, account_id=product.account_id, reason="price", t0=now - timedelta(days=80), now=now, tz=TZ)
    session.flush()
    j = session.execute(select(CancellationJourney).where(CancellationJourney.product_id == product.id)).scalar_one()
    assert j.state == "deactivation_sent" and j.effective_date is not None and j.effective_date < (now - timedelta(days=14)).date()
    d = queries.detail(session, journey_id=j.id, now=now, tz=TZ)
    fno = next(s for s in d["steps"] if s["code"] == "fno_deactivation")
    assert fno["state"] == "open" and fno["colour"] == "red"
    tomorrow = queries.detail(session, journey_id=j.id, now=now + timedelta(days=1), tz=TZ)["fee_exposure"]
    assert 0 < d["fee_exposure"]["days"] < tomorrow["days"] and 0 < d["fee_exposure"]["amount_minor"] < tomorrow["amount_minor"]
    late = reports.breaches(session, since=reports._since(now, TZ, 12), now=now, tz=TZ, cause="waiting_on_fno")
    assert [b["journey_id"] for b in late] == [j.id]
