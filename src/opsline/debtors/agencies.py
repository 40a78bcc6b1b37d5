"""Hand-over of debt to collection agencies: each agency's terms (as data), the hand-over itself (dry run first, then one
set-based placement per account), the file we send in the agency's layout, recalls (the agency is told by email) and
returns. The terms are in agencies_terms.py, recovery files in agencies_recoveries.py, the report in agencies_report.py.

What is handed over is the account's *unpaid* debt: its debits less what the customer paid or was credited (write-offs
are not payment), oldest first, as every ageing in Opsline. Of it, `on_book` is what the ledger still shows (the
balance) and `written_off` the rest: recovering that part later is a bad-debt recovery. Prescribed debt (unpaid debt
due three years ago or more, Prescription Act) is never handed over; nor are accounts in dispute, under an active
arrangement or already with an agency."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opsline.billing.invoicing.models import OPEN_CLAIM_STATES
from opsline.billing.sql import Dialect, dialect_of
from opsline.core import events, lifecycle
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.core.exports import export_table
from opsline.core.money import Money, exponent
from opsline.customers.models import Account
from opsline.db.base import sqlite_utc
from opsline.db.bulk import copy_rows
from opsline.db.session import lock_for_write
from opsline.debtors import prescription
from opsline.debtors.agency_models import (AGENCY_PLACEMENT, AgencyBatch, AgencyPlacement,
                                           PlacementState)
from opsline.debtors.agencies_terms import (DEFAULT_TERMS, FIELDS, RECOVERY_FIELDS, UnableToSaveTerms, _agency, commission_minor,
                                           commission_percent, ensure_terms, get_terms, list_agencies, save_terms)
from opsline.notifications import service as notifications
from opsline.partners.models import Partner
from opsline.users.roles import allowed

SYSTEM = Actor.system("agency hand-over")
CAND, EVAL = "ag_cand", "ag_eval"
FINAL_STAGE_ACTIONS = ("discontinuance", "final_account", "write_off_proposal")
SOURCES = {"written_off": "Written off (write-off posted)", "final_stage": "At the discontinuance / final-account stage",
           "both": "Written off or at the discontinuance / final-account stage"}
RECALL_EVENT = "agency.recall"


class UnableToHandOver(InvalidInput):
    title = "Unable to hand over"
    type_slug = "unable-to-hand-over"


def ref(placement_id: int) -> str:
    return f"PL-{placement_id}"


def batch_ref(batch_id: int) -> str:
    return f"HO-{batch_id}"


def _x(session: Session, sql: str, params: dict[str, Any] | None = None) -> Any:
    return session.execute(text(sql), params or {})


def _ts(d: Dialect, now: datetime) -> Any:
    return now if d.pg else sqlite_utc(now)


def major(minor: int, currency: str) -> Decimal:
    return Money.from_minor(int(minor), currency).amount


# --- selecting accounts -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Selection:
    """Which accounts to hand over: named ones (`accounts`: account numbers; each must qualify, else the hand-over is
    refused naming it), or all that qualify from `source` with at least `min_amount_minor` unpaid and the oldest debt at
    least `min_days` past due."""

    source: str = "both"
    accounts: tuple[str, ...] = ()
    min_amount_minor: int = 0
    min_days: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "accounts": list(self.accounts), "min_amount_minor": self.min_amount_minor, "min_days": self.min_days}


def parse_selection(*, source: str, accounts: str, min_amount: str, min_days: str, currency: str) -> Selection:
    """The hand-over form's fields -> Selection. Raises UnableToHandOver naming the field."""
    source = (source or "both").strip()
    if source not in SOURCES:
        raise UnableToHandOver(f"'{source}' is not one of {', '.join(SOURCES)}", field="source")
    numbers = tuple(dict.fromkeys(t for t in re.split(r"[\s,;]+", accounts or "") if t))
    if len(numbers) > 10_000:
        raise UnableToHandOver("at most 10,000 account numbers at once (use the criteria for more)", field="accounts")
    raw = (min_amount or "").strip().replace(" ", "").replace(",", "")
    amount = 0
    if raw:
        try:
            v = Decimal(raw)
        except InvalidOperation:
            raise UnableToHandOver(f"'{min_amount}' is not an amount", field="min_amount") from None
        if not v.is_finite() or v < 0 or v != v.quantize(Decimal(1).scaleb(-exponent(currency))):
            raise UnableToHandOver(f"'{min_amount}' is not an amount of 0 or more in {currency}", field="min_amount")
        amount = int(v.scaleb(exponent(currency)))
    days = (min_days or "0").strip()
    if not days.isdigit() or int(days) > 100_000:
        raise UnableToHandOver(f"'{min_days}' is not a whole number of days (0 or more)", field="min_days")
    return Selection(source=source, accounts=numbers, min_amount_minor=amount, min_days=int(days))


REASONS = {
    "owes_nothing": "Owes nothing (no unpaid debt)",
    "not_eligible": "Neither written off nor at the discontinuance / final-account stage",
    "currency": "Debt in another currency than the agency's",
    "prescribed": "Prescribed debt (over 3 years past due): never handed over",
    "with_agency": "Already with a collection agency",
    "in_dispute": "Money in dispute (open billing claim)",
    "under_arrangement": "Under an active arrangement",
}


