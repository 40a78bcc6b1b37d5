"""Batch work on cases (auto-close, first-contact resolution) and the SLA engine's set-based reports back to
cases (its summary per case and the policy it chose), so that the SLA area never writes cases' tables itself."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, select, text, update
from sqlalchemy.orm import Session

from opsline.cases.models import SLA_STATES, CaseEvent, CaseState, SupportCase
from opsline.cases.service import common as cm
from opsline.cases.service.lifecycle import transition
from opsline.core.errors import InvalidInput
from opsline.core.events import Actor
from opsline.customers.models import ValueTier
from opsline.db.bulk import copy_rows_binary

# PostgreSQL column types of the staging table each summary field goes through
_PG_TYPES = {"sla_state": "varchar(10)", "sla_due_at": "timestamptz", "sla_breached_at": "timestamptz", "sla_risk": "double precision",
             "sla_as_of": "timestamptz", "sla_policy_id": "bigint"}


def _update_by_id(session: Session, cols: list[str], rows: list[dict[str, Any]]) -> None:
    """Set `cols` of support_case from `rows` ({"id", col...}), set-based. PostgreSQL: COPY into a staging table and
    one UPDATE ... FROM it; SQLite (in-process, no round trips): executemany by id."""
    t = SupportCase.__table__
    if session.get_bind().dialect.name != "postgresql":
        session.execute(t.update().where(t.c.id == bindparam("b_id")).values({c: bindparam(f"b_{c}") for c in cols}),
                        [{"b_id": r["id"]} | {f"b_{c}": r[c] for c in cols} for r in rows])
        return
    conn = session.connection()
    stage = "stage_case_" + "_".join(c.removeprefix("sla_") for c in cols)
    conn.execute(text(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (id bigint, {', '.join(f'{c} {_PG_TYPES[c]}' for c in cols)}) ON COMMIT DROP"))
    conn.execute(text(f"TRUNCATE {stage}"))
    copy_rows_binary(conn, stage, ["id", *cols], ([r["id"], *[r[c] for c in cols]] for r in rows))
    conn.execute(text(f"UPDATE support_case AS c SET {', '.join(f'{col} = s.{col}' for col in cols)} FROM {stage} AS s WHERE c.id = s.id"))


def autoclose(session: Session, *, now: datetime, actor: Actor | None = None, limit: int = 5000) -> int:
    """Close resolved cases older than the auto-close setting (end to end). Returns how many closed."""
    actor = actor or Actor.system("cases.autoclose")
    days = cm.setting_int(session, "autoclose_days", 7)
    ids = list(session.execute(select(SupportCase.id).where(SupportCase.state == CaseState.RESOLVED.value, SupportCase.resolved_at <= now - timedelta(days=days))
                               .order_by(SupportCase.id).limit(limit)).scalars())
    for cid in ids:  # each close writes its history and audit and tells the SLA engine; bounded per job run
        transition(session, case_id=cid, action="close", now=now, actor=actor, reason=f"auto-closed {days} days after resolution")
    return len(ids)


def decide_fcr(session: Session, *, now: datetime) -> int:
    """Decide first-contact resolution (set-based) for closed cases whose reopen window has passed:
    FCR = resolved in the opening interaction and never reopened. Returns how many were decided."""
    days = cm.setting_int(session, "fcr_reopen_days", 7)
    res = session.execute(
        update(SupportCase)
        .where(SupportCase.state == CaseState.CLOSED.value, SupportCase.first_contact_resolution.is_(None), SupportCase.resolved_at <= now - timedelta(days=days))
        .values(first_contact_resolution=and_(SupportCase.fcr_candidate.is_(True), SupportCase.reopen_count == 0))
        .execution_options(synchronize_session=False)
    )
    return res.rowcount or 0


def value_tier_ranks(session: Session) -> dict[str, int]:
    return {c: r for c, r in session.execute(select(ValueTier.code, ValueTier.rank)).all()}


def record_sla(session: Session, *, rows: Sequence[dict[str, Any]], now: datetime) -> int:
    """Store the SLA engine's summary of each case (set-based; does not touch the case's version or publish):
    each row {"id", "sla_state" ('ok'|'at_risk'|'breached'|None), "sla_due_at", "sla_breached_at", "sla_risk"}.
    Raises InvalidInput for an unknown state or a risk outside 0..1. Returns rows written."""
    if not rows:
        return 0
    params = _summary_params(rows, now)
    _update_by_id(session, ["sla_state", "sla_due_at", "sla_breached_at", "sla_risk", "sla_as_of"], params)
    return len(params)


def record_sla_policy(session: Session, *, changes: Sequence[dict[str, Any]], now: datetime, actor: Actor, reason: str | None) -> int:
    """The SLA engine chose another policy for these cases: set `sla_policy_id` and write a 'policy' history row each
    (set-based). Each change {"id", "account_id", "from", "to", "name"}. Returns rows changed."""
    if not changes:
        return 0
    _update_by_id(session, ["sla_policy_id"], [{"id": ch["id"], "sla_policy_id": ch["to"]} for ch in changes])
    _policy_history(session, changes, now=now, actor=actor, reason=reason)
    return len(changes)


def record_sla_recalculation(session: Session, *, rows: Sequence[dict[str, Any]], policy_changes: Sequence[dict[str, Any]], now: datetime, actor: Actor,
                             reason: str | None) -> int:
    """`record_sla` and `record_sla_policy` in one pass, for the SLA engine's recalculation: each summary row also
    carries "sla_policy_id" (the policy that now applies), so every case row is rewritten once (one UPDATE, not
    two), and each of `policy_changes` (as in `record_sla_policy`) gets its 'policy' history row.
    Raises InvalidInput as `record_sla` does, or for a change whose case has no row or another policy. Returns rows written."""
    if not rows:
        if policy_changes:
            raise InvalidInput("a policy change needs its case's summary row", field="sla_policy_id")
        return 0
    params = _summary_params(rows, now, with_policy=True)
    policy_of = {p["id"]: p["sla_policy_id"] for p in params}
    for ch in policy_changes:
        if int(ch["id"]) not in policy_of or policy_of[int(ch["id"])] != ch["to"]:
            raise InvalidInput(f"case {ch['id']}: policy change without a matching summary row", field="sla_policy_id")
    _update_by_id(session, ["sla_state", "sla_due_at", "sla_breached_at", "sla_risk", "sla_as_of", "sla_policy_id"], params)
    if policy_changes:
        _policy_history(session, policy_changes, now=now, actor=actor, reason=reason)
    return len(params)


def _summary_params(rows: Sequence[dict[str, Any]], now: datetime, *, with_policy: bool = False) -> list[dict[str, Any]]:
    params = []
    for r in rows:
        state, risk = r.get("sla_state"), r.get("sla_risk")
        if state is not None and state not in SLA_STATES:
            raise InvalidInput(f"unknown SLA state '{state}'", field="sla_state")
        if risk is not None and not 0.0 <= float(risk) <= 1.0:
            raise InvalidInput(f"breach risk must be between 0 and 1, got {risk}", field="sla_risk")
        p = {"id": int(r["id"]), "sla_state": state, "sla_due_at": r.get("sla_due_at"), "sla_breached_at": r.get("sla_breached_at"),
             "sla_risk": None if risk is None else float(risk), "sla_as_of": now}
        if with_policy:
            p["sla_policy_id"] = r["sla_policy_id"]
        params.append(p)
    return params


def _policy_history(session: Session, changes: Sequence[dict[str, Any]], *, now: datetime, actor: Actor, reason: str | None) -> None:
    rows = [
        {"case_id": ch["id"], "account_id": ch["account_id"], "at": now, "kind": "policy", "from_value": None if ch["from"] is None else str(ch["from"]),
         "to_value": None if ch["to"] is None else str(ch["to"]), "reason": reason or f"SLA policy: {ch['name'] or 'none'}", "actor": actor.name,
         "data": {"policy_name": ch["name"]}} for ch in changes]
    cols = list(rows[0])
    copy_rows_binary(session.connection(), CaseEvent.__table__, cols, ([r[c] for c in cols] for r in rows))
