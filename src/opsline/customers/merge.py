"""Merging duplicate accounts: a preview (field by field, rows per table), the merge (set-based, every table that points
at an account found from the metadata, every moved row id kept), and an undo within the window that moves exactly
those rows back.

Which tables move is decided from the schema, not from a list, so a table added later is covered or named:
- every column with a foreign key to account.id, and every column named account_id (denormalised, no key), moves;
- append-only history (audit log, memos, case events) stays with the merged account: the database refuses to rewrite
  it, and the survivor's page links to the merged account's history;
- a one-row-per-account table (the account column is its key, e.g. dunning state) keeps the survivor's own row; the
  merged account's row stays with it;
- a table whose unique constraint would break (both accounts have the same key, e.g. a cycle invoice for the same
  period) refuses the merge, naming the table and the constraint; so does a table without an integer `id`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Column, Integer, Table, UniqueConstraint, func, select, text
from sqlalchemy.orm import Session

import opsline.models  # noqa: F401  (every area's tables: a merge must see every table that points at an account)
from opsline.core import domain_events, events, lifecycle
from opsline.core.errors import Conflict, InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.customers import service
from opsline.customers.data_models import ACCOUNT_MERGE, AccountMerge, AccountMergeRow, MergeState
from opsline.customers.data_settings import setting_int
from opsline.customers.models import ACCOUNT, Account, AccountStatus, Party
from opsline.customers.schemas import AccountUpdate, MemoIn
from opsline.db.base import metadata
from opsline.db.session import lock_for_write

# The account fields a person chooses between, field by field (the rest stay the survivor's).
MERGE_FIELDS = ("name", "email", "phone", "billing_line1", "billing_line2", "billing_suburb", "billing_city", "billing_province",
                "billing_postal_code", "segment_code", "value_tier_code", "payment_terms_days", "bill_cycle_day")
_OWN_TABLES = {"account_merge", "account_merge_row"}  # the merge's own record points at both accounts on purpose


class UnableToMerge(Conflict):
    title = "Unable to merge"
    type_slug = "unable-to-merge"


class UnableToUndoMerge(Conflict):
    title = "Unable to undo the merge"
    type_slug = "unable-to-undo-merge"


class MergeNotFound(NotFound):
    pass


@dataclass
class Target:
    """One account column in one table, and what a merge does with it."""

    table: Table
    column: Column  # type: ignore[type-arg]
    action: str  # move | keep | refuse
    why: str = ""
    unique_sets: list[tuple[str, list[str]]] = field(default_factory=list)  # (constraint name, other columns)
    pk: str = "id"  # the table's single integer key column (the moved rows' ids)

    @property
    def key(self) -> str:
        return f"{self.table.name}.{self.column.name}"


def _points_at_account(col: Column) -> bool:  # type: ignore[type-arg]
    if any(fk.column.table.name == "account" and fk.column.name == "id" for fk in col.foreign_keys):
        return True
    return col.name == "account_id" and not col.foreign_keys


def targets() -> list[Target]:
    """Every column in the schema that holds an account id, classified (see the module docstring)."""
    out: list[Target] = []
    for t in metadata.sorted_tables:
        if t.name in _OWN_TABLES or t.name == "account":
            continue
        for col in t.columns:
            if not _points_at_account(col):
                continue
            if "append_only_redactable" in t.info:
                out.append(Target(t, col, "keep", "append-only history: stays with the merged account"))
                continue
            single_unique = col.primary_key or any(
                [c.name for c in ix.columns] == [col.name] for ix in t.indexes if ix.unique) or any(
                isinstance(c, UniqueConstraint) and [x.name for x in c.columns] == [col.name] for c in t.constraints)
            if col.primary_key:
                out.append(Target(t, col, "keep", "one row per account: the survivor keeps its own; the merged account's stays with it"))
                continue
            pk = _int_pk(t)
            if pk is None:
                out.append(Target(t, col, "refuse", f"table {t.name} has no single integer key, so its moved rows cannot be recorded for an undo"))
                continue
            tgt = Target(t, col, "move", pk=pk)
            if single_unique:
                tgt.unique_sets.append((f"one {t.name} per account", []))
            for c in t.constraints:
                if isinstance(c, UniqueConstraint) and col.name in c.columns and len(c.columns) > 1:
                    tgt.unique_sets.append((c.name or "unique " + "/".join(x.name for x in c.columns), [x.name for x in c.columns if x.name != col.name]))
            for ix in t.indexes:
                names = [x.name for x in ix.columns]
                if ix.unique and col.name in names and len(names) > 1:
                    tgt.unique_sets.append((str(ix.name), [n for n in names if n != col.name]))
            out.append(tgt)
    return out


def party_targets() -> list[Target]:
    """Every column pointing at a party (an account's owner, privacy requests ...): what a party merge moves."""
    out: list[Target] = []
    for t in metadata.sorted_tables:
        for col in t.columns:
            if any(fk.column.table.name == "party" and fk.column.name == "id" for fk in col.foreign_keys) and t.name not in _OWN_TABLES:
                pk = _int_pk(t)
                out.append(Target(t, col, "move", pk=pk) if pk else
                           Target(t, col, "refuse", f"table {t.name} has no single integer key, so its moved rows cannot be recorded for an undo"))
    return out


def _party_column(table: str, column: str) -> bool:
    t = metadata.tables.get(table)
    return t is not None and column in t.c and any(fk.column.table.name == "party" for fk in t.c[column].foreign_keys)


def _ids(m: AccountMerge, table: str, column: str) -> tuple[int, int]:
    """(survivor, merged) ids for a recorded column: the parties' for a party column, else the accounts'."""
    if _party_column(table, column):
        assert m.survivor_party_id is not None and m.merged_party_id is not None
        return int(m.survivor_party_id), int(m.merged_party_id)
    return m.survivor_account_id, m.merged_account_id


def _int_pk(t: Table) -> str | None:
    pk = list(t.primary_key.columns)
    if len(pk) == 1 and isinstance(pk[0].type, Integer):
        return str(pk[0].name)
    return None


def _q(name: str) -> str:
    return f'"{name}"'


def _count(session: Session, t: Target, account_id: int) -> int:
    return int(session.execute(text(f"SELECT COUNT(*) FROM {_q(t.table.name)} WHERE {_q(t.column.name)} = :a"), {"a": account_id}).scalar_one())


def _collisions(session: Session, t: Target, *, survivor_id: int, merged_id: int) -> list[str]:
    """The unique constraints moving this table's rows would break, with an example of the key."""
    problems: list[str] = []
    tbl, col = _q(t.table.name), _q(t.column.name)
    for name, others in t.unique_sets:
        if not others:
            both = session.execute(text(f"SELECT COUNT(*) FROM {tbl} WHERE {col} = :s"), {"s": survivor_id}).scalar_one()
            if both:
                problems.append(f"{t.table.name}: both accounts have one ({name})")
            continue
        same = " AND ".join(f"s.{_q(o)} = m.{_q(o)}" for o in others)
        row = session.execute(text(
            f"SELECT {', '.join('m.' + _q(o) for o in others)} FROM {tbl} m WHERE m.{col} = :m "
            f"AND EXISTS (SELECT 1 FROM {tbl} s WHERE s.{col} = :s AND {same}) LIMIT 1"), {"m": merged_id, "s": survivor_id}).first()
        if row is not None:
            example = ", ".join(f"{o}={v}" for o, v in zip(others, row))
            problems.append(f"{t.table.name}: both accounts have a row with {example} ({name})")
    return problems


def _accounts(session: Session, *, survivor_id: int, merged_id: int, lock: bool) -> tuple[Account, Account]:
    if survivor_id == merged_id:
        raise InvalidInput("an account cannot be merged with itself; choose two different accounts", field="merged_account_id")
    if lock:
        lock_for_write(session)
        # both rows locked in id order (PostgreSQL), so two merges of the same pair cannot interleave
        session.execute(select(Account.id).where(Account.id.in_([survivor_id, merged_id])).order_by(Account.id).with_for_update()).all()
    survivor = service.get_account(session, account_id=survivor_id)
    merged = service.get_account(session, account_id=merged_id)
    return survivor, merged


def _merged_into(session: Session, account_id: int) -> AccountMerge | None:
    return session.execute(select(AccountMerge).where(AccountMerge.merged_account_id == account_id, AccountMerge.state == MergeState.DONE.value)
                           .order_by(AccountMerge.id.desc()).limit(1)).scalar_one_or_none()


def refusals(session: Session, *, survivor: Account, merged: Account) -> list[str]:
    """Why these two accounts may not be merged (empty when they may): currency, legal entity, state, earlier merges."""
    out: list[str] = []
    for acc in (survivor, merged):
        m = _merged_into(session, acc.id)
        if m is not None:
            into = session.get(Account, m.survivor_account_id)
            out.append(f"account {acc.account_number} was already merged into {into.account_number if into else m.survivor_account_id} (merge {m.id})")
    if survivor.status == AccountStatus.CLOSED.value:
        out.append(f"the surviving account {survivor.account_number} is closed; choose an open account to keep")
    if survivor.currency != merged.currency:
        out.append(f"different currencies: {survivor.account_number} bills in {survivor.currency}, {merged.account_number} in {merged.currency}")
    ps, pm = session.get(Party, survivor.party_id), session.get(Party, merged.party_id)
    if ps is not None and pm is not None and ps.id != pm.id:
        if ps.kind != pm.kind:
            out.append(f"different legal entities: {survivor.account_number} belongs to a {ps.kind}, {merged.account_number} to an {pm.kind}"
                       if pm.kind.startswith("o") else f"different legal entities: {survivor.account_number} belongs to a {ps.kind}, {merged.account_number} to a {pm.kind}")
        for attr, label in (("registration_number", "company registration numbers"), ("id_number", "ID numbers")):
            a, b = getattr(ps, attr), getattr(pm, attr)
            if a and b and a.strip().upper() != b.strip().upper():
                out.append(f"different legal entities: {label} differ ({a} and {b})")
    if survivor.vat_number and merged.vat_number and survivor.vat_number != merged.vat_number:
        out.append(f"different legal entities: VAT numbers differ ({survivor.vat_number} and {merged.vat_number})")
    return out


def preview(session: Session, *, survivor_id: int, merged_id: int) -> dict[str, Any]:
    """What a merge of `merged_id` into `survivor_id` would do: both accounts' fields side by side, rows per table that
    would move or stay, and every refusal. Changes nothing. Raises AccountNotFound, InvalidInput (the same account)."""
    survivor, merged = _accounts(session, survivor_id=survivor_id, merged_id=merged_id, lock=False)
    problems = refusals(session, survivor=survivor, merged=merged)
    moves, kept = [], []
    for t in targets():
        n = _count(session, t, merged.id)
        if not n:
            continue
        if t.action == "move":
            problems.extend(_collisions(session, t, survivor_id=survivor.id, merged_id=merged.id))
            moves.append({"table": t.table.name, "column": t.column.name, "rows": n})
        elif t.action == "keep":
            kept.append({"table": t.table.name, "column": t.column.name, "rows": n, "why": t.why})
        else:
            problems.append(t.why + f" ({n} rows on {merged.account_number})")
    sd, md = service.account_dict(survivor), service.account_dict(merged)
    ps, pm = session.get(Party, survivor.party_id), session.get(Party, merged.party_id)
    party_moves = [{"table": t.table.name, "column": t.column.name, "rows": n} for t in party_targets()
                   if survivor.party_id != merged.party_id and (n := _count(session, t, merged.party_id))]
    return {
        "parties": {"differ": survivor.party_id != merged.party_id, "survivor": {"id": ps.id, "name": ps.name, "kind": ps.kind} if ps else None,
                    "merged": {"id": pm.id, "name": pm.name, "kind": pm.kind} if pm else None, "moves": party_moves},
        "survivor": sd, "merged": md,
        "fields": [{"field": f, "survivor": sd.get(f), "merged": md.get(f), "same": sd.get(f) == md.get(f)} for f in MERGE_FIELDS],
        "moves": moves, "kept": kept, "refusals": problems, "can_merge": not problems,
        "undo_days": setting_int(session, "merge_undo_days"),
    }


def merge_accounts(session: Session, *, survivor_id: int, merged_id: int, choices: dict[str, str], reason: str, now: datetime,
                   actor: Actor, merge_parties: bool = False) -> AccountMerge:
    """Merge `merged_id` into `survivor_id`. `choices` maps a field of MERGE_FIELDS to "survivor" or "merged" (which
    account's value the survivor keeps; unnamed fields keep the survivor's). Every row of every account-pointing table
    moves set-based and is recorded; the merged account is closed and points at the merge; one audit event lists the
    rows moved per table; a memo goes on both accounts. With `merge_parties`, the two owners (parties) become one too:
    every row pointing at the merged account's party (its accounts, privacy requests ...) moves to the survivor's party.
    Raises AccountNotFound, InvalidInput (same account, no reason, unknown field or choice, a chosen value the account
    form would refuse), UnableToMerge (409: different currencies or legal entities, already merged, survivor closed,
    a unique key both accounts hold, a table that cannot be recorded). Nothing is changed when it raises."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("a reason is required to merge accounts", field="reason")
    bad = [f for f in choices if f not in MERGE_FIELDS]
    if bad:
        raise InvalidInput(f"'{bad[0]}' is not a field a merge can take over (choose from {', '.join(MERGE_FIELDS)})", field="choices")
    bad_choice = [f for f, v in choices.items() if v not in ("survivor", "merged")]
    if bad_choice:
        raise InvalidInput(f"choice for {bad_choice[0]} must be 'survivor' or 'merged'", field=bad_choice[0])
    survivor, merged = _accounts(session, survivor_id=survivor_id, merged_id=merged_id, lock=True)
    if merge_parties and survivor.party_id == merged.party_id:
        raise InvalidInput("both accounts already belong to the same party; merge the accounts without merging parties", field="merge_parties")
    problems = refusals(session, survivor=survivor, merged=merged)
    party_plan = []
    for t in party_targets() if merge_parties else []:
        n = _count(session, t, merged.party_id)
        if n and t.action == "refuse":
            problems.append(t.why + f" ({n} rows on party {merged.party_id})")
        elif n:
            party_plan.append(t)
    plan = []
    kept: dict[str, Any] = {}
    for t in targets():
        n = _count(session, t, merged.id)
        if not n:
            continue
        if t.action == "refuse":
            problems.append(t.why + f" ({n} rows on {merged.account_number})")
        elif t.action == "keep":
            kept[t.key] = {"rows": n, "why": t.why}
        else:
            problems.extend(_collisions(session, t, survivor_id=survivor.id, merged_id=merged.id))
            plan.append(t)
    if problems:
        raise UnableToMerge(f"cannot merge {merged.account_number} into {survivor.account_number}: " + "; ".join(problems),
                            field="merged_account_id", extra={"refusals": problems})
    # the survivor's fields first: a chosen value the account form refuses stops the merge before anything moved
    taken = {f: getattr(merged, f) for f, v in choices.items() if v == "merged" and getattr(merged, f) != getattr(survivor, f)}
    fields = {f: {"before": getattr(survivor, f), "after": v} for f, v in taken.items()}
    if taken:
        try:
            upd = AccountUpdate(version=survivor.version, reason=f"merge of {merged.account_number}", **taken)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise InvalidInput(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}", field=str(err["loc"][0])) from None
        service.update_account(session, account_id=survivor.id, data=upd, now=now, actor=actor)
        fields = {f: {"before": d["before"], "after": getattr(survivor, f)} for f, d in fields.items()}
    status_before = merged.status
    m = AccountMerge(survivor_account_id=survivor.id, merged_account_id=merged.id, state=MergeState.DONE.value, reason=reason, merged_by=actor.name,
                     merged_at=now, undo_until=now + timedelta(days=setting_int(session, "merge_undo_days")), merged_status_before=status_before,
                     fields=fields, counts={}, kept=kept, survivor_party_id=survivor.party_id if merge_parties else None,
                     merged_party_id=merged.party_id if merge_parties else None)
    session.add(m)
    session.flush()
    counts: dict[str, int] = {}
    for t in plan:
        tbl, col = _q(t.table.name), _q(t.column.name)
        session.execute(text(
            f"INSERT INTO account_merge_row (merge_id, table_name, column_name, row_id) SELECT :mid, :t, :c, {_q(t.pk)} FROM {tbl} WHERE {col} = :m"),
            {"mid": m.id, "t": t.table.name, "c": t.column.name, "m": merged.id})
        res = session.execute(text(
            f"UPDATE {tbl} SET {col} = :s WHERE {_q(t.pk)} IN (SELECT row_id FROM account_merge_row WHERE merge_id = :mid AND table_name = :t AND column_name = :c)"),
            {"s": survivor.id, "mid": m.id, "t": t.table.name, "c": t.column.name})
        counts[t.key] = int(res.rowcount or 0)
    for t in party_plan:  # the owners become one: rows pointing at the merged party move to the survivor's
        tbl, col = _q(t.table.name), _q(t.column.name)
        session.execute(text(
            f"INSERT INTO account_merge_row (merge_id, table_name, column_name, row_id) SELECT :mid, :t, :c, {_q(t.pk)} FROM {tbl} WHERE {col} = :m"),
            {"mid": m.id, "t": t.table.name, "c": t.column.name, "m": m.merged_party_id})
        res = session.execute(text(
            f"UPDATE {tbl} SET {col} = :s WHERE {_q(t.pk)} IN (SELECT row_id FROM account_merge_row WHERE merge_id = :mid AND table_name = :t AND column_name = :c)"),
            {"s": m.survivor_party_id, "mid": m.id, "t": t.table.name, "c": t.column.name})
        counts[t.key] = int(res.rowcount or 0)
    m.counts = counts
    session.flush()
    session.expire_all()  # loaded rows (products, cases ...) must not keep the old account id
    survivor = service.get_account(session, account_id=survivor.id)
    merged = service.get_account(session, account_id=merged.id)
    if merged.status != AccountStatus.CLOSED.value:
        lifecycle.transition(session, ACCOUNT, merged, "close", now=now, actor=Actor.system("merge"), account_id=merged.id,
                             reason=f"merged into {survivor.account_number} by {actor.name} (merge {m.id}): {reason}",
                             details={"merged_into_account_id": survivor.id, "merge_id": m.id}, label=f"account {merged.account_number}")
        merged.updated_at = now
    moved = sum(counts.values())
    events.record(session, now=now, actor=actor, entity_type="account_merge", entity_id=m.id, account_id=survivor.id, action="merged", reason=reason,
                  before={"merged_account": merged.account_number, "merged_status": status_before},
                  after={"survivor": survivor.account_number, "merged_account_id": merged.id, "rows_moved": counts, "rows_total": moved,
                         "kept": {k: v["rows"] for k, v in kept.items()}, "fields": fields})
    domain_events.publish(session, "account_merge.done", {"id": m.id, "account_id": survivor.id, "merged_account_id": merged.id, "rows_moved": counts},
                          now=now, actor=actor)
    summary = ", ".join(f"{k.split('.')[0]} {v}" for k, v in sorted(counts.items()) if v) or "no rows"
    service.add_memo(session, account_id=survivor.id, now=now, actor=actor, data=MemoIn(category="general", body=(
        f"Account {merged.account_number} merged into this account (merge {m.id}): {reason}. Moved: {summary}. "
        f"Fields taken over: {', '.join(fields) or 'none'}. Undo possible until {m.undo_until:%Y-%m-%d %H:%M} UTC.")))
    service.add_memo(session, account_id=merged.id, now=now, actor=actor, data=MemoIn(category="general", body=(
        f"Merged into account {survivor.account_number} (merge {m.id}) and closed: {reason}. Moved: {summary}.")))
    session.flush()
    return m


def get_merge(session: Session, *, merge_id: int) -> AccountMerge:
    """Raises MergeNotFound."""
    m = session.get(AccountMerge, merge_id) if 0 < merge_id < 2**62 else None
    if m is None:
        raise MergeNotFound(f"merge {merge_id} not found")
    return m


def _moved(session: Session, merge_id: int) -> list[tuple[str, str, int]]:
    return [(r.table_name, r.column_name, int(r.n)) for r in session.execute(
        select(AccountMergeRow.table_name, AccountMergeRow.column_name, func.count().label("n"))
        .where(AccountMergeRow.merge_id == merge_id).group_by(AccountMergeRow.table_name, AccountMergeRow.column_name)
        .order_by(AccountMergeRow.table_name, AccountMergeRow.column_name))]


def undo_problems(session: Session, *, m: AccountMerge, now: datetime) -> list[str]:
    """Why the merge cannot be undone now (empty when it can): the window, a later merge, rows no longer where the merge
    put them, or new rows on the survivor pointing at moved rows (a payment allocated to a moved invoice ...)."""
    out: list[str] = []
    if m.state != MergeState.DONE.value:
        return [f"merge {m.id} was already undone"]
    if now > m.undo_until:
        out.append(f"the undo window closed at {m.undo_until:%Y-%m-%d %H:%M} UTC (merges can be undone for {setting_int(session, 'merge_undo_days')} days)")
    later = _merged_into(session, m.survivor_account_id)
    if later is not None:
        out.append(f"the survivor was itself merged later (merge {later.id}); undo that merge first")
    moved = _moved(session, m.id)
    tables = {t.name: t for t in metadata.sorted_tables}
    moved_tables = {tn for tn, _, _ in moved}
    for tn, cn, n in moved:
        tbl = tables.get(tn)
        if tbl is None:
            out.append(f"table {tn} no longer exists")
            continue
        pk = _int_pk(tbl) or "id"
        still = session.execute(text(
            f"SELECT COUNT(*) FROM {_q(tn)} WHERE {_q(cn)} = :s AND {_q(pk)} IN (SELECT row_id FROM account_merge_row WHERE merge_id = :mid AND table_name = :t AND column_name = :c)"),
            {"s": _ids(m, tn, cn)[0], "mid": m.id, "t": tn, "c": cn}).scalar_one()
        if still != n:
            out.append(f"{tn}: {n - still} of the {n} moved rows were changed or removed since the merge")
    # rows added to the survivor since the merge that point at moved rows would be split from them by an undo
    acct_cols = {(t.table.name): t.column.name for t in targets() if t.action == "move"}
    for child in metadata.sorted_tables:
        if child.name not in acct_cols or "append_only_redactable" in child.info:
            continue
        for fk in child.foreign_keys:
            parent = fk.column.table.name
            child_pk = _int_pk(child)
            if parent not in moved_tables or fk.column.name != _int_pk(fk.column.table) or parent == child.name or child_pk is None:
                continue
            n_new = session.execute(text(
                f"SELECT COUNT(*) FROM {_q(child.name)} c WHERE c.{_q(acct_cols[child.name])} = :s "
                f"AND c.{_q(fk.parent.name)} IN (SELECT row_id FROM account_merge_row WHERE merge_id = :mid AND table_name = :p) "
                f"AND c.{_q(child_pk)} NOT IN (SELECT row_id FROM account_merge_row WHERE merge_id = :mid AND table_name = :t)"),
                {"s": m.survivor_account_id, "mid": m.id, "p": parent, "t": child.name}).scalar_one()
            if n_new:
                out.append(f"{child.name}: {n_new} rows added since the merge point at moved {parent} rows")
    return out


def undo_merge(session: Session, *, merge_id: int, reason: str, now: datetime, actor: Actor) -> dict[str, int]:
    """Undo a merge inside the window: exactly the recorded rows move back, the survivor's fields taken over return
    (those edited since are left as edited, and listed), the merged account returns to its state before the merge.
    Returns rows moved back per table. Raises MergeNotFound, ReasonRequired, ActionNotPermitted, UnableToUndoMerge (409:
    already undone, window closed, the survivor merged again, moved rows changed since, new rows pointing at moved rows).
    Nothing is changed when it raises."""
    lock_for_write(session)
    m = get_merge(session, merge_id=merge_id)
    if not (reason or "").strip():
        raise lifecycle.ReasonRequired("a reason is required to undo a merge", field="reason")
    session.execute(select(Account.id).where(Account.id.in_([m.survivor_account_id, m.merged_account_id])).order_by(Account.id).with_for_update()).all()
    problems = undo_problems(session, m=m, now=now)
    if problems:
        raise UnableToUndoMerge(f"cannot undo merge {m.id}: " + "; ".join(problems), field="merge_id", extra={"refusals": problems})
    back: dict[str, int] = {}
    tables = {t.name: t for t in metadata.sorted_tables}
    for tn, cn, _ in _moved(session, m.id):
        pk = _int_pk(tables[tn]) or "id"
        res = session.execute(text(
            f"UPDATE {_q(tn)} SET {_q(cn)} = :mg WHERE {_q(cn)} = :s AND {_q(pk)} IN "
            f"(SELECT row_id FROM account_merge_row WHERE merge_id = :mid AND table_name = :t AND column_name = :c)"),
            {"mg": _ids(m, tn, cn)[1], "s": _ids(m, tn, cn)[0], "mid": m.id, "t": tn, "c": cn})
        back[f"{tn}.{cn}"] = int(res.rowcount or 0)
    session.expire_all()
    survivor = service.get_account(session, account_id=m.survivor_account_id)
    merged = service.get_account(session, account_id=m.merged_account_id)
    restore = {f: d["before"] for f, d in (m.fields or {}).items() if getattr(survivor, f) == d["after"]}
    edited = sorted(set(m.fields or {}) - set(restore))
    if restore:
        before = {f: getattr(survivor, f) for f in restore}
        for f, v in restore.items():
            setattr(survivor, f, v)
        survivor.updated_at = now
        events.record(session, now=now, actor=actor, entity_type="account", entity_id=survivor.id, account_id=survivor.id, action="updated",
                      reason=f"undo of merge {m.id}", before=before, after=restore)
    status_closed = merged.status
    merged.status = m.merged_status_before  # the account lifecycle has no reopening: an undone merge puts back what the merge closed
    merged.updated_at = now
    events.record(session, now=now, actor=actor, entity_type="account", entity_id=merged.id, account_id=merged.id, action="unmerged", reason=reason,
                  before={"status": status_closed, "merged_into_account_id": survivor.id}, after={"status": m.merged_status_before})
    m.undone_by, m.undone_at, m.undo_reason = actor.name, now, reason.strip()
    lifecycle.transition(session, ACCOUNT_MERGE, m, "undo", now=now, actor=actor, reason=reason, account_id=survivor.id,
                         details={"rows_moved_back": back, "fields_restored": sorted(restore), "fields_left_as_edited": edited},
                         label=f"merge {m.id}")
    body = (f"Merge {m.id} undone ({reason.strip()}): account {merged.account_number} is separate again; "
            f"{sum(back.values())} rows moved back." + (f" Fields edited since the merge kept: {', '.join(edited)}." if edited else ""))
    service.add_memo(session, account_id=survivor.id, now=now, actor=actor, data=MemoIn(category="general", body=body))
    service.add_memo(session, account_id=merged.id, now=now, actor=actor, data=MemoIn(category="general", body=body))
    session.flush()
    return back


def merges_of(session: Session, *, account_id: int) -> dict[str, Any]:
    """The account page panel: merges into this account (with their undo state) and the merge this account went into."""
    rows = session.execute(select(AccountMerge).where((AccountMerge.survivor_account_id == account_id) | (AccountMerge.merged_account_id == account_id))
                           .order_by(AccountMerge.id.desc()).limit(50)).scalars().all()
    ids = {r.survivor_account_id for r in rows} | {r.merged_account_id for r in rows}
    numbers = dict(session.execute(select(Account.id, Account.account_number).where(Account.id.in_(ids))).all()) if ids else {}
    items = [{"id": r.id, "state": r.state, "survivor_account_id": r.survivor_account_id, "merged_account_id": r.merged_account_id,
              "survivor_number": numbers.get(r.survivor_account_id), "merged_number": numbers.get(r.merged_account_id), "merged_by": r.merged_by,
              "merged_at": r.merged_at, "undo_until": r.undo_until, "reason": r.reason, "counts": r.counts, "kept": r.kept, "fields": r.fields,
              "undone_by": r.undone_by, "undone_at": r.undone_at, "undo_reason": r.undo_reason} for r in rows]
    into = next((i for i in items if i["merged_account_id"] == account_id and i["state"] == MergeState.DONE.value), None)
    return {"merges": items, "merged_into": into}


def panel(session: Session, *, account_id: int, now: datetime) -> dict[str, Any]:
    """The account page's merges panel (see merges_of), with whether each merge can still be undone."""
    data = merges_of(session, account_id=account_id)
    for m in data["merges"]:
        m["undoable"] = m["state"] == MergeState.DONE.value and now <= m["undo_until"]
    return data
