"""IFRS 9 bad-debt provision, simplified approach (issue 11 item 6): month-end ageing snapshots from the ledger (or
imported from the prior billing system), roll rates between buckets, loss rates as the chain of roll rates to write-off,
a forward-looking adjustment, and a stored, reproducible provision run per month end with its month-on-month movement.

Method, in one place:
- A month end's ageing is the ledger as it stood at the end of the month's last local day: entries posted up to then,
  credits settling the oldest debits first (`billing.service.open_debits_cte`, as the aged-debtors report does).
- Roll rate of bucket i (0..4) in month m = what of an account's bucket-i balance at m sits in bucket i+1 at m+1, per
  account (min of the two), summed over accounts ÷ the bucket's balance at m. For 120+: rolled = written off in the
  next month (the absorbing state; write-off entries the debtors write-offs post), stayed = still 120+ a month later.
  Months imported without rolled amounts use the segment totals instead (min(B_i(m), B_i+1(m+1))).
- Averaged over the last `lookback` (12) transitions weighted by balance: Σ rolled ÷ Σ balance.
- Loss rate of 120+ = written-off ÷ (1 − stayed) (what leaves 120+ by write-off rather than payment; 1 if nothing
  leaves); loss rate of bucket i = roll rate i × loss rate i+1. Rates are Decimals to 8 places, half-up.
- Provision per currency, segment and bucket = balance × loss rate × (1 + adjustment %), half-up to the minor unit,
  never more than the balance. A segment with no balance in a bucket over the whole window takes the all-segments rate.
"""

from __future__ import annotations

import calendar
import csv
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opsline.core.batching import pages
from opsline.core.textfiles import UnreadableTextFile, decode_text_file
from opsline.billing import service as billing
from opsline.billing.periods import add_months
from opsline.billing.sql import Dialect, dialect_of
from opsline.core import events
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.core.localtime import local_date, start_of_day
from opsline.core.money import Money, UnparseableAmount, allocate_minor, parse_minor
from opsline.db.session import lock_for_write
from opsline.debtors.provision_models import (AGEING_ROWS, BUCKETS, WRITTEN_OFF, ProvisionAdjustment, ProvisionAgeing,
                                              ProvisionHistoryImport, ProvisionLine, ProvisionRun, ProvisionSnapshot)

LOOKBACK = 12  # months of transitions the roll rates average over; IFRS 9 work here needs at least a year
MAX_LOOKBACK = 36
RATE_Q = Decimal("0.00000001")
PCT_Q = Decimal("0.0001")
ONE = Decimal(1)
ALL = ""  # segment code meaning every segment (overall adjustment, all-segments rates)
BUCKET_LABELS = billing.BUCKET_LABELS
NEXT = {b: (BUCKETS[k + 1] if k + 1 < len(BUCKETS) else "written off") for k, b in enumerate(BUCKETS)}
MAX_IMPORT_BYTES = 10_000_000
MAX_ERRORS = 25
BUCKET_ALIASES = {"current": "current", "0": "current", "d30": "d30", "1-30": "d30", "30": "d30", "d60": "d60", "31-60": "d60", "60": "d60",
                  "d90": "d90", "61-90": "d90", "90": "d90", "d120": "d120", "91-120": "d120", "120": "d120", "d120_plus": "d120_plus",
                  "120+": "d120_plus", "121+": "d120_plus", "written_off": WRITTEN_OFF, "written off": WRITTEN_OFF, "write-off": WRITTEN_OFF,
                  "write_off": WRITTEN_OFF}


class UnableToProvide(InvalidInput):
    title = "Unable to calculate the provision"
    type_slug = "unable-to-provide"


class UnableToImportHistory(InvalidInput):
    title = "Unable to import the ageing history"
    type_slug = "unable-to-import-history"


# --- months -------------------------------------------------------------------------------------------------------------

def parse_month(raw: str | None, *, field: str = "month") -> date:
    """'2026-11' -> date(2026, 11, 1). Raises UnableToProvide naming the field."""
    raw = (raw or "").strip()
    if not re.fullmatch(r"\d{4}-\d{2}", raw):
        raise UnableToProvide(f"'{raw}' is not a month (YYYY-MM)", field=field)
    try:
        return date(int(raw[:4]), int(raw[5:]), 1)
    except ValueError:
        raise UnableToProvide(f"'{raw}' is not a month (YYYY-MM)", field=field) from None


def month_text(m: date) -> str:
    return m.strftime("%Y-%m")


def last_day(m: date) -> date:
    return m.replace(day=calendar.monthrange(m.year, m.month)[1])


def month_end_instant(m: date, tz: ZoneInfo) -> datetime:
    """The last instant of month `m` in the operator's timezone (entries posted up to and including it count)."""
    return start_of_day(add_months(m, 1), tz) - timedelta(microseconds=1)


def last_ended_month(*, now: datetime, tz: ZoneInfo) -> date:
    return add_months(local_date(now, tz).replace(day=1), -1)


def check_ended(m: date, *, now: datetime, tz: ZoneInfo, field: str = "month") -> date:
    """Raises UnableToProvide when month `m` has not ended yet at `now` (a provision is for a month end that happened)."""
    if m > last_ended_month(now=now, tz=tz):
        raise UnableToProvide(f"{month_text(m)} has not ended yet; the latest month end is {month_text(last_ended_month(now=now, tz=tz))}", field=field)
    return m


def _months(first: date, last: date) -> list[date]:
    out, m = [], first
    while m <= last:
        out.append(m)
        m = add_months(m, 1)
    return out


# --- the arithmetic (no database) ----------------------------------------------------------------------------------------

def rate(num: int, den: int) -> Decimal | None:
    """num ÷ den to 8 places half-up, at most 1; None when there is no balance to measure against."""
    if den <= 0:
        return None
    return min(ONE, (Decimal(num) / Decimal(den)).quantize(RATE_Q, rounding=ROUND_HALF_UP))


def loss_rates(roll: dict[str, Decimal], stayed: Decimal) -> dict[str, Decimal]:
    """Loss rate per bucket from the roll rates (roll['d120_plus'] = written off of 120+ per month) and the share of
    120+ still 120+ a month later: 120+ loses written-off ÷ (1 − stayed), each younger bucket its roll rate × the next
    bucket's loss rate."""
    w = roll[BUCKETS[-1]]
    leave = ONE - stayed
    out = {BUCKETS[-1]: ONE if leave <= 0 else min(ONE, (w / leave).quantize(RATE_Q, rounding=ROUND_HALF_UP))}
    for k in range(len(BUCKETS) - 2, -1, -1):
        b = BUCKETS[k]
        out[b] = (roll[b] * out[BUCKETS[k + 1]]).quantize(RATE_Q, rounding=ROUND_HALF_UP)
    return {b: out[b] for b in BUCKETS}


def provision_minor(balance_minor: int, loss_rate: Decimal, adjustment_pct: Decimal) -> int:
    """balance × loss rate × (1 + adjustment %), half-up to the minor unit, never below 0 nor above the balance."""
    raw = Decimal(balance_minor) * loss_rate * (ONE + adjustment_pct / 100)
    return max(0, min(balance_minor, int(raw.quantize(ONE, rounding=ROUND_HALF_UP))))


def split_to_accounts(amount_minor: int, balances: Sequence[int]) -> list[int]:
    """A line's provision shared over its accounts in proportion to their balances (largest remainder): sums back exactly."""
    if not balances:
        return []
    if sum(balances) <= 0:
        return allocate_minor(amount_minor, [1] * len(balances))
    return allocate_minor(amount_minor, list(balances))


@dataclass
class Cell:
    """A bucket's balance at a month end, and what of it moved on (rolled) or stayed (120+) by the next."""

    balance: int = 0
    rolled: int | None = None
    stayed: int | None = None
    accounts: int = 0