def _stage(session: Session, *, sel: Selection, agency: Partner, today: date, now: datetime) -> None:
    """Temp table ag_eval: every account the selection names or takes, with its unpaid debt, balance, oldest unpaid due
    date and the first reason it may not be handed over (NULL: it may). Set-based: a few statements whatever the size."""
    d = dialect_of(session)
    _x(session, f"DROP TABLE IF EXISTS {CAND}")
    _x(session, f"DROP TABLE IF EXISTS {EVAL}")
    _x(session, f"CREATE TEMP TABLE {CAND} (account_id BIGINT PRIMARY KEY)")
    if sel.accounts:
        found = dict(session.execute(text("SELECT account_number, id FROM account WHERE account_number IN :n").bindparams(
            bindparam("n", expanding=True)), {"n": list(sel.accounts)}).all())
        unknown = [n for n in sel.accounts if n not in found]
        if unknown:
            raise UnableToHandOver(f"no account {', '.join(unknown[:20])}{' …' if len(unknown) > 20 else ''}", field="accounts",
                                   extra={"accounts": unknown[:100]})
        copy_rows(session.connection(), CAND, ("account_id",), ((int(found[n]),) for n in sel.accounts))
    else:
        parts = []
        if sel.source in ("written_off", "both"):
            parts.append("SELECT account_id FROM write_off WHERE state = 'posted'")
        if sel.source in ("final_stage", "both"):
            marks = ", ".join(f"'{a}'" for a in FINAL_STAGE_ACTIONS)
            parts.append(f"SELECT da.account_id FROM dunning_account da JOIN dunning_step st ON st.id = da.step_id WHERE st.action IN ({marks})")
        _x(session, f"INSERT INTO {CAND} (account_id) SELECT DISTINCT account_id FROM ({' UNION '.join(parts)}) s")
    _x(session, f"""CREATE TEMP TABLE {EVAL} (account_id BIGINT PRIMARY KEY, currency VARCHAR(3), unpaid_minor BIGINT, balance_minor BIGINT,
                    oldest_due DATE, age_days INTEGER, final_stage INTEGER, written_off_posted INTEGER, reason VARCHAR(30))""")
    due = f"COALESCE(le.due_date, {'CAST(le.posted_at AS DATE)' if d.pg else 'date(le.posted_at)'})"
    claims = ", ".join(f"'{s}'" for s in OPEN_CLAIM_STATES)
    final = ", ".join(f"'{a}'" for a in FINAL_STAGE_ACTIONS)
    # write-offs (and their reversals when recovered) are not payment: they are left out of what settled the debt
    _x(session, f"""
        INSERT INTO {EVAL} (account_id, currency, unpaid_minor, balance_minor, oldest_due, age_days, final_stage, written_off_posted, reason)
        SELECT q.account_id, q.currency, q.unpaid_minor, q.balance_minor, q.oldest_due,
               CASE WHEN q.oldest_due IS NULL THEN 0 ELSE {d.days('q.oldest_due', d.d('today'))} END, q.final_stage, q.wo,
               CASE WHEN q.unpaid_minor <= 0 THEN 'owes_nothing'
                    WHEN q.wo = 0 AND q.final_stage = 0 THEN 'not_eligible'
                    WHEN q.currency <> :cur THEN 'currency'
                    WHEN q.oldest_due <= {d.d('cutoff')} THEN 'prescribed'
                    WHEN EXISTS (SELECT 1 FROM agency_placement p WHERE p.account_id = q.account_id AND p.state = 'placed') THEN 'with_agency'
                    WHEN EXISTS (SELECT 1 FROM billing_claim bc WHERE bc.account_id = q.account_id AND bc.state IN ({claims})) THEN 'in_dispute'
                    WHEN EXISTS (SELECT 1 FROM arrangement g WHERE g.account_id = q.account_id AND g.state = 'active') THEN 'under_arrangement'
                    ELSE NULL END
        FROM (
            WITH deb AS (SELECT le.account_id, le.currency, le.amount_minor, {due} AS due, le.id FROM ledger_entry le JOIN {CAND} c ON c.account_id = le.account_id
                         WHERE le.amount_minor > 0 AND le.kind <> 'write_off' AND le.posted_at <= :t),
            cred AS (SELECT le.account_id, le.currency, -SUM(le.amount_minor) AS paid FROM ledger_entry le JOIN {CAND} c ON c.account_id = le.account_id
                     WHERE le.amount_minor < 0 AND le.kind <> 'write_off' AND le.posted_at <= :t GROUP BY le.account_id, le.currency),
            run AS (SELECT d.account_id, d.currency, d.due, d.amount_minor, COALESCE(cr.paid, 0) AS paid,
                           SUM(d.amount_minor) OVER (PARTITION BY d.account_id, d.currency ORDER BY d.due, d.id) AS cum
                    FROM deb d LEFT JOIN cred cr ON cr.account_id = d.account_id AND cr.currency = d.currency),
            x AS (SELECT account_id, currency, due,
                         CASE WHEN cum - paid <= 0 THEN 0 WHEN cum - paid < amount_minor THEN cum - paid ELSE amount_minor END AS open_minor FROM run),
            u AS (SELECT account_id, currency, SUM(open_minor) AS unpaid_minor, MIN(CASE WHEN open_minor > 0 THEN due END) AS oldest_due
                  FROM x GROUP BY account_id, currency),
            b AS (SELECT le.account_id, le.currency, SUM(le.amount_minor) AS balance_minor FROM ledger_entry le JOIN {CAND} c ON c.account_id = le.account_id
                  WHERE le.posted_at <= :t GROUP BY le.account_id, le.currency)
            SELECT c.account_id, COALESCE(u.currency, a.currency) AS currency, COALESCE(u.unpaid_minor, 0) AS unpaid_minor,
                   COALESCE(b.balance_minor, 0) AS balance_minor, u.oldest_due,
                   CASE WHEN EXISTS (SELECT 1 FROM dunning_account da JOIN dunning_step st ON st.id = da.step_id
                                     WHERE da.account_id = c.account_id AND st.action IN ({final})) THEN 1 ELSE 0 END AS final_stage,
                   CASE WHEN EXISTS (SELECT 1 FROM write_off w WHERE w.account_id = c.account_id AND w.state = 'posted') THEN 1 ELSE 0 END AS wo
            FROM {CAND} c JOIN account a ON a.id = c.account_id
            LEFT JOIN u ON u.account_id = c.account_id AND u.currency = a.currency
            LEFT JOIN b ON b.account_id = c.account_id AND b.currency = a.currency
        ) q""", {"t": d.bind_ts(now), "today": d.bind_date(today), "cutoff": d.bind_date(prescription.cutoff(today)), "cur": agency.currency})
    if not sel.accounts:
        # criteria: below the thresholds is simply not selected (not an exclusion to report)
        _x(session, f"DELETE FROM {EVAL} WHERE reason IS NULL AND (unpaid_minor < :amt OR age_days < :days)",
           {"amt": sel.min_amount_minor, "days": sel.min_days})
        _x(session, f"DELETE FROM {EVAL} WHERE reason IN ('owes_nothing', 'not_eligible')")


