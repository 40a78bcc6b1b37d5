"""Set-based charge computation: SQL that stages one bill-run shard's invoice lines (recurring in advance with
pro-rata, arrears catch-up, one-offs, queued charges, usage, discounts). SQLite and PostgreSQL differ only in
the few date/number fragments of `Dialect`.

Pro-rata uses cumulative rounding: a product's charge for [s, e) inside a period [ps, pe) of D days is
round(P*(e-ps)/D) - round(P*(s-ps)/D), so pieces of one month that touch (relocation: the old product ends the
day the new one starts) always add up to exactly P: no gap, no overlap, no stray cent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session


STAGE = "billrun_stage"
BILLABLE_PRODUCT_STATES = ("active", "suspended", "pendingTerminate", "terminated")
ONE_OFF_EVENTS = ("installation", "activation", "router")


@dataclass(frozen=True)
class Dialect:
    name: str

    @property
    def pg(self) -> bool:
        return self.name == "postgresql"

    def d(self, param: str) -> str:
        """A date parameter."""
        return f"CAST(:{param} AS DATE)" if self.pg else f":{param}"

    def days(self, a: str, b: str) -> str:
        """Whole days from date a to date b."""
        return f"({b} - {a})" if self.pg else f"CAST(julianday({b}) - julianday({a}) AS INTEGER)"

    def greatest(self, a: str, b: str) -> str:
        return f"GREATEST({a}, {b})" if self.pg else f"max({a}, {b})"

    def least(self, a: str, b: str) -> str:
        return f"LEAST({a}, {b})" if self.pg else f"min({a}, {b})"

    def date_text(self, x: str) -> str:
        return f"CAST({x} AS TEXT)"

    def minus_day_text(self, x: str) -> str:
        return f"CAST({x} - 1 AS TEXT)" if self.pg else f"date({x}, '-1 day')"

    def add_days(self, d: str, n: str) -> str:
        return f"({d} + {n})" if self.pg else f"date({d}, '+' || ({n}) || ' days')"

    def pad8(self, n: str) -> str:
        return f"lpad(CAST({n} AS TEXT), 8, '0')" if self.pg else f"printf('%08d', {n})"

    def json_invoice(self, col: str) -> str:
        return f"jsonb_build_object('invoice_id', {col})" if self.pg else f"json_object('invoice_id', {col})"

    def num_text(self, x: str) -> str:
        """A quantity as text without float noise."""
        return f"CAST(CAST({x} AS NUMERIC(18,2)) AS TEXT)" if self.pg else f"CAST(round({x}, 2) AS TEXT)"

    def bind_date(self, v: date) -> Any:
        return v if self.pg else v.isoformat()

    def bind_ts(self, v: datetime) -> Any:
        # the same text SQLAlchemy writes for DateTime on SQLite (always 6 fractional digits), so comparisons are exact
        return v if self.pg else v.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def dialect_of(session: Session) -> Dialect:
    return Dialect(session.get_bind().dialect.name)


def half_up(num: str, den: str) -> str:
    """Integer division of num by a positive den, rounding halves away from zero (commercial rounding)."""
    return f"(CASE WHEN ({num}) >= 0 THEN (2 * ({num}) + ({den})) / (2 * ({den})) ELSE -((-2 * ({num}) + ({den})) / (2 * ({den}))) END)"


def tax_expr(amount: str, bp: str) -> str:
    """VAT on one line in minor units, half-up to the cent; `bp` is the rate in basis points (15% = 1500)."""
    return half_up(f"{amount} * {bp}", "10000")


TAX_BP = "CAST(round(t.rate * 10000) AS BIGINT)"

STAGE_COLS = ("account_id, product_id, offering_id, price_id, kind, description, period_start, period_end, quantity, "
              "unit_amount_minor, amount_minor, tax_bp, tax_rate_code, currency, explanation, pending_charge_id, discount_id")


def create_stage(session: Session, dia: Dialect) -> None:
    """A per-connection scratch table for one shard's lines (never shared between workers)."""
    session.execute(text(f"DROP TABLE IF EXISTS {'' if dia.pg else 'temp.'}{STAGE}"))
    session.execute(text(
        f"CREATE TEMP TABLE {STAGE} (account_id BIGINT NOT NULL, product_id BIGINT, offering_id BIGINT, price_id BIGINT, kind VARCHAR(12) NOT NULL, "
        "description VARCHAR(300) NOT NULL, period_start DATE, period_end DATE, quantity NUMERIC(18,6) NOT NULL, unit_amount_minor BIGINT NOT NULL, "
        "amount_minor BIGINT NOT NULL, tax_bp BIGINT NOT NULL, tax_rate_code VARCHAR(20) NOT NULL, currency VARCHAR(3) NOT NULL, explanation TEXT NOT NULL, "
        "pending_charge_id BIGINT, discount_id BIGINT)" + (" ON COMMIT DROP" if dia.pg else "")
    ))


