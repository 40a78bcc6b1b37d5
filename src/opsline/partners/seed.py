"""Reference partners every installation starts with (inserted once; operators edit them afterwards in /admin)."""

from __future__ import annotations

import secrets
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from opsline.partners.models import Partner

_FNO = dict(kind="fno", adapter="simulator", simulator_mode="demo", currency="ZAR", holiday_country="ZA", fault_restore_hours=24, late_deactivation_period="month")

PARTNERS: list[dict[str, Any]] = [
    dict(_FNO, code="openserve", name="Openserve", contact_email="wholesale.orders@openserve.example", contact_phone="+27 10 210 0000",
         escalation_name="Openserve wholesale service desk", escalation_email="escalations@openserve.example", escalation_phone="+27 10 210 0999",
         activation_sla_days=7, deactivation_sla_days=3, fault_restore_hours=24, monthly_line_cost_minor=45_000, late_deactivation_cost_minor=45_000,
         notice_cutoff_day=15, notice_days=0, notice_rule="Cancellations received by the 15th take effect at month end; later, at the end of the next month.",
         simulator_reject_percent=5, simulator_progress_seconds=8, simulator_complete_seconds=25),
    dict(_FNO, code="vumatel", name="Vumatel", contact_email="isp.support@vumatel.example", contact_phone="+27 87 330 0000",
         escalation_name="Vumatel ISP escalations", escalation_email="isp.escalations@vumatel.example", escalation_phone="+27 87 330 0911",
         activation_sla_days=5, deactivation_sla_days=2, fault_restore_hours=12, monthly_line_cost_minor=52_000, late_deactivation_cost_minor=52_000,
         notice_cutoff_day=None, notice_days=30, notice_rule="Calendar month's notice: the line ends at the month end after 30 days' notice.",
         simulator_reject_percent=5, simulator_progress_seconds=6, simulator_complete_seconds=20),
    dict(_FNO, code="frogfoot", name="Frogfoot Networks", contact_email="orders@frogfoot.example", contact_phone="+27 21 100 2000",
         escalation_name="Frogfoot NOC", escalation_email="noc@frogfoot.example", escalation_phone="+27 21 100 2999",
         activation_sla_days=5, deactivation_sla_days=3, fault_restore_hours=24, monthly_line_cost_minor=48_000, late_deactivation_cost_minor=1_600,
         late_deactivation_period="day", notice_cutoff_day=None, notice_days=30, notice_rule="30 days' notice from the date the cancellation is received.",
         simulator_reject_percent=4, simulator_progress_seconds=10, simulator_complete_seconds=30),
    dict(_FNO, code="metrofibre", name="MetroFibre Networx", contact_email="wholesale@metrofibre.example", contact_phone="+27 10 492 0000",
         escalation_name="MetroFibre key accounts", escalation_email="keyaccounts@metrofibre.example", escalation_phone="+27 10 492 0900",
         activation_sla_days=10, deactivation_sla_days=5, fault_restore_hours=24, monthly_line_cost_minor=49_500, late_deactivation_cost_minor=49_500,
         notice_cutoff_day=25, notice_days=0, notice_rule="Notice by the 25th for month-end termination.",
         simulator_reject_percent=6, simulator_progress_seconds=10, simulator_complete_seconds=35),
    dict(_FNO, code="octotel", name="Octotel", contact_email="isp@octotel.example", contact_phone="+27 21 003 0000",
         escalation_name="Octotel service management", escalation_email="service@octotel.example", escalation_phone="+27 21 003 0990",
         activation_sla_days=5, deactivation_sla_days=3, fault_restore_hours=12, monthly_line_cost_minor=51_000, late_deactivation_cost_minor=51_000,
         notice_cutoff_day=20, notice_days=0, notice_rule="Notice by the 20th for month-end termination.",
         simulator_reject_percent=5, simulator_progress_seconds=8, simulator_complete_seconds=25),
    dict(code="courierguy", name="The Courier Guy", kind="courier", adapter="simulator", currency="ZAR", holiday_country="ZA", contact_email="collections@courierguy.example",
         contact_phone="+27 10 222 2300", escalation_name="Key account manager", escalation_email="kam@courierguy.example",
         activation_sla_days=3, deactivation_sla_days=3, fault_restore_hours=48, collection_fee_minor=9_500),
    dict(code="dsv", name="DSV Courier", kind="courier", adapter="simulator", currency="ZAR", holiday_country="ZA", contact_email="za.returns@dsv.example",
         contact_phone="+27 11 570 0000", escalation_name="Returns desk", escalation_email="returns.escalations@dsv.example",
         activation_sla_days=5, deactivation_sla_days=5, fault_restore_hours=72, collection_fee_minor=12_000),
    dict(code="collectco", name="CollectCo Debt Recovery", kind="debt_collector", adapter="simulator", currency="ZAR", holiday_country="ZA", contact_email="handover@collectco.example",
         contact_phone="+27 12 001 4000", escalation_name="Client services", escalation_email="clients@collectco.example",
         commission_percent=Decimal("15.00")),
    dict(code="mbd", name="MBD Credit Solutions", kind="debt_collector", adapter="simulator", currency="ZAR", holiday_country="ZA", contact_email="newbusiness@mbd.example",
         contact_phone="+27 21 000 8000", escalation_name="Account manager", escalation_email="am@mbd.example",
         commission_percent=Decimal("12.50")),
]


def seed_partners(session: Session, *, now: datetime) -> None:
    """Insert the reference partners that are missing; never overwrite an operator's edits."""
    existing = {p.code for p in session.query(Partner.code)}
    for data in PARTNERS:
        if data["code"] not in existing:
            session.add(Partner(**data, webhook_secret=secrets.token_urlsafe(24), active=True))