def _on_book(d: Dialect) -> str:
    return f"{d.least(d.greatest('e.balance_minor', '0'), 'e.unpaid_minor')}"


def _summary(session: Session, *, sample: int = 50) -> dict[str, Any]:
    d = dialect_of(session)
    agg = _x(session, f"""SELECT COUNT(*), COALESCE(SUM(unpaid_minor), 0), COALESCE(SUM({_on_book(d)}), 0)
                         FROM {EVAL} e WHERE reason IS NULL""").one()
    excl = _x(session, f"SELECT reason, COUNT(*), COALESCE(SUM(unpaid_minor), 0) FROM {EVAL} WHERE reason IS NOT NULL GROUP BY reason ORDER BY reason").all()
    top = _x(session, f"""SELECT e.account_id, a.account_number, a.name, a.status, e.unpaid_minor, {_on_book(d)} AS on_book_minor, e.oldest_due, e.age_days,
                                 e.reason
                          FROM {EVAL} e JOIN account a ON a.id = e.account_id
                          ORDER BY e.reason IS NOT NULL, e.unpaid_minor DESC, e.account_id LIMIT {int(sample)}""").all()
    return {"count": int(agg[0]), "amount_minor": int(agg[1]), "on_book_minor": int(agg[2]), "written_off_minor": int(agg[1]) - int(agg[2]),
            "excluded": [{"code": r[0], "label": REASONS.get(r[0], r[0]), "count": int(r[1]), "amount_minor": int(r[2])} for r in excl],
            "sample": [{"account_id": int(r.account_id), "account_number": r.account_number, "name": r.name, "status": r.status,
                        "amount_minor": int(r.unpaid_minor), "on_book_minor": int(r.on_book_minor), "written_off_minor": int(r.unpaid_minor) - int(r.on_book_minor),
                        "oldest_due": r.oldest_due, "age_days": int(r.age_days or 0), "reason": r.reason, "reason_label": REASONS.get(r.reason, "")}
                       for r in top]}


def _refuse_named(session: Session) -> None:
    """Named accounts that may not be handed over: refused, naming each with why (prescribed first: never handed over)."""
    rows = _x(session, f"""SELECT a.account_number, e.reason, e.oldest_due FROM {EVAL} e JOIN account a ON a.id = e.account_id
                          WHERE e.reason IS NOT NULL ORDER BY e.reason <> 'prescribed', a.account_number""").all()
    if not rows:
        return
    first = rows[0].reason
    same = [r for r in rows if r.reason == first]
    names = ", ".join(f"{r.account_number}" + (f" (oldest unpaid debt due {r.oldest_due})" if first == "prescribed" else "") for r in same[:20])
    more = f"; and {len(rows) - len(same)} more for other reasons" if len(rows) > len(same) else ""
    raise UnableToHandOver(f"cannot hand over {names}: {REASONS[first].lower()}{more}", field="accounts",
                           extra={"refused": [{"account_number": r.account_number, "reason": r.reason} for r in rows[:100]]})


