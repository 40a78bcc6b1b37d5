"""SLA engine operations. Rooms: common (errors, constants), loading (what is read), engine (policy, calendar, replay,
measure), writing (clocks, breaches, warnings, policy; summaries to cases), reading (clocks now, breach risk,
summaries), recalc (one case on `case.changed`, batches, jobs), scan (periodic advance, warnings, escalations),
breaches (causes, report, dashboard), admin (policies and calendars)."""

from opsline.sla.service.admin import (
    calendar_view, create_calendar, create_policy, get_calendar, list_calendars, list_policies, pin_policy, stored_clocks, update_calendar, update_policy,
)
from opsline.sla.service.breaches import breach_causes, breach_report, dashboard, list_breaches, notifications, set_breach_cause
from opsline.sla.service.common import OPEN_CASE_STATES, BreachNotFound, UnableToSetBreachCause
from opsline.sla.service.engine import choose_calendar, compute
from opsline.sla.service.reading import breach_risk, case_clocks, case_summaries, compliance
from opsline.sla.service.recalc import enqueue_recalculation, on_case_changed, recalculate, recompute_case, run_recalculate_job
from opsline.sla.service.scan import refresh_summaries, run_scan_job, scan, schedule_scan

__all__ = [
    "OPEN_CASE_STATES", "BreachNotFound", "UnableToSetBreachCause", "breach_causes", "breach_report", "breach_risk", "calendar_view", "case_clocks",
    "case_summaries", "choose_calendar", "compliance", "compute", "create_calendar", "create_policy", "dashboard", "enqueue_recalculation", "get_calendar",
    "list_breaches", "list_calendars", "list_policies", "notifications", "on_case_changed", "pin_policy", "recalculate", "recompute_case",
    "refresh_summaries", "run_recalculate_job", "run_scan_job", "scan", "schedule_scan", "set_breach_cause", "stored_clocks", "update_calendar",
    "update_policy",
]