MonthData = dict[tuple[str, str], dict[str, Cell]]  # (currency, segment) -> bucket (and written_off) -> cell


def transition(this: dict[str, Cell], nxt: dict[str, Cell]) -> tuple[dict[str, int], dict[str, int], int]:
    """(balance per bucket, rolled per bucket, stayed in 120+) for one segment from month m to m+1: the rolled amounts
    measured per account where known, else estimated from the segment totals."""
    bal = {b: this.get(b, Cell()).balance for b in BUCKETS}
    nb = {b: nxt.get(b, Cell()).balance for b in AGEING_ROWS}
    rolled: dict[str, int] = {}
    for k, b in enumerate(BUCKETS):
        known = this.get(b, Cell()).rolled
        if known is not None:
            rolled[b] = min(bal[b], known)
        elif k + 1 < len(BUCKETS):
            rolled[b] = min(bal[b], nb[BUCKETS[k + 1]])
        else:
            rolled[b] = min(bal[b], nb[WRITTEN_OFF])
    last = BUCKETS[-1]
    known_stay = this.get(last, Cell()).stayed
    if known_stay is not None:
        stayed = min(bal[last] - rolled[last], known_stay)
    else:
        stayed = max(0, min(bal[last] - rolled[last], nb[last] - rolled[BUCKETS[-2]]))
    return bal, rolled, stayed


@dataclass
class Rates:
    roll: dict[str, Decimal]
    stayed: Decimal
    loss: dict[str, Decimal]
    basis: dict[str, str]  # bucket -> "segment" | "all segments" | "no history (100 %)"
    balance: dict[str, int] = field(default_factory=dict)
    rolled: dict[str, int] = field(default_factory=dict)


def average_rates(sums: dict[str, list[int]], fallback: "Rates | None" = None) -> Rates:
    """Balance-weighted roll rates from Σ balance, Σ rolled (per bucket) and Σ stayed (key 'stayed': [stayed, 120+ balance])."""
    roll: dict[str, Decimal] = {}
    basis: dict[str, str] = {}
    for b in BUCKETS:
        bal, rol = sums.get(b, [0, 0])
        r = rate(rol, bal)
        if r is not None:
            roll[b], basis[b] = r, "segment"
        elif fallback is not None:
            roll[b], basis[b] = fallback.roll[b], "all segments"
        else:
            roll[b], basis[b] = ONE, "no history (100 %)"
    st, st_bal = sums.get("stayed", [0, 0])
    s = rate(st, st_bal)
    stayed = s if s is not None else (fallback.stayed if fallback is not None else Decimal(0))
    return Rates(roll, stayed, loss_rates(roll, stayed), basis, {b: sums.get(b, [0, 0])[0] for b in BUCKETS},
                 {b: sums.get(b, [0, 0])[1] for b in BUCKETS})


# --- ledger snapshots ----------------------------------------------------------------------------------------------------

def _x(session: Session, sql: str, params: dict[str, Any] | None = None) -> Any:
    return session.execute(text(sql), params or {})


def _serialise(session: Session) -> None:
    """One provision writer at a time (snapshots, imports, runs): a concurrent repeat waits, then finds the first's work."""
    if dialect_of(session).pg:
        _x(session, "SELECT pg_advisory_xact_lock(hashtext('opsline.debtors.provision'))")
    else:
        lock_for_write(session)


def _bucket_cols(dia: Dialect) -> str:
    days = dia.days("x.due", dia.d("asof_d"))
    cases = {"current": f"{days} <= 0", "d30": f"{days} BETWEEN 1 AND 30", "d60": f"{days} BETWEEN 31 AND 60",
             "d90": f"{days} BETWEEN 61 AND 90", "d120": f"{days} BETWEEN 91 AND 120", "d120_plus": f"{days} > 120"}
    return ", ".join(f"SUM(CASE WHEN {c} THEN x.open_minor ELSE 0 END) AS {b}" for b, c in cases.items())


def _snapshot_select(dia: Dialect) -> str:
    zeros = ", ".join(f"0 AS {b}" for b in BUCKETS)
    sums = ", ".join(f"SUM(u.{b})" for b in BUCKETS)
    return f"""WITH {billing.open_debits_cte(dia)},
        pa AS (SELECT x.account_id, x.currency, {_bucket_cols(dia)} FROM x GROUP BY x.account_id, x.currency HAVING SUM(x.open_minor) > 0),
        wo AS (SELECT account_id, currency, -SUM(amount_minor) AS wo FROM ledger_entry
               WHERE kind = 'write_off' AND posted_at > :s AND posted_at <= :t GROUP BY account_id, currency),
        u AS (SELECT account_id, currency, {', '.join(BUCKETS)}, 0 AS wo FROM pa
              UNION ALL SELECT account_id, currency, {zeros}, wo FROM wo WHERE wo > 0)
        SELECT {dia.d('me')} AS month_end, u.account_id, u.currency, a.segment_code, COALESCE(a.value_tier_code, '') AS value_tier_code, {sums}, SUM(u.wo)
        FROM u JOIN account a ON a.id = u.account_id GROUP BY u.account_id, u.currency, a.segment_code, a.value_tier_code"""


def ledger_months(session: Session, *, now: datetime, tz: ZoneInfo) -> list[date]:
    """Month ends the ledger covers: from the month of its first entry to the last month that has ended."""
    first = _x(session, "SELECT MIN(posted_at) FROM ledger_entry").scalar()
    if first is None:
        return []
    if not isinstance(first, datetime):
        first = datetime.fromisoformat(str(first))
    if first.tzinfo is None:
        first = first.replace(tzinfo=ZoneInfo("UTC"))
    return _months(local_date(first, tz).replace(day=1), last_ended_month(now=now, tz=tz))


