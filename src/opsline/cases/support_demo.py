"""Demo step for the support additions (issue 17): leads in every state from the demo's cases (INSERT ... SELECT), and a
renewals campaign to customers whose contracts end next month, built, launched and partly worked through the services."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, text

from opsline.cases import campaigns, incidents, service
from opsline.cases.schemas import CaseIn
from opsline.cases.models import SupportCase
from opsline.core.events import Actor
from opsline.db.session import make_sessionmaker

INTERESTS = ("500 Mbps fibre upgrade", "Second mobile SIM", "LTE backup line", "Business fibre 1 Gbps", "Mesh Wi-Fi add-on")
LOST_REASONS = ("Chose a competitor's price", "No coverage at the address", "Not the right time")


def _pick(col: str, values: tuple[str, ...]) -> str:
    """A SQL CASE choosing one of `values` by `col` modulo their count (portable: SQLite and PostgreSQL)."""
    whens = " ".join(f"WHEN {k} THEN '{v.replace(chr(39), chr(39) * 2)}'" for k, v in enumerate(values))
    return f"CASE ({col} % {len(values)}) {whens} END"


def load(ctx: Any) -> None:
    """Leads on every ninth case (states by id: new, qualified, handed over, won with the account's latest order, lost with
    a reason), consent recorded; the demo's older leads get their consent too; then the campaign."""
    if ctx.accounts == 0:
        return
    with ctx.engine.begin() as conn:
        conn.execute(text("UPDATE sales_lead SET consent_marketing = :t, consent_channel = 'call', consent_at = created_at WHERE consent_marketing = :f"),
                     {"t": True, "f": False})
        # every ninth case brings a lead; a small demo takes more so that every state shows
        n_cases = int(conn.execute(text("SELECT COUNT(*) FROM support_case WHERE account_id IS NOT NULL")).scalar_one())
        every = max(1, min(9, n_cases // 25))
        state = "CASE (c.id % 5) WHEN 0 THEN 'new' WHEN 1 THEN 'qualified' WHEN 2 THEN 'handed_over' WHEN 3 THEN 'won' ELSE 'lost' END"
        conn.execute(text(f"""
            INSERT INTO sales_lead (case_id, account_id, product_interest, notes, state, created_by, created_at, updated_at, source, contact_name,
                                    contact_email, value_minor, currency, consent_marketing, consent_channel, consent_at, team_code,
                                    handed_to_kind, handed_to, handed_at, won_order_id, lost_reason, closed_at)
            SELECT c.id, c.account_id, {_pick('c.id', INTERESTS)}, NULL, {state}, COALESCE(c.opened_by, 'support'), c.opened_at, c.opened_at, 'case',
                   a.name, a.email, 19900 + (c.id % 8) * 10000, a.currency, :t, 'call', c.opened_at, q.code,
                   CASE WHEN c.id % 5 IN (2, 3, 4) THEN 'team' END, CASE WHEN c.id % 5 IN (2, 3, 4) THEN 'retentions' END,
                   CASE WHEN c.id % 5 IN (2, 3, 4) THEN c.opened_at END,
                   CASE WHEN c.id % 5 = 3 THEN (SELECT MAX(o.id) FROM product_order o WHERE o.account_id = c.account_id) END,
                   CASE WHEN c.id % 5 = 4 THEN {_pick('c.id', LOST_REASONS)} END,
                   CASE WHEN c.id % 5 IN (3, 4) THEN c.opened_at END
            FROM support_case c JOIN account a ON a.id = c.account_id JOIN queue q ON q.id = c.queue_id
            WHERE c.id % :every = 0 AND c.account_id IS NOT NULL
        """), {"t": True, "every": every})
        # a won lead names the order it became: where the account has no order the lead stays handed over
        conn.execute(text("UPDATE sales_lead SET state = 'handed_over', closed_at = NULL WHERE state = 'won' AND won_order_id IS NULL AND source = 'case' "
                          "AND handed_to IS NOT NULL"))
        # leads from contacts that sales won: every second order of the demo came from one (the lead names it)
        conn.execute(text(f"""
            INSERT INTO sales_lead (case_id, account_id, product_interest, notes, state, created_by, created_at, updated_at, source, contact_name,
                                    contact_email, value_minor, currency, consent_marketing, consent_channel, consent_at, team_code,
                                    handed_to_kind, handed_to, handed_at, won_order_id, closed_at)
            SELECT NULL, o.account_id, {_pick('o.id', INTERESTS)}, NULL, 'won', 'support2', o.created_at, o.created_at, 'contact', a.name, a.email,
                   29900 + (o.id % 5) * 10000, a.currency, :t, 'call', o.created_at, 'retentions', 'team', 'retentions', o.created_at, o.id, o.created_at
            FROM product_order o JOIN account a ON a.id = o.account_id
            WHERE o.id % 2 = 0
        """), {"t": True})
        # case outcomes for the trends: sentiment judged on a third of the finished cases; reasons on the demo's retention offers
        conn.execute(text("UPDATE support_case SET sentiment_recovered = CASE WHEN id % 4 = 0 THEN :f ELSE :t END "
                          "WHERE state IN ('resolved', 'closed') AND id % 3 = 0"), {"t": True, "f": False})
        conn.execute(text(f"UPDATE retention_offer SET reason_code = {_pick('id', ('price', 'competitor', 'moving', 'service_quality'))} WHERE reason_code IS NULL"))
        ctx.counts["leads"] = int(conn.execute(text("SELECT COUNT(*) FROM sales_lead")).scalar_one())
    _campaign(ctx)
    _incident(ctx)


def _incident(ctx: Any) -> None:
    """A brand incident raised from the first brand-risk case, a second case linked, an update posted."""
    factory = make_sessionmaker(ctx.engine)
    agent = Actor(name="support", roles=frozenset({"second_line_agent"}))
    with factory.begin() as s:
        first = s.execute(select(SupportCase.id).where(SupportCase.brand_risk.is_(True)).order_by(SupportCase.id).limit(1)).scalar_one_or_none()
        if first is None:  # a small demo may have none: a complaint comes in on social media
            acc = int(ctx.account_ids.min()) if len(ctx.account_ids) else None
            first = service.open_case(s, data=CaseIn(account_id=acc, category_code="complaint", channel="web", brand_risk=True,
                                                     subject="Public post: technician missed the installation twice"),
                                      now=ctx.now - timedelta(hours=7), actor=agent).id
        inc = incidents.raise_incident(s, case_id=first, title="Customer's post about a missed installation is trending", owner="service",
                                       stakeholders="pr@opsline.example, brand@opsline.example", severity=1, now=ctx.now - timedelta(hours=6), actor=agent)
        second = s.execute(select(SupportCase.reference).where(SupportCase.category_code == "complaint", SupportCase.id != first)
                           .order_by(SupportCase.id).limit(1)).scalar_one_or_none()
        if second is not None:
            incidents.link_case(s, incident_id=inc.id, case_reference=second, now=ctx.now - timedelta(hours=5), actor=agent)
        incidents.add_update(s, incident_id=inc.id, body="Called the customer, apologised and booked the installation for tomorrow 08:00.",
                             now=ctx.now - timedelta(hours=4), actor=agent)
        ctx.counts["brand_incidents"] = 1


def _campaign(ctx: Any) -> None:
    now = ctx.now
    first = (now.date().replace(day=1) + timedelta(days=32)).replace(day=1)
    after = (first + timedelta(days=32)).replace(day=1)
    manager = Actor(name="service", roles=frozenset({"service_manager"}))
    agent = Actor(name="support", roles=frozenset({"second_line_agent"}))
    factory = make_sessionmaker(ctx.engine)
    with factory.begin() as s:
        c = campaigns.create_campaign(s, data=campaigns.CampaignIn(
            name=f"Contracts ending {first:%B %Y}", filter_kind="contract_ending", ends_from=first, ends_to=after, channel="call",
            script="Hello, this is Opsline. Your contract ends next month and we would like to keep you: may I tell you about two offers?",
            offers=["12 more months at 15% off", "Free speed upgrade for 24 months"]), now=now - timedelta(days=3), actor=manager)
        try:
            campaigns.build_targets(s, campaign_id=c.id, now=now - timedelta(days=3), actor=manager)
        except campaigns.UnableToBuildCampaign:
            ctx.counts["campaign_targets"] = 0
            return
        campaigns.launch(s, campaign_id=c.id, now=now - timedelta(days=2), actor=manager)
        pending = s.execute(select(campaigns.CampaignTarget.id).where(campaigns.CampaignTarget.campaign_id == c.id,
                                                                      campaigns.CampaignTarget.outcome == "pending")
                            .order_by(campaigns.CampaignTarget.id).limit(12)).scalars().all()
        plan = [("accepted", 0, "Fibre 500 upgrade"), ("declined", None, None), ("no_answer", None, None), ("reached", None, None),
                ("accepted", 1, None), ("declined", None, None), ("accepted", 0, None), ("no_answer", None, None)]
        for k, tid in enumerate(pending[: max(1, (len(pending) * 2) // 3)]):
            outcome, offer, interest = plan[k % len(plan)]
            campaigns.record_outcome(s, target_id=tid, outcome=outcome, offer=c.offers[offer] if offer is not None else None, lead_interest=interest,
                                     now=now - timedelta(days=1, hours=k), actor=agent)
        ctx.counts["campaign_targets"] = c.target_count