def dry_run(session: Session, *, agency: str, selection: Selection, today: date, now: datetime) -> dict[str, Any]:
    """What a hand-over would place (nothing is written, temp tables aside): count and amounts, of it written off and
    on the books, the accounts left out and why, the biggest first. Raises NotFound, UnableToHandOver."""
    p = _agency(session, agency)
    _stage(session, sel=selection, agency=p, today=today, now=now)
    out = _summary(session) | {"agency": p.code, "agency_name": p.name, "currency": p.currency, "selection": selection.as_dict(),
                               "refused": bool(selection.accounts) and any(e for e in _x(session, f"SELECT 1 FROM {EVAL} WHERE reason IS NOT NULL").all())}
    _x(session, f"DROP TABLE {EVAL}")
    _x(session, f"DROP TABLE {CAND}")
    return out


def _percent_case(terms: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"flat_pct": str(terms["flat_percent"])}  # text: SQLite binds no Decimal
    if terms["commission_basis"] != "by_age" or not terms["bands"]:
        return "CAST(:flat_pct AS NUMERIC(5,2))", params
    whens = []
    for k, b in enumerate(sorted(terms["bands"], key=lambda b: -b["min_age_days"])):
        whens.append(f"WHEN e.age_days >= :band_d{k} THEN CAST(:band_p{k} AS NUMERIC(5,2))")
        params |= {f"band_d{k}": b["min_age_days"], f"band_p{k}": str(b["percent"])}
    return f"CASE {' '.join(whens)} ELSE CAST(:flat_pct AS NUMERIC(5,2)) END", params


def hand_over(session: Session, *, agency: str, selection: Selection, today: date, now: datetime, actor: Actor,
              idempotency_key: str | None = None) -> AgencyBatch:
    """Place the selected accounts with `agency` in one set-based operation: one batch, one placement per account (its
    unpaid debt, of it written off and on the books, the commission rate for its age), one audit event and memo each.
    Named accounts that may not be handed over (prescribed, in dispute, under an arrangement, with an agency, owing
    nothing, not written off nor at the final stage) refuse the whole hand-over naming them. A repeated
    `idempotency_key` returns the first batch. Raises NotFound, UnableToHandOver, ActionNotPermitted. Nothing is changed
    when it raises."""
    if not actor.is_system and not allowed(actor.roles, "debtors.handover"):
        raise lifecycle.ActionNotPermitted("your role does not allow 'debtors.handover'", extra={"permission": "debtors.handover"})
    p = _agency(session, agency)
    if not p.active:
        raise UnableToHandOver(f"{p.name} is not active", field="agency")
    key = (idempotency_key or "").strip()[:80] or None
    if key:
        first = session.execute(select(AgencyBatch).where(AgencyBatch.idempotency_key == key)).scalar_one_or_none()
        if first is not None:
            return first
    lock_for_write(session)
    ensure_terms(session, now=now)
    terms = get_terms(session, code=p.code)
    _stage(session, sel=selection, agency=p, today=today, now=now)
    if selection.accounts:
        _refuse_named(session)
    s = _summary(session, sample=0)
    if not s["count"]:
        raise UnableToHandOver("no account qualifies for hand-over with these criteria; nothing to place", field="accounts" if selection.accounts else "criteria")
    d = dialect_of(session)
    batch = AgencyBatch(partner_code=p.code, accounts=s["count"], amount_minor=s["amount_minor"], currency=p.currency, criteria=selection.as_dict(),
                        placed_on=today, created_at=now, created_by=actor.name, idempotency_key=key)
    try:
        with session.begin_nested():
            session.add(batch)
            session.flush()
            pct, pparams = _percent_case(terms)
            _x(session, f"""INSERT INTO agency_placement (batch_id, account_id, partner_code, state, amount_minor, written_off_minor, on_book_minor,
                                                          recovered_minor, bad_debt_recovered_minor, commission_minor, commission_percent, age_days,
                                                          oldest_due, currency, placed_on, placed_at)
                            SELECT :b, e.account_id, :p, 'placed', e.unpaid_minor, e.unpaid_minor - {_on_book(d)}, {_on_book(d)}, 0, 0, 0, {pct},
                                   e.age_days, e.oldest_due, e.currency, {d.d('today')}, :now
                            FROM {EVAL} e WHERE e.reason IS NULL ORDER BY e.account_id""",
               {"b": batch.id, "p": p.code, "today": d.bind_date(today), "now": _ts(d, now)} | pparams)
    except IntegrityError:
        if key:  # a concurrent repeat of the same form won: replay its batch
            session.rollback()
            first = session.execute(select(AgencyBatch).where(AgencyBatch.idempotency_key == key)).scalar_one_or_none()
            if first is not None:
                return first
        raise UnableToHandOver("some of these accounts were handed over by someone else a moment ago; check again (dry run)", field="accounts") from None
    _x(session, f"DROP TABLE {EVAL}")
    _x(session, f"DROP TABLE {CAND}")
    obj = "jsonb_build_object" if d.pg else "json_object"
    ts = _ts(d, now)
    _x(session, f"""INSERT INTO audit_event (occurred_at, actor, entity_type, entity_id, account_id, action, reason, "before", "after")
                    SELECT :now, :by, 'agency_placement', CAST(pl.id AS VARCHAR(60)), pl.account_id, 'placed', NULL, NULL,
                           {obj}('state', pl.state, 'agency', pl.partner_code, 'amount_minor', pl.amount_minor, 'written_off_minor', pl.written_off_minor,
                                 'on_book_minor', pl.on_book_minor, 'currency', pl.currency, 'commission_percent', {_pct_sql(d, 'pl.commission_percent')},
                                 'batch_id', pl.batch_id)
                    FROM agency_placement pl WHERE pl.batch_id = :b ORDER BY pl.id""", {"now": ts, "by": actor.name, "b": batch.id})
    _placement_memos(session, f"batch_id = {int(batch.id)}", f"Handed over to {p.name} by {actor.name} in {batch_ref(batch.id)}: ",
                     "", now=now, actor=actor, with_split=True)
    events.record(session, now=now, actor=actor, entity_type="agency_batch", entity_id=batch.id, action="handed_over",
                  after={"agency": p.code, "accounts": batch.accounts, "amount_minor": batch.amount_minor, "currency": batch.currency,
                         "criteria": batch.criteria})
    session.flush()
    return batch