def take_snapshot(session: Session, *, month: date, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """(Re)take the ledger ageing of a month end, set-based: per account and per segment and value tier, and the roll
    amounts from the month before and to the month after where those are taken. Returns {"month", "accounts",
    "balance_minor"}. Raises UnableToProvide (month not ended)."""
    check_ended(month, now=now, tz=tz)
    _serialise(session)
    dia = dialect_of(session)
    me = last_day(month)
    t = month_end_instant(month, tz)
    s = month_end_instant(add_months(month, -1), tz)
    params = {"t": dia.bind_ts(t), "s": dia.bind_ts(s), "asof_d": dia.bind_date(me), "me": dia.bind_date(me)}
    _x(session, "DELETE FROM provision_account_snapshot WHERE month_end = :me", {"me": dia.bind_date(me)})
    _x(session, "DELETE FROM provision_ageing WHERE month_end = :me AND source = 'ledger'", {"me": dia.bind_date(me)})
    cols = ", ".join(("month_end", "account_id", "currency", "segment_code", "value_tier_code", *BUCKETS, "written_off_minor"))
    _x(session, f"INSERT INTO provision_account_snapshot ({cols}) SELECT * FROM ({_snapshot_select(dia)}) q", params)
    at = dia.bind_ts(now)
    for b in AGEING_ROWS:
        col = "written_off_minor" if b == WRITTEN_OFF else b
        _x(session, f"""INSERT INTO provision_ageing (month_end, source, currency, segment_code, value_tier_code, bucket, balance_minor, accounts, computed_at)
                        SELECT month_end, 'ledger', currency, segment_code, value_tier_code, '{b}', SUM({col}), SUM(CASE WHEN {col} > 0 THEN 1 ELSE 0 END), :at
                        FROM provision_account_snapshot WHERE month_end = :me GROUP BY month_end, currency, segment_code, value_tier_code""",
           {"me": dia.bind_date(me), "at": at})
    tot = _x(session, f"SELECT COUNT(*), COALESCE(SUM({' + '.join(BUCKETS)}), 0) FROM provision_account_snapshot WHERE month_end = :me",
             {"me": dia.bind_date(me)}).one()
    session.execute(delete(ProvisionSnapshot).where(ProvisionSnapshot.month_end == me))
    session.add(ProvisionSnapshot(month_end=me, computed_at=now, accounts=int(tot[0]), balance_minor=int(tot[1])))
    session.flush()
    taken = set(session.execute(select(ProvisionSnapshot.month_end).where(
        ProvisionSnapshot.month_end.in_([last_day(add_months(month, -1)), last_day(add_months(month, 1))]))).scalars())
    if last_day(add_months(month, -1)) in taken:
        _rolls(session, prev=add_months(month, -1), nxt=month)
    if last_day(add_months(month, 1)) in taken:
        _rolls(session, prev=month, nxt=add_months(month, 1))
    return {"month": month_text(month), "accounts": int(tot[0]), "balance_minor": int(tot[1])}


def _rolls(session: Session, *, prev: date, nxt: date) -> None:
    """Per account, what of each bucket at `prev` sits one bucket older at `nxt` (120+: written off in `nxt`, or still
    120+), summed per segment and tier onto `prev`'s ledger ageing rows."""
    dia = dialect_of(session)
    lst, gst = dia.least, dia.greatest

    def n(c: str) -> str:
        return f"COALESCE(n.{c}, 0)"

    wo = lst("p.d120_plus", n("written_off_minor"))
    exprs = [f"SUM({lst('p.' + BUCKETS[k], n(BUCKETS[k + 1]))}) AS {BUCKETS[k]}" for k in range(len(BUCKETS) - 1)]
    exprs.append(f"SUM({wo}) AS d120_plus")
    exprs.append(f"SUM({lst('p.d120_plus - ' + wo, gst('0', n('d120_plus') + ' - ' + lst('p.d120', n('d120_plus'))))}) AS stayed")
    rows = _x(session, f"""SELECT p.currency, p.segment_code, p.value_tier_code, {', '.join(exprs)}
                           FROM provision_account_snapshot p LEFT JOIN provision_account_snapshot n
                             ON n.month_end = {dia.d('nx')} AND n.account_id = p.account_id AND n.currency = p.currency
                           WHERE p.month_end = {dia.d('pv')} GROUP BY p.currency, p.segment_code, p.value_tier_code""",
              {"pv": dia.bind_date(last_day(prev)), "nx": dia.bind_date(last_day(nxt))}).all()
    updates = []
    for r in rows:
        for b in BUCKETS:
            updates.append({"cur": r.currency, "seg": r.segment_code, "tier": r.value_tier_code, "b": b, "rolled": int(getattr(r, b) or 0),
                            "stayed": int(r.stayed or 0) if b == BUCKETS[-1] else None})
    if updates:
        _x(session, f"""UPDATE provision_ageing SET rolled_minor = :rolled, stayed_minor = :stayed
                        WHERE month_end = {dia.d('pv')} AND source = 'ledger' AND currency = :cur AND segment_code = :seg
                          AND value_tier_code = :tier AND bucket = :b""",
           [u | {"pv": dia.bind_date(last_day(prev))} for u in updates])


# --- history: which month ends come from where -----------------------------------------------------------------------

def history_sources(session: Session, *, now: datetime, tz: ZoneInfo) -> dict[date, str]:
    """Month (first day) -> 'import' or 'ledger' for every month end with history. Imported months win: they are the
    prior system's books for months Opsline's ledger did not hold in full."""
    imported = {(d.replace(day=1) if isinstance(d, date) else date.fromisoformat(str(d)[:10]).replace(day=1))
                for d in session.execute(select(ProvisionAgeing.month_end).where(ProvisionAgeing.source == "import").distinct()).scalars()}
    out = {m: "ledger" for m in ledger_months(session, now=now, tz=tz)}
    out.update({m: "import" for m in imported})
    return dict(sorted(out.items()))


def ensure_snapshots(session: Session, *, months: Iterable[date], now: datetime, tz: ZoneInfo,
                     progress: Callable[[int, int], None] | None = None) -> int:
    """Take the ledger snapshots not yet taken among `months`, oldest first. Returns how many were taken."""
    want = sorted(set(months))
    have = {billing.as_date(d) for d in session.execute(select(ProvisionSnapshot.month_end).where(
        ProvisionSnapshot.month_end.in_([last_day(m) for m in want]))).scalars()} if want else set()
    todo = [m for m in want if last_day(m) not in have]
    for k, m in enumerate(todo, start=1):
        take_snapshot(session, month=m, now=now, tz=tz)
        if progress:
            progress(k, len(todo))
    return len(todo)


def _load(session: Session, *, months: list[date], sources: dict[date, str]) -> dict[date, MonthData]:
    """Segment totals per month from the month's source (tiers summed); a rolled/stayed amount is known only when every
    tier's is."""
    if not months:
        return {}
    rows = session.execute(select(ProvisionAgeing).where(ProvisionAgeing.month_end.in_([last_day(m) for m in months]))).scalars().all()
    out: dict[date, MonthData] = {m: {} for m in months}
    no_roll: set[tuple[date, str, str, str]] = set()
    no_stay: set[tuple[date, str, str, str]] = set()
    for r in rows:
        m = billing.as_date(r.month_end).replace(day=1)  # type: ignore[union-attr]
        if sources.get(m) != r.source:
            continue
        key = (m, r.currency, r.segment_code, r.bucket)
        cell = out[m].setdefault((r.currency, r.segment_code), {}).setdefault(r.bucket, Cell(rolled=0, stayed=0))
        cell.balance += int(r.balance_minor)
        cell.accounts += int(r.accounts or 0)
        if r.rolled_minor is None:
            no_roll.add(key)
        else:
            cell.rolled = (cell.rolled or 0) + int(r.rolled_minor)
        if r.stayed_minor is None:
            no_stay.add(key)
        else:
            cell.stayed = (cell.stayed or 0) + int(r.stayed_minor)
    for m, cur, seg, b in no_roll:
        out[m][(cur, seg)][b].rolled = None
    for m, cur, seg, b in no_stay:
        out[m][(cur, seg)][b].stayed = None
    return out


@dataclass
class Window:
    month: date
    lookback: int
    months: list[date]  # the month ends used, oldest first (lookback + 1 of them)
    sources: dict[date, str]
    data: dict[date, MonthData]


def window(session: Session, *, month: date, lookback: int, now: datetime, tz: ZoneInfo, strict: bool = True, take: bool = True,
           progress: Callable[[int, int], None] | None = None) -> Window:
    """The month ends the roll rates of `month` average over, with their data (ledger snapshots taken where missing, or
    with take=False left out: a report page reads, it does not write). strict: raises UnableToProvide naming what is
    missing when fewer than `lookback` transitions have history."""
    low = LOOKBACK if strict else 1
    if not low <= lookback <= MAX_LOOKBACK:
        raise UnableToProvide(f"the roll rates average over {low} to {MAX_LOOKBACK} months, not {lookback}", field="lookback")
    check_ended(month, now=now, tz=tz)
    sources = history_sources(session, now=now, tz=tz)
    months = _months(add_months(month, -lookback), month)
    missing = [m for m in months if m not in sources]
    if strict and missing:
        have = len(months) - len(missing)
        raise UnableToProvide(
            f"the roll-rate matrix for {month_text(month)} needs {lookback} months of history: month ends {month_text(months[0])} to "
            f"{month_text(month)} ({lookback + 1} month ends); {have} are there, missing {_ranges(missing)}. Import the prior billing "
            f"system's month-end ageing for those months (history import).", field="month")
    months = [m for m in months if m in sources]
    if take:
        ensure_snapshots(session, months=[m for m in months if sources[m] == "ledger"], now=now, tz=tz, progress=progress)
    else:
        taken = {billing.as_date(d) for d in session.execute(select(ProvisionSnapshot.month_end)).scalars()}
        months = [m for m in months if sources[m] == "import" or last_day(m) in taken]
    return Window(month, lookback, months, sources, _load(session, months=months, sources=sources))


def _ranges(months: list[date]) -> str:
    """'2025-11 to 2026-02, 2026-05' for a sorted list of months."""
    out: list[str] = []
    start = prev = None
    for m in months + [None]:  # type: ignore[list-item]
        if m is not None and prev is not None and add_months(prev, 1) == m:
            prev = m
            continue
        if start is not None:
            out.append(month_text(start) if start == prev else f"{month_text(start)} to {month_text(prev)}")  # type: ignore[arg-type]
        start = prev = m
    return ", ".join(out)


def roll_rates(w: Window) -> dict[tuple[str, str], Rates]:
    """Averaged rates per (currency, segment), and per (currency, ALL): the all-segments rates a segment without history
    in a bucket falls back to."""
    sums: dict[tuple[str, str], dict[str, list[int]]] = {}
    for m in w.months[:-1]:
        nxt = add_months(m, 1)
        if nxt not in w.data:
            continue
        this, then = w.data[m], w.data[nxt]
        for key in this:
            bal, rolled, stayed = transition(this[key], then.get(key, {}))
            for k2 in (key, (key[0], ALL)):
                acc = sums.setdefault(k2, {})
                for b in BUCKETS:
                    cell = acc.setdefault(b, [0, 0])
                    cell[0] += bal[b]
                    cell[1] += rolled[b]
                st = acc.setdefault("stayed", [0, 0])
                st[0] += stayed
                st[1] += bal[BUCKETS[-1]]
    out: dict[tuple[str, str], Rates] = {}
    for key in sorted(k for k in sums if k[1] == ALL):
        out[key] = average_rates(sums[key])
    for key in sorted(k for k in sums if k[1] != ALL):
        out[key] = average_rates(sums[key], fallback=out[(key[0], ALL)])
    return out


def monthly_rates(w: Window, *, segment: str = ALL) -> list[dict[str, Any]]:
    """One row per transition m -> m+1 of the window: roll rates of that month alone (the trend), all segments or one."""
    out = []
    for m in w.months[:-1]:
        nxt = add_months(m, 1)
        if nxt not in w.data:
            continue
        per_cur: dict[str, dict[str, list[int]]] = {}
        for key, cells in w.data[m].items():
            if segment and key[1] != segment:
                continue
            bal, rolled, stayed = transition(cells, w.data[nxt].get(key, {}))
            acc = per_cur.setdefault(key[0], {})
            for b in BUCKETS:
                c = acc.setdefault(b, [0, 0])
                c[0] += bal[b]
                c[1] += rolled[b]
            st = acc.setdefault("stayed", [0, 0])
            st[0] += stayed
            st[1] += bal[BUCKETS[-1]]
        for cur, acc in sorted(per_cur.items()):
            out.append({"month": month_text(m), "to": month_text(nxt), "currency": cur, "source": f"{w.sources[m]} → {w.sources[nxt]}",
                        "balance": {b: acc[b][0] for b in BUCKETS}, "rolled": {b: acc[b][1] for b in BUCKETS},
                        "rate": {b: rate(acc[b][1], acc[b][0]) for b in BUCKETS}, "stayed": rate(acc["stayed"][0], acc["stayed"][1])})
    return out


# --- forward-looking adjustment --------------------------------------------------------------------------------------

def parse_pct(raw: str | None, *, field: str = "pct") -> Decimal:
    """'5', '-2.5', '+10 %' -> Decimal percent. Raises UnableToProvide naming the field."""
    s = (raw or "").strip().replace("%", "").replace(" ", "").replace(",", ".")
    if not s:
        raise UnableToProvide("give the adjustment in percent (e.g. 5 or -2.5)", field=field)
    try:
        v = Decimal(s)
    except InvalidOperation:
        raise UnableToProvide(f"'{raw}' is not a percentage", field=field) from None
    if not v.is_finite() or v <= -100 or v > 1000:
        raise UnableToProvide(f"{raw} is outside -100 % (exclusive) to 1000 %", field=field)
    if v != v.quantize(PCT_Q):
        raise UnableToProvide(f"{raw}: at most 4 decimals", field=field)
    return v.quantize(PCT_Q)


def _segments(session: Session) -> dict[str, str]:
    return {r.code: r.name for r in _x(session, "SELECT code, name FROM segment ORDER BY code")}


def set_adjustment(session: Session, *, month: date, segment_code: str, pct: Decimal, reason: str, now: datetime, tz: ZoneInfo,
                   actor: Actor) -> ProvisionAdjustment:
    """Enter the forward-looking adjustment in effect from `month` on (for one segment, or all with ''), audited.
    Raises UnableToProvide (no reason, unknown segment, a month more than a year ahead)."""
    reason = (reason or "").strip()
    if not reason:
        raise UnableToProvide("say why the loss rates need this adjustment (economic outlook, a segment's experience ...)", field="reason")
    segment_code = (segment_code or "").strip()
    if segment_code and segment_code not in _segments(session):
        raise UnableToProvide(f"'{segment_code}' is not a segment", field="segment")
    if month > add_months(local_date(now, tz).replace(day=1), 12):
        raise UnableToProvide(f"{month_text(month)} is more than a year ahead", field="month")
    adj = ProvisionAdjustment(valid_from=month, segment_code=segment_code, pct=pct, reason=reason, created_at=now, created_by=actor.name)
    session.add(adj)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="provision_adjustment", entity_id=adj.id, action="set", reason=reason,
                  after={"valid_from": month_text(month), "segment": segment_code or "all segments", "pct": str(pct)})
    return adj


