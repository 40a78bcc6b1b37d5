"""The built-in FNO simulator: behaves like a real wholesale partner, so demos and tests run without one.

It accepts most orders and rejects some by rule (site outside the partner's coverage, or a deterministic ~N% with a
realistic reason), confirms after a delay taken from the partner's row (seconds in demo mode, SLA business days in
realistic mode) by sending TMF641 state-change events through the job table, and can be put into outage mode, in
which delivery and callbacks fail so the jobs retry with backoff and nothing is lost.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from opsline.core import jobs
from opsline.partners.adapters import AdapterResult, AdapterUnavailable
from opsline.partners.dates import add_business_days, local_date, local_morning, next_business_day
from opsline.partners.models import Partner, SimulatorMode
from opsline.partners.tmf641 import state_change_event

SIMULATE_JOB = "partners.simulate"
REJECTION_REASONS = ("address not serviceable", "duplicate order on line", "line id not found at address", "premises not yet connected to the network")


def _bucket(text: str) -> int:
    """A stable 0-99 number from text: the simulator's 'randomness' is seeded by the order reference, so reruns agree."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 100


def partner_ref_for(partner_code: str, external_ref: str) -> str:
    """The id the simulated partner gives an order; the same external reference always gets the same id (idempotent)."""
    return f"{partner_code[:3].upper()}-{hashlib.sha256(f'{partner_code}:{external_ref}'.encode()).hexdigest()[:10].upper()}"


def _characteristic(payload: dict[str, Any], name: str) -> Any:
    for item in payload.get("serviceOrderItem") or []:
        for ch in (item.get("service") or {}).get("serviceCharacteristic") or []:
            if ch.get("name") == name:
                return ch.get("value")
    return None