def _pct_sql(d: Dialect, col: str) -> str:
    return f"CAST({col} AS VARCHAR(10))" if d.pg else f"printf('%.2f', {col})"


def _amount_sql(d: Dialect, col: str) -> str:
    return f"CAST(CAST({col} / 100.0 AS NUMERIC(18,2)) AS TEXT)" if d.pg else f"printf('%.2f', {col} / 100.0)"


def _placement_memos(session: Session, where: str, prefix: str, suffix: str, *, now: datetime, actor: Actor, with_split: bool = False,
                     params: dict[str, Any] | None = None) -> None:
    """One memo per placement matching `where` (set-based): prefix, amount and reference, suffix."""
    d = dialect_of(session)
    split = (f"|| ' (written off ' || pl.currency || ' ' || {_amount_sql(d, 'pl.written_off_minor')} || '; commission ' || "
             f"{_pct_sql(d, 'pl.commission_percent')} || '%)'") if with_split else ""
    _x(session, f"""INSERT INTO memo (account_id, created_at, author, category, body)
                    SELECT pl.account_id, :now, :by, 'debtors', CAST(:prefix AS TEXT) || pl.currency || ' ' || {_amount_sql(d, 'pl.amount_minor')}
                           || ' (PL-' || CAST(pl.id AS VARCHAR(20)) || ')' {split} || '. ' || CAST(:suffix AS TEXT)
                    FROM agency_placement pl WHERE {where} ORDER BY pl.id""",
       {"now": _ts(d, now), "by": actor.name, "prefix": prefix, "suffix": suffix, **(params or {})})


# --- the file we send ---------------------------------------------------------------------------------------------------

def _cell(kind: str, value: Any, *, currency: str, date_format: str) -> Any:
    if value is None:
        return None
    if kind == "money":
        return major(int(value), currency)
    if kind == "date":
        v = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
        return v.strftime(date_format)
    if kind == "int":
        return int(value)
    return str(value)


def batch_rows(session: Session, *, batch_id: int) -> list[dict[str, Any]]:
    """Every placement of a batch with what a hand-over file can carry (FIELDS), in placement order."""
    rows = _x(session, """
        SELECT pl.id, pl.batch_id, a.account_number, a.name, COALESCE(pt.id_number, pt.registration_number) AS id_number, a.email, a.phone,
               a.billing_line1, a.billing_line2, a.billing_suburb, a.billing_city, a.billing_postal_code, pl.amount_minor, pl.written_off_minor,
               pl.on_book_minor, pl.currency, pl.oldest_due, pl.placed_on, pl.age_days, pl.commission_percent,
               (SELECT MAX(le.posted_at) FROM ledger_entry le WHERE le.account_id = pl.account_id AND le.kind = 'payment' AND le.amount_minor < 0) AS last_paid
        FROM agency_placement pl JOIN account a ON a.id = pl.account_id JOIN party pt ON pt.id = a.party_id
        WHERE pl.batch_id = :b ORDER BY pl.id""", {"b": batch_id}).all()
    out = []
    for r in rows:
        last = r.last_paid
        last_on = None if last is None else (last.date() if isinstance(last, datetime) else date.fromisoformat(str(last)[:10]))
        out.append({"reference": ref(r.id), "batch": batch_ref(r.batch_id), "account_number": r.account_number, "name": r.name, "id_number": r.id_number,
                    "email": r.email, "phone": r.phone,
                    "address": ", ".join(x for x in (r.billing_line1, r.billing_line2, r.billing_suburb, r.billing_city) if x),
                    "postal_code": r.billing_postal_code, "amount": r.amount_minor, "written_off": r.written_off_minor, "on_book": r.on_book_minor,
                    "currency": r.currency, "oldest_due": r.oldest_due, "last_payment_on": last_on, "placed_on": r.placed_on, "age_days": r.age_days,
                    "commission_percent": f"{Decimal(r.commission_percent):.2f}"})
    return out