def adjustments_for(session: Session, *, month: date) -> dict[str, dict[str, Any]]:
    """The adjustment in effect in `month` per segment code ('' = the overall one): the latest entered from a month not
    after it."""
    rows = session.execute(select(ProvisionAdjustment).where(ProvisionAdjustment.valid_from <= month)
                           .order_by(ProvisionAdjustment.valid_from, ProvisionAdjustment.id)).scalars().all()
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        out[r.segment_code] = {"id": r.id, "pct": Decimal(r.pct).quantize(PCT_Q), "reason": r.reason, "valid_from": month_text(r.valid_from),
                               "by": r.created_by, "at": r.created_at.isoformat()}
    return out


def list_adjustments(session: Session, *, limit: int = 50) -> list[dict[str, Any]]:
    rows = session.execute(select(ProvisionAdjustment).order_by(ProvisionAdjustment.id.desc()).limit(limit)).scalars().all()
    return [{"id": r.id, "valid_from": month_text(r.valid_from), "segment": r.segment_code or "all segments", "pct": Decimal(r.pct).quantize(PCT_Q),
             "reason": r.reason, "by": r.created_by, "at": r.created_at} for r in rows]


# --- history import from the prior billing system -----------------------------------------------------------------------

HISTORY_COLUMNS = ("month", "segment", "bucket", "balance", "rolled", "stayed", "currency")


