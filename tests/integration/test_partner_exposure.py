"""FNO fee exposure, jeopardy and claims: exact figures for a hand-worked case (as of Monday 23 November 2026)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from opsline.core.errors import TransitionNotAllowed
from opsline.core.lifecycle import ReasonRequired
from opsline.partners import exposure
from opsline.partners.models import PartnerServiceOrder

from partners_helpers import line

TODAY = date(2026, 11, 23)


def _so(session, now, actor, *, partner, requested, due=None, confirmed=None, state="completed"):  # type: ignore[no-untyped-def]
    account_id, site_id, product_id = line(session, now, actor, partner=partner, coverage=(partner,))
    so = PartnerServiceOrder(partner_code=partner, account_id=account_id, product_id=product_id, site_id=site_id, action="delete", state=state,
                             external_ref=f"OPS-SO-T{product_id}", requested_date=requested, due_date=due or requested, confirmed_date=confirmed,
                             attempts=1, created_at=now, updated_at=now)
    session.add(so)
    session.flush()
    return so


@pytest.fixture
def orders(session, now, actor):  # type: ignore[no-untyped-def]
    return {
        # Openserve bills R450.00 a month: 10 days late = 45000 x 10 x 12 / 365 = 14794.52 -> 14795 minor (R147.95); sent in time
        "late_openserve": _so(session, now, actor, partner="openserve", requested=date(2026, 11, 3), confirmed=date(2026, 11, 13)),
        # Frogfoot bills R16.00 a day: still active 5 days after 18 November = 8000 minor, due 20 November: jeopardy
        "open_frogfoot": _so(session, now, actor, partner="frogfoot", requested=date(2026, 11, 18), due=date(2026, 11, 20), state="inProgress"),
        # confirmed on its date: no exposure
        "on_time": _so(session, now, actor, partner="openserve", requested=date(2026, 11, 10), confirmed=date(2026, 11, 10)),
        # withdrawn: no exposure
        "cancelled": _so(session, now, actor, partner="vumatel", requested=date(2026, 11, 1), state="cancelled"),
        # confirmed 4 days late, but we sent it late (the SLA put its due date after the effective date): exposure, no claim
        # Vumatel R520.00 a month: 52000 x 4 x 12 / 365 = 6838.36 -> 6838
        "sent_late": _so(session, now, actor, partner="vumatel", requested=date(2026, 11, 16), due=date(2026, 11, 18), confirmed=date(2026, 11, 20)),
        # due today, unconfirmed, effective today: at risk, no exposure yet
        "due_today": _so(session, now, actor, partner="octotel", requested=TODAY, due=TODAY, state="acknowledged"),
    }


def test_exposure_is_exact_per_order_per_fno_and_in_total(session, orders):
    e = exposure.exposure(session, today=TODAY)
    by_id = {i["id"]: i for i in e["items"]}
    assert set(by_id) == {orders["late_openserve"].id, orders["open_frogfoot"].id, orders["sent_late"].id}
    assert (by_id[orders["late_openserve"].id]["days"], by_id[orders["late_openserve"].id]["amount_minor"]) == (10, 14795)
    assert (by_id[orders["open_frogfoot"].id]["days"], by_id[orders["open_frogfoot"].id]["amount_minor"], by_id[orders["open_frogfoot"].id]["growing"]) == (5, 8000, True)
    assert by_id[orders["sent_late"].id]["amount_minor"] == 6838 and by_id[orders["sent_late"].id]["fno_delay"] is False
    assert {p["partner_code"]: p["amount_minor"] for p in e["by_partner"]} == {"openserve": 14795, "frogfoot": 8000, "vumatel": 6838}
    assert e["total_minor"] == 14795 + 8000 + 6838 and str(e["total"]) == "ZAR 296.33"
    # a day later the open line costs one more day
    assert exposure.exposure(session, today=TODAY + timedelta(days=1), partner_code="frogfoot")["total_minor"] == 9600
    assert exposure.order_exposure(session, service_order_id=orders["on_time"].id, today=TODAY) is None


def test_jeopardy_lists_unconfirmed_delete_orders_past_their_due_date_and_those_due_today(session, orders):
    j = exposure.jeopardy(session, today=TODAY)
    assert (j["late"], j["at_risk"]) == (1, 1)
    assert [(i["id"], i["level"], i["days_late"]) for i in j["items"]] == [(orders["open_frogfoot"].id, "jeopardy", 3), (orders["due_today"].id, "at_risk", 0)]


def test_a_claim_is_proposed_once_for_a_line_the_fno_confirmed_late_and_goes_from_sent_to_credited(session, orders, now, actor):
    assert exposure.propose_claims(session, today=TODAY, now=now, actor=actor) == {"proposed": 1}
    assert exposure.propose_claims(session, today=TODAY, now=now, actor=actor) == {"proposed": 0}
    claims = exposure.list_claims(session)["items"]
    assert len(claims) == 1
    c = claims[0]
    assert (c["service_order_id"], c["days"], c["amount_minor"], c["state"]) == (orders["late_openserve"].id, 10, 14795, "proposed")
    with pytest.raises(TransitionNotAllowed):
        exposure.act_on_claim(session, claim_id=c["id"], action="credit", now=now, actor=actor)
    exposure.act_on_claim(session, claim_id=c["id"], action="send", now=now, actor=actor)
    with pytest.raises(ReasonRequired):
        exposure.act_on_claim(session, claim_id=c["id"], action="reject", now=now, actor=actor)
    exposure.act_on_claim(session, claim_id=c["id"], action="accept", now=now, actor=actor)
    with pytest.raises(exposure.UnableToActOnClaim) as exc:
        exposure.act_on_claim(session, claim_id=c["id"], action="credit", credited_minor=20000, now=now, actor=actor)
    assert exc.value.field == "credited_minor"
    done = exposure.act_on_claim(session, claim_id=c["id"], action="credit", credited_minor=14795, now=now, actor=actor)
    assert done["state"] == "credited" and done["credited_minor"] == 14795
    header, rows = exposure.claims_export_rows(session)
    assert rows[0][0] == c["number"] and rows[0][5] == "credited"
    assert session.execute(select(func.count()).select_from(exposure.FnoClaim)).scalar_one() == 1