def export_batch(session: Session, *, batch_id: int, fmt: str | None = None) -> tuple[str, str, bytes]:
    """The hand-over file of a batch in its agency's layout (columns, headers, date format, delimiter; CSV or xlsx, the
    agency's format unless `fmt` asks for the other), through the one safe writer. Raises NotFound, InvalidInput (format)."""
    b = session.get(AgencyBatch, batch_id)
    if b is None:
        raise NotFound(f"hand-over batch {batch_id} not found", field="batch_id")
    t = get_terms(session, code=b.partner_code)
    fmt = (fmt or t["export_format"]).strip()
    cols = t["export_columns"]
    rows = ([_cell(FIELDS[c["field"]][1], r[c["field"]], currency=r["currency"], date_format=t["export_date_format"]) for c in cols]
            for r in batch_rows(session, batch_id=b.id))
    money = [k for k, c in enumerate(cols) if FIELDS[c["field"]][1] == "money"]
    return export_table(fmt, name=f"{b.partner_code}-handover-{batch_ref(b.id)}-{b.placed_on.isoformat()}", header=[c["header"] for c in cols],
                        rows=rows, money_cols=money, delimiter=t["export_delimiter"] if fmt == "csv" else ",")


# --- recalls and returns ------------------------------------------------------------------------------------------------

def _ensure_templates(session: Session, *, now: datetime) -> None:
    notifications.ensure_template(
        session, event=RECALL_EVENT, channel="email", language="en", now=now,
        description="To a collection agency: placements we recall (listed), with the reason",
        subject="Recall of {{ count }} account{{ 's' if count != 1 else '' }} handed over to {{ agency.name }}",
        body=("Dear {{ agency.name }},\n\nPlease stop collecting on the following account{{ 's' if count != 1 else '' }} with immediate effect "
              "and confirm the recall:\n{% for p in placements %}  {{ p.reference }}  account {{ p.account_number }}  {{ p.name }}  {{ p.amount }}\n{% endfor %}"
              "\nReason: {{ reason }}\n\nPayments you received before today remain due to us in your next recovery file.\n\nKind regards\n{{ sender }}\n"))


def _notify_recall(session: Session, *, ids: list[int], reason: str, now: datetime, actor: Actor) -> list[int]:
    """One email per agency listing the recalled placements, to the agency's contact address."""
    _ensure_templates(session, now=now)
    rows = session.execute(select(AgencyPlacement.id, AgencyPlacement.partner_code, AgencyPlacement.amount_minor, AgencyPlacement.recovered_minor,
                                  AgencyPlacement.currency, Account.account_number, Account.name)
                           .join(Account, Account.id == AgencyPlacement.account_id)
                           .where(AgencyPlacement.id.in_(ids)).order_by(AgencyPlacement.id)).all()
    by: dict[str, list[Any]] = {}
    for r in rows:
        by.setdefault(r[1], []).append(r)
    sent = []
    for code, items in sorted(by.items()):
        p = session.get(Partner, code)
        if p is None or not p.contact_email:
            continue
        ctx = {"agency": {"code": p.code, "name": p.name}, "count": len(items), "reason": reason, "sender": "Debtors department",
               "placements": [{"reference": ref(i[0]), "account_number": i[5], "name": i[6], "amount": str(Money.from_minor(i[2] - i[3], i[4]))}
                              for i in items]}
        sent.append(notifications.send(session, event=RECALL_EVENT, account_id=None, to=p.contact_email, context=ctx, now=now, actor=actor,
                                       category="service", subject_ref=f"agency:{p.code}",
                                       idempotency_key=f"{RECALL_EVENT}:{p.code}:{items[0][0]}:{len(items)}:{now.isoformat()}"))
    return sent


def _get(session: Session, placement_id: int) -> AgencyPlacement:
    pl = session.get(AgencyPlacement, placement_id)
    if pl is None:
        raise NotFound(f"placement {ref(placement_id)} not found", field="placement_id")
    return pl


def recall(session: Session, *, placement_ids: Iterable[int], reason: str, now: datetime, actor: Actor) -> dict[str, Any]:
    """Recall placements from their agencies (one or many) with a reason: each moves to recalled (audit), gets a memo,
    and each agency gets one email listing its recalled accounts. Placements no longer with an agency are left alone
    and counted. Raises ReasonRequired, ActionNotPermitted, NotFound (one named that does not exist), TransitionNotAllowed
    (one named, and it is not with an agency). Nothing is changed when it raises."""
    ids = sorted({int(i) for i in placement_ids})
    if not ids:
        raise UnableToHandOver("choose at least one placement to recall", field="placement_id")
    reason = (reason or "").strip()
    if len(ids) == 1:
        pl = _get(session, ids[0])
        lifecycle.transition(session, AGENCY_PLACEMENT, pl, "recall", now=now, actor=actor, reason=reason, label=f"placement {ref(pl.id)}",
                             details={"agency": pl.partner_code})
        changed = ids
    else:
        known = set(session.execute(select(AgencyPlacement.id).where(AgencyPlacement.id.in_(ids))).scalars())
        missing = [i for i in ids if i not in known]
        if missing:
            raise NotFound(f"placement {', '.join(ref(i) for i in missing[:20])} not found", field="placement_id")
        changed = lifecycle.transition_many(session, AGENCY_PLACEMENT, AgencyPlacement, ids, "recall", now=now, actor=actor, reason=reason)
    if changed:
        _close_rows(session, changed, now=now, actor=actor, reason=reason)
        where = f"pl.id IN ({','.join(str(i) for i in changed)})"
        _placement_memos(session, where, f"Recalled from the agency by {actor.name}: ", reason, now=now, actor=actor)
        _notify_recall(session, ids=changed, reason=reason, now=now, actor=actor)
    session.flush()
    return {"recalled": len(changed), "left_alone": len(ids) - len(changed)}


