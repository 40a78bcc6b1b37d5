"""What the debtors desk shows: today's work (proposals for a person, accounts whose next step is due, holds ending),
the last runs, and an account's dunning history. One query per section."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsline.config import DEFAULT_CURRENCY
from opsline.customers.models import Account
from opsline.debtors.actions import LABELS
from opsline.debtors.models import ActionState, DunningAccount, DunningAction, DunningHold, DunningRun, DunningStep, HoldState, StepAction


def summary(session: Session, *, today: date) -> dict[str, Any]:
    proposals = session.execute(select(func.count(), func.coalesce(func.sum(DunningAction.overdue_minor), 0), func.max(DunningAction.days_overdue))
                                .where(DunningAction.state == ActionState.PROPOSED)).one()
    due = session.execute(select(func.count()).select_from(DunningAccount).where(DunningAccount.next_step_from <= today)).scalar_one()
    ending = session.execute(select(func.count(), func.min(DunningHold.valid_to)).where(
        DunningHold.state == HoldState.ACTIVE, DunningHold.valid_to > today, DunningHold.valid_to <= today + timedelta(days=7))).one()
    failed = session.execute(select(func.count()).select_from(DunningAction).where(DunningAction.state == ActionState.FAILED)).scalar_one()
    last = session.execute(select(DunningRun).order_by(DunningRun.run_date.desc()).limit(1)).scalar_one_or_none()
    return {"proposals": int(proposals[0]), "proposals_minor": int(proposals[1]), "proposals_oldest_days": proposals[2],
            "due_for_step": int(due), "holds_ending": int(ending[0]), "first_hold_end": ending[1], "failed": int(failed),
            "last_run": None if last is None else {"id": last.id, "run_date": last.run_date, "actions": last.actions_count, "state": last.state},
            "currency": last.currency if last else DEFAULT_CURRENCY}


def proposals(session: Session, *, limit: int = 100) -> list[dict[str, Any]]:
    """Actions waiting for a person, biggest and oldest first."""
    rows = session.execute(
        select(DunningAction, DunningStep.name, Account.account_number, Account.name, Account.value_tier_code)
        .join(DunningStep, DunningStep.id == DunningAction.step_id).join(Account, Account.id == DunningAction.account_id)
        .where(DunningAction.state == ActionState.PROPOSED)
        .order_by(DunningAction.overdue_minor.desc(), DunningAction.days_overdue.desc(), DunningAction.id).limit(limit)).all()
    return [{"id": a.id, "account_id": a.account_id, "account_number": n, "account_name": nm, "tier": tier, "step": step, "action": a.action,
             "label": LABELS.get(StepAction(a.action), a.action), "days_overdue": a.days_overdue, "overdue_minor": a.overdue_minor,
             "currency": a.currency, "run_date": a.run_date} for a, step, n, nm, tier in rows]


def run_actions(session: Session, *, run_id: int, limit: int = 200) -> list[dict[str, Any]]:
    rows = session.execute(
        select(DunningAction, DunningStep.name, Account.account_number, Account.name)
        .join(DunningStep, DunningStep.id == DunningAction.step_id).join(Account, Account.id == DunningAction.account_id)
        .where(DunningAction.run_id == run_id).order_by(DunningAction.overdue_minor.desc(), DunningAction.id).limit(limit)).all()
    return [{"id": a.id, "account_id": a.account_id, "account_number": n, "account_name": nm, "step": step, "action": a.action,
             "label": LABELS.get(StepAction(a.action), a.action), "state": a.state, "days_overdue": a.days_overdue,
             "overdue_minor": a.overdue_minor, "currency": a.currency, "message_id": a.message_id, "note": a.note} for a, step, n, nm in rows]
