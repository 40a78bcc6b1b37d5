"""The matching cascade, set-based: every payment in state `received` goes through the enabled rule rows in order (each a
join over the whole batch, never a lookup per line), then allocation (the invoice named, else oldest debt first, the rest as
account credit) is computed with window functions. Confident matches within the amount limit are allocated and posted to
the ledger; the rest become proposals for a person; what no rule matches goes to suspense.

Open amount of an invoice = total − credit notes − allocations that are allocated or proposed (a proposal reserves)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rapidfuzz import fuzz
from sqlalchemy import text
from sqlalchemy.orm import Session

from opsline.billing import ledger
from opsline.core import domain_events
from opsline.core.events import Actor
from opsline.db.base import sqlite_utc
from opsline.db.bulk import copy_rows
from opsline.db.session import lock_for_write
from opsline.payments import settings as policy
from opsline.payments.tokens import account_tokens, invoice_tokens

SETTLED = "payments.invoice_settled"  # one invoice: {"id", "account_id"}
SETTLED_MANY = "payments.invoices_settled"  # one batch: {"ids": [...], "account_ids": [...]} (same order)
PAYMENTS_CREATED = "payments.payments_created"  # one batch of payments written set-based: {"ids": [...]} (TMF676 PaymentCreateEvent each)
INCOMING = "pm_in"  # payments not written yet: see stage_incoming()
INCOMING_COLUMNS = ("id", "account_id", "statement_line_id", "external_id", "source", "method", "amount_minor", "currency", "received_on",
                    "payer_name", "payer_account", "reference", "named_invoice_id")
TEMP = ("pm_pay", "pm_tok", "pm_match", "pm_open", "pm_alloc", "pm_amt", "pm_rare", "pm_cand")


@dataclass
class MatchSummary:
    payments: int = 0
    allocated: int = 0
    proposed: int = 0
    suspense: int = 0
    allocated_minor: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    settled_invoices: int = 0


class _Sql:
    def __init__(self, session: Session) -> None:
        self.s = session
        self.pg = session.get_bind().dialect.name == "postgresql"

    def x(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        return self.s.execute(text(sql), params or {})

    def least(self, a: str, b: str) -> str:
        return f"LEAST({a}, {b})" if self.pg else f"min({a}, {b})"

    def greatest(self, a: str, b: str) -> str:
        return f"GREATEST({a}, {b})" if self.pg else f"max({a}, {b})"

    def json(self, pairs: list[tuple[str, str]]) -> str:
        args = ", ".join(f"'{k}', {v}" for k, v in pairs)
        return f"jsonb_build_object({args})" if self.pg else f"json_object({args})"

    def ts(self, v: datetime) -> Any:
        return v if self.pg else sqlite_utc(v)

    def minus_days(self, d: str, n: str) -> str:
        return f"({d} - CAST({n} AS INTEGER))" if self.pg else f"date({d}, '-' || ({n}) || ' days')"

    def plus_days(self, d: str, n: str) -> str:
        return f"({d} + CAST({n} AS INTEGER))" if self.pg else f"date({d}, '+' || ({n}) || ' days')"

    def d(self, param: str) -> str:
        return f"CAST({param} AS DATE)" if self.pg else param

    def bind_date(self, v: Any) -> Any:
        if v is None or self.pg:
            return v
        return v if isinstance(v, str) else v.isoformat()

    def analyze(self, name: str) -> None:
        """Temp tables have no statistics until analysed; without them PostgreSQL plans joins as if they held one row."""
        self.x(f"ANALYZE {name}")

    def temp(self, name: str, ddl: str) -> None:
        self.x(f"DROP TABLE IF EXISTS {name}")
        self.x(f"CREATE TEMP TABLE {name} {ddl}")

    def drop_all(self) -> None:
        for t in TEMP:
            self.x(f"DROP TABLE IF EXISTS {t}")


OPEN_PER_INVOICE = """SELECT i.account_id, i.total_minor - COALESCE((SELECT SUM(c.total_minor) FROM credit_note c WHERE c.invoice_id = i.id), 0)
    - COALESCE((SELECT SUM(x.amount_minor) FROM payment_allocation x WHERE x.invoice_id = i.id AND x.state IN ('allocated','proposed')), 0) AS open_minor
    FROM invoice i WHERE i.account_id = a.id AND i.number IS NOT NULL"""
OPEN_CN = "SELECT invoice_id, SUM(total_minor) AS s FROM credit_note WHERE invoice_id IN ({ids}) GROUP BY invoice_id"


def _rule_sql(q: _Sql, kind: str) -> str | None:
    """SELECT payment_id, account_id, invoice_id, token, detail for one rule kind, over unmatched payments, one account each."""
    unmatched = "p.payment_id NOT IN (SELECT payment_id FROM pm_match)"
    if kind == "invoice_ref":
        return f"""SELECT t.payment_id AS payment_id, MIN(i.account_id) AS account_id, CASE WHEN COUNT(DISTINCT i.id) = 1 THEN MIN(i.id) END AS invoice_id,
                   MIN(t.token) AS token, 'invoice ' || MIN(i.number) || CASE WHEN COUNT(DISTINCT i.id) > 1
                   THEN ' and ' || CAST(COUNT(DISTINCT i.id) - 1 AS TEXT) || ' more of the same account' ELSE '' END AS detail
                   FROM pm_pay p JOIN pm_tok t ON t.payment_id = p.payment_id AND t.kind = 'inv'
                   JOIN invoice i ON i.number = t.token AND i.currency = p.currency
                   WHERE {unmatched} GROUP BY t.payment_id HAVING COUNT(DISTINCT i.account_id) = 1"""
    if kind == "account_ref":
        return f"""SELECT t.payment_id AS payment_id, MIN(a.id) AS account_id, CAST(NULL AS BIGINT) AS invoice_id, MIN(t.token) AS token,
                   'account ' || MIN(a.account_number) || ' (' || MIN(a.name) || ')' AS detail
                   FROM pm_pay p JOIN pm_tok t ON t.payment_id = p.payment_id AND t.kind = 'acct'
                   JOIN account a ON a.account_number = t.token AND a.currency = p.currency
                   WHERE {unmatched} GROUP BY t.payment_id HAVING COUNT(DISTINCT a.id) = 1"""
    if kind == "payer_account":
        return f"""SELECT p.payment_id AS payment_id, MIN(k.account_id) AS account_id, CAST(NULL AS BIGINT) AS invoice_id, MIN(p.payer_account) AS token,
                   'payer account seen before on account ' || MIN(a.account_number) AS detail
                   FROM pm_pay p JOIN payment_known_payer k ON k.payer_account = p.payer_account JOIN account a ON a.id = k.account_id
                   WHERE p.payer_account <> '' AND {unmatched} GROUP BY p.payment_id HAVING COUNT(DISTINCT k.account_id) = 1"""
    if kind == "account_ref_check_digit":
        # a repaired number counts only when that account owes exactly this amount on one open invoice or in total
        return f"""SELECT t.payment_id AS payment_id, MIN(a.id) AS account_id, CAST(NULL AS BIGINT) AS invoice_id, MIN(t.typed) AS token,
                   'typed ' || MIN(t.typed) || ' (check digit fails); repaired to ' || MIN(a.account_number) || ', which owes this amount' AS detail
                   FROM pm_pay p JOIN pm_tok t ON t.payment_id = p.payment_id AND t.kind = 'fix'
                   JOIN account a ON a.account_number = t.token AND a.currency = p.currency
                   WHERE {unmatched} AND p.amount_minor IN (
                       SELECT o.open_minor FROM ({OPEN_PER_INVOICE}) o WHERE o.account_id = a.id
                       UNION ALL SELECT SUM(o.open_minor) FROM ({OPEN_PER_INVOICE}) o WHERE o.account_id = a.id AND o.open_minor > 0)
                   GROUP BY t.payment_id HAVING COUNT(DISTINCT a.id) = 1"""
    if kind == "amount_date":
        # pm_rare: the still unmatched payments whose amount is rare among open invoices (refreshed before this rule)
        return f"""SELECT p.payment_id AS payment_id, MIN(i.account_id) AS account_id, CASE WHEN COUNT(DISTINCT i.id) = 1 THEN MIN(i.id) END AS invoice_id,
                   CAST(MIN(p.amount_minor) AS TEXT) AS token, 'amount equals open invoice ' || MIN(i.number) || ' due ' || CAST(MIN(i.due_date) AS TEXT)
                   || ' (the only account owing it)' AS detail
                   FROM pm_rare p JOIN pm_cand i ON i.total_minor = p.amount_minor AND i.currency = p.currency
                        AND i.due_date >= {q.minus_days('p.received_on', ':window')} AND i.due_date <= {q.plus_days('p.received_on', ':window')}
                   WHERE p.n <= 20 AND i.total_minor > COALESCE((SELECT SUM(x.amount_minor) FROM payment_allocation x WHERE x.invoice_id = i.id
                                                   AND x.state IN ('allocated','proposed')), 0)
                   GROUP BY p.payment_id HAVING COUNT(DISTINCT i.account_id) = 1"""
    return None


def _tokens(q: _Sql, *, default_prefix: str) -> int:
    rows: list[tuple[int, str, str, str]] = []
    for pid, ref in q.x("SELECT payment_id, reference FROM pm_pay WHERE reference <> '' AND payment_id NOT IN (SELECT payment_id FROM pm_match)").all():
        if not _DIGIT.search(ref):  # every token has digits
            continue
        for tok in invoice_tokens(ref, default_prefix=default_prefix):
            rows.append((pid, "inv", tok, ""))
        valid, repaired = account_tokens(ref)
        for tok in valid:
            rows.append((pid, "acct", tok, ""))
        for tok, typed in repaired.items():
            rows.append((pid, "fix", tok, typed))
    if rows:
        copy_rows(q.s.connection(), "pm_tok", ("payment_id", "kind", "token", "typed"), rows)
    return len(rows)


def _payer_names(q: _Sql, *, rule_code: str, window: int, min_score: int, max_candidates: int = 200) -> None:
    """Cautious fuzzy payer names: candidates are accounts owing exactly this amount on an open invoice due near the payment
    date; the best name must clear `min_score` and beat the runner-up clearly. Only ever a proposal."""
    cand = q.x(f"""SELECT p.payment_id, p.payer_name, a.id, a.name, a.account_number FROM pm_rare p
                  JOIN pm_cand i ON i.total_minor = p.amount_minor AND i.currency = p.currency
                       AND i.due_date >= {q.minus_days('p.received_on', ':w')} AND i.due_date <= {q.plus_days('p.received_on', ':w')}
                  JOIN account a ON a.id = i.account_id
                  WHERE p.payer_name <> '' AND p.n <= :maxc""", {"w": window, "maxc": max_candidates}).all()
    best: dict[int, list[tuple[float, int, str]]] = {}
    for pid, payer, acc_id, name, number in cand:
        score = fuzz.token_set_ratio(_clean_name(payer), _clean_name(name))
        best.setdefault(pid, []).append((score, acc_id, f"payer '{payer}' ~ account holder '{name}' ({number}): {score:.0f}%"))
    rows = []
    for pid, scores in best.items():
        scores.sort(reverse=True)
        top = scores[0]
        runner = next((s for s in scores[1:] if s[1] != top[1]), None)
        if top[0] >= min_score and (runner is None or runner[0] < top[0] - 5):
            rows.append({"p": pid, "a": top[1], "tok": "", "d": top[2][:300], "rc": rule_code})
    if rows:
        q.s.execute(text("""INSERT INTO pm_match (payment_id, account_id, invoice_id, rule_code, rule_kind, confidence, token, detail, amount_minor, currency)
                            SELECT p.payment_id, :a, NULL, :rc, 'payer_name', 0, :tok, :d, p.amount_minor, p.currency FROM pm_pay p WHERE p.payment_id = :p"""),
                    rows)


_DIGIT = re.compile(r"\d")
_TITLES = {"MR", "MRS", "MS", "DR", "PROF", "ME", "MNR", "MEV", "THE"}


def _clean_name(s: str) -> str:
    return " ".join(w for w in s.upper().replace(".", " ").split() if w not in _TITLES)


def stage_incoming(session: Session, *, select_sql: str, params: dict[str, Any]) -> int:
    """Stage a batch of payments that are not written yet (a statement's lines, a debit-order file's paid collections) in the
    temp table INCOMING, each with its id drawn now; `select_sql` returns INCOMING_COLUMNS without the id, in that order.
    `run(..., incoming=True)` matches them and writes each payment once, already in its final state: a hundred thousand
    fresh payments are not inserted as `received` and then all updated again. Returns the number staged."""
    q = _Sql(session)
    q.temp(INCOMING, """(id BIGINT PRIMARY KEY, account_id BIGINT, statement_line_id BIGINT, external_id VARCHAR(120), source VARCHAR(20),
                       method VARCHAR(20), amount_minor BIGINT, currency VARCHAR(3), received_on DATE, payer_name VARCHAR(200), payer_account VARCHAR(40),
                       reference VARCHAR(300), named_invoice_id BIGINT)""")
    cols = ", ".join(INCOMING_COLUMNS)
    if q.pg:  # the sequence named once: pg_get_serial_sequence() per row would cost more than the insert
        seq = q.x("SELECT pg_get_serial_sequence('payment', 'id')").scalar_one()
        new_id = "nextval('" + str(seq).replace("'", "''") + "'::regclass)"
    else:  # SQLite: this transaction holds the write lock, so no one else draws payment ids meanwhile
        lock_for_write(session)
        new_id = "(SELECT COALESCE(MAX(id), 0) FROM payment) + ROW_NUMBER() OVER ()"
    n = q.x(f"INSERT INTO {INCOMING} ({cols}) SELECT {new_id}, s.* FROM ({select_sql}) s", params).rowcount
    return int(n)


def _write_incoming(q: _Sql, *, now: datetime, actor: Actor) -> None:
    """The staged payments, written once in their final state: matched (allocated or proposed, on the account found) or
    suspense. (They pass through `received` only inside this transaction, as the ones updated below do.)"""
    cols = ", ".join(INCOMING_COLUMNS)
    q.x(f"""INSERT INTO payment ({cols}, state, created_at, created_by)
            SELECT n.id, CASE WHEN m.payment_id IS NULL THEN n.account_id ELSE m.account_id END, {', '.join('n.' + c for c in INCOMING_COLUMNS[2:])},
                   CASE WHEN m.payment_id IS NULL THEN 'suspense' WHEN m.auto = 1 THEN 'allocated' ELSE 'proposed' END, :now, :who
            FROM {INCOMING} n LEFT JOIN pm_match m ON m.payment_id = n.id ORDER BY n.id""", {"now": q.ts(now), "who": actor.name})


def _common_amounts(q: _Sql, *, window: int) -> None:
    """pm_amt: how many open invoices due near the payments carry each of their amounts. Amounts common among open invoices
    can never single out one account: counted once, so the amount and name rules only join the rare ones (a join per common
    amount would pair each payment with a hundred thousand invoices). Only read when a payment is left for those rules."""
    lo, hi = q.x("SELECT MIN(received_on), MAX(received_on) FROM pm_pay").one()
    q.temp("pm_amt", "(total_minor BIGINT, n INTEGER)")
    q.x(f"""INSERT INTO pm_amt (total_minor, n) SELECT i.total_minor, COUNT(*) FROM invoice i
            WHERE i.number IS NOT NULL AND i.total_minor IN (SELECT amount_minor FROM pm_pay)
              AND i.due_date >= {q.minus_days(q.d(':lo'), ':w')} AND i.due_date <= {q.plus_days(q.d(':hi'), ':w')}
            GROUP BY i.total_minor""", {"lo": q.bind_date(lo), "hi": q.bind_date(hi), "w": window})
    q.analyze("pm_amt")


def run(session: Session, *, now: datetime, actor: Actor, incoming: bool = False) -> MatchSummary:
    """Match every payment in state `received` (those recorded in this transaction) and, with `incoming`, the payments staged
    by stage_incoming() (written here, in their final state). Raises nothing for unmatched money: it goes to suspense with
    an owner."""
    q = _Sql(session)
    out = MatchSummary()
    cfg = policy.load(session)
    cols = "account_id, amount_minor, currency, received_on, payer_account, payer_name, reference, named_invoice_id"
    q.temp("pm_pay", f"""AS SELECT id AS payment_id, {cols}, 0 AS fresh FROM payment WHERE state = 'received'"""
           + (f" UNION ALL SELECT id AS payment_id, {cols}, 1 AS fresh FROM {INCOMING}" if incoming else ""))
    out.payments = int(q.x("SELECT COUNT(*) FROM pm_pay").scalar_one())
    if not out.payments:
        q.drop_all()
        return out
    q.x("CREATE INDEX pm_pay_pk ON pm_pay (payment_id)")
    q.analyze("pm_pay")
    q.temp("pm_tok", "(payment_id BIGINT, kind VARCHAR(4), token VARCHAR(40), typed VARCHAR(40))")
    q.temp("pm_match", """(payment_id BIGINT PRIMARY KEY, account_id BIGINT, invoice_id BIGINT, rule_code VARCHAR(40), rule_kind VARCHAR(30),
                          confidence INTEGER, token VARCHAR(80), detail VARCHAR(400), amount_minor BIGINT, currency VARCHAR(3), auto INTEGER DEFAULT 0)""")
    # a match is allocated at once (auto) when its rule is confident enough, it is not a name match, and the amount is within the limit
    def auto(confidence: int, kind: str) -> str:
        return "CASE WHEN p.amount_minor <= :lim THEN 1 ELSE 0 END" if confidence >= cfg.auto_threshold and kind != "payer_name" else "0"

    limits = {"lim": cfg.auto_amount_limit_minor}
    # the payer named an invoice through the API or a debit order: that is the strongest evidence there is
    matched = q.x(f"""INSERT INTO pm_match (payment_id, account_id, invoice_id, rule_code, rule_kind, confidence, token, detail, amount_minor, currency, auto)
           SELECT p.payment_id, i.account_id, i.id, 'named-invoice', 'invoice_ref', 100, i.number, 'invoice named by the payer', p.amount_minor, p.currency,
                  {auto(100, 'invoice_ref')}
           FROM pm_pay p JOIN invoice i ON i.id = p.named_invoice_id AND i.currency = p.currency
           WHERE p.account_id IS NULL OR p.account_id = i.account_id""", limits).rowcount
    # captured by staff or through the API against an account: the account is given, allocation follows the usual order
    matched += q.x(f"""INSERT INTO pm_match (payment_id, account_id, invoice_id, rule_code, rule_kind, confidence, token, detail, amount_minor, currency, auto)
           SELECT p.payment_id, p.account_id, NULL, 'account-given', 'account_ref', 100, a.account_number, 'account chosen when the payment was recorded',
                  p.amount_minor, p.currency, {auto(100, 'account_ref')}
           FROM pm_pay p JOIN account a ON a.id = p.account_id AND a.currency = p.currency
           WHERE p.payment_id NOT IN (SELECT payment_id FROM pm_match)""", limits).rowcount
    # what the references of the payments still unmatched may name (a debit-order file, all named, has none to read)
    if _tokens(q, default_prefix=cfg.invoice_prefix):
        q.x("CREATE INDEX pm_tok_tok ON pm_tok (kind, token)")
        q.analyze("pm_tok")
    analysed, have_candidates = -1, False
    for rule in cfg.rules:
        # fresh statistics when pm_match has grown a lot (PostgreSQL scales the row estimate with the table's pages in between)
        if analysed < 0 or matched > 2 * analysed + 1000:
            q.analyze("pm_match")
            analysed = matched
        if not q.x("SELECT 1 FROM pm_pay WHERE payment_id NOT IN (SELECT payment_id FROM pm_match) LIMIT 1").first():
            break
        if rule.kind in ("payer_name", "amount_date"):
            if not have_candidates:
                _common_amounts(q, window=max([int(r.params.get("window_days", 45)) for r in cfg.rules] + [45]))
            q.temp("pm_rare", """AS SELECT p.payment_id, p.amount_minor, p.currency, p.received_on, p.payer_name, a.n FROM pm_pay p
                                  JOIN pm_amt a ON a.total_minor = p.amount_minor
                                  WHERE a.n <= 200 AND p.payment_id NOT IN (SELECT payment_id FROM pm_match)""")
            q.analyze("pm_rare")
        if rule.kind in ("payer_name", "amount_date") and not have_candidates:
            # the invoices carrying those rare amounts, read in one scan (no index on amounts in billing's table); a later amount or
            # name rule reuses them, as the payments still unmatched then are a subset of these
            q.temp("pm_cand", """AS SELECT i.id, i.account_id, i.number, i.total_minor, i.currency, i.due_date FROM invoice i
                                  WHERE i.number IS NOT NULL AND i.total_minor IN (SELECT amount_minor FROM pm_rare)""")
            q.x("CREATE INDEX pm_cand_amt ON pm_cand (total_minor)")
            q.analyze("pm_cand")
            have_candidates = True
        if rule.kind == "payer_name":
            _payer_names(q, rule_code=rule.code, window=int(rule.params.get("window_days", 45)), min_score=int(rule.params.get("min_score", 88)))
            q.x("UPDATE pm_match SET confidence = :c WHERE rule_code = :r", {"c": rule.confidence, "r": rule.code})
            continue
        sql = _rule_sql(q, rule.kind)
        if sql is None:
            continue
        matched += q.x(f"""INSERT INTO pm_match (payment_id, account_id, invoice_id, token, detail, rule_code, rule_kind, confidence, amount_minor, currency, auto)
                SELECT m.payment_id, m.account_id, m.invoice_id, m.token, m.detail, :code, :kind, :conf, p.amount_minor, p.currency,
                       {auto(rule.confidence, rule.kind)}
                FROM ({sql}) m JOIN pm_pay p ON p.payment_id = m.payment_id""",
            {"code": rule.code, "kind": rule.kind, "conf": rule.confidence, "window": int(rule.params.get("window_days", 45)), **limits}).rowcount
    q.analyze("pm_match")
    _allocate(q)
    if incoming:
        _write_incoming(q, now=now, actor=actor)
    _write_allocations(q, now=now, actor=actor)
    _finish(q, out, now=now, actor=actor, owner=cfg.suspense_owner)
    if incoming:
        # announced once they are complete (state, account, allocations), as one event for the batch
        announce_created(session, [int(i) for (i,) in q.x(f"SELECT id FROM {INCOMING} ORDER BY id").all()], now=now, actor=actor)
    q.drop_all()
    return out


def _allocate(q: _Sql) -> None:
    """pm_alloc ← the invoice named (up to its open amount), then oldest open invoices first (what the named ones left open),
    then account credit."""
    # the open invoices of the accounts matched, their open amounts computed as they are read (no UPDATE pass over them);
    # unpaid: what is left to pay before this batch (proposals do not pay), for telling which invoices the batch settles
    open_minor = "inv.total_minor - COALESCE(cn.s, 0) - COALESCE(al.s, 0)"
    q.temp("pm_open", f"""AS WITH inv AS (SELECT i.id, i.account_id, i.currency, i.due_date, i.total_minor FROM invoice i
                                           WHERE i.account_id IN (SELECT account_id FROM pm_match) AND i.number IS NOT NULL)
                          SELECT inv.id AS invoice_id, inv.account_id, inv.currency, inv.due_date AS due, {open_minor} AS open_minor,
                                 inv.total_minor - COALESCE(cn.s, 0) - COALESCE(al.allocated, 0) AS unpaid
                          FROM inv LEFT JOIN ({OPEN_CN.format(ids="SELECT id FROM inv")}) cn ON cn.invoice_id = inv.id
                          LEFT JOIN (SELECT invoice_id, SUM(amount_minor) AS s, SUM(CASE WHEN state = 'allocated' THEN amount_minor ELSE 0 END) AS allocated
                                     FROM payment_allocation WHERE state IN ('allocated','proposed') AND invoice_id IN (SELECT id FROM inv)
                                     GROUP BY invoice_id) al ON al.invoice_id = inv.id
                          WHERE {open_minor} > 0""")
    q.x("CREATE INDEX pm_open_inv ON pm_open (invoice_id)")
    q.analyze("pm_open")
    q.temp("pm_alloc", "(payment_id BIGINT, account_id BIGINT, invoice_id BIGINT, amount_minor BIGINT, how VARCHAR(20))")
    before = "(SUM(m.amount_minor) OVER (PARTITION BY m.invoice_id ORDER BY m.payment_id ROWS UNBOUNDED PRECEDING) - m.amount_minor)"
    q.x(f"""INSERT INTO pm_alloc (payment_id, account_id, invoice_id, amount_minor, how)
            SELECT payment_id, account_id, invoice_id, take, 'named' FROM (
              SELECT m.payment_id, m.account_id, m.invoice_id,
                     {q.greatest('0', q.least('m.amount_minor', f'o.open_minor - {before}'))} AS take
              FROM pm_match m JOIN pm_open o ON o.invoice_id = m.invoice_id AND o.currency = m.currency) x WHERE take > 0""")
    q.analyze("pm_alloc")
    rem = "m.amount_minor - COALESCE(pa.s, 0)"
    paid = "LEFT JOIN (SELECT payment_id, SUM(amount_minor) AS s FROM pm_alloc GROUP BY payment_id) pa ON pa.payment_id = m.payment_id"
    q.x(f"""INSERT INTO pm_alloc (payment_id, account_id, invoice_id, amount_minor, how)
            WITH rem AS (SELECT m.payment_id, m.account_id, m.currency, {rem} AS r FROM pm_match m {paid}),
            pr AS (SELECT payment_id, account_id, currency, r,
                          SUM(r) OVER (PARTITION BY account_id, currency ORDER BY payment_id ROWS UNBOUNDED PRECEDING) AS pend FROM rem WHERE r > 0),
            left_open AS (SELECT o.invoice_id, o.account_id, o.currency, o.due, o.open_minor - COALESCE(na.s, 0) AS open_minor FROM pm_open o
                          LEFT JOIN (SELECT invoice_id, SUM(amount_minor) AS s FROM pm_alloc GROUP BY invoice_id) na ON na.invoice_id = o.invoice_id),
            ir AS (SELECT invoice_id, account_id, currency, open_minor,
                          SUM(open_minor) OVER (PARTITION BY account_id, currency ORDER BY due, invoice_id ROWS UNBOUNDED PRECEDING) AS iend
                   FROM left_open WHERE open_minor > 0)
            SELECT pr.payment_id, pr.account_id, ir.invoice_id,
                   {q.least('pr.pend', 'ir.iend')} - {q.greatest('pr.pend - pr.r', 'ir.iend - ir.open_minor')}, 'oldest'
            FROM pr JOIN ir ON ir.account_id = pr.account_id AND ir.currency = pr.currency
                 AND ir.iend - ir.open_minor < pr.pend AND pr.pend - pr.r < ir.iend""")
    q.x(f"""INSERT INTO pm_alloc (payment_id, account_id, invoice_id, amount_minor, how)
            SELECT payment_id, account_id, NULL, r, 'credit' FROM (SELECT m.payment_id, m.account_id, {rem} AS r FROM pm_match m {paid}) x WHERE r > 0""")


def _write_allocations(q: _Sql, *, now: datetime, actor: Actor) -> None:
    ev = q.json([("rule", "m.rule_code"), ("matched", "m.detail"), ("token", "m.token"), ("field", "CASE m.rule_kind WHEN 'payer_account' THEN 'payer_account' WHEN 'amount_date' THEN 'amount, value date' "
                                               "WHEN 'payer_name' THEN 'payer_name' ELSE CASE WHEN m.rule_code = 'named-invoice' THEN 'payment item' "
                                               "ELSE 'reference' END END"),
                 ("allocation", "CASE a.how WHEN 'named' THEN 'the invoice named' WHEN 'oldest' THEN 'oldest open invoice first' "
                                "ELSE 'account credit (overpayment)' END")])
    q.x(f"""INSERT INTO payment_allocation (payment_id, account_id, invoice_id, amount_minor, currency, state, rule_code, score, evidence,
                                            created_at, created_by, decided_at, decided_by)
            SELECT a.payment_id, a.account_id, a.invoice_id, a.amount_minor, m.currency, CASE WHEN m.auto = 1 THEN 'allocated' ELSE 'proposed' END,
                   m.rule_code, m.confidence, {ev}, :now, :who, CASE WHEN m.auto = 1 THEN :dnow END, CASE WHEN m.auto = 1 THEN :dwho END
            FROM pm_alloc a JOIN pm_match m ON m.payment_id = a.payment_id
            ORDER BY a.payment_id, CASE a.how WHEN 'named' THEN 0 WHEN 'oldest' THEN 1 ELSE 2 END, a.invoice_id""",
        {"now": q.ts(now), "who": actor.name, "dnow": q.ts(now), "dwho": actor.name})


def _finish(q: _Sql, out: MatchSummary, *, now: datetime, actor: Actor, owner: str) -> None:
    # the ledger straight from the allocations just written (one INSERT ... SELECT, no rows through Python)
    auto_allocs = """FROM payment_allocation x WHERE x.state = 'allocated' AND x.payment_id IN (SELECT payment_id FROM pm_match WHERE auto = 1)"""
    ledger.post_select(q.s, select_sql=f"""SELECT x.account_id, 'payment' AS kind, 'allocation' AS ref_type, x.id AS ref_id, -x.amount_minor AS amount_minor,
                                           x.currency, :now AS posted_at, CAST(NULL AS DATE) AS due_date,
                                           'Payment ' || CAST(x.payment_id AS VARCHAR(20)) || ' (' || x.rule_code || ')' AS description {auto_allocs}""",
                       params={"now": q.ts(now)})
    out.allocated_minor = int(q.x(f"SELECT COALESCE(SUM(x.amount_minor), 0) {auto_allocs}").scalar_one())
    # payments recorded earlier in this transaction move on; the staged ones were written in their final state
    q.x("""UPDATE payment SET state = CASE WHEN m.auto = 1 THEN 'allocated' ELSE 'proposed' END, account_id = m.account_id
           FROM pm_match m WHERE payment.id = m.payment_id AND m.payment_id IN (SELECT payment_id FROM pm_pay WHERE fresh = 0)""")
    for code, auto, n in q.x("SELECT rule_code, auto, COUNT(*) FROM pm_match GROUP BY rule_code, auto").all():
        out.by_rule[f"{code}{'' if auto else ' (proposed)'}"] = int(n)
        if auto:
            out.allocated += int(n)
        else:
            out.proposed += int(n)
    q.x("""UPDATE payment SET state = 'suspense' WHERE state = 'received' AND id IN (SELECT payment_id FROM pm_pay WHERE fresh = 0)""")
    out.suspense = int(q.x("SELECT COUNT(*) FROM pm_pay WHERE payment_id NOT IN (SELECT payment_id FROM pm_match)").scalar_one())
    q.x("""INSERT INTO suspense_item (payment_id, amount_minor, currency, owner, opened_at, opened_reason)
           SELECT p.payment_id, p.amount_minor, p.currency, :owner, :now, 'no matching rule found an account'
           FROM pm_pay p WHERE p.payment_id NOT IN (SELECT payment_id FROM pm_match)""", {"owner": owner, "now": q.ts(now)})
    q.x("""INSERT INTO payment_known_payer (payer_account, account_id, first_seen_on)
           SELECT DISTINCT p.payer_account, m.account_id, p.received_on FROM pm_match m JOIN pm_pay p ON p.payment_id = m.payment_id
           WHERE m.auto = 1 AND p.payer_account <> '' ON CONFLICT (payer_account, account_id) DO NOTHING""")
    # settled: what was left to pay before this batch, less what the batch allocated at once (only open invoices take money)
    settled = q.x("""SELECT o.invoice_id, o.account_id FROM pm_open o
                     JOIN (SELECT a.invoice_id, SUM(a.amount_minor) AS s FROM pm_alloc a JOIN pm_match m ON m.payment_id = a.payment_id AND m.auto = 1
                           WHERE a.invoice_id IS NOT NULL GROUP BY a.invoice_id) b ON b.invoice_id = o.invoice_id
                     WHERE o.unpaid - b.s <= 0 ORDER BY o.invoice_id""").all()
    announce_settled(q.s, [(int(i), int(a)) for i, a in settled], now=now, actor=actor)
    out.settled_invoices = len(settled)


def announce_created(session: Session, payment_ids: list[int], *, now: datetime, actor: Actor) -> None:
    """Announce payments written set-based (a statement's lines, a debit-order file's collections) in ONE event for the
    batch; each is a TMF676 PaymentCreateEvent for whoever listens. Nothing is published for an empty batch."""
    if payment_ids:
        domain_events.publish(session, PAYMENTS_CREATED, {"ids": payment_ids}, now=now, actor=actor)


def announce_settled(session: Session, settled: list[tuple[int, int]], *, now: datetime, actor: Actor) -> None:
    """Announce the invoices (id, account id) these payments settled, in ONE event for the batch (billing moves them to
    paid set-based, in this transaction). Nothing is published for an empty batch."""
    if settled:
        domain_events.publish(session, SETTLED_MANY, {"ids": [i for i, _ in settled], "account_ids": [a for _, a in settled]},
                              now=now, actor=actor)