def _close_rows(session: Session, ids: list[int], *, now: datetime, actor: Actor, reason: str) -> None:
    d = dialect_of(session)
    _x(session, f"UPDATE agency_placement SET closed_at = :now, closed_by = :by, close_reason = :r WHERE id IN ({','.join(str(int(i)) for i in ids)})",
       {"now": _ts(d, now), "by": actor.name, "r": reason})
    session.expire_all()


def mark_returned(session: Session, *, placement_id: int, reason: str, now: datetime, actor: Actor) -> AgencyPlacement:
    """The agency gave the account back uncollectable: the placement closes as returned (reason, audit, memo). The debt
    may go to another agency. Raises NotFound, ReasonRequired, ActionNotPermitted, TransitionNotAllowed."""
    pl = _get(session, placement_id)
    lifecycle.transition(session, AGENCY_PLACEMENT, pl, "return", now=now, actor=actor, reason=reason, label=f"placement {ref(pl.id)}",
                         details={"agency": pl.partner_code})
    _close_rows(session, [pl.id], now=now, actor=actor, reason=reason.strip())
    _placement_memos(session, f"pl.id = {int(pl.id)}", f"Returned by the agency as uncollectable (recorded by {actor.name}): ", reason.strip(),
                     now=now, actor=actor)
    session.flush()
    return _get(session, placement_id)


# --- reading ------------------------------------------------------------------------------------------------------------

@dataclass
class PlacementFilter:
    agency: str = ""
    state: str = ""
    month: str = ""  # YYYY-MM handed over
    account: str = ""
    batch_id: int | None = None


def parse_filter(*, agency: str = "", state: str = "", month: str = "", account: str = "", batch: str = "") -> PlacementFilter:
    """The placement list's filters. Raises UnableToHandOver naming the field."""
    state = (state or "").strip()
    if state and state not in {s.value for s in PlacementState}:
        raise UnableToHandOver(f"'{state}' is not a placement state ({', '.join(s.value for s in PlacementState)})", field="state")
    month = (month or "").strip()
    if month and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise UnableToHandOver(f"'{month}' is not a month like 2026-11", field="month")
    batch = (batch or "").strip().upper().removeprefix("HO-")
    if batch and not batch.isdigit():
        raise UnableToHandOver(f"'{batch}' is not a hand-over batch number", field="batch")
    return PlacementFilter(agency=(agency or "").strip(), state=state, month=month, account=(account or "").strip(), batch_id=int(batch) if batch else None)


def _month_sql(d: Dialect, col: str) -> str:
    return f"to_char({col}, 'YYYY-MM')" if d.pg else f"strftime('%Y-%m', {col})"


def _where(d: Dialect, f: PlacementFilter) -> tuple[str, dict[str, Any]]:
    conds, params = ["1 = 1"], {}
    if f.agency:
        conds.append("pl.partner_code = :agency")
        params["agency"] = f.agency
    if f.state:
        conds.append("pl.state = :state")
        params["state"] = f.state
    if f.month:
        conds.append(f"{_month_sql(d, 'pl.placed_on')} = :month")
        params["month"] = f.month
    if f.account:
        conds.append("a.account_number = :acc")
        params["acc"] = f.account
    if f.batch_id is not None:
        conds.append("pl.batch_id = :batch")
        params["batch"] = f.batch_id
    return " AND ".join(conds), params


def list_placements(session: Session, *, filters: PlacementFilter, limit: int | None = 100, offset: int = 0) -> dict[str, Any]:
    """Placements matching the filters, the open ones and the biggest first; totals over all that match."""
    d = dialect_of(session)
    where, params = _where(d, filters)
    base = f"FROM agency_placement pl JOIN account a ON a.id = pl.account_id JOIN partner pr ON pr.code = pl.partner_code WHERE {where}"
    tot = _x(session, f"""SELECT pl.currency, COUNT(*), SUM(pl.amount_minor), SUM(pl.recovered_minor), SUM(pl.commission_minor),
                                SUM(CASE WHEN pl.state = 'placed' THEN 1 ELSE 0 END) {base} GROUP BY pl.currency ORDER BY pl.currency""", params).all()
    lim = "" if limit is None else f" LIMIT {int(limit)} OFFSET {int(offset)}"
    rows = _x(session, f"""SELECT pl.id, pl.batch_id, pl.account_id, a.account_number, a.name, pl.partner_code, pr.name AS agency_name, pl.state,
                                 pl.amount_minor, pl.written_off_minor, pl.on_book_minor, pl.recovered_minor, pl.bad_debt_recovered_minor,
                                 pl.commission_minor, pl.commission_percent, pl.age_days, pl.oldest_due, pl.currency, pl.placed_on, pl.closed_at,
                                 pl.close_reason {base}
                          ORDER BY pl.state <> 'placed', pl.amount_minor - pl.recovered_minor DESC, pl.id DESC{lim}""", params).all()
    return {"rows": [_row(r) for r in rows],
            "totals": [{"currency": t[0], "count": int(t[1]), "amount_minor": int(t[2] or 0), "recovered_minor": int(t[3] or 0),
                        "commission_minor": int(t[4] or 0), "open": int(t[5] or 0)} for t in tot],
            "count": sum(int(t[1]) for t in tot)}