def _xlsx_rows(data: bytes) -> list[tuple[int, list[str]]]:
    """The first sheet of an xlsx as (row number, cell texts): read with the standard library and lxml (no formulas are
    evaluated; a cell's stored value is its text)."""
    from lxml import etree

    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    rel_ns = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        if sum(i.file_size for i in z.infolist()) > 5 * MAX_IMPORT_BYTES:  # a zip bomb is not a month-end ageing
            raise ValueError("too large once unpacked")
        names = set(z.namelist())
        shared: list[str] = []
        if "xl/sharedStrings.xml" in names:
            for si in etree.fromstring(z.read("xl/sharedStrings.xml")).findall("m:si", ns):
                shared.append("".join(si.itertext()))
        wb = etree.fromstring(z.read("xl/workbook.xml"))
        first = wb.find("m:sheets/m:sheet", ns)
        target = "xl/worksheets/sheet1.xml"
        if first is not None and "xl/_rels/workbook.xml.rels" in names:
            rels = etree.fromstring(z.read("xl/_rels/workbook.xml.rels"))
            for rel in rels:
                if rel.get("Id") == first.get(rel_ns):
                    t = rel.get("Target", "")
                    target = t.lstrip("/") if t.startswith("/") else "xl/" + t
        sheet = etree.fromstring(z.read(target))
    out = []
    for row in sheet.iterfind(".//m:sheetData/m:row", ns):
        cells: dict[int, str] = {}
        for c in row.findall("m:c", ns):
            ref = c.get("r", "")
            col = 0
            for ch in re.match(r"[A-Z]*", ref).group(0):  # type: ignore[union-attr]
                col = col * 26 + ord(ch) - 64
            kind = c.get("t", "n")
            v = c.find("m:v", ns)
            if kind == "s" and v is not None:
                val = shared[int(v.text or 0)]
            elif kind == "inlineStr":
                val = "".join(c.find("m:is", ns).itertext()) if c.find("m:is", ns) is not None else ""  # type: ignore[union-attr]
            else:
                val = v.text or "" if v is not None else ""
                if kind == "n" and val:
                    val = _xlsx_number(val)
            cells[col - 1] = val
        width = max(cells) + 1 if cells else 0
        out.append((int(row.get("r", len(out) + 1)), [cells.get(k, "") for k in range(width)]))
    return out


def _xlsx_number(v: str) -> str:
    """An xlsx number as text, without binary-float noise (amounts have at most a few decimals)."""
    try:
        return format(Decimal(v).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP).normalize(), "f")
    except InvalidOperation:
        return v


def _rows_of(data: bytes, filename: str) -> list[tuple[int, list[str]]]:
    if filename.lower().endswith(".xlsx") or data[:2] == b"PK":
        try:
            return _xlsx_rows(data)
        except (zipfile.BadZipFile, KeyError, ValueError, IndexError, SyntaxError) as exc:  # lxml's XMLSyntaxError is a SyntaxError
            raise UnableToImportHistory(f"{filename}: not a readable xlsx workbook ({exc})", field="file") from None
    try:
        content, _ = decode_text_file(data)  # a prior system's export: UTF-8, Windows-1252, Latin-1 or UTF-16
    except UnreadableTextFile as exc:
        where = f" line {exc.line}" if exc.line else ""
        raise UnableToImportHistory(f"{filename}{where}: {exc} (upload a CSV or the xlsx)", field="file") from None
    sample = content[:2048]
    delim = ";" if sample.count(";") > sample.count(",") else ","
    reader = csv.reader(io.StringIO(content), delimiter=delim)
    try:
        return [(n, row) for n, row in enumerate(reader, start=1)]
    except csv.Error as exc:  # e.g. a field past the csv module's limit
        raise UnableToImportHistory(f"{filename} line {reader.line_num}: not readable as CSV ({exc})", field="file") from None


def _month_from_cell(raw: str) -> date | None:
    raw = raw.strip()
    if re.fullmatch(r"\d{4}-\d{2}", raw):
        m = int(raw[5:])
        return date(int(raw[:4]), m, 1) if 1 <= m <= 12 else None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        try:
            return date.fromisoformat(raw).replace(day=1)
        except ValueError:
            return None
    if re.fullmatch(r"\d{5}(\.0+)?", raw):  # an Excel date serial: the cell was typed 2025-09 and Excel made it a date
        return (date(1899, 12, 30) + timedelta(days=int(Decimal(raw)))).replace(day=1)
    return None


def _amount(raw: str, currency: str) -> int | None:
    s = raw.strip().replace(" ", "").replace("\u00a0", "")
    if "," in s and "." not in s:  # a prior system's decimal comma
        s = s.replace(",", ".")
    try:
        return parse_minor(s, currency)  # huge, NaN or over-precise amounts are refused there, never a Decimal error here
    except UnparseableAmount:
        return None


def parse_history(data: bytes, *, filename: str, segments: Iterable[str], default_currency: str, last_month: date) -> list[dict[str, Any]]:
    """Validate every line of a month-end ageing history file: month (YYYY-MM), segment (a segment code), bucket
    (current, 1-30, 31-60, 61-90, 91-120, 120+ or written_off), balance (amount), and optionally rolled (what of the
    balance was one bucket older a month later; for 120+ what was written off), stayed (120+ only: still 120+ a month
    later) and currency. Returns the rows; raises UnableToImportHistory listing each bad line as file, line and field."""
    if len(data) > MAX_IMPORT_BYTES:
        raise UnableToImportHistory(f"{filename}: larger than {MAX_IMPORT_BYTES // 1_000_000} MB", field="file")
    rows = [(n, r) for n, r in _rows_of(data, filename) if any(c.strip() for c in r)]
    if not rows:
        raise UnableToImportHistory(f"{filename}: the file is empty", field="file")
    head_no, head = rows[0]
    cols = {c.strip().lower(): k for k, c in enumerate(head)}
    missing = [c for c in ("month", "segment", "bucket", "balance") if c not in cols]
    if missing:
        raise UnableToImportHistory(f"{filename} line {head_no}: the header needs the columns month, segment, bucket, balance "
                                    f"(optional: rolled, stayed, currency); missing {', '.join(missing)}", field="file")
    segs = set(segments)
    errors: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    seen: dict[tuple[date, str, str, str], int] = {}

    def err(line: int, fld: str, msg: str) -> None:
        errors.append({"file": filename, "line": line, "field": fld, "message": msg})

    def cell(r: list[str], name: str) -> str:
        k = cols.get(name)
        return r[k].strip() if k is not None and k < len(r) else ""

    for n, r in rows[1:]:
        before = len(errors)
        cur = cell(r, "currency").upper() or default_currency
        if not re.fullmatch(r"[A-Z]{3}", cur):
            err(n, "currency", f"'{cur}' is not a currency code")
            cur = default_currency
        m = _month_from_cell(cell(r, "month"))
        if m is None:
            err(n, "month", f"'{cell(r, 'month')}' is not a month (YYYY-MM)")
        elif m > last_month:
            err(n, "month", f"{month_text(m)} has not ended yet (the latest month end is {month_text(last_month)})")
        seg = cell(r, "segment")
        if seg not in segs:
            err(n, "segment", f"'{seg}' is not a segment ({', '.join(sorted(segs))})")
        b = BUCKET_ALIASES.get(cell(r, "bucket").lower().replace("–", "-").replace(" days", ""))
        if b is None:
            err(n, "bucket", f"'{cell(r, 'bucket')}' is not a bucket (current, 1-30, 31-60, 61-90, 91-120, 120+ or written_off)")
        bal = _amount(cell(r, "balance"), cur)
        if bal is None or bal < 0:
            err(n, "balance", f"'{cell(r, 'balance')}' is not an amount of 0 or more in {cur}")
        extra: dict[str, int | None] = {}
        for name in ("rolled", "stayed"):
            raw = cell(r, name)
            if not raw:
                extra[name] = None
                continue
            v = _amount(raw, cur)
            if v is None or v < 0:
                err(n, name, f"'{raw}' is not an amount of 0 or more in {cur}")
            elif bal is not None and v > bal:
                err(n, name, f"{raw} is more than the balance {cell(r, 'balance')}")
            elif b == WRITTEN_OFF:
                err(n, name, "a written_off line has no roll amounts")
            elif name == "stayed" and b != BUCKETS[-1]:
                err(n, name, "only the 120+ bucket has a stayed amount")
            extra[name] = v
        if b == BUCKETS[-1] and extra.get("rolled") is not None and extra.get("stayed") is not None and bal is not None \
                and extra["rolled"] + extra["stayed"] > bal:  # type: ignore[operator]
            err(n, "stayed", "rolled (written off) and stayed together exceed the balance")
        if len(errors) == before and m is not None and b is not None:
            key = (m, cur, seg, b)
            if key in seen:
                err(n, "bucket", f"{month_text(m)} {seg} {b} {cur} is already on line {seen[key]}")
            else:
                seen[key] = n
                out.append({"month": m, "currency": cur, "segment_code": seg, "bucket": b, "balance_minor": bal,
                            "rolled_minor": extra["rolled"], "stayed_minor": extra["stayed"]})
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        shown = "; ".join(f"{e['file']} line {e['line']}, {e['field']}: {e['message']}" for e in errors[:MAX_ERRORS])
        raise UnableToImportHistory(f"nothing imported: {shown}", field=errors[0]["field"], extra={"errors": errors})
    if not out:
        raise UnableToImportHistory(f"{filename}: no lines under the header", field="file")
    return out