def drop_stage(session: Session, dia: Dialect) -> None:
    if not dia.pg:
        session.execute(text(f"DROP TABLE IF EXISTS temp.{STAGE}"))


def _recurring_sql(dia: Dialect, *, ps: str, pe: str, catch_up: bool, charge_suspended: bool) -> str:
    """Recurring charges for products overlapping [ps, pe) (catch_up: the previous period, for products it never billed)."""
    states = ",".join(f"'{s}'" for s in BILLABLE_PRODUCT_STATES if charge_suspended or s != "suspended")
    s = dia.greatest("p.start_date", dia.d(ps))
    e = dia.least(f"COALESCE(p.end_date, {dia.d(pe)})", dia.d(pe))
    extra = ""
    if catch_up:
        extra = (f" AND p.start_date >= {dia.d(ps)} AND NOT EXISTS (SELECT 1 FROM invoice_line l WHERE l.account_id = p.account_id AND l.product_id = p.id AND l.kind = 'recurring'"
                 f" AND l.period_start >= {dia.d(ps)} AND l.period_start < {dia.d(pe)})")
    D = dia.days(dia.d(ps), dia.d(pe))
    inner = f"""
        SELECT p.account_id, p.id AS product_id, p.offering_id, pr.id AS price_id, o.name AS oname, p.state AS pstate,
               {s} AS s, {e} AS e, {dia.days(dia.d(ps), s)} AS ds, {dia.days(dia.d(ps), e)} AS de, {D} AS dd,
               pr.amount_minor AS price_minor, {TAX_BP} AS tax_bp, pr.tax_rate_code, pr.currency
        FROM product p
        JOIN account a ON a.id = p.account_id
        JOIN product_offering o ON o.id = p.offering_id
        JOIN price pr ON pr.offering_id = p.offering_id AND pr.kind = 'recurring' AND pr.valid_from <= {dia.d(ps)}
             AND (pr.valid_to IS NULL OR pr.valid_to > {dia.d(ps)})
        JOIN tax_rate t ON t.code = pr.tax_rate_code
        WHERE p.account_id >= :lo AND p.account_id < :hi AND a.id >= :lo AND a.id < :hi AND a.bill_cycle_day = :day AND pr.currency = a.currency
          AND p.state IN ({states}) AND p.start_date IS NOT NULL AND p.start_date < {dia.d(pe)}
          AND (p.end_date IS NULL OR p.end_date > {dia.d(ps)}){extra}"""
    amount = f"{half_up('x.price_minor * x.de', 'x.dd')} - {half_up('x.price_minor * x.ds', 'x.dd')}"
    when = "in arrears: activated after the last bill run" if catch_up else "in advance"
    expl = (f"CASE WHEN x.de - x.ds = x.dd THEN x.oname || ' ' || {dia.date_text('x.s')} || ' to ' || {dia.minus_day_text('x.e')} || ', monthly {when}' "
            f"ELSE x.oname || ' pro-rata ' || CAST(x.de - x.ds AS TEXT) || ' of ' || CAST(x.dd AS TEXT) || ' days, ' || {dia.date_text('x.s')} || ' to ' || {dia.minus_day_text('x.e')}"
            f" || CASE WHEN x.ds > 0 THEN ' (from activation ' || {dia.date_text('x.s')} || ')' ELSE '' END"
            f" || CASE WHEN x.de < x.dd THEN ' (service ends ' || {dia.date_text('x.e')} || ')' ELSE '' END || ', {when}' END"
            " || CASE WHEN x.pstate = 'suspended' THEN '; suspended, billed per suspension policy' ELSE '' END")
    return f"""INSERT INTO {STAGE} ({STAGE_COLS})
        SELECT x.account_id, x.product_id, x.offering_id, x.price_id, 'recurring', x.oname, x.s, x.e, 1, x.price_minor,
               {amount}, x.tax_bp, x.tax_rate_code, x.currency, {expl}, NULL, NULL
        FROM ({inner}) x WHERE x.de > x.ds"""