class SimulatorAdapter:
    """An Adapter whose 'partner' lives in our database. Needs the session so it can schedule its own callbacks."""

    def __init__(self, session: Session, *, partner: Partner, now: datetime, tz: ZoneInfo, coverage: list[str] | None = None) -> None:
        self.session = session
        self.partner = partner
        self.now = now
        self.tz = tz
        self.coverage = coverage  # partner codes that reach the order's site (None: unknown, assume covered)

    def _check_up(self) -> None:
        if self.partner.simulator_outage:
            raise AdapterUnavailable(f"{self.partner.name} API unavailable (simulated outage): HTTP 503 Service Unavailable")

    def submit(self, order_payload: dict[str, Any]) -> AdapterResult:
        self._check_up()
        external_ref = str(order_payload["externalId"])
        action = (order_payload.get("serviceOrderItem") or [{}])[0].get("action", "add")
        ref = partner_ref_for(self.partner.code, external_ref)
        if action == "add" and self.coverage is not None and self.partner.code not in self.coverage:
            return AdapterResult(accepted=False, partner_ref=ref, state="rejected", reason="address not serviceable: site is outside our network footprint",
                                 response={"id": ref, "externalId": external_ref, "state": "rejected"})
        roll = _bucket(f"reject:{external_ref}")
        if roll < self.partner.simulator_reject_percent:
            reason = REJECTION_REASONS[_bucket(f"reason:{external_ref}") % len(REJECTION_REASONS)]
            return AdapterResult(accepted=False, partner_ref=ref, state="rejected", reason=reason, response={"id": ref, "externalId": external_ref, "state": "rejected", "stateChangeReason": reason})
        requested = date.fromisoformat(str(order_payload.get("requestedCompletionDate") or local_date(self.now, self.tz).isoformat())[:10])
        self._schedule(external_ref=external_ref, partner_ref=ref, action=action, requested=requested)
        return AdapterResult(accepted=True, partner_ref=ref, state="acknowledged", response={"id": ref, "externalId": external_ref, "state": "acknowledged"})

    def status(self, partner_ref: str) -> AdapterResult:
        self._check_up()
        return AdapterResult(accepted=True, partner_ref=partner_ref)

    def cancel(self, cancel_payload: dict[str, Any], *, external_ref: str) -> AdapterResult:
        """A TMF641 cancelServiceOrder: accepted (and the order's cancelled state change sent back shortly) while the simulated
        partner has not completed the order; rejected once it has. A repeat gets the same answer (idempotent)."""
        self._check_up()
        ref = str((cancel_payload.get("serviceOrder") or {}).get("id") or partner_ref_for(self.partner.code, external_ref))
        request_id = f"{ref}-CANCEL"
        done = self.session.execute(select(jobs.Job.state).where(jobs.Job.idempotency_key == f"sim:{external_ref}:completed")).scalar_one_or_none()
        if done in (jobs.JobState.DONE.value, jobs.JobState.RUNNING.value):
            reason = "order already completed on the network; request a delete instead"
            return AdapterResult(accepted=False, partner_ref=request_id, state="rejected", reason=reason,
                                 response={"id": request_id, "state": "rejected", "serviceOrder": {"id": ref}, "stateChangeReason": reason})
        # the partner stops its work: its pending callbacks will not come, the cancellation does
        self.session.execute(update(jobs.Job).where(jobs.Job.idempotency_key.in_([f"sim:{external_ref}:inProgress", f"sim:{external_ref}:completed"]),
                                                     jobs.Job.state == jobs.JobState.QUEUED.value)
                             .values(state=jobs.JobState.DONE.value, finished_at=self.now, result={"skipped": "order cancelled by the ISP"}))
        at = self.now + timedelta(seconds=self.partner.simulator_progress_seconds)
        event = state_change_event(partner_ref=ref, external_ref=external_ref, state="cancelled", reason=str(cancel_payload.get("cancellationReason") or "cancelled"),
                                   event_id=f"{ref}:cancelled", at=at)
        jobs.enqueue(self.session, kind=SIMULATE_JOB, payload={"partner_code": self.partner.code, "event": event}, now=self.now, run_at=at,
                     idempotency_key=f"sim:{external_ref}:cancelled", serial_key=f"sim:{external_ref}", max_attempts=12)
        return AdapterResult(accepted=True, partner_ref=request_id, state="acknowledged",
                             response={"id": request_id, "state": "acknowledged", "serviceOrder": {"id": ref}, "@type": "CancelServiceOrder"})

    def _schedule(self, *, external_ref: str, partner_ref: str, action: str, requested: date) -> None:
        """Queue the partner's two callbacks: inProgress, then completed with a confirmed date."""
        p = self.partner
        today = local_date(self.now, self.tz)
        if p.simulator_mode == SimulatorMode.REALISTIC:
            sla = p.deactivation_sla_days if action == "delete" else p.activation_sla_days
            hc = p.holiday_country
            confirmed = max(next_business_day(requested, holiday_country=hc), add_business_days(today, sla, holiday_country=hc))
            progress_at = local_morning(add_business_days(today, 1, holiday_country=hc), 10, self.tz)
            complete_at = max(local_morning(confirmed, 11, self.tz), progress_at + timedelta(minutes=5))
        else:
            hc = p.holiday_country
            confirmed = next_business_day(max(requested, today) if action != "delete" else requested, holiday_country=hc)
            progress_at = self.now + timedelta(seconds=p.simulator_progress_seconds)
            complete_at = self.now + timedelta(seconds=max(p.simulator_complete_seconds, p.simulator_progress_seconds + 1))
        for state, run_at, completion in (("inProgress", progress_at, None), ("completed", complete_at, confirmed)):
            event = state_change_event(partner_ref=partner_ref, external_ref=external_ref, state=state, completion_date=completion,
                                       event_id=f"{partner_ref}:{state}", at=run_at)
            jobs.enqueue(self.session, kind=SIMULATE_JOB, payload={"partner_code": p.code, "event": event}, now=self.now, run_at=run_at,
                         idempotency_key=f"sim:{external_ref}:{state}", serial_key=f"sim:{external_ref}", max_attempts=12)
