"""The billing desk's home cards: current bill run, drafts waiting, unexplained variances, open claims by age, invoiced by month."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select

from opsline.billing import home
from opsline.billing.models import InvoiceLine
from opsline.billing.invoicing import service
from opsline.billing.invoicing.samples import make_account, make_finalised_invoice
from opsline.core.events import Actor
from opsline.core.money import Money

from tests.integration.test_billing_runs import make_offering, make_product, run_draft

ANALYST = Actor(name="bilal", roles=frozenset({"billing_analyst"}))
TZ = ZoneInfo("Africa/Johannesburg")


def test_the_billing_desk_shows_its_waiting_work_with_links_and_a_monthly_chart(factory, now):
    with factory() as s:
        empty = {c.title: c for c in home.cards(s, now=now, actor=ANALYST, tz=TZ)}
    assert empty["Current bill run"].count == "none" and empty["Bill runs awaiting review or approval"].count == 0
    with factory.begin() as s:
        acc = make_account(s, now=now)
        for month, amount in ((date(2026, 9, 1), 50000), (date(2026, 10, 1), 60000)):
            make_finalised_invoice(s, account_id=acc, now=datetime.combine(month, datetime.min.time(), tzinfo=timezone.utc),
                                   period_start=month, period_end=month + timedelta(days=30), lines=[{"description": "Fibre", "amount_minor": amount}])
        inv = make_finalised_invoice(s, account_id=acc, now=now - timedelta(days=30), period_start=date(2026, 11, 1), period_end=date(2026, 12, 1),
                                     lines=[{"description": "Fibre", "amount_minor": 70000}])
        line = s.execute(select(InvoiceLine.id).where(InvoiceLine.invoice_id == inv)).scalar_one()
        service.raise_claim(s, invoice_id=inv, lines=[(line, Money.of("100", "ZAR"))], reason="Slow line", channel="phone", now=now - timedelta(days=30),
                            actor=ANALYST)
        make_product(s, now, account_id=acc, offering_id=make_offering(s, monthly_minor=70000), start=date(2026, 1, 1))
    rid = run_draft(factory, now)
    with factory() as s:
        cards = {c.title: c for c in home.cards(s, now=now, actor=ANALYST, tz=TZ)}
    cur = cards["Current bill run"]
    assert (cur.count, cur.href) == ("draft", f"/billing/runs/{rid}") and "cycle 2026-12-01" in cur.hint
    assert cards["Bill runs awaiting review or approval"].count == 1 and cards["Bill runs awaiting review or approval"].tone == "warn"
    assert cards["Unexplained variances"].href == f"/billing/runs/{rid}#diff"
    claims = cards["Open billing claims"]
    assert (claims.count, claims.tone, claims.href) == (1, "danger", "/billing/claims?open=1") and "1 past their due date" in claims.hint
    chart = cards["Invoiced by month"].chart
    assert chart["type"] == "bar" and chart["data"]["labels"] == ["2026-09", "2026-10", "2026-11"]
    assert chart["data"]["datasets"][0]["data"] == [575.0, 690.0, 805.0]
    assert all(c.desks == ("billing_analyst",) and c.permission == "billing.view" for c in cards.values())