def _one_off_sql(dia: Dialect) -> str:
    events = ",".join(f"'{e}'" for e in ONE_OFF_EVENTS)
    states = ",".join(f"'{s}'" for s in BILLABLE_PRODUCT_STATES)
    return f"""INSERT INTO {STAGE} ({STAGE_COLS})
        SELECT p.account_id, p.id, p.offering_id, pr.id, 'one_off', pr.name, p.start_date, NULL, 1, pr.amount_minor, pr.amount_minor,
               {TAX_BP}, pr.tax_rate_code, pr.currency, pr.name || ' for ' || o.name || ', once on ' || pr.charge_event || ' ' || {dia.date_text('p.start_date')}, NULL, NULL
        FROM product p
        JOIN account a ON a.id = p.account_id
        JOIN product_offering o ON o.id = p.offering_id
        JOIN price pr ON pr.offering_id = p.offering_id AND pr.kind = 'one_off' AND pr.charge_event IN ({events}) AND pr.amount_minor <> 0
             AND pr.valid_from <= p.start_date AND (pr.valid_to IS NULL OR pr.valid_to > p.start_date)
        JOIN tax_rate t ON t.code = pr.tax_rate_code
        WHERE p.account_id >= :lo AND p.account_id < :hi AND a.id >= :lo AND a.id < :hi AND a.bill_cycle_day = :day AND pr.currency = a.currency
          AND p.state IN ({states}) AND p.start_date >= {dia.d('pps')} AND p.start_date < {dia.d('pe')}
          AND NOT EXISTS (SELECT 1 FROM invoice_line l WHERE l.account_id = p.account_id AND l.product_id = p.id AND l.price_id = pr.id AND l.kind = 'one_off')"""


def _pending_sql(dia: Dialect) -> str:
    return f"""INSERT INTO {STAGE} ({STAGE_COLS})
        SELECT c.account_id, c.product_id, NULL, NULL, 'one_off', c.description, NULL, NULL, 1, c.amount_minor, c.amount_minor,
               {TAX_BP}, c.tax_rate_code, c.currency, c.description || ' (' || c.reason || ')', c.id, NULL
        FROM pending_charge c
        JOIN account a ON a.id = c.account_id
        JOIN tax_rate t ON t.code = c.tax_rate_code
        WHERE c.account_id >= :lo AND c.account_id < :hi AND a.id >= :lo AND a.id < :hi AND a.bill_cycle_day = :day AND c.currency = a.currency
          AND c.state = 'pending' AND c.invoice_id IS NULL AND c.created_at <= :now"""


def _usage_sql(dia: Dialect) -> str:
    return f"""INSERT INTO {STAGE} ({STAGE_COLS})
        SELECT u.account_id, u.product_id, NULL, NULL, 'usage',
               CASE u.usage_type WHEN 'data_mb' THEN 'Out-of-bundle data' WHEN 'voice_sec' THEN 'Voice calls' ELSE 'SMS' END,
               NULL, {dia.d('ps')}, SUM(u.quantity), 0, SUM(u.rated_amount_minor), MIN({TAX_BP}), u.tax_rate_code, u.currency,
               CASE u.usage_type WHEN 'data_mb' THEN 'out-of-bundle data ' WHEN 'voice_sec' THEN 'voice ' ELSE 'SMS ' END
                 || {dia.num_text('SUM(u.quantity)')} || CASE u.usage_type WHEN 'data_mb' THEN ' MB' WHEN 'voice_sec' THEN ' s' ELSE '' END
                 || ' in ' || CAST(COUNT(*) AS TEXT) || ' rated records before ' || {dia.date_text(dia.d('ps'))}, NULL, NULL
        FROM usage_record u
        JOIN account a ON a.id = u.account_id
        JOIN tax_rate t ON t.code = u.tax_rate_code
        WHERE u.account_id >= :lo AND u.account_id < :hi AND a.id >= :lo AND a.id < :hi AND a.bill_cycle_day = :day AND u.currency = a.currency
          AND u.state = 'rated' AND u.invoice_id IS NULL AND u.rated_amount_minor IS NOT NULL AND u.started_at < :ps_ts
        GROUP BY u.account_id, u.product_id, u.usage_type, u.tax_rate_code, u.currency"""