def _row(r: Any) -> dict[str, Any]:
    return {"id": int(r.id), "ref": ref(r.id), "batch_id": int(r.batch_id), "batch_ref": batch_ref(r.batch_id), "account_id": int(r.account_id),
            "account_number": r.account_number, "name": r.name, "agency": r.partner_code, "agency_name": r.agency_name, "state": r.state,
            "amount_minor": int(r.amount_minor), "written_off_minor": int(r.written_off_minor), "on_book_minor": int(r.on_book_minor),
            "recovered_minor": int(r.recovered_minor), "bad_debt_recovered_minor": int(r.bad_debt_recovered_minor),
            "outstanding_minor": int(r.amount_minor) - int(r.recovered_minor), "commission_minor": int(r.commission_minor),
            "commission_percent": Decimal(r.commission_percent).quantize(Decimal("0.01")), "age_days": int(r.age_days), "oldest_due": r.oldest_due,
            "currency": r.currency, "placed_on": r.placed_on, "closed_at": r.closed_at, "close_reason": r.close_reason}


def get_placement(session: Session, *, placement_id: int, actor: Actor | None = None) -> dict[str, Any]:
    """One placement with its recoveries and the actions the actor may take. Raises NotFound."""
    pl = _get(session, placement_id)
    r = _x(session, """SELECT pl.id, pl.batch_id, pl.account_id, a.account_number, a.name, pl.partner_code, pr.name AS agency_name, pl.state,
                              pl.amount_minor, pl.written_off_minor, pl.on_book_minor, pl.recovered_minor, pl.bad_debt_recovered_minor,
                              pl.commission_minor, pl.commission_percent, pl.age_days, pl.oldest_due, pl.currency, pl.placed_on, pl.closed_at,
                              pl.close_reason
                       FROM agency_placement pl JOIN account a ON a.id = pl.account_id JOIN partner pr ON pr.code = pl.partner_code
                       WHERE pl.id = :i""", {"i": pl.id}).one()
    rec = _x(session, """SELECT r.id, r.line_no, r.agency_ref, r.paid_on, r.amount_minor, r.on_book_minor, r.bad_debt_minor, r.commission_minor,
                                r.currency, r.posted_at, f.id AS file_id, f.filename
                         FROM agency_recovery r JOIN agency_recovery_file f ON f.id = r.file_id WHERE r.placement_id = :i ORDER BY r.paid_on, r.id""",
             {"i": pl.id}).all()
    return _row(r) | {"closed_by": pl.closed_by,
                      "recoveries": [dict(x._mapping) for x in rec],
                      "buttons": AGENCY_PLACEMENT.buttons(pl.state, actor=actor)}


def get_batch(session: Session, *, batch_id: int) -> dict[str, Any]:
    b = session.get(AgencyBatch, batch_id)
    if b is None:
        raise NotFound(f"hand-over batch {batch_id} not found", field="batch_id")
    p = session.get(Partner, b.partner_code)
    data = list_placements(session, filters=PlacementFilter(batch_id=b.id), limit=500)
    return {"id": b.id, "ref": batch_ref(b.id), "agency": b.partner_code, "agency_name": p.name if p else b.partner_code, "accounts": b.accounts,
            "amount_minor": b.amount_minor, "currency": b.currency, "criteria": b.criteria, "placed_on": b.placed_on, "created_at": b.created_at,
            "created_by": b.created_by, "export_format": get_terms(session, code=b.partner_code)["export_format"], "placements": data}


def list_batches(session: Session, *, limit: int = 20) -> list[dict[str, Any]]:
    rows = session.execute(select(AgencyBatch, Partner.name).join(Partner, Partner.code == AgencyBatch.partner_code)
                           .order_by(AgencyBatch.id.desc()).limit(limit)).all()
    return [{"id": b.id, "ref": batch_ref(b.id), "agency": b.partner_code, "agency_name": n, "accounts": b.accounts, "amount_minor": b.amount_minor,
             "currency": b.currency, "placed_on": b.placed_on, "created_by": b.created_by} for b, n in rows]


__all__ = ["AGENCY_PLACEMENT", "DEFAULT_TERMS", "FIELDS", "PlacementFilter", "RECOVERY_FIELDS", "REASONS", "SOURCES", "Selection", "UnableToHandOver",
           "UnableToSaveTerms", "batch_ref", "batch_rows", "commission_minor", "commission_percent", "dry_run", "ensure_terms", "export_batch",
           "get_batch", "get_placement", "get_terms", "hand_over", "list_agencies", "list_batches", "list_placements", "mark_returned", "parse_filter",
           "parse_selection", "recall", "ref", "save_terms"]