def import_history(session: Session, *, data: bytes, filename: str, now: datetime, tz: ZoneInfo, actor: Actor,
                   default_currency: str) -> dict[str, Any]:
    """Import month-end ageing history (all lines or none). A month imported again replaces that month's earlier import.
    Returns {"import_id", "lines", "months", "first", "last"}. Raises UnableToImportHistory (naming file, line, field)."""
    rows = parse_history(data, filename=filename, segments=_segments(session), default_currency=default_currency,
                         last_month=last_ended_month(now=now, tz=tz))
    months = sorted({r["month"] for r in rows})
    _serialise(session)
    imp = ProvisionHistoryImport(filename=filename[:200], sha256=hashlib.sha256(data).hexdigest(), lines=len(rows), months=len(months),
                                 first_month=months[0], last_month=months[-1], imported_at=now, imported_by=actor.name)
    session.add(imp)
    session.flush()
    ends = [last_day(m) for m in months]
    for part in pages(ends, 500):
        session.execute(delete(ProvisionAgeing).where(ProvisionAgeing.source == "import", ProvisionAgeing.month_end.in_(part)))
    session.execute(insert(ProvisionAgeing), [
        {"month_end": last_day(r["month"]), "source": "import", "currency": r["currency"], "segment_code": r["segment_code"], "value_tier_code": "",
         "bucket": r["bucket"], "balance_minor": r["balance_minor"], "rolled_minor": r["rolled_minor"],
         "stayed_minor": r["stayed_minor"] if r["bucket"] == BUCKETS[-1] else (0 if r["rolled_minor"] is not None else None),
         "accounts": None, "import_id": imp.id, "computed_at": now} for r in rows])
    events.record(session, now=now, actor=actor, entity_type="provision_history_import", entity_id=imp.id, action="imported",
                  after={"filename": filename, "lines": len(rows), "months": [month_text(m) for m in months]})
    return {"import_id": imp.id, "lines": len(rows), "months": len(months), "first": month_text(months[0]), "last": month_text(months[-1])}