def _discount_sql(dia: Dialect) -> list[str]:
    valid = f"d.valid_from <= {dia.d('ps')} AND (d.valid_to IS NULL OR d.valid_to > {dia.d('ps')})"
    match = "(d.account_id IS NULL OR d.account_id = s.account_id) AND (d.offering_id IS NULL OR d.offering_id = s.offering_id)"
    pct_bp = "CAST(round(d.value * 10000) AS BIGINT)"
    percent = f"""INSERT INTO {STAGE} ({STAGE_COLS})
        SELECT s.account_id, s.product_id, s.offering_id, NULL, 'discount', d.description, s.period_start, s.period_end, 1, 0,
               -{half_up(f's.amount_minor * {pct_bp}', '1000000')}, s.tax_bp, s.tax_rate_code, s.currency,
               d.description || ': ' || {dia.num_text('d.value')} || '% of ' || s.description, NULL, d.id
        FROM {STAGE} s JOIN discount d ON d.kind = 'percent' AND {valid} AND {match}
        WHERE s.kind = 'recurring'"""
    fixed = f"""INSERT INTO {STAGE} ({STAGE_COLS})
        SELECT s.account_id, NULL, d.offering_id, NULL, 'discount', MIN(d.description), NULL, NULL, 1, 0,
               -CAST(round(MIN(d.value) * 100) AS BIGINT), MIN(s.tax_bp), MIN(s.tax_rate_code), MIN(s.currency), MIN(d.description) || ': fixed monthly discount', NULL, d.id
        FROM {STAGE} s JOIN discount d ON d.kind = 'fixed' AND {valid} AND {match}
        WHERE s.kind = 'recurring'
        GROUP BY s.account_id, d.id, d.offering_id"""
    return [percent, fixed]


def stage_lines(session: Session, *, lo: int, hi: int, bill_day: int, period_start: date, period_end: date, prev_start: date,
                charge_suspended: bool, now: datetime) -> None:
    """Fill the stage with every line of accounts [lo, hi) on this bill day (set-based: a handful of INSERT ... SELECT)."""
    dia = dialect_of(session)
    params = {
        "lo": lo, "hi": hi, "day": bill_day, "ps": dia.bind_date(period_start), "pe": dia.bind_date(period_end),
        "pps": dia.bind_date(prev_start), "now": dia.bind_ts(now),
        "ps_ts": dia.bind_ts(datetime(period_start.year, period_start.month, period_start.day, tzinfo=timezone.utc)),
    }
    stmts = [
        _recurring_sql(dia, ps="ps", pe="pe", catch_up=False, charge_suspended=charge_suspended),
        _recurring_sql(dia, ps="pps", pe="ps", catch_up=True, charge_suspended=charge_suspended),
        *_discount_sql(dia),
        _one_off_sql(dia),
        _pending_sql(dia),
        _usage_sql(dia),
    ]
    for sql in stmts:
        used = {k: v for k, v in params.items() if f":{k}" in sql}
        session.execute(text(sql), used)


def invoices_from_stage_sql(dia: Dialect) -> str:
    return f"""INSERT INTO invoice (account_id, bill_run_id, kind, period_start, period_end, state, currency, subtotal_minor, tax_minor, total_minor, created_at, version)
        SELECT s.account_id, :run, 'cycle', {dia.d('ps')}, {dia.d('pe')}, 'draft', MIN(s.currency), SUM(s.amount_minor),
               SUM({tax_expr('s.amount_minor', 's.tax_bp')}), SUM(s.amount_minor + {tax_expr('s.amount_minor', 's.tax_bp')}), :now, 1
        FROM {STAGE} s GROUP BY s.account_id"""


def lines_from_stage_sql(dia: Dialect) -> str:
    tax = tax_expr("s.amount_minor", "s.tax_bp")
    return f"""INSERT INTO invoice_line (invoice_id, account_id, product_id, offering_id, price_id, kind, description, period_start, period_end, quantity,
            unit_amount_minor, amount_minor, tax_rate_code, tax_minor, total_minor, currency, explanation, pending_charge_id, discount_id)
        SELECT i.id, s.account_id, s.product_id, s.offering_id, s.price_id, s.kind, s.description, s.period_start, s.period_end, s.quantity,
               s.unit_amount_minor, s.amount_minor, s.tax_rate_code, {tax}, s.amount_minor + {tax}, s.currency, s.explanation, s.pending_charge_id, s.discount_id
        FROM {STAGE} s JOIN invoice i ON i.account_id = s.account_id AND i.period_start = {dia.d('ps')} AND i.kind = 'cycle' AND i.bill_run_id = :run
             AND i.account_id >= :lo AND i.account_id < :hi"""
