"""Case operations: open, the lifecycle (declared in `cases.models.CASE`), queues and assignment, priority, notes,
messages, FCR, retention offers and sales leads. Every change writes a `case_event` (replayed by the SLA engine) and
an audit event, and publishes `case.changed` once per call (the SLA area subscribes; cases never calls it).

Rooms: common (errors, loading, history), routing (priority, queues, assignment), lifecycle (open, actions,
hand-offs, priority, the combined update), notes (notes, links, attachments), sales (retention, leads),
batch (auto-close, FCR, the SLA engine's reports back), queues (queue reference data)."""

from opsline.cases.service.batch import autoclose, decide_fcr, record_sla, record_sla_policy, record_sla_recalculation, value_tier_ranks
from opsline.cases.service.common import (
    CHANGED, CaseNotFound, CaseNotOpen, NoteNotAllowed, RetentionNotAllowed, UnableToChangeCase, UnableToOpenCase, get_case,
    get_case_by_reference, get_queue, setting, setting_int,
)
from opsline.cases.service.lifecycle import (
    TMF_STATUS_TO_ACTION, action_for_status, allowed_actions, assign, change_priority, open_case, transition, update_case,
)
from opsline.cases.service.notes import add_attachment, add_link, add_note
from opsline.cases.service.queues import add_member, create_queue
from opsline.cases.service.routing import compute_priority, escalation_queue, pick_assignee
from opsline.cases.service.sales import create_lead, lead_transition, record_retention, set_lead_state

__all__ = [
    "CHANGED", "CaseNotFound", "CaseNotOpen", "NoteNotAllowed", "RetentionNotAllowed", "TMF_STATUS_TO_ACTION", "UnableToChangeCase",
    "UnableToOpenCase", "action_for_status", "add_attachment", "add_link", "add_member", "add_note", "allowed_actions", "assign",
    "autoclose", "change_priority", "compute_priority", "create_lead", "create_queue", "decide_fcr", "escalation_queue", "get_case",
    "get_case_by_reference", "get_queue", "lead_transition", "open_case", "pick_assignee", "record_retention", "record_sla",
    "record_sla_policy", "record_sla_recalculation", "set_lead_state", "setting", "setting_int", "transition", "update_case", "value_tier_ranks",
]
