"""Make the stored clocks, breaches, warnings and policy choice equal the computed ones (idempotent, set-based), and
give cases its summary of each case through the cases service (the SLA area never writes cases' tables).
A batch is written in one pass, set-based on PostgreSQL: new rows by binary COPY (the ORM's bulk insert split a batch
wherever the None columns of consecutive rows differed: thousands of round trips), changed rows through a staging
table and one UPDATE ... FROM (the ORM's bulk update is a statement per row), clocks compared in the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from opsline.cases import service as cases_service
from opsline.core.events import Actor
from opsline.db.bulk import copy_rows_binary
from opsline.sla.clocks import Clock
from opsline.sla.models import SlaBreach, SlaCase, SlaClock, SlaWarning
from opsline.sla.service.common import id_filters, insert_rows, update_rows
from opsline.sla.service.engine import Plan
from opsline.sla.service.loading import CaseRow
from opsline.sla.service.reading import summaries_from_clocks

Key = tuple[int, str, str]
_CLOCK_COLS = ("id", "case_id", "metric", "clock_key", "due_at", "elapsed_seconds", "state", "paused_seconds", "stopped_at", "policy_id", "calendar_code",
               "target_seconds", "queue_id", "started_at", "breached_at", "partner_code", "paused", "account_id")


def _wanted(chunk: list[int], cases: dict[int, CaseRow], plans: dict[int, Plan], clocks: dict[int, list[Clock]]) -> dict[Key, dict[str, Any]]:
    wanted: dict[Key, dict[str, Any]] = {}
    for cid in chunk:
        plan = plans.get(cid)
        for c in clocks.get(cid, []):
            wanted[(cid, c.metric, c.key)] = {
                "case_id": cid, "account_id": cases[cid].account_id, "metric": c.metric, "clock_key": c.key,
                "queue_id": int(c.queue) if c.queue is not None else None, "partner_code": c.partner,
                "policy_id": plan.policy.id if plan and plan.policy else None, "calendar_code": plan.calendar_key[0] if plan else None,
                "started_at": c.started_at, "due_at": c.due_at, "stopped_at": c.stopped_at, "breached_at": c.breached_at,
                "elapsed_seconds": c.elapsed_seconds, "target_seconds": c.target_seconds, "paused_seconds": c.paused_seconds,
                "state": c.state, "paused": c.paused,
            }
    return wanted


def _write_clocks(session: Session, chunk: list[int], wanted: dict[Key, dict[str, Any]], now: datetime) -> None:
    if session.get_bind().dialect.name == "postgresql":
        _write_clocks_staged(session, chunk, wanted, now)
        return
    existing = {(r.case_id, r.metric, r.clock_key): r for cond in id_filters(session, SlaClock.case_id, chunk) for r in session.execute(
        select(*[getattr(SlaClock, c) for c in _CLOCK_COLS]).where(cond))}
    inserts, updates = [], []
    for key, row in wanted.items():
        old = existing.get(key)
        if old is None:
            inserts.append(row | {"computed_at": now})
        elif any(getattr(old, k) != v for k, v in row.items()):
            updates.append(row | {"id": old.id, "computed_at": now})
    gone = [old.id for key, old in existing.items() if key not in wanted]
    if gone:
        for cond in id_filters(session, SlaClock.id, gone):
            session.execute(delete(SlaClock).where(cond))
    if inserts:
        insert_rows(session, SlaClock.__table__, inserts)
    if updates:
        update_rows(session, SlaClock, updates)


def _write_clocks_staged(session: Session, chunk: list[int], wanted: dict[Key, dict[str, Any]], now: datetime) -> None:
    """PostgreSQL: the same delete / update-if-different / insert as above, compared in the database. Cases with no
    stored clock yet (a first calculation) get theirs by COPY; otherwise every wanted clock is copied into a staging
    table and three statements apply the difference (reading 18 columns of every stored clock back into Python to
    compare them cost more than computing the clocks)."""
    conn = session.connection()
    ids = [int(x) for x in chunk]
    rows = [row | {"computed_at": now} for row in wanted.values()]
    if not conn.execute(select(SlaClock.id).where(*id_filters(session, SlaClock.case_id, ids)).limit(1)).first():
        insert_rows(session, SlaClock.__table__, rows)
        return
    compared = [c for c in _CLOCK_COLS if c != "id"]
    cols = [*compared, "computed_at"]
    names = ", ".join(cols)
    conn.execute(text(f"CREATE TEMP TABLE stage_sla_clock_wanted ON COMMIT DROP AS SELECT {names} FROM sla_clock WITH NO DATA"))
    if rows:
        copy_rows_binary(conn, "stage_sla_clock_wanted", cols, ([r[c] for c in cols] for r in rows))
    same_key = "s.case_id = t.case_id AND s.metric = t.metric AND s.clock_key = t.clock_key"
    ids_param = {"ids": ids}
    conn.execute(text(f"DELETE FROM sla_clock AS t WHERE t.case_id = ANY(CAST(:ids AS bigint[])) AND NOT EXISTS (SELECT 1 FROM stage_sla_clock_wanted AS s WHERE {same_key})"),
                 ids_param)
    conn.execute(text(f"UPDATE sla_clock AS t SET {', '.join(f'{c} = s.{c}' for c in cols)} FROM stage_sla_clock_wanted AS s WHERE {same_key} "
                      f"AND ({', '.join(f't.{c}' for c in compared)}) IS DISTINCT FROM ({', '.join(f's.{c}' for c in compared)})"))
    conn.execute(text(f"INSERT INTO sla_clock ({names}) SELECT {names} FROM stage_sla_clock_wanted AS s "
                      f"WHERE NOT EXISTS (SELECT 1 FROM sla_clock AS t WHERE {same_key})"))
    conn.execute(text("DROP TABLE stage_sla_clock_wanted"))


def _write_breaches(session: Session, chunk: list[int], wanted: dict[Key, dict[str, Any]], cases: dict[int, CaseRow], now: datetime) -> int:
    """One breach per breached clock; a breach that recalculation shows never happened goes (unless analysed)."""
    old_b = {(r.case_id, r.metric, r.clock_key): r for cond in id_filters(session, SlaBreach.case_id, chunk) for r in session.execute(
        select(SlaBreach.id, SlaBreach.case_id, SlaBreach.metric, SlaBreach.clock_key, SlaBreach.cause_code, SlaBreach.due_at, SlaBreach.overrun_seconds,
               SlaBreach.queue_id, SlaBreach.partner_code).where(cond))}
    b_ins, b_upd = [], []
    for key, row in wanted.items():
        if row["state"] != "breached":
            continue
        overrun = max(row["elapsed_seconds"] - row["target_seconds"], 0)
        queue_id = row["queue_id"] if row["queue_id"] is not None else cases[key[0]].queue_id
        vals = {"queue_id": queue_id, "partner_code": row["partner_code"], "breached_at": row["breached_at"] or row["due_at"], "due_at": row["due_at"], "overrun_seconds": overrun}
        old = old_b.get(key)
        if old is None:
            b_ins.append({"case_id": key[0], "account_id": row["account_id"], "metric": key[1], "clock_key": key[2], "created_at": now} | vals)
        elif (old.due_at, old.overrun_seconds, old.queue_id, old.partner_code) != (vals["due_at"], overrun, queue_id, vals["partner_code"]):
            b_upd.append({"id": old.id} | vals)
    stale = [old.id for key, old in old_b.items() if old.cause_code is None and (key not in wanted or wanted[key]["state"] != "breached")]
    if stale:
        for cond in id_filters(session, SlaBreach.id, stale):
            session.execute(delete(SlaBreach).where(cond))
    if b_ins:
        insert_rows(session, SlaBreach.__table__, b_ins)
    if b_upd:
        update_rows(session, SlaBreach, b_upd)
    return len(b_ins)


def _write_warnings(session: Session, chunk: list[int], wanted: dict[Key, dict[str, Any]], plans: dict[int, Plan], now: datetime) -> int:
    """Once per (clock, threshold) crossed while the clock is still open."""
    old_w = {tuple(r) for cond in id_filters(session, SlaWarning.case_id, chunk)
             for r in session.execute(select(SlaWarning.case_id, SlaWarning.metric, SlaWarning.clock_key, SlaWarning.threshold).where(cond))}
    w_ins = []
    for key, row in wanted.items():
        if row["stopped_at"] is not None or not row["target_seconds"]:
            continue
        plan = plans.get(key[0])
        thresholds = plan.policy.fields.get("warn_percents") if plan and plan.policy else [50, 75, 100]
        pct = 100.0 * row["elapsed_seconds"] / row["target_seconds"]
        for t in thresholds or []:
            if pct >= t and (key[0], key[1], key[2], int(t)) not in old_w:
                w_ins.append({"case_id": key[0], "account_id": row["account_id"], "metric": key[1], "clock_key": key[2], "threshold": int(t), "percent": round(pct, 2),
                              "due_at": row["due_at"], "created_at": now, "actions": []})
    if w_ins:
        insert_rows(session, SlaWarning.__table__, w_ins)
    return len(w_ins)


def _write_policy(session: Session, chunk: list[int], plans: dict[int, Plan], cases: dict[int, CaseRow], now: datetime) -> list[dict[str, Any]]:
    """The sla_case row per case. Returns the policy changes for cases (each case's `sla_policy_id` and a history row),
    reported with the summaries so each case row is updated once."""
    sc_old = {r.case_id: r for cond in id_filters(session, SlaCase.case_id, chunk)
              for r in session.execute(select(SlaCase.case_id, SlaCase.policy_id, SlaCase.pinned, SlaCase.calendar_code, SlaCase.timezone).where(cond))}
    sc_ins, sc_upd, changes = [], [], []
    for cid in chunk:
        plan = plans.get(cid)
        if plan is None:
            continue
        pid = plan.policy.id if plan.policy else None
        vals = {"policy_id": pid, "calendar_code": plan.calendar_key[0], "timezone": plan.calendar_key[1], "computed_at": now}
        old = sc_old.get(cid)
        if old is None:
            sc_ins.append({"case_id": cid, "account_id": plan.case.account_id, "pinned": False} | vals)
        elif (old.policy_id, old.calendar_code, old.timezone) != (pid, plan.calendar_key[0], plan.calendar_key[1]):
            sc_upd.append({"case_id": cid} | vals)
        if plan.case.sla_policy_id != pid:
            changes.append({"id": cid, "account_id": plan.case.account_id, "from": plan.case.sla_policy_id, "to": pid, "name": plan.policy.name if plan.policy else None})
    if sc_ins:
        insert_rows(session, SlaCase.__table__, sc_ins)
    if sc_upd:
        update_rows(session, SlaCase, sc_upd)
    for ch in changes:
        cases[ch["id"]].sla_policy_id = ch["to"]
    return changes


def _forget_loaded(session: Session) -> None:
    """The staged writes are SQL the ORM does not see: expire any clock, breach or policy choice this session has
    loaded, so it reads what was just written (not what it held before)."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, (SlaClock, SlaBreach, SlaCase, SlaWarning)):
            session.expire(obj)


def write(session: Session, *, cases: dict[int, CaseRow], plans: dict[int, Plan], clocks: dict[int, list[Clock]], now: datetime, actor: Actor,
          reason: str | None) -> dict[str, int]:
    """Store what `engine.compute` found for these cases and report each case's summary to cases. Returns counts."""
    counts = {"clocks": 0, "breaches": 0, "warnings": 0, "policy_changes": 0}
    ids = list(cases)
    wanted = _wanted(ids, cases, plans, clocks)
    _write_clocks(session, ids, wanted, now)
    counts["clocks"] = len(wanted)
    counts["breaches"] = _write_breaches(session, ids, wanted, cases, now)
    counts["warnings"] = _write_warnings(session, ids, wanted, plans, now)
    changes = _write_policy(session, ids, plans, cases, now)
    counts["policy_changes"] = len(changes)
    _forget_loaded(session)
    # The summaries come from the clocks just written (held here), not read back; only the breach-probability
    # curves, which need every case's history, are read (once for the whole batch). They go to cases with each
    # case's policy in one call, so each case row is rewritten once.
    rows = summaries_from_clocks(session, cases={cid: (c.state, c.queue_id, c.category_code) for cid, c in cases.items()}, clocks=wanted.values(), now=now)
    for r in rows:
        r["sla_policy_id"] = cases[r["id"]].sla_policy_id
    cases_service.record_sla_recalculation(session, rows=rows, policy_changes=changes, now=now, actor=actor, reason=reason)
    return counts