def history_summary(session: Session, *, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """How many month ends come from the ledger and how many from imported history, and each month's total."""
    sources = history_sources(session, now=now, tz=tz)
    totals: dict[tuple[date, str], list[tuple[str, int]]] = {}
    for r in _x(session, "SELECT month_end, source, currency, SUM(balance_minor) AS bal FROM provision_ageing WHERE bucket <> 'written_off' "
                         "GROUP BY month_end, source, currency ORDER BY currency"):
        totals.setdefault((billing.as_date(r.month_end).replace(day=1), r.source), []).append((r.currency, int(r.bal or 0)))  # type: ignore[union-attr]
    taken = {billing.as_date(d).replace(day=1) for d in session.execute(select(ProvisionSnapshot.month_end)).scalars()}  # type: ignore[union-attr]
    months = [{"month": month_text(m), "source": s, "balances": totals.get((m, s), []), "taken": s == "import" or m in taken}
              for m, s in sources.items()]
    imports = [{"id": i.id, "filename": i.filename, "lines": i.lines, "months": i.months, "first": month_text(i.first_month),
                "last": month_text(i.last_month), "at": i.imported_at, "by": i.imported_by}
               for i in session.execute(select(ProvisionHistoryImport).order_by(ProvisionHistoryImport.id.desc()).limit(20)).scalars()]
    return {"months": months, "ledger": sum(1 for s in sources.values() if s == "ledger"), "imported": sum(1 for s in sources.values() if s == "import"),
            "imports": imports}


# --- the provision ---------------------------------------------------------------------------------------------------------

def _rates_json(rates: dict[tuple[str, str], Rates]) -> dict[str, Any]:
    return {f"{cur}|{seg}": {"roll": {b: str(r.roll[b]) for b in BUCKETS}, "stayed": str(r.stayed), "loss": {b: str(r.loss[b]) for b in BUCKETS},
                             "basis": r.basis, "balance": r.balance, "rolled": r.rolled} for (cur, seg), r in rates.items()}


def calculate(session: Session, *, month: date, lookback: int = LOOKBACK, now: datetime, tz: ZoneInfo,
              progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """The provision of month end `month` as the stored history gives it (nothing stored). Returns {"inputs", "rates",
    "lines"}: lines per currency, segment and bucket with balance, loss rate, adjustment and provision (minor units).
    Raises UnableToProvide (month not ended, lookback out of range, fewer months of history than needed)."""
    w = window(session, month=month, lookback=lookback, now=now, tz=tz, progress=progress)
    rates = roll_rates(w)
    adj = adjustments_for(session, month=month)
    lines = []
    for (cur, seg), cells in sorted(w.data[month].items()):
        r = rates.get((cur, seg)) or rates.get((cur, ALL)) or average_rates({})
        a = adj.get(seg) or adj.get(ALL)
        pct = a["pct"] if a else Decimal(0)
        for b in BUCKETS:
            c = cells.get(b)
            if c is None or c.balance == 0:
                continue
            lines.append({"currency": cur, "segment_code": seg, "bucket": b, "balance_minor": c.balance, "accounts": c.accounts or None,
                          "loss_rate": r.loss[b], "adjustment_pct": pct, "provision_minor": provision_minor(c.balance, r.loss[b], pct)})
    used = {s for k2, s in w.sources.items() if k2 in w.months}
    inputs = {"month": month_text(month), "lookback": lookback, "months": [{"month": month_text(m), "source": w.sources[m]} for m in w.months],
              "ledger_months": sum(1 for m in w.months if w.sources[m] == "ledger"), "imported_months": sum(1 for m in w.months if w.sources[m] == "import"),
              "sources": sorted(used),
              "adjustments": {(k or "all segments"): {**v, "pct": str(v["pct"])} for k, v in adj.items()}}
    return {"inputs": inputs, "rates": rates, "lines": lines}


def _previous_lines(session: Session, *, month: date, lookback: int, now: datetime, tz: ZoneInfo) -> tuple[dict[tuple[str, str, str], int], str, int | None]:
    """Last month's provision per line: its current run, else calculated now from the history (not stored), else none."""
    prev = add_months(month, -1)
    run = session.execute(select(ProvisionRun).where(ProvisionRun.month_end == last_day(prev), ProvisionRun.is_current.is_(True))).scalar_one_or_none()
    if run is not None:
        lines = session.execute(select(ProvisionLine).where(ProvisionLine.run_id == run.id)).scalars().all()
        return {(ln.currency, ln.segment_code, ln.bucket): int(ln.provision_minor) for ln in lines}, "run", run.id
    try:
        calc = calculate(session, month=prev, lookback=lookback, now=now, tz=tz)
    except UnableToProvide:
        return {}, "none", None
    return {(ln["currency"], ln["segment_code"], ln["bucket"]): ln["provision_minor"] for ln in calc["lines"]}, "calculated", None


def current_run(session: Session, *, month: date) -> ProvisionRun | None:
    return session.execute(select(ProvisionRun).where(ProvisionRun.month_end == last_day(month), ProvisionRun.is_current.is_(True))).scalar_one_or_none()


def run_provision(session: Session, *, month: date, now: datetime, tz: ZoneInfo, actor: Actor, lookback: int = LOOKBACK,
                  reason: str | None = None, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Calculate and store the provision of a month end. Idempotent per month: when the month has a run and no reason is
    given, the stored run is returned as it was (`replayed`); with a reason it is calculated again and the new run
    supersedes the old. Returns `report()` of the run. Raises UnableToProvide (see `calculate`)."""
    check_ended(month, now=now, tz=tz)
    reason = (reason or "").strip() or None
    _serialise(session)
    existing = current_run(session, month=month)
    if existing is not None and reason is None:
        return report(session, run=existing) | {"replayed": True}
    calc = calculate(session, month=month, lookback=lookback, now=now, tz=tz, progress=progress)
    prev, prev_basis, prev_run = _previous_lines(session, month=month, lookback=lookback, now=now, tz=tz)
    lines = calc["lines"]
    seen = {(ln["currency"], ln["segment_code"], ln["bucket"]) for ln in lines}
    for key, amount in sorted(prev.items()):
        if key not in seen and amount:  # provided for last month, nothing owed in that cell now: all of it is released
            lines.append({"currency": key[0], "segment_code": key[1], "bucket": key[2], "balance_minor": 0, "accounts": 0,
                          "loss_rate": Decimal(0), "adjustment_pct": Decimal(0), "provision_minor": 0})
    for ln in lines:
        ln["previous_minor"] = prev.get((ln["currency"], ln["segment_code"], ln["bucket"]), 0)
    seq = int(_x(session, "SELECT COALESCE(MAX(seq), 0) FROM provision_run WHERE month_end = :me",
                 {"me": dialect_of(session).bind_date(last_day(month))}).scalar_one()) + 1
    results = {"rates": _rates_json(calc["rates"]), "previous": {"basis": prev_basis, "run_id": prev_run}}
    try:
        with session.begin_nested():
            if existing is not None:
                session.execute(update(ProvisionRun).where(ProvisionRun.id == existing.id).values(is_current=False))
            run = ProvisionRun(month_end=last_day(month), seq=seq, is_current=True, lookback_months=lookback, reason=reason, created_at=now,
                               created_by=actor.name, inputs=calc["inputs"], results=results)
            session.add(run)
            session.flush()
    except IntegrityError:  # the same month run at the same moment by someone else: theirs stands
        again = current_run(session, month=month)
        if again is None:
            raise
        return report(session, run=again) | {"replayed": True}
    if lines:
        session.execute(insert(ProvisionLine), [{"run_id": run.id, **{k: ln[k] for k in ("currency", "segment_code", "bucket", "balance_minor",
                                                                                         "accounts", "loss_rate", "adjustment_pct", "provision_minor",
                                                                                         "previous_minor")}} for ln in lines])
    totals = _totals(lines)
    events.record(session, now=now, actor=actor, entity_type="provision_run", entity_id=run.id, action="rerun" if existing else "run", reason=reason,
                  after={"month": month_text(month), "seq": seq, "lookback": lookback,
                         "totals": {c: {k: v for k, v in t.items() if k.endswith("minor")} for c, t in totals.items()},
                         **({"superseded_run": existing.id} if existing else {})})
    return report(session, run=run) | {"replayed": False}


def _totals(lines: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for ln in lines:
        t = out.setdefault(ln["currency"], {"balance_minor": 0, "provision_minor": 0, "previous_minor": 0})
        t["balance_minor"] += ln["balance_minor"]
        t["provision_minor"] += ln["provision_minor"]
        t["previous_minor"] += ln.get("previous_minor", 0)
    for t in out.values():
        t["movement_minor"] = t["provision_minor"] - t["previous_minor"]
        t["coverage_pct"] = (Decimal(t["provision_minor"]) * 100 / t["balance_minor"]).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) \
            if t["balance_minor"] else None
    return out


def report(session: Session, *, run: ProvisionRun) -> dict[str, Any]:
    """A stored run as plain data for the page, the CLI and the workbook: lines, totals per currency, per segment and
    per bucket, the movement, the roll-rate matrix and loss rates, and the inputs it used."""
    rows = session.execute(select(ProvisionLine).where(ProvisionLine.run_id == run.id)).scalars().all()
    names = _segments(session)
    order = {b: k for k, b in enumerate(BUCKETS)}
    lines = sorted(({"currency": r.currency, "segment_code": r.segment_code, "segment_name": names.get(r.segment_code, r.segment_code), "bucket": r.bucket,
                     "bucket_label": BUCKET_LABELS[r.bucket], "balance_minor": int(r.balance_minor), "accounts": r.accounts,
                     "loss_rate": Decimal(r.loss_rate).quantize(RATE_Q), "adjustment_pct": Decimal(r.adjustment_pct).quantize(PCT_Q),
                     "provision_minor": int(r.provision_minor), "previous_minor": int(r.previous_minor),
                     "movement_minor": int(r.provision_minor) - int(r.previous_minor)} for r in rows),
                   key=lambda x: (x["currency"], x["segment_code"], order[x["bucket"]]))
    by_segment: dict[tuple[str, str], dict[str, Any]] = {}
    by_bucket: dict[tuple[str, str], dict[str, Any]] = {}
    for ln in lines:
        for key, acc, extra in (((ln["currency"], ln["segment_code"]), by_segment, {"segment_name": ln["segment_name"]}),
                                ((ln["currency"], ln["bucket"]), by_bucket, {"bucket_label": ln["bucket_label"]})):
            t = acc.setdefault(key, {"currency": key[0], "key": key[1], **extra, "balance_minor": 0, "provision_minor": 0, "previous_minor": 0})
            for k in ("balance_minor", "provision_minor", "previous_minor"):
                t[k] += ln[k]
    for acc in (by_segment, by_bucket):
        for t in acc.values():
            t["movement_minor"] = t["provision_minor"] - t["previous_minor"]
    matrix = []
    for key, r in sorted(run.results.get("rates", {}).items()):
        cur, seg = key.split("|", 1)
        matrix.append({"currency": cur, "segment_code": seg, "segment_name": "All segments" if seg == ALL else names.get(seg, seg),
                       "roll": {b: Decimal(v) for b, v in r["roll"].items()}, "stayed": Decimal(r["stayed"]),
                       "loss": {b: Decimal(v) for b, v in r["loss"].items()}, "basis": r["basis"], "balance": r["balance"], "rolled": r["rolled"]})
    totals = _totals(lines)
    chart = None
    if lines:
        cur = max(totals, key=lambda c: totals[c]["provision_minor"])
        segs = sorted({ln["segment_code"] for ln in lines if ln["currency"] == cur})
        from opsline.debtors.reports.queries import SEGMENT_COLOURS

        chart = {"type": "bar", "data": {"labels": [BUCKET_LABELS[b] for b in BUCKETS], "datasets": [
            {"label": names.get(s, s), "backgroundColor": SEGMENT_COLOURS[k % len(SEGMENT_COLOURS)],
             "data": [str(Money.from_minor(sum(ln["provision_minor"] for ln in lines if ln["currency"] == cur and ln["segment_code"] == s and ln["bucket"] == b),
                                           cur).amount) for b in BUCKETS]} for k, s in enumerate(segs)]},
                 "options": {"plugins": {"legend": {"display": True}, "title": {"display": True, "text": f"Provision by days past due ({cur})"}},
                             "scales": {"x": {"stacked": True}, "y": {"stacked": True, "beginAtZero": True}}}}
    return {"run_id": run.id, "month": month_text(run.month_end), "seq": run.seq, "is_current": run.is_current, "lookback": run.lookback_months,
            "reason": run.reason, "created_at": run.created_at, "created_by": run.created_by, "inputs": run.inputs,
            "previous": run.results.get("previous", {}), "lines": lines, "totals": totals,
            "by_segment": sorted(by_segment.values(), key=lambda t: (t["currency"], t["key"])),
            "by_bucket": sorted(by_bucket.values(), key=lambda t: (t["currency"], order[t["key"]])), "matrix": matrix, "chart": chart}


def get_report(session: Session, *, month: date) -> dict[str, Any] | None:
    run = current_run(session, month=month)
    return report(session, run=run) if run is not None else None


def list_runs(session: Session, *, limit: int = 24) -> list[dict[str, Any]]:
    runs = session.execute(select(ProvisionRun).order_by(ProvisionRun.month_end.desc(), ProvisionRun.seq.desc()).limit(limit)).scalars().all()
    totals: dict[int, dict[str, int]] = {}
    if runs:
        for r in _x(session, f"SELECT run_id, currency, SUM(provision_minor) AS p, SUM(previous_minor) AS q FROM provision_line "
                             f"WHERE run_id IN ({','.join(str(int(r.id)) for r in runs)}) GROUP BY run_id, currency"):
            totals.setdefault(int(r.run_id), {})[r.currency] = int(r.p or 0) - 0
            totals[int(r.run_id)][r.currency + ":prev"] = int(r.q or 0)
    return [{"id": r.id, "month": month_text(r.month_end), "seq": r.seq, "is_current": r.is_current, "reason": r.reason, "created_at": r.created_at,
             "created_by": r.created_by, "totals": [{"currency": c, "provision_minor": v, "movement_minor": v - totals[r.id].get(c + ":prev", 0)}
                                                    for c, v in sorted(totals.get(r.id, {}).items()) if ":" not in c]} for r in runs]


def line_accounts(session: Session, *, month: date, currency: str, segment: str, bucket: str, limit: int | None = 100,
                  offset: int = 0) -> dict[str, Any]:
    """The accounts behind one provision line (ledger month ends only), biggest first, each with its share of the line's
    provision (split in proportion to balances; the shares add up to the line). Raises UnableToProvide (bucket), NotFound."""
    if bucket not in BUCKETS:
        raise UnableToProvide(f"'{bucket}' is not an ageing bucket (one of {', '.join(BUCKETS)})", field="bucket")
    run = current_run(session, month=month)
    if run is None:
        raise NotFound(f"no provision for {month_text(month)} yet", field="month")
    line = session.get(ProvisionLine, (run.id, currency, segment, bucket))
    source = next((m["source"] for m in run.inputs.get("months", []) if m["month"] == month_text(month)), None)
    dia = dialect_of(session)
    rows = _x(session, f"""SELECT s.account_id, s.{bucket} AS bal, a.account_number, a.name, a.status, s.value_tier_code
                           FROM provision_account_snapshot s JOIN account a ON a.id = s.account_id
                           WHERE s.month_end = {dia.d('me')} AND s.currency = :cur AND s.segment_code = :seg AND s.{bucket} > 0
                           ORDER BY s.{bucket} DESC, s.account_id""",
              {"me": dia.bind_date(last_day(month)), "cur": currency, "seg": segment}).all() if source == "ledger" else []
    amount = int(line.provision_minor) if line is not None else 0
    shares = split_to_accounts(amount, [int(r.bal) for r in rows])
    out = [{"account_id": r.account_id, "account_number": r.account_number, "name": r.name, "status": r.status, "value_tier_code": r.value_tier_code,
            "balance_minor": int(r.bal), "provision_minor": p} for r, p in zip(rows, shares)]
    page = out[offset:offset + limit] if limit is not None else out
    return {"month": month_text(month), "currency": currency, "segment": segment, "bucket": bucket, "bucket_label": BUCKET_LABELS[bucket],
            "source": source, "count": len(out), "rows": page, "provision_minor": amount,
            "balance_minor": int(line.balance_minor) if line is not None else 0, "loss_rate": Decimal(line.loss_rate) if line is not None else None}


def workbook_sheets(rep: dict[str, Any]) -> list[Any]:
    """Finance's workbook of a run: summary, roll-rate matrix, loss rates, provision by bucket and segment, movement."""
    from opsline.core.exports import Sheet

    def amt(minor: int, cur: str) -> Decimal:
        return Money.from_minor(int(minor), cur).amount

    inp = rep["inputs"]
    summary: list[list[Any]] = [["Month end", rep["month"]], ["Run", f"#{rep['seq']} (run {rep['run_id']})"], ["Calculated at", rep["created_at"]],
                                ["Calculated by", rep["created_by"]], ["Re-run reason", rep["reason"] or ""],
                                ["Roll rates averaged over (months)", rep["lookback"]], ["Month ends from the ledger", inp.get("ledger_months")],
                                ["Month ends from imported history", inp.get("imported_months")],
                                ["Last month's provision from", {"run": "its stored run", "calculated": "calculated from the history (no run stored)",
                                                                 "none": "none (not enough history): the whole provision is this month's charge"}
                                 .get(rep["previous"].get("basis"), "")]]
    for seg, a in inp.get("adjustments", {}).items():
        summary.append([f"Forward-looking adjustment ({seg})", f"{a['pct']} % from {a['valid_from']}: {a['reason']} ({a['by']})"])
    for cur, t in rep["totals"].items():
        summary += [[f"Open debt {cur}", amt(t["balance_minor"], cur)], [f"Provision {cur}", amt(t["provision_minor"], cur)],
                    [f"Coverage {cur} (%)", t["coverage_pct"]], [f"Last month's provision {cur}", amt(t["previous_minor"], cur)],
                    [f"Movement {cur} ({'charge' if t['movement_minor'] >= 0 else 'release'})", amt(t["movement_minor"], cur)]]
    matrix = []
    for m in rep["matrix"]:
        for b in BUCKETS:
            matrix.append([m["currency"], m["segment_name"], BUCKET_LABELS[b], BUCKET_LABELS.get(NEXT[b], NEXT[b]),
                           amt(m["balance"].get(b, 0), m["currency"]), amt(m["rolled"].get(b, 0), m["currency"]), m["roll"][b] * 100, m["basis"][b]])
        matrix.append([m["currency"], m["segment_name"], BUCKET_LABELS[BUCKETS[-1]], "still 120+", None, None, m["stayed"] * 100, ""])
    loss = [[m["currency"], m["segment_name"], BUCKET_LABELS[b], m["loss"][b] * 100] for m in rep["matrix"] for b in BUCKETS]
    prov = [[ln["currency"], ln["segment_name"], ln["bucket_label"], ln["accounts"], amt(ln["balance_minor"], ln["currency"]), ln["loss_rate"] * 100,
             ln["adjustment_pct"], amt(ln["provision_minor"], ln["currency"])] for ln in rep["lines"]]
    move = [[ln["currency"], ln["segment_name"], ln["bucket_label"], amt(ln["previous_minor"], ln["currency"]), amt(ln["provision_minor"], ln["currency"]),
             amt(ln["movement_minor"], ln["currency"]), "charge" if ln["movement_minor"] > 0 else "release" if ln["movement_minor"] < 0 else ""]
            for ln in rep["lines"]]
    history = [[m["month"], m["source"]] for m in inp.get("months", [])]
    return [Sheet("Summary", ["Item", "Value"], summary, frozenset({1})),
            Sheet("Roll rates", ["Currency", "Segment", "From", "To", "Balance (window)", "Rolled (window)", "Roll rate %", "Basis"], matrix,
                  frozenset({4, 5})),
            Sheet("Loss rates", ["Currency", "Segment", "Bucket", "Loss rate %"], loss),
            Sheet("Provision", ["Currency", "Segment", "Bucket", "Accounts", "Balance", "Loss rate %", "Adjustment %", "Provision"], prov,
                  frozenset({4, 7})),
            Sheet("Movement", ["Currency", "Segment", "Bucket", "Last month", "This month", "Movement", "Charge / release"], move,
                  frozenset({3, 4, 5})),
            Sheet("History", ["Month end", "Source"], history)]
